// Pure functions from server states to what the monitor draws: no ImGui, no GLFW, no HTTP.
// Everything here is unit-tested without a window.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "snapshot.h"

namespace orderflow::monitor {

enum class Health { kIdle, kGreen, kYellow, kRed };
const char* health_name(Health h);

// Thresholds for the node colour (busy share is 0..1; queue depth in messages).
struct HealthThresholds {
  double busy_yellow = 0.60;
  double busy_red = 0.90;
  double queue_yellow = 100;
  double queue_red = 1000;
};
Health node_health(const NodeMetrics& m, const HealthThresholds& t = {});

// Geometry constants of the canvas, in canvas units (before pan/zoom).
struct LayoutGeometry {
  float node_w = 140, node_h = 64, gap_x = 60, gap_y = 28, margin = 24;
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
  std::uint64_t errors = 0;
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
float edge_thickness(double msgs_per_second);

// Several instances of one graph: figures summed (rates, counts, queue depths), busy share and
// gauges summed, latency histograms merged bucket by bucket (exact). A server that sends no
// buckets makes that node's percentiles the maximum over instances, an upper bound
// (LatencyUs::exact false; kLatencyMergeNote, shown by the UI).
MetricsSnapshot merge_metrics(const std::vector<const MetricsSnapshot*>& parts);

inline constexpr const char* kLatencyMergeNote =
    "max over instances (upper bound; a server sent no histogram)";

struct Totals {
  double commands_per_second = 0;  // rateOut of source nodes
  double events_per_second = 0;    // rateOut of nodes whose output is "committed"
  std::uint64_t errors = 0;
  double uptime_seconds = 0;       // smallest of the instances
  std::string bottleneck;          // node with the highest busy share ("" if none busy)
  double bottleneck_busy_share = 0;
  bool has_orders = false;         // a projection reports the gauges below
  double orders_confirmed = 0;     // gauge "orders_confirmed", summed over nodes and instances
  double orders_rejected = 0;      // gauge "orders_rejected"
};
Totals compute_totals(const Topology& topo, const MetricsSnapshot& m);

// Everything one frame draws: built once per frame from the pollers' states.
struct Snapshot {
  double now = 0;  // unix seconds
  std::vector<ServerState> servers;
  bool has_topology = false;
  Topology topology;             // from the first server that has one
  bool has_metrics = false;
  MetricsSnapshot metrics;       // merged over reachable servers
  Layout layout;
  Totals totals;
  // Per instance, parallel to `servers`: that server's own totals (zero unless it is reachable
  // and has metrics and a topology).
  std::vector<Totals> server_totals;
  std::vector<std::string> banners;  // one line per unreachable server
};
Snapshot make_snapshot(std::vector<ServerState> servers, double now);

std::string unreachable_banner(const ServerState& s, double now);
std::string format_clock(double unix_seconds);  // "HH:MM:SS UTC"

// JSON for --dump-layout: servers (with their own totals), banners, totals, nodes (id, label,
// position, figures, and per instance: url, reachable, rates, busy share, queue, errors, p99),
// edges.
std::string dump_layout_json(const Snapshot& s);

}  // namespace orderflow::monitor
