// Tests for the event, change-feed and snapshot stores: one typed suite run on the memory
// and RocksDB implementations, RocksDB persistence across reopen, the binary encodings,
// plan_append with failing lookups and the RocksDB status mapping.
#include <gtest/gtest.h>
#include <rocksdb/status.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "connectors/append_plan.h"
#include "connectors/memory_store.h"
#include "connectors/rocksdb_store.h"

namespace orderflow::connectors {
namespace {

using namespace std::chrono_literals;

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "orderflow-store-test-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + tmpl);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

AppendRequest req(std::string stream, uint64_t expected, std::string command_id,
                  std::vector<std::string> events) {
  AppendRequest r;
  r.stream = std::move(stream);
  r.expected_version = expected;
  r.command_id = std::move(command_id);
  r.events = std::move(events);
  return r;
}

// ---- backends -----------------------------------------------------------------------

class MemoryBackend {
 public:
  EventStore& events() { return *store_; }
  ChangeFeed& feed() { return *store_; }

 private:
  std::unique_ptr<MemoryEventStore> store_ = std::make_unique<MemoryEventStore>();
};

class RocksBackend {
 public:
  RocksBackend() { reopen(); }
  EventStore& events() { return *store_; }
  ChangeFeed& feed() { return *store_; }
  RocksEventStore& rocks() { return *store_; }
  // Closes the DB (releasing its lock) and opens the same directory again.
  void reopen() {
    store_.reset();
    auto r = RocksEventStore::open(RocksOptions{dir_.sub("events"), true});
    if (!r) throw std::runtime_error("open failed: " + r.status().to_string());
    store_ = std::move(r).value();
  }

 private:
  TempDir dir_;  // declared first: outlives the store
  std::unique_ptr<RocksEventStore> store_;
};

struct BackendNames {
  template <typename T>
  static std::string GetName(int) {
    if constexpr (std::is_same_v<T, MemoryBackend>) return "Memory";
    else return "RocksDB";
  }
};

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

using Backends = ::testing::Types<MemoryBackend, RocksBackend>;
TYPED_TEST_SUITE(EventStoreTest, Backends, BackendNames);

TYPED_TEST(EventStoreTest, AppendToNewStreamNumbersVersionsAndPositions) {
  auto r = this->append_one(req("order-a", 0, "c1", {"e1", "e2", "e3"}));
  ASSERT_TRUE(r.status) << r.status.to_string();
  EXPECT_FALSE(r.duplicate);
  EXPECT_EQ(r.stream, "order-a");
  EXPECT_EQ(r.first_version, 1u);
  EXPECT_EQ(r.last_version, 3u);
  EXPECT_EQ(r.first_position, 1u);
  EXPECT_EQ(r.last_position, 3u);

  auto r2 = this->append_one(req("sku-x", 0, "c2", {"x1"}));
  ASSERT_TRUE(r2.status);
  EXPECT_EQ(r2.first_version, 1u);
  EXPECT_EQ(r2.first_position, 4u);
  auto r3 = this->append_one(req("order-a", 3, "c3", {"e4", "e5"}));
  ASSERT_TRUE(r3.status) << r3.status.to_string();
  EXPECT_EQ(r3.first_version, 4u);
  EXPECT_EQ(r3.last_version, 5u);
  EXPECT_EQ(r3.first_position, 5u);
  EXPECT_EQ(r3.last_position, 6u);

  const auto events = this->stream("order-a");
  ASSERT_EQ(events.size(), 5u);
  const std::vector<std::string> payloads = {"e1", "e2", "e3", "e4", "e5"};
  const std::vector<uint64_t> positions = {1, 2, 3, 5, 6};
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].stream, "order-a");
    EXPECT_EQ(events[i].version, i + 1);
    EXPECT_EQ(events[i].position, positions[i]);
    EXPECT_EQ(events[i].payload, payloads[i]);
    EXPECT_EQ(events[i].command_id, i < 3 ? "c1" : "c3");
    EXPECT_GT(events[i].committed_at_us, 0);
  }
  EXPECT_EQ(this->version("order-a"), 5u);
  EXPECT_EQ(this->version("sku-x"), 1u);
  EXPECT_EQ(this->feed().head(), 6u);
}

