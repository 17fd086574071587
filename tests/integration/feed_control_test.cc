// FeedControl on a running ChangeFeedNode (the admin API's reset and rebuild): a memory
// event store, a counting subscriber, the feed's own threads.
//
//   PauseAndResumeMovesTheCheckpointWhileOthersRun
//                         a reset to 0 redelivers every event to that subscriber while the
//                         other one keeps getting new events during the pause
//   OutstandingTicketsFinishBeforeThePause
//                         a subscriber whose batches finish later: the pause waits for them
//                         and the old checkpoint reported covers them
//   FeedWithoutGlobalPositionsRefusesAReset
//                         a store whose positions are per subscriber (Cosmos DB): 409-worthy
//                         kConflict, and positions() says why
//   UnknownSubscriberAndResumeWithoutPause
//   CheckpointsAreSavedPerIntervalAndWhenQuietNotPerBatch
//                         300 batches of one event in ~0.3 s: a few saves, not one per batch;
//                         the last position saved once the feed is quiet, and by a stop
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "connectors/memory_store.h"
#include "graph/feed.h"
#include "graph/pipeline.h"
#include "nodes/nodes.h"
#include "tests/support/store_decorators.h"

namespace {

using namespace orderflow;
using namespace std::chrono_literals;

class Counting final : public RuntimeNode, public FeedSubscriber {
 public:
  Counting(Pipeline& p, const std::string& id, bool late_tickets = false)
      : RuntimeNode(id, "counting", p.metrics().probe(id, "counting")), late_(late_tickets) {}
  const std::string& subscriber_id() const override { return id(); }
  NodeProbe& subscriber_probe() override { return probe(); }
  Result<std::shared_ptr<BatchTicket>> handle(const std::vector<RecordedEvent>& batch) override {
    events += batch.size();
    if (!late_) return std::shared_ptr<BatchTicket>();
    auto t = std::make_shared<BatchTicket>();
    t->add();
    std::lock_guard lock(mu_);
    held_.push_back(t);
    return t;
  }
  void idle(bool) override {
    std::lock_guard lock(mu_);
    for (auto& t : held_) t->finish(Status::ok());
    held_.clear();
  }
  void forget() override { forgot = true; }
  std::atomic<uint64_t> events{0};
  std::atomic<bool> forgot{false};

