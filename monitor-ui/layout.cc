#include "layout.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <sstream>

namespace orderflow::monitor {

const char* health_name(Health h) {
  switch (h) {
    case Health::kIdle: return "idle";
    case Health::kGreen: return "green";
    case Health::kYellow: return "yellow";
    case Health::kRed: return "red";
  }
  return "idle";
}

Health node_health(const NodeMetrics& m, const HealthThresholds& t) {
  // Lag in seconds where the node reports it (change-feed subscribers); in events otherwise
  // (Kafka sources' consumer_lag): events behind say little when seconds are known.
  const std::optional<double> lag_s = m.lag_seconds();
  const double lag_ev = m.lag_events();
  const bool lag_red = lag_s ? *lag_s >= t.lag_seconds_red : lag_ev >= t.lag_events_red;
  const bool lag_yellow = lag_s ? *lag_s >= t.lag_seconds_yellow : lag_ev >= t.lag_events_yellow;
  if (m.busy_share >= t.busy_red || m.queue_depth >= t.queue_red || lag_red) return Health::kRed;
  if (m.busy_share >= t.busy_yellow || m.queue_depth >= t.queue_yellow || lag_yellow) return Health::kYellow;
  return Health::kGreen;
}

std::string format_count(double v) {
  char buf[32];
  if (v >= 1e6)
    std::snprintf(buf, sizeof buf, "%.1fM", v / 1e6);
  else if (v >= 1e4)
    std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

std::string format_lag(double events, std::optional<double> seconds) {
  std::string text = "lag " + format_count(events) + " ev";
  if (seconds) {
    char buf[32];
    std::snprintf(buf, sizeof buf, *seconds < 10 ? " %.2f s" : " %.0f s", *seconds);
    text += buf;
  }
  return text;
}

namespace {
// Gauges that are counts or shares of work per instance (merge_rule).
constexpr const char* kSummedGauges[] = {
      "in_flight",       "partitions",     "pauses",
      "dead_lettered",    "rejected",            "resubmitted",     "redelivered_skipped",
      "delivery_errors",  "queue_full",          "deadline_answers", "deadline_dropped",
      "dead_letters_waiting", "dead_letters_shortened", "dead_letter_failures"};
}  // namespace

bool is_position_gauge(const std::string& g) {
  return g == "checkpoint" || g == "lag_events" || g == "lag_seconds";
}

MergeRule merge_rule(const std::string& kind, const std::string& g) {
  if (kind == "projection" && !is_position_gauge(g)) return MergeRule::kSum;
  return merge_rule(g);
}

MergeRule merge_rule(const std::string& g) {
  for (const char* k : kSummedGauges)
    if (g == k) return MergeRule::kSum;
  auto starts = [&](const char* p) { return g.rfind(p, 0) == 0; };
  auto ends = [&](const char* x) {
    const std::string sx(x);
    return g.size() >= sx.size() && g.compare(g.size() - sx.size(), sx.size(), sx) == 0;
  };
  if (ends("_total") || (starts("ru_") && g != "ru_per_command") || starts("leases_")) return MergeRule::kSum;
  return MergeRule::kMax;
}

int Layout::find(const std::string& id) const {
  for (size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].id == id) return static_cast<int>(i);
  return -1;
}

std::string format_rate(double r) {
  char buf[64];
  if (r >= 1e6)
    std::snprintf(buf, sizeof buf, "%.1fM msg/s", r / 1e6);
  else if (r >= 1e4)
    std::snprintf(buf, sizeof buf, "%.1fk msg/s", r / 1e3);
  else if (r >= 10 || r == 0)
    std::snprintf(buf, sizeof buf, "%.0f msg/s", r);
  else
    std::snprintf(buf, sizeof buf, "%.1f msg/s", r);
  return buf;
}

std::string format_rate_short(double r) {
  std::string s = format_rate(r);
  const auto at = s.find(" msg/s");
  if (at != std::string::npos) s.replace(at, 6, "/s");
  return s;
}

float edge_thickness(double r) {
  if (r <= 0) return 1.0f;
  return std::clamp(1.0f + static_cast<float>(std::log10(1.0 + r)), 1.0f, 7.0f);
}

Layout compute_layout(const Topology& topo, const MetricsSnapshot* metrics, const LayoutGeometry& g,
                      const HealthThresholds& th) {
  const size_t n = topo.nodes.size();
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < n; ++i) index.emplace(topo.nodes[i].id, i);

  // Adjacency over edges whose both ends are known, in declaration order.
  std::vector<std::vector<size_t>> out(n);  // edge indices
  std::vector<int> indeg(n, 0);
  for (size_t e = 0; e < topo.edges.size(); ++e) {
    auto f = index.find(topo.edges[e].from), t = index.find(topo.edges[e].to);
    if (f == index.end() || t == index.end()) continue;
    out[f->second].push_back(e);
    indeg[t->second]++;
  }

