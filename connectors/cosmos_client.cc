#include "connectors/cosmos_client.h"

#include <cpprest/http_client.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <thread>

#include "connectors/url.h"
#include "graph/log.h"

namespace orderflow::connectors {
namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Result<std::string> base64_decode(const std::string& in) {
  std::string clean;
  for (char c : in)
    if (!std::isspace(static_cast<unsigned char>(c))) clean.push_back(c);
  if (clean.empty() || clean.size() % 4 != 0) return Status::invalid_argument("the Cosmos key is not base64");
  std::string out(clean.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(clean.data()), static_cast<int>(clean.size()));
  if (n < 0) return Status::invalid_argument("the Cosmos key is not base64");
  size_t pad = 0;
  if (clean.back() == '=') ++pad;
  if (clean.size() > 1 && clean[clean.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string base64_encode(const unsigned char* data, size_t len) {
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(len));
  out.resize(static_cast<size_t>(n));
  return out;
}

int64_t steady_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string CosmosResponse::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

Result<std::string> cosmos_signature(const std::string& verb, const std::string& resource_type,
                                     const std::string& resource_link, const std::string& date,
                                     const std::string& key_base64) {
  auto key = base64_decode(key_base64);
  if (!key) return key.status();
  const std::string payload = lower(verb) + "\n" + lower(resource_type) + "\n" + resource_link + "\n" + lower(date) +
                              "\n" + "" + "\n";
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), key->data(), static_cast<int>(key->size()),
           reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), mac, &mac_len) == nullptr)
    return Status::internal("HMAC-SHA256 failed");
  return base64_encode(mac, mac_len);
}

Result<std::string> cosmos_auth_header(const std::string& verb, const std::string& resource_type,
                                       const std::string& resource_link, const std::string& date,
                                       const std::string& key_base64) {
  auto sig = cosmos_signature(verb, resource_type, resource_link, date, key_base64);
  if (!sig) return sig.status();
  return percent_encode("type=master&ver=1.0&sig=" + *sig, "-_.~", HexCase::lower);
}

std::string merge_session_tokens(const std::string& kept, const std::string& fresh) {
  // Tokens are "range:version#lsn" (or "range:lsn"), comma-separated; keep the highest
  // LSN per partition key range so reads in every range see this client's writes.
  std::map<std::string, std::pair<uint64_t, std::string>> by_range;
  auto add = [&](const std::string& list) {
    size_t start = 0;
    while (start < list.size()) {
      size_t comma = list.find(',', start);
      if (comma == std::string::npos) comma = list.size();
      const std::string token = list.substr(start, comma - start);
      start = comma + 1;
      const size_t colon = token.find(':');
      if (colon == std::string::npos || colon == 0) continue;
      const size_t hash = token.rfind('#');
      const std::string lsn = token.substr(hash == std::string::npos ? colon + 1 : hash + 1);
      const uint64_t n = std::strtoull(lsn.c_str(), nullptr, 10);
      auto& slot = by_range[token.substr(0, colon)];
      if (slot.second.empty() || n >= slot.first) slot = {n, token};
    }
  };
  add(kept);
  add(fresh);
  std::string out;
  for (const auto& [range, t] : by_range) out += (out.empty() ? "" : ",") + t.second;
  return out;
}

std::string cosmos_encode_segment(const std::string& s) { return percent_encode(s, "-_.~:", HexCase::lower); }

std::string rfc1123_date(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  static const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday], tm.tm_mday,
                kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

Status cosmos_status(int http, int sub, const std::string& what) {
  const std::string detail = what + " (HTTP " + std::to_string(http) +
                             (sub != 0 ? ", substatus " + std::to_string(sub) : std::string()) + ")";
  if (http >= 200 && http < 300) return Status::ok();
  switch (http) {
    case 0: return Status::unavailable(what + ": Cosmos DB unreachable or timed out");
    case 304: return Status::ok();  // change feed: nothing new
    case 400: return Status::invalid_argument("bad request: " + detail);
    case 401: return Status::invalid_argument("unauthorized, check the key and the clock: " + detail);
    case 403:
      // 403.3: writes forbidden during a regional failover; anything else is a permanent refusal.
      if (sub == 3) return Status::unavailable("writes forbidden for now: " + detail);
      return Status::invalid_argument("forbidden: " + detail);
    case 404: return Status::not_found("not found: " + detail);
    case 408: return Status::unavailable("request timed out: " + detail);
    case 409: return Status::conflict("conflict: " + detail);
    case 410: return Status::unavailable("gone (partition moved): " + detail);
    case 412: return Status::conflict("precondition failed (etag changed): " + detail);
    case 413: return Status::invalid_argument("entity too large: " + detail);
    case 429: return Status::unavailable("throttled (request rate too large): " + detail);
    case 449: return Status::unavailable("retry with: " + detail);
    case 500: return Status::io_error("Cosmos DB internal error: " + detail);
    case 502:
    case 503:
    case 504: return Status::unavailable("service unavailable: " + detail);
    default: break;
  }
  if (http >= 500) return Status::io_error("server error: " + detail);
  return Status::internal("unexpected answer: " + detail);
}

