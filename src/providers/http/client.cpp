// The shared HTTP client on libcurl (see client.hpp for what it promises).
#include "providers/http/client.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <random>
#include <thread>

#include <curl/curl.h>

#include "providers/log.hpp"
#include "providers/provider.hpp"

#ifndef SBOX_VERSION
#define SBOX_VERSION "0"
#endif

namespace sbox::http {

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
        s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
        s.remove_suffix(1);
    return std::string(s);
}

// One process-wide libcurl: global init once, and one share object for connections, DNS and TLS sessions,
// guarded by a mutex per data kind, so that every thread's handles reuse the same connections.
class Global {
  public:
    static Global& instance() {
        static Global g;
        return g;
    }
    CURLSH* share() const { return share_; }

  private:
    Global() {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        share_ = curl_share_init();
        curl_share_setopt(share_, CURLSHOPT_LOCKFUNC, &lock);
        curl_share_setopt(share_, CURLSHOPT_UNLOCKFUNC, &unlock);
        curl_share_setopt(share_, CURLSHOPT_USERDATA, this);
        curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    }
    // Never destroyed: handles may still be in use by detached work at exit, and the OS reclaims it all.
    ~Global() = default;
    static void lock(CURL*, curl_lock_data data, curl_lock_access, void* self) {
        static_cast<Global*>(self)->mutexes_[static_cast<std::size_t>(data) % kLocks].lock();
    }
    static void unlock(CURL*, curl_lock_data data, void* self) {
        static_cast<Global*>(self)->mutexes_[static_cast<std::size_t>(data) % kLocks].unlock();
    }
    static constexpr std::size_t kLocks = 8;
    std::mutex mutexes_[kLocks];
    CURLSH* share_ = nullptr;
};

struct EasyDeleter {
    void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
using Easy = std::unique_ptr<CURL, EasyDeleter>;
struct SlistDeleter {
    void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

bool idempotent_method(std::string_view m) {
    return m == "GET" || m == "HEAD" || m == "PUT" || m == "DELETE" || m == "OPTIONS";
}

// What one attempt is doing, for curl's callbacks.
struct Exchange {
    const Request* request = nullptr;
    Response* response = nullptr;
    const std::function<bool(std::string_view)>* on_data = nullptr; // streaming
    bool delivered = false;                                         // a 2xx body byte reached on_data
    bool stopped = false;                                           // on_data asked to stop
    long status_seen = 0; // the status of the final response (headers of 1xx are skipped)
    std::uint64_t bytes = 0;
    bool source_failed = false; // body_source returned < 0
};

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* userdata) {
    auto* ex = static_cast<Exchange*>(userdata);
    std::string_view line(data, size * n);
    if (line.starts_with("HTTP/")) {
        // A new response (after a 100 Continue or a redirect): start over.
        ex->response->headers.clear();
        auto sp = line.find(' ');
        if (sp != std::string_view::npos)
            ex->status_seen = std::atol(std::string(line.substr(sp + 1, 3)).c_str());
        return size * n;
    }
    auto colon = line.find(':');
    if (colon != std::string_view::npos)
        ex->response->headers.emplace_back(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
    return size * n;
}

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* userdata) {
    auto* ex = static_cast<Exchange*>(userdata);
    std::size_t len = size * n;
    ex->bytes += len;
    bool success = ex->status_seen >= 200 && ex->status_seen < 300;
    if (ex->on_data != nullptr && success) {
        ex->delivered = true;
        if (!(*ex->on_data)(std::string_view(data, len))) {
            ex->stopped = true;
            return CURL_WRITEFUNC_ERROR;
        }
        return len;
    }
    ex->response->body.append(data, len);
    return len;
}

std::size_t on_read(char* buffer, std::size_t size, std::size_t n, void* userdata) {
    auto* ex = static_cast<Exchange*>(userdata);
    long got = ex->request->body_source(buffer, size * n);
    if (got < 0) {
        ex->source_failed = true;
        return CURL_READFUNC_ABORT;
    }
    return static_cast<std::size_t>(got);
}

int on_progress(void* userdata, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* ex = static_cast<Exchange*>(userdata);
    return (ex->request->cancel != nullptr && ex->request->cancel->load()) ? 1 : 0;
}

TransportError::Kind kind_of(CURLcode code) {
    switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return TransportError::Kind::connect;
    case CURLE_OPERATION_TIMEDOUT:
        return TransportError::Kind::timeout;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return TransportError::Kind::cut;
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_WRITE_ERROR:
        return TransportError::Kind::cancelled;
    default:
        return TransportError::Kind::other;
    }
}

std::string host_of(std::string_view url) {
    auto scheme = url.find("://");
    std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);
    return std::string(rest.substr(0, rest.find('/')));
}

