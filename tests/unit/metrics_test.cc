// Tests for metrics: histogram buckets and percentiles, node probes, the registry's rates,
// its Prometheus exposition (escaping, histogram, typed figures, process_*, build info) and
// JSON export, /proc figures, and probes updated from several threads.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <time.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <utility>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "graph/metrics.h"

namespace orderflow {
namespace {

using namespace std::chrono_literals;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---- Histogram ----------------------------------------------------------------------

// v lies in bucket_of(v): at most its upper bound, above the previous bucket's upper bound.
void expect_in_its_bucket(uint64_t v) {
  const int b = Histogram::bucket_of(v);
  ASSERT_GE(b, 0);
  ASSERT_LT(b, Histogram::kBuckets);
  const uint64_t upper = Histogram::bucket_upper(b);
  EXPECT_GE(upper, v) << "v=" << v << " bucket=" << b;
  if (b > 0) {
    EXPECT_LT(Histogram::bucket_upper(b - 1), v) << "v=" << v << " bucket=" << b;
  }
  if (v >= 16) {
    const double rel = static_cast<double>(upper - v) / static_cast<double>(v);
    EXPECT_LE(rel, 0.125) << "v=" << v << " upper=" << upper;
  } else {
    EXPECT_EQ(upper, v) << "values below 16 are exact";
  }
}

TEST(Histogram, EveryValueUpTo2Pow16IsWithinItsBucket) {
  for (uint64_t v = 0; v <= (1u << 16); ++v) {
    expect_in_its_bucket(v);
    if (HasFailure()) return;
  }
}

TEST(Histogram, LargeValuesAreWithinTheirBucket) {
  std::mt19937_64 rng(7);
  const uint64_t limit = Histogram::bucket_upper(Histogram::kBuckets - 1);
  EXPECT_GE(limit, uint64_t{1} << 40) << "the range covers about 2^40 us";
  for (int msb = 16; msb <= 40; ++msb) {
    const uint64_t p = uint64_t{1} << msb;
    for (uint64_t v : {p - 1, p, p + 1, p + p / 16, p + p / 8 - 1, p + p / 8, 2 * p - 1}) expect_in_its_bucket(v);
  }
  for (int i = 0; i < 100000; ++i) expect_in_its_bucket(rng() % limit + 1);
}

TEST(Histogram, BucketsAreContiguousAndOrdered) {
  for (int b = 0; b < Histogram::kBuckets; ++b) {
    const uint64_t upper = Histogram::bucket_upper(b);
    EXPECT_EQ(Histogram::bucket_of(upper), b) << b;
    if (b + 1 < Histogram::kBuckets) {
      EXPECT_EQ(Histogram::bucket_of(upper + 1), b + 1) << b;
      EXPECT_LT(upper, Histogram::bucket_upper(b + 1));
    }
  }
  // Beyond the range everything lands in the last bucket rather than out of bounds.
  EXPECT_EQ(Histogram::bucket_of(~uint64_t{0}), Histogram::kBuckets - 1);
  EXPECT_EQ(Histogram::bucket_of(uint64_t{1} << 50), Histogram::kBuckets - 1);
}

TEST(Histogram, EmptySummaryIsAllZero) {
  Histogram h;
  const auto s = h.summary();
  EXPECT_EQ(s.count, 0u);
  EXPECT_EQ(s.mean_us, 0);
  EXPECT_EQ(s.p50_us, 0);
  EXPECT_EQ(s.p99_us, 0);
  EXPECT_EQ(s.p999_us, 0);
  EXPECT_EQ(s.max_us, 0);
}

TEST(Histogram, SmallValuesAreExact) {
  Histogram h;
  for (uint64_t v = 1; v <= 10; ++v) h.record(v);
  const auto s = h.summary();
  EXPECT_EQ(s.count, 10u);
  EXPECT_DOUBLE_EQ(s.mean_us, 5.5);
  EXPECT_EQ(s.p50_us, 5);
  EXPECT_EQ(s.max_us, 10);
}

TEST(Histogram, PercentilesOfAUniformDistributionWithinBucketResolution) {
  Histogram h;
  std::vector<uint64_t> values;
  for (uint64_t v = 1; v <= 10000; ++v) values.push_back(v);
  std::shuffle(values.begin(), values.end(), std::mt19937(3));  // order must not matter
  for (uint64_t v : values) h.record(v);
  const auto s = h.summary();
  EXPECT_EQ(s.count, 10000u);
  EXPECT_DOUBLE_EQ(s.mean_us, 5000.5);
  auto within = [](double got, double exact) {
    EXPECT_GE(got, exact) << "a percentile is reported as its bucket's upper bound";
    EXPECT_LE(got, exact * 1.125) << "exact " << exact;
  };
  within(s.p50_us, 5000);
  within(s.p95_us, 9500);
  within(s.p99_us, 9900);
  within(s.p999_us, 9990);
  within(s.max_us, 10000);
  EXPECT_LE(s.p50_us, s.p95_us);
  EXPECT_LE(s.p95_us, s.p99_us);
  EXPECT_LE(s.p99_us, s.p999_us);
  EXPECT_LE(s.p999_us, s.max_us);
}

TEST(Histogram, OneOutlierShowsOnlyInTheTail) {
  Histogram h;
  for (int i = 0; i < 999; ++i) h.record(100);
  h.record(1000000);
  const auto s = h.summary();
  EXPECT_LE(s.p50_us, 100 * 1.125);
  EXPECT_LE(s.p99_us, 100 * 1.125);
  EXPECT_GE(s.max_us, 1000000);
  EXPECT_LE(s.max_us, 1000000 * 1.125);
}

// ---- NodeProbe ----------------------------------------------------------------------

TEST(NodeProbe, CountersGaugesAndLastError) {
  NodeProbe p("lane-1", "command_lane");
  EXPECT_EQ(p.id(), "lane-1");
  EXPECT_EQ(p.kind(), "command_lane");
  EXPECT_EQ(p.in(), 0u);
  EXPECT_EQ(p.last_error(), "");
  EXPECT_TRUE(p.gauges().empty());

  p.add_in();
  p.add_in(4);
  p.add_out(3);
  p.add_busy_ns(1500);
  p.queue_add(5);
  p.queue_add(-2);
  p.record_latency_us(40);
  p.record_latency_us(60);
  p.add_error("first");
  p.add_error("second");
  p.set_gauge("lag", 10);
  p.set_gauge("lag", 12.5);
  p.set_gauge("cache", 3);

  EXPECT_EQ(p.in(), 5u);
  EXPECT_EQ(p.out(), 3u);
  EXPECT_EQ(p.busy_ns(), 1500u);
  EXPECT_EQ(p.queue_depth(), 3);
  EXPECT_EQ(p.errors(), 2u);
  EXPECT_EQ(p.last_error(), "second");
  EXPECT_EQ(p.latency().summary().count, 2u);
  EXPECT_DOUBLE_EQ(p.latency().summary().mean_us, 50);
  const auto g = p.gauges();
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g.at("lag"), 12.5);
  EXPECT_EQ(g.at("cache"), 3);
}

TEST(NodeProbe, BusyTimerAddsTimeOnlyWhenEnabled) {
  NodeProbe p("n", "k");
  ASSERT_TRUE(NodeProbe::enabled());
  {
    BusyTimer t(p);
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_GE(p.busy_ns(), 1000000u);
  const uint64_t busy = p.busy_ns();
  NodeProbe::set_enabled(false);
  {
    BusyTimer t(p);
    std::this_thread::sleep_for(2ms);
  }
  NodeProbe::set_enabled(true);
  EXPECT_EQ(p.busy_ns(), busy);
}

TEST(NodeProbe, DisabledProbeRecordsNothingButErrors) {
  NodeProbe p("n", "k");
  NodeProbe::set_enabled(false);
  p.add_in(3);
  p.add_out(2);
  p.add_busy_ns(500);
  p.queue_add(4);
  p.record_latency_us(10);
  p.set_gauge("lag", 1);
  p.add_error("still counted");
  NodeProbe::set_enabled(true);
  EXPECT_EQ(p.in(), 0u);
  EXPECT_EQ(p.out(), 0u);
  EXPECT_EQ(p.busy_ns(), 0u);
  EXPECT_EQ(p.queue_depth(), 0);
  EXPECT_EQ(p.latency().summary().count, 0u);
  EXPECT_TRUE(p.gauges().empty());
  EXPECT_EQ(p.errors(), 1u);
  EXPECT_EQ(p.last_error(), "still counted");
  p.add_in();
  EXPECT_EQ(p.in(), 1u);  // on again
}

// ---- MetricsRegistry ----------------------------------------------------------------

TEST(MetricsRegistry, ProbeIsGetOrCreateById) {
  MetricsRegistry r;
  auto a = r.probe("lane", "command_lane");
  auto b = r.probe("lane", "command_lane");
  auto c = r.probe("feed", "change_feed");
  EXPECT_EQ(a.get(), b.get());
  EXPECT_NE(a.get(), c.get());
  const auto s = r.snapshot();
  ASSERT_EQ(s.nodes.size(), 2u);
  EXPECT_EQ(s.nodes[0].id, "lane");
  EXPECT_EQ(s.nodes[1].id, "feed");
  EXPECT_EQ(s.nodes[1].kind, "change_feed");
  a->add_in(3);
  EXPECT_EQ(r.snapshot().nodes[0].in, 3u);
}

TEST(MetricsRegistry, SampleDerivesRatesSinceTheLastSample) {
  MetricsRegistry r;
  auto p = r.probe("lane", "command_lane");
  EXPECT_EQ(r.snapshot().nodes[0].rate_in, 0) << "no rate before the first sample";
  p->add_in(100);
  p->add_out(50);
  p->add_busy_ns(1000000);
  std::this_thread::sleep_for(20ms);
  r.sample();
  auto n = r.snapshot().nodes[0];
  EXPECT_GT(n.rate_in, 0);
  EXPECT_GT(n.rate_out, 0);
  EXPECT_GT(n.busy_share, 0);
  EXPECT_DOUBLE_EQ(n.rate_in, 2 * n.rate_out) << "both rates share one interval";

  // Nothing happened since: the rates drop to zero, the totals stay.
  std::this_thread::sleep_for(5ms);
  r.sample();
  n = r.snapshot().nodes[0];
  EXPECT_EQ(n.rate_in, 0);
  EXPECT_EQ(n.rate_out, 0);
  EXPECT_EQ(n.in, 100u);
  EXPECT_GT(r.snapshot().uptime_s, 0);
}

MetricsRegistry& populated(MetricsRegistry& r) {
  auto lane = r.probe("lane", "command_lane");
  lane->add_in(5);
  lane->add_out(4);
  lane->add_error("boom \"quoted\"");
  lane->record_latency_us(100);
  lane->record_latency_us(200);
  lane->record_latency_us(300);
  auto feed = r.probe("feed", "change_feed");
  feed->set_gauge("lag", 42);
  feed->queue_add(7);
  return r;
}

// ---- Prometheus exposition ----------------------------------------------------------

// One sample line of the text format, parsed back: name, labels (unescaped) and value.
struct Sample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  std::string value;
  std::string label(const std::string& key) const {
    for (const auto& [k, v] : labels)
      if (k == key) return v;
    return "<absent>";
  }
};

// Parses every line strictly (the grammar of text format 0.0.4); fails the test on a line
// that does not parse, so a stray quote or newline in a label value shows up here.
std::vector<Sample> parse_exposition(const std::string& text) {
  std::vector<Sample> out;
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) continue;
    Sample s;
    size_t i = 0;
    while (i < line.size() && (std::isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_' || line[i] == ':'))
      s.name += line[i++];
    EXPECT_FALSE(s.name.empty()) << line;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        std::string key, value;
        while (i < line.size() && line[i] != '=') key += line[i++];
        if (i + 1 >= line.size() || line[i + 1] != '"') {
          ADD_FAILURE() << "label without a quoted value: " << line;
          return out;
        }
        i += 2;
        bool closed = false;
        while (i < line.size()) {
          const char c = line[i++];
          if (c == '"') {
            closed = true;
            break;
          }
          if (c != '\\') {
            value += c;
            continue;
          }
          if (i >= line.size()) break;
          const char e = line[i++];
          if (e == 'n') {
            value += '\n';
          } else if (e == '\\' || e == '"') {
            value += e;
          } else {
            ADD_FAILURE() << "unknown escape \\" << e << " in " << line;
          }
        }
        if (!closed) {
          ADD_FAILURE() << "unterminated label value: " << line;
          return out;
        }
        s.labels.emplace_back(key, value);
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;  // '}'
    }
    if (i >= line.size() || line[i] != ' ') {
      ADD_FAILURE() << "no value: " << line;
      continue;
    }
    s.value = line.substr(i + 1);
    EXPECT_FALSE(s.value.empty()) << line;
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<Sample> samples_named(const std::vector<Sample>& all, const std::string& name) {
  std::vector<Sample> out;
  for (const auto& s : all)
    if (s.name == name) out.push_back(s);
  return out;
}

TEST(MetricsRegistry, PrometheusTextHasHelpTypeAndNodeLabels) {
  MetricsRegistry r;
  const std::string text = "\n" + populated(r).to_prometheus();  // "\n# HELP" also for the first family
  for (const auto& [name, type] : std::vector<std::pair<std::string, std::string>>{
           {"orderflow_build_info", "gauge"},
           {"orderflow_uptime_seconds", "gauge"},
           {"orderflow_node_messages_in_total", "counter"},
           {"orderflow_node_messages_out_total", "counter"},
           {"orderflow_node_errors_total", "counter"},
           {"orderflow_node_busy_seconds_total", "counter"},
           {"orderflow_node_queue_depth", "gauge"},
           {"orderflow_node_latency_seconds", "histogram"},
           {"orderflow_lag", "gauge"},
       }) {
    EXPECT_TRUE(contains(text, "\n# HELP " + name + " ")) << name;
    EXPECT_TRUE(contains(text, "\n# TYPE " + name + " " + type + "\n")) << name << "\n" << text;
  }
  EXPECT_TRUE(contains(text, "\norderflow_node_messages_in_total{node=\"lane\",kind=\"command_lane\"} 5\n"));
  EXPECT_TRUE(contains(text, "\norderflow_node_messages_out_total{node=\"lane\",kind=\"command_lane\"} 4\n"));
  EXPECT_TRUE(contains(text, "\norderflow_node_errors_total{node=\"lane\",kind=\"command_lane\"} 1\n"));
  EXPECT_TRUE(contains(text, "\norderflow_node_messages_in_total{node=\"feed\",kind=\"change_feed\"} 0\n"));
  EXPECT_TRUE(contains(text, "\norderflow_node_queue_depth{node=\"feed\",kind=\"change_feed\"} 7\n"));
  EXPECT_TRUE(contains(text, "\norderflow_lag{node=\"feed\",kind=\"change_feed\"} 42\n")) << text;
  EXPECT_TRUE(contains(text, "\norderflow_node_latency_seconds_count{node=\"lane\",kind=\"command_lane\"} 3\n"));
  EXPECT_TRUE(contains(text, "\norderflow_node_latency_seconds_sum{node=\"lane\",kind=\"command_lane\"} 0.0006\n"));
  EXPECT_FALSE(contains(text, "orderflow_node_gauge")) << "no generic gauge family any more";
  EXPECT_FALSE(contains(text, "microseconds")) << "durations are in seconds";

  // Every line parses; each family's samples follow its TYPE line without interruption.
  const auto samples = parse_exposition(text.substr(1));
  std::set<std::string> seen_types;
  std::string current;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.rfind("# TYPE ", 0) == 0) {
      const std::string family = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(seen_types.insert(family).second) << "family appears twice: " << family;
      current = family;
    } else if (line.rfind("# ", 0) != 0) {
      EXPECT_EQ(line.rfind(current, 0), 0u) << "sample outside its family " << current << ": " << line;
    }
  }
  EXPECT_GT(samples.size(), 20u);
}

