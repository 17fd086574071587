// Pure functions from server states to what the monitor draws: no ImGui, no GLFW, no HTTP.
// Everything here is unit-tested without a window.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "snapshot.h"

namespace orderflow::monitor {

enum class Health { kIdle, kGreen, kYellow, kRed };
const char* health_name(Health h);

// Thresholds for the node colour (busy share is 0..1; queue depth in messages; lag in seconds
// behind the newest committed event, and in events for nodes that report no seconds, such as
// Kafka sources' consumer_lag). UI state: the details panel edits them, --lag-warn/--lag-bad set
// the seconds at start.
struct HealthThresholds {
  double busy_yellow = 0.60;
  double busy_red = 0.90;
  double queue_yellow = 100;
  double queue_red = 1000;
  double lag_seconds_yellow = 1;
  double lag_seconds_red = 10;
  double lag_events_yellow = 1000;
  double lag_events_red = 100000;
};
Health node_health(const NodeMetrics& m, const HealthThresholds& t = {});

// Geometry constants of the canvas, in canvas units (before pan/zoom).
struct LayoutGeometry {
  float node_w = 140, node_h = 92, gap_x = 60, gap_y = 28, margin = 24;  // label + 5 lines
};

struct LayoutNode {
  std::string id;
  std::string label;      // first line drawn: the id
  std::string kind;
  int depth = 0;          // column: longest path from a source
  int row = 0;            // position within the column (declaration order)
  float x = 0, y = 0, w = 0, h = 0;  // top-left and size
  bool has_metrics = false;
  double rate = 0, rate_in = 0, rate_out = 0, busy_share = 0, queue_depth = 0;
  std::uint64_t errors = 0;         // the node's own errors (NodeMetrics::node_errors)
  std::uint64_t client_errors = 0;  // 4xx answers, shown apart
  bool client_errors_exact = false;
  bool busy_measured = true;        // false: busy share shown as "n/m", not as 0 %
  bool has_lag = false;
  double lag_events = 0, lag_seconds = 0;  // max over instances
  Health health = Health::kIdle;
  std::vector<std::string> lines;  // the text lines drawn in the box (after the label)
};

struct LayoutEdge {
  std::string from, to;
  int from_index = -1, to_index = -1;  // into Layout::nodes
  bool store_mediated = false;         // drawn dashed
  bool back_edge = false;              // e.g. saga -> route; ignored for depth
  double rate = 0;                     // msgs/s = source node's rateOut
  std::string label;
  float thickness = 1;
};

struct Layout {
  std::vector<LayoutNode> nodes;
  std::vector<LayoutEdge> edges;
  float width = 0, height = 0;
  int find(const std::string& id) const;
};

// Sorted by (depth, declaration order); positions depend on the topology only.
Layout compute_layout(const Topology& topo, const MetricsSnapshot* metrics,
                      const LayoutGeometry& g = {}, const HealthThresholds& th = {});

std::string format_rate(double msgs_per_second);        // "12.3k msg/s"
std::string format_rate_short(double msgs_per_second);  // "12.3k/s" (edge labels)
std::string format_count(double v);                     // "950", "12.3k", "4.1M"
std::string format_lag(double events, std::optional<double> seconds);  // "lag 1.2k ev 0.35 s"
float edge_thickness(double msgs_per_second);

// Several instances of one graph: rates, counts, errors and queue depths summed; busy share the
// maximum; gauges by merge_rule(); latency histograms merged bucket by bucket (exact). A server
// that sends no buckets makes that node's percentiles the maximum over instances, an upper bound
// (LatencyUs::exact false; kLatencyMergeNote, shown by the UI).
MetricsSnapshot merge_metrics(const std::vector<const MetricsSnapshot*>& parts);

// How a gauge combines over instances. Counters and per-instance shares (in_flight,
// partitions, request units, ...) add up, and so do a projection's figures other than its
// position (the domain's running totals, e.g. orders_confirmed). Positions and lags do not:
// two instances' checkpoints are two views of one log, so their sum is no position at all;
// lag_events, lag_seconds, consumer_lag, checkpoint and anything unknown take the maximum
// (the UI shows each instance's own value next to it).
enum class MergeRule { kSum, kMax };
MergeRule merge_rule(const std::string& gauge);
MergeRule merge_rule(const std::string& kind, const std::string& gauge);

// A change-feed subscriber's position figures (checkpoint, lag_events, lag_seconds); a
// projection's other figures are its domain's running totals.
bool is_position_gauge(const std::string& gauge);

inline constexpr const char* kLatencyMergeNote =
    "max over instances (upper bound; a server sent no histogram)";

struct Totals {
  double commands_per_second = 0;  // rateOut of source nodes
  double events_per_second = 0;    // rateOut of nodes whose output is "committed"
  std::uint64_t errors = 0;         // the nodes' own errors
  std::uint64_t client_errors = 0;  // 4xx answers
  double uptime_seconds = 0;       // smallest of the instances
  std::string bottleneck;          // node with the highest busy share ("" if none busy)
  double bottleneck_busy_share = 0;
  // The domain's running totals: a projection's figures other than its position (e.g.
  // orders_confirmed, orders_rejected), summed over projections and instances, by name.
  std::vector<std::pair<std::string, double>> domain_totals;
  double domain_total(const std::string& name) const {
    for (const auto& [n, v] : domain_totals)
      if (n == name) return v;
    return 0;
  }
};
Totals compute_totals(const Topology& topo, const MetricsSnapshot& m);

// Dead letters and parked commands of one source node (or all), counted once each: two instances
// of one graph that read one DLQ topic list the same messages, so rows are told apart by their
// DLQ coordinates (topic, partition, offset), and a URL that is the same instance as another
// is skipped.
struct DeadLetterCounts {
  size_t dead_letters = 0;
  size_t parked = 0;
  bool more = false;  // some server listed only part of them: the counts are a lower bound
  size_t total() const { return dead_letters + parked; }
};
// "3 dead letters, 1 parked" ("no dead letters" for none; "+" after a count that is a lower bound).
std::string format_dead_letter_counts(const DeadLetterCounts& c);
// The node box's line, short enough for its width: "dead 3  parked 1".
std::string format_dead_letter_line(const DeadLetterCounts& c);

// Everything one frame draws: built once per frame from the pollers' states.
struct Snapshot {
  double now = 0;  // unix seconds
  std::vector<ServerState> servers;
  bool has_topology = false;
  Topology topology;             // from the first server that has one
  bool has_metrics = false;
  MetricsSnapshot metrics;       // merged over reachable servers, each instance once
  HealthThresholds thresholds;   // what the colours were computed with
  Layout layout;
  Totals totals;
  // Per instance, parallel to `servers`: that server's own totals (zero unless it is reachable
  // and has metrics and a topology).
  std::vector<Totals> server_totals;
  // Parallel to `servers`: index of an earlier server with the same instance id (two URLs of one
  // process: counted once), -1 otherwise. Servers that send no instance id are told apart by URL.
  std::vector<int> duplicate_of;
  std::vector<std::string> banners;  // one line per unreachable or unauthorized server
  // Dead letters over the servers that answered the admin API (see DeadLetterCounts), per
  // source node id and in all; admin_servers = servers whose list is known.
  std::map<std::string, DeadLetterCounts> dead_letter_counts;
  DeadLetterCounts dead_letter_total;
  int admin_servers = 0;
};
Snapshot make_snapshot(std::vector<ServerState> servers, double now, const HealthThresholds& thresholds = {});

// "Server URL unreachable since ..." or, after a 401/403 answer, "Server URL unauthorized: check
// --token-file ...", with the time of the first failure in the row and the last error.
std::string unreachable_banner(const ServerState& s, double now);
std::string format_clock(double unix_seconds);  // "HH:MM:SS UTC"

// JSON for --dump-layout: servers (with their own totals), banners, totals, nodes (id, label,
// position, figures, and per instance: url, reachable, rates, busy share, queue, errors, p99),
// edges, and the admin views: "deadLetters" (counts in all and per source node, and per server:
// the view's status, its sources with counts and rows, the replays asked for) and "subscribers".
std::string dump_layout_json(const Snapshot& s);

}  // namespace orderflow::monitor