double random01() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// Sleeps `d`, waking early (false) when the request is cancelled.
bool sleep_unless_cancelled(std::chrono::milliseconds d, const std::atomic<bool>* cancel) {
    auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until) {
        if (cancel != nullptr && cancel->load()) return false;
        auto left = until - std::chrono::steady_clock::now();
        std::this_thread::sleep_for(
            std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(50)));
    }
    return true;
}

std::string format_ms(double seconds) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f ms", seconds * 1000);
    return buf;
}

} // namespace

std::optional<std::string> find_header(const Headers& headers, std::string_view name) {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return v;
    return std::nullopt;
}

struct Client::Impl {
    std::mutex mutex;
    std::vector<Easy> idle; // handles kept for reuse (their connection cache is the shared one)

    Easy take() {
        {
            std::lock_guard lock(mutex);
            if (!idle.empty()) {
                Easy e = std::move(idle.back());
                idle.pop_back();
                curl_easy_reset(e.get());
                return e;
            }
        }
        Easy e(curl_easy_init());
        if (!e) throw Error(ErrorKind::internal, "libcurl could not make a handle");
        return e;
    }
    void give_back(Easy e) {
        std::lock_guard lock(mutex);
        if (idle.size() < 8) idle.push_back(std::move(e));
    }
};

Client::Client(Options options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {
    if (options_.user_agent.empty()) options_.user_agent = "sbox/" SBOX_VERSION;
    Global::instance();
}

Client::~Client() = default;

namespace {

// One attempt. Fills response (status, headers, body or transport_error) and returns the exchange's facts.
Exchange attempt(CURL* h, const Client::Options& o, const Request& req, Response& resp,
                 const std::function<bool(std::string_view)>* on_data) {
    Exchange ex;
    ex.request = &req;
    ex.response = &resp;
    ex.on_data = on_data;
    resp.headers.clear();
    resp.body.clear();
    resp.status = 0;
    resp.transport_error.reset();

    curl_easy_setopt(h, CURLOPT_SHARE, Global::instance().share());
    curl_easy_setopt(h, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, o.user_agent.c_str());
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o.connect_timeout.count()));
    std::chrono::milliseconds total = req.timeout.count() == 0 ? o.timeout : req.timeout;
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                     total == std::chrono::milliseconds::max() ? 0L : static_cast<long>(total.count()));
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &ex);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &ex);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &ex);

    Slist headers;
    auto add = [&](const std::string& line) {
        curl_slist* next = curl_slist_append(headers.get(), line.c_str());
        if (next == nullptr) throw Error(ErrorKind::internal, "out of memory building HTTP headers");
        (void)headers.release();
        headers.reset(next);
    };
    for (const auto& [k, v] : req.headers)
        add(k + ": " + v);
    // No "Expect: 100-continue" round trip before a body.
    add("Expect:");

    if (req.method == "GET") {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (req.method == "HEAD") {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
        if (req.body_source) {
            curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(h, CURLOPT_READFUNCTION, &on_read);
            curl_easy_setopt(h, CURLOPT_READDATA, &ex);
            if (req.body_size)
                curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(*req.body_size));
            else
                add("Transfer-Encoding: chunked");
            // CURLOPT_UPLOAD makes it a PUT; the method stays the one asked for.
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
        } else {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, req.body.data());
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
        }
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());

    CURLcode rc = curl_easy_perform(h);
    double t = 0;
    curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &t);
    resp.seconds = t;
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK) {
        resp.status = status;
    } else {
        TransportError te;
        te.kind = kind_of(rc);
        if (ex.stopped || ex.source_failed) te.kind = TransportError::Kind::cancelled;
        if (rc == CURLE_ABORTED_BY_CALLBACK) te.kind = TransportError::Kind::cancelled;
        te.message = host_of(req.url) + ": " + curl_easy_strerror(rc);
        resp.transport_error = std::move(te);
        resp.status = 0;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(h, CURLOPT_SHARE, nullptr);
    return ex;
}

} // namespace

Response Client::send(const Request& request) {
    return stream(request, {});
}

