// Regression: a repeat of a command id that raced its original's completion was decided
// afresh on state that already held the original's events, and answered as rejected
// (422 "order is cancelled") instead of as a duplicate of the original
// (ServerE2eTest.ConcurrentRetryOfSameCommandIsIdempotent failed about 1 run in 15).
//
// An event store decorator makes the race certain: the original's group commit waits at a
// gate; if the repeat's decision looks the command id up in the store, that look-up reads
// "not found", opens the gate and returns only after the original has completed, which is
// exactly the losing interleaving. The fixed lane sees the original in flight first and
// never asks the store.
#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>

#include "connectors/stores.h"
#include "nodes/builder.h"
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

TEST(LaneRepeats, ARepeatRacingItsOriginalsCompletionIsItsDuplicateNotANewDecision) {
  graph::KindRegistry registry;
  register_node_kinds(registry);
  auto loaded = graph::load_graph_string(
      "graph: race\nstores:\n  events: {kind: memory}\n  snapshots: {kind: memory}\nnodes:\n"
      "  - {id: demo, kind: demo_source}\n"
      "  - {id: route, kind: route, params: {lanes: 1}}\n"
      "  - {id: lanes, kind: command_lane, params: {events: events, snapshots: snapshots}}\n"
      "  - {id: commit, kind: commit, params: {events: events}}\n"
      "edges: [demo -> route, route -> lanes, lanes -> commit]\n");
  ASSERT_TRUE(loaded.ok());
  std::vector<graph::Diagnostic> diags;
  ASSERT_TRUE(graph::validate(loaded.graph, registry, diags));
  connectors::StoreSet stores(loaded.graph, "");
  GatedProvider gated(stores);
  BuildOptions o;
  o.threads = 2;
  auto built = build_pipeline(loaded.graph, gated, o);
  ASSERT_TRUE(built);
  ASSERT_TRUE(built->pipeline->start());

  auto submit = [&](const v1::Command& c, std::function<void()> after = nullptr) {
    auto promise = std::make_shared<std::promise<Outcome>>();
    auto future = promise->get_future();
    auto env = make_envelope(c, [promise, after](const Outcome& out) {
      Outcome copy = out;
      copy.events = nullptr;
      promise->set_value(copy);
      if (after) after();
    });
    EXPECT_TRUE(built->sink->submit(env));
    return future;
  };
  v1::Command place;
  place.set_command_id("place-1");
  place.mutable_place_order()->set_order_id("o1");
  place.mutable_place_order()->set_customer_id("c");
  auto* line = place.mutable_place_order()->add_lines();
  line->set_sku("A");
  line->set_quantity(1);
  line->set_unit_price_cents(100);
  auto placed = submit(place);
  ASSERT_EQ(placed.wait_for(5s), std::future_status::ready);
  ASSERT_TRUE(placed.get().status);

  v1::Command cancel;
  cancel.set_command_id("cancel-1");
  cancel.mutable_cancel_order()->set_order_id("o1");
  gated.events.arm("cancel-1");
  auto original = submit(cancel, [&] { gated.events.original_done(); });
  ASSERT_TRUE(gated.events.wait_until_append_blocked()) << "the original never reached the store";
  auto repeat = submit(cancel);
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
  const NodeProbe& lanes = built->pipeline->find("lanes")->probe();
  EXPECT_EQ(lanes.in(), 3u);
  EXPECT_EQ(lanes.out(), lanes.in());
  built->pipeline->shutdown();
}

}  // namespace
}  // namespace orderflow