RetryDecision cosmos_retry(int http, int attempt, std::optional<std::chrono::milliseconds> retry_after,
                           std::chrono::milliseconds waited, const CosmosOptions& o) {
  RetryDecision d;
  const bool retriable = http == 0 || http == 408 || http == 429 || http == 449 || http == 503 || http == 410;
  if (!retriable || attempt > o.max_retries) return d;
  std::chrono::milliseconds delay;
  if (http == 429 && retry_after) {
    delay = *retry_after;  // the server says when capacity is back
  } else {
    const int shift = std::min(attempt - 1, 20);
    delay = std::min(o.max_backoff, o.base_backoff * (int64_t{1} << shift));
  }
  delay = std::min(delay, o.max_backoff);
  if (waited + delay > o.max_retry_wait) return d;
  d.retry = true;
  d.delay = delay;
  return d;
}

// ---- metrics ----

void CosmosMetrics::record(const std::string& op, double charge, int attempts, int throttles, bool failed,
                           uint64_t latency_us) {
  std::shared_ptr<NodeProbe> probe;
  Totals all, mine;
  {
    std::lock_guard lock(mu_);
    for (Totals* t : {&all_, &ops_[op]}) {
      t->requests += 1;
      t->request_units += charge;
      t->retries += static_cast<uint64_t>(std::max(0, attempts - 1));
      t->throttles += static_cast<uint64_t>(throttles);
      t->failures += failed ? 1 : 0;
    }
    probe = probe_;
    all = all_;
    mine = ops_[op];
  }
  if (!probe) return;
  probe->add_in();
  if (failed) {
    probe->add_error("request failed: " + op);
  } else {
    probe->add_out();
  }
  if (NodeProbe::enabled()) probe->record_latency_us(latency_us);
  probe->set_gauge("request_units_total", all.request_units);
  probe->set_gauge("throttles_total", static_cast<double>(all.throttles));
  probe->set_gauge("retries_total", static_cast<double>(all.retries));
  probe->set_gauge("ru_" + op, mine.request_units);
  probe->set_gauge("requests_" + op, static_cast<double>(mine.requests));
}

CosmosMetrics::Totals CosmosMetrics::totals() const {
  std::lock_guard lock(mu_);
  return all_;
}

CosmosMetrics::Totals CosmosMetrics::op(const std::string& op) const {
  std::lock_guard lock(mu_);
  auto it = ops_.find(op);
  return it == ops_.end() ? Totals{} : it->second;
}

void CosmosMetrics::attach(std::shared_ptr<NodeProbe> probe) {
  std::lock_guard lock(mu_);
  probe_ = std::move(probe);
  if (probe_)
    for (const auto& [k, v] : gauges_) probe_->set_gauge(k, v);
}

void CosmosMetrics::set_gauge(const std::string& name, double value) {
  std::shared_ptr<NodeProbe> probe;
  {
    std::lock_guard lock(mu_);
    gauges_[name] = value;
    probe = probe_;
  }
  if (probe) probe->set_gauge(name, value);
}

std::map<std::string, double> CosmosMetrics::gauges() const {
  std::lock_guard lock(mu_);
  return gauges_;
}

// ---- client ----

struct CosmosClient::Impl {
  std::unique_ptr<web::http::client::http_client> http;
};