 private:
  const bool late_;
  std::mutex mu_;
  std::vector<std::shared_ptr<BatchTicket>> held_;
};

void append(connectors::MemoryEventStore& store, int from, int n) {
  std::vector<AppendRequest> batch;
  for (int i = from; i < from + n; ++i) {
    AppendRequest r;
    r.stream = "s-" + std::to_string(i);
    r.command_id = "c-" + std::to_string(i);
    r.events = {"payload"};
    batch.push_back(r);
  }
  for (const auto& r : store.append(batch)) ASSERT_TRUE(r.status.is_ok()) << r.status.to_string();
}

bool eventually(const std::function<bool()>& f, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!f()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

uint64_t checkpoint_of(FeedControl& f, const std::string& id) {
  for (const auto& p : f.positions())
    if (p.subscriber == id) return p.checkpoint;
  return ~uint64_t{0};
}

TEST(FeedControl, PauseAndResumeMovesTheCheckpointWhileOthersRun) {
  connectors::MemoryEventStore store;
  append(store, 0, 50);
  Pipeline p(2);
  auto* feed = p.add(std::make_unique<ChangeFeedNode>(p, "feed", &store, 16, 5));
  auto* a = p.add(std::make_unique<Counting>(p, "a"));
  auto* b = p.add(std::make_unique<Counting>(p, "b"));
  ASSERT_TRUE(feed->connect_to(*a).is_ok());
  ASSERT_TRUE(feed->connect_to(*b).is_ok());
  ASSERT_TRUE(p.start().is_ok());
  ASSERT_TRUE(eventually([&] { return checkpoint_of(*feed, "a") == 50 && checkpoint_of(*feed, "b") == 50; }));

  ASSERT_TRUE(feed->pause("a", 5s).is_ok());
  append(store, 50, 10);  // b keeps running meanwhile; a does not move
  ASSERT_TRUE(eventually([&] { return checkpoint_of(*feed, "b") == 60; })) << "the other subscriber stopped";
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(a->events.load(), 50u);
  EXPECT_EQ(checkpoint_of(*feed, "a"), 50u);

  auto old = feed->resume("a", uint64_t{0}, true);
  ASSERT_TRUE(old.is_ok()) << old.status().to_string();
  EXPECT_EQ(*old, 50u);
  EXPECT_TRUE(a->forgot.load());
  EXPECT_TRUE(eventually([&] { return checkpoint_of(*feed, "a") == 60 && a->events.load() == 110u; }))
      << "a got " << a->events.load() << " events, checkpoint " << checkpoint_of(*feed, "a");
  EXPECT_EQ(b->events.load(), 60u) << "b was redelivered too";
  auto saved = store.load_checkpoint("a");
  ASSERT_TRUE(saved.is_ok());
  EXPECT_EQ(*saved, 60u);
  p.shutdown(5s);
}

TEST(FeedControl, OutstandingTicketsFinishBeforeThePause) {
  connectors::MemoryEventStore store;
  append(store, 0, 40);
  Pipeline p(2);
  auto* feed = p.add(std::make_unique<ChangeFeedNode>(p, "feed", &store, 8, 5));
  auto* a = p.add(std::make_unique<Counting>(p, "a", true));
  ASSERT_TRUE(feed->connect_to(*a).is_ok());
  ASSERT_TRUE(p.start().is_ok());
  ASSERT_TRUE(eventually([&] { return a->events.load() == 40u; }));
  ASSERT_TRUE(feed->pause("a", 5s).is_ok());
  // Paused only after every ticket finished and was checkpointed.
  EXPECT_EQ(checkpoint_of(*feed, "a"), 40u);
  auto old = feed->resume("a", uint64_t{10}, false);
  ASSERT_TRUE(old.is_ok());
  EXPECT_EQ(*old, 40u);
  EXPECT_FALSE(a->forgot.load());
  EXPECT_TRUE(eventually([&] { return a->events.load() == 70u && checkpoint_of(*feed, "a") == 40u; }))
      << a->events.load();
  p.shutdown(5s);
}

// Positions that are the subscriber's own, as Cosmos DB's per-range views have.
class NoGlobalPositions final : public orderflow::testing::EventsDecorator {
 public:
  using EventsDecorator::EventsDecorator;
  bool global_positions() const override { return false; }
};

TEST(FeedControl, FeedWithoutGlobalPositionsRefusesAReset) {
  connectors::MemoryEventStore store;
  append(store, 0, 5);
  NoGlobalPositions view(&store, &store);
  Pipeline p(2);
  auto* feed = p.add(std::make_unique<ChangeFeedNode>(p, "feed", &view, 8, 5));
  auto* a = p.add(std::make_unique<Counting>(p, "a"));
  ASSERT_TRUE(feed->connect_to(*a).is_ok());
  ASSERT_TRUE(p.start().is_ok());
  ASSERT_TRUE(eventually([&] { return a->events.load() == 5u; }));
  const Status s = feed->pause("a", 1s);
  EXPECT_EQ(s.code(), StatusCode::kConflict) << s.to_string();
  EXPECT_NE(s.message().find("global positions"), std::string::npos) << s.message();
  const auto positions = feed->positions();
  ASSERT_EQ(positions.size(), 1u);
  EXPECT_FALSE(positions[0].resettable);
  EXPECT_NE(positions[0].not_resettable_because.find("Cosmos"), std::string::npos);
  EXPECT_EQ(positions[0].kind, "counting");
  p.shutdown(5s);
}

TEST(FeedControl, UnknownSubscriberAndResumeWithoutPause) {
  connectors::MemoryEventStore store;
  Pipeline p(2);
  auto* feed = p.add(std::make_unique<ChangeFeedNode>(p, "feed", &store, 8, 5));
  auto* a = p.add(std::make_unique<Counting>(p, "a"));
  ASSERT_TRUE(feed->connect_to(*a).is_ok());
  ASSERT_TRUE(p.start().is_ok());
  EXPECT_EQ(feed->pause("nope", 1s).code(), StatusCode::kNotFound);
  EXPECT_EQ(feed->resume("a", uint64_t{0}, false).status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(eventually([&] {
    auto ps = feed->positions();
    return !ps.empty() && ps[0].running;
  }));
  ASSERT_TRUE(feed->pause("a", 1s).is_ok());
  EXPECT_EQ(feed->pause("a", 100ms).code(), StatusCode::kConflict) << "a second pause of the same subscriber";
  ASSERT_TRUE(feed->resume("a", std::nullopt, false).is_ok());
  p.shutdown(5s);  // a stop while nothing is paused
}

// Counts the checkpoint saves of each subscriber.
class SaveCounting final : public orderflow::testing::EventsDecorator {
 public:
  using EventsDecorator::EventsDecorator;
  Status save_checkpoint(const std::string& s, uint64_t pos) override {
    {
      std::lock_guard lock(mu_);
      ++saves_[s];
    }
    return EventsDecorator::save_checkpoint(s, pos);
  }
  int saves(const std::string& s) {
    std::lock_guard lock(mu_);
    return saves_[s];
  }

 private:
  std::mutex mu_;
  std::map<std::string, int> saves_;
};

TEST(FeedControl, CheckpointsAreSavedPerIntervalAndWhenQuietNotPerBatch) {
  connectors::MemoryEventStore store;
  SaveCounting view(&store, &store);
  Pipeline p(2);
  auto* feed = p.add(std::make_unique<ChangeFeedNode>(p, "feed", &view, 1, 5));  // batches of one event
  auto* a = p.add(std::make_unique<Counting>(p, "a"));
  ASSERT_TRUE(feed->connect_to(*a).is_ok());
  ASSERT_TRUE(p.start().is_ok());
  for (int i = 0; i < 300; ++i) {
    append(store, i, 1);
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_TRUE(eventually([&] { return a->events.load() == 300u; }));
  // One save per batch would be 300; one per 100 ms of a ~0.3-0.6 s run, a handful (more
  // only where this machine stalled the loop above for over 10 ms, a quiet moment).
  EXPECT_LT(view.saves("a"), 75) << "the checkpoint was saved per batch";
  EXPECT_GE(view.saves("a"), 1);
  // Quiet: everything handled is saved within a moment, and positions() reports it.
  EXPECT_TRUE(eventually([&] { return *store.load_checkpoint("a") == 300u; }, 2s)) << *store.load_checkpoint("a");
  EXPECT_EQ(checkpoint_of(*feed, "a"), 300u);
  // A stop saves what was handled.
  append(store, 300, 5);
  ASSERT_TRUE(eventually([&] { return a->events.load() == 305u; }));
  p.shutdown(5s);
  EXPECT_EQ(*store.load_checkpoint("a"), 305u);
}

}  // namespace
