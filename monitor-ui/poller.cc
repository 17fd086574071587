#include "poller.h"

#include <utility>  // before cpprest (Boost.Asio with C++20)

#include <cpprest/http_client.h>

#include <algorithm>
#include <fstream>
#include <stdexcept>

namespace orderflow::monitor {
namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// An HTTP answer other than 200, with its kind (classify_status) for the poller's state.
struct AnswerError : std::runtime_error {
  AnswerError(const std::string& what, AnswerKind k) : std::runtime_error(what), kind(k) {}
  AnswerKind kind;
};

std::string get_body(web::http::client::http_client& client, const std::string& path, const std::string& token) {
  web::http::http_request req(web::http::methods::GET);
  req.set_request_uri(web::uri(path));
  if (!token.empty()) req.headers().add(web::http::header_names::authorization, "Bearer " + token);
  web::http::http_response r = client.request(req).get();
  const AnswerKind kind = classify_status(r.status_code());
  if (kind != AnswerKind::kOk) {
    std::string what = "GET " + path + ": HTTP " + std::to_string(r.status_code());
    if (r.status_code() == web::http::status_codes::Unauthorized)
      what += token.empty() ? " (no token sent)" : " (token not accepted)";
    else if (r.status_code() == web::http::status_codes::Forbidden)
      what += " (token without the read role)";
    throw AnswerError(what, kind);
  }
  return r.extract_utf8string(true).get();
}

}  // namespace

AnswerKind classify_status(int http_status) {
  if (http_status == 200) return AnswerKind::kOk;
  if (http_status == 401 || http_status == 403) return AnswerKind::kUnauthorized;
  return AnswerKind::kFailed;
}

std::string describe_failure(const std::string& url, const std::string& what) {
  if (url.rfind("https://", 0) == 0 && what.find("SSL handshake") != std::string::npos)
    return what + " (is the server's certificate signed by a CA in --ca-file or the system's store?)";
  return what;
}

bool valid_token(const std::string& token, std::string* why) {
  if (token.empty()) {
    if (why) *why = "the token is empty";
    return false;
  }
  for (const char c : token) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      if (why)
        *why = u == ' ' || u == '\t'
                   ? "the token contains a blank (a server's \"ROLE TOKEN\" line? give the token alone)"
                   : "the token contains a control or non-ASCII character";
      return false;
    }
  }
  return true;
}

std::optional<std::string> read_token_file(const std::string& path, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (error) *error = "cannot open " + path;
    return std::nullopt;
  }
  std::string line;
  std::getline(in, line);  // an empty file leaves it empty: refused below
  if (in.bad()) {
    if (error) *error = "cannot read " + path;
    return std::nullopt;
  }
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!line.empty() && blank(line.back())) line.pop_back();
  size_t first = 0;
  while (first < line.size() && blank(line[first])) ++first;
  line.erase(0, first);
  std::string why;
  if (!valid_token(line, &why)) {
    if (error) *error = path + ": first line: " + why;
    return std::nullopt;
  }
  return line;
}

std::string check_ca_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "cannot open " + path;
  try {
    boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_client);
    ctx.load_verify_file(path);
  } catch (const std::exception& ex) {
    return path + " holds no PEM certificate (" + ex.what() + ")";
  }
  return "";
}

// One keep-alive client per poller thread, replaced after a failure.
struct Poller::Client {
  std::unique_ptr<web::http::client::http_client> http;
};

std::chrono::milliseconds backoff_delay(const PollerOptions& o, int failures) {
  if (failures <= 0) return o.interval;
  auto d = o.interval;
  for (int i = 1; i < failures && d < o.max_backoff; ++i) d *= 2;
  return std::min(d, o.max_backoff);
}

Poller::Poller(std::string url, PollerOptions options) : url_(std::move(url)), options_(options) {
  state_.url = url_;
}

Poller::~Poller() { stop(); }

