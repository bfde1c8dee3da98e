// Incremental readers for streamed bodies: feed them chunks as they arrive, get whole items out.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "providers/http/client.hpp"

namespace sbox::http {

// Line-delimited text (NDJSON): calls on_line for each complete line, without its "\n" (or "\r\n").
class LineReader {
  public:
    explicit LineReader(std::function<void(std::string_view line)> on_line) : on_line_(std::move(on_line)) {}
    void feed(std::string_view chunk);
    // At the end of the body: a last line without a newline is delivered.
    void finish();

  private:
    std::function<void(std::string_view)> on_line_;
    std::string pending_;
};

// A multipart body (RFC 2046) as it arrives: on_part receives each part's headers and data.
class MultipartReader {
  public:
    // `boundary` from the Content-Type's boundary parameter (see boundary_of).
    MultipartReader(std::string boundary, std::function<void(const Headers&, std::string_view data)> on_part);
    void feed(std::string_view chunk);
    // True once the closing boundary was seen.
    bool complete() const { return done_; }

  private:
    void parse();
    std::string delimiter_;
    std::function<void(const Headers&, std::string_view)> on_part_;
    std::string buffer_;
    bool started_ = false, done_ = false;
};

// The boundary parameter of a multipart Content-Type; nullopt when there is none.
std::optional<std::string> boundary_of(std::string_view content_type);

// A multipart/form-data request body with one file field, streamed from a file descriptor (uploads of any
// size without holding them in memory). Sets request.body_source, body_size and the Content-Type header.
struct MultipartFile {
    std::string field = "file";
    std::string filename;
    std::string content_type = "application/octet-stream";
    int fd = -1;             // read until EOF
    std::optional<std::uint64_t> size; // when known, Content-Length is sent; else chunked
};
void set_multipart_body(Request& request, const MultipartFile& file);

} // namespace sbox::http
