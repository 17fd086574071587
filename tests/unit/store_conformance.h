// Store conformance suites, shared by every EventStore/ChangeFeed and SnapshotStore
// implementation: instantiated for memory and RocksDB in tests/unit/store_test.cc and for
// Cosmos DB (on the stand-in) in tests/integration/cosmos_store_test.cc.
//
// A backend type provides events(), feed() (or snapshots' store()) and two traits:
//   kGlobalPositions  the store assigns global positions and its ChangeFeed is read by
//                     position directly (RocksDB, memory); false for Cosmos DB, whose
//                     positions are 0 in append results and whose feed is per subscriber.
//   kGlobalCommandIds a command id is unique across streams (false for Cosmos DB, where
//                     it is unique per stream: the command names its stream).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "graph/store.h"

namespace orderflow::connectors::conformance {

using namespace std::chrono_literals;

inline AppendRequest req(std::string stream, uint64_t expected, std::string command_id,
                         std::vector<std::string> events) {
  AppendRequest r;
  r.stream = std::move(stream);
  r.expected_version = expected;
  r.command_id = std::move(command_id);
  r.events = std::move(events);
  return r;
}

template <typename Backend>
class EventStoreTest : public ::testing::Test {
 protected:
  EventStore& store() { return backend_.events(); }
  ChangeFeed& feed() { return backend_.feed(); }

  std::vector<AppendResult> append(std::vector<AppendRequest> batch) { return store().append(batch); }
  AppendResult append_one(AppendRequest r) { return append({std::move(r)}).at(0); }

  std::vector<RecordedEvent> stream(const std::string& name, uint64_t from = 1) {
    std::vector<RecordedEvent> out;
    auto s = store().read_stream(name, from, &out);
    EXPECT_TRUE(s) << s.to_string();
    return out;
  }
  std::vector<RecordedEvent> feed_read(uint64_t after, size_t max) {
    std::vector<RecordedEvent> out;
    auto s = feed().read(after, max, &out);
    EXPECT_TRUE(s) << s.to_string();
    return out;
  }
  uint64_t version(const std::string& name) {
    auto v = store().stream_version(name);
    EXPECT_TRUE(v) << v.status().to_string();
    return v ? *v : ~uint64_t{0};
  }

  Backend backend_;
};

TYPED_TEST_SUITE_P(EventStoreTest);

TYPED_TEST_P(EventStoreTest, AppendToNewStreamNumbersVersionsAndPositions) {
  auto r = this->append_one(req("order-a", 0, "c1", {"e1", "e2", "e3"}));
  ASSERT_TRUE(r.status) << r.status.to_string();
  EXPECT_FALSE(r.duplicate);
  EXPECT_EQ(r.stream, "order-a");
  EXPECT_EQ(r.first_version, 1u);
  EXPECT_EQ(r.last_version, 3u);
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(r.first_position, 1u); }
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(r.last_position, 3u); }

  auto r2 = this->append_one(req("sku-x", 0, "c2", {"x1"}));
  ASSERT_TRUE(r2.status);
  EXPECT_EQ(r2.first_version, 1u);
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(r2.first_position, 4u); }
  auto r3 = this->append_one(req("order-a", 3, "c3", {"e4", "e5"}));
  ASSERT_TRUE(r3.status) << r3.status.to_string();
  EXPECT_EQ(r3.first_version, 4u);
  EXPECT_EQ(r3.last_version, 5u);
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(r3.first_position, 5u); }
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(r3.last_position, 6u); }

  const auto events = this->stream("order-a");
  ASSERT_EQ(events.size(), 5u);
  const std::vector<std::string> payloads = {"e1", "e2", "e3", "e4", "e5"};
  const std::vector<uint64_t> positions = {1, 2, 3, 5, 6};
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].stream, "order-a");
    EXPECT_EQ(events[i].version, i + 1);
    if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(events[i].position, positions[i]); }
    EXPECT_EQ(events[i].payload, payloads[i]);
    EXPECT_EQ(events[i].command_id, i < 3 ? "c1" : "c3");
    EXPECT_GT(events[i].committed_at_us, 0);
  }
  EXPECT_EQ(this->version("order-a"), 5u);
  EXPECT_EQ(this->version("sku-x"), 1u);
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(this->feed().head(), 6u); }
}