TYPED_TEST(EventStoreTest, BinaryPayloadsSurvive) {
  const std::string payload("\0\x01\xff\n{}", 6);
  ASSERT_TRUE(this->append_one(req("s", 0, "c1", {payload, ""})).status);
  const auto events = this->stream("s");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].payload, payload);
  EXPECT_EQ(events[1].payload, "");
}

TYPED_TEST(EventStoreTest, WrongExpectedVersionConflictsAndWritesNothing) {
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
  EXPECT_EQ(this->feed().head(), 2u);
  // A conflicting command id is not remembered: it may succeed later.
  auto found = this->store().find_command("bad-1");
  ASSERT_TRUE(found);
  EXPECT_FALSE(found->has_value());
  auto retry = this->append_one(req("s", 2, "bad-1", {"x"}));
  ASSERT_TRUE(retry.status) << retry.status.to_string();
  EXPECT_EQ(retry.first_version, 3u);
}

TYPED_TEST(EventStoreTest, RepeatedCommandIdReturnsTheFirstResultAndWritesNothing) {
  const auto first = this->append_one(req("s", 0, "c1", {"a", "b"}));
  ASSERT_TRUE(first.status);
  ASSERT_TRUE(this->append_one(req("t", 0, "c2", {"t1"})).status);
  // Same id, different stream, version and events: still the first result.
  const auto again = this->append_one(req("t", 1, "c1", {"zzz"}));
  ASSERT_TRUE(again.status) << again.status.to_string();
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.stream, "s");
  EXPECT_EQ(again.first_version, 1u);
  EXPECT_EQ(again.last_version, 2u);
  EXPECT_EQ(again.first_position, first.first_position);
  EXPECT_EQ(again.last_position, first.last_position);
  EXPECT_EQ(this->feed().head(), 3u);
  EXPECT_EQ(this->version("t"), 1u);
  EXPECT_EQ(this->version("s"), 2u);
}

TYPED_TEST(EventStoreTest, RepeatInsideOneBatchIsADuplicateOfTheEarlierRequest) {
  const auto rs = this->append({req("s", 0, "c1", {"a"}), req("s", 1, "c1", {"b"}), req("t", 0, "c2", {"c"})});
  ASSERT_EQ(rs.size(), 3u);
  ASSERT_TRUE(rs[0].status);
  EXPECT_FALSE(rs[0].duplicate);
  ASSERT_TRUE(rs[1].status) << rs[1].status.to_string();
  EXPECT_TRUE(rs[1].duplicate);
  EXPECT_EQ(rs[1].first_version, 1u);
  EXPECT_EQ(rs[1].first_position, 1u);
  ASSERT_TRUE(rs[2].status);
  EXPECT_EQ(rs[2].first_position, 2u);  // the duplicate took no position
  EXPECT_EQ(this->feed().head(), 2u);
  EXPECT_EQ(this->stream("s").size(), 1u);
}

TYPED_TEST(EventStoreTest, ConflictInABatchDoesNotDisturbTheOthers) {
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
  EXPECT_EQ(rs[0].first_position, 2u);
  EXPECT_EQ(rs[0].last_position, 3u);
  EXPECT_EQ(rs[2].first_position, 4u);
  EXPECT_EQ(rs[3].first_position, 5u);
  EXPECT_EQ(rs[3].first_version, 3u);
  EXPECT_EQ(rs[5].first_position, 6u);
  EXPECT_EQ(rs[5].first_version, 2u);

  EXPECT_EQ(this->feed().head(), 6u);
  EXPECT_EQ(this->version("a"), 3u);
  EXPECT_EQ(this->version("b"), 2u);
  EXPECT_EQ(this->version("c"), 1u);
  std::vector<std::string> b;
  for (const auto& e : this->stream("b")) b.push_back(e.payload);
  EXPECT_EQ(b, (std::vector<std::string>{"b1", "b2"}));
  // The feed has no holes where the conflicts were.
  const auto all = this->feed_read(0, 100);
  ASSERT_EQ(all.size(), 6u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].position, i + 1);
}

