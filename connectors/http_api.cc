#include "connectors/http_api.h"

#include <google/protobuf/util/json_util.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <strings.h>

#include <algorithm>
#include <set>
#include <array>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "connectors/command_codec.h"
#include "connectors/http_server.h"
#include "connectors/url.h"
#include "graph/json.h"
#include "graph/log.h"
#include "graph/build.h"
#include "graph/domain.h"
#include "graph/envelope.h"

namespace orderflow::connectors {
namespace {

using http::Request;
using http::Response;
using http::Responder;

constexpr const char* kJson = "application/json";
constexpr uint64_t kMaxPage = 1000;             // events per page, default and maximum
constexpr size_t kMaxPageBytes = 1 << 20;       // ... and at most about this much JSON
constexpr size_t kMinTokenChars = 16;

// ---- listen addresses --------------------------------------------------------------

struct ListenAddress {
  bool tls = false;
  std::string host;  // without brackets
  uint16_t port = 0;
};

Result<ListenAddress> parse_listen(const std::string& listen) {
  ListenAddress a;
  std::string rest = listen;
  if (rest.rfind("https://", 0) == 0) {
    a.tls = true;
    rest = rest.substr(8);
  } else if (rest.rfind("http://", 0) == 0) {
    rest = rest.substr(7);
  }
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return Status::invalid_argument("listen address needs host:port, got '" + listen + "'");
  a.host = rest.substr(0, colon);
  const std::string port = rest.substr(colon + 1);
  if (a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']') a.host = a.host.substr(1, a.host.size() - 2);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) > 65535)
    return Status::invalid_argument("listen port must be a number up to 65535, got '" + port + "'");
  a.port = static_cast<uint16_t>(std::stoul(port));
  const bool ok_host = !a.host.empty() && std::all_of(a.host.begin(), a.host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':';
  });
  if (!ok_host) return Status::invalid_argument("not a valid listen address: '" + listen + "'");
  return a;
}

// ---- text safety -------------------------------------------------------------------

// JSON that is also inert as HTML: '<', '>' and '&' only occur inside JSON strings, where
// \u003c and friends mean the same characters.
std::string html_safe_json(std::string json) {
  if (json.find_first_of("<>&") == std::string::npos) return json;
  std::string out;
  out.reserve(json.size() + 32);
  for (char c : json) {
    if (c == '<') out += "\\u003c";
    else if (c == '>') out += "\\u003e";
    else if (c == '&') out += "\\u0026";
    else out += c;
  }
  return out;
}

// Store messages may name files ("IO error: /var/lib/orderflow/000012.log: ..."); clients
// get "[path]" instead (the log keeps the detail).
std::string redact_paths(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const bool starts = s[i] == '/' && i + 1 < s.size() && s[i + 1] != ' ' && s[i + 1] != '/' &&
                        (i == 0 || std::string_view(" \t'\"(=[,").find(s[i - 1]) != std::string_view::npos);
    if (!starts) {
      out += s[i++];
      continue;
    }
    size_t j = i;
    while (j < s.size() && std::string_view(" \t'\")],").find(s[j]) == std::string_view::npos) ++j;
    if (j > i + 1 && s[j - 1] == ':') --j;
    out += "[path]";
    i = j;
  }
  return out;
}

std::string error_body(const std::string& code, const std::string& message) {
  JsonWriter w;
  w.begin_object().key("error").begin_object().field("code", code).field("message", message).end_object().end_object();
  return html_safe_json(w.take());
}

Response json_response(int status, std::string body, int retry_after = 0) {
  Response r;
  r.status = status;
  r.content_type = kJson;
  r.body = html_safe_json(std::move(body));
  if (retry_after > 0) r.fields.emplace_back("Retry-After", std::to_string(retry_after));
  return r;
}

Response error_response(int status, const std::string& code, const std::string& message, int retry_after = 0) {
  Response r = json_response(status, "", retry_after);
  r.body = error_body(code, message);
  return r;
}

// ---- strict parsing of URL parts ---------------------------------------------------

// Non-empty path segments, percent-decoded; nullopt on a broken escape.
std::optional<std::vector<std::string>> path_segments(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= path.size()) {
    const size_t j = std::min(path.find('/', i), path.size());
    if (j > i) {
      auto seg = percent_decode(path.substr(i, j - i), false);
      if (!seg) return std::nullopt;
      out.push_back(std::move(*seg));
    }
    i = j + 1;
  }
  return out;
}

// Query parameters; an error for a broken escape or a parameter given twice.
Result<std::map<std::string, std::string>> parse_query(std::string_view q) {
  std::map<std::string, std::string> out;
  size_t i = 0;
  while (i < q.size()) {
    const size_t j = std::min(q.find('&', i), q.size());
    const std::string_view part = q.substr(i, j - i);
    i = j + 1;
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    auto key = percent_decode(part.substr(0, eq), true);
    auto value = percent_decode(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1), true);
    if (!key || !value) return Status::invalid_argument("malformed query string");
    if (!out.emplace(std::move(*key), std::move(*value)).second)
      return Status::invalid_argument("query parameter given more than once");
  }
  return out;
}