TYPED_TEST_P(EventStoreTest, BinaryPayloadsSurvive) {
  const std::string payload("\0\x01\xff\n{}", 6);
  ASSERT_TRUE(this->append_one(req("s", 0, "c1", {payload, ""})).status);
  const auto events = this->stream("s");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].payload, payload);
  EXPECT_EQ(events[1].payload, "");
}

TYPED_TEST_P(EventStoreTest, WrongExpectedVersionConflictsAndWritesNothing) {
  ASSERT_TRUE(this->append_one(req("s", 0, "c1", {"a", "b"})).status);
  for (uint64_t expected : {0, 1, 3}) {
    auto r = this->append_one(req("s", expected, "bad-" + std::to_string(expected), {"x"}));
    EXPECT_EQ(r.status.code(), StatusCode::kConflict) << expected;
    EXPECT_EQ(r.actual_version, 2u);
    EXPECT_EQ(r.stream, "s");
    EXPECT_EQ(r.first_position, 0u);
    EXPECT_FALSE(r.duplicate);
    EXPECT_TRUE(r.status.is_retriable());
  }
  auto absent = this->append_one(req("new", 4, "bad-new", {"x"}));
  EXPECT_EQ(absent.status.code(), StatusCode::kConflict);
  EXPECT_EQ(absent.actual_version, 0u);

  EXPECT_EQ(this->stream("s").size(), 2u);
  EXPECT_EQ(this->version("new"), 0u);
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(this->feed().head(), 2u); }
  // A conflicting command id is not remembered: it may succeed later.
  auto found = this->store().find_command("bad-1");
  ASSERT_TRUE(found);
  EXPECT_FALSE(found->has_value());
  auto retry = this->append_one(req("s", 2, "bad-1", {"x"}));
  ASSERT_TRUE(retry.status) << retry.status.to_string();
  EXPECT_EQ(retry.first_version, 3u);
}

TYPED_TEST_P(EventStoreTest, RepeatedCommandIdReturnsTheFirstResultAndWritesNothing) {
  const auto first = this->append_one(req("s", 0, "c1", {"a", "b"}));
  ASSERT_TRUE(first.status);
  ASSERT_TRUE(this->append_one(req("t", 0, "c2", {"t1"})).status);
  // Same id and stream, different version and events: still the first result.
  const auto again = this->append_one(req("s", 2, "c1", {"zzz"}));
  ASSERT_TRUE(again.status) << again.status.to_string();
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.stream, "s");
  EXPECT_EQ(again.first_version, 1u);
  EXPECT_EQ(again.last_version, 2u);
  EXPECT_EQ(again.first_position, first.first_position);
  EXPECT_EQ(again.last_position, first.last_position);
  if constexpr (TypeParam::kGlobalCommandIds) {
    // Where ids are global, the same id on another stream is another command: refused.
    const auto other = this->append_one(req("t", 1, "c1", {"zzz"}));
    EXPECT_EQ(other.status.code(), StatusCode::kInvalidArgument) << other.status.to_string();
  }
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(this->feed().head(), 3u); }
  EXPECT_EQ(this->version("t"), 1u);
  EXPECT_EQ(this->version("s"), 2u);
}

TYPED_TEST_P(EventStoreTest, RepeatInsideOneBatchIsADuplicateOfTheEarlierRequest) {
  const auto rs = this->append({req("s", 0, "c1", {"a"}), req("s", 1, "c1", {"b"}), req("t", 0, "c2", {"c"})});
  ASSERT_EQ(rs.size(), 3u);
  ASSERT_TRUE(rs[0].status);
  EXPECT_FALSE(rs[0].duplicate);
  ASSERT_TRUE(rs[1].status) << rs[1].status.to_string();
  EXPECT_TRUE(rs[1].duplicate);
  EXPECT_EQ(rs[1].first_version, 1u);
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(rs[1].first_position, 1u); }
  ASSERT_TRUE(rs[2].status);
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(rs[2].first_position, 2u); }  // the duplicate took no position
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(this->feed().head(), 2u); }
  EXPECT_EQ(this->stream("s").size(), 1u);
}

