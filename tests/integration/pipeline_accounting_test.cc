// What the pipeline's figures and checkpoints promise, checked through the real pipeline
// (route, lanes, commit, change feed, projection, saga) on RocksDB stores:
// - exact counters: once quiescent, route, lanes and commit each let out every message they
//   let in, and route let in exactly the commands sent plus those the saga issued;
// - checkpoints: after a restart each change-feed subscriber resumes from its stored
//   checkpoint, so what it receives again is bounded by what was committed after it.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "connectors/stores.h"
#include "tests/support/kinds.h"
#include "domain/orders/orders.h"

namespace orderflow {
namespace {

const char* kGraph =
    "graph: accounting\n"
    "stores:\n"
    "  events: {kind: rocksdb, path: events}\n"
    "  snapshots: {kind: rocksdb, path: snapshots}\n"
    "nodes:\n"
    "  - {id: demo, kind: demo_source, params: {rate: 0}}\n"
    "  - {id: route, kind: route, params: {lanes: 4, max_in_flight: 200}}\n"
    "  - {id: lanes, kind: command_lane, params: {events: events, snapshots: snapshots, cache_streams: 50}}\n"
    "  - {id: commit, kind: commit, params: {events: events, max_batch: 32}}\n"
    "  - {id: feed, kind: change_feed, params: {events: events, batch: 50, poll_ms: 5}}\n"
    "  - {id: projection, kind: projection, params: {snapshots: snapshots}}\n"
    "  - {id: saga, kind: saga}\n"
    "edges: [demo -> route, route -> lanes, lanes -> commit, commit -> feed, feed -> projection, "
    "feed -> saga, saga -> route]\n";

class PipelineAccountingTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("orderflow-accounting-" + std::to_string(::getpid()) + "-" + std::to_string(GetParam()));
    std::filesystem::remove_all(dir_);
    auto loaded = graph::load_graph_string(kGraph);
    ASSERT_TRUE(loaded.ok());
    def_ = loaded.graph;
    graph::KindRegistry registry;
    register_standard_kinds(registry);
    std::vector<graph::Diagnostic> diags;
    ASSERT_TRUE(graph::validate(def_, registry, diags)) << diags.front().to_string();
    open_stores();
  }
  void TearDown() override {
    built_.pipeline.reset();
    stores_.reset();
    std::filesystem::remove_all(dir_);
  }
  void open_stores() { stores_ = std::make_unique<connectors::StoreSet>(def_, dir_.string()); }

  void start() {
    BuildOptions o;
    o.threads = GetParam();
    auto b = build_pipeline(def_, test_support::standard_kinds(), *stores_, o);
    ASSERT_TRUE(b) << b.status().to_string();
    built_ = std::move(*b);
    ASSERT_TRUE(built_.pipeline->start());
  }
  void stop() {
    built_.pipeline->shutdown();  // SIGTERM path: drain, save checkpoints
    built_.pipeline.reset();
  }