// Only digits, no sign, no spaces, no suffix, at most 18 of them (no overflow).
bool parse_count(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos) return false;
  *out = std::stoull(s);
  return true;
}

// ---- authentication ----------------------------------------------------------------

enum class Role { kNone = 0, kRead = 1, kWrite = 2 };

using Digest = std::array<unsigned char, 32>;

Digest sha256(std::string_view s) {
  Digest d{};
  unsigned int n = 0;
  EVP_Digest(s.data(), s.size(), d.data(), &n, EVP_sha256(), nullptr);
  return d;
}

// Tokens are kept as SHA-256 digests and compared digest to digest in constant time, so
// neither the token's bytes nor its length show in the time an answer takes.
class Tokens {
 public:
  Status load(const HttpServeOptions& o) {
    if (!o.token_file.empty()) {
      std::ifstream in(o.token_file);
      if (!in) return Status::invalid_argument("cannot read the token file " + o.token_file);
      std::string line;
      int n = 0;
      while (std::getline(in, line)) {
        ++n;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const auto first = line.find_first_not_of(" \t");
        if (first == std::string::npos || line[first] == '#') continue;
        const auto sp = line.find_first_of(" \t", first);
        const auto tok = sp == std::string::npos ? sp : line.find_first_not_of(" \t", sp);
        const std::string role = line.substr(first, sp - first);
        const std::string token = tok == std::string::npos ? "" : line.substr(tok, line.find_last_not_of(" \t") + 1 - tok);
        const std::string where = o.token_file + ":" + std::to_string(n);
        if (auto s = add(role, token, where); !s) return s;
      }
    }
    for (const auto& [var, role] : {std::pair{"ORDERFLOW_WRITE_TOKEN", "write"}, std::pair{"ORDERFLOW_READ_TOKEN", "read"}}) {
      const char* v = std::getenv(var);
      if (v != nullptr && *v != '\0')
        if (auto s = add(role, v, var); !s) return s;
    }
    return Status::ok();
  }

  bool empty() const { return entries_.empty(); }

  // The role of a presented token (kNone if unknown). Looks at every entry.
  Role role_of(std::string_view presented) const {
    const Digest d = sha256(presented);
    int best = 0;
    for (const auto& e : entries_) {
      const int match = CRYPTO_memcmp(d.data(), e.digest.data(), d.size()) == 0;
      const int r = static_cast<int>(e.role) * match;
      best = std::max(best, r);
    }
    return static_cast<Role>(best);
  }

 private:
  struct Entry {
    Role role;
    Digest digest;
  };

  Status add(const std::string& role, const std::string& token, const std::string& where) {
    Role r;
    if (role == "read") r = Role::kRead;
    else if (role == "write") r = Role::kWrite;
    else return Status::invalid_argument(where + ": the role must be 'read' or 'write'");
    if (token.size() < kMinTokenChars || token.find_first_of(" \t") != std::string::npos)
      return Status::invalid_argument(where + ": a token needs at least " + std::to_string(kMinTokenChars) +
                                      " characters and no spaces");
    entries_.push_back({r, sha256(token)});
    return Status::ok();
  }

  std::vector<Entry> entries_;
};

// ---- replies -----------------------------------------------------------------------

// One request being answered: who asked (for the debug log) and how to answer.
struct Exchange {
  std::string method;
  std::string path;
  std::string remote;
  std::shared_ptr<Responder> responder;
};

// `--log-level debug`: one line per answered request.
void log_request(const std::string& method, const std::string& path, const std::string& remote, int status) {
  if (!log::enabled(log::Level::kDebug)) return;
  log::debug("http request",
             {{"method", method}, {"path", path}, {"status", std::to_string(status)}, {"remote", remote}});
}

void reply(const Exchange& x, Response r) {
  log_request(x.method, x.path, x.remote, r.status);
  x.responder->send(std::move(r));
}

void reply_error(const Exchange& x, int status, const std::string& code, const std::string& message,
                 int retry_after = 0) {
  reply(x, error_response(status, code, message, retry_after));
}

// The one place pipeline statuses become HTTP statuses.
int http_status_of(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kConflict: return 409;
    case StatusCode::kRejected: return 422;
    case StatusCode::kUnavailable:
    case StatusCode::kIoError: return 503;
    case StatusCode::kInternal: return 500;
  }
  return 500;
}

void write_recorded(const Domain& domain, JsonWriter& w, const RecordedEvent& r) {
  MessagePtr e = domain.new_event();
  w.begin_object().field("stream", r.stream).field("version", r.version).field("position", r.position);
  w.field("commandId", r.command_id).field("committedAtUs", r.committed_at_us);
  if (e->ParseFromString(r.payload)) {
    w.field("type", domain.event_name(*e)).key("data").raw(message_json(*e));
  } else {
    w.field("type", "undecodable");
  }
  w.end_object();
}

// ---- routes ------------------------------------------------------------------------

enum class Route { kNone, kCommands, kHealth, kReady, kPrometheus, kMetrics, kGraph, kQuery, kEvents, kAdmin };

