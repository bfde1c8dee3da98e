#include "providers/http/streams.hpp"

#include <cerrno>
#include <cstring>
#include <random>
#include <unistd.h>

#include "providers/provider.hpp"

namespace sbox::http {

void LineReader::feed(std::string_view chunk) {
    pending_.append(chunk);
    std::size_t start = 0;
    for (;;) {
        auto nl = pending_.find('\n', start);
        if (nl == std::string::npos) break;
        std::string_view line(pending_.data() + start, nl - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        on_line_(line);
        start = nl + 1;
    }
    pending_.erase(0, start);
}

void LineReader::finish() {
    if (pending_.empty()) return;
    std::string_view line = pending_;
    if (line.back() == '\r') line.remove_suffix(1);
    on_line_(line);
    pending_.clear();
}

MultipartReader::MultipartReader(std::string boundary,
                                 std::function<void(const Headers&, std::string_view data)> on_part)
    : delimiter_("--" + std::move(boundary)), on_part_(std::move(on_part)) {}

void MultipartReader::feed(std::string_view chunk) {
    if (done_) return;
    buffer_.append(chunk);
    parse();
}

void MultipartReader::parse() {
    for (;;) {
        if (!started_) {
            // The preamble ends at the first delimiter line.
            auto at = buffer_.find(delimiter_);
            if (at == std::string::npos) {
                if (buffer_.size() > delimiter_.size()) buffer_.erase(0, buffer_.size() - delimiter_.size());
                return;
            }
            auto eol = buffer_.find("\r\n", at);
            if (eol == std::string::npos) return;
            if (buffer_.compare(at + delimiter_.size(), 2, "--") == 0) {
                done_ = true;
                return;
            }
            buffer_.erase(0, eol + 2);
            started_ = true;
        }
        // A part: headers, a blank line, data up to CRLF + delimiter.
        auto head_end = buffer_.find("\r\n\r\n");
        if (head_end == std::string::npos) return;
        auto next = buffer_.find("\r\n" + delimiter_, head_end + 4);
        if (next == std::string::npos) return;
        auto after = next + 2 + delimiter_.size();
        if (buffer_.size() < after + 2) return;
        Headers headers;
        std::string_view head(buffer_.data(), head_end);
        while (!head.empty()) {
            auto eol = head.find("\r\n");
            std::string_view line = head.substr(0, eol);
            auto colon = line.find(':');
            if (colon != std::string_view::npos) {
                std::string_view v = line.substr(colon + 1);
                while (!v.empty() && v.front() == ' ')
                    v.remove_prefix(1);
                headers.emplace_back(std::string(line.substr(0, colon)), std::string(v));
            }
            if (eol == std::string_view::npos) break;
            head.remove_prefix(eol + 2);
        }
        on_part_(headers, std::string_view(buffer_.data() + head_end + 4, next - head_end - 4));
        bool last = buffer_.compare(after, 2, "--") == 0;
        if (last) {
            done_ = true;
            buffer_.clear();
            return;
        }
        auto eol = buffer_.find("\r\n", after);
        if (eol == std::string::npos) {
            buffer_.erase(0, next);
            started_ = false;
            return;
        }
        buffer_.erase(0, eol + 2);
    }
}

std::optional<std::string> boundary_of(std::string_view content_type) {
    auto at = content_type.find("boundary=");
    if (at == std::string_view::npos) return std::nullopt;
    std::string_view b = content_type.substr(at + 9);
    if (!b.empty() && b.front() == '"') {
        b.remove_prefix(1);
        auto q = b.find('"');
        if (q == std::string_view::npos) return std::nullopt;
        return std::string(b.substr(0, q));
    }
    auto end = b.find_first_of("; \t");
    std::string out(b.substr(0, end));
    if (out.empty()) return std::nullopt;
    return out;
}

void set_multipart_body(Request& request, const MultipartFile& file) {
    std::random_device rd;
    std::string boundary = "sbox-";
    for (int i = 0; i < 24; ++i)
        boundary += "0123456789abcdefghijklmnopqrstuvwxyz"[rd() % 36];
    std::string name;
    for (char c : file.filename) {
        if (c == '"' || c == '\\') name += '\\';
        if (c != '\r' && c != '\n') name += c;
    }
    auto head = std::make_shared<std::string>(
        "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + file.field + "\"; filename=\"" +
        name + "\"\r\nContent-Type: " + file.content_type + "\r\n\r\n");
    auto tail = std::make_shared<std::string>("\r\n--" + boundary + "--\r\n");
    // The body is head, the fd's data, tail: a small state machine called by the client as it sends.
    struct State {
        std::size_t head_sent = 0, tail_sent = 0;
        bool data_done = false;
    };
    auto st = std::make_shared<State>();
    int fd = file.fd;
    request.body_source = [head, tail, st, fd](char* buf, std::size_t cap) -> long {
        if (st->head_sent < head->size()) {
            std::size_t n = std::min(cap, head->size() - st->head_sent);
            std::memcpy(buf, head->data() + st->head_sent, n);
            st->head_sent += n;
            return static_cast<long>(n);
        }
        while (!st->data_done) {
            ssize_t n = ::read(fd, buf, cap);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return -1;
            if (n == 0) {
                st->data_done = true;
                break;
            }
            return static_cast<long>(n);
        }
        std::size_t n = std::min(cap, tail->size() - st->tail_sent);
        std::memcpy(buf, tail->data() + st->tail_sent, n);
        st->tail_sent += n;
        return static_cast<long>(n);
    };
    if (file.size)
        request.body_size = head->size() + *file.size + tail->size();
    else
        request.body_size.reset();
    request.headers.emplace_back("Content-Type", "multipart/form-data; boundary=" + boundary);
}

} // namespace sbox::http