  // Submits until admitted; returns once every admitted command completed.
  void send(const std::vector<v1::Command>& commands) {
    std::atomic<int> pending{0};
    for (const auto& c : commands) {
      pending++;
      auto env = make_envelope(c, [&pending](const Outcome&) { pending--; });
      for (;;) {
        Status s = built_.sink->submit(env);
        if (s) break;
        ASSERT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      ++sent_;
    }
    for (int i = 0; i < 6000 && pending.load() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_EQ(pending.load(), 0) << "every admitted command completes";
  }

  // Orders over few SKUs (some rejected for want of stock, each confirmed or rejected by the
  // saga), cancels, shipments and client retries of the same command id.
  std::vector<v1::Command> workload(const std::string& prefix, int orders) {
    std::vector<v1::Command> out;
    std::mt19937 rng(77);
    for (int s = 0; s < 8; ++s) {
      v1::Command c;
      c.set_command_id(prefix + "stock-" + std::to_string(s));
      c.mutable_add_stock()->set_sku("S" + std::to_string(s));
      c.mutable_add_stock()->set_quantity(4 + s);
      out.push_back(c);
    }
    for (int i = 0; i < orders; ++i) {
      v1::Command c;
      c.set_command_id(prefix + "place-" + std::to_string(i));
      auto* p = c.mutable_place_order();
      p->set_order_id(prefix + "o" + std::to_string(i));
      p->set_customer_id("c" + std::to_string(i % 5));
      auto* line = p->add_lines();
      line->set_sku("S" + std::to_string(rng() % 8));
      line->set_quantity(1 + static_cast<int>(rng() % 3));
      line->set_unit_price_cents(300);
      out.push_back(c);
      if (i % 9 == 0) out.push_back(c);  // a client retry: same command id
      if (i % 6 == 0) {
        v1::Command cancel;
        cancel.set_command_id(prefix + "cancel-" + std::to_string(i));
        cancel.mutable_cancel_order()->set_order_id(prefix + "o" + std::to_string(i));
        out.push_back(cancel);
      }
    }
    return out;
  }

  // No command in flight, both subscribers at the head, for several polls in a row.
  void wait_quiescent() {
    auto* feed = *stores_->change_feed("events");
    int stable = 0;
    for (int i = 0; i < 3000 && stable < 3; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      const uint64_t head = feed->head();
      const bool idle = built_.sink->in_flight() == 0 && *feed->load_checkpoint("saga") == head &&
                        *feed->load_checkpoint("projection") == head && feed->head() == head;
      stable = idle ? stable + 1 : 0;
    }
    ASSERT_EQ(stable, 3) << "pipeline did not become quiescent";
  }

  NodeProbe& probe(const std::string& id) { return built_.pipeline->find(id)->probe(); }

  std::filesystem::path dir_;
  graph::GraphDef def_;
  std::unique_ptr<connectors::StoreSet> stores_;
  BuiltPipeline built_;
  uint64_t sent_ = 0;  // commands admitted by route since the pipeline started
};

// Regression guard for the probes the monitor and /metrics show: a node that counted a
// message in twice, or let one out without counting it, would make in != out at rest.
TEST_P(PipelineAccountingTest, CountersBalanceAndRouteCountsEveryCommandOnce) {
  start();
  send(workload("a-", 400));
  wait_quiescent();
  const uint64_t issued_by_saga = probe("saga").out();
  EXPECT_GT(issued_by_saga, 0u) << "the saga reserved and confirmed or rejected orders";
  EXPECT_EQ(probe("route").in(), sent_ + issued_by_saga);
  for (const char* node : {"route", "lanes", "commit"}) {
    EXPECT_EQ(probe(node).in(), probe(node).out()) << node << ": messages in and out at rest";
    EXPECT_EQ(probe(node).errors(), 0u) << node << ": " << probe(node).last_error();
  }
  // Nothing was decided twice here (one process, no conflicts): every command passed
  // through the lanes once and reached commit at most once.
  EXPECT_EQ(probe("lanes").in(), sent_ + issued_by_saga);
  EXPECT_LE(probe("commit").in(), sent_ + issued_by_saga);
  EXPECT_GT(probe("commit").in(), (sent_ + issued_by_saga) / 2) << "most commands write events";
  // The feed let out to its subscribers what they received, each event once per subscriber.
  auto* feed = *stores_->change_feed("events");
  EXPECT_EQ(probe("feed").in(), 2 * feed->head());
  EXPECT_EQ(probe("feed").out(), probe("feed").in());
  EXPECT_EQ(probe("projection").in(), feed->head());
  EXPECT_EQ(probe("saga").in(), feed->head());
  // The live tail: both subscribers started at the same checkpoint, so the second one to
  // reach a batch takes it from memory; the store is read (and decoded) about once.
  auto g = probe("feed").gauges();
  EXPECT_GT(g["tail_hits"], 0) << "no batch was shared between the two subscribers";
  EXPECT_GE(g["store_events_read"], static_cast<double>(feed->head()));
  EXPECT_LT(g["store_events_read"], static_cast<double>(2 * feed->head()))
      << "each subscriber read every event from the store itself";
}

// Batches are the unit of flow (CommandSink::submit_batch): one admission for the whole
// batch, one message per lane, the order of each stream's commands kept across the split,
// a malformed command completed with its reason while the rest go on.
TEST_P(PipelineAccountingTest, ABatchIsAdmittedWholeAndKeepsEachStreamsOrder) {
  start();
  std::mutex mu;
  std::map<std::string, Status> outcomes;
  std::atomic<int> pending{0};
  auto envelope = [&](const v1::Command& c) {
    pending++;
    return make_envelope(c, [&, id = c.command_id()](const Outcome& o) {
      {
        std::lock_guard lock(mu);
        outcomes[id] = o.status;
      }
      pending--;
    });
  };
  // 150 orders, each placed and then cancelled in the same batch: a cancel decided before
  // its order exists is rejected, so every cancel succeeding shows the order was kept. With
  // the malformed one that makes 301 commands, more than max_in_flight (200): a batch that
  // large is admitted when nothing else is in flight.
  EnvelopeBatch batch;
  for (int i = 0; i < 150; ++i) {
    v1::Command place;
    place.set_command_id("bp-" + std::to_string(i));
    auto* p = place.mutable_place_order();
    p->set_order_id("bo" + std::to_string(i));
    p->set_customer_id("c");
    auto* line = p->add_lines();
    line->set_sku("S" + std::to_string(i % 8));
    line->set_quantity(1);
    line->set_unit_price_cents(100);
    batch.push_back(envelope(place));
    v1::Command cancel;
    cancel.set_command_id("bc-" + std::to_string(i));
    cancel.mutable_cancel_order()->set_order_id("bo" + std::to_string(i));
    batch.push_back(envelope(cancel));
    if (i == 75) {
      v1::Command malformed;  // no command kind
      malformed.set_command_id("bad-1");
      batch.push_back(envelope(malformed));
    }
  }
  ASSERT_TRUE(built_.sink->submit_batch(batch)) << "a batch larger than the limit, with nothing in flight";
  EXPECT_TRUE(batch.empty()) << "the sink takes every envelope of an admitted batch";
  // While it is in flight, another batch either fits or is refused untouched.
  EnvelopeBatch second;
  for (int i = 0; i < 60; ++i) {
    v1::Command c;
    c.set_command_id("bs-" + std::to_string(i));
    c.mutable_add_stock()->set_sku("T" + std::to_string(i));
    c.mutable_add_stock()->set_quantity(1);
    second.push_back(envelope(c));
  }
  for (int attempt = 0; !second.empty(); ++attempt) {
    ASSERT_LT(attempt, 5000) << "the second batch was never admitted";
    Status s = built_.sink->submit_batch(second);
    if (s) break;
    ASSERT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
    ASSERT_EQ(second.size(), 60u) << "a refused batch is left as it was";
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (int i = 0; i < 6000 && pending.load() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(pending.load(), 0) << "every admitted command completes";
  std::lock_guard lock(mu);
  ASSERT_EQ(outcomes.size(), 361u);
  EXPECT_EQ(outcomes["bad-1"].code(), StatusCode::kInvalidArgument) << outcomes["bad-1"].to_string();
  for (int i = 0; i < 150; ++i) {
    EXPECT_TRUE(outcomes["bp-" + std::to_string(i)]) << outcomes["bp-" + std::to_string(i)].to_string();
    EXPECT_TRUE(outcomes["bc-" + std::to_string(i)]) << "cancel " << i << " decided before its order: "
                                                     << outcomes["bc-" + std::to_string(i)].to_string();
  }
  for (int i = 0; i < 60; ++i) EXPECT_TRUE(outcomes["bs-" + std::to_string(i)]);
  wait_quiescent();
  for (const char* node : {"route", "lanes", "commit"})
    EXPECT_EQ(probe(node).in(), probe(node).out()) << node << ": messages in and out at rest";
}

// Regression guard: a change feed that ignored its stored checkpoint and replayed from
// position 0 passed every restart test (redelivery is harmless to the subscribers).
TEST_P(PipelineAccountingTest, SubscribersResumeFromTheirCheckpointsAfterARestart) {
  start();
  send(workload("r1-", 300));
  wait_quiescent();
  stop();
  open_stores();  // reopen from disk
  auto* feed = *stores_->change_feed("events");
  const uint64_t head_before = feed->head();
  std::map<std::string, uint64_t> checkpoint;
  for (const char* sub : {"projection", "saga"}) checkpoint[sub] = *feed->load_checkpoint(sub);
  ASSERT_GT(head_before, 100u);
  EXPECT_EQ(checkpoint["projection"], head_before) << "a clean stop saves the checkpoints";

  start();
  send(workload("r2-", 100));
  wait_quiescent();
  const uint64_t head_after = feed->head();
  ASSERT_GT(head_after, head_before);
  for (const char* sub : {"projection", "saga"}) {
    // At least once: what came after the checkpoint, and at most that (nothing failed).
    EXPECT_LE(probe(sub).in(), head_after - checkpoint[sub])
        << sub << " received events from before its checkpoint " << checkpoint[sub] << " again";
    EXPECT_GE(probe(sub).in(), head_after - head_before) << sub << " missed new events";
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, PipelineAccountingTest, ::testing::Values(1, 2),
                         [](const auto& info) { return "threads" + std::to_string(info.param); });

}  // namespace
}  // namespace orderflow