// A node id may hold any character: the issue's `ht"tp\x` with a newline once made the
// whole scrape invalid.
TEST(MetricsRegistry, PrometheusEscapesLabelValues) {
  MetricsRegistry r;
  const std::string id = "ht\"tp\\x\nsecond line";
  auto p = r.probe(id, "http_source");
  p->add_in(2);
  p->set_gauge("lag.orders\"[0]", 3);
  r.set_graph_name("g\\\"\n");
  const std::string text = r.to_prometheus();
  EXPECT_TRUE(contains(text, "orderflow_node_messages_in_total{node=\"ht\\\"tp\\\\x\\nsecond line\",kind=\"http_source\"} 2\n"))
      << text;
  const auto samples = parse_exposition(text);
  const auto in = samples_named(samples, "orderflow_node_messages_in_total");
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].label("node"), id) << "the escaped value reads back as the id";
  const auto lag = samples_named(samples, "orderflow_kafka_partition_lag");
  ASSERT_EQ(lag.size(), 1u);
  EXPECT_EQ(lag[0].label("node"), id);
  EXPECT_EQ(lag[0].label("partition"), "orders\"[0]");
  const auto info = samples_named(samples, "orderflow_build_info");
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].label("graph"), "g\\\"\n");
}

TEST(MetricsRegistry, PrometheusHistogramIsCumulativeInSecondsWithInfEqualToCount) {
  MetricsRegistry r;
  auto p = r.probe("commit", "commit");
  // On and just past bounds: 50 us is in le="5e-05", 51 us in the next; past 10 s only +Inf.
  for (uint64_t us : {0, 50, 51, 100, 1000, 1000, 999999, 10000000, 10000001, 50000000}) p->record_latency_us(us);
  const auto samples = parse_exposition(r.to_prometheus());
  const auto buckets = samples_named(samples, "orderflow_node_latency_seconds_bucket");
  ASSERT_EQ(buckets.size(), Histogram::kExportBoundsUs.size() + 1);
  std::map<std::string, double> by_le;
  double previous = 0, previous_le = 0;
  for (size_t i = 0; i < buckets.size(); ++i) {
    const std::string le = buckets[i].label("le");
    const double count = std::stod(buckets[i].value);
    by_le[le] = count;
    EXPECT_GE(count, previous) << "cumulative: le=" << le;
    previous = count;
    if (i + 1 < buckets.size()) {
      EXPECT_GT(std::stod(le), previous_le) << "ascending bounds";
      previous_le = std::stod(le);
      EXPECT_DOUBLE_EQ(std::stod(le), static_cast<double>(Histogram::kExportBoundsUs[i]) / 1e6);
    } else {
      EXPECT_EQ(le, "+Inf");
    }
  }
  EXPECT_EQ(by_le["5e-05"], 2);    // 0, 50
  EXPECT_EQ(by_le["0.0001"], 4);   // + 51, 100
  EXPECT_EQ(by_le["0.001"], 6);    // + 1000 twice
  EXPECT_EQ(by_le["1"], 7);        // + 999999
  EXPECT_EQ(by_le["10"], 8);       // + 10 s exactly
  EXPECT_EQ(by_le["+Inf"], 10);
  const auto count = samples_named(samples, "orderflow_node_latency_seconds_count");
  const auto sum = samples_named(samples, "orderflow_node_latency_seconds_sum");
  ASSERT_EQ(count.size(), 1u);
  ASSERT_EQ(sum.size(), 1u);
  EXPECT_EQ(std::stod(count[0].value), by_le["+Inf"]);
  EXPECT_DOUBLE_EQ(std::stod(sum[0].value), 71.002201);  // the microseconds above, in seconds
}