struct Routed {
  Route route = Route::kNone;
  std::string id;  // the entity's id (e.g. an order id) or stream, decoded
  bool bad_escape = false;
  std::string collection;  // kQuery: the domain's collection ("orders")
  std::vector<std::string> admin;  // kAdmin: the segments after /api/v1/admin
};

Routed route_of(const std::string& path) {
  Routed r;
  if (path == "/api/v1/commands") r.route = Route::kCommands;
  else if (path == "/healthz") r.route = Route::kHealth;
  else if (path == "/readyz") r.route = Route::kReady;
  else if (path == "/metrics") r.route = Route::kPrometheus;
  else if (path == "/api/v1/metrics") r.route = Route::kMetrics;
  else if (path == "/api/v1/graph") r.route = Route::kGraph;
  if (r.route != Route::kNone) return r;
  auto segs = path_segments(path);
  if (!segs) {
    r.bad_escape = true;
    return r;
  }
  const auto& s = *segs;
  if (s.size() >= 4 && s[0] == "api" && s[1] == "v1" && s[2] == "admin") {
    r.route = Route::kAdmin;
    r.admin.assign(s.begin() + 3, s.end());
    return r;
  }
  if (s.size() >= 3 && s[0] == "api" && s[1] == "v1") {
    if (s.size() == 5 && s[2] == "streams" && s[4] == "events") r = {Route::kEvents, s[3], false, "", {}};
    else if (s.size() == 4 && s[2] != "streams") r = {Route::kQuery, s[3], false, s[2], {}};
  }
  return r;
}

// Whether `path` (segments after /api/v1/admin) fits `pattern` ("*" = any one segment);
// *params gets what the stars matched.
bool admin_path_matches(const std::vector<std::string>& pattern, const std::vector<std::string>& path,
                        std::vector<std::string>* params) {
  if (pattern.size() != path.size()) return false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == "*") {
      if (params != nullptr) params->push_back(path[i]);
    } else if (pattern[i] != path[i]) {
      return false;
    }
  }
  return true;
}

class HttpSourceNode final : public RuntimeNode {
 public:
  HttpSourceNode(Pipeline& p, const graph::NodeDef& def, const HttpSourceOptions& o, const Domain& domain,
                 ListenAddress address, HttpApiContext ctx)
      : RuntimeNode(def.id, def.kind, p.metrics().probe(def.id, def.kind)),
        pipeline_(p),
        domain_(domain),
        queries_(domain.queries()),
        address_(std::move(address)),
        ctx_(std::move(ctx)),
        max_body_(static_cast<size_t>(o.max_body_bytes)),
        command_timeout_ms_(o.command_timeout_ms) {}

  ~HttpSourceNode() override {
    close();
    stop_admin();
    stop_deadlines();
  }

  void stop() override { stop_admin(); }

  Status connect_to(RuntimeNode& to) override {
    auto sink = command_sink_of(*this, to);
    if (!sink) return sink.status();
    sink_ = *sink;
    return Status::ok();
  }

  Status start() override {
    const HttpServeOptions& o = ctx_.options;
    if (auto s = tokens_.load(o); !s) return s;
    http::ServerOptions so;
    so.host = address_.host;
    so.port = address_.port;
    so.max_body_bytes = max_body_;
    so.io_threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
    if (address_.tls) {
      if (o.tls_cert.empty() || o.tls_key.empty())
        return Status::invalid_argument("an https:// listen address needs --tls-cert and --tls-key");
      so.tls_cert_file = o.tls_cert;
      so.tls_key_file = o.tls_key;
      so.tls_client_ca_file = o.tls_client_ca;
    } else if (!o.tls_cert.empty() || !o.tls_key.empty() || !o.tls_client_ca.empty()) {
      return Status::invalid_argument("TLS files are given but the listen address is not https://");
    }
    for (const auto& [name, v] : o.limits) {
      const auto ms = std::chrono::milliseconds(v);
      if (name == "max_connections") so.max_connections = static_cast<size_t>(v);
      else if (name == "max_header_bytes") so.max_header_bytes = static_cast<size_t>(v);
      else if (name == "max_header_fields") so.max_header_fields = static_cast<size_t>(v);
      else if (name == "header_timeout_ms") so.header_timeout = ms;
      else if (name == "body_timeout_ms") so.body_timeout = ms;
      else if (name == "idle_timeout_ms") so.idle_timeout = ms;
      else if (name == "write_timeout_ms") so.write_timeout = ms;
      else if (name == "io_threads") so.io_threads = static_cast<int>(v);
    }
    const std::string where = std::string(address_.tls ? "https://" : "http://") + address_.host + ":" +
                              std::to_string(address_.port);
    if (tokens_.empty()) {
      if (http::is_loopback_host(address_.host)) {
        log::info("authentication off: listening on a loopback address without tokens", {{"listen", where}});
      } else if (o.insecure_no_auth) {
        log::warn("authentication off on a non-loopback address (--insecure-no-auth)", {{"listen", where}});
      } else {
        return Status::invalid_argument(
            "refusing to serve " + where +
            " without authentication: give --token-file or ORDERFLOW_WRITE_TOKEN / ORDERFLOW_READ_TOKEN (or "
            "--insecure-no-auth)");
      }
    }
    server_ = std::make_unique<http::Server>(
        so, [this](const Request& req) { return check(req); },
        [this](Request&& req, std::shared_ptr<Responder> r) { handle(std::move(req), std::move(r)); });
    if (auto s = server_->start(); !s) {
      server_.reset();
      return s;
    }
    deadline_thread_ = std::thread([this] { answer_deadlines(); });
    ready_ = true;
    return Status::ok();
  }

