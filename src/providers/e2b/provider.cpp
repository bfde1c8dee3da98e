// The E2B provider's control-plane side: sandboxes, their lifetime, pause and resume, snapshots; and the
// module's entry point.
#include "providers/e2b/e2b.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <random>

#include "providers/http/errors.hpp"
#include "providers/log.hpp"
#include "providers/module.hpp"
#include "providers/parse.hpp"

namespace sbox::e2b {

namespace {

constexpr const char* kProvider = "e2b";
constexpr int kDefaultTimeoutSeconds = 300; // the SDK's default lifetime
constexpr const char* kEnvdPort = "49983";

std::string without_trailing_slash(std::string s) {
    while (!s.empty() && s.back() == '/')
        s.pop_back();
    return s;
}

std::int64_t now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// RFC 3339 ("2025-01-31T12:00:00.123Z", "...+02:00") to unix seconds; nullopt when it is not one.
std::optional<std::int64_t> parse_time(const nlohmann::json& value) {
    if (!value.is_string()) return std::nullopt;
    const std::string& s = value.get_ref<const std::string&>();
    std::tm tm{};
    int consumed = 0;
    if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                    &tm.tm_min, &tm.tm_sec, &consumed) != 6)
        return std::nullopt;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    std::int64_t t = ::timegm(&tm);
    std::size_t i = static_cast<std::size_t>(consumed);
    if (i < s.size() && s[i] == '.')
        for (++i; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i) {
        }
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        int hh = 0, mm = 0;
        if (std::sscanf(s.c_str() + i + 1, "%2d:%2d", &hh, &mm) == 2)
            t -= (s[i] == '+' ? 1 : -1) * (hh * 3600 + mm * 60);
    }
    return t;
}

std::string string_or(const nlohmann::json& j, const char* key, std::string fallback = {}) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return fallback;
    return it->get<std::string>();
}

// E2B ids are 20 characters of [a-z0-9]; anything else cannot be an id (so it may be a name).
bool looks_like_id(std::string_view s) {
    if (s.empty() || s.size() > 64) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    });
}

nlohmann::json parse_body(const http::Response& r, std::string_view what) {
    try {
        return nlohmann::json::parse(r.body);
    } catch (const nlohmann::json::exception&) {
        std::string excerpt = r.body.substr(0, 80);
        throw Error(ErrorKind::internal,
                    std::string(what) + ": the service returned malformed JSON (HTTP " +
                        std::to_string(r.status) + ": " + excerpt + (r.body.size() > 80 ? "…" : "") + ")",
                    kProvider);
    }
}

} // namespace

Settings Settings::from(const Config& config) {
    Settings s;
    s.api_key = config.setting(kProvider, "api_key", "E2B_API_KEY").value_or("");
    s.domain = config.setting(kProvider, "domain", "E2B_DOMAIN").value_or("e2b.app");
    s.api_url = without_trailing_slash(
        config.setting(kProvider, "api_url", "E2B_API_URL").value_or("https://api." + s.domain));
    s.sandbox_url =
        without_trailing_slash(config.setting(kProvider, "sandbox_url", "E2B_SANDBOX_URL").value_or(""));
    if (const char* t = std::getenv("SBOX_HTTP_TIMEOUT"); t != nullptr && *t != '\0') {
        try {
            s.request_timeout = parse_duration(t);
        } catch (const Error& e) {
            throw Error(ErrorKind::invalid, std::string("SBOX_HTTP_TIMEOUT: ") + e.what(), kProvider);
        }
    }
    return s;
}

Provider::Provider(const Config& config) : settings_(Settings::from(config)) {}

Capabilities Provider::capabilities() const {
    return {Capability::exec,      Capability::exec_stdin, Capability::exec_detach, Capability::exec_timeout,
            Capability::exec_user, Capability::exec_cwd,   Capability::exec_tty,    Capability::lifetime,
            Capability::labels,    Capability::names,      Capability::copy,        Capability::snapshots,
            Capability::pause,     Capability::network};
}

bool Provider::configured(std::string& why) const {
    if (!settings_.api_key.empty()) return true;
    why = "E2B_API_KEY is not set (get a key at https://e2b.dev/dashboard?tab=keys and export it, or set "
          "api_key in [providers.e2b] of the config file; or use -p local)";
    return false;
}

void Provider::require_key() const {
    std::string why;
    if (!configured(why)) throw Error(ErrorKind::auth, why, kProvider);
}