TYPED_TEST(EventStoreTest, InvalidRequestsAreRefused) {
  const auto rs = this->append({req("s", 0, "c1", {}), req("", 0, "c2", {"a"}), req("s", 0, "", {"a"}),
                                req("s", 0, "c3", {"ok"})});
  ASSERT_EQ(rs.size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(rs[i].status.code(), StatusCode::kInvalidArgument) << i;
  ASSERT_TRUE(rs[3].status);
  EXPECT_EQ(rs[3].first_position, 1u);
  EXPECT_EQ(this->feed().head(), 1u);
}

TYPED_TEST(EventStoreTest, ReadStreamFromAVersion) {
  ASSERT_TRUE(this->append_one(req("s", 0, "c1", {"1", "2", "3", "4"})).status);
  ASSERT_TRUE(this->append_one(req("s-longer", 0, "c2", {"other"})).status);
  ASSERT_TRUE(this->append_one(req("s", 4, "c3", {"5"})).status);
  auto from3 = this->stream("s", 3);
  ASSERT_EQ(from3.size(), 3u);
  EXPECT_EQ(from3[0].version, 3u);
  EXPECT_EQ(from3[0].payload, "3");
  EXPECT_EQ(from3[2].payload, "5");
  EXPECT_EQ(from3[2].position, 6u);
  EXPECT_EQ(this->stream("s", 0).size(), 5u);  // 0 reads from the start
  EXPECT_EQ(this->stream("s", 5).size(), 1u);
  EXPECT_TRUE(this->stream("s", 6).empty());
  EXPECT_TRUE(this->stream("absent").empty());
  EXPECT_TRUE(this->stream("s-").empty());
  const auto other = this->stream("s-longer");
  ASSERT_EQ(other.size(), 1u);
  EXPECT_EQ(other[0].payload, "other");
}

TYPED_TEST(EventStoreTest, FindCommandAndStreamVersion) {
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
  EXPECT_EQ(r.first_position, 2u);
  EXPECT_EQ(r.last_position, 3u);
  EXPECT_EQ(this->version("s"), 2u);
  EXPECT_EQ(this->version("t"), 1u);
  EXPECT_EQ(this->version("u"), 0u);
}

TYPED_TEST(EventStoreTest, FeedReadsInPositionOrderAcrossStreams) {
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

TYPED_TEST(EventStoreTest, WaitReturnsWhenAnotherThreadAppends) {
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

TYPED_TEST(EventStoreTest, WaitTimesOutWithoutNewEvents) {
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

TYPED_TEST(EventStoreTest, Checkpoints) {
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

TYPED_TEST(EventStoreTest, ConcurrentAppendersGetDistinctContiguousPositions) {
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
  EXPECT_EQ(this->feed().head(), uint64_t{kThreads * kPerThread});
  const auto all = this->feed_read(0, 1000);
  ASSERT_EQ(all.size(), size_t{kThreads * kPerThread});
  std::map<std::string, uint64_t> last_version;
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].position, i + 1);
    EXPECT_EQ(all[i].version, last_version[all[i].stream] + 1) << all[i].stream;
    last_version[all[i].stream] = all[i].version;
  }
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(this->version("stream-" + std::to_string(t)), uint64_t{kPerThread});
}

// ---- RocksDB: persistence -------------------------------------------------------------

class RocksEventStoreTest : public ::testing::Test {
 protected:
  RocksEventStore& store() { return backend_.rocks(); }
  void reopen() { backend_.reopen(); }
  RocksBackend backend_;
};

TEST_F(RocksEventStoreTest, EverythingPersistsAcrossReopen) {
  ASSERT_TRUE(store().append({req("a", 0, "c1", {"a1", "a2"})}).at(0).status);
  ASSERT_TRUE(store().append({req("b", 0, "c2", {"b1"}), req("a", 2, "c3", {"a3"})}).at(1).status);
  ASSERT_TRUE(store().save_checkpoint("projection", 3));
  reopen();

  EXPECT_EQ(store().head(), 4u);
  auto va = store().stream_version("a");
  ASSERT_TRUE(va);
  EXPECT_EQ(*va, 3u);
  EXPECT_EQ(*store().stream_version("b"), 1u);
  EXPECT_EQ(*store().stream_version("absent"), 0u);
  std::vector<RecordedEvent> a;
  ASSERT_TRUE(store().read_stream("a", 1, &a));
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[2].payload, "a3");
  EXPECT_EQ(a[2].position, 4u);
  EXPECT_EQ(a[2].command_id, "c3");
  std::vector<RecordedEvent> all;
  ASSERT_TRUE(store().read(0, 100, &all));
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[2].stream, "b");
  auto cp = store().load_checkpoint("projection");
  ASSERT_TRUE(cp);
  EXPECT_EQ(*cp, 3u);

  // The command-id index survived: a repeat is a duplicate of the first result.
  auto dup = store().append({req("a", 3, "c2", {"again"})}).at(0);
  ASSERT_TRUE(dup.status) << dup.status.to_string();
  EXPECT_TRUE(dup.duplicate);
  EXPECT_EQ(dup.stream, "b");
  EXPECT_EQ(dup.first_position, 3u);
  EXPECT_EQ(store().head(), 4u);

  // Versions and positions continue where they were.
  auto next = store().append({req("a", 3, "c4", {"a4"})}).at(0);
  ASSERT_TRUE(next.status) << next.status.to_string();
  EXPECT_EQ(next.first_version, 4u);
  EXPECT_EQ(next.first_position, 5u);
  auto stale = store().append({req("b", 0, "c5", {"x"})}).at(0);
  EXPECT_EQ(stale.status.code(), StatusCode::kConflict);
  EXPECT_EQ(stale.actual_version, 1u);
}

