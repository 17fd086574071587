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
#include "tests/support/temp_dir.h"
#include "tests/unit/store_conformance.h"

namespace orderflow::connectors {
namespace {

using namespace std::chrono_literals;

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir : public testing::TempDir {
 public:
  TempDir() : testing::TempDir("orderflow-store-test") {}
};

using namespace conformance;  // the typed suites' names, for INSTANTIATE_TYPED_TEST_SUITE_P
using conformance::req;

// ---- backends -----------------------------------------------------------------------

class MemoryBackend {
 public:
  static constexpr bool kGlobalPositions = true;
  static constexpr bool kGlobalCommandIds = true;
  EventStore& events() { return *store_; }
  ChangeFeed& feed() { return *store_; }

 private:
  std::unique_ptr<MemoryEventStore> store_ = std::make_unique<MemoryEventStore>();
};

class RocksBackend {
 public:
  static constexpr bool kGlobalPositions = true;
  static constexpr bool kGlobalCommandIds = true;
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

using Backends = ::testing::Types<MemoryBackend, RocksBackend>;
INSTANTIATE_TYPED_TEST_SUITE_P(Local, EventStoreTest, Backends, BackendNames);


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
  auto dup = store().append({req("b", 3, "c2", {"again"})}).at(0);
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

// The current version of a stream the store no longer caches is looked up in the index,
// whose memtable hashes by stream: with a cache of one stream, every append below looks its
// stream up while its events are still in the memtable (a backwards seek there used to
// skip the memtable and find version 0: correct appends refused as conflicts, and stale
// ones accepted).
TEST(RocksEventStoreVersions, UncachedStreamsAreLookedUpAtTheirLastVersion) {
  TempDir dir;
  RocksOptions o{dir.sub("events"), true};
  o.version_cache = 1;
  auto opened = RocksEventStore::open(o);
  ASSERT_TRUE(opened) << opened.status().to_string();
  RocksEventStore& store = **opened;
  const std::vector<std::pair<std::string, int>> streams = {{"a", 1}, {"b", 37}, {"c", 2}, {"d", 64}, {"e", 5}};
  std::map<std::string, uint64_t> version;
  int id = 0;
  // Interleaved, one or two events per append, so each stream is evicted between its appends.
  for (bool more = true; more;) {
    more = false;
    for (const auto& [s, total] : streams) {
      if (version[s] >= static_cast<uint64_t>(total)) continue;
      more = true;
      std::vector<std::string> events = {s + std::to_string(version[s] + 1)};
      if (version[s] + 2 <= static_cast<uint64_t>(total) && id % 3 == 0) events.push_back(s + "+");
      auto r = store.append({req(s, version[s], "cmd-" + std::to_string(id++), events)}).at(0);
      ASSERT_TRUE(r.status) << s << " at " << version[s] << ": " << r.status.to_string();
      ASSERT_EQ(r.first_version, version[s] + 1) << s;
      version[s] = r.last_version;
      // A stale expected version is refused with the stream's real one.
      auto stale = store.append({req(s, version[s] - 1, "stale-" + std::to_string(id++), {"x"})}).at(0);
      ASSERT_EQ(stale.status.code(), StatusCode::kConflict) << s;
      EXPECT_EQ(stale.actual_version, version[s]) << s;
    }
  }
  for (const auto& [s, total] : streams) {
    auto v = store.stream_version(s);
    ASSERT_TRUE(v);
    EXPECT_EQ(*v, static_cast<uint64_t>(total)) << s;
    std::vector<RecordedEvent> events;
    ASSERT_TRUE(store.read_stream(s, 1, &events));
    EXPECT_EQ(events.size(), static_cast<size_t>(total)) << s;
  }
  EXPECT_EQ(*store.stream_version("never"), 0u);
  // One batch over more streams than the cache holds, each stream twice: the versions the
  // batch wrote are what the next appends are checked against.
  std::vector<AppendRequest> both;
  for (const auto& [s, total] : streams) {
    both.push_back(req(s, version[s], "twice-a-" + s, {"y"}));
    both.push_back(req(s, version[s] + 1, "twice-b-" + s, {"z"}));
  }
  for (const auto& r : store.append(both)) ASSERT_TRUE(r.status) << r.stream << ": " << r.status.to_string();
  for (const auto& [s, total] : streams) {
    EXPECT_EQ(store.append({req(s, version[s] + 1, "stale-twice-" + s, {"x"})}).at(0).status.code(), StatusCode::kConflict) << s;
    auto next = store.append({req(s, version[s] + 2, "next-" + s, {"x"})}).at(0);
    ASSERT_TRUE(next.status) << s << ": " << next.status.to_string();
    EXPECT_EQ(next.first_version, version[s] + 3) << s;
  }
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

using SnapshotBackends = ::testing::Types<MemorySnapshots, RocksSnapshots>;
INSTANTIATE_TYPED_TEST_SUITE_P(Local, SnapshotStoreTest, SnapshotBackends, SnapshotNames);

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

// The covered position is as durable as the snapshots written with it.
TEST(RocksSnapshotStoreTest, CoveredPositionPersistsAcrossReopen) {
  RocksSnapshots backend;
  ASSERT_TRUE(backend.store().put_covering({{"order-1", {3, "s3"}}}, "projection", 12));
  backend.reopen();
  auto covered = backend.store().covered_position("projection");
  ASSERT_TRUE(covered && covered->has_value());
  EXPECT_EQ(**covered, 12u);
  EXPECT_EQ(backend.store().get("order-1")->state, "s3");
  EXPECT_EQ(backend.store().get("projection")->version, 0u);  // a mark is no snapshot
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
      req("old", 0, "seen", {"x"}),
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

// Lookups of a store that holds one command, "old", written as version 1 of `stream`; every
// stream is at `version`.
AppendLookups one_stored_command(const std::string& stream, uint64_t version) {
  AppendResult stored;
  stored.stream = stream;
  stored.first_version = stored.last_version = 1;
  return AppendLookups{
      [stored](const std::string& id) -> Result<std::optional<AppendResult>> {
        if (id == "old") return std::optional<AppendResult>(stored);
        return std::optional<AppendResult>();
      },
      [version](const std::string&) -> Result<uint64_t> { return version; }};
}

// One command id on two streams is two commands: the second is refused, whether the first
// is in the store or earlier in the same group (racing commands reach the group commit).
TEST(PlanAppend, AnIdUsedOnAnotherStreamIsRefusedNotADuplicate) {
  const AppendLookups lookups = one_stored_command("sku-A", 0);
  std::vector<AppendResult> results;
  const auto plan = plan_append({req("sku-B", 0, "old", {"x"}), req("sku-C", 0, "new", {"x"}),
                                 req("sku-D", 0, "new", {"x"}), req("sku-A", 0, "old", {"x"})},
                                0, lookups, results);
  EXPECT_EQ(results[0].status.code(), StatusCode::kInvalidArgument) << results[0].status.to_string();
  EXPECT_NE(results[0].status.message().find("already names a command on stream sku-A"), std::string::npos);
  ASSERT_TRUE(results[1].status) << results[1].status.to_string();
  EXPECT_EQ(results[2].status.code(), StatusCode::kInvalidArgument) << "same group: " << results[2].status.to_string();
  EXPECT_NE(results[2].status.message().find("on stream sku-C"), std::string::npos);
  ASSERT_TRUE(results[3].status);
  EXPECT_TRUE(results[3].duplicate) << "same stream: the first result";
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

// A chain that failed in an earlier group: its requests in this group are marked. A
// repeat among them answers with its first result; the others conflict even where their
// version matches (they were decided on state that held the failed request's events).
TEST(PlanAppendChains, MarkedRequestsOfAFailedChainAnswerRepeatsAndConflictTheRest) {
  const AppendLookups lookups = one_stored_command("s", 1);
  std::vector<AppendRequest> batch(3);
  batch[0] = {"s", 1, "old", {"e"}, 7};
  batch[1] = {"s", 1, "new", {"e"}, 7};
  batch[2] = {"s", 1, "newer", {"e"}, 8};  // a later chain, not marked
  batch[0].chain_failed = batch[1].chain_failed = true;
  std::vector<AppendResult> results;
  auto plan = plan_append(batch, 10, lookups, results);
  ASSERT_TRUE(results[0].status.is_ok()) << results[0].status.to_string();
  EXPECT_TRUE(results[0].duplicate);
  EXPECT_EQ(results[0].first_version, 1u);
  EXPECT_EQ(results[1].status.code(), StatusCode::kConflict);
  ASSERT_TRUE(results[2].status.is_ok()) << results[2].status.to_string();
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].request, 2u);
  EXPECT_EQ(results[2].first_version, 2u);
}

}  // namespace
}  // namespace orderflow::connectors
