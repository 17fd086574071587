#include "graph/metrics.h"

#include <bit>
#include <cmath>
#include <cstdio>

#include "graph/json.h"

namespace orderflow {

std::atomic<bool> NodeProbe::enabled_{true};

int Histogram::bucket_of(uint64_t us) {
  if (us < 16) return static_cast<int>(us);
  const int msb = 63 - std::countl_zero(us);            // >= 4
  const int sub = static_cast<int>((us >> (msb - 3)) & (kSub - 1));
  const int b = 16 + (msb - 4) * kSub + sub;
  return b < kBuckets ? b : kBuckets - 1;
}

uint64_t Histogram::bucket_upper(int b) {
  if (b < 16) return static_cast<uint64_t>(b);
  const int msb = (b - 16) / kSub + 4;
  const uint64_t sub = static_cast<uint64_t>((b - 16) % kSub);
  const uint64_t base = (uint64_t{1} << msb) | (sub << (msb - 3));
  return base + (uint64_t{1} << (msb - 3)) - 1;
}

Histogram::Summary Histogram::summary() const {
  Summary s;
  std::array<uint64_t, kBuckets> c;
  uint64_t total = 0;
  for (int i = 0; i < kBuckets; ++i) total += c[i] = buckets_[i].load(std::memory_order_relaxed);
  s.count = total;
  if (total == 0) return s;
  for (int i = 0; i < kBuckets; ++i)
    if (c[i] > 0) s.buckets.emplace_back(bucket_upper(i), c[i]);
  s.mean_us = static_cast<double>(sum_.load(std::memory_order_relaxed)) / static_cast<double>(total);
  auto quantile = [&](double q) {
    const uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total - 1)) + 1;
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += c[i];
      if (seen >= rank) return static_cast<double>(bucket_upper(i));
    }
    return static_cast<double>(bucket_upper(kBuckets - 1));
  };
  s.p50_us = quantile(0.50);
  s.p95_us = quantile(0.95);
  s.p99_us = quantile(0.99);
  s.p999_us = quantile(0.999);
  s.max_us = quantile(1.0);
  return s;
}

void NodeProbe::add_error(const std::string& what) {
  errors_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  last_error_ = what;
}

void NodeProbe::set_gauge(const std::string& name, double value) {
  if (!enabled()) return;
  std::lock_guard lock(mu_);
  gauges_[name] = value;
}

std::string NodeProbe::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

std::map<std::string, double> NodeProbe::gauges() const {
  std::lock_guard lock(mu_);
  return gauges_;
}

MetricsRegistry::MetricsRegistry()
    : start_(std::chrono::steady_clock::now()), last_sample_(start_) {}

std::shared_ptr<NodeProbe> MetricsRegistry::probe(const std::string& id, const std::string& kind) {
  std::lock_guard lock(mu_);
  for (auto& p : probes_)
    if (p->id() == id) return p;
  probes_.push_back(std::make_shared<NodeProbe>(id, kind));
  last_.emplace_back();
  return probes_.back();
}

void MetricsRegistry::sample() {
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  const double dt = std::chrono::duration<double>(now - last_sample_).count();
  if (dt <= 0) return;
  last_sample_ = now;
  for (size_t i = 0; i < probes_.size(); ++i) {
    const auto& p = *probes_[i];
    Last& l = last_[i];
    const uint64_t in = p.in(), out = p.out(), busy = p.busy_ns();
    l.rate_in = static_cast<double>(in - l.in) / dt;
    l.rate_out = static_cast<double>(out - l.out) / dt;
    l.busy_share = static_cast<double>(busy - l.busy_ns) / 1e9 / dt;
    l.in = in;
    l.out = out;
    l.busy_ns = busy;
  }
}

MetricsSnapshot MetricsRegistry::snapshot() const {
  MetricsSnapshot s;
  std::lock_guard lock(mu_);
  s.uptime_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  for (size_t i = 0; i < probes_.size(); ++i) {
    const auto& p = *probes_[i];
    NodeSnapshot n;
    n.id = p.id();
    n.kind = p.kind();
    n.in = p.in();
    n.out = p.out();
    n.errors = p.errors();
    n.busy_ns = p.busy_ns();
    n.queue_depth = p.queue_depth();
    n.rate_in = last_[i].rate_in;
    n.rate_out = last_[i].rate_out;
    n.busy_share = last_[i].busy_share;
    n.latency = p.latency().summary();
    n.last_error = p.last_error();
    n.gauges = p.gauges();
    s.nodes.push_back(std::move(n));
  }
  return s;
}