http::Client& Provider::client() {
    std::lock_guard lock(mutex_);
    if (!client_) {
        http::Client::Options o;
        o.provider = kProvider;
        o.timeout = settings_.request_timeout;
        client_ = std::make_unique<http::Client>(std::move(o));
    }
    return *client_;
}

http::Response Provider::api(const std::string& method, const std::string& path, const nlohmann::json* body,
                             std::string_view what, http::Retry retry) {
    require_key();
    http::Request req;
    req.method = method;
    req.url = settings_.api_url + path;
    req.headers = {{"X-API-KEY", settings_.api_key}, {"Accept", "application/json"}};
    if (body != nullptr) {
        req.headers.emplace_back("Content-Type", "application/json");
        req.body = body->dump();
    }
    req.retry = retry;
    (void)what;
    return client().send(req);
}

std::string random_token(std::size_t length) {
    std::random_device rd;
    std::uniform_int_distribution<unsigned> d(0, 35);
    std::string s;
    for (std::size_t i = 0; i < length; ++i)
        s += "0123456789abcdefghijklmnopqrstuvwxyz"[d(rd)];
    return s;
}

void Provider::for_each_listed(const std::string& path_and_query, const std::string& what,
                               const std::function<void(const nlohmann::json&)>& each) {
    // E2B pages with a token in the X-Next-Token header, passed back as nextToken.
    std::string token;
    for (int page = 0; page < 1000; ++page) {
        auto r = api("GET", path_and_query + (token.empty() ? "" : "&nextToken=" + http::url_encode(token)),
                     nullptr, what);
        http::check(r, what, kProvider);
        nlohmann::json j = parse_body(r, what);
        if (!j.is_array())
            throw Error(ErrorKind::internal, what + ": the reply is not a JSON array", kProvider);
        for (const auto& item : j)
            each(item);
        token = r.header("X-Next-Token").value_or("");
        if (token.empty() || j.empty()) break;
    }
}

void Provider::remove_orphan(const std::string& create_token) noexcept {
    try {
        for (const auto& s : list_filtered({{kCreateKey, create_token}})) {
            log(kProvider, "removing sandbox " + s.id + ", made by a create whose reply was lost");
            kill(s.id);
        }
    } catch (const std::exception& e) {
        log(kProvider, std::string("could not look for the sandbox of a lost create: ") + e.what());
    }
}

void Provider::remember(const std::string& id, const nlohmann::json& sandbox) {
    Envd e;
    e.sandbox_id = id;
    std::string token = string_or(sandbox, "envdAccessToken");
    if (!token.empty()) e.headers.emplace_back("X-Access-Token", token);
    if (!settings_.sandbox_url.empty()) {
        e.base = settings_.sandbox_url;
        e.headers.emplace_back("E2b-Sandbox-Id", id);
        e.headers.emplace_back("E2b-Sandbox-Port", kEnvdPort);
    } else {
        std::string domain = string_or(sandbox, "domain", settings_.domain);
        e.base = std::string("https://") + kEnvdPort + "-" + id + "." + domain;
    }
    std::lock_guard lock(mutex_);
    envd_cache_[id] = std::move(e);
}

Envd Provider::envd(std::string_view id) {
    {
        std::lock_guard lock(mutex_);
        if (auto it = envd_cache_.find(id); it != envd_cache_.end()) return it->second;
    }
    std::string what = "look up sandbox " + std::string(id);
    auto r = api("GET", "/sandboxes/" + http::url_encode(id), nullptr, what);
    if (r.status == 404) throw Error(ErrorKind::not_found, "no sandbox " + std::string(id), kProvider);
    http::check(r, what, kProvider);
    nlohmann::json j = parse_body(r, what);
    std::string state = string_or(j, "state", "running");
    if (state == "paused")
        throw Error(ErrorKind::conflict,
                    "sandbox " + std::string(id) + " is paused (resume it first: sbox resume e2b/" +
                        std::string(id) + ")",
                    kProvider);
    remember(std::string(id), j);
    std::lock_guard lock(mutex_);
    return envd_cache_.at(std::string(id));
}

nlohmann::json Provider::about() const {
    nlohmann::json j = {{"api_url", settings_.api_url}, {"domain", settings_.domain}};
    if (!settings_.sandbox_url.empty()) j["sandbox_url"] = settings_.sandbox_url;
    std::lock_guard lock(mutex_);
    if (!envd_version_.empty()) j["envd_version"] = envd_version_;
    return j;
}