  void stop_intake() override { close(); }

 private:
  void close() {
    ready_ = false;
    if (server_) server_->stop();
  }

  // ---- deadlines: every command is answered by its deadline --------------------------
  // A command without an outcome at its deadline gets 504 from this thread; the outcome,
  // if one comes later, is then not sent (the flag decides who answers). The pipeline
  // drops the command if it is still undecided or unwritten by then (Envelope::deadline_ns).
  struct Waiting {
    Exchange x;
    std::shared_ptr<std::atomic<bool>> answered;
    int64_t timeout_ms = 0;
  };
  using DeadlineKey = std::pair<uint64_t, uint64_t>;  // deadline (steady ns), sequence

  DeadlineKey watch(uint64_t deadline_ns, const Exchange& x, std::shared_ptr<std::atomic<bool>> answered,
                    int64_t timeout_ms) {
    std::lock_guard lock(deadlines_mu_);
    DeadlineKey key{deadline_ns, ++deadline_seq_};
    const bool earliest = waiting_.empty() || key < waiting_.begin()->first;
    waiting_.emplace(key, Waiting{x, std::move(answered), timeout_ms});
    if (earliest) deadlines_cv_.notify_one();
    return key;
  }

  void unwatch(const DeadlineKey& key) {
    std::lock_guard lock(deadlines_mu_);
    waiting_.erase(key);
  }

  void answer_deadlines() {
    name_thread("of-deadlines");
    std::unique_lock lock(deadlines_mu_);
    while (!deadlines_stopping_) {
      if (waiting_.empty()) {
        deadlines_cv_.wait(lock);
        continue;
      }
      const uint64_t now = steady_ns();
      const uint64_t next = waiting_.begin()->first.first;
      if (next > now) {
        deadlines_cv_.wait_for(lock, std::chrono::nanoseconds(next - now));
        continue;
      }
      Waiting w = std::move(waiting_.begin()->second);
      waiting_.erase(waiting_.begin());
      lock.unlock();
      if (!w.answered->exchange(true)) {
        probe().add_error("504 deadline passed");
        probe().set_gauge("deadline_answers", static_cast<double>(deadline_answers_.fetch_add(1) + 1));
        reply_error(w.x, 504, "deadline_exceeded",
                    "no outcome within " + std::to_string(w.timeout_ms) +
                        " ms; a command not decided by then is never executed. Send it again with the same "
                        "commandId to learn its outcome",
                    1);
      }
      w = Waiting{};  // the responder goes here, not under the lock
      lock.lock();
    }
  }

  void stop_deadlines() {
    {
      std::lock_guard lock(deadlines_mu_);
      deadlines_stopping_ = true;
    }
    deadlines_cv_.notify_all();
    if (deadline_thread_.joinable()) deadline_thread_.join();
  }

  // The command's timeout: the node's command_timeout_ms, or less if the client asks.
  Result<int64_t> timeout_of(const Request& req) const {
    const std::string* v = req.field("X-Timeout-Ms");
    if (v == nullptr) return command_timeout_ms_;
    uint64_t ms = 0;
    if (!parse_count(*v, &ms) || ms < 1)
      return Status::invalid_argument("X-Timeout-Ms must be a positive number of milliseconds");
    return std::min(static_cast<int64_t>(ms), command_timeout_ms_);
  }

  // ---- before the body: method, route, authentication, content type ------------------