TYPED_TEST_P(EventStoreTest, ConflictInABatchDoesNotDisturbTheOthers) {
  ASSERT_TRUE(this->append_one(req("b", 0, "c0", {"b1"})).status);
  const auto rs = this->append({
      req("a", 0, "c1", {"a1", "a2"}),
      req("b", 0, "c2", {"x"}),       // conflict: b is at 1
      req("c", 0, "c3", {"c1"}),
      req("a", 2, "c4", {"a3"}),      // builds on the first request of the batch
      req("a", 2, "c5", {"y"}),       // conflict with the request just before
      req("b", 1, "c6", {"b2"}),
  });
  ASSERT_EQ(rs.size(), 6u);
  EXPECT_TRUE(rs[0].status);
  EXPECT_EQ(rs[1].status.code(), StatusCode::kConflict);
  EXPECT_EQ(rs[1].actual_version, 1u);
  EXPECT_TRUE(rs[2].status);
  EXPECT_TRUE(rs[3].status) << rs[3].status.to_string();
  EXPECT_EQ(rs[4].status.code(), StatusCode::kConflict);
  EXPECT_EQ(rs[4].actual_version, 3u);
  EXPECT_TRUE(rs[5].status) << rs[5].status.to_string();
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(rs[0].first_position, 2u); }
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(rs[0].last_position, 3u); }
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(rs[2].first_position, 4u); }
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(rs[3].first_position, 5u); }
  EXPECT_EQ(rs[3].first_version, 3u);
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(rs[5].first_position, 6u); }
  EXPECT_EQ(rs[5].first_version, 2u);

  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(this->feed().head(), 6u); }
  EXPECT_EQ(this->version("a"), 3u);
  EXPECT_EQ(this->version("b"), 2u);
  EXPECT_EQ(this->version("c"), 1u);
  std::vector<std::string> b;
  for (const auto& e : this->stream("b")) b.push_back(e.payload);
  EXPECT_EQ(b, (std::vector<std::string>{"b1", "b2"}));
  // The feed has no holes where the conflicts were.
  if constexpr (TypeParam::kGlobalPositions) {
    const auto all = this->feed_read(0, 100);
    ASSERT_EQ(all.size(), 6u);
    for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].position, i + 1);
  }
}

TYPED_TEST_P(EventStoreTest, InvalidRequestsAreRefused) {
  const auto rs = this->append({req("s", 0, "c1", {}), req("", 0, "c2", {"a"}), req("s", 0, "", {"a"}),
                                req("s", 0, "c3", {"ok"})});
  ASSERT_EQ(rs.size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(rs[i].status.code(), StatusCode::kInvalidArgument) << i;
  ASSERT_TRUE(rs[3].status);
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(rs[3].first_position, 1u); }
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(this->feed().head(), 1u); }
}

TYPED_TEST_P(EventStoreTest, ReadStreamFromAVersion) {
  ASSERT_TRUE(this->append_one(req("s", 0, "c1", {"1", "2", "3", "4"})).status);
  ASSERT_TRUE(this->append_one(req("s-longer", 0, "c2", {"other"})).status);
  ASSERT_TRUE(this->append_one(req("s", 4, "c3", {"5"})).status);
  auto from3 = this->stream("s", 3);
  ASSERT_EQ(from3.size(), 3u);
  EXPECT_EQ(from3[0].version, 3u);
  EXPECT_EQ(from3[0].payload, "3");
  EXPECT_EQ(from3[2].payload, "5");
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(from3[2].position, 6u); }
  EXPECT_EQ(this->stream("s", 0).size(), 5u);  // 0 reads from the start
  EXPECT_EQ(this->stream("s", 5).size(), 1u);
  EXPECT_TRUE(this->stream("s", 6).empty());
  EXPECT_TRUE(this->stream("absent").empty());
  EXPECT_TRUE(this->stream("s-").empty());
  const auto other = this->stream("s-longer");
  ASSERT_EQ(other.size(), 1u);
  EXPECT_EQ(other[0].payload, "other");
}