  // Back edges: DFS from sources (declared sources, then in-degree 0, then the rest), an edge
  // to a node on the DFS stack closes a cycle.
  std::vector<bool> back(topo.edges.size(), false);
  std::vector<int> state(n, 0);  // 0 new, 1 on stack, 2 done
  std::function<void(size_t)> dfs = [&](size_t u) {
    state[u] = 1;
    for (size_t e : out[u]) {
      size_t v = index.at(topo.edges[e].to);
      if (state[v] == 1)
        back[e] = true;
      else if (state[v] == 0)
        dfs(v);
    }
    state[u] = 2;
  };
  for (size_t i = 0; i < n; ++i)
    if (topo.nodes[i].source && state[i] == 0) dfs(i);
  for (size_t i = 0; i < n; ++i)
    if (indeg[i] == 0 && state[i] == 0) dfs(i);
  for (size_t i = 0; i < n; ++i)
    if (state[i] == 0) dfs(i);

  // Longest path over the remaining DAG (Kahn order).
  std::vector<int> depth(n, 0), in_dag(n, 0);
  for (size_t e = 0; e < topo.edges.size(); ++e)
    if (!back[e] && index.count(topo.edges[e].from) && index.count(topo.edges[e].to))
      in_dag[index.at(topo.edges[e].to)]++;
  std::vector<size_t> ready;
  for (size_t i = 0; i < n; ++i)
    if (in_dag[i] == 0) ready.push_back(i);
  for (size_t k = 0; k < ready.size(); ++k) {
    size_t u = ready[k];
    for (size_t e : out[u]) {
      if (back[e]) continue;
      size_t v = index.at(topo.edges[e].to);
      depth[v] = std::max(depth[v], depth[u] + 1);
      if (--in_dag[v] == 0) ready.push_back(v);
    }
  }

  // Order: by depth, then declaration order.
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return depth[a] < depth[b]; });

  int max_depth = 0;
  std::map<int, int> column_size;
  for (size_t i = 0; i < n; ++i) {
    max_depth = std::max(max_depth, depth[i]);
    column_size[depth[i]]++;
  }
  int max_rows = 0;
  for (const auto& [d, c] : column_size) max_rows = std::max(max_rows, c);
  const float column_height = max_rows * g.node_h + std::max(0, max_rows - 1) * g.gap_y;

  Layout L;
  std::map<int, int> next_row;
  for (size_t i : order) {
    const TopoNode& tn = topo.nodes[i];
    LayoutNode ln;
    ln.id = tn.id;
    ln.label = tn.id;
    ln.kind = tn.kind;
    ln.depth = depth[i];
    ln.row = next_row[depth[i]]++;
    const int rows = column_size[depth[i]];
    const float this_height = rows * g.node_h + (rows - 1) * g.gap_y;
    ln.w = g.node_w;
    ln.h = g.node_h;
    ln.x = g.margin + ln.depth * (g.node_w + g.gap_x);
    ln.y = g.margin + (column_height - this_height) / 2 + ln.row * (g.node_h + g.gap_y);
    const NodeMetrics* m = metrics ? metrics->find(tn.id) : nullptr;
    if (m) {
      ln.has_metrics = true;
      ln.rate = m->rate();
      ln.rate_in = m->rate_in;
      ln.rate_out = m->rate_out;
      ln.busy_share = m->busy_share;
      ln.queue_depth = m->queue_depth;
      ln.errors = m->node_errors();
      ln.client_errors = m->client_errors;
      ln.client_errors_exact = m->client_errors_exact;
      ln.busy_measured = m->busy_measured();
      ln.has_lag = m->has_lag();
      ln.lag_events = m->lag_events();
      ln.lag_seconds = m->lag_seconds().value_or(0);
      ln.health = node_health(*m, th);
    }
    ln.lines.push_back(tn.kind);
    if (m) {
      ln.lines.push_back(format_rate(ln.rate));
      char buf[96];
      if (ln.busy_measured)
        std::snprintf(buf, sizeof buf, "busy %.0f%% q %.0f", ln.busy_share * 100, ln.queue_depth);
      else  // no busy time reported: "0 %" would be a claim
        std::snprintf(buf, sizeof buf, "busy n/m q %.0f", ln.queue_depth);
      ln.lines.push_back(buf);
      if (ln.errors > 0 || ln.client_errors > 0) {
        std::snprintf(buf, sizeof buf, "err %llu  4xx %llu", static_cast<unsigned long long>(ln.errors),
                      static_cast<unsigned long long>(ln.client_errors));
        ln.lines.push_back(buf);
      }
      if (ln.has_lag) ln.lines.push_back(format_lag(ln.lag_events, m->lag_seconds()));
    } else {
      // A node of another service runs (and reports) in another process: say which, so an
      // operator knows to add that process's URL rather than suspect the node.
      ln.lines.push_back(tn.service.empty() ? "no metrics" : "no metrics (service " + tn.service + ")");
    }
    L.nodes.push_back(std::move(ln));
  }
  L.width = 2 * g.margin + (max_depth + 1) * g.node_w + max_depth * g.gap_x;
  L.height = 2 * g.margin + column_height;

  for (size_t e = 0; e < topo.edges.size(); ++e) {
    const TopoEdge& te = topo.edges[e];
    LayoutEdge le;
    le.from = te.from;
    le.to = te.to;
    le.from_index = L.find(te.from);
    le.to_index = L.find(te.to);
    if (le.from_index < 0 || le.to_index < 0) continue;
    le.store_mediated = te.store_mediated;
    le.back_edge = back[e];
    const NodeMetrics* m = metrics ? metrics->find(te.from) : nullptr;
    le.rate = m ? m->rate_out : 0;
    le.label = format_rate_short(le.rate);
    le.thickness = edge_thickness(le.rate);
    L.edges.push_back(std::move(le));
  }
  return L;
}