  std::optional<Response> check(const Request& req) {
    auto refuse = [&](Response r) {
      log_request(req.method, req.path, req.remote, r.status);
      return std::optional<Response>(std::move(r));
    };
    const Routed r = route_of(req.path);
    if (r.bad_escape) return refuse(error_response(400, "bad_request", "malformed percent-encoding in the path"));
    if (r.route == Route::kNone) return refuse(error_response(404, "not_found", "no such resource"));
    const bool is_command = r.route == Route::kCommands;
    std::string allowed = is_command ? "POST" : "GET";
    bool needs_write = is_command;
    if (r.route == Route::kAdmin) {
      // The route of that path for this method, else the methods the path has (405).
      std::string methods;
      const AdminRoute* found = nullptr;
      for (const auto& a : ctx_.admin_routes) {
        if (!admin_path_matches(a.path, r.admin, nullptr)) continue;
        if (a.method == req.method) found = &a;
        if (methods.find(a.method) == std::string::npos) methods += (methods.empty() ? "" : ", ") + a.method;
      }
      if (methods.empty()) return refuse(error_response(404, "not_found", "no such resource"));
      allowed = found != nullptr ? req.method : methods;
      needs_write = req.method != "GET";
    }
    if (req.method != allowed) {
      Response resp = error_response(405, "method_not_allowed", std::string("use ") + allowed);
      resp.fields.emplace_back("Allow", allowed);
      return refuse(std::move(resp));
    }
    if (r.route != Route::kHealth && r.route != Route::kReady && !tokens_.empty()) {
      const std::string* auth = req.field("Authorization");
      std::string_view token;
      if (auth != nullptr && auth->size() > 7 && strncasecmp(auth->c_str(), "Bearer ", 7) == 0)
        token = std::string_view(*auth).substr(7);
      const Role role = token.empty() ? Role::kNone : tokens_.role_of(token);
      if (role == Role::kNone) {
        Response resp = error_response(401, "unauthorized",
                                       token.empty() ? "a bearer token is required" : "the bearer token is not valid");
        resp.fields.emplace_back("WWW-Authenticate", token.empty() ? R"(Bearer realm="orderflow")"
                                                                   : R"(Bearer realm="orderflow", error="invalid_token")");
        return refuse(std::move(resp));
      }
      if (needs_write && role != Role::kWrite) {
        Response resp = error_response(403, "forbidden",
                                       is_command ? "this token may read but not send commands"
                                                  : "this token may read but not change anything (admin POST needs the "
                                                    "write role)");
        resp.fields.emplace_back("WWW-Authenticate", R"(Bearer realm="orderflow", error="insufficient_scope", scope="write")");
        return refuse(std::move(resp));
      }
    }
    if (is_command || (r.route == Route::kAdmin && req.has_body)) {
      const std::string* ctype = req.field("Content-Type");
      if (ctype == nullptr || http::media_type(*ctype) != kJson) {
        probe().add_in();
        probe().add_error("415 unsupported content type");  // not the client's text: metrics show it
        return refuse(error_response(415, "unsupported_media_type", "Content-Type must be application/json"));
      }
    }
    return std::nullopt;
  }

  // ---- with the body -----------------------------------------------------------------

  void handle(Request&& req, std::shared_ptr<Responder> responder) {
    Exchange x{req.method, req.path, req.remote, std::move(responder)};
    try {
      const Routed r = route_of(req.path);
      switch (r.route) {
        case Route::kCommands: return post_command(x, req);
        case Route::kHealth: return reply(x, json_response(200, R"({"status":"ok"})"));
        case Route::kReady: return readiness(x);
        case Route::kPrometheus: {
          Response resp;
          resp.content_type = "text/plain; version=0.0.4";
          resp.body = pipeline_.metrics().to_prometheus();
          return reply(x, std::move(resp));
        }
        case Route::kMetrics: return reply(x, json_response(200, pipeline_.metrics().to_json()));
        case Route::kGraph: return reply(x, json_response(200, ctx_.graph_json));
        case Route::kQuery: return query(x, r);
        case Route::kEvents: return get_events(x, req, r.id);
        case Route::kAdmin: return admin(x, req, r);
        case Route::kNone: break;
      }
      reply_error(x, 404, "not_found", "no such resource");
    } catch (const std::exception& ex) {
      probe().add_error("500 internal error");
      log::error("http request failed", {{"path", x.path}, {"error", ex.what()}});
      reply_error(x, 500, "internal", "internal error; see the server log");
    }
  }

  // ---- admin: handlers the server registered, run one at a time on the admin thread ----

  struct AdminJob {
    Exchange x;
    AdminRequest request;
    AdminHandler handler;
  };

  void admin(const Exchange& x, const Request& req, const Routed& r) {
    const AdminRoute* route = nullptr;
    AdminRequest a;
    for (const auto& candidate : ctx_.admin_routes) {
      if (candidate.method != req.method) continue;
      std::vector<std::string> params;
      if (!admin_path_matches(candidate.path, r.admin, &params)) continue;
      route = &candidate;
      a.params = std::move(params);
      break;
    }
    if (route == nullptr) return reply_error(x, 404, "not_found", "no such resource");
    auto query = parse_query(req.query);
    if (!query) return reply_error(x, 400, "bad_request", query.status().message());
    a.query = std::move(*query);
    a.body = req.body;
    if (!route->blocks) {
      const AdminJob job{x, std::move(a), route->handler};
      return run_admin_job(job);
    }
    {
      std::lock_guard lock(admin_mu_);
      if (admin_stopping_) return reply_error(x, 503, "not_ready", "stopping", 1);
      if (admin_queue_.size() >= kMaxAdminQueue)
        return reply_error(x, 503, "busy", "too many admin requests waiting; try again", 1);
      admin_queue_.push_back({x, std::move(a), route->handler});
      if (!admin_thread_.joinable()) admin_thread_ = std::thread([this] { run_admin(); });
    }
    admin_cv_.notify_one();
  }

  void run_admin() {
    name_thread("of-admin");
    std::unique_lock lock(admin_mu_);
    for (;;) {
      admin_cv_.wait(lock, [&] { return admin_stopping_ || !admin_queue_.empty(); });
      if (admin_queue_.empty()) return;  // stopping with nothing left
      AdminJob job = std::move(admin_queue_.front());
      admin_queue_.pop_front();
      lock.unlock();
      run_admin_job(job);
      job = AdminJob{};
      lock.lock();
    }
  }

