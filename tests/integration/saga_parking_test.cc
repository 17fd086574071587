// Parking a saga's poison reaction (issue 14): a reaction whose commit keeps failing while
// other reactions succeed is parked in the saga's `parked:` store after park_after failures,
// the change feed's checkpoint moves past its event, and a replay once the fault is gone
// commits it once and removes the record. An outage (every reaction failing) parks nothing.
// The records live in the snapshot store's own column family: they survive a reopen and a
// projection rebuild (clear()).
#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "connectors/faulty_store.h"
#include "connectors/stores.h"
#include "domain/orders/orders.h"
#include "tests/support/invariants.h"
#include "tests/support/kinds.h"
#include "tests/support/store_decorators.h"

namespace orderflow {
namespace {

// Appends to one stream fail (a write the store refuses for that stream alone); with
// `reactions_fail`, every append of a command not sent by the test fails (every saga
// reaction: an outage as the saga sees it).
class FailingWrites : public testing::EventsDecorator {
 public:
  using EventsDecorator::EventsDecorator;
  void set_stream(std::string s) {
    std::lock_guard lock(mu_);
    stream_ = std::move(s);
  }
  std::atomic<bool> reactions_fail{false};
  std::atomic<int> refused{0};
  std::vector<AppendResult> append(const std::vector<AppendRequest>& batch) override {
    std::string stream;
    {
      std::lock_guard lock(mu_);
      stream = stream_;
    }
    return connectors::append_refusing(*events_, batch, [&](const AppendRequest& r) {
      const bool reaction = r.command_id.rfind("t-", 0) != 0;
      if ((stream.empty() || r.stream != stream) && !(reactions_fail && reaction)) return Status::ok();
      refused++;
      return Status::io_error("injected: writes to " + r.stream + " fail");
    });
  }

 private:
  std::mutex mu_;
  std::string stream_;
};

std::string graph_yaml(const std::string& kind, int park_after) {
  const std::string events = kind == "rocksdb" ? "{kind: rocksdb, path: events}" : "{kind: memory}";
  const std::string snaps = kind == "rocksdb" ? "{kind: rocksdb, path: snapshots}" : "{kind: memory}";
  return "graph: test\n"
         "stores:\n"
         "  events: " + events + "\n"
         "  snapshots: " + snaps + "\n"
         "nodes:\n"
         "  - {id: demo, kind: demo_source, params: {rate: 0}}\n"
         "  - {id: route, kind: route, params: {lanes: 4, max_in_flight: 500}}\n"
         "  - {id: lanes, kind: command_lane, params: {events: events, snapshots: snapshots}}\n"
         "  - {id: commit, kind: commit, params: {events: events, max_batch: 64}}\n"
         "  - {id: feed, kind: change_feed, params: {events: events, batch: 20, poll_ms: 5}}\n"
         "  - {id: projection, kind: projection, params: {snapshots: snapshots}}\n"
         "  - {id: saga, kind: saga, params: {parked: snapshots, park_after: " + std::to_string(park_after) + "}}\n"
         "edges: [demo -> route, route -> lanes, lanes -> commit, commit -> feed, feed -> projection, "
         "feed -> saga, saga -> route]\n";
}

bool eventually(const std::function<bool()>& f, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return f();
}

size_t count_events(const testing::StoreFold& fold, v1::Event::KindCase kind, const std::string& stream = "") {
  size_t n = 0;
  for (const auto& r : fold.all) {
    v1::Event e;
    n += e.ParseFromString(r.payload) && e.kind_case() == kind && (stream.empty() || r.stream == stream);
  }
  return n;
}

class SagaParkingTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("orderflow-parking-" + std::to_string(::getpid()) + "-" +
                                                     std::to_string(counter_++));
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override {
    built_.pipeline.reset();
    provider_.reset();
    stores_.reset();
    std::filesystem::remove_all(dir_);
  }

  void start(int park_after) {
    auto loaded = graph::load_graph_string(graph_yaml(GetParam(), park_after));
    ASSERT_TRUE(loaded.ok());
    def_ = loaded.graph;
    std::vector<graph::Diagnostic> diags;
    ASSERT_TRUE(graph::validate(def_, test_support::standard_kinds(), diags)) << diags.front().to_string();
    stores_ = std::make_unique<connectors::StoreSet>(def_, dir_.string());
    provider_ = std::make_unique<testing::DecoratedProvider<FailingWrites>>(*stores_);
    BuildOptions o;
    o.threads = 2;
    auto b = build_pipeline(def_, test_support::standard_kinds(), *provider_, o);
    ASSERT_TRUE(b) << b.status().to_string();
    built_ = std::move(*b);
    ASSERT_TRUE(built_.pipeline->start());
  }