TEST(Histogram, ExportedBucketsMatchTheirBounds) {
  for (size_t i = 0; i < Histogram::kExportBoundsUs.size(); ++i) {
    const uint64_t bound = Histogram::kExportBoundsUs[i];
    EXPECT_EQ(Histogram::export_bucket_of(bound), static_cast<int>(i)) << bound;
    EXPECT_EQ(Histogram::export_bucket_of(bound + 1), static_cast<int>(i + 1)) << bound;
  }
  EXPECT_EQ(Histogram::export_bucket_of(0), 0);
  EXPECT_EQ(Histogram::export_bucket_of(~uint64_t{0}), Histogram::kExportBuckets - 1);
  Histogram h;
  const auto empty = h.exported();
  EXPECT_EQ(empty.count, 0u);
  EXPECT_EQ(empty.cumulative.back(), 0u);
}

// Node figures become typed families of their own; running counts are counters.
TEST(MetricsRegistry, PrometheusFiguresAreTypedFamilies) {
  MetricsRegistry r;
  auto kin = r.probe("kin", "kafka_source");
  kin->set_gauge("consumer_lag", 12);
  kin->set_gauge("lag.orders.commands[3]", 5);
  kin->set_gauge("dead_lettered", 2);
  auto projection = r.probe("projection", "projection");
  // A domain's running total, declared as the projection node does (Domain::counters).
  ASSERT_TRUE(declare_figure("orders_confirmed", FigureSpec{FigureType::kCounter, "Orders confirmed.", "", ""}));
  projection->set_gauge("orders_confirmed", 7);
  projection->set_gauge("lag_seconds", 0.25);
  auto cosmos = r.probe("cosmos", "cosmos");
  cosmos->set_gauge("throttles_total", 4);
  cosmos->set_gauge("ru_create", 12.5);
  auto odd = r.probe("odd", "test");
  odd->set_gauge("made.up-figure", 1);
  odd->set_gauge("widgets_total", 9);
  odd->set_gauge("node_messages_in", 1);  // would shadow a family of the registry's own
  odd->set_gauge("wait_count", 2);        // would read as a histogram's series
  odd->set_gauge("odd.total", 3);         // a gauge that would read as a counter
  const std::string text = r.to_prometheus();

  EXPECT_TRUE(contains(text, "# TYPE orderflow_consumer_lag gauge\norderflow_consumer_lag{node=\"kin\",kind=\"kafka_source\"} 12\n"))
      << text;
  EXPECT_TRUE(contains(text, "# TYPE orderflow_kafka_partition_lag gauge\n"
                             "orderflow_kafka_partition_lag{node=\"kin\",kind=\"kafka_source\",partition=\"orders.commands[3]\"} 5\n"));
  EXPECT_TRUE(contains(text, "# TYPE orderflow_dead_lettered_total counter\n"
                             "orderflow_dead_lettered_total{node=\"kin\",kind=\"kafka_source\"} 2\n"));
  EXPECT_TRUE(contains(text, "# TYPE orderflow_orders_confirmed_total counter\n"
                             "orderflow_orders_confirmed_total{node=\"projection\",kind=\"projection\"} 7\n"));
  EXPECT_TRUE(contains(text, "# TYPE orderflow_lag_seconds gauge\norderflow_lag_seconds{node=\"projection\",kind=\"projection\"} 0.25\n"));
  EXPECT_TRUE(contains(text, "# TYPE orderflow_cosmos_throttles_total counter\n"
                             "orderflow_cosmos_throttles_total{node=\"cosmos\",kind=\"cosmos\"} 4\n"));
  EXPECT_TRUE(contains(text, "orderflow_cosmos_operation_request_units_total{node=\"cosmos\",kind=\"cosmos\",operation=\"create\"} 12.5\n"));
  // Undeclared: the name decides, with the characters a metric name cannot hold replaced.
  EXPECT_TRUE(contains(text, "# TYPE orderflow_made_up_figure gauge\norderflow_made_up_figure{node=\"odd\",kind=\"test\"} 1\n"));
  EXPECT_TRUE(contains(text, "# TYPE orderflow_widgets_total counter\norderflow_widgets_total{node=\"odd\",kind=\"test\"} 9\n"));
  EXPECT_TRUE(contains(text, "# TYPE orderflow_figure_node_messages_in gauge\n")) << text;
  EXPECT_TRUE(contains(text, "# TYPE orderflow_wait_count_value gauge\n")) << text;
  EXPECT_TRUE(contains(text, "# TYPE orderflow_odd_total_value gauge\n")) << text;
  // The JSON snapshot for the monitor keeps every figure under its own name.
  const auto json = r.to_json();
  EXPECT_TRUE(contains(json, "\"orders_confirmed\":7")) << json;
  EXPECT_TRUE(contains(json, "\"lag.orders.commands[3]\":5")) << json;
}