  void run_admin_job(const AdminJob& job) {
    AdminReply out;
    try {
      out = job.handler(job.request);
    } catch (const std::exception& ex) {
      log::error("admin request failed", {{"path", job.x.path}, {"error", ex.what()}});
      out = AdminReply::fail(500, "internal error; see the server log");
    }
    if (out.status == 200) {
      reply(job.x, json_response(200, std::move(out.body)));
    } else {
      const char* code = out.status == 400   ? "bad_request"
                         : out.status == 404 ? "not_found"
                         : out.status == 409 ? "conflict"
                         : out.status == 502 ? "bad_gateway"
                         : out.status == 503 ? "unavailable"
                                             : "internal";
      reply_error(job.x, out.status, code, redact_paths(out.error), out.status == 503 ? 1 : 0);
    }
  }

  void stop_admin() {
    {
      std::lock_guard lock(admin_mu_);
      admin_stopping_ = true;
    }
    admin_cv_.notify_all();
    if (admin_thread_.joinable()) admin_thread_.join();
  }

  void readiness(const Exchange& x) {
    if (!ready_) return reply_error(x, 503, "not_ready", "stopping or starting", 1);
    if (ctx_.health) {
      if (Status s = ctx_.health(); !s) return reply_error(x, 503, "not_ready", redact_paths(s.message()), 1);
    }
    reply(x, json_response(200, R"({"status":"ready"})"));
  }

  // A store failure: the detail goes to the log (at most once a second), the client gets
  // a message without paths or internals.
  void store_failure(const Exchange& x, const Status& s, const char* what) {
    const uint64_t now = steady_ns();
    uint64_t last = last_store_log_ns_.load(std::memory_order_relaxed);
    if (now - last > 1000000000ull && last_store_log_ns_.compare_exchange_strong(last, now))
      log::warn("http: store error", {{"path", x.path}, {"error", s.to_string()}});
    const int code = http_status_of(s);
    reply_error(x, code == 404 ? 503 : code, "store_error", std::string(what) + " is unavailable; try again", 1);
  }

  void post_command(const Exchange& x, const Request& req) {
    probe().add_in();
    if (sink_ == nullptr) return reply_error(x, 503, "no_route", "this service takes no commands", 5);
    auto query = parse_query(req.query);
    if (!query) return reply_error(x, 400, "bad_request", query.status().message());
    bool wait = false;
    if (auto it = query->find("wait"); it != query->end()) {
      if (it->second != "committed") return reply_error(x, 400, "bad_request", "wait must be 'committed'");
      wait = true;
    }
    auto timeout = timeout_of(req);
    if (!timeout) return reply_error(x, 400, "bad_request", timeout.status().message());
    const uint64_t t0 = steady_ns();
    const int64_t timeout_ms = *timeout;
    auto decoded = decode_command(domain_, req.body, CommandFormat::kJson);
    if (!decoded) {
      probe().add_error("400 undecodable command");  // the parser's words may quote the client
      return reply_error(x, 400, "bad_request", decoded.status().message());
    }
    MessagePtr cmd = std::move(*decoded);
    const std::string command_id = domain_.command_id(*cmd);
    const uint64_t deadline = t0 + static_cast<uint64_t>(timeout_ms) * 1000000;
    auto answered = std::make_shared<std::atomic<bool>>(false);
    auto key = std::make_shared<DeadlineKey>();
    auto env = make_envelope(std::move(cmd), [this, x, wait, command_id, t0, answered, key](const Outcome& o) {
      unwatch(*key);
      if (!answered->exchange(true)) on_outcome(x, wait, command_id, o);
      if (NodeProbe::enabled()) probe().record_latency_us((steady_ns() - t0) / 1000);
      probe().add_out();
    });
    env->ingest_ns = t0;
    env->deadline_ns = deadline;
    // Watched before the submit: the outcome may come before submit() returns, and then
    // unwatch() must find the entry (the key is set before anyone can complete it).
    *key = watch(deadline, x, answered, timeout_ms);
    Status s = sink_->submit(env);
    if (!s) {
      unwatch(*key);
      if (answered->exchange(true)) return;
      probe().add_error(s.to_string());
      if (s.code() == StatusCode::kUnavailable) return reply_error(x, 429, "overloaded", redact_paths(s.message()), 1);
      return reply_error(x, http_status_of(s), status_code_name(s.code()), redact_paths(s.message()));
    }
  }