TEST_F(RocksEventStoreTest, ABatchOfManyStreamsIsOneWrite) {
  constexpr int kStreams = 300;
  std::vector<AppendRequest> batch;
  for (int i = 0; i < kStreams; ++i) {
    const std::string s = "order-" + std::to_string(i);
    batch.push_back(req(s, 0, "c-" + std::to_string(i), {s + "/1", s + "/2"}));
  }
  const auto rs = store().append(batch);
  for (const auto& r : rs) ASSERT_TRUE(r.status) << r.status.to_string();
  reopen();

  EXPECT_EQ(store().head(), uint64_t{2 * kStreams});
  std::vector<RecordedEvent> all;
  ASSERT_TRUE(store().read(0, 10 * kStreams, &all));
  ASSERT_EQ(all.size(), size_t{2 * kStreams});
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].position, i + 1);
    EXPECT_EQ(all[i].committed_at_us, all[0].committed_at_us);
  }
  for (int i = 0; i < kStreams; ++i) {
    const std::string s = "order-" + std::to_string(i);
    auto v = store().stream_version(s);
    ASSERT_TRUE(v);
    EXPECT_EQ(*v, 2u) << s;
    auto f = store().find_command("c-" + std::to_string(i));
    ASSERT_TRUE(f);
    ASSERT_TRUE(f->has_value()) << s;
    EXPECT_EQ((*f)->first_position, uint64_t(2 * i + 1));
  }
}

TEST_F(RocksEventStoreTest, OpeningALockedDirectoryFails) {
  TempDir dir;
  auto first = RocksEventStore::open(RocksOptions{dir.sub("db"), true});
  ASSERT_TRUE(first) << first.status().to_string();
  auto second = RocksEventStore::open(RocksOptions{dir.sub("db"), true});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.status().code(), StatusCode::kIoError);
}

// ---- snapshot stores ----------------------------------------------------------------

class MemorySnapshots {
 public:
  SnapshotStore& store() { return store_; }

 private:
  MemorySnapshotStore store_;
};

class RocksSnapshots {
 public:
  RocksSnapshots() { reopen(); }
  SnapshotStore& store() { return *store_; }
  void reopen() {
    store_.reset();
    auto r = RocksSnapshotStore::open(RocksOptions{dir_.sub("snapshots"), true});
    if (!r) throw std::runtime_error("open failed: " + r.status().to_string());
    store_ = std::move(r).value();
  }

