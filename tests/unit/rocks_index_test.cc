// The RocksDB event store's trailing index: the commit writer writes only the log, and the
// stream index and command ids reach the index DB (index/ in the store's directory) later,
// from the `of-index` thread. Through the store's real interface and files: reads answer the
// same before and after the index catches up; an index whose memtables a crash lost, an index
// deleted, damaged or ahead of the log, and a store in the layout before the index moved all
// open with every stream and command id as the log has them.
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "connectors/append_plan.h"
#include "connectors/rocksdb_store.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/store_conformance.h"

namespace orderflow::connectors {
namespace {

namespace fs = std::filesystem;
using conformance::req;

class TempDir : public testing::TempDir {
 public:
  TempDir() : testing::TempDir("orderflow-rocks-index") {}
};

std::unique_ptr<RocksEventStore> open_store(const std::string& path) {
  auto r = RocksEventStore::open(RocksOptions{path, true});
  if (!r) throw std::runtime_error(r.status().to_string());
  return std::move(*r);
}

// Appends `commands` commands round-robin over `streams` streams, one or two events each;
// returns each stream's version.
std::map<std::string, uint64_t> append_some(RocksEventStore& store, int commands, int streams,
                                            std::map<std::string, uint64_t> versions = {},
                                            const std::string& id_prefix = "c") {
  for (int i = 0; i < commands; ++i) {
    const std::string s = "s" + std::to_string(i % streams);
    std::vector<std::string> events = {s + "@" + std::to_string(versions[s] + 1)};
    if (i % 3 == 0) events.push_back(s + "@" + std::to_string(versions[s] + 2));
    auto r = store.append({req(s, versions[s], id_prefix + std::to_string(i), events)}).at(0);
    if (!r.status) throw std::runtime_error("append " + s + ": " + r.status.to_string());
    versions[s] = r.last_version;
  }
  return versions;
}

// Every stream reads whole, in version order, with payloads naming their version; every
// command id is found on its stream; the next append of each stream expects its version.
void expect_consistent(RocksEventStore& store, const std::map<std::string, uint64_t>& versions, int commands,
                       const std::string& id_prefix = "c") {
  for (const auto& [s, v] : versions) {
    std::vector<RecordedEvent> got;
    ASSERT_TRUE(store.read_stream(s, 1, &got));
    ASSERT_EQ(got.size(), v) << s;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].version, i + 1) << s;
      EXPECT_EQ(got[i].payload, s + "@" + std::to_string(i + 1)) << s;
    }
    std::vector<RecordedEvent> tail;
    ASSERT_TRUE(store.read_stream(s, v, &tail));
    ASSERT_EQ(tail.size(), 1u) << s;
    EXPECT_EQ(tail[0].position, got.back().position) << s;
    auto version = store.stream_version(s);
    ASSERT_TRUE(version);
    EXPECT_EQ(*version, v) << s;
  }
  for (int i = 0; i < commands; ++i) {
    auto found = store.find_command(id_prefix + std::to_string(i));
    ASSERT_TRUE(found);
    ASSERT_TRUE(found->has_value()) << "command " << i << " not found";
    EXPECT_EQ((**found).stream, "s" + std::to_string(i % static_cast<int>(versions.size())));
  }
  auto missing = store.find_command("never-sent");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
}