SandboxInfo Provider::info_from(const nlohmann::json& j) const {
    SandboxInfo info;
    info.provider = kProvider;
    info.id = string_or(j, "sandboxID");
    info.status = string_or(j, "state", "running");
    std::string alias = string_or(j, "alias");
    info.image = alias.empty() ? string_or(j, "templateID") : alias;
    info.created_at = parse_time(j.value("startedAt", nlohmann::json())).value_or(0);
    info.expires_at = parse_time(j.value("endAt", nlohmann::json()));
    if (auto md = j.find("metadata"); md != j.end() && md->is_object())
        for (auto& [k, v] : md->items()) {
            if (!v.is_string()) continue;
            if (k == kNameKey)
                info.name = v.get<std::string>();
            else if (k != kTimeoutKey && k != kCreateKey)
                info.labels[k] = v.get<std::string>();
        }
    nlohmann::json d = nlohmann::json::object();
    for (const char* key : {"templateID", "alias", "cpuCount", "memoryMB", "diskSizeMB", "envdVersion",
                            "domain", "allowInternetAccess", "network", "lifecycle"})
        if (auto it = j.find(key); it != j.end() && !it->is_null()) d[key] = *it;
    if (auto md = j.find("metadata"); md != j.end() && md->contains(kTimeoutKey))
        d["timeout_seconds"] = (*md)[kTimeoutKey];
    info.details = std::move(d);
    return info;
}

SandboxInfo Provider::create(const CreateSpec& spec) {
    require_key();
    if (!spec.name.empty()) {
        for (const auto& other : list_filtered({{kNameKey, spec.name}}))
            if (other.name == spec.name)
                throw Error(ErrorKind::conflict,
                            "the name '" + spec.name + "' is already used by e2b/" + other.id +
                                " (choose another, or remove it with sbox kill e2b/" + other.id + ")",
                            kProvider);
    }
    int timeout = kDefaultTimeoutSeconds;
    if (spec.lifetime) {
        auto ms = spec.lifetime->count();
        timeout = static_cast<int>(std::max<std::int64_t>(1, (ms + 999) / 1000));
    }
    nlohmann::json metadata = nlohmann::json::object();
    for (const auto& [k, v] : spec.labels)
        metadata[k] = v;
    if (!spec.name.empty()) metadata[kNameKey] = spec.name;
    metadata[kTimeoutKey] = std::to_string(timeout);
    const std::string token = random_token(20);
    metadata[kCreateKey] = token;
    nlohmann::json env = nlohmann::json::object();
    for (const auto& [k, v] : spec.env)
        env[k] = v;
    // A snapshot is a template: its id goes where a template's name would (a name is resolved first).
    std::string tmpl = spec.image.empty() ? "base" : spec.image;
    if (!spec.snapshot.empty()) {
        auto snap = get_snapshot(spec.snapshot);
        if (!snap)
            throw Error(ErrorKind::not_found,
                        "no snapshot '" + spec.snapshot + "' (see sbox snapshot ls -p e2b)", kProvider);
        tmpl = snap->id;
    }
    nlohmann::json body = {{"templateID", tmpl}, {"timeout", timeout},
                           {"envVars", env},     {"metadata", metadata},
                           {"autoPause", false}, {"allow_internet_access", spec.network != "none"}};

    std::string what = "create a sandbox from template '" + tmpl + "'";
    // A create is not idempotent: the client repeats it only when the service says so (429/503 with
    // Retry-After), never after a transport failure, which may have created a sandbox already.
    auto r = api("POST", "/v2/sandboxes", &body, what);
    // No reply, or one we cannot read: the service may have made the sandbox all the same.
    const bool reply_lost =
        r.transport_error && r.transport_error->kind != http::TransportError::Kind::connect;
    if (reply_lost || (r.ok() && !nlohmann::json::accept(r.body))) remove_orphan(token);
    if (r.status == 404 ||
        (r.status == 400 && http::message_from_body(r.body).find("emplate") != std::string::npos)) {
        std::string msg = http::message_from_body(r.body);
        throw Error(ErrorKind::not_found,
                    what + ": " + (msg.empty() ? "no such template" : msg) + " (HTTP " +
                        std::to_string(r.status) + "; see your templates with `e2b template list`)",
                    kProvider);
    }
    http::check(r, what, kProvider);
    nlohmann::json j = parse_body(r, what);
    std::string id = string_or(j, "sandboxID");
    if (id.empty())
        throw Error(ErrorKind::internal, what + ": the service's reply has no sandboxID", kProvider);
    remember(id, j);

    SandboxInfo info;
    info.provider = kProvider;
    info.id = id;
    info.name = spec.name;
    info.status = "running";
    std::string alias = string_or(j, "alias");
    info.image = alias.empty() ? string_or(j, "templateID", tmpl) : alias;
    info.created_at = now_seconds();
    info.expires_at = info.created_at + timeout;
    info.labels = spec.labels;
    {
        std::lock_guard lock(mutex_);
        envd_version_ = string_or(j, "envdVersion");
    }
    info.details = {{"templateID", string_or(j, "templateID", tmpl)},
                    {"envdVersion", string_or(j, "envdVersion")},
                    {"timeout_seconds", timeout}};
    return info;
}

