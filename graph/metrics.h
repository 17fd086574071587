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

// Log-linear histogram of microsecond latencies: exact below 16, then 8 sub-buckets per
// power of two (about 12% resolution), up to about 2^40 us.
class Histogram {
 public:
  static constexpr int kSub = 8;
  static constexpr int kBuckets = 16 + 37 * kSub;

  void record(uint64_t us) {
    buckets_[bucket_of(us)].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(us, std::memory_order_relaxed);
  }
  struct Summary {
    uint64_t count = 0;
    double mean_us = 0, p50_us = 0, p95_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
    // Non-empty buckets as (largest value in the bucket, count), ascending: lets a reader
    // merge several instances' histograms exactly (the monitor does).
    std::vector<std::pair<uint64_t, uint64_t>> buckets;
  };
  Summary summary() const;
  static int bucket_of(uint64_t us);
  static uint64_t bucket_upper(int bucket);  // largest value that falls in the bucket

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_{0};
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
  void set_gauge(const std::string& name, double value);  // no-op while disabled
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
  static constexpr int kStripes = 16;
  struct alignas(64) Stripe {
    std::atomic<uint64_t> in{0}, out{0}, busy_ns{0};
    std::atomic<uint64_t> queue{0};  // a signed count kept modulo 2^64; the sum is cast back
  };
  // Round robin over the threads as they first count something: hot threads of one
  // pipeline start close together, so they get different stripes (a thread that came and
  // went may share one; the sums stay exact either way). Inline: it is on every count.
  static int stripe_of_this_thread() {
    static std::atomic<unsigned> next{0};
    thread_local const int mine = static_cast<int>(next.fetch_add(1, std::memory_order_relaxed) % kStripes);
    return mine;
  }
  Stripe& mine() { return stripes_[stripe_of_this_thread()]; }
  uint64_t sum(std::atomic<uint64_t> Stripe::*field) const {
    uint64_t total = 0;
    for (const auto& s : stripes_) total += (s.*field).load(std::memory_order_relaxed);
    return total;
  }

  static std::atomic<bool> enabled_;
  const std::string id_, kind_;
  std::array<Stripe, kStripes> stripes_{};
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

struct NodeSnapshot {
  std::string id, kind;
  uint64_t in = 0, out = 0, errors = 0, busy_ns = 0;
  int64_t queue_depth = 0;
  double rate_in = 0, rate_out = 0, busy_share = 0;  // per second / fraction of one core, last sample
  Histogram::Summary latency;
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
  std::string to_prometheus() const;

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
};

}  // namespace orderflow