namespace {

// Adds instance `b`'s percentiles into `a` (counts and means are summed by the caller). Both
// with histograms (or empty): merged bucket by bucket and the percentiles recomputed as the
// server does (graph/metrics.cc); otherwise the maximum over instances, marked inexact.
void merge_latency(LatencyUs& a, const LatencyUs& b) {
  auto has_histogram = [](const LatencyUs& l) { return l.count == 0 || !l.buckets.empty(); };
  if (a.exact && b.exact && has_histogram(a) && has_histogram(b)) {
    std::vector<std::pair<double, double>> m;
    size_t i = 0, j = 0;
    while (i < a.buckets.size() || j < b.buckets.size()) {
      if (j == b.buckets.size() || (i < a.buckets.size() && a.buckets[i].first < b.buckets[j].first)) {
        m.push_back(a.buckets[i++]);
      } else if (i == a.buckets.size() || b.buckets[j].first < a.buckets[i].first) {
        m.push_back(b.buckets[j++]);
      } else {
        m.emplace_back(a.buckets[i].first, a.buckets[i].second + b.buckets[j].second);
        ++i, ++j;
      }
    }
    a.buckets = std::move(m);
    double total = 0;
    for (const auto& bk : a.buckets) total += bk.second;
    auto quantile = [&](double q) {
      if (total <= 0) return 0.0;
      const double rank = std::floor(q * (total - 1)) + 1;
      double seen = 0;
      for (const auto& bk : a.buckets)
        if ((seen += bk.second) >= rank) return bk.first;
      return a.buckets.back().first;
    };
    a.p50 = quantile(0.50);
    a.p95 = quantile(0.95);
    a.p99 = quantile(0.99);
    a.p999 = quantile(0.999);
    a.max = quantile(1.0);
    return;
  }
  a.exact = false;
  a.buckets.clear();
  a.p50 = std::max(a.p50, b.p50);
  a.p95 = std::max(a.p95, b.p95);
  a.p99 = std::max(a.p99, b.p99);
  a.p999 = std::max(a.p999, b.p999);
  a.max = std::max(a.max, b.max);
}

}  // namespace

MetricsSnapshot merge_metrics(const std::vector<const MetricsSnapshot*>& parts) {
  MetricsSnapshot out;
  bool first = true;
  for (const MetricsSnapshot* p : parts) {
    if (!p) continue;
    out.uptime_seconds = first ? p->uptime_seconds : std::min(out.uptime_seconds, p->uptime_seconds);
    first = false;
    for (const NodeMetrics& n : p->nodes) {
      NodeMetrics* t = nullptr;
      for (auto& x : out.nodes)
        if (x.id == n.id) t = &x;
      if (!t) {
        out.nodes.push_back(n);
        continue;
      }
      t->in += n.in;
      t->out += n.out;
      t->errors += n.errors;
      t->client_errors += n.client_errors;
      t->client_errors_exact = t->client_errors_exact && n.client_errors_exact;
      t->busy_seconds += n.busy_seconds;
      t->queue_depth += n.queue_depth;
      t->rate_in += n.rate_in;
      t->rate_out += n.rate_out;
      t->busy_share = std::max(t->busy_share, n.busy_share);
      auto& a = t->latency_us;
      const auto& b = n.latency_us;
      merge_latency(a, b);
      const double count = a.count + b.count;
      a.mean = count > 0 ? (a.mean * a.count + b.mean * b.count) / count : 0;
      a.count = count;
      if (t->last_error.empty()) t->last_error = n.last_error;
      for (const auto& [k, v] : n.gauges) {
        bool found = false;
        for (auto& [tk, tv] : t->gauges)
          if (tk == k) {
            tv = merge_rule(n.kind, k) == MergeRule::kSum ? tv + v : std::max(tv, v);
            found = true;
          }
        if (!found) t->gauges.emplace_back(k, v);
      }
    }
  }
  return out;
}