TYPED_TEST_P(EventStoreTest, FindCommandAndStreamVersion) {
  auto none = this->store().find_command("c1");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  EXPECT_EQ(this->version("s"), 0u);

  ASSERT_TRUE(this->append_one(req("t", 0, "c0", {"t"})).status);
  ASSERT_TRUE(this->append_one(req("s", 0, "c1", {"a", "b"})).status);
  auto found = this->store().find_command("c1");
  ASSERT_TRUE(found) << found.status().to_string();
  ASSERT_TRUE(found->has_value());
  const AppendResult& r = **found;
  EXPECT_TRUE(r.status);
  EXPECT_EQ(r.stream, "s");
  EXPECT_EQ(r.first_version, 1u);
  EXPECT_EQ(r.last_version, 2u);
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(r.first_position, 2u); }
  if constexpr (TypeParam::kGlobalPositions) { EXPECT_EQ(r.last_position, 3u); }
  EXPECT_EQ(this->version("s"), 2u);
  EXPECT_EQ(this->version("t"), 1u);
  EXPECT_EQ(this->version("u"), 0u);
  auto in_stream = this->store().find_command_in("s", "c1");
  ASSERT_TRUE(in_stream) << in_stream.status().to_string();
  ASSERT_TRUE(in_stream->has_value());
  EXPECT_EQ((*in_stream)->first_version, 1u);
  auto absent = this->store().find_command_in("s", "c0");  // c0 is t's
  ASSERT_TRUE(absent);
  if constexpr (!TypeParam::kGlobalCommandIds) { EXPECT_FALSE(absent->has_value()); }
}

TYPED_TEST_P(EventStoreTest, FeedReadsInPositionOrderAcrossStreams) {
  if constexpr (!TypeParam::kGlobalPositions) { GTEST_SKIP() << "position-addressed feed: this store's feed is per subscriber (own tests)"; }
  EXPECT_EQ(this->feed().head(), 0u);
  EXPECT_TRUE(this->feed_read(0, 10).empty());
  ASSERT_TRUE(this->append_one(req("a", 0, "c1", {"a1"})).status);
  const auto rs = this->append({req("b", 0, "c2", {"b1", "b2"}), req("a", 1, "c3", {"a2"})});
  ASSERT_TRUE(rs[0].status);
  ASSERT_TRUE(rs[1].status);
  ASSERT_TRUE(this->append_one(req("c", 0, "c4", {"c1"})).status);
  EXPECT_EQ(this->feed().head(), 5u);

  const auto all = this->feed_read(0, 100);
  ASSERT_EQ(all.size(), 5u);
  const std::vector<std::pair<std::string, uint64_t>> expect = {
      {"a", 1}, {"b", 1}, {"b", 2}, {"a", 2}, {"c", 1}};
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].position, i + 1);
    EXPECT_EQ(all[i].stream, expect[i].first) << i;
    EXPECT_EQ(all[i].version, expect[i].second) << i;
  }
  EXPECT_EQ(all[3].payload, "a2");
  EXPECT_EQ(all[3].command_id, "c3");
  // Events of one batch share its commit time.
  EXPECT_EQ(all[1].committed_at_us, all[3].committed_at_us);

  const auto page = this->feed_read(1, 2);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].position, 2u);
  EXPECT_EQ(page[1].position, 3u);
  const auto tail = this->feed_read(3, 100);
  ASSERT_EQ(tail.size(), 2u);
  EXPECT_EQ(tail[1].position, 5u);
  EXPECT_TRUE(this->feed_read(5, 100).empty());
  EXPECT_TRUE(this->feed_read(0, 0).empty());
}

TYPED_TEST_P(EventStoreTest, WaitReturnsWhenAnotherThreadAppends) {
  if constexpr (!TypeParam::kGlobalPositions) { GTEST_SKIP() << "position-addressed feed: this store's feed is per subscriber (own tests)"; }
  ASSERT_TRUE(this->append_one(req("s", 0, "c1", {"a"})).status);
  const uint64_t after = this->feed().head();
  std::thread writer([this] {
    std::this_thread::sleep_for(20ms);
    this->append_one(req("s", 1, "c2", {"b"}));
  });
  const auto t0 = std::chrono::steady_clock::now();
  this->feed().wait(after, 10s);
  const auto waited = std::chrono::steady_clock::now() - t0;
  writer.join();
  EXPECT_GT(this->feed().head(), after);
  EXPECT_LT(waited, 5s) << "wait() did not wake on the append";
}