bool wait_indexed(RocksEventStore& store) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (store.indexed() < store.head()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

TEST(RocksTrailingIndex, ReadsAnswerTheSameBeforeAndAfterTheIndexCatchesUp) {
  TempDir dir;
  auto store = open_store(dir.sub("events"));
  auto versions = append_some(*store, 300, 7);
  // Straight after the appends: the last ones are still in the tail (the indexer waits for
  // 10 ms or 4,096 events), so these reads join the tail and the index DB.
  expect_consistent(*store, versions, 300);
  ASSERT_TRUE(wait_indexed(*store)) << "the index never caught up: " << store->indexed() << " of " << store->head();
  expect_consistent(*store, versions, 300);
  // A repeat is found in the index DB as it was in the tail: a duplicate, nothing written.
  const uint64_t head = store->head();
  auto again = store->append({req("s1", 0, "c1", {"x"})}).at(0);
  ASSERT_TRUE(again.status) << again.status.to_string();
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(store->head(), head);
  // Stale expected versions are refused with the real one, from either place.
  auto stale = store->append({req("s2", 1, "stale", {"x"})}).at(0);
  EXPECT_EQ(stale.status.code(), StatusCode::kConflict);
  EXPECT_EQ(stale.actual_version, versions["s2"]);
}

TEST(RocksTrailingIndex, ReadsRacingTheIndexerNeverMissAnEvent) {
  TempDir dir;
  auto store = open_store(dir.sub("events"));
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::thread reader([&] {
    while (!done.load()) {
      // A version read as the stream's is always readable, whole, at that moment.
      auto v = store->stream_version("hot");
      if (!v) continue;
      std::vector<RecordedEvent> got;
      if (!store->read_stream("hot", 1, &got) || got.size() < *v) ++bad;
      for (size_t i = 0; i < got.size(); ++i)
        if (got[i].version != i + 1) ++bad;
    }
  });
  std::map<std::string, uint64_t> versions;
  for (int i = 0; i < 3000; ++i) {
    auto r = store->append({req("hot", versions["hot"], "h" + std::to_string(i), {"hot@" + std::to_string(i + 1)})}).at(0);
    ASSERT_TRUE(r.status) << r.status.to_string();
    versions["hot"] = r.last_version;
  }
  done = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(*store->stream_version("hot"), 3000u);
}

TEST(RocksTrailingIndex, ACrashThatLostTheIndexMemtablesReindexesTheLogTail) {
  TempDir dir;
  std::map<std::string, uint64_t> versions;
  {
    auto store = open_store(dir.sub("events"));
    versions = append_some(*store, 200, 5);
    ASSERT_TRUE(wait_indexed(*store));
    // The index DB wrote these only to its memtables (no WAL): the files a kill -9 leaves
    // have no index at all.
    fs::copy(dir.sub("events"), dir.sub("crashed"), fs::copy_options::recursive);
  }
  auto store = open_store(dir.sub("crashed"));
  EXPECT_EQ(store->indexed(), store->head()) << "open indexes what the index files lack";
  expect_consistent(*store, versions, 200);
  versions = append_some(*store, 50, 5, versions, "d");
  expect_consistent(*store, versions, 50, "d");
}

TEST(RocksTrailingIndex, ACleanCloseKeepsTheIndexAndReopensWithoutReindexing) {
  TempDir dir;
  std::map<std::string, uint64_t> versions;
  {
    auto store = open_store(dir.sub("events"));
    versions = append_some(*store, 120, 4);
  }  // closed with entries still in the tail: written and flushed at close
  {
    // The log alone no longer has them: the index DB must (its files, no reindex). Prove it
    // by reading the index DB's files directly.
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::Options o;
    const std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
        {rocksdb::kDefaultColumnFamilyName, {}}, {"index", {}}, {"commands", {}}};
    auto s = rocksdb::DB::OpenForReadOnly(o, dir.sub("events") + "/index", cfs, &handles, &raw);
    ASSERT_TRUE(s.ok()) << s.ToString();
    std::string mark, result;
    EXPECT_TRUE(raw->Get({}, handles[0], "indexed", &mark).ok());
    ASSERT_EQ(mark.size(), 8u);
    EXPECT_TRUE(raw->Get({}, handles[2], "c119", &result).ok()) << "the last command's id is in the index files";
    for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
    delete raw;
    auto store = open_store(dir.sub("events"));
    EXPECT_EQ(get_u64_be(mark.data()), store->head());
  }
  auto store = open_store(dir.sub("events"));
  expect_consistent(*store, versions, 120);
}

