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