TYPED_TEST_P(EventStoreTest, WaitTimesOutWithoutNewEvents) {
  if constexpr (!TypeParam::kGlobalPositions) { GTEST_SKIP() << "position-addressed feed: this store's feed is per subscriber (own tests)"; }
  ASSERT_TRUE(this->append_one(req("s", 0, "c1", {"a"})).status);
  auto t0 = std::chrono::steady_clock::now();
  this->feed().wait(1, 20ms);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 15ms);
  EXPECT_EQ(this->feed().head(), 1u);
  // Already past `after`: no waiting at all.
  t0 = std::chrono::steady_clock::now();
  this->feed().wait(0, 10s);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TYPED_TEST_P(EventStoreTest, Checkpoints) {
  if constexpr (!TypeParam::kGlobalPositions) { GTEST_SKIP() << "position-addressed feed: this store's feed is per subscriber (own tests)"; }
  auto absent = this->feed().load_checkpoint("projection");
  ASSERT_TRUE(absent);
  EXPECT_EQ(*absent, 0u);
  ASSERT_TRUE(this->feed().save_checkpoint("projection", 42));
  ASSERT_TRUE(this->feed().save_checkpoint("saga", 7));
  EXPECT_EQ(*this->feed().load_checkpoint("projection"), 42u);
  EXPECT_EQ(*this->feed().load_checkpoint("saga"), 7u);
  ASSERT_TRUE(this->feed().save_checkpoint("projection", 43));
  EXPECT_EQ(*this->feed().load_checkpoint("projection"), 43u);
  EXPECT_EQ(*this->feed().load_checkpoint("other"), 0u);
}

TYPED_TEST_P(EventStoreTest, ConcurrentAppendersGetDistinctContiguousPositions) {
  constexpr int kThreads = 4, kPerThread = 25;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &failures] {
      const std::string s = "stream-" + std::to_string(t);
      for (int i = 0; i < kPerThread; ++i) {
        auto r = this->append_one(req(s, static_cast<uint64_t>(i), s + "/" + std::to_string(i), {"e"}));
        if (!r.status) failures.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  if constexpr (TypeParam::kGlobalPositions) {
    EXPECT_EQ(this->feed().head(), uint64_t{kThreads * kPerThread});
    const auto all = this->feed_read(0, 1000);
    ASSERT_EQ(all.size(), size_t{kThreads * kPerThread});
    std::map<std::string, uint64_t> last_version;
    for (size_t i = 0; i < all.size(); ++i) {
      EXPECT_EQ(all[i].position, i + 1);
      EXPECT_EQ(all[i].version, last_version[all[i].stream] + 1) << all[i].stream;
      last_version[all[i].stream] = all[i].version;
    }
  }
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(this->version("stream-" + std::to_string(t)), uint64_t{kPerThread});
}

// A rejection decided on cached state is checked with a verify_only request: it passes only
// at the stream's current version (counting earlier requests of the same batch), fails
// behind the chain of an earlier failure, and never writes anything.
TYPED_TEST_P(EventStoreTest, VersionCheckPassesOnlyAtTheCurrentVersionAndWritesNothing) {
  ASSERT_TRUE(this->append_one(req("s", 0, "c1", {"a", "b"})).status);
  auto check = [](uint64_t expected, uint64_t chain = 0) {
    AppendRequest r = req("s", expected, "rejected-cmd", {});
    r.verify_only = true;
    r.chain = chain;
    return r;
  };
  auto ok = this->append_one(check(2));
  EXPECT_TRUE(ok.status) << ok.status.to_string();
  EXPECT_FALSE(ok.duplicate);
  auto stale = this->append_one(check(1));
  EXPECT_EQ(stale.status.code(), StatusCode::kConflict) << stale.status.to_string();
  EXPECT_EQ(stale.actual_version, 2u);
  // After a write earlier in the same batch, the check sees the batch's version.
  auto batch = this->append({req("s", 2, "c2", {"c"}), check(3), check(2)});
  EXPECT_TRUE(batch[0].status) << batch[0].status.to_string();
  EXPECT_TRUE(batch[1].status) << batch[1].status.to_string();
  EXPECT_EQ(batch[2].status.code(), StatusCode::kConflict);
  // A check on a chain whose earlier write failed fails too (its state held that write).
  AppendRequest bad = req("s", 1, "c3", {"x"});
  bad.chain = 7;
  auto chained = this->append({bad, check(3, 7)});
  EXPECT_EQ(chained[0].status.code(), StatusCode::kConflict);
  EXPECT_EQ(chained[1].status.code(), StatusCode::kConflict);
  // A check of a stream that does not exist passes at version 0.
  AppendRequest absent = check(0);
  absent.stream = "never-written";
  EXPECT_TRUE(this->append_one(absent).status);
  EXPECT_EQ(this->version("never-written"), 0u);
  EXPECT_EQ(this->version("s"), 3u);
  EXPECT_EQ(this->stream("s").size(), 3u);
  auto found = this->store().find_command_in("s", "rejected-cmd");
  ASSERT_TRUE(found) << found.status().to_string();
  EXPECT_FALSE(found->has_value());
  // The check of a written command's id (a rejected repeat) answers with the first result.
  AppendRequest repeat = check(3);
  repeat.command_id = "c2";
  auto dup = this->append_one(repeat);
  EXPECT_TRUE(dup.status) << dup.status.to_string();
  EXPECT_TRUE(dup.duplicate);
  EXPECT_EQ(dup.first_version, 3u);
  EXPECT_EQ(dup.last_version, 3u);
}

// A redelivered batch (a saga reaction read again after its lease moved) can be decided as
// one chain of writes whose head repeats a written command. The requests behind it must be
// decided again, except the repeats among them: they answer with their first results in the
// same round, so a chain of many repeats costs one retry of the new commands behind it, not
// one per repeat (a chain of more repeats than the commit's retries never settled).
TYPED_TEST_P(EventStoreTest, RepeatsBehindARepeatInOneChainAnswerAsDuplicates) {
  for (int k = 1; k <= 3; ++k)
    ASSERT_TRUE(this->append_one(req("s", k - 1, "c" + std::to_string(k), {"e" + std::to_string(k)})).status);
  std::vector<AppendRequest> chain;
  for (int k = 1; k <= 4; ++k) {
    chain.push_back(req("s", 2 + k, "c" + std::to_string(k), {"again" + std::to_string(k)}));
    chain.back().chain = 9;
  }
  const auto rs = this->append(chain);
  ASSERT_EQ(rs.size(), 4u);
  for (int k = 0; k < 3; ++k) {
    ASSERT_TRUE(rs[k].status) << k << ": " << rs[k].status.to_string();
    EXPECT_TRUE(rs[k].duplicate) << k;
    EXPECT_EQ(rs[k].first_version, static_cast<uint64_t>(k + 1)) << k;
    EXPECT_EQ(rs[k].last_version, static_cast<uint64_t>(k + 1)) << k;
  }
  EXPECT_EQ(rs[3].status.code(), StatusCode::kConflict) << "decided on state that held c3's events again";
  EXPECT_EQ(this->version("s"), 3u);
  const auto events = this->stream("s");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].payload, "e3");
  // Decided again on the store's state, the new command commits.
  const auto again = this->append_one(req("s", 3, "c4", {"e4"}));
  ASSERT_TRUE(again.status) << again.status.to_string();
  EXPECT_FALSE(again.duplicate);
  EXPECT_EQ(again.first_version, 4u);
}