CosmosClient::CosmosClient(CosmosOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {}
CosmosClient::~CosmosClient() = default;

Status CosmosClient::check_endpoint(const std::string& endpoint_text) {
  auto lower = [](std::string t) {
    std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
    return t;
  };
  if (!web::uri::validate(endpoint_text))
    return Status::invalid_argument("cosmos endpoint is not a URL: '" + endpoint_text + "'");
  const web::uri endpoint(endpoint_text);
  const std::string scheme = lower(endpoint.scheme()), host = lower(endpoint.host());
  if (scheme != "https" && scheme != "http")
    return Status::invalid_argument("cosmos endpoint must start with https:// (or http:// for a local stand-in): '" +
                                    endpoint_text + "'");
  if (!endpoint.user_info().empty() || host.empty())
    return Status::invalid_argument("cosmos endpoint '" + endpoint_text + "' must be https://HOST[:PORT] (no user info)");
  if (scheme == "http") {
    // Plain HTTP carries the signed requests and every document in clear: only to a
    // stand-in on this machine.
    const bool loopback_v4 = host.rfind("127.", 0) == 0 && host.find_first_not_of("0123456789.") == std::string::npos;
    if (host != "localhost" && host != "[::1]" && host != "::1" && !loopback_v4)
      return Status::invalid_argument("cosmos endpoint '" + endpoint_text +
                                      "': plain http:// is only for a stand-in on this machine (localhost, 127.x.x.x, "
                                      "[::1]); use https://");
  }
  return Status::ok();
}

Result<std::shared_ptr<CosmosClient>> CosmosClient::open(const CosmosOptions& options) {
  if (auto s = check_endpoint(options.endpoint); !s) return s;
  if (options.key.empty()) return Status::invalid_argument("cosmos key is empty (set the key environment variable)");
  if (auto k = base64_decode(options.key); !k) return k.status();
  if (!options.ca_file.empty()) {
    if (std::FILE* f = std::fopen(options.ca_file.c_str(), "r")) {
      std::fclose(f);
    } else {
      return Status::invalid_argument("cannot read CA file " + options.ca_file);
    }
  }
  std::shared_ptr<CosmosClient> c(new CosmosClient(options));
  web::http::client::http_client_config config;
  config.set_timeout(std::chrono::duration_cast<std::chrono::microseconds>(options.request_timeout));
  config.set_validate_certificates(options.verify_tls);
  if (!options.ca_file.empty()) {
    const std::string ca = options.ca_file;
    config.set_ssl_context_callback([ca](boost::asio::ssl::context& ctx) { ctx.load_verify_file(ca); });
  }
  try {
    c->impl_->http = std::make_unique<web::http::client::http_client>(utility::conversions::to_string_t(options.endpoint),
                                                                       config);
  } catch (const std::exception& ex) {
    return Status::invalid_argument(std::string("bad cosmos endpoint: ") + ex.what());
  }
  return c;
}

std::string CosmosClient::session_token(const std::string& scope) const {
  std::lock_guard lock(session_mu_);
  auto it = sessions_.find(scope);
  return it == sessions_.end() ? std::string() : it->second;
}

Result<CosmosResponse> CosmosClient::send_once(const CosmosRequest& r) {
  using namespace web::http;
  const std::string date = rfc1123_date(std::chrono::system_clock::now());
  auto auth = cosmos_auth_header(r.method, r.resource_type, r.resource_link, date, options_.key);
  if (!auth) return auth.status();
  std::string path = "/";
  {
    // Encode each segment: ids may hold characters that are not URL-safe.
    size_t start = 0;
    while (start <= r.path.size()) {
      size_t slash = r.path.find('/', start);
      if (slash == std::string::npos) slash = r.path.size();
      if (start > 0) path += "/";
      path += cosmos_encode_segment(r.path.substr(start, slash - start));
      start = slash + 1;
    }
  }
  http_request req(r.method);
  req.set_request_uri(path);
  auto& h = req.headers();
  h.add("authorization", *auth);
  h.add("x-ms-date", date);
  h.add("x-ms-version", options_.api_version);
  h.add("accept", "application/json");
  if (!r.session_scope.empty()) {
    const std::string token = session_token(r.session_scope);
    if (!token.empty() && (r.method == "GET" || r.method == "POST")) h.add("x-ms-session-token", token);
  }
  bool has_content_type = false;
  for (const auto& [k, v] : r.headers) {
    if (lower(k) == "content-type") has_content_type = true;
    h.add(k, v);
  }
  if (!r.body.empty() || r.method == "POST" || r.method == "PUT")
    req.set_body(r.body, has_content_type ? std::string() : std::string("application/json"));
  if (has_content_type) {
    for (const auto& [k, v] : r.headers)
      if (lower(k) == "content-type") h.set_content_type(v);
  }
  CosmosResponse out;
  // In flight until any answer (or failure) comes back; see health().
  if (in_flight_.fetch_add(1) == 0) last_progress_ns_.store(steady_us() * 1000);
  struct Landed {
    CosmosClient* c;
    ~Landed() {
      c->last_progress_ns_.store(steady_us() * 1000);
      c->in_flight_.fetch_sub(1);
    }
  } landed{this};
  try {
    http_response resp = impl_->http->request(req).get();
    out.http_status = resp.status_code();
    for (const auto& [k, v] : resp.headers()) out.headers[lower(k)] = v;
    out.body = resp.extract_utf8string(true).get();
  } catch (const std::exception& ex) {
    return Status::unavailable(std::string("cosmos request failed: ") + ex.what());
  }
  if (auto s = out.header("x-ms-substatus"); !s.empty()) out.sub_status = std::atoi(s.c_str());
  if (auto s = out.header("x-ms-request-charge"); !s.empty()) out.request_charge = std::atof(s.c_str());
  if (auto s = out.header("x-ms-session-token"); !s.empty() && !r.session_scope.empty()) {
    std::lock_guard lock(session_mu_);
    std::string& kept = sessions_[r.session_scope];
    kept = merge_session_tokens(kept, s);
  }
  return out;
}

Result<CosmosResponse> CosmosClient::send(const CosmosRequest& r) {
  std::chrono::milliseconds waited{0};
  double charge = 0;
  int throttles = 0;
  const int64_t start = steady_us();
  for (int attempt = 1;; ++attempt) {
    auto resp = send_once(r);
    int http = 0;
    std::optional<std::chrono::milliseconds> after;
    if (resp) {
      http = resp->http_status;
      charge += resp->request_charge;
      if (http == 429) {
        ++throttles;
        if (auto a = resp->header("x-ms-retry-after-ms"); !a.empty()) after = std::chrono::milliseconds(std::atol(a.c_str()));
      }
    } else if (resp.status().code() != StatusCode::kUnavailable) {
      metrics_.record(r.op, charge, attempt, throttles, true, static_cast<uint64_t>(steady_us() - start));
      return resp.status();  // malformed request: retrying cannot help
    }
    note_health(resp, http);
    RetryDecision d = cosmos_retry(http, attempt, after, waited, options_);
    if (r.max_attempts > 0 && attempt >= r.max_attempts) d.retry = false;
    if (!d.retry) {
      const bool failed = !resp || http >= 500 || http == 429 || http == 408 || http == 449;
      metrics_.record(r.op, charge, attempt, throttles, failed, static_cast<uint64_t>(steady_us() - start));
      if (resp) {
        resp->attempts = attempt;
        resp->request_charge = charge;
      }
      return resp;
    }
    std::this_thread::sleep_for(d.delay);
    waited += d.delay;
  }
}

Status CosmosClient::health() const {
  using Clock = std::chrono::steady_clock;
  std::lock_guard lock(health_mu_);
  if (!health_.is_ok() || in_flight_.load() == 0) return health_;
  // Requests outstanding and nothing answered for stall_timeout: the account (or the path
  // to it) swallows requests. Their own timeout would tell only after request_timeout.
  const auto silent = std::chrono::nanoseconds(steady_us() * 1000 - last_progress_ns_.load());
  if (silent >= options_.stall_timeout) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(silent).count();
    const std::string reason = "Cosmos DB unreachable: requests outstanding with no answer for " +
                               std::to_string(ms) + " ms";
    log::warn("cosmos db unavailable", {{"endpoint", options_.endpoint}, {"reason", reason}});
    health_ = Status::unavailable(reason);
    if (failing_since_ == Clock::time_point{}) failing_since_ = Clock::now() - silent;
  }
  return health_;
}