 private:
  TempDir dir_;
  std::unique_ptr<RocksSnapshotStore> store_;
};

struct SnapshotNames {
  template <typename T>
  static std::string GetName(int) {
    if constexpr (std::is_same_v<T, MemorySnapshots>) return "Memory";
    else return "RocksDB";
  }
};

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

using SnapshotBackends = ::testing::Types<MemorySnapshots, RocksSnapshots>;
TYPED_TEST_SUITE(SnapshotStoreTest, SnapshotBackends, SnapshotNames);

TYPED_TEST(SnapshotStoreTest, AbsentStreamIsVersionZero) {
  const Snapshot s = this->get("order-x");
  EXPECT_EQ(s.version, 0u);
  EXPECT_EQ(s.state, "");
}

TYPED_TEST(SnapshotStoreTest, NewerVersionWinsOlderOrEqualIsANoOp) {
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
TYPED_TEST(SnapshotStoreTest, OlderEntryLaterInTheSameBatchDoesNotWin) {
  ASSERT_TRUE(this->put({{"a", {1, "one"}}}));
  ASSERT_TRUE(this->put({{"a", {7, "seven"}}, {"a", {4, "four"}}}));
  EXPECT_EQ(this->get("a").version, 7u);
  EXPECT_EQ(this->get("a").state, "seven");
}

TEST(RocksSnapshotStoreTest, SnapshotsPersistAcrossReopen) {
  RocksSnapshots backend;
  ASSERT_TRUE(backend.store().put({{"order-1", {3, "s3"}}, {"sku-A", {9, "s9"}}}));
  backend.reopen();
  auto a = backend.store().get("order-1");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->version, 3u);
  EXPECT_EQ(a->state, "s3");
  EXPECT_EQ(backend.store().get("sku-A")->version, 9u);
  EXPECT_EQ(backend.store().get("order-2")->version, 0u);
  // The version check holds against what was persisted.
  ASSERT_TRUE(backend.store().put({{"order-1", {2, "old"}}}));
  EXPECT_EQ(backend.store().get("order-1")->state, "s3");
}

// ---- encodings ----------------------------------------------------------------------

TEST(StoreEncoding, EventRoundTrip) {
  RecordedEvent e;
  e.stream = "order-abc";
  e.version = 0x0102030405060708ull;
  e.position = 99;  // not encoded: it is the key
  e.committed_at_us = -5;
  e.command_id = "cmd-1";
  e.payload = std::string("\0\xff payload", 10);
  const std::string bytes = encode_event(e);
  RecordedEvent d;
  ASSERT_TRUE(decode_event(bytes, &d));
  EXPECT_EQ(d.stream, e.stream);
  EXPECT_EQ(d.version, e.version);
  EXPECT_EQ(d.committed_at_us, e.committed_at_us);
  EXPECT_EQ(d.command_id, e.command_id);
  EXPECT_EQ(d.payload, e.payload);
  EXPECT_EQ(d.position, 0u);

  RecordedEvent empty;
  ASSERT_TRUE(decode_event(encode_event(empty), &d));
  EXPECT_EQ(d.stream, "");
  EXPECT_EQ(d.payload, "");
}

TEST(StoreEncoding, DecodeEventRejectsTruncatedOrPaddedInput) {
  RecordedEvent e;
  e.stream = "s";
  e.version = 3;
  e.committed_at_us = 1700000000000000;
  e.command_id = "c";
  e.payload = "payload";
  const std::string bytes = encode_event(e);
  for (size_t n = 0; n < bytes.size(); ++n) {
    RecordedEvent d;
    EXPECT_FALSE(decode_event(bytes.substr(0, n), &d)) << "prefix of " << n << " bytes";
  }
  RecordedEvent d;
  EXPECT_FALSE(decode_event(bytes + "x", &d));
  std::string huge_length = bytes;
  huge_length[0] = '\x7f';  // the stream's length prefix now claims ~2 GB
  EXPECT_FALSE(decode_event(huge_length, &d));
}