  void on_outcome(const Exchange& x, bool wait, const std::string& command_id, const Outcome& o) {
    if (!o.status.is_ok() && o.status.code() != StatusCode::kRejected) {
      const int code = http_status_of(o.status);
      if (o.status.code() == StatusCode::kIoError || o.status.code() == StatusCode::kInternal)
        return store_failure(x, o.status, "the event store");
      return reply_error(x, code, status_code_name(o.status.code()), redact_paths(o.status.message()),
                         code == 503 ? 1 : 0);
    }
    JsonWriter w;
    w.begin_object().field("commandId", command_id);
    if (o.status.code() == StatusCode::kRejected) {
      if (wait) return reply_error(x, 422, "rejected", o.status.message());
      w.field("status", "rejected").field("reason", o.status.message()).end_object();
      return reply(x, json_response(202, w.take()));
    }
    w.field("status", "committed").field("stream", o.result.stream).field("version", o.result.last_version);
    w.field("duplicate", o.duplicate);
    if (!wait) {
      w.end_object();
      return reply(x, json_response(202, w.take()));
    }
    w.field("firstVersion", o.result.first_version).field("position", o.result.last_position);
    w.key("events").begin_array();
    if (o.events != nullptr) {
      for (size_t i = 0; i < o.events->size(); ++i) {
        w.begin_object().field("version", o.result.first_version + i).field("position", o.result.first_position + i);
        const Message& e = *(*o.events)[i];
        w.field("type", domain_.event_name(e)).key("data").raw(message_json(e));
        w.end_object();
      }
    } else if (ctx_.events != nullptr) {  // a duplicate: the first result's events, from the store
      std::vector<RecordedEvent> evs;
      if (ctx_.events->read_stream(o.result.stream, o.result.first_version, &evs))
        for (const auto& r : evs)
          if (r.version <= o.result.last_version) write_recorded(domain_, w, r);
    }
    w.end_array().end_object();
    reply(x, json_response(200, w.take()));
  }

  // GET /api/v1/{collection}/{id}: the current state of the stream the domain's query
  // handler names, from the snapshot store.
  void query(const Exchange& x, const Routed& r) {
    const QueryHandler* handler = nullptr;
    for (const auto& q : queries_)
      if (q.collection == r.collection) handler = &q;
    if (handler == nullptr) return reply_error(x, 404, "not_found", "no such resource");
    if (ctx_.snapshots == nullptr) return reply_error(x, 404, "not_found", "no snapshot store here");
    auto stream = handler->stream(r.id);
    if (!stream) return reply_error(x, 400, "bad_request", stream.status().message());
    auto snap = ctx_.snapshots->get(*stream);
    if (!snap) return store_failure(x, snap.status(), "the snapshot store");
    MessagePtr st = domain_.new_state();
    if (snap->version == 0 || !st->ParseFromString(snap->state))
      return reply_error(x, 404, "not_found", *stream + " has no state (yet)");
    auto body = handler->render(*st, snap->version);
    if (!body) return reply_error(x, 404, "not_found", *stream + " has no state (yet)");
    reply(x, json_response(200, std::move(*body)));
  }

  // One page: events with version >= fromVersion, at most `limit` of them (1000 by default
  // and at most) and about kMaxPageBytes of JSON; "nextVersion" is where the next page
  // starts (also when there is none yet: poll it), "next" the URL when more are stored.
  void get_events(const Exchange& x, const Request& req, const std::string& stream) {
    if (ctx_.events == nullptr) return reply_error(x, 404, "not_found", "no event store here");
    auto query = parse_query(req.query);
    if (!query) return reply_error(x, 400, "bad_request", query.status().message());
    uint64_t from = 1, limit = kMaxPage;
    if (auto it = query->find("fromVersion"); it != query->end()) {
      if (!parse_count(it->second, &from))
        return reply_error(x, 400, "bad_request", "fromVersion must be a whole number >= 0");
      from = std::max<uint64_t>(from, 1);
    }
    if (auto it = query->find("limit"); it != query->end()) {
      if (!parse_count(it->second, &limit) || limit < 1 || limit > kMaxPage)
        return reply_error(x, 400, "bad_request", "limit must be a whole number from 1 to " + std::to_string(kMaxPage));
    }
    std::vector<RecordedEvent> evs;
    if (auto s = ctx_.events->read_stream(stream, from, &evs); !s) return store_failure(x, s, "the event store");
    JsonWriter w;
    w.begin_object().field("stream", stream).key("events").begin_array();
    uint64_t next = from;
    size_t n = 0;
    for (const auto& r : evs) {
      if (n == limit || (n > 0 && w.str().size() >= kMaxPageBytes)) break;
      write_recorded(domain_, w, r);
      next = r.version + 1;
      ++n;
    }
    const bool more = n < evs.size();
    w.end_array().field("nextVersion", next).field("more", more);
    std::string link;
    if (more) {
      link = "/api/v1/streams/" + percent_encode(stream) + "/events?fromVersion=" + std::to_string(next) +
             "&limit=" + std::to_string(limit);
      w.field("next", link);
    }
    w.end_object();
    Response resp = json_response(200, w.take());
    if (more) resp.fields.emplace_back("Link", "<" + link + ">; rel=\"next\"");
    reply(x, std::move(resp));
  }