void Poller::start() {
  if (thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lk(wake_mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { run(); });
}

void Poller::stop() {
  {
    std::lock_guard<std::mutex> lk(wake_mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

ServerState Poller::state() const {
  std::lock_guard<std::mutex> lk(mu_);
  return state_;
}

bool Poller::poll_once(Client& c, bool want_graph) {
  std::string error;
  bool unauthorized = false;
  try {
    if (!c.http) {
      web::http::client::http_client_config cfg;
      cfg.set_timeout(options_.timeout);
      if (!options_.ca_file.empty()) {
        // Called for each new https connection, after cpprestsdk loaded the system's CAs.
        const std::string ca = options_.ca_file;
        cfg.set_ssl_context_callback([ca](boost::asio::ssl::context& ctx) { ctx.load_verify_file(ca); });
      }
      c.http = std::make_unique<web::http::client::http_client>(url_, cfg);
    }
    web::http::client::http_client& client = *c.http;
    std::optional<Topology> topo;
    if (want_graph) {
      topo = parse_topology(get_body(client, "/api/v1/graph", options_.token), &error);
      if (!topo) throw std::runtime_error("/api/v1/graph: " + error);
    }
    auto metrics = parse_metrics(get_body(client, "/api/v1/metrics", options_.token), &error);
    if (!metrics) throw std::runtime_error("/api/v1/metrics: " + error);
    split_errors(error_split_, *metrics);
    const double now = unix_now();
    std::lock_guard<std::mutex> lk(mu_);
    if (topo) {
      state_.topology = std::move(*topo);
      state_.has_topology = true;
    }
    // Copy-on-write (see ServerState::history): UI copies taken earlier keep the old map.
    auto history = state_.history ? std::make_shared<History>(*state_.history) : std::make_shared<History>();
    append_history(*history, *metrics, now, options_.history_seconds);
    state_.history = std::move(history);
    state_.metrics = std::move(*metrics);
    state_.has_metrics = true;
    state_.reachable = true;
    state_.unauthorized = false;
    state_.ever_polled = true;
    state_.last_success = now;
    state_.unreachable_since = 0;
    state_.consecutive_failures = 0;
    state_.last_error.clear();
    return true;
  } catch (const AnswerError& ex) {
    error = ex.what();
    unauthorized = ex.kind == AnswerKind::kUnauthorized;
  } catch (const std::exception& ex) {
    error = describe_failure(url_, ex.what());
  }
  c.http.reset();  // a fresh connection on the next attempt
  const double now = unix_now();
  std::lock_guard<std::mutex> lk(mu_);
  if (state_.reachable || !state_.ever_polled || state_.unreachable_since == 0)
    state_.unreachable_since = now;
  state_.reachable = false;
  state_.unauthorized = unauthorized;
  state_.ever_polled = true;
  state_.consecutive_failures++;
  state_.last_error = error;
  return false;
}

void Poller::run() {
  int polls = 0;
  bool need_graph = true;
  Client client;
  for (;;) {
    {
      std::lock_guard<std::mutex> lk(wake_mu_);
      if (stopping_) return;
    }
    const bool ok = poll_once(client, need_graph || polls % std::max(1, options_.graph_refresh_polls) == 0);
    attempts_.fetch_add(1, std::memory_order_relaxed);
    ++polls;
    std::chrono::milliseconds delay = options_.interval;
    {
      std::lock_guard<std::mutex> lk(mu_);
      // Re-read the topology after any outage: the server may have restarted with a new graph.
      need_graph = !ok || !state_.has_topology;
      if (!ok) delay = backoff_delay(options_, state_.consecutive_failures);
      state_.next_attempt_in = std::chrono::duration<double>(delay).count();
    }
    std::unique_lock<std::mutex> lk(wake_mu_);
    wake_.wait_for(lk, delay, [this] { return stopping_; });
    if (stopping_) return;
  }
}

}  // namespace orderflow::monitor