Totals compute_totals(const Topology& topo, const MetricsSnapshot& m) {
  Totals t;
  t.uptime_seconds = m.uptime_seconds;
  for (const TopoNode& tn : topo.nodes) {
    const NodeMetrics* nm = m.find(tn.id);
    if (!nm) continue;
    if (tn.source) t.commands_per_second += nm->rate_out;
    if (tn.output == "committed") t.events_per_second += nm->rate_out;
  }
  for (const NodeMetrics& nm : m.nodes) {
    if (nm.kind == "projection") {
      for (const auto& [name, value] : nm.gauges) {
        if (is_position_gauge(name)) continue;
        bool found = false;
        for (auto& [n, v] : t.domain_totals)
          if (n == name) {
            v += value;
            found = true;
          }
        if (!found) t.domain_totals.emplace_back(name, value);
      }
    }
    t.errors += nm.node_errors();
    t.client_errors += nm.client_errors;
    if (nm.busy_share > t.bottleneck_busy_share) {
      t.bottleneck_busy_share = nm.busy_share;
      t.bottleneck = nm.id;
    }
  }
  return t;
}

std::string format_clock(double unix_seconds) {
  std::time_t tt = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M:%S UTC", &tm);
  return buf;
}

std::string unreachable_banner(const ServerState& s, double now) {
  const double ago = std::max(0.0, now - s.unreachable_since);
  char buf[96];
  std::string text;
  if (s.unauthorized) {
    // A refused token is the user's to fix, not an outage: say what to check first.
    std::snprintf(buf, sizeof buf, ", %.0f s ago)", ago);
    text = "Server " + s.url + " unauthorized: check --token-file or ORDERFLOW_MONITOR_TOKEN (since " +
           format_clock(s.unreachable_since) + buf;
  } else {
    std::snprintf(buf, sizeof buf, " (%.0f s ago)", ago);
    text = "Server " + s.url + " unreachable since " + format_clock(s.unreachable_since) + buf;
  }
  if (!s.last_error.empty()) text += ": " + s.last_error;
  return text;
}

std::string format_dead_letter_counts(const DeadLetterCounts& c) {
  if (c.total() == 0) return c.more ? "dead letters: more not listed" : "no dead letters";
  const char* plus = c.more ? "+" : "";
  std::string text;
  if (c.dead_letters > 0)
    text = std::to_string(c.dead_letters) + plus + (c.dead_letters == 1 ? " dead letter" : " dead letters");
  if (c.parked > 0) text += (text.empty() ? "" : ", ") + std::to_string(c.parked) + plus + " parked";
  return text;
}

std::string format_dead_letter_line(const DeadLetterCounts& c) {
  const char* plus = c.more ? "+" : "";
  // A saga parks commands but has no dead-letter topic: its box says "parked N" alone.
  if (c.dead_letters == 0 && c.parked > 0 && !c.more) return "parked " + std::to_string(c.parked);
  std::string text = "dead " + std::to_string(c.dead_letters) + plus;
  if (c.parked > 0) text += "  parked " + std::to_string(c.parked) + plus;
  return text;
}