TEST(MetricsRegistry, DeclaredFiguresAndRefusedDeclarations) {
  EXPECT_TRUE(declare_figure("test_widgets_made", {FigureType::kCounter, "Widgets made.", "", ""}));
  EXPECT_TRUE(declare_figure_prefix("test_shelf.", {FigureType::kGauge, "Items on a shelf.", "test_shelf_items", "shelf"}));
  EXPECT_FALSE(declare_figure("test_a", {FigureType::kGauge, "a gauge named like a counter", "test_a_total", ""}));
  EXPECT_FALSE(declare_figure("test_b", {FigureType::kGauge, "the registry's own family", "node_queue_depth", ""}));
  EXPECT_FALSE(declare_figure("test_c", {FigureType::kGauge, "another type for a counter family", "test_widgets_made", ""}));
  EXPECT_FALSE(declare_figure("test_d", {FigureType::kGauge, "bad name", "has space", ""}));
  EXPECT_FALSE(declare_figure_prefix("test_e.", {FigureType::kGauge, "reserved label", "test_e", "le"}));
  EXPECT_FALSE(declare_figure_prefix("test_f.", {FigureType::kGauge, "no label", "test_f", ""}));
  MetricsRegistry r;
  auto p = r.probe("maker", "test");
  p->set_gauge("test_widgets_made", 3);
  p->set_gauge("test_shelf.top", 4);
  p->set_gauge("test_a", 5);  // its declaration was refused: an ordinary undeclared gauge
  const std::string text = r.to_prometheus();
  EXPECT_TRUE(contains(text, "# HELP orderflow_test_widgets_made_total Widgets made.\n"
                             "# TYPE orderflow_test_widgets_made_total counter\n"
                             "orderflow_test_widgets_made_total{node=\"maker\",kind=\"test\"} 3\n"))
      << text;
  EXPECT_TRUE(contains(text, "orderflow_test_shelf_items{node=\"maker\",kind=\"test\",shelf=\"top\"} 4\n"));
  EXPECT_TRUE(contains(text, "# TYPE orderflow_test_a gauge\norderflow_test_a{node=\"maker\",kind=\"test\"} 5\n"));
}