std::vector<SandboxInfo> Provider::list() {
    return list_filtered({});
}

std::vector<SandboxInfo> Provider::list_filtered(const Labels& only) {
    std::string query = "?state=running,paused&limit=100";
    if (!only.empty()) {
        // The SDK's form: metadata=<urlencoded "k=v&k2=v2">, each key and value form-encoded within.
        std::string md;
        for (const auto& [k, v] : only)
            md += (md.empty() ? "" : "&") + http::url_encode(k) + "=" + http::url_encode(v);
        query += "&metadata=" + http::url_encode(md);
    }
    std::vector<SandboxInfo> out;
    for_each_listed("/v2/sandboxes" + query, "list sandboxes",
                    [&](const nlohmann::json& s) { out.push_back(info_from(s)); });
    return out;
}

std::optional<SandboxInfo> Provider::get(std::string_view id_or_name) {
    require_key();
    if (looks_like_id(id_or_name)) {
        std::string what = "look up sandbox " + std::string(id_or_name);
        auto r = api("GET", "/sandboxes/" + http::url_encode(id_or_name), nullptr, what);
        if (r.status != 404) {
            http::check(r, what, kProvider);
            nlohmann::json j = parse_body(r, what);
            if (string_or(j, "state", "running") != "paused") remember(string_or(j, "sandboxID"), j);
            return info_from(j);
        }
    }
    std::optional<SandboxInfo> found;
    for (auto& s : list_filtered({{kNameKey, std::string(id_or_name)}})) {
        if (s.name != id_or_name) continue;
        if (found)
            throw Error(ErrorKind::conflict,
                        "the name '" + std::string(id_or_name) + "' is used by e2b/" + found->id +
                            " and e2b/" + s.id + " (use the reference)",
                        kProvider);
        found = std::move(s);
    }
    return found;
}

void Provider::kill(std::string_view id) {
    std::string what = "remove sandbox " + std::string(id);
    auto r = api("DELETE", "/sandboxes/" + http::url_encode(id), nullptr, what);
    {
        std::lock_guard lock(mutex_);
        if (auto it = envd_cache_.find(id); it != envd_cache_.end()) envd_cache_.erase(it);
    }
    // A DELETE is retried after a lost reply; a 404 then means the first attempt did the work.
    if (r.status == 404 && r.attempts > 1) return;
    if (r.status == 404) throw Error(ErrorKind::not_found, "no sandbox " + std::string(id), kProvider);
    http::check(r, what, kProvider);
}

void Provider::pause(std::string_view id) {
    std::string what = "pause sandbox " + std::string(id);
    nlohmann::json body = nlohmann::json::object();
    auto r =
        api("POST", "/sandboxes/" + http::url_encode(id) + "/pause", &body, what, http::Retry::idempotent);
    if (r.status == 404) throw Error(ErrorKind::not_found, "no sandbox " + std::string(id), kProvider);
    if (r.status == 409)
        throw Error(ErrorKind::conflict, "sandbox " + std::string(id) + " is already paused", kProvider);
    http::check(r, what, kProvider);
    std::lock_guard lock(mutex_);
    if (auto it = envd_cache_.find(id); it != envd_cache_.end()) envd_cache_.erase(it);
}

