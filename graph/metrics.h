// Per-node probes and their export (Prometheus text, JSON snapshot).
//
// A NodeProbe is owned by the MetricsRegistry (shared_ptr) and held by its node; counters
// are relaxed atomics updated on the hot path without locks. Gauges and the last error are
// set rarely (once per batch or per error) and take a small mutex. Collection can be
// switched off process-wide (NodeProbe::set_enabled(false), the metrics-off baseline of
// `orderflow bench`): then counters, busy time, latency and gauges are not updated (one
// relaxed load per call); errors are still counted. MetricsRegistry is
// thread-safe; sample() is called about once a second by one thread to derive rates.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace orderflow {

namespace metrics_detail {

inline constexpr int kStripes = 16;

// Round robin over the threads as they first count something: hot threads of one
// pipeline start close together, so they get different stripes (a thread that came and
// went may share one; the sums stay exact either way). Inline: it is on every count.
inline int stripe_of_this_thread() {
  static std::atomic<unsigned> next{0};
  thread_local const int mine = static_cast<int>(next.fetch_add(1, std::memory_order_relaxed) % kStripes);
  return mine;
}

}  // namespace metrics_detail

// Latencies in microseconds, kept twice on the hot path (relaxed atomics, no locks):
// - log-linear buckets: exact below 16, then 8 sub-buckets per power of two (about 12%
//   resolution), up to about 2^40 us; they give the JSON percentiles and let the monitor
//   merge several instances exactly;
// - the exported buckets (kExportBoundsUs, 50 us .. 10 s, and one above), striped per
//   thread like the probes' counters together with the sum, for a Prometheus histogram
//   whose `le` bounds are round numbers of seconds that dashboards and alerts can name.
// Thread-safe; readers may see a record in one set of buckets before the other.
class Histogram {
 public:
  static constexpr int kSub = 8;
  static constexpr int kBuckets = 16 + 37 * kSub;
  // Upper bounds (inclusive) of the exported buckets; values above the last go to +Inf.
  static constexpr std::array<uint64_t, 17> kExportBoundsUs = {
      50,    100,    250,    500,    1000,    2500,    5000,    10000,   25000,
      50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
  static constexpr int kExportBuckets = static_cast<int>(kExportBoundsUs.size()) + 1;  // + the +Inf bucket

  void record(uint64_t us) {
    buckets_[bucket_of(us)].fetch_add(1, std::memory_order_relaxed);
    Stripe& s = stripes_[metrics_detail::stripe_of_this_thread()];
    s.exported[export_bucket_of(us)].fetch_add(1, std::memory_order_relaxed);
    s.sum_us.fetch_add(us, std::memory_order_relaxed);
  }
  struct Summary {
    uint64_t count = 0;
    double mean_us = 0, p50_us = 0, p95_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
    // Non-empty buckets as (largest value in the bucket, count), ascending: lets a reader
    // merge several instances' histograms exactly (the monitor does).
    std::vector<std::pair<uint64_t, uint64_t>> buckets;
  };
  Summary summary() const;
  // The exported buckets, cumulative as Prometheus wants them: cumulative[i] counts the
  // values <= kExportBoundsUs[i]; the last entry (+Inf) is `count`.
  struct Exported {
    std::array<uint64_t, kExportBuckets> cumulative{};
    uint64_t count = 0;
    uint64_t sum_us = 0;
  };
  Exported exported() const;
  static int bucket_of(uint64_t us);
  static uint64_t bucket_upper(int bucket);  // largest value that falls in the bucket
  static int export_bucket_of(uint64_t us) {
    return static_cast<int>(std::lower_bound(kExportBoundsUs.begin(), kExportBoundsUs.end(), us) -
                            kExportBoundsUs.begin());
  }

 private:
  struct alignas(64) Stripe {
    std::atomic<uint64_t> sum_us{0};
    std::array<std::atomic<uint64_t>, kExportBuckets> exported{};
  };
  uint64_t sum_us() const;

  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::array<Stripe, metrics_detail::kStripes> stripes_{};
};

class NodeProbe {
 public:
  NodeProbe(std::string id, std::string kind) : id_(std::move(id)), kind_(std::move(kind)) {}

  const std::string& id() const { return id_; }
  const std::string& kind() const { return kind_; }

  // Counters are striped: each thread adds to its own cache line, readers sum the stripes.
  // One shared line bounced between the cores on every message (route, lanes and commit
  // count a command from two or three threads each).
  void add_in(uint64_t n = 1) {
    if (enabled()) mine().in.fetch_add(n, std::memory_order_relaxed);
  }
  void add_out(uint64_t n = 1) {
    if (enabled()) mine().out.fetch_add(n, std::memory_order_relaxed);
  }
  void add_busy_ns(uint64_t ns) {
    if (enabled()) mine().busy_ns.fetch_add(ns, std::memory_order_relaxed);
  }
  void queue_add(int64_t n) {
    if (enabled()) mine().queue.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
  }
  void record_latency_us(uint64_t us) {
    if (enabled()) latency_.record(us);
  }
  void add_error(const std::string& what);  // counts and keeps the text of the last one (always)
  // Sets a node figure (no-op while disabled). A figure is exported on /metrics as a
  // gauge, or as a counter when declared one (declare_figure) or named `*_total`: the
  // value of a counter figure is the running total, never a delta.
  void set_gauge(const std::string& name, double value);
  // Process-wide switch, default on. When off, every probe call above except add_error
  // does nothing and BusyTimer reads no clock (the "metrics off" baseline). Switch it
  // only while no pipeline runs: counters updated on one side of a switch stay skewed.
  static bool enabled() { return enabled_.load(std::memory_order_relaxed); }
  static void set_enabled(bool on) { enabled_.store(on, std::memory_order_relaxed); }