TEST(MetricsRegistry, PrometheusBuildInfoAndProcessMetrics) {
  MetricsRegistry r;
  r.set_graph_name("orders");
  const auto samples = parse_exposition(r.to_prometheus());
  const auto info = samples_named(samples, "orderflow_build_info");
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].value, "1");
  EXPECT_EQ(info[0].label("graph"), "orders");
  const std::string version = info[0].label("version");
  EXPECT_EQ(std::count(version.begin(), version.end(), '.'), 2) << version;
  EXPECT_TRUE(samples_named(samples, "orderflow_ready").empty()) << "no readiness sample before it is known";
  r.set_ready(false);
  const auto ready = samples_named(parse_exposition(r.to_prometheus()), "orderflow_ready");
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].value, "0");
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
                           "process_start_time_seconds", "process_open_fds", "process_max_fds"})
    EXPECT_EQ(samples_named(samples, name).size(), 1u) << name;
}

TEST(ProcessStats, FiguresOfThisProcess) {
  const auto before = read_process_stats();
  EXPECT_GE(before.cpu_seconds, 0);
  EXPECT_GT(before.resident_bytes, 1 << 20) << "a test binary holds more than 1 MiB";
  EXPECT_GE(before.virtual_bytes, before.resident_bytes);
  EXPECT_GT(before.max_fds, 0);
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_LE(before.start_time_seconds, now + 1);
  EXPECT_GT(before.start_time_seconds, now - 3600) << "this process started within the hour";
  // Two more descriptors are counted as two more (the listing's own is not counted).
  const int a = ::open("/dev/null", O_RDONLY);
  const int b = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  const auto during = read_process_stats();
  ::close(a);
  ::close(b);
  EXPECT_EQ(during.open_fds, before.open_fds + 2);
  // CPU time is counted: burn 0.15 s of it, as the kernel counts this thread's time (not
  // wall time: a loaded machine gives the loop less), and see the process figure grow.
  auto thread_cpu = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
  };
  const double burn_from = thread_cpu();
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  volatile uint64_t x = 0;
  while (thread_cpu() - burn_from < 0.15 && std::chrono::steady_clock::now() < give_up) x = x + 1;
  ASSERT_GE(thread_cpu() - burn_from, 0.15) << "the loop got no CPU for a minute";
  EXPECT_GT(read_process_stats().cpu_seconds, before.cpu_seconds + 0.1);
}

