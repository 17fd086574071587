// Lane regressions. LaneFailures (at the end): an exception while deciding must not leave
// the command's in-flight entry behind. LaneRepeats: a repeat of a command id that raced
// its original's completion was decided afresh on state that already held the original's
// events, and answered as rejected (422 "order is cancelled") instead of as a duplicate of
// the original (ServerE2eTest.ConcurrentRetryOfSameCommandIsIdempotent failed about 1 run
// in 15).
//
// An event store decorator makes the race certain: the original's group commit waits at a
// gate; if the repeat's decision looks the command id up in the store, that look-up reads
// "not found", opens the gate and returns only after the original has completed, which is
// exactly the losing interleaving. The fixed lane sees the original in flight first and
// never asks the store.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "connectors/stores.h"
#include "nodes/nodes.h"
#include "tests/support/kinds.h"
#include "orderflow.pb.h"
#include "tests/support/store_decorators.h"

namespace orderflow {
namespace {

using namespace std::chrono_literals;

class GatedEvents final : public testing::EventsDecorator {
 public:
  using EventsDecorator::EventsDecorator;

  void arm(const std::string& command_id) {
    std::lock_guard l(mu_);
    armed_ = true;
    gate_open_ = false;
    watched_ = command_id;
  }
  bool wait_until_append_blocked() {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, 5s, [&] { return append_waiting_; });
  }
  void open_gate() {
    std::lock_guard l(mu_);
    gate_open_ = true;
    cv_.notify_all();
  }
  void original_done() {
    std::lock_guard l(mu_);
    original_done_ = true;
    cv_.notify_all();
  }
  bool raced() {
    std::lock_guard l(mu_);
    return raced_;
  }

  std::vector<AppendResult> append(const std::vector<AppendRequest>& batch) override {
    {
      std::unique_lock l(mu_);
      if (armed_ && !gate_open_) {
        append_waiting_ = true;
        cv_.notify_all();
        cv_.wait_for(l, 5s, [&] { return gate_open_; });
      }
    }
    return events_->append(batch);
  }
  Result<std::optional<AppendResult>> find_command(const std::string& id) override {
    auto r = events_->find_command(id);
    std::unique_lock l(mu_);
    if (armed_ && id == watched_ && ++finds_ == 2) {  // the repeat's look-up (the first is the original's)
      raced_ = true;
      gate_open_ = true;
      cv_.notify_all();
      cv_.wait_for(l, 5s, [&] { return original_done_; });
    }
    return r;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false, gate_open_ = true, append_waiting_ = false, original_done_ = false, raced_ = false;
  std::string watched_;
  int finds_ = 0;
};

using GatedProvider = testing::DecoratedProvider<GatedEvents>;

// Route, one lane and commit on memory stores: every command of the tests below goes
// through the same lane, in order.
graph::GraphDef one_lane_graph(const std::string& lane_params = "") {
  graph::KindRegistry registry;
  register_standard_kinds(registry);
  auto loaded = graph::load_graph_string(
      "graph: one-lane\nstores:\n  events: {kind: memory}\n  snapshots: {kind: memory}\nnodes:\n"
      "  - {id: demo, kind: demo_source}\n"
      "  - {id: route, kind: route, params: {lanes: 1}}\n"
      "  - {id: lanes, kind: command_lane, params: {events: events, snapshots: snapshots" + lane_params + "}}\n"
      "  - {id: commit, kind: commit, params: {events: events}}\n"
      "edges: [demo -> route, route -> lanes, lanes -> commit]\n");
  std::vector<graph::Diagnostic> diags;
  EXPECT_TRUE(loaded.ok() && graph::validate(loaded.graph, registry, diags));
  return loaded.graph;
}

// Builds `def` on `provider`'s stores with two TBB threads and starts it.
Result<BuiltPipeline> start_pipeline(const graph::GraphDef& def, StoreProvider& provider) {
  BuildOptions o;
  o.threads = 2;
  auto built = build_pipeline(def, test_support::standard_kinds(), provider, o);
  if (!built) return built.status();
  if (Status s = built->pipeline->start(); !s) return s;
  return built;
}

// Submits `c`; the future holds its outcome (events cleared). `after` runs after it is set.
std::future<Outcome> submit(CommandSink* sink, const v1::Command& c, std::function<void()> after = nullptr) {
  auto promise = std::make_shared<std::promise<Outcome>>();
  auto future = promise->get_future();
  auto env = make_envelope(c, [promise, after](const Outcome& out) {
    Outcome copy = out;
    copy.events = nullptr;
    promise->set_value(copy);
    if (after) after();
  });
  EXPECT_TRUE(sink->submit(env));
  return future;
}

v1::Command place_order(const std::string& command_id, const std::string& order_id) {
  v1::Command place;
  place.set_command_id(command_id);
  place.mutable_place_order()->set_order_id(order_id);
  place.mutable_place_order()->set_customer_id("c");
  auto* line = place.mutable_place_order()->add_lines();
  line->set_sku("A");
  line->set_quantity(1);
  line->set_unit_price_cents(100);
  return place;
}

// The one-lane pipeline on gated memory stores, started; each test drives it.
class LaneRepeats : public ::testing::Test {
 protected:
  void SetUp() override {
    BuildOptions o;
    o.threads = 2;
    auto b = build_pipeline(def_, test_support::standard_kinds(), gated, o);
    ASSERT_TRUE(b) << b.status().to_string();
    built = std::move(*b);
    ASSERT_TRUE(built.pipeline->start());
  }
  void TearDown() override {
    if (built.pipeline) built.pipeline->shutdown();
  }