  Pipeline& pipeline_;
  const Domain& domain_;
  const std::vector<QueryHandler> queries_;
  const ListenAddress address_;
  CommandSink* sink_ = nullptr;  // set by connect_to; null in a service without a route
  HttpApiContext ctx_;
  const size_t max_body_;
  const int64_t command_timeout_ms_;
  Tokens tokens_;  // set in start(), read-only afterwards
  std::atomic<uint64_t> last_store_log_ns_{0};
  std::mutex deadlines_mu_;
  std::condition_variable deadlines_cv_;
  std::map<DeadlineKey, Waiting> waiting_;  // guarded by deadlines_mu_
  uint64_t deadline_seq_ = 0;               // guarded by deadlines_mu_
  bool deadlines_stopping_ = false;         // guarded by deadlines_mu_
  std::atomic<uint64_t> deadline_answers_{0};
  std::thread deadline_thread_;
  std::unique_ptr<http::Server> server_;
  std::atomic<bool> ready_{false};
  static constexpr size_t kMaxAdminQueue = 16;
  std::mutex admin_mu_;
  std::condition_variable admin_cv_;
  std::deque<AdminJob> admin_queue_;  // guarded by admin_mu_
  bool admin_stopping_ = false;       // guarded by admin_mu_
  std::thread admin_thread_;          // started by the first admin request
};

}  // namespace

Result<bool> parse_http_flag(const std::vector<std::string>& args, size_t* i, HttpServeOptions* out) {
  const std::string& a = args[*i];
  if (a == "--insecure-no-auth") {
    out->insecure_no_auth = true;
    return true;
  }
  std::string* target = a == "--token-file"      ? &out->token_file
                        : a == "--tls-cert"      ? &out->tls_cert
                        : a == "--tls-key"       ? &out->tls_key
                        : a == "--tls-client-ca" ? &out->tls_client_ca
                                                 : nullptr;
  if (target == nullptr && a != "--http-option") return false;
  if (*i + 1 >= args.size()) return Status::invalid_argument(a + " needs a value");
  const std::string& v = args[++*i];
  if (target != nullptr) {
    if (v.empty()) return Status::invalid_argument(a + " needs a file name");
    *target = v;
    return true;
  }
  static const char* kNames[] = {"max_connections",   "max_header_bytes", "max_header_fields", "header_timeout_ms",
                                 "body_timeout_ms",   "idle_timeout_ms",  "write_timeout_ms",  "io_threads"};
  const auto eq = v.find('=');
  const std::string name = v.substr(0, eq);
  uint64_t n = 0;
  if (eq == std::string::npos || std::find(std::begin(kNames), std::end(kNames), name) == std::end(kNames) ||
      !parse_count(v.substr(eq + 1), &n) || n < 1 || n > 100000000)
    return Status::invalid_argument("--http-option needs NAME=N with N >= 1 and NAME one of max_connections, "
                                    "max_header_bytes, max_header_fields, header_timeout_ms, body_timeout_ms, "
                                    "idle_timeout_ms, write_timeout_ms, io_threads; got '" + v + "'");
  if (name == "max_header_bytes" && (n < 1024 || n > 1048576))
    return Status::invalid_argument("max_header_bytes must be from 1024 to 1048576");
  out->limits.emplace_back(name, static_cast<int64_t>(n));
  return true;
}

Result<std::string> listen_uri(const std::string& listen) {
  auto a = parse_listen(listen);
  if (!a) return a.status();
  const bool v6 = a->host.find(':') != std::string::npos;
  return std::string(a->tls ? "https://" : "http://") + (v6 ? "[" + a->host + "]" : a->host) + ":" +
         std::to_string(a->port);
}

const graph::Options<HttpSourceOptions>& http_source_options() {
  using O = HttpSourceOptions;
  static const auto options =
      graph::Options<O>()
          .text(&O::listen, "listen", "host:port of the HTTP API")
          .integer(&O::max_body_bytes, "max_body_bytes", 256, 16777216, "larger bodies get 413")
          .integer(&O::command_timeout_ms, "command_timeout_ms", 10, 3600000,
                   "a command's deadline (a client may ask for less with X-Timeout-Ms)");
  return options;
}

Result<std::unique_ptr<RuntimeNode>> make_http_source(const graph::NodeDef& def, BuildContext& build,
                                                      HttpApiContext context) {
  const HttpSourceOptions options = http_source_options().parse(def);
  auto address = parse_listen(options.listen);
  if (!address) return address.status();
  // The stores the read API serves: those the nearest nodes downstream decide with
  // (a store named by an `events` / `snapshots` parameter), breadth first; then those of
  // any node of the graph (an HTTP node of a read-only service has nothing downstream).
  auto take = [&](const graph::NodeDef& n) {
    if (context.events == nullptr && n.has("events") && !n.get_string("events").empty()) {
      if (auto e = build.stores.event_store(n.get_string("events")); e) context.events = *e;
    }
    if (context.snapshots == nullptr && n.has("snapshots") && !n.get_string("snapshots").empty()) {
      if (auto sn = build.stores.snapshot_store(n.get_string("snapshots")); sn) context.snapshots = *sn;
    }
  };
  std::vector<const graph::NodeDef*> queue{&def};
  std::set<std::string> seen{def.id};
  for (size_t i = 0; i < queue.size(); ++i) {
    take(*queue[i]);
    for (const auto* next : build.graph.successors(queue[i]->id))
      if (seen.insert(next->id).second) queue.push_back(next);
  }
  for (const auto& n : build.graph.nodes) take(n);
  return std::unique_ptr<RuntimeNode>(
      new HttpSourceNode(build.pipeline, def, options, build.domain, *address, std::move(context)));
}

}  // namespace orderflow::connectors
