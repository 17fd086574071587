#include "poller.h"

#include <utility>  // before cpprest (Boost.Asio with C++20)

#include <cpprest/http_client.h>

#include <algorithm>

namespace orderflow::monitor {
namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string get_body(web::http::client::http_client& client, const std::string& path) {
  web::http::http_response r = client.request(web::http::methods::GET, path).get();
  if (r.status_code() != web::http::status_codes::OK)
    throw std::runtime_error("GET " + path + ": HTTP " + std::to_string(r.status_code()));
  return r.extract_utf8string(true).get();
}

}  // namespace

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
  try {
    if (!c.http) {
      web::http::client::http_client_config cfg;
      cfg.set_timeout(options_.timeout);
      c.http = std::make_unique<web::http::client::http_client>(url_, cfg);
    }
    web::http::client::http_client& client = *c.http;
    std::optional<Topology> topo;
    if (want_graph) {
      topo = parse_topology(get_body(client, "/api/v1/graph"), &error);
      if (!topo) throw std::runtime_error("/api/v1/graph: " + error);
    }
    auto metrics = parse_metrics(get_body(client, "/api/v1/metrics"), &error);
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
    state_.ever_polled = true;
    state_.last_success = now;
    state_.unreachable_since = 0;
    state_.consecutive_failures = 0;
    state_.last_error.clear();
    return true;
  } catch (const std::exception& ex) {
    error = ex.what();
  }
  c.http.reset();  // a fresh connection on the next attempt
  const double now = unix_now();
  std::lock_guard<std::mutex> lk(mu_);
  if (state_.reachable || !state_.ever_polled || state_.unreachable_since == 0)
    state_.unreachable_since = now;
  state_.reachable = false;
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