Snapshot make_snapshot(std::vector<ServerState> servers, double now, const HealthThresholds& thresholds) {
  Snapshot s;
  s.now = now;
  s.thresholds = thresholds;
  s.servers = std::move(servers);
  s.duplicate_of.assign(s.servers.size(), -1);
  std::vector<const MetricsSnapshot*> parts;
  for (size_t i = 0; i < s.servers.size(); ++i) {
    const ServerState& st = s.servers[i];
    if (!s.has_topology && st.has_topology) {
      s.topology = st.topology;
      s.has_topology = true;
    }
    // Two URLs of one process (127.0.0.1 and localhost, a proxy) report one instance id:
    // counted once, at the first reachable URL.
    const std::string id = st.instance_id();
    if (st.reachable && st.has_metrics && !id.empty())
      for (size_t k = 0; k < i; ++k)
        if (s.duplicate_of[k] < 0 && s.servers[k].reachable && s.servers[k].has_metrics &&
            s.servers[k].instance_id() == id) {
          s.duplicate_of[i] = static_cast<int>(k);
          break;
        }
    if (st.reachable && st.has_metrics && s.duplicate_of[i] < 0) parts.push_back(&st.metrics);
    if (st.ever_polled && !st.reachable) s.banners.push_back(unreachable_banner(st, now));
  }
  if (!parts.empty()) {
    s.metrics = merge_metrics(parts);
    s.has_metrics = true;
  }
  if (s.has_topology) {
    s.layout = compute_layout(s.topology, s.has_metrics ? &s.metrics : nullptr, LayoutGeometry{}, thresholds);
    if (s.has_metrics) s.totals = compute_totals(s.topology, s.metrics);
  }
  // Dead letters, each DLQ message once (see DeadLetterCounts).
  std::map<std::string, std::set<std::tuple<std::string, int, std::int64_t>>> seen;
  std::set<std::tuple<std::string, int, std::int64_t>> seen_all;
  for (size_t i = 0; i < s.servers.size(); ++i) {
    const ServerState& st = s.servers[i];
    if (s.duplicate_of[i] >= 0 || !st.dead_letters) continue;
    ++s.admin_servers;
    for (const DeadLetterSource& src : st.dead_letters->sources) {
      DeadLetterCounts& c = s.dead_letter_counts[src.node];
      c.more = c.more || src.more;
      s.dead_letter_total.more = s.dead_letter_total.more || src.more;
      for (const DeadLetter& d : src.dead_letters) {
        const auto key = std::make_tuple(d.topic, d.partition, d.offset);
        if (seen[src.node].insert(key).second) ++(d.parked() ? c.parked : c.dead_letters);
        if (seen_all.insert(key).second) ++(d.parked() ? s.dead_letter_total.parked : s.dead_letter_total.dead_letters);
      }
    }
  }
  // Commands the saga parked, each (node, command id) once over instances.
  std::set<std::pair<std::string, std::string>> seen_parked;
  for (size_t i = 0; i < s.servers.size(); ++i) {
    const ServerState& st = s.servers[i];
    if (s.duplicate_of[i] >= 0 || !st.parked) continue;
    for (const ParkedCommand& p : st.parked->parked) {
      if (!seen_parked.emplace(p.node, p.command_id).second) continue;
      ++s.dead_letter_counts[p.node].parked;
      ++s.dead_letter_total.parked;
    }
  }
  for (LayoutNode& n : s.layout.nodes) {
    auto it = s.dead_letter_counts.find(n.id);
    if (it == s.dead_letter_counts.end() || it->second.total() == 0) continue;
    // Right after the kind, so the box shows it before the figures the table has anyway.
    n.lines.insert(n.lines.begin() + std::min<std::ptrdiff_t>(1, static_cast<std::ptrdiff_t>(n.lines.size())),
                   format_dead_letter_line(it->second));
  }
  s.server_totals.resize(s.servers.size());
  for (size_t i = 0; i < s.servers.size(); ++i) {
    const ServerState& st = s.servers[i];
    if (s.has_topology && st.reachable && st.has_metrics) s.server_totals[i] = compute_totals(s.topology, st.metrics);
  }
  return s;
}

namespace {


void json_string(std::ostringstream& o, const std::string& s) {
  o << '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': o << "\\\""; break;
      case '\\': o << "\\\\"; break;
      case '\n': o << "\\n"; break;
      case '\r': o << "\\r"; break;
      case '\t': o << "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          o << buf;
        } else {
          o << c;
        }
    }
  }
  o << '"';
}

void json_number(std::ostringstream& o, double v) {
  if (!std::isfinite(v)) v = 0;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  o << buf;
}

}  // namespace

