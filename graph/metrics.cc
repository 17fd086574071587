#include "graph/metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <bit>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

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
  s.mean_us = static_cast<double>(sum_us()) / static_cast<double>(total);
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

uint64_t Histogram::sum_us() const {
  uint64_t total = 0;
  for (const auto& st : stripes_) total += st.sum_us.load(std::memory_order_relaxed);
  return total;
}

Histogram::Exported Histogram::exported() const {
  Exported e;
  std::array<uint64_t, kExportBuckets> per{};
  for (const auto& st : stripes_)
    for (int i = 0; i < kExportBuckets; ++i) per[i] += st.exported[i].load(std::memory_order_relaxed);
  uint64_t running = 0;
  for (int i = 0; i < kExportBuckets; ++i) e.cumulative[i] = running += per[i];
  e.count = running;  // from the same reads: +Inf always equals _count
  e.sum_us = sum_us();
  return e;
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
    n.latency_buckets = p.latency().exported();
    n.last_error = p.last_error();
    n.gauges = p.gauges();
    s.nodes.push_back(std::move(n));
  }
  return s;
}

std::string MetricsRegistry::to_json() const {
  const MetricsSnapshot s = snapshot();
  JsonWriter w;
  w.begin_object();
  {
    std::lock_guard lock(mu_);
    if (!instance_.empty()) w.field("instance", instance_);
  }
  w.field("uptimeSeconds", s.uptime_s).key("nodes").begin_array();
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

void MetricsRegistry::set_instance(std::string id) {
  std::lock_guard lock(mu_);
  instance_ = std::move(id);
}

void MetricsRegistry::set_graph_name(std::string name) {
  std::lock_guard lock(mu_);
  graph_name_ = std::move(name);
}

void MetricsRegistry::set_ready(bool ready) {
  std::lock_guard lock(mu_);
  ready_ = ready ? 1 : 0;
}

// ---- figure catalogue -----------------------------------------------------------------

namespace {

bool valid_metric_name(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string without_total(std::string s) {
  if (ends_with(s, "_total")) s.resize(s.size() - 6);
  return s;
}

// Families the registry exports itself (orderflow_<family>): figures must not take them.
bool registry_family(const std::string& family) {
  return family.rfind("node_", 0) == 0 || family == "uptime_seconds" || family == "build_info" || family == "ready";
}

// Suffixes a reader takes for a histogram's or summary's series.
bool histogram_suffix(const std::string& family) {
  return ends_with(family, "_bucket") || ends_with(family, "_count") || ends_with(family, "_sum");
}

bool reserved_family(const std::string& family) { return registry_family(family) || histogram_suffix(family); }

struct Catalogue {
  std::mutex mu;
  std::map<std::string, FigureSpec> exact, prefixes;
  std::map<std::string, FigureType> families;  // one type per family

  // The figures nodes/ and connectors/ set today; a node kind may add or refine its own.
  Catalogue() {
    using T = FigureType;
    auto g = [&](const char* name, const char* help, const char* family = "") {
      declare(name, FigureSpec{T::kGauge, help, family, ""}, exact);
    };
    auto c = [&](const char* name, const char* help, const char* family = "") {
      declare(name, FigureSpec{T::kCounter, help, family, ""}, exact);
    };
    // Change-feed subscribers (projection, saga, sinks): figures of the subscriber's node.
    g("lag_events", "Committed events the subscriber has not checkpointed yet.");
    g("lag_seconds", "Age of the oldest event the subscriber is handling (0 when caught up).");
    g("checkpoint", "Last global position the subscriber checkpointed.");
    // change feed (its live tail)
    c("store_events_read", "Events the change feed read from the event store.");
    c("tail_hits", "Batches a subscriber took from the change feed's live tail instead of the store.");
    // commit
    g("last_batch_commands", "Commands in the last group commit.");
    g("mean_batch_commands", "Mean commands per group commit since start.");
    // projection: the domain's running totals (Domain::counters) are declared by the node.
    // Kafka source
    g("consumer_lag", "Messages between the committed offsets and the partitions' ends, summed.");
    g("partitions", "Partitions assigned to this consumer.");
    g("paused", "1 while consumption is paused for backpressure.");
    g("in_flight", "Messages consumed and not yet completed.");
    c("pauses", "Times consumption paused for backpressure.");
    c("dead_lettered", "Messages sent to the dead-letter topic.");
    c("rejected", "Commands the domain rejected.");
    c("resubmitted", "Commands resubmitted after a retriable failure.");
    c("parked", "Commands parked on the dead-letter topic: they kept failing while others went through.");
    c("redelivered_skipped", "Redelivered messages skipped as already handled.");
    declare("lag.", FigureSpec{T::kGauge, "Messages behind the end of one partition.", "kafka_partition_lag", "partition"},
            prefixes);
    // Kafka sink
    c("delivery_errors", "Messages the producer failed to deliver.");
    c("queue_full", "Produce calls that found the producer's queue full.");
    // Cosmos DB client
    c("request_units_total", "Request units charged by Cosmos DB.", "cosmos_request_units");
    c("throttles_total", "Requests Cosmos DB throttled (429).", "cosmos_throttles");
    c("retries_total", "Cosmos DB requests retried.", "cosmos_retries");
    g("ru_per_command", "Request units per committed command.", "cosmos_ru_per_command");
    declare("ru_", FigureSpec{T::kCounter, "Request units charged by Cosmos DB, by operation.",
                              "cosmos_operation_request_units", "operation"},
            prefixes);
    declare("leases_", FigureSpec{T::kGauge, "Change-feed leases held, by subscriber and owner.", "cosmos_leases",
                                  "subscriber_owner"},
            prefixes);
    declare("lag_lsn_", FigureSpec{T::kGauge, "Change-feed lag in LSNs, by subscriber and partition key range.",
                                   "cosmos_feed_lag_lsn", "subscriber_range"},
            prefixes);
  }

  // Fills the default family; false if the declaration is not acceptable.
  bool check(const std::string& name, FigureSpec& spec, bool prefix) {
    if (spec.family.empty()) spec.family = name;
    if (spec.type == FigureType::kCounter) spec.family = without_total(spec.family);
    if (!valid_metric_name(spec.family) || reserved_family(spec.family)) return false;
    if (spec.type == FigureType::kGauge && ends_with(spec.family, "_total")) return false;
    if (prefix != !spec.label.empty()) return false;
    if (prefix && (!valid_metric_name(spec.label) || spec.label.rfind("__", 0) == 0 || spec.label == "node" ||
                   spec.label == "kind" || spec.label == "le" || spec.label == "quantile"))
      return false;
    auto it = families.find(spec.family);
    return it == families.end() || it->second == spec.type;
  }

  bool declare(const std::string& name, FigureSpec spec, std::map<std::string, FigureSpec>& into) {
    if (name.empty() || !check(name, spec, &into == &prefixes)) return false;
    families[spec.family] = spec.type;
    into[name] = std::move(spec);
    return true;
  }

  // The export of one figure: its spec (family filled) and the label value of a prefix.
  std::pair<FigureSpec, std::string> resolve(const std::string& name) {
    std::lock_guard lock(mu);
    if (auto it = exact.find(name); it != exact.end()) return {it->second, ""};
    const std::pair<const std::string, FigureSpec>* best = nullptr;
    for (const auto& entry : prefixes)
      if (name.size() > entry.first.size() && name.rfind(entry.first, 0) == 0 &&
          (best == nullptr || entry.first.size() > best->first.size()))
        best = &entry;
    if (best != nullptr) return {best->second, name.substr(best->first.size())};
    FigureSpec spec;
    spec.type = ends_with(name, "_total") ? FigureType::kCounter : FigureType::kGauge;
    std::string family = spec.type == FigureType::kCounter ? without_total(name) : name;
    for (char& ch : family)
      if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
    // Names a reader would take for something else get a suffix (a gauge named like a
    // counter, a histogram's series); one the registry uses itself, or one a figure of
    // the other type owns, a prefix.
    if (histogram_suffix(family) || (spec.type == FigureType::kGauge && ends_with(family, "_total")))
      family += "_value";
    auto it = families.find(family);
    if (family.empty() || std::isdigit(static_cast<unsigned char>(family[0])) || registry_family(family) ||
        (it != families.end() && it->second != spec.type))
      family = "figure_" + family;
    spec.family = std::move(family);
    spec.help = "Node figure " + name + " (undeclared).";
    return {spec, ""};
  }
};

Catalogue& catalogue() {
  static Catalogue c;
  return c;
}

}  // namespace

bool declare_figure(const std::string& name, FigureSpec spec) {
  auto& c = catalogue();
  std::lock_guard lock(c.mu);
  return c.declare(name, std::move(spec), c.exact);
}

bool declare_figure_prefix(const std::string& prefix, FigureSpec spec) {
  auto& c = catalogue();
  std::lock_guard lock(c.mu);
  return c.declare(prefix, std::move(spec), c.prefixes);
}

// ---- process figures ------------------------------------------------------------------

ProcessStats read_process_stats() {
  ProcessStats p;
  std::ifstream stat_file("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  // The command name (field 2) is in parentheses and may hold spaces: count after it.
  if (const size_t close = stat.rfind(')'); close != std::string::npos) {
    std::istringstream rest(stat.substr(close + 1));
    std::vector<std::string> f;  // f[0] is field 3 (state)
    for (std::string tok; rest >> tok;) f.push_back(tok);
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
    if (f.size() >= 22 && ticks > 0 && page > 0) {
      p.cpu_seconds = (std::stod(f[14 - 3]) + std::stod(f[15 - 3])) / ticks;
      p.virtual_bytes = std::stod(f[23 - 3]);
      p.resident_bytes = std::stod(f[24 - 3]) * page;
      // Field 22 is the start in ticks after boot; /proc/stat's btime is the boot time.
      std::ifstream proc_stat("/proc/stat");
      for (std::string line; std::getline(proc_stat, line);)
        if (line.rfind("btime ", 0) == 0) p.start_time_seconds = std::stod(line.substr(6)) + std::stod(f[22 - 3]) / ticks;
    }
  }
  if (DIR* d = ::opendir("/proc/self/fd"); d != nullptr) {
    const std::string own = std::to_string(::dirfd(d));  // the listing's own descriptor
    int n = 0;
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.' && own != e->d_name) ++n;
    ::closedir(d);
    p.open_fds = n;
  }
  if (rlimit rl{}; ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    p.max_fds = static_cast<double>(rl.rlim_cur);
  return p;
}

// ---- Prometheus text ------------------------------------------------------------------

namespace {

// Shortest text that reads back as the same double, in %g style (the style of the usual
// client libraries' `le` labels: 5e-05, 0.0001): counters keep every digit (a rate() over
// 1234567891 needs them), fractions get no noise digits.
std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  // Whole numbers in full: %g would turn 1234567891 into 1.234567891e+09.
  const auto r = v == std::floor(v) && std::fabs(v) < 1e15
                     ? std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed)
                     : std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general);
  return std::string(buf, r.ptr);
}

// Label values escape backslash, double quote and newline; HELP text backslash and newline.
std::string escape(const std::string& s, bool quote) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

using Labels = std::vector<std::pair<std::string, std::string>>;

// Families in first-use order; each family's samples stay together (the format requires
// it) and a series (name and labels) appears once.
class Exposition {
 public:
  void family(const std::string& name, const char* type, const std::string& help) {
    if (index_.count(name) == 0) {
      index_[name] = families_.size();
      families_.push_back(Family{name, type, help, "", {}});
    }
    current_ = &families_[index_[name]];
  }
  // A sample of the current family; suffix: "_bucket", "_sum", "_count" or "".
  void sample(const char* suffix, const Labels& labels, double value) {
    std::string series = current_->name + suffix;
    if (!labels.empty()) {
      series += '{';
      for (size_t i = 0; i < labels.size(); ++i) {
        if (i > 0) series += ',';
        series += labels[i].first + "=\"" + escape(labels[i].second, true) + '"';
      }
      series += '}';
    }
    if (!current_->series.insert(series).second) return;
    current_->body += series + ' ' + format_value(value) + '\n';
  }
  std::string text() const {
    std::string out;
    for (const auto& f : families_) {
      if (f.body.empty()) continue;
      out += "# HELP " + f.name + ' ' + escape(f.help, false) + "\n# TYPE " + f.name + ' ' + f.type + '\n' + f.body;
    }
    return out;
  }

 private:
  struct Family {
    std::string name, type, help, body;
    std::set<std::string> series;
  };
  std::vector<Family> families_;
  std::map<std::string, size_t> index_;
  Family* current_ = nullptr;
};

}  // namespace

std::string MetricsRegistry::to_prometheus() const {
  const MetricsSnapshot s = snapshot();
  std::string graph;
  int ready = -1;
  {
    std::lock_guard lock(mu_);
    graph = graph_name_;
    ready = ready_;
  }
  Exposition x;
  x.family("orderflow_build_info", "gauge", "Version of this build and the graph it runs (always 1).");
  x.sample("", {{"version", ORDERFLOW_VERSION}, {"graph", graph}}, 1);
  x.family("orderflow_uptime_seconds", "gauge", "Seconds since the metrics registry started.");
  x.sample("", {}, s.uptime_s);
  if (ready >= 0) {
    x.family("orderflow_ready", "gauge", "1 while the server is ready (see /readyz), else 0.");
    x.sample("", {}, ready);
  }

  auto per_node = [&](const char* name, const char* type, const char* help, auto value) {
    x.family(name, type, help);
    for (const auto& n : s.nodes) x.sample("", {{"node", n.id}, {"kind", n.kind}}, static_cast<double>(value(n)));
  };
  per_node("orderflow_node_messages_in_total", "counter", "Messages received by the node.",
           [](const NodeSnapshot& n) { return n.in; });
  per_node("orderflow_node_messages_out_total", "counter", "Messages emitted or completed by the node.",
           [](const NodeSnapshot& n) { return n.out; });
  per_node("orderflow_node_errors_total", "counter", "Messages that failed in the node.",
           [](const NodeSnapshot& n) { return n.errors; });
  per_node("orderflow_node_busy_seconds_total", "counter", "Time spent in the node's body.",
           [](const NodeSnapshot& n) { return static_cast<double>(n.busy_ns) / 1e9; });
  per_node("orderflow_node_queue_depth", "gauge", "Messages waiting for or inside the node.",
           [](const NodeSnapshot& n) { return n.queue_depth; });

  x.family("orderflow_node_latency_seconds", "histogram",
           "Time from ingest to the node's completion of a message (per node kind, see the README).");
  for (const auto& n : s.nodes) {
    const auto& h = n.latency_buckets;
    for (int i = 0; i < Histogram::kExportBuckets; ++i) {
      const bool inf = i + 1 == Histogram::kExportBuckets;
      const std::string le = inf ? "+Inf" : format_value(static_cast<double>(Histogram::kExportBoundsUs[i]) / 1e6);
      x.sample("_bucket", {{"node", n.id}, {"kind", n.kind}, {"le", le}}, static_cast<double>(h.cumulative[i]));
    }
    x.sample("_sum", {{"node", n.id}, {"kind", n.kind}}, static_cast<double>(h.sum_us) / 1e6);
    x.sample("_count", {{"node", n.id}, {"kind", n.kind}}, static_cast<double>(h.count));
  }

  // Node figures, each in its own family (see FigureSpec).
  for (const auto& n : s.nodes)
    for (const auto& [name, value] : n.gauges) {
      const auto [spec, label_value] = catalogue().resolve(name);
      const bool counter = spec.type == FigureType::kCounter;
      x.family("orderflow_" + spec.family + (counter ? "_total" : ""), counter ? "counter" : "gauge", spec.help);
      Labels labels = {{"node", n.id}, {"kind", n.kind}};
      if (!spec.label.empty()) labels.emplace_back(spec.label, label_value);
      x.sample("", labels, value);
    }

  const ProcessStats p = read_process_stats();
  auto process = [&](const char* name, const char* type, const char* help, double v) {
    if (v < 0) return;
    x.family(name, type, help);
    x.sample("", {}, v);
  };
  process("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", p.cpu_seconds);
  process("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", p.resident_bytes);
  process("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", p.virtual_bytes);
  process("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
          p.start_time_seconds);
  process("process_open_fds", "gauge", "Number of open file descriptors.", p.open_fds);
  process("process_max_fds", "gauge", "Maximum number of open file descriptors.", p.max_fds);
  return x.text();
}

}  // namespace orderflow