REGISTER_TYPED_TEST_SUITE_P(EventStoreTest,
    VersionCheckPassesOnlyAtTheCurrentVersionAndWritesNothing,
    RepeatsBehindARepeatInOneChainAnswerAsDuplicates,
    AppendToNewStreamNumbersVersionsAndPositions,
    BinaryPayloadsSurvive,
    WrongExpectedVersionConflictsAndWritesNothing,
    RepeatedCommandIdReturnsTheFirstResultAndWritesNothing,
    RepeatInsideOneBatchIsADuplicateOfTheEarlierRequest,
    ConflictInABatchDoesNotDisturbTheOthers,
    InvalidRequestsAreRefused,
    ReadStreamFromAVersion,
    FindCommandAndStreamVersion,
    FeedReadsInPositionOrderAcrossStreams,
    WaitReturnsWhenAnotherThreadAppends,
    WaitTimesOutWithoutNewEvents,
    Checkpoints,
    ConcurrentAppendersGetDistinctContiguousPositions);

template <typename Backend>
class SnapshotStoreTest : public ::testing::Test {
 protected:
  Snapshot get(const std::string& stream) {
    auto r = backend_.store().get(stream);
    EXPECT_TRUE(r) << r.status().to_string();
    return r ? *r : Snapshot{~uint64_t{0}, "error"};
  }
  Status put(std::vector<std::pair<std::string, Snapshot>> entries) { return backend_.store().put(entries); }
  Backend backend_;
};

TYPED_TEST_SUITE_P(SnapshotStoreTest);