  const graph::GraphDef def_ = one_lane_graph();
  connectors::StoreSet stores_{def_, ""};

 public:
  GatedProvider gated{stores_};
  BuiltPipeline built;
};

TEST_F(LaneRepeats, ARepeatRacingItsOriginalsCompletionIsItsDuplicateNotANewDecision) {

  auto placed = submit(built.sink, place_order("place-1", "o1"));
  ASSERT_EQ(placed.wait_for(5s), std::future_status::ready);
  ASSERT_TRUE(placed.get().status);

  v1::Command cancel;
  cancel.set_command_id("cancel-1");
  cancel.mutable_cancel_order()->set_order_id("o1");
  gated.events.arm("cancel-1");
  auto original = submit(built.sink, cancel, [&] { gated.events.original_done(); });
  ASSERT_TRUE(gated.events.wait_until_append_blocked()) << "the original never reached the store";
  auto repeat = submit(built.sink, cancel);
  // The fixed lane parks the repeat behind the original without a store look-up; give a
  // store look-up (the old lane) the time to happen, then let the original commit.
  for (int i = 0; i < 30 && !gated.events.raced(); ++i) std::this_thread::sleep_for(10ms);
  gated.events.open_gate();

  ASSERT_EQ(original.wait_for(5s), std::future_status::ready);
  ASSERT_EQ(repeat.wait_for(5s), std::future_status::ready);
  const Outcome first = original.get(), again = repeat.get();
  ASSERT_TRUE(first.status) << first.status.to_string();
  EXPECT_FALSE(first.duplicate);
  ASSERT_TRUE(again.status) << "the repeat was decided afresh: " << again.status.to_string();
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.result.first_version, first.result.first_version);
  EXPECT_FALSE(gated.events.raced()) << "the repeat looked the command id up while the original was in flight";
  // The monitor's figures: three commands reached the lane and three left it (the parked
  // repeat leaves when its original completes).
  const NodeProbe& lanes = built.pipeline->find("lanes")->probe();
  EXPECT_EQ(lanes.in(), 3u);
  EXPECT_EQ(lanes.out(), lanes.in());
}

// A command parked behind an in-flight one with the same id but on another stream is not
// its repeat: when the first commits, the second is decided on its own and refused.
TEST_F(LaneRepeats, TheSameIdOnAnotherStreamIsRefusedNotAnsweredAsARepeat) {

  gated.events.arm("shared-id");
  auto first = submit(built.sink, place_order("shared-id", "o1"), [&] { gated.events.original_done(); });
  ASSERT_TRUE(gated.events.wait_until_append_blocked()) << "the first never reached the store";
  auto second = submit(built.sink, place_order("shared-id", "o2"));  // stream order-o2, same lane
  std::this_thread::sleep_for(50ms);  // let the lane park it behind the first
  gated.events.open_gate();

  ASSERT_EQ(first.wait_for(5s), std::future_status::ready);
  ASSERT_EQ(second.wait_for(5s), std::future_status::ready);
  const Outcome a = first.get(), b = second.get();
  ASSERT_TRUE(a.status) << a.status.to_string();
  EXPECT_EQ(b.status.code(), StatusCode::kInvalidArgument) << "answered as a repeat of another stream's command";
  EXPECT_NE(b.status.message().find("already names a command on stream order-o1"), std::string::npos)
      << b.status.message();
}

// An exception while deciding (here: reading the stream to load it) fails that command and
// leaves nothing of it in the lane: before, its in-flight entry stayed, and every later
// attempt with the same command id was parked behind it for ever.
class ThrowingReads final : public testing::EventsDecorator {
 public:
  using EventsDecorator::EventsDecorator;
  std::atomic<int> throws{0};
  Status read_stream(const std::string& s, uint64_t from, std::vector<RecordedEvent>* out) override {
    if (throws.fetch_sub(1) > 0) throw std::runtime_error("injected read failure");
    return events_->read_stream(s, from, out);
  }
};

TEST(LaneFailures, AnExceptionWhileDecidingLeavesNothingBehind) {
  const graph::GraphDef def = one_lane_graph();
  connectors::StoreSet stores(def, "");
  testing::DecoratedProvider<ThrowingReads> provider(stores);
  auto built = start_pipeline(def, provider);
  ASSERT_TRUE(built) << built.status().to_string();
  // addStock loads its stream before deciding (placeOrder would not: it starts its stream).
  v1::Command place;
  place.set_command_id("stock-9");
  place.mutable_add_stock()->set_sku("S9");
  place.mutable_add_stock()->set_quantity(5);

  provider.events.throws = 1;
  auto failed = submit(built->sink, place);
  ASSERT_EQ(failed.wait_for(5s), std::future_status::ready);
  const Outcome first = failed.get();
  EXPECT_EQ(first.status.code(), StatusCode::kInternal) << first.status.to_string();
  EXPECT_NE(first.status.message().find("injected read failure"), std::string::npos);

  // The client retries with the same command id: decided and written, not parked.
  auto retried = submit(built->sink, place);
  ASSERT_EQ(retried.wait_for(5s), std::future_status::ready) << "the retry waits behind the failed attempt";
  const Outcome second = retried.get();
  ASSERT_TRUE(second.status) << second.status.to_string();
  EXPECT_FALSE(second.duplicate) << "the failed attempt wrote nothing";
  EXPECT_EQ(second.result.first_version, 1u);
  const NodeProbe& lanes = built->pipeline->find("lanes")->probe();
  EXPECT_EQ(lanes.out(), lanes.in());
  EXPECT_EQ(lanes.errors(), 1u);
  built->pipeline->shutdown();
}

// A write that fails while later decisions on the same stream wait for commit: the lane
// drops the stream's state but keeps its entry (LaneStream) for the pending decision. A
// command decided meanwhile finds the entry without a state and loads the stream from the
// store; the pending decision then conflicts and is decided again on the new state.
class FailOneWrite final : public testing::EventsDecorator {
 public:
  using EventsDecorator::EventsDecorator;
  void arm(const std::string& command_id) {
    std::lock_guard l(mu_);
    watched_ = command_id;
  }
  // The n-th held append (1: the watched one, failed; 2: the next, written) is waiting.
  bool wait_until_held(int n) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, 5s, [&] { return held_ >= n; });
  }
  void release(int n) {
    std::lock_guard l(mu_);
    released_ = n;
    cv_.notify_all();
  }
  std::vector<AppendResult> append(const std::vector<AppendRequest>& batch) override {
    std::unique_lock l(mu_);
    const bool watched = !watched_.empty() && std::any_of(batch.begin(), batch.end(), [&](const AppendRequest& r) {
                           return r.command_id == watched_;
                         });
    if (!watched && held_ != 1) {
      l.unlock();
      return events_->append(batch);
    }
    watched_.clear();
    const int n = ++held_;
    cv_.notify_all();
    cv_.wait_for(l, 5s, [&] { return released_ >= n; });
    if (n == 2) {
      l.unlock();
      return events_->append(batch);
    }
    std::vector<AppendResult> failed(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      failed[i].stream = batch[i].stream;
      failed[i].status = Status::io_error("injected write failure");
    }
    return failed;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string watched_;
  int held_ = 0, released_ = 0;
};