TEST(StoreEncoding, ResultRoundTripAndTruncation) {
  AppendResult r;
  r.stream = "sku-A";
  r.first_version = 4;
  r.last_version = 6;
  r.first_position = 1000;
  r.last_position = ~uint64_t{0};
  const std::string bytes = encode_result(r);
  AppendResult d;
  ASSERT_TRUE(decode_result(bytes, &d));
  EXPECT_EQ(d.stream, r.stream);
  EXPECT_EQ(d.first_version, 4u);
  EXPECT_EQ(d.last_version, 6u);
  EXPECT_EQ(d.first_position, 1000u);
  EXPECT_EQ(d.last_position, ~uint64_t{0});
  for (size_t n = 0; n < bytes.size(); ++n) {
    AppendResult t;
    EXPECT_FALSE(decode_result(bytes.substr(0, n), &t)) << "prefix of " << n << " bytes";
  }
  EXPECT_FALSE(decode_result(bytes + '\0', &d));
}

TEST(StoreEncoding, BigEndianKeysSortNumerically) {
  const std::vector<uint64_t> values = {0, 1, 255, 256, 65535, 1ull << 32, (1ull << 56) + 1, ~uint64_t{0}};
  for (size_t i = 0; i < values.size(); ++i) {
    std::string a;
    put_u64_be(a, values[i]);
    ASSERT_EQ(a.size(), 8u);
    EXPECT_EQ(get_u64_be(a.data()), values[i]);
    for (size_t j = i + 1; j < values.size(); ++j) {
      std::string b;
      put_u64_be(b, values[j]);
      EXPECT_LT(a, b) << values[i] << " vs " << values[j];
    }
  }
}

// ---- plan_append with failing lookups -------------------------------------------------

TEST(PlanAppend, LookupErrorsFailOnlyTheirRequest) {
  AppendLookups lookups{
      [](const std::string& id) -> Result<std::optional<AppendResult>> {
        if (id == "broken-id") return Status::io_error("commands unreadable");
        if (id == "seen") {
          AppendResult r;
          r.stream = "old";
          r.first_version = r.last_version = 1;
          r.first_position = r.last_position = 3;
          return std::optional<AppendResult>(r);
        }
        return std::optional<AppendResult>();
      },
      [](const std::string& stream) -> Result<uint64_t> {
        if (stream == "broken-stream") return Status::unavailable("index busy");
        if (stream == "at-two") return uint64_t{2};
        return uint64_t{0};
      }};
  const std::vector<AppendRequest> batch = {
      req("a", 0, "c1", {"x"}),
      req("b", 0, "broken-id", {"x"}),
      req("broken-stream", 0, "c3", {"x"}),
      req("at-two", 2, "c4", {"x", "y"}),
      req("c", 0, "seen", {"x"}),
  };
  std::vector<AppendResult> results;
  const auto plan = plan_append(batch, 10, lookups, results);
  ASSERT_EQ(results.size(), batch.size());

  EXPECT_TRUE(results[0].status);
  EXPECT_EQ(results[0].first_position, 11u);
  EXPECT_EQ(results[1].status.code(), StatusCode::kIoError);
  EXPECT_EQ(results[1].status.message(), "commands unreadable");
  EXPECT_EQ(results[1].first_position, 0u);
  EXPECT_EQ(results[2].status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(results[2].status.message(), "index busy");
  ASSERT_TRUE(results[3].status);
  EXPECT_EQ(results[3].first_version, 3u);
  EXPECT_EQ(results[3].last_version, 4u);
  EXPECT_EQ(results[3].first_position, 12u);
  EXPECT_EQ(results[3].last_position, 13u);
  ASSERT_TRUE(results[4].status);
  EXPECT_TRUE(results[4].duplicate);
  EXPECT_EQ(results[4].stream, "old");
  EXPECT_EQ(results[4].first_position, 3u);

  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].request, 0u);
  EXPECT_EQ(plan[0].first_version, 1u);
  EXPECT_EQ(plan[0].first_position, 11u);
  EXPECT_EQ(plan[1].request, 3u);
  EXPECT_EQ(plan[1].first_version, 3u);
  EXPECT_EQ(plan[1].first_position, 12u);
}