TEST(RocksTrailingIndex, AnIndexDeletedOrDamagedIsRebuiltFromTheLog) {
  TempDir dir;
  std::map<std::string, uint64_t> versions;
  {
    auto store = open_store(dir.sub("events"));
    versions = append_some(*store, 150, 6);
  }
  fs::remove_all(dir.sub("events") + "/index");
  {
    auto store = open_store(dir.sub("events"));
    expect_consistent(*store, versions, 150);
  }
  // Garbage over the index's MANIFEST and CURRENT: reopened, it is rebuilt, not refused.
  for (const auto& e : fs::directory_iterator(dir.sub("events") + "/index")) {
    const std::string name = e.path().filename().string();
    if (name.rfind("MANIFEST", 0) == 0 || name == "CURRENT") std::ofstream(e.path(), std::ios::trunc) << "garbage";
  }
  auto store = open_store(dir.sub("events"));
  expect_consistent(*store, versions, 150);
}

TEST(RocksTrailingIndex, AnIndexAheadOfTheLogIsRebuilt) {
  TempDir dir;
  std::map<std::string, uint64_t> early;
  {
    auto store = open_store(dir.sub("a"));
    early = append_some(*store, 40, 4);
  }
  fs::copy(dir.sub("a"), dir.sub("b"), fs::copy_options::recursive);
  {
    auto store = open_store(dir.sub("a"));
    append_some(*store, 40, 4, early, "later");
  }
  // b's log ends at the early head, but its index now covers a's later commands.
  fs::remove_all(dir.sub("b") + "/index");
  fs::copy(dir.sub("a") + "/index", dir.sub("b") + "/index", fs::copy_options::recursive);
  auto store = open_store(dir.sub("b"));
  expect_consistent(*store, early, 40);
  auto later = store->find_command("later0");
  ASSERT_TRUE(later);
  EXPECT_FALSE(later->has_value()) << "an entry of the other log survived the rebuild";
  auto next = append_some(*store, 8, 4, early, "next");
  expect_consistent(*store, next, 8, "next");
}

// A store written before the index had a DB of its own: the log's DB held the families
// index and commands. Built here with RocksDB directly, in that layout.
TEST(RocksTrailingIndex, AStoreInTheEarlierLayoutIsReindexedOnceAndItsOldFamiliesDropped) {
  TempDir dir;
  const std::string path = dir.sub("events");
  std::map<std::string, uint64_t> versions;
  const int commands = 60;
  {
    rocksdb::Options o;
    o.create_if_missing = true;
    o.create_missing_column_families = true;
    const std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
        {rocksdb::kDefaultColumnFamilyName, {}}, {"log", {}}, {"index", {}}, {"commands", {}}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, path, cfs, &handles, &raw).ok());
    rocksdb::WriteBatch wb;
    uint64_t position = 0;
    for (int i = 0; i < commands; ++i) {
      const std::string s = "s" + std::to_string(i % 3);
      RecordedEvent e;
      e.stream = s;
      e.command_id = "c" + std::to_string(i);
      for (int k = 0; k < 1 + (i % 3 == 0); ++k) {
        e.version = ++versions[s];
        e.payload = s + "@" + std::to_string(e.version);
        std::string key;
        put_u64_be(key, ++position);
        wb.Put(handles[1], key, encode_event(e));
        wb.Put(handles[2], s + std::string(1, '\0') + key, key);  // stale content: never read
      }
      wb.Put(handles[3], e.command_id, "old");
    }
    ASSERT_TRUE(raw->Write(rocksdb::WriteOptions(), &wb).ok());
    for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
    delete raw;
  }
  {
    auto store = open_store(path);
    expect_consistent(*store, versions, commands);
  }
  std::vector<std::string> families;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &families).ok());
  EXPECT_EQ(families, (std::vector<std::string>{"default", "log"}));
  auto store = open_store(path);
  expect_consistent(*store, versions, commands);
  auto r = store->append({req("s0", versions["s0"], "c-new", {"s0@" + std::to_string(versions["s0"] + 1)})}).at(0);
  ASSERT_TRUE(r.status) << r.status.to_string();
  EXPECT_EQ(r.first_position, store->head());
}

}  // namespace
}  // namespace orderflow::connectors