void Provider::resume(std::string_view id) {
    std::string what = "resume sandbox " + std::string(id);
    auto r = api("GET", "/sandboxes/" + http::url_encode(id), nullptr, what);
    if (r.status == 404) throw Error(ErrorKind::not_found, "no sandbox " + std::string(id), kProvider);
    http::check(r, what, kProvider);
    nlohmann::json j = parse_body(r, what);
    if (string_or(j, "state", "running") != "paused")
        throw Error(ErrorKind::conflict, "sandbox " + std::string(id) + " is not paused", kProvider);
    // Resuming sets a new lifetime, counted from now: the one it was created with.
    int timeout = kDefaultTimeoutSeconds;
    if (auto md = j.find("metadata"); md != j.end() && md->is_object() && md->contains(kTimeoutKey)) {
        try {
            timeout = std::max(1, std::stoi((*md)[kTimeoutKey].get<std::string>()));
        } catch (const std::exception&) {
        }
    }
    nlohmann::json body = {{"timeout", timeout}};
    r = api("POST", "/v2/sandboxes/" + http::url_encode(id) + "/connect", &body, what,
            http::Retry::idempotent);
    if (r.status == 404) throw Error(ErrorKind::not_found, "no sandbox " + std::string(id), kProvider);
    http::check(r, what, kProvider);
    remember(std::string(id), parse_body(r, what));
}

namespace {

SnapshotInfo snapshot_from(const nlohmann::json& j) {
    SnapshotInfo s;
    s.provider = kProvider;
    s.id = string_or(j, "snapshotID");
    if (auto names = j.find("names");
        names != j.end() && names->is_array() && !names->empty() && names->front().is_string())
        s.name = names->front().get<std::string>();
    s.details = j;
    return s;
}

} // namespace

SnapshotInfo Provider::create_snapshot(std::string_view id, const std::string& name) {
    std::string what = "snapshot sandbox " + std::string(id);
    nlohmann::json body = nlohmann::json::object();
    if (!name.empty()) body["name"] = name;
    auto r = api("POST", "/sandboxes/" + http::url_encode(id) + "/snapshots", &body, what);
    if (r.status == 404) throw Error(ErrorKind::not_found, "no sandbox " + std::string(id), kProvider);
    http::check(r, what, kProvider);
    SnapshotInfo s = snapshot_from(parse_body(r, what));
    s.source = std::string(kProvider) + "/" + std::string(id);
    s.created_at = now_seconds();
    return s;
}

std::vector<SnapshotInfo> Provider::list_snapshots() {
    std::vector<SnapshotInfo> out;
    for_each_listed("/snapshots?limit=100", "list snapshots",
                    [&](const nlohmann::json& s) { out.push_back(snapshot_from(s)); });
    return out;
}

std::optional<SnapshotInfo> Provider::get_snapshot(std::string_view ref) {
    std::optional<SnapshotInfo> found;
    for (auto& s : list_snapshots()) {
        bool match = s.id == ref || s.name == ref;
        // "name" also matches "team/name:tag", as E2B's own name filter does.
        if (!match && !s.name.empty()) {
            std::string_view n = s.name;
            if (auto slash = n.rfind('/'); slash != std::string_view::npos) n.remove_prefix(slash + 1);
            if (n == ref) match = true;
            if (auto colon = n.find(':'); colon != std::string_view::npos && n.substr(0, colon) == ref)
                match = true;
        }
        if (!match) continue;
        if (found && found->id != s.id)
            throw Error(ErrorKind::conflict,
                        "'" + std::string(ref) + "' names snapshots " + found->id + " and " + s.id +
                            " (use the id)",
                        kProvider);
        found = std::move(s);
    }
    return found;
}

void Provider::delete_snapshot(std::string_view snapshot_id) {
    std::string what = "remove snapshot " + std::string(snapshot_id);
    auto r = api("DELETE", "/templates/" + http::url_encode(snapshot_id), nullptr, what);
    if (r.status == 404 && r.attempts > 1) return;
    if (r.status == 404)
        throw Error(ErrorKind::not_found, "no snapshot " + std::string(snapshot_id), kProvider);
    http::check(r, what, kProvider);
}

} // namespace sbox::e2b

namespace {

sbox::Provider* make_provider(const sbox::Config* config) {
    static const sbox::Config empty;
    return new sbox::e2b::Provider(config != nullptr ? *config : empty);
}

} // namespace

extern "C" __attribute__((visibility("default"))) const sbox_module_info_v1* sbox_module_v1(void) {
    static const sbox_module_info_v1 info{"e2b", SBOX_MODULE_ABI_VERSION, &make_provider, nullptr};
    return &info;
}