TEST(PlanAppend, FailedRequestDoesNotMakeALaterRepeatADuplicate) {
  int lookups_of_c1 = 0;
  AppendLookups lookups{
      [&](const std::string& id) -> Result<std::optional<AppendResult>> {
        if (id == "c1" && ++lookups_of_c1 == 1) return Status::io_error("flaky");
        return std::optional<AppendResult>();
      },
      [](const std::string&) -> Result<uint64_t> { return uint64_t{0}; }};
  std::vector<AppendResult> results;
  const auto plan = plan_append({req("a", 0, "c1", {"x"}), req("a", 0, "c1", {"x"})}, 0, lookups, results);
  EXPECT_EQ(results[0].status.code(), StatusCode::kIoError);
  ASSERT_TRUE(results[1].status) << results[1].status.to_string();
  EXPECT_FALSE(results[1].duplicate);
  EXPECT_EQ(results[1].first_position, 1u);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].request, 1u);
}

// ---- RocksDB status mapping -----------------------------------------------------------

TEST(RocksStatusMapping, EveryRocksStatusMapsToOneCode) {
  auto code = [](const rocksdb::Status& s) { return from_rocks(&s).code(); };
  EXPECT_EQ(code(rocksdb::Status::OK()), StatusCode::kOk);
  EXPECT_EQ(code(rocksdb::Status::NotFound("k")), StatusCode::kNotFound);
  EXPECT_EQ(code(rocksdb::Status::InvalidArgument("bad")), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(rocksdb::Status::Busy("b")), StatusCode::kUnavailable);
  EXPECT_EQ(code(rocksdb::Status::TryAgain("t")), StatusCode::kUnavailable);
  EXPECT_EQ(code(rocksdb::Status::TimedOut("t")), StatusCode::kUnavailable);
  EXPECT_EQ(code(rocksdb::Status::IOError("disk")), StatusCode::kIoError);
  EXPECT_EQ(code(rocksdb::Status::Corruption("crc")), StatusCode::kIoError);
  const rocksdb::Status busy = rocksdb::Status::Busy("b");
  EXPECT_TRUE(from_rocks(&busy).is_retriable());
  const rocksdb::Status disk = rocksdb::Status::IOError("no space");
  EXPECT_NE(from_rocks(&disk).message().find("no space"), std::string::npos);
}

}  // namespace
}  // namespace orderflow::connectors

namespace orderflow::connectors {
namespace {

// Regression: a lane decided B on state that included A's uncommitted events; A failed
// and another writer's event took A's version, so B's expected version matched. B must
// still fail, or it is committed on state that never existed.
TEST(PlanAppendChains, LaterRequestOfAFailedChainFailsEvenWhenItsVersionMatches) {
  AppendLookups lookups{
      [](const std::string&) -> Result<std::optional<AppendResult>> { return std::optional<AppendResult>(); },
      [](const std::string&) -> Result<uint64_t> { return uint64_t{1}; }};  // someone else wrote v1
  std::vector<AppendRequest> batch(3);
  batch[0] = {"s", 0, "a", {"e"}, 7};  // decided on v0: conflicts
  batch[1] = {"s", 1, "b", {"e"}, 7};  // decided on A's v1: version matches, chain failed
  batch[2] = {"s", 1, "c", {"e"}, 8};  // a newer chain, decided on the real v1
  std::vector<AppendResult> results;
  auto plan = plan_append(batch, 10, lookups, results);
  EXPECT_EQ(results[0].status.code(), StatusCode::kConflict);
  EXPECT_EQ(results[1].status.code(), StatusCode::kConflict);
  ASSERT_TRUE(results[2].status.is_ok()) << results[2].status.to_string();
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].request, 2u);
  EXPECT_EQ(results[2].first_version, 2u);
}

}  // namespace
}  // namespace orderflow::connectors