  FailingWrites& faults() { return provider_->events; }
  ChangeFeed& feed() { return **stores_->change_feed("events"); }
  ParkingControl& saga() { return *dynamic_cast<ParkingControl*>(built_.pipeline->find("saga")); }
  double parked_gauge() { return built_.pipeline->metrics().probe("saga", "saga")->gauges()["parked"]; }

  // Commits a command sent by the test (ids "t-..."), waiting for its outcome.
  Status send(v1::Command c) {
    auto done = std::make_shared<std::promise<Status>>();
    auto f = done->get_future();
    auto env = make_envelope(std::move(c), [done](const Outcome& o) { done->set_value(o.status); });
    for (;;) {
      Status s = built_.sink->submit(env);
      if (s) break;
      if (s.code() != StatusCode::kUnavailable) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return f.get();
  }
  Status add_stock(const std::string& sku, int qty) {
    v1::Command c;
    c.set_command_id("t-stock-" + sku + "-" + std::to_string(stock_n_++));
    c.mutable_add_stock()->set_sku(sku);
    c.mutable_add_stock()->set_quantity(qty);
    return send(std::move(c));
  }
  Status place(const std::string& order, const std::string& sku) {
    v1::Command c;
    c.set_command_id("t-place-" + order);
    auto* p = c.mutable_place_order();
    p->set_order_id(order);
    p->set_customer_id("c");
    auto* line = p->add_lines();
    line->set_sku(sku);
    line->set_quantity(1);
    line->set_unit_price_cents(100);
    return send(std::move(c));
  }

  // No command in flight and the saga and the projection at the head.
  void wait_quiescent() {
    int stable = 0;
    for (int i = 0; i < 1000 && stable < 3; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      const uint64_t head = feed().head();
      const bool idle = built_.sink->in_flight() == 0 && *feed().load_checkpoint("saga") == head &&
                        *feed().load_checkpoint("projection") == head;
      stable = idle ? stable + 1 : 0;
    }
    ASSERT_EQ(stable, 3) << "pipeline did not become quiescent";
  }

  std::filesystem::path dir_;
  static inline int counter_ = 0;
  int stock_n_ = 0;
  graph::GraphDef def_;
  std::unique_ptr<connectors::StoreSet> stores_;
  std::unique_ptr<testing::DecoratedProvider<FailingWrites>> provider_;
  BuiltPipeline built_;
};

// The poison: one SKU's stream refuses writes while other orders settle. Its ReserveStock is
// parked after park_after failures, the saga's checkpoint reaches the head, the record is
// listed with its reason; after the fault heals a replay commits it once, removes the record
// and the order settles.
TEST_P(SagaParkingTest, APoisonReactionIsParkedListedAndReplayedOnce) {
  ASSERT_NO_FATAL_FAILURE(start(3));
  ASSERT_TRUE(add_stock("POISON", 5));
  ASSERT_TRUE(add_stock("OK", 100));
  faults().set_stream(orders::sku_stream("POISON"));
  ASSERT_TRUE(place("op", "POISON"));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(place("ok" + std::to_string(i), "OK"));
  ASSERT_TRUE(eventually([&] { return parked_gauge() == 1; })) << "the poison was not parked";
  ASSERT_NO_FATAL_FAILURE(wait_quiescent());  // the checkpoint moved past the poison's event
  EXPECT_GE(faults().refused.load(), 3) << "tried park_after times";

  std::vector<ParkedCommand> parked;
  ASSERT_TRUE(saga().parked(&parked));
  ASSERT_EQ(parked.size(), 1u);
  const ParkedCommand& p = parked[0];
  EXPECT_EQ(p.node, "saga");
  EXPECT_EQ(p.command_name, "reserveStock");
  EXPECT_EQ(p.stream, orders::sku_stream("POISON"));
  EXPECT_EQ(p.event_stream, orders::order_stream("op"));
  EXPECT_EQ(p.event_version, 1u);
  EXPECT_GE(p.attempts, 3u);
  EXPECT_GT(p.parked_at_ms, 0);
  EXPECT_EQ(p.reason.rfind(kParkedReasonPrefix, 0), 0u) << p.reason;
  EXPECT_NE(p.reason.find("injected: writes to sku-POISON fail"), std::string::npos) << p.reason;
  {
    testing::StoreFold fold;
    fold.all = testing::read_whole_log(feed());
    EXPECT_EQ(count_events(fold, v1::Event::kOrderConfirmed), 20u) << "the other orders settled";
    EXPECT_EQ(count_events(fold, v1::Event::kStockReserved, orders::sku_stream("POISON")), 0u);
  }

  // A replay while the fault lasts keeps the record.
  ReplayOutcome still = saga().replay(p.command_id, std::chrono::seconds(5));
  EXPECT_FALSE(still.removed);
  EXPECT_FALSE(still.status.is_ok());
  parked.clear();
  ASSERT_TRUE(saga().parked(&parked));
  EXPECT_EQ(parked.size(), 1u);

  faults().set_stream("");
  ReplayOutcome done = saga().replay(p.command_id, std::chrono::seconds(10));
  EXPECT_TRUE(done.status.is_ok()) << done.status.to_string();
  EXPECT_TRUE(done.removed);
  EXPECT_EQ(done.outcome, "committed");
  parked.clear();
  ASSERT_TRUE(saga().parked(&parked));
  EXPECT_TRUE(parked.empty());
  EXPECT_EQ(parked_gauge(), 0);
  EXPECT_EQ(saga().replay(p.command_id, std::chrono::seconds(1)).status.code(), StatusCode::kNotFound);
  ASSERT_NO_FATAL_FAILURE(wait_quiescent());

  testing::StoreFold fold;
  ASSERT_NO_FATAL_FAILURE(testing::check_store_invariants(feed(), **stores_->snapshot_store("snapshots"), &fold));
  EXPECT_EQ(count_events(fold, v1::Event::kStockReserved, orders::sku_stream("POISON")), 1u) << "committed once";
  EXPECT_EQ(count_events(fold, v1::Event::kOrderConfirmed), 21u) << "the poisoned order settled too";
}

// An outage is not poison: while every reaction's write fails, nothing succeeds, so nothing is
// parked however often the reactions fail; once healed, every order settles.
TEST_P(SagaParkingTest, AnOutageParksNothingAndLosesNothing) {
  ASSERT_NO_FATAL_FAILURE(start(2));
  ASSERT_TRUE(add_stock("A", 100));
  faults().reactions_fail = true;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(place("out" + std::to_string(i), "A"));
  ASSERT_TRUE(eventually([&] { return faults().refused.load() >= 10 * 4; })) << "reactions failed repeatedly";
  EXPECT_EQ(parked_gauge(), 0);
  faults().reactions_fail = false;
  ASSERT_NO_FATAL_FAILURE(wait_quiescent());
  std::vector<ParkedCommand> parked;
  ASSERT_TRUE(saga().parked(&parked));
  EXPECT_TRUE(parked.empty()) << "a reaction was parked during an outage";
  testing::StoreFold fold;
  ASSERT_NO_FATAL_FAILURE(testing::check_store_invariants(feed(), **stores_->snapshot_store("snapshots"), &fold));
  EXPECT_EQ(count_events(fold, v1::Event::kOrderConfirmed), 10u);
}

INSTANTIATE_TEST_SUITE_P(Stores, SagaParkingTest, ::testing::Values("memory", "rocksdb"));

// The record is durable: it survives closing and reopening the RocksDB stores, and a
// projection rebuild (SnapshotStore::clear) keeps it.
TEST(SagaParkingStore, ARecordSurvivesReopenAndRebuild) {
  const auto dir = std::filesystem::temp_directory_path() / ("orderflow-parking-reopen-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto loaded = graph::load_graph_string(graph_yaml("rocksdb", 3));
  ASSERT_TRUE(loaded.ok());
  ParkedCommand p;
  p.node = "saga";
  p.command_id = "react-1";
  p.command_name = "reserveStock";
  p.stream = "sku-X";
  p.command = std::string("\x0a\x03" "abc\0z", 7);  // bytes, with a NUL
  p.event_stream = "order-1";
  p.event_version = 1;
  p.event_position = 42;
  p.reason = std::string(kParkedReasonPrefix) + "3 failed attempts";
  p.attempts = 3;
  p.parked_at_ms = 1700000000123;
  {
    connectors::StoreSet stores(loaded.graph, dir.string());
    auto ps = stores.parking_store("snapshots");
    ASSERT_TRUE(ps) << ps.status().to_string();
    ASSERT_TRUE((*ps)->park(p));
    ASSERT_TRUE((*stores.snapshot_store("snapshots"))->clear());
  }
  {
    connectors::StoreSet stores(loaded.graph, dir.string());
    auto ps = stores.parking_store("snapshots");
    ASSERT_TRUE(ps);
    std::vector<ParkedCommand> out;
    ASSERT_TRUE((*ps)->list("saga", &out));
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].command_id, p.command_id);
    EXPECT_EQ(out[0].command, p.command);
    EXPECT_EQ(out[0].event_position, 42u);
    EXPECT_EQ(out[0].reason, p.reason);
    EXPECT_EQ(out[0].parked_at_ms, p.parked_at_ms);
    out.clear();
    ASSERT_TRUE((*ps)->list("other", &out));
    EXPECT_TRUE(out.empty());
    ASSERT_TRUE((*ps)->remove("saga", "react-1"));
    ASSERT_TRUE((*ps)->list("", &out));
    EXPECT_TRUE(out.empty());
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace orderflow
