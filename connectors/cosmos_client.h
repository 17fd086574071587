// CosmosClient: a small Azure Cosmos DB (SQL API) REST client over cpprestsdk.
//
// One client per account (endpoint + key), shared by every Cosmos store of a StoreSet;
// its cpprestsdk http_client keeps and reuses connections. Every request is signed with
// the master key (HMAC-SHA256, as the Cosmos REST "Access control" page specifies),
// carries x-ms-version and x-ms-date, and, on reads, the container's latest session token.
// 429 (honouring x-ms-retry-after-ms), 449, 503, 408 and transport errors/timeouts are
// retried with capped exponential backoff; every other HTTP status is returned to the
// caller and mapped to a Status by cosmos_status(), the one place that mapping lives.
// The key is never logged and never appears in an error message.
//
// Thread-safe: send() may be called from many threads at once. Owned through a
// shared_ptr by the stores that use it; lives as long as the last of them.
// cpprestsdk headers stay in cosmos_client.cc.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "graph/metrics.h"
#include "graph/status.h"

namespace orderflow::connectors {

struct CosmosOptions {
  // "https://ACCOUNT.documents.azure.com:443". Plain "http://" is accepted only for a
  // local stand-in (tests); the default is TLS with certificate verification.
  std::string endpoint;
  std::string key;                  // base64 master key, from an environment variable
  std::string ca_file;              // PEM CA bundle to trust (emulators); empty = system store
  bool verify_tls = true;           // default true; false only for throwaway local tests
  std::string api_version = "2018-12-31";
  int max_retries = 9;                                    // per request, for retriable statuses
  std::chrono::milliseconds base_backoff{20};             // first backoff, doubled each retry
  std::chrono::milliseconds max_backoff{2000};            // cap of one backoff
  std::chrono::milliseconds max_retry_wait{30000};        // cap of all waits of one request
  std::chrono::milliseconds request_timeout{10000};       // one HTTP exchange
  // default 2 s: requests outstanding this long with no answer of any kind meanwhile make
  // health() unavailable at once (a black-holed account), not after request_timeout.
  std::chrono::milliseconds stall_timeout{2000};
};

struct CosmosRequest {
  std::string method;          // "GET", "POST", "PUT", "DELETE"
  std::string resource_type;   // "dbs", "colls", "docs", "pkranges"
  std::string resource_link;   // signed link, ids unencoded: "dbs/d/colls/c" (feeds) or ".../docs/id"
  std::string path;            // URL path, ids unencoded: "dbs/d/colls/c/docs"
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string op = "other";    // metrics label: which caller spent the request units
  std::string session_scope;   // container link whose session token is kept and sent
  int max_attempts = 0;        // default 0: the client's retry policy; 1 = no retry (shutdown)
};

struct CosmosResponse {
  int http_status = 0;
  int sub_status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  double request_charge = 0;
  int attempts = 0;
  std::string header(const std::string& lower_name) const;
};

// ---- pure functions (unit tested) ----
// HMAC-SHA256 signature (base64) of "verb\ntype\nlink\ndate\n\n" with the base64 key.
Result<std::string> cosmos_signature(const std::string& verb, const std::string& resource_type,
                                     const std::string& resource_link, const std::string& date,
                                     const std::string& key_base64);
// The URL-encoded Authorization header value: type=master&ver=1.0&sig=...
Result<std::string> cosmos_auth_header(const std::string& verb, const std::string& resource_type,
                                       const std::string& resource_link, const std::string& date,
                                       const std::string& key_base64);
std::string rfc1123_date(std::chrono::system_clock::time_point t);
// The one place Cosmos HTTP statuses become orderflow statuses.
Status cosmos_status(int http_status, int sub_status, const std::string& what);
// Whether to retry after `attempt` (1-based) failed with `http_status` (0 = transport
// error or timeout), and how long to wait first. `waited` is the sum of earlier waits.
struct RetryDecision {
  bool retry = false;
  std::chrono::milliseconds delay{0};
};
RetryDecision cosmos_retry(int http_status, int attempt, std::optional<std::chrono::milliseconds> retry_after,
                           std::chrono::milliseconds waited, const CosmosOptions& options);
// Merges session tokens ("range:version#lsn", comma-separated): the highest LSN per range.
std::string merge_session_tokens(const std::string& kept, const std::string& fresh);
// Percent-encodes one path segment (ids).
std::string cosmos_encode_segment(const std::string& s);

// Request units and counts per operation label; exported as gauges of a probe.
class CosmosMetrics {
 public:
  struct Totals {
    uint64_t requests = 0, throttles = 0, retries = 0, failures = 0;
    double request_units = 0;
  };
  void record(const std::string& op, double charge, int attempts, int throttles, bool failed, uint64_t latency_us);
  Totals totals() const;
  Totals op(const std::string& op) const;
  void attach(std::shared_ptr<NodeProbe> probe);  // gauges from now on; null detaches
  // A gauge kept here and mirrored to the probe (change-feed lag per range, RU per command).
  void set_gauge(const std::string& name, double value);
  std::map<std::string, double> gauges() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, Totals> ops_;
  std::map<std::string, double> gauges_;
  Totals all_;
  std::shared_ptr<NodeProbe> probe_;
};

class CosmosClient {
 public:
  static Result<std::shared_ptr<CosmosClient>> open(const CosmosOptions& options);
  // https://HOST[:PORT], or plain http:// to this machine only (a stand-in); no user info.
  static Status check_endpoint(const std::string& endpoint);
  ~CosmosClient();
  CosmosClient(const CosmosClient&) = delete;
  CosmosClient& operator=(const CosmosClient&) = delete;