std::string MetricsRegistry::to_json() const {
  const MetricsSnapshot s = snapshot();
  JsonWriter w;
  w.begin_object().field("uptimeSeconds", s.uptime_s).key("nodes").begin_array();
  for (const auto& n : s.nodes) {
    w.begin_object()
        .field("id", n.id)
        .field("kind", n.kind)
        .field("in", n.in)
        .field("out", n.out)
        .field("errors", n.errors)
        .field("busySeconds", static_cast<double>(n.busy_ns) / 1e9)
        .field("queueDepth", n.queue_depth)
        .field("rateIn", n.rate_in)
        .field("rateOut", n.rate_out)
        .field("busyShare", n.busy_share)
        .key("latencyUs")
        .begin_object()
        .field("count", n.latency.count)
        .field("mean", n.latency.mean_us)
        .field("p50", n.latency.p50_us)
        .field("p95", n.latency.p95_us)
        .field("p99", n.latency.p99_us)
        .field("p999", n.latency.p999_us)
        .field("max", n.latency.max_us)
        .key("buckets")
        .begin_array();
    for (const auto& [upper, count] : n.latency.buckets) w.begin_array().value(upper).value(count).end_array();
    w.end_array()
        .end_object()
        .field("lastError", n.last_error)
        .key("gauges")
        .begin_object();
    for (const auto& [k, v] : n.gauges) w.field(k, v);
    w.end_object().end_object();
  }
  w.end_array().end_object();
  return w.take();
}

std::string MetricsRegistry::to_prometheus() const {
  const MetricsSnapshot s = snapshot();
  std::string out;
  char buf[512];
  auto line = [&](const char* name, const NodeSnapshot& n, const char* extra, double v) {
    // Integral values (counters) print every digit; %g would round past 10^9.
    if (v == std::floor(v) && std::fabs(v) < 9e15)
      std::snprintf(buf, sizeof buf, "%s{node=\"%s\",kind=\"%s\"%s} %.0f\n", name, n.id.c_str(),
                    n.kind.c_str(), extra, v);
    else
      std::snprintf(buf, sizeof buf, "%s{node=\"%s\",kind=\"%s\"%s} %.9g\n", name, n.id.c_str(),
                    n.kind.c_str(), extra, v);
    out += buf;
  };
  auto header = [&](const char* name, const char* type, const char* help) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  out += "# HELP orderflow_uptime_seconds Seconds since the metrics registry started.\n"
         "# TYPE orderflow_uptime_seconds gauge\n";
  std::snprintf(buf, sizeof buf, "orderflow_uptime_seconds %.3f\n", s.uptime_s);
  out += buf;
  header("orderflow_node_messages_in_total", "counter", "Messages received by the node.");
  for (const auto& n : s.nodes) line("orderflow_node_messages_in_total", n, "", static_cast<double>(n.in));
  header("orderflow_node_messages_out_total", "counter", "Messages emitted or completed by the node.");
  for (const auto& n : s.nodes) line("orderflow_node_messages_out_total", n, "", static_cast<double>(n.out));
  header("orderflow_node_errors_total", "counter", "Messages that failed in the node.");
  for (const auto& n : s.nodes) line("orderflow_node_errors_total", n, "", static_cast<double>(n.errors));
  header("orderflow_node_busy_seconds_total", "counter", "Time spent in the node's body.");
  for (const auto& n : s.nodes)
    line("orderflow_node_busy_seconds_total", n, "", static_cast<double>(n.busy_ns) / 1e9);
  header("orderflow_node_queue_depth", "gauge", "Messages waiting for or inside the node.");
  for (const auto& n : s.nodes) line("orderflow_node_queue_depth", n, "", static_cast<double>(n.queue_depth));
  header("orderflow_node_latency_microseconds", "summary", "Node latency (ingest to this node's completion).");
  for (const auto& n : s.nodes) {
    line("orderflow_node_latency_microseconds", n, ",quantile=\"0.5\"", n.latency.p50_us);
    line("orderflow_node_latency_microseconds", n, ",quantile=\"0.99\"", n.latency.p99_us);
    line("orderflow_node_latency_microseconds", n, ",quantile=\"0.999\"", n.latency.p999_us);
    std::snprintf(buf, sizeof buf, "orderflow_node_latency_microseconds_count{node=\"%s\",kind=\"%s\"} %llu\n",
                  n.id.c_str(), n.kind.c_str(), static_cast<unsigned long long>(n.latency.count));
    out += buf;
  }
  header("orderflow_node_gauge", "gauge", "Node-specific figures (e.g. change-feed lag), by name.");
  for (const auto& n : s.nodes)
    for (const auto& [k, v] : n.gauges) line("orderflow_node_gauge", n, (",name=\"" + k + "\"").c_str(), v);
  return out;
}

}  // namespace orderflow
