// Tests for metrics: histogram buckets and percentiles, node probes, the registry's rates
// and its Prometheus and JSON exports, and probes updated from several threads.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <algorithm>
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

TEST(MetricsRegistry, PrometheusTextHasHelpTypeAndNodeLabels) {
  MetricsRegistry r;
  const std::string text = populated(r).to_prometheus();
  for (const char* name : {"orderflow_uptime_seconds", "orderflow_node_messages_in_total",
                           "orderflow_node_messages_out_total", "orderflow_node_errors_total",
                           "orderflow_node_busy_seconds_total", "orderflow_node_queue_depth",
                           "orderflow_node_latency_microseconds", "orderflow_node_gauge"}) {
    EXPECT_TRUE(contains(text, std::string("# HELP ") + name + " ")) << name;
    EXPECT_TRUE(contains(text, std::string("# TYPE ") + name + " ")) << name;
  }
  EXPECT_TRUE(contains(text, "# TYPE orderflow_node_messages_in_total counter\n"));
  EXPECT_TRUE(contains(text, "# TYPE orderflow_node_queue_depth gauge\n"));
  EXPECT_TRUE(contains(text, "# TYPE orderflow_node_latency_microseconds summary\n"));
  EXPECT_TRUE(contains(text, "\norderflow_node_messages_in_total{node=\"lane\",kind=\"command_lane\"} 5\n"));
  EXPECT_TRUE(contains(text, "\norderflow_node_messages_out_total{node=\"lane\",kind=\"command_lane\"} 4\n"));
  EXPECT_TRUE(contains(text, "\norderflow_node_errors_total{node=\"lane\",kind=\"command_lane\"} 1\n"));
  EXPECT_TRUE(contains(text, "\norderflow_node_messages_in_total{node=\"feed\",kind=\"change_feed\"} 0\n"));
  EXPECT_TRUE(contains(text, "\norderflow_node_queue_depth{node=\"feed\",kind=\"change_feed\"} 7\n"));
  EXPECT_TRUE(contains(text, "\norderflow_node_gauge{node=\"feed\",kind=\"change_feed\",name=\"lag\"} 42\n"));
  EXPECT_TRUE(contains(
      text, "\norderflow_node_latency_microseconds_count{node=\"lane\",kind=\"command_lane\"} 3\n"));
  EXPECT_TRUE(contains(text, "orderflow_node_latency_microseconds{node=\"lane\",kind=\"command_lane\",quantile=\"0.5\"} "));
  EXPECT_TRUE(contains(text, "\norderflow_uptime_seconds "));
  EXPECT_EQ(text.back(), '\n');
  // Every sample line is "name{labels} value" or "name value": no stray output.
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.rfind("# ", 0) == 0) continue;
    EXPECT_EQ(line.rfind("orderflow_", 0), 0u) << line;
    EXPECT_NE(line.find(' '), std::string::npos) << line;
  }
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
  EXPECT_DOUBLE_EQ(n.latency.mean_us, 499.5);  // i % 1000 is uniform over 0..999
  EXPECT_GE(n.latency.max_us, 999);
}

INSTANTIATE_TEST_SUITE_P(Threads, ProbeConcurrency, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::to_string(info.param) + "Threads";
                         });

}  // namespace
}  // namespace orderflow