TEST(LaneFailures, AStreamDroppedWhileADecisionIsPendingIsReloadedNotLost) {
  const graph::GraphDef def = one_lane_graph();
  connectors::StoreSet stores(def, "");
  testing::DecoratedProvider<FailOneWrite> provider(stores);
  auto built = start_pipeline(def, provider);
  ASSERT_TRUE(built) << built.status().to_string();
  auto add = [](const std::string& id, int quantity) {
    v1::Command c;
    c.set_command_id(id);
    c.mutable_add_stock()->set_sku("S1");
    c.mutable_add_stock()->set_quantity(quantity);
    return c;
  };
  const NodeProbe& lanes = built->pipeline->find("lanes")->probe();
  auto decided = [&](uint64_t n) {
    for (int i = 0; i < 500 && lanes.out() < n; ++i) std::this_thread::sleep_for(10ms);
    return lanes.out() == n;
  };
  auto first = submit(built->sink, add("stock-0", 5));
  ASSERT_EQ(first.wait_for(5s), std::future_status::ready);
  const Outcome written = first.get();
  ASSERT_TRUE(written.status) << written.status.to_string();
  const std::string stream = written.result.stream;

  provider.events.arm("stock-1");
  auto failing = submit(built->sink, add("stock-1", 1));
  ASSERT_TRUE(provider.events.wait_until_held(1));
  auto pending = submit(built->sink, add("stock-2", 2));  // on stock-1's speculative state
  ASSERT_TRUE(decided(3)) << "stock-2 is decided while stock-1's write is held";
  provider.events.release(1);  // stock-1 fails: the lane drops the state, stock-2 still pending
  ASSERT_EQ(failing.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(failing.get().status.code(), StatusCode::kIoError);
  ASSERT_TRUE(provider.events.wait_until_held(2)) << "stock-2's write";
  auto meanwhile = submit(built->sink, add("stock-4", 4));  // finds the entry without a state
  ASSERT_TRUE(decided(4));
  provider.events.release(2);

  ASSERT_EQ(meanwhile.wait_for(5s), std::future_status::ready);
  const Outcome fourth = meanwhile.get();
  ASSERT_TRUE(fourth.status) << fourth.status.to_string();
  EXPECT_EQ(fourth.result.first_version, 2u) << "decided on the stream as stored, not on stock-1's events";
  ASSERT_EQ(pending.wait_for(5s), std::future_status::ready);
  const Outcome second = pending.get();
  ASSERT_TRUE(second.status) << second.status.to_string();
  EXPECT_EQ(second.result.first_version, 3u) << "conflicted, then decided again after stock-4";

  std::vector<RecordedEvent> events;
  ASSERT_TRUE(provider.events.read_stream(stream, 1, &events));
  std::vector<std::string> ids;
  for (const auto& e : events) ids.push_back(e.command_id);
  EXPECT_EQ(ids, (std::vector<std::string>{"stock-0", "stock-4", "stock-2"}));
  EXPECT_EQ(lanes.out(), lanes.in());
  built->pipeline->shutdown();
}

// Where a lane decides (command_lane's run_on): the thread of the lane's state load tells.
// On the caller, a command submitted to an idle lane is decided on the submitting thread
// (no hand-off to a oneTBB worker); on workers, never; auto is caller for a local store and
// workers for a shared one (a Cosmos DB read would hold the caller for a round trip).
class ThreadOfReads final : public testing::EventsDecorator {
 public:
  using EventsDecorator::EventsDecorator;
  bool shared_ = false;
  bool shared() const override { return shared_; }
  Status read_stream(const std::string& s, uint64_t from, std::vector<RecordedEvent>* out) override {
    {
      std::lock_guard l(mu);
      threads.push_back(std::this_thread::get_id());
    }
    return events_->read_stream(s, from, out);
  }
  std::mutex mu;
  std::vector<std::thread::id> threads;
};

// Runs one addStock (it loads its stream) through a pipeline whose lanes have `lane_params`;
// true when it was decided on the submitting thread.
bool decided_on_caller(const std::string& lane_params, bool shared_store) {
  const graph::GraphDef def = one_lane_graph(lane_params);
  connectors::StoreSet stores(def, "");
  testing::DecoratedProvider<ThreadOfReads> provider(stores);
  provider.events.shared_ = shared_store;
  auto built = start_pipeline(def, provider);
  EXPECT_TRUE(built) << built.status().to_string();
  if (!built) return false;
  v1::Command stock;
  stock.set_command_id("stock-1");
  stock.mutable_add_stock()->set_sku("S1");
  stock.mutable_add_stock()->set_quantity(5);
  auto done = submit(built->sink, stock);
  EXPECT_EQ(done.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(done.get().status);
  built->pipeline->shutdown();
  std::lock_guard l(provider.events.mu);
  EXPECT_EQ(provider.events.threads.size(), 1u);
  return !provider.events.threads.empty() && provider.events.threads.front() == std::this_thread::get_id();
}

TEST(LaneThreads, RunOnDecidesWhereACommandIsDecided) {
  EXPECT_TRUE(decided_on_caller(", run_on: caller", false));
  EXPECT_FALSE(decided_on_caller(", run_on: workers", false));
  EXPECT_TRUE(decided_on_caller("", false)) << "auto, local store";
  EXPECT_FALSE(decided_on_caller("", true)) << "auto, shared store";
}

TEST(LaneThreads, AutoIsTheCallerOnlyForALocalStoreNotFedByKafka) {
  using R = LaneGroupNode::RunOn;
  EXPECT_EQ(LaneGroupNode::resolve_run_on("auto", false, false), R::kCaller);
  EXPECT_EQ(LaneGroupNode::resolve_run_on("auto", true, false), R::kWorkers);
  EXPECT_EQ(LaneGroupNode::resolve_run_on("auto", false, true), R::kWorkers);
  EXPECT_EQ(LaneGroupNode::resolve_run_on("caller", true, true), R::kCaller);
  EXPECT_EQ(LaneGroupNode::resolve_run_on("workers", false, false), R::kWorkers);
}

TEST(LaneThreads, AnUnknownRunOnIsRefusedWithTheChoices) {
  graph::KindRegistry registry;
  register_standard_kinds(registry);
  auto loaded = graph::load_graph_string(
      "graph: bad\nstores:\n  events: {kind: memory}\n  snapshots: {kind: memory}\nnodes:\n"
      "  - {id: demo, kind: demo_source}\n"
      "  - {id: route, kind: route}\n"
      "  - {id: lanes, kind: command_lane, params: {events: events, snapshots: snapshots, run_on: elsewhere}}\n"
      "  - {id: commit, kind: commit, params: {events: events}}\n"
      "edges: [demo -> route, route -> lanes, lanes -> commit]\n");
  ASSERT_TRUE(loaded.ok());
  std::vector<graph::Diagnostic> diags;
  EXPECT_FALSE(graph::validate(loaded.graph, registry, diags));
  std::string all;
  for (const auto& d : diags) all += d.message + "\n";
  EXPECT_NE(all.find("run_on"), std::string::npos) << all;
  EXPECT_NE(all.find("workers"), std::string::npos) << all;
}

}  // namespace
}  // namespace orderflow
