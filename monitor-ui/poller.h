// One background thread per server URL polls /api/v1/graph and /api/v1/metrics and keeps the
// latest ServerState. The UI thread only copies state() under a short mutex hold: it never waits
// on the network. cpprestsdk is confined to poller.cc.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "snapshot.h"

namespace orderflow::monitor {

struct PollerOptions {
  std::chrono::milliseconds interval{1000};      // between successful polls
  std::chrono::milliseconds timeout{800};        // per HTTP request
  std::chrono::milliseconds max_backoff{10000};  // ceiling of the reconnect backoff
  double history_seconds = 300;                  // sparkline window
  int graph_refresh_polls = 30;                  // re-read the topology every N polls
  // Sent as "Authorization: Bearer TOKEN" on every request; "" (default) sends none.
  // Checked by valid_token() before it gets here (no spaces or control characters).
  std::string token;
  // PEM file of the CAs trusted for https:// URLs; "" (default) = the system's store.
  // Server certificates are always verified (chain and host name).
  std::string ca_file;
  // The admin API (its own thread, so a slow Kafka read on the server never delays the metrics):
  // GET /api/v1/admin/dead-letters and /api/v1/admin/subscribers every admin_interval while the
  // server is reachable, and at once after a replay. Zero disables both polls (replays still run).
  std::chrono::milliseconds admin_interval{5000};
  // Longer than the server's own Kafka timeouts (10 s by default per read or write), so a slow
  // Kafka shows as the server's answer (e.g. 502 with its error), not as a timeout here.
  std::chrono::milliseconds admin_timeout{15000};   // per admin GET (the server reads the DLQ topic)
  std::chrono::milliseconds replay_timeout{30000};  // per replay POST (it reads, then produces)
  bool poll_subscribers = true;
};

// ---- Reaching a server (the monitor's --token-file, ORDERFLOW_MONITOR_TOKEN, --ca-file) ----

// The token of a --token-file: its first line, without the line end and surrounding blanks.
// nullopt with the reason in *error if the file cannot be read or the token is not valid_token().
std::optional<std::string> read_token_file(const std::string& path, std::string* error);

// A bearer token can go into a header as is: not empty, printable ASCII without spaces (so a
// server's "ROLE TOKEN" line or a stray control character is refused, not sent).
bool valid_token(const std::string& token, std::string* why);

// "" if `path` is a PEM file that an https client can load as its trusted CAs, else the reason.
std::string check_ca_file(const std::string& path);

// How a poll that got an HTTP answer other than 200 is reported. 401 and 403 mean the server is
// up but refuses this monitor's token (none, unknown, or without the read role); anything else
// is a failure of the server, shown as unreachable.
enum class AnswerKind { kOk, kUnauthorized, kFailed };
AnswerKind classify_status(int http_status);

// The text shown for a request that got no HTTP answer (cpprestsdk's exception text), with a
// hint where the usual cause is known: a failed TLS handshake is most often a certificate
// that no trusted CA signed.
std::string describe_failure(const std::string& url, const std::string& what);

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
  // Dead-letter list polls completed (any answer or failure), and replays finished.
  int admin_attempts() const { return admin_attempts_.load(std::memory_order_relaxed); }
  int replays_finished() const { return replays_finished_.load(std::memory_order_relaxed); }
  // Queues a replay POST for the admin thread (never blocks on the network): its outcome shows
  // in state().replays, pending at once, then done or failed; the list is re-polled after it.
  // Returns the outcome's id. Thread-safe.
  std::uint64_t request_replay(ReplayRequest request);
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

  // Admin thread: dead-letter and subscriber polls, replays.
  void run_admin();
  struct AdminClients;  // cpprestsdk clients and the cancellation of a request in flight
  void poll_admin(AdminClients& c);
  void replay(AdminClients& c, const ReplayOutcome& job);
  void set_outcome(const ReplayOutcome& o);
  std::atomic<int> admin_attempts_{0};
  std::atomic<int> replays_finished_{0};
  std::mutex admin_mu_;
  std::condition_variable admin_wake_;
  bool admin_stopping_ = false;               // guarded by admin_mu_
  bool admin_kick_ = false;                   // poll the lists now; guarded by admin_mu_
  std::vector<ReplayOutcome> replay_queue_;   // guarded by admin_mu_
  std::uint64_t next_replay_id_ = 1;          // guarded by admin_mu_
  std::shared_ptr<void> cancel_;              // pplx::cancellation_token_source, set in start()
  std::thread admin_thread_;
};

}  // namespace orderflow::monitor