namespace {

void dump_counts(std::ostringstream& o, const DeadLetterCounts& c) {
  o << "{\"deadLetters\": " << c.dead_letters << ", \"parked\": " << c.parked
    << ", \"more\": " << (c.more ? "true" : "false") << "}";
}

void dump_view(std::ostringstream& o, const AdminView& v) {
  o << "\"status\": ";
  json_string(o, admin_status_name(v.status));
  o << ", \"httpStatus\": " << v.http_status << ", \"error\": ";
  json_string(o, v.error);
}

const char* replay_state_name(ReplayOutcome::State st) {
  switch (st) {
    case ReplayOutcome::State::kPending: return "pending";
    case ReplayOutcome::State::kDone: return "done";
    case ReplayOutcome::State::kFailed: return "failed";
  }
  return "failed";
}

// "deadLetters" and "subscribers" of dump_layout_json.
void dump_admin(std::ostringstream& o, const Snapshot& s) {
  o << "  \"deadLetters\": {\"total\": ";
  dump_counts(o, s.dead_letter_total);
  o << ", \"adminServers\": " << s.admin_servers << ", \"perNode\": {";
  bool first = true;
  for (const auto& [node, c] : s.dead_letter_counts) {
    o << (first ? "" : ", ");
    first = false;
    json_string(o, node);
    o << ": ";
    dump_counts(o, c);
  }
  o << "},\n    \"servers\": [";
  for (size_t i = 0; i < s.servers.size(); ++i) {
    const ServerState& st = s.servers[i];
    o << (i ? ",\n      " : "\n      ") << "{\"url\": ";
    json_string(o, st.url);
    o << ", \"instance\": ";
    json_string(o, st.dead_letters && !st.dead_letters->instance.empty() ? st.dead_letters->instance : st.instance_id());
    o << ", \"counted\": " << (i < s.duplicate_of.size() && s.duplicate_of[i] >= 0 ? "false" : "true") << ", ";
    dump_view(o, st.dead_letters_view);
    o << ", \"sources\": [";
    const auto* sources = st.dead_letters ? &st.dead_letters->sources : nullptr;
    for (size_t k = 0; sources && k < sources->size(); ++k) {
      const DeadLetterSource& src = (*sources)[k];
      o << (k ? ",\n        " : "\n        ") << "{\"node\": ";
      json_string(o, src.node);
      o << ", \"topic\": ";
      json_string(o, src.topic);
      o << ", \"more\": " << (src.more ? "true" : "false") << ", \"deadLetters\": " << src.count(false)
        << ", \"parked\": " << src.count(true) << ", \"rows\": [";
      for (size_t r = 0; r < src.dead_letters.size(); ++r) {
        const DeadLetter& d = src.dead_letters[r];
        o << (r ? ",\n          " : "\n          ") << "{\"kind\": ";
        json_string(o, d.kind);
        o << ", \"topic\": ";
        json_string(o, d.topic);
        o << ", \"partition\": " << d.partition << ", \"offset\": " << d.offset << ", \"timestampMs\": ";
        if (d.timestamp_ms)
          json_number(o, *d.timestamp_ms);
        else
          o << "null";
        o << ", \"key\": ";
        if (d.key)
          json_string(o, *d.key);
        else
          o << "null";
        o << ", \"source\": ";
        if (d.has_source) {
          o << "{\"topic\": ";
          json_string(o, d.source_topic);
          o << ", \"partition\": " << d.source_partition << ", \"offset\": " << d.source_offset << "}";
        } else {
          o << "null";
        }
        o << ", \"size\": " << d.size << ", \"originalSize\": " << d.original_size
          << ", \"truncated\": " << (d.truncated ? "true" : "false") << ", \"reason\": ";
        json_string(o, d.reason);
        o << ", \"shownReason\": ";
        json_string(o, escape_text(d.reason));
        o << ", \"replayable\": " << (d.replayable ? "true" : "false") << ", \"notReplayableBecause\": ";
        json_string(o, d.not_replayable_because);
        o << "}";
      }
      o << "]}";
    }
    o << "],\n       \"parkedView\": {";
    dump_view(o, st.parked_view);
    o << "}, \"parkedCommands\": [";
    const auto* parked = st.parked ? &st.parked->parked : nullptr;
    for (size_t k = 0; parked && k < parked->size(); ++k) {
      const ParkedCommand& p = (*parked)[k];
      o << (k ? ",\n        " : "\n        ") << "{\"node\": ";
      json_string(o, p.node);
      o << ", \"commandId\": ";
      json_string(o, p.command_id);
      o << ", \"command\": ";
      json_string(o, p.command);
      o << ", \"stream\": ";
      json_string(o, p.stream);
      o << ", \"eventStream\": ";
      json_string(o, p.event_stream);
      o << ", \"eventVersion\": " << p.event_version << ", \"attempts\": " << p.attempts << ", \"reason\": ";
      json_string(o, p.reason);
      o << "}";
    }
    o << "],\n       \"replays\": [";
    for (size_t k = 0; k < st.replays.size(); ++k) {
      const ReplayOutcome& r = st.replays[k];
      o << (k ? ", " : "") << "{\"id\": " << r.id << ", \"node\": ";
      json_string(o, r.request.node);
      o << ", \"parked\": " << (r.request.parked ? "true" : "false") << ", \"commandId\": ";
      json_string(o, r.request.command_id);
      o << ", \"all\": " << (r.request.all ? "true" : "false") << ", \"partition\": " << r.request.partition
        << ", \"offset\": " << r.request.offset << ", \"state\": \"" << replay_state_name(r.state)
        << "\", \"httpStatus\": " << r.http_status << ", \"replayed\": " << r.answer.replayed.size()
        << ", \"refused\": " << r.answer.refused.size() << ", \"failed\": " << r.answer.failed.size()
        << ", \"summary\": ";
      json_string(o, r.summary());
      o << "}";
    }
    o << "]}";
  }
  o << "\n    ]},\n  \"subscribers\": [";
  for (size_t i = 0; i < s.servers.size(); ++i) {
    const ServerState& st = s.servers[i];
    o << (i ? ",\n    " : "\n    ") << "{\"url\": ";
    json_string(o, st.url);
    o << ", ";
    dump_view(o, st.subscribers_view);
    o << ", \"subscribers\": [";
    for (size_t k = 0; st.subscribers && k < st.subscribers->size(); ++k) {
      const SubscriberInfo& sb = (*st.subscribers)[k];
      o << (k ? ", " : "") << "{\"feed\": ";
      json_string(o, sb.feed);
      o << ", \"subscriber\": ";
      json_string(o, sb.subscriber);
      o << ", \"kind\": ";
      json_string(o, sb.kind);
      o << ", \"checkpoint\": ";
      json_number(o, sb.checkpoint);
      o << ", \"head\": ";
      json_number(o, sb.head);
      o << ", \"behind\": ";
      json_number(o, sb.behind);
      o << "}";
    }
    o << "]}";
  }
  o << "\n  ]";
}

}  // namespace