void CosmosClient::on_missing_resource(std::function<void()> handler) {
  std::lock_guard lock(health_mu_);
  repair_.push_back(std::move(handler));
}

void CosmosClient::note_health(const Result<CosmosResponse>& resp, int http_status) {
  using Clock = std::chrono::steady_clock;
  // Cosmos DB says "Owner resource does not exist" (substatus 1003) when the database or
  // container of a request is gone; a missing document is a plain 404.
  const bool missing = resp && http_status == 404 &&
                       (resp->sub_status == 1003 || resp->body.find("Owner resource does not exist") != std::string::npos);
  const bool unreachable = !resp || http_status >= 500 || http_status == 408;
  std::vector<std::function<void()>> repair;
  {
    std::lock_guard lock(health_mu_);
    const auto now = Clock::now();
    if (!missing && !unreachable) {
      failing_since_ = {};
      if (!health_.is_ok()) {
        log::warn("cosmos db reachable again", {{"endpoint", options_.endpoint}});
        health_ = Status::ok();
      }
      return;
    }
    if (failing_since_ == Clock::time_point{}) failing_since_ = now;
    std::string reason;
    if (missing) {
      reason = "the Cosmos DB database or a container is missing";
    } else if (now - failing_since_ >= std::chrono::seconds(1)) {
      reason = "Cosmos DB unreachable: " + (resp ? "HTTP " + std::to_string(http_status) : resp.status().message());
    }
    if (!reason.empty() && health_.is_ok()) {
      log::warn("cosmos db unavailable", {{"endpoint", options_.endpoint}, {"reason", reason}});
      health_ = Status::unavailable(reason);
    } else if (!reason.empty() && missing) {
      health_ = Status::unavailable(reason);
    }
    if (missing && now - last_repair_ >= std::chrono::seconds(2)) {
      last_repair_ = now;
      repair = repair_;
    }
  }
  if (repair.empty()) return;
  std::unique_lock run(repair_run_mu_, std::try_to_lock);
  if (!run.owns_lock()) return;
  log::warn("recreating missing cosmos db database and containers", {{"endpoint", options_.endpoint}});
  for (auto& fn : repair) fn();
}

}  // namespace orderflow::connectors
