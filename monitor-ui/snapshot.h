// Plain data parsed from the server's /api/v1/graph and /api/v1/metrics documents.
// This header knows neither cpprestsdk nor ImGui: the monitor depends on the JSON schema only.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace orderflow::monitor {

struct TopoNode {
  std::string id;
  std::string kind;
  std::string service;
  std::string input;
  std::string output;
  bool source = false;
  std::vector<std::pair<std::string, std::string>> params;
};

struct TopoEdge {
  std::string from;
  std::string to;
  std::string type;
  bool store_mediated = false;
};

struct Topology {
  std::string name;
  std::vector<TopoNode> nodes;
  std::vector<TopoEdge> edges;
};

struct LatencyUs {
  double count = 0, mean = 0, p50 = 0, p95 = 0, p99 = 0, p999 = 0, max = 0;
  // The server's histogram, (largest value in a bucket, count) ascending; empty from
  // servers that do not send it. With it, instances merge exactly; without, the merged
  // percentiles are the maximum over instances (exact == false).
  std::vector<std::pair<double, double>> buckets;
  bool exact = true;
};

struct NodeMetrics {
  std::string id;
  std::string kind;
  std::uint64_t in = 0;
  std::uint64_t out = 0;
  std::uint64_t errors = 0;
  double busy_seconds = 0;
  double queue_depth = 0;
  double rate_in = 0;
  double rate_out = 0;
  double busy_share = 0;
  LatencyUs latency_us;
  std::string last_error;
  std::vector<std::pair<std::string, double>> gauges;  // in document order

  // The figure shown as "the node's rate": the larger of in and out.
  double rate() const { return rate_in > rate_out ? rate_in : rate_out; }
  std::optional<double> gauge(const std::string& name) const;
};

struct MetricsSnapshot {
  double uptime_seconds = 0;
  std::vector<NodeMetrics> nodes;
  const NodeMetrics* find(const std::string& id) const;
};

// Parse errors come back as std::nullopt with a message in *error (if given).
std::optional<Topology> parse_topology(const std::string& json, std::string* error = nullptr);
std::optional<MetricsSnapshot> parse_metrics(const std::string& json, std::string* error = nullptr);

// One point of a node's sparkline.
struct Sample {
  double t = 0;  // unix seconds
  double rate = 0;
  double queue_depth = 0;
};

using History = std::map<std::string, std::deque<Sample>>;

// What one poller knows about one server, copied out to the UI thread each frame.
struct ServerState {
  std::string url;
  bool has_topology = false;
  Topology topology;
  bool has_metrics = false;
  MetricsSnapshot metrics;
  bool reachable = false;
  bool ever_polled = false;          // at least one attempt has completed
  double last_success = 0;           // unix seconds, 0 = never
  double unreachable_since = 0;      // unix seconds of the first failure in a row; 0 while reachable
  int consecutive_failures = 0;
  double next_attempt_in = 0;        // seconds until the next try (backoff), informational
  std::string last_error;
  // Node id -> samples, oldest first. Immutable once published: the poller replaces the whole
  // map after each poll (4 Hz), so the UI thread's copy of a ServerState every frame (60 Hz)
  // shares it instead of copying 5 minutes of samples per node. Null until the first poll.
  std::shared_ptr<const History> history;
  const std::deque<Sample>* history_of(const std::string& node_id) const;
};

// Append samples of `m` at time t to `history` and drop those older than t - keep_seconds.
void append_history(History& history, const MetricsSnapshot& m,
                    double t, double keep_seconds);

}  // namespace orderflow::monitor