  // Sends with retries. A Status only for transport failures after the last retry or a
  // malformed request; any HTTP answer (even 429 after the last retry) is a response.
  Result<CosmosResponse> send(const CosmosRequest& request);

  const CosmosOptions& options() const { return options_; }
  CosmosMetrics& metrics() { return metrics_; }

  // The account as the latest requests found it, without I/O: not ok (kUnavailable, with
  // the reason) while requests fail to reach it for more than a second, while requests
  // are outstanding with no answer for stall_timeout (an account that accepts
  // connections but never answers), or while its database or a container is missing.
  // One warning line when it goes, one when it comes back. The stores' own traffic
  // (change-feed polls, lease cycles) keeps it current.
  Status health() const;
  // Called (on the requesting thread, at most once per two seconds) when an answer says a
  // database or container does not exist: stores that may create them recreate them there.
  void on_missing_resource(std::function<void()> handler);
  std::string session_token(const std::string& scope) const;

 private:
  struct Impl;
  explicit CosmosClient(CosmosOptions options);
  Result<CosmosResponse> send_once(const CosmosRequest& request);

  const CosmosOptions options_;
  std::unique_ptr<Impl> impl_;
  CosmosMetrics metrics_;
  mutable std::mutex session_mu_;
  std::map<std::string, std::string> sessions_;

  void note_health(const Result<CosmosResponse>& resp, int http_status);
  // Requests on the wire, and when the latest answer of any kind (or the first request
  // after none were outstanding) arrived, in steady-clock nanoseconds: what health()
  // reads to see an account that stopped answering.
  std::atomic<int> in_flight_{0};
  std::atomic<int64_t> last_progress_ns_{0};
  mutable std::mutex health_mu_;
  mutable Status health_;                                         // guarded by health_mu_
  mutable std::chrono::steady_clock::time_point failing_since_{};  // guarded; epoch = not failing
  std::chrono::steady_clock::time_point last_repair_{};    // guarded by health_mu_
  std::vector<std::function<void()>> repair_;             // guarded by health_mu_
  std::mutex repair_run_mu_;                               // one repair at a time
};

}  // namespace orderflow::connectors