std::string dump_layout_json(const Snapshot& s) {
  std::ostringstream o;
  o << "{\n  \"graph\": ";
  json_string(o, s.topology.name);
  o << ",\n  \"now\": ";
  json_number(o, s.now);
  o << ",\n  \"servers\": [";
  for (size_t i = 0; i < s.servers.size(); ++i) {
    const ServerState& st = s.servers[i];
    o << (i ? ",\n    " : "\n    ") << "{\"url\": ";
    json_string(o, st.url);
    o << ", \"instance\": ";
    json_string(o, st.instance_id());
    o << ", \"label\": ";
    json_string(o, st.label());
    o << ", \"service\": ";
    json_string(o, st.topology.service);
    o << ", \"duplicateOf\": " << (i < s.duplicate_of.size() ? s.duplicate_of[i] : -1);
    o << ", \"reachable\": " << (st.reachable ? "true" : "false")
      << ", \"unauthorized\": " << (!st.reachable && st.unauthorized ? "true" : "false")
      << ", \"everPolled\": " << (st.ever_polled ? "true" : "false") << ", \"unreachableSince\": ";
    json_number(o, st.unreachable_since);
    o << ", \"failures\": " << st.consecutive_failures << ", \"lastError\": ";
    json_string(o, st.last_error);
    if (i < s.server_totals.size()) {
      o << ", \"commandsPerSecond\": ";
      json_number(o, s.server_totals[i].commands_per_second);
      o << ", \"eventsPerSecond\": ";
      json_number(o, s.server_totals[i].events_per_second);
    }
    o << "}";
  }
  o << "\n  ],\n  \"banners\": [";
  for (size_t i = 0; i < s.banners.size(); ++i) {
    o << (i ? ", " : "");
    json_string(o, s.banners[i]);
  }
  o << "],\n  \"totals\": {\"commandsPerSecond\": ";
  json_number(o, s.totals.commands_per_second);
  o << ", \"eventsPerSecond\": ";
  json_number(o, s.totals.events_per_second);
  o << ", \"errors\": " << s.totals.errors << ", \"clientErrors\": " << s.totals.client_errors
    << ", \"uptimeSeconds\": ";
  json_number(o, s.totals.uptime_seconds);
  o << ", \"domainTotals\": {";
  for (size_t i = 0; i < s.totals.domain_totals.size(); ++i) {
    o << (i ? ", " : "");
    json_string(o, s.totals.domain_totals[i].first);
    o << ": ";
    json_number(o, s.totals.domain_totals[i].second);
  }
  o << "}";
  o << ", \"bottleneck\": ";
  json_string(o, s.totals.bottleneck);
  o << ", \"bottleneckBusyShare\": ";
  json_number(o, s.totals.bottleneck_busy_share);
  o << "},\n  \"thresholds\": {\"lagSecondsYellow\": ";
  json_number(o, s.thresholds.lag_seconds_yellow);
  o << ", \"lagSecondsRed\": ";
  json_number(o, s.thresholds.lag_seconds_red);
  o << ", \"lagEventsYellow\": ";
  json_number(o, s.thresholds.lag_events_yellow);
  o << ", \"lagEventsRed\": ";
  json_number(o, s.thresholds.lag_events_red);
  o << "},\n  \"width\": ";
  json_number(o, s.layout.width);
  o << ", \"height\": ";
  json_number(o, s.layout.height);
  o << ",\n  \"nodes\": [";
  for (size_t i = 0; i < s.layout.nodes.size(); ++i) {
    const LayoutNode& n = s.layout.nodes[i];
    o << (i ? ",\n    " : "\n    ") << "{\"id\": ";
    json_string(o, n.id);
    o << ", \"label\": ";
    json_string(o, n.label);
    o << ", \"kind\": ";
    json_string(o, n.kind);
    o << ", \"depth\": " << n.depth << ", \"row\": " << n.row << ", \"x\": ";
    json_number(o, n.x);
    o << ", \"y\": ";
    json_number(o, n.y);
    o << ", \"w\": ";
    json_number(o, n.w);
    o << ", \"h\": ";
    json_number(o, n.h);
    o << ", \"hasMetrics\": " << (n.has_metrics ? "true" : "false") << ", \"rate\": ";
    json_number(o, n.rate);
    o << ", \"rateIn\": ";
    json_number(o, n.rate_in);
    o << ", \"rateOut\": ";
    json_number(o, n.rate_out);
    o << ", \"busyShare\": ";
    json_number(o, n.busy_share);
    o << ", \"queueDepth\": ";
    json_number(o, n.queue_depth);
    o << ", \"busyMeasured\": " << (n.busy_measured ? "true" : "false") << ", \"errors\": " << n.errors
      << ", \"clientErrors\": " << n.client_errors
      << ", \"clientErrorsExact\": " << (n.client_errors_exact ? "true" : "false")
      << ", \"hasLag\": " << (n.has_lag ? "true" : "false") << ", \"lagEvents\": ";
    json_number(o, n.lag_events);
    o << ", \"lagSeconds\": ";
    json_number(o, n.lag_seconds);
    o << ", \"p99Us\": ";
    const NodeMetrics* merged = s.has_metrics ? s.metrics.find(n.id) : nullptr;
    json_number(o, merged ? merged->latency_us.p99 : 0);
    o << ", \"health\": \"" << health_name(n.health) << "\", \"lines\": [";
    for (size_t k = 0; k < n.lines.size(); ++k) {
      o << (k ? ", " : "");
      json_string(o, n.lines[k]);
    }
    o << "],\n     \"instances\": [";
    for (size_t k = 0; k < s.servers.size(); ++k) {
      const ServerState& st = s.servers[k];
      const NodeMetrics* m = st.reachable && st.has_metrics ? st.metrics.find(n.id) : nullptr;
      o << (k ? ", " : "") << "{\"url\": ";
      json_string(o, st.url);
      o << ", \"instance\": ";
      json_string(o, st.instance_id());
      o << ", \"counted\": " << (k < s.duplicate_of.size() && s.duplicate_of[k] >= 0 ? "false" : "true");
      o << ", \"hasMetrics\": " << (m ? "true" : "false");
      if (m) {
        o << ", \"rateIn\": ";
        json_number(o, m->rate_in);
        o << ", \"rateOut\": ";
        json_number(o, m->rate_out);
        o << ", \"busyShare\": ";
        json_number(o, m->busy_share);
        o << ", \"queueDepth\": ";
        json_number(o, m->queue_depth);
        o << ", \"errors\": " << m->node_errors() << ", \"clientErrors\": " << m->client_errors
          << ", \"p99Us\": ";
        json_number(o, m->latency_us.p99);
        if (m->has_lag()) {
          o << ", \"lagEvents\": ";
          json_number(o, m->lag_events());
          if (const auto ls = m->lag_seconds()) {
            o << ", \"lagSeconds\": ";
            json_number(o, *ls);
          }
        }
        if (const auto cp = m->gauge("checkpoint")) {
          o << ", \"checkpoint\": ";
          json_number(o, *cp);
        }
      }
      o << "}";
    }
    o << "]}";
  }
  o << "\n  ],\n  \"edges\": [";
  for (size_t i = 0; i < s.layout.edges.size(); ++i) {
    const LayoutEdge& e = s.layout.edges[i];
    o << (i ? ",\n    " : "\n    ") << "{\"from\": ";
    json_string(o, e.from);
    o << ", \"to\": ";
    json_string(o, e.to);
    o << ", \"label\": ";
    json_string(o, e.label);
    o << ", \"rate\": ";
    json_number(o, e.rate);
    o << ", \"thickness\": ";
    json_number(o, e.thickness);
    o << ", \"dashed\": " << (e.store_mediated ? "true" : "false")
      << ", \"backEdge\": " << (e.back_edge ? "true" : "false") << "}";
  }
  o << "\n  ],\n";
  dump_admin(o, s);
  o << "\n}\n";
  return o.str();
}

}  // namespace orderflow::monitor