  uint64_t in() const { return sum(&Stripe::in); }
  uint64_t out() const { return sum(&Stripe::out); }
  uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }
  uint64_t busy_ns() const { return sum(&Stripe::busy_ns); }
  // Summed stripe by stripe, a reader can see a message leave (on one thread's stripe)
  // before it saw it arrive (on another's): a transient negative reads as 0.
  int64_t queue_depth() const { return std::max<int64_t>(0, static_cast<int64_t>(sum(&Stripe::queue))); }
  const Histogram& latency() const { return latency_; }
  std::string last_error() const;
  std::map<std::string, double> gauges() const;

 private:
  struct alignas(64) Stripe {
    std::atomic<uint64_t> in{0}, out{0}, busy_ns{0};
    std::atomic<uint64_t> queue{0};  // a signed count kept modulo 2^64; the sum is cast back
  };
  Stripe& mine() { return stripes_[metrics_detail::stripe_of_this_thread()]; }
  uint64_t sum(std::atomic<uint64_t> Stripe::*field) const {
    uint64_t total = 0;
    for (const auto& s : stripes_) total += (s.*field).load(std::memory_order_relaxed);
    return total;
  }

  static std::atomic<bool> enabled_;
  const std::string id_, kind_;
  std::array<Stripe, metrics_detail::kStripes> stripes_{};
  std::atomic<uint64_t> errors_{0};
  Histogram latency_;
  mutable std::mutex mu_;  // guards the two below
  std::string last_error_;
  std::map<std::string, double> gauges_;
};

// Times a node body: adds busy time and latency on destruction.
class BusyTimer {
 public:
  explicit BusyTimer(NodeProbe& p) : probe_(p), start_(NodeProbe::enabled() ? now() : 0) {}
  ~BusyTimer() {
    if (start_ == 0) return;
    const uint64_t ns = now() - start_;
    probe_.add_busy_ns(ns);
  }
  static uint64_t now() {
    return static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }

 private:
  NodeProbe& probe_;
  const uint64_t start_;
};

// How node figures (NodeProbe::set_gauge names) appear in the Prometheus exposition.
// Each becomes its own family, orderflow_<family> (plus `_total` for a counter), with
// the labels node and kind: `consumer_lag` of node "kin" is
// orderflow_consumer_lag{node="kin",kind="kafka_source"}. A prefix declaration maps
// figure names that carry a variable part (a partition, an operation) onto one family
// with that part as a label. Figures nobody declared: a counter when the name ends in
// `_total`, else a gauge, family = the name with characters outside [a-zA-Z0-9_] as `_`.
enum class FigureType { kGauge, kCounter };
struct FigureSpec {
  FigureType type = FigureType::kGauge;
  std::string help;
  std::string family;  // default: the figure's name (a counter's without a trailing _total)
  std::string label;   // prefix declarations: the label that takes the rest of the name
};
// Process-wide catalogue, thread-safe; graph/metrics.cc declares the figures the nodes
// and connectors set today. A node kind adds its own once, e.g. when it is registered.
// Returns false (and declares nothing) for an invalid family or label name, a gauge
// family ending in _total, or a family already declared with the other type.
bool declare_figure(const std::string& name, FigureSpec spec);
bool declare_figure_prefix(const std::string& prefix, FigureSpec spec);

// Figures of this process from /proc/self (Linux), for the standard process_* metrics.
// A field that could not be read is negative.
struct ProcessStats {
  double cpu_seconds = -1;         // user + system
  double resident_bytes = -1;
  double virtual_bytes = -1;
  double start_time_seconds = -1;  // since the Unix epoch
  double open_fds = -1;
  double max_fds = -1;             // the soft RLIMIT_NOFILE
};
ProcessStats read_process_stats();

struct NodeSnapshot {
  std::string id, kind;
  uint64_t in = 0, out = 0, errors = 0, busy_ns = 0;
  int64_t queue_depth = 0;
  double rate_in = 0, rate_out = 0, busy_share = 0;  // per second / fraction of one core, last sample
  Histogram::Summary latency;
  Histogram::Exported latency_buckets;  // for the Prometheus histogram
  std::string last_error;
  std::map<std::string, double> gauges;
};

struct MetricsSnapshot {
  double uptime_s = 0;
  std::vector<NodeSnapshot> nodes;
};

class MetricsRegistry {
 public:
  MetricsRegistry();
  std::shared_ptr<NodeProbe> probe(const std::string& id, const std::string& kind);  // get or create
  void sample();  // derive rates from the counters since the previous sample
  MetricsSnapshot snapshot() const;
  std::string to_json() const;
  // Prometheus text format 0.0.4: per-node families, figures as declared (see
  // FigureSpec), the latency histogram in seconds, process_* and orderflow_build_info.
  std::string to_prometheus() const;
  // The graph this registry's pipeline runs, for orderflow_build_info's `graph` label
  // (empty until set).
  void set_graph_name(std::string name);
  // The process's instance id (--instance-id), sent as "instance" in to_json() so the
  // monitor tells instances apart (empty, the default: not sent).
  void set_instance(std::string id);
  // Readiness as /readyz answers it, exported as orderflow_ready (1 or 0) once set: the
  // readiness check calls it, the alert rules in deploy/ watch it.
  void set_ready(bool ready);

 private:
  struct Last {
    uint64_t in = 0, out = 0, busy_ns = 0;
    double rate_in = 0, rate_out = 0, busy_share = 0;
  };
  const std::chrono::steady_clock::time_point start_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<NodeProbe>> probes_;
  std::vector<Last> last_;
  std::chrono::steady_clock::time_point last_sample_;
  std::string graph_name_;
  std::string instance_;
  int ready_ = -1;  // -1: never set (no orderflow_ready sample)
};

}  // namespace orderflow
