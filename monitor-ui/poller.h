// One background thread per server URL polls /api/v1/graph and /api/v1/metrics and keeps the
// latest ServerState. The UI thread only copies state() under a short mutex hold: it never waits
// on the network. cpprestsdk is confined to poller.cc.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "snapshot.h"

namespace orderflow::monitor {

struct PollerOptions {
  std::chrono::milliseconds interval{1000};      // between successful polls
  std::chrono::milliseconds timeout{800};        // per HTTP request
  std::chrono::milliseconds max_backoff{10000};  // ceiling of the reconnect backoff
  double history_seconds = 300;                  // sparkline window
  int graph_refresh_polls = 30;                  // re-read the topology every N polls
};

// Backoff after `failures` consecutive failures: interval * 2^(failures-1), capped.
std::chrono::milliseconds backoff_delay(const PollerOptions& o, int failures);

class Poller {
 public:
  Poller(std::string url, PollerOptions options = {});
  ~Poller();
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  void start();
  void stop();  // joins; returns within about one request timeout
  ServerState state() const;
  int attempts() const { return attempts_.load(std::memory_order_relaxed); }
  const std::string& url() const { return url_; }

 private:
  void run();
  struct Client;                                   // cpprestsdk http_client, poller thread only
  bool poll_once(Client& client, bool want_graph);  // false on failure, with state_.last_error set

  const std::string url_;
  const PollerOptions options_;
  mutable std::mutex mu_;
  ServerState state_;
  ErrorSplit error_split_;  // poller thread only: client errors attributed so far (split_errors)
  std::atomic<int> attempts_{0};
  std::mutex wake_mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by wake_mu_
  std::thread thread_;
};

}  // namespace orderflow::monitor