// Counters are integers: a Prometheus scrape must see every digit (rate() over a busy
// node's counter needs them), not "%.9g"'s 1.23456789e+09 once a counter passes 10^9.
TEST(MetricsRegistry, PrometheusCountersKeepEveryDigitAboveOneBillion) {
  MetricsRegistry r;
  r.probe("big", "route")->add_in(1234567891);
  const std::string text = r.to_prometheus();
  EXPECT_TRUE(contains(text, "orderflow_node_messages_in_total{node=\"big\",kind=\"route\"} 1234567891\n"))
      << text.substr(0, 600);
}

TEST(MetricsRegistry, JsonSnapshotParsesAndHasEveryNodeAndField) {
  MetricsRegistry r;
  const std::string json = populated(r).to_json();
  for (const char* field : {"\"uptimeSeconds\":", "\"nodes\":[", "\"rateIn\":", "\"rateOut\":",
                            "\"latencyUs\":{", "\"gauges\":{", "\"busyShare\":", "\"queueDepth\":",
                            "\"id\":\"lane\"", "\"id\":\"feed\"", "\"kind\":\"change_feed\""})
    EXPECT_TRUE(contains(json, field)) << field << " in " << json;

  // Well-formed JSON with the values in place.
  google::protobuf::Struct doc;
  auto st = google::protobuf::util::JsonStringToMessage(json, &doc);
  ASSERT_TRUE(st.ok()) << st.ToString() << "\n" << json;
  ASSERT_TRUE(doc.fields().count("uptimeSeconds") == 1);
  const auto& nodes = doc.fields().at("nodes").list_value().values();
  ASSERT_EQ(nodes.size(), 2);
  const auto& lane = nodes[0].struct_value().fields();
  EXPECT_EQ(lane.at("id").string_value(), "lane");
  EXPECT_EQ(lane.at("in").number_value(), 5);
  EXPECT_EQ(lane.at("errors").number_value(), 1);
  EXPECT_EQ(lane.at("lastError").string_value(), "boom \"quoted\"");
  const auto& lat = lane.at("latencyUs").struct_value().fields();
  EXPECT_EQ(lat.at("count").number_value(), 3);
  EXPECT_EQ(lat.at("mean").number_value(), 200);
  EXPECT_GE(lat.at("p50").number_value(), 200);
  EXPECT_GE(lat.at("max").number_value(), 300);
  // The histogram itself, so several instances can be merged exactly: ascending buckets of
  // [largest value, count] whose counts add up to the sample count.
  const auto& buckets = lat.at("buckets").list_value().values();
  ASSERT_FALSE(buckets.empty());
  double total = 0, last = 0;
  for (const auto& b : buckets) {
    const auto& pair = b.list_value().values();
    ASSERT_EQ(pair.size(), 2);
    EXPECT_GT(pair[0].number_value(), last);
    last = pair[0].number_value();
    total += pair[1].number_value();
  }
  EXPECT_EQ(total, 3);
  const auto& feed = nodes[1].struct_value().fields();
  EXPECT_EQ(feed.at("id").string_value(), "feed");
  EXPECT_EQ(feed.at("queueDepth").number_value(), 7);
  EXPECT_EQ(feed.at("gauges").struct_value().fields().at("lag").number_value(), 42);
}