Response Client::stream(const Request& request, const std::function<bool(std::string_view chunk)>& on_data) {
    const bool idempotent = request.retry == Retry::idempotent ||
                            (request.retry == Retry::automatic && idempotent_method(request.method));
    const bool repeatable = !request.body_source && request.retry != Retry::never;
    const std::string shown = redact_url(request.url, options_.secret_query_params);
    Response resp;
    for (int n = 1;; ++n) {
        resp.attempts = n;
        Easy h = impl_->take();
        Exchange ex = attempt(h.get(), options_, request, resp, on_data ? &on_data : nullptr);
        impl_->give_back(std::move(h));

        // Decide whether to go again, and after how long.
        std::optional<std::chrono::milliseconds> delay;
        std::string why;
        if (repeatable && n < options_.max_attempts && !ex.delivered) {
            if (resp.transport_error) {
                auto k = resp.transport_error->kind;
                if (idempotent && k != TransportError::Kind::cancelled && k != TransportError::Kind::other) {
                    delay = backoff_delay(n, options_.backoff_base, options_.backoff_max, random01());
                    why = resp.transport_error->message;
                }
            } else if (resp.status == 429 || resp.status == 503) {
                auto ra = resp.header("Retry-After");
                auto wait = ra ? parse_retry_after(*ra) : std::nullopt;
                if (wait && *wait <= options_.max_retry_after) {
                    delay = *wait; // the server said when: any request may go again
                    why = "HTTP " + std::to_string(resp.status);
                } else if (!ra && resp.status == 503 && idempotent) {
                    delay = backoff_delay(n, options_.backoff_base, options_.backoff_max, random01());
                    why = "HTTP 503";
                }
            } else if ((resp.status == 502 || resp.status == 504) && idempotent) {
                delay = backoff_delay(n, options_.backoff_base, options_.backoff_max, random01());
                why = "HTTP " + std::to_string(resp.status);
            }
        }
        if (verbose()) {
            std::string line = request.method + " " + shown + " -> ";
            if (resp.transport_error)
                line += "failed: " + resp.transport_error->message;
            else
                line += std::to_string(resp.status);
            line += " (" + format_ms(resp.seconds) + ", " + std::to_string(ex.bytes) + " bytes)";
            if (delay) line += "; retrying in " + std::to_string(delay->count()) + " ms";
            log(options_.provider, line);
        }
        if (!delay) return resp;
        if (!sleep_unless_cancelled(*delay, request.cancel)) {
            resp.transport_error = TransportError{TransportError::Kind::cancelled, "cancelled"};
            resp.status = 0;
            return resp;
        }
    }
}

std::string redact_url(std::string_view url, const std::vector<std::string>& secret_params) {
    auto q = url.find('?');
    if (q == std::string_view::npos || secret_params.empty()) return std::string(url);
    std::string out(url.substr(0, q + 1));
    std::string_view rest = url.substr(q + 1);
    bool first = true;
    while (!rest.empty() || first) {
        auto amp = rest.find('&');
        std::string_view part = rest.substr(0, amp);
        auto eq = part.find('=');
        std::string_view key = part.substr(0, eq);
        if (!first) out += '&';
        first = false;
        bool secret = std::find(secret_params.begin(), secret_params.end(), key) != secret_params.end();
        if (secret && eq != std::string_view::npos)
            out += std::string(key) + "=REDACTED";
        else
            out += part;
        if (amp == std::string_view::npos) break;
        rest.remove_prefix(amp + 1);
    }
    return out;
}

std::string url_encode(std::string_view text) {
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           std::chrono::system_clock::time_point now) {
    std::string v = trim(value);
    if (v.empty()) return std::nullopt;
    if (std::all_of(v.begin(), v.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
        if (v.size() > 9) return std::chrono::milliseconds::max();
        return std::chrono::milliseconds(std::stoll(v) * 1000);
    }
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
    std::tm tm{};
    char wday[4] = {}, mon[4] = {}, zone[4] = {};
    if (std::sscanf(v.c_str(), "%3s, %d %3s %d %d:%d:%d %3s", wday, &tm.tm_mday, mon, &tm.tm_year,
                    &tm.tm_hour, &tm.tm_min, &tm.tm_sec, zone) != 8 ||
        std::string_view(zone) != "GMT")
        return std::nullopt;
    static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    tm.tm_mon = -1;
    for (int i = 0; i < 12; ++i)
        if (std::string_view(mon) == months[i]) tm.tm_mon = i;
    if (tm.tm_mon < 0) return std::nullopt;
    tm.tm_year -= 1900;
    auto when = std::chrono::system_clock::from_time_t(::timegm(&tm));
    auto d = std::chrono::duration_cast<std::chrono::milliseconds>(when - now);
    return d.count() < 0 ? std::chrono::milliseconds(0) : d;
}

std::chrono::milliseconds backoff_delay(int retry, std::chrono::milliseconds base,
                                        std::chrono::milliseconds cap, double r) {
    double ceiling = static_cast<double>(base.count()) * std::pow(2.0, std::max(0, retry - 1));
    ceiling = std::min(ceiling, static_cast<double>(cap.count()));
    r = std::clamp(r, 0.0, 1.0);
    return std::chrono::milliseconds(static_cast<std::int64_t>(ceiling * r));
}

} // namespace sbox::http