TYPED_TEST_P(SnapshotStoreTest, AbsentStreamIsVersionZero) {
  const Snapshot s = this->get("order-x");
  EXPECT_EQ(s.version, 0u);
  EXPECT_EQ(s.state, "");
}

TYPED_TEST_P(SnapshotStoreTest, NewerVersionWinsOlderOrEqualIsANoOp) {
  ASSERT_TRUE(this->put({{"a", {3, "three"}}, {"b", {1, std::string("b\0one", 5)}}}));
  EXPECT_EQ(this->get("a").version, 3u);
  EXPECT_EQ(this->get("a").state, "three");
  EXPECT_EQ(this->get("b").state, std::string("b\0one", 5));

  ASSERT_TRUE(this->put({{"a", {5, "five"}}}));
  EXPECT_EQ(this->get("a").version, 5u);
  EXPECT_EQ(this->get("a").state, "five");

  ASSERT_TRUE(this->put({{"a", {4, "four"}}}));
  ASSERT_TRUE(this->put({{"a", {5, "five again"}}}));
  EXPECT_EQ(this->get("a").version, 5u);
  EXPECT_EQ(this->get("a").state, "five");

  // A mixed batch: the stale entry is skipped, the fresh one written.
  ASSERT_TRUE(this->put({{"a", {2, "two"}}, {"b", {2, "b two"}}}));
  EXPECT_EQ(this->get("a").state, "five");
  EXPECT_EQ(this->get("b").version, 2u);
  EXPECT_EQ(this->get("b").state, "b two");
  ASSERT_TRUE(this->put({}));
}

// put() documents "an entry at or below the stored version is skipped"; within one call a
// later, older entry for the same stream must not overwrite a newer one.
TYPED_TEST_P(SnapshotStoreTest, OlderEntryLaterInTheSameBatchDoesNotWin) {
  ASSERT_TRUE(this->put({{"a", {1, "one"}}}));
  ASSERT_TRUE(this->put({{"a", {7, "seven"}}, {"a", {4, "four"}}}));
  EXPECT_EQ(this->get("a").version, 7u);
  EXPECT_EQ(this->get("a").state, "seven");
}

// The mark a projection keeps beside its snapshots: 0 before any, per writer, written with
// the entries (also with none), moved back when the writer says so; clear() drops it all.
TYPED_TEST_P(SnapshotStoreTest, CoveredPositionIsKeptPerWriterWithTheSnapshots) {
  auto& store = this->backend_.store();
  auto none = store.covered_position("projection");
  ASSERT_TRUE(none) << none.status().to_string();
  if (!none->has_value()) GTEST_SKIP() << "this store keeps no covered positions";
  EXPECT_EQ(**none, 0u);
  ASSERT_TRUE(store.put_covering({{"a", {2, "two"}}}, "projection", 40));
  ASSERT_TRUE(store.put_covering({}, "other", 7));
  EXPECT_EQ(this->get("a").state, "two");
  EXPECT_EQ(**store.covered_position("projection"), 40u);
  EXPECT_EQ(**store.covered_position("other"), 7u);
  ASSERT_TRUE(store.put_covering({{"a", {1, "one"}}}, "projection", 35));  // redelivery after a failure
  EXPECT_EQ(**store.covered_position("projection"), 35u);
  EXPECT_EQ(this->get("a").state, "two");
  auto cleared = store.clear();
  if (cleared.code() == StatusCode::kInvalidArgument) GTEST_SKIP() << cleared.message();
  ASSERT_TRUE(cleared) << cleared.to_string();
  EXPECT_EQ(this->get("a").version, 0u);
  EXPECT_EQ(**store.covered_position("projection"), 0u);
  EXPECT_EQ(**store.covered_position("other"), 0u);
  ASSERT_TRUE(store.put_covering({{"a", {1, "one again"}}}, "projection", 3));  // refolded after the clear
  EXPECT_EQ(this->get("a").state, "one again");
}

REGISTER_TYPED_TEST_SUITE_P(SnapshotStoreTest,
    AbsentStreamIsVersionZero,
    NewerVersionWinsOlderOrEqualIsANoOp,
    OlderEntryLaterInTheSameBatchDoesNotWin,
    CoveredPositionIsKeptPerWriterWithTheSnapshots);

}  // namespace orderflow::connectors::conformance