TEST(MetricsRegistry, EmptyRegistryExports) {
  MetricsRegistry r;
  const std::string json = r.to_json();
  EXPECT_TRUE(contains(json, "\"nodes\":[]")) << json;
  EXPECT_TRUE(contains(r.to_prometheus(), "orderflow_uptime_seconds "));
}

// ---- concurrency --------------------------------------------------------------------

// Counters are kept per thread and summed: a queue entered on one thread and left on
// another leaves one thread's share negative, and the depth is still the difference.
TEST(NodeProbe, QueueDepthEnteredAndLeftOnDifferentThreads) {
  NodeProbe p("commit", "commit");
  std::thread([&] {
    for (int i = 0; i < 1000; ++i) p.queue_add(1);
  }).join();
  std::thread([&] {
    for (int i = 0; i < 700; ++i) p.queue_add(-1);
  }).join();
  EXPECT_EQ(p.queue_depth(), 300);
  std::thread([&] { p.queue_add(-400); }).join();
  EXPECT_EQ(p.queue_depth(), 0) << "a transiently negative sum reads as 0";
  std::thread([&] { p.queue_add(150); }).join();
  EXPECT_EQ(p.queue_depth(), 50);
}


class ProbeConcurrency : public ::testing::TestWithParam<int> {};

TEST_P(ProbeConcurrency, TotalsAreExact) {
  const int threads = GetParam();
  constexpr uint64_t kPerThread = 50000;
  MetricsRegistry registry;
  std::atomic<bool> stop{false};
  // A sampler and an exporter read while the writers write.
  std::thread reader([&] {
    while (!stop.load()) {
      registry.sample();
      EXPECT_FALSE(registry.to_json().empty());
      std::this_thread::sleep_for(1ms);
    }
  });
  std::vector<std::shared_ptr<NodeProbe>> got(static_cast<size_t>(threads));
  std::vector<std::thread> writers;
  for (int t = 0; t < threads; ++t) {
    writers.emplace_back([&, t] {
      auto p = registry.probe("hot", "route");
      got[static_cast<size_t>(t)] = p;
      for (uint64_t i = 0; i < kPerThread; ++i) {
        p->add_in();
        p->add_out(2);
        p->queue_add(1);
        p->record_latency_us(i % 1000);
        p->add_busy_ns(3);
        p->queue_add(-1);
        if (i % 1000 == 0) {
          p->add_error("e" + std::to_string(t));
          p->set_gauge("thread" + std::to_string(t), static_cast<double>(i));
        }
      }
    });
  }
  for (auto& w : writers) w.join();
  stop = true;
  reader.join();

  for (const auto& p : got) EXPECT_EQ(p.get(), got[0].get()) << "one probe per id";
  const auto snap = registry.snapshot();
  ASSERT_EQ(snap.nodes.size(), 1u);
  const auto& n = snap.nodes[0];
  const uint64_t total = kPerThread * static_cast<uint64_t>(threads);
  EXPECT_EQ(n.in, total);
  EXPECT_EQ(n.out, 2 * total);
  EXPECT_EQ(n.busy_ns, 3 * total);
  EXPECT_EQ(n.queue_depth, 0);
  EXPECT_EQ(n.errors, (kPerThread / 1000) * static_cast<uint64_t>(threads));
  EXPECT_EQ(n.gauges.size(), static_cast<size_t>(threads));
  EXPECT_EQ(n.latency.count, total);
  EXPECT_EQ(n.latency_buckets.count, total) << "the exported buckets, striped, lose nothing either";
  EXPECT_EQ(n.latency_buckets.cumulative[0], total / 1000 * 51) << "0..50 of every 1000";
  EXPECT_EQ(n.latency_buckets.sum_us, total / 1000 * 499500);
  EXPECT_DOUBLE_EQ(n.latency.mean_us, 499.5);  // i % 1000 is uniform over 0..999
  EXPECT_GE(n.latency.max_us, 999);
}

INSTANTIATE_TEST_SUITE_P(Threads, ProbeConcurrency, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::to_string(info.param) + "Threads";
                         });

}  // namespace
}  // namespace orderflow
