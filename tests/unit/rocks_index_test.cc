// The RocksDB event store's trailing index: the commit writer writes only the log, and the
// stream index and command ids reach the index DB (index/ in the store's directory) later,
// from the `of-index` thread. Through the store's real interface and files: reads answer the
// same before and after the index catches up; an index whose memtables a crash lost, an index
// deleted, damaged or ahead of the log, and a store in the layout before the index moved all
// open with every stream and command id as the log has them.
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "connectors/append_plan.h"
#include "connectors/rocksdb_store.h"
#include "tests/support/faulty_fs.h"
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
  // Each command's events, as the streams hold them: a found command must name exactly these.
  std::map<std::string, std::vector<RecordedEvent>> by_command;
  for (const auto& [s, v] : versions) {
    std::vector<RecordedEvent> got;
    ASSERT_TRUE(store.read_stream(s, 1, &got));
    for (auto& e : got) by_command[e.command_id].push_back(std::move(e));
  }
  for (int i = 0; i < commands; ++i) {
    const std::string id = id_prefix + std::to_string(i);
    auto found = store.find_command(id);
    ASSERT_TRUE(found);
    ASSERT_TRUE(found->has_value()) << "command " << id << " not found";
    const AppendResult& r = **found;
    const auto& events = by_command[id];
    ASSERT_FALSE(events.empty()) << id;
    EXPECT_EQ(r.stream, "s" + std::to_string(i % static_cast<int>(versions.size()))) << id;
    EXPECT_EQ(r.stream, events.front().stream) << id;
    EXPECT_EQ(r.first_version, events.front().version) << id;
    EXPECT_EQ(r.last_version, events.back().version) << id;
    EXPECT_EQ(r.first_position, events.front().position) << id;
    EXPECT_EQ(r.last_position, events.back().position) << id;
  }
  auto missing = store.find_command("never-sent");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
}

// The "indexed" mark in the index files of the (closed) store at `path`; nullopt when the
// files hold none. Read with RocksDB directly.
std::optional<uint64_t> mark_in_files(const std::string& path) {
  rocksdb::DB* raw = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  const std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, {}}, {"index", {}}, {"commands", {}}};
  auto s = rocksdb::DB::OpenForReadOnly(rocksdb::Options(), path + "/index", cfs, &handles, &raw);
  if (!s.ok()) throw std::runtime_error("index of " + path + ": " + s.ToString());
  std::string mark;
  s = raw->Get({}, handles[0], "indexed", &mark);
  for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
  delete raw;
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok() || mark.size() != 8) throw std::runtime_error("mark of " + path + ": " + s.ToString());
  return get_u64_be(mark.data());
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
  ASSERT_FALSE(mark_in_files(dir.sub("crashed")).has_value()) << "the premise: no index in the files";
  auto store = open_store(dir.sub("crashed"));
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

// Opens the log's DB as orderflow did before the index had a DB of its own: the families
// log, index and commands, created when missing.
rocksdb::Status open_as_before_the_move(const std::string& path, std::vector<rocksdb::ColumnFamilyHandle*>* handles,
                                        rocksdb::DB** raw) {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.create_missing_column_families = true;
  const std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, {}}, {"log", {}}, {"index", {}}, {"commands", {}}};
  return rocksdb::DB::Open(o, path, cfs, handles, raw);
}

// A store written before the index had a DB of its own: the log's DB held the families
// index and commands. Built here with RocksDB directly, in that layout.
TEST(RocksTrailingIndex, AStoreInTheEarlierLayoutIsReindexedOnceAndItsOldFamiliesDropped) {
  TempDir dir;
  const std::string path = dir.sub("events");
  std::map<std::string, uint64_t> versions;
  const int commands = 60;
  {
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(open_as_before_the_move(path, &handles, &raw).ok());
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
  EXPECT_EQ(std::set<std::string>(families.begin(), families.end()),
            (std::set<std::string>{"default", "log", kLayoutFamily}));
  auto store = open_store(path);
  expect_consistent(*store, versions, commands);
  auto r = store->append({req("s0", versions["s0"], "c-new", {"s0@" + std::to_string(versions["s0"] + 1)})}).at(0);
  ASSERT_TRUE(r.status) << r.status.to_string();
  EXPECT_EQ(r.first_position, store->head());
}

// The index files cover a clean close's head; then more commands, on the same streams, reach
// only the tail and the index's memtables before a crash. Open indexes what follows the mark:
// streams whose versions straddle it read whole, every command is found.
TEST(RocksTrailingIndex, ACrashAfterACleanCloseIndexesWhatFollowsTheMark) {
  TempDir dir;
  std::map<std::string, uint64_t> versions;
  uint64_t closed_at = 0;
  {
    auto store = open_store(dir.sub("events"));
    versions = append_some(*store, 90, 5);
    closed_at = store->head();
  }
  {
    auto store = open_store(dir.sub("events"));
    versions = append_some(*store, 70, 5, versions, "d");
    ASSERT_TRUE(wait_indexed(*store));
    fs::copy(dir.sub("events"), dir.sub("crashed"), fs::copy_options::recursive);
  }
  ASSERT_EQ(mark_in_files(dir.sub("crashed")), std::optional<uint64_t>(closed_at)) << "the premise: the mark is the close's";
  auto store = open_store(dir.sub("crashed"));
  expect_consistent(*store, versions, 90, "c");
  expect_consistent(*store, versions, 70, "d");
  auto r = store->append({req("s0", versions["s0"], "e0", {"s0@" + std::to_string(versions["s0"] + 1)})}).at(0);
  ASSERT_TRUE(r.status) << r.status.to_string();
  auto stale = store->append({req("s1", versions["s1"] - 1, "e1", {"x"})}).at(0);
  EXPECT_EQ(stale.status.code(), StatusCode::kConflict);
  EXPECT_EQ(stale.actual_version, versions["s1"]);
}

// Open writes the reindexed log in chunks of about 10,000 commands: a tail longer than one
// chunk comes back whole.
TEST(RocksTrailingIndex, AReindexLongerThanOneChunkIndexesEverything) {
  TempDir dir;
  std::map<std::string, uint64_t> versions;
  const int commands = 10500;
  {
    auto store = open_store(dir.sub("events"));
    for (int first = 0; first < commands; first += 500) {
      std::vector<AppendRequest> batch;
      for (int i = first; i < first + 500; ++i) {
        const std::string s = "s" + std::to_string(i % 11);
        batch.push_back(req(s, versions[s], "c" + std::to_string(i), {s + "@" + std::to_string(versions[s] + 1)}));
        ++versions[s];
      }
      for (const auto& r : store->append(batch)) ASSERT_TRUE(r.status) << r.status.to_string();
    }
    fs::copy(dir.sub("events"), dir.sub("crashed"), fs::copy_options::recursive);
  }
  auto store = open_store(dir.sub("crashed"));
  EXPECT_EQ(store->head(), static_cast<uint64_t>(commands));
  expect_consistent(*store, versions, commands);
}

// The index DB's disk fails while the log's does not: appends and reads stay correct from
// the tail, health() says why, a tail at its limit refuses appends (nothing written), and when
// the disk comes back the indexer catches up by itself.
TEST(RocksTrailingIndex, AnIndexThatCannotBeWrittenIsReportedBoundedAndRecovers) {
  TempDir dir;
  auto fs = std::make_shared<testing::FullDiskFs>(rocksdb::FileSystem::Default(), "/index/");
  RocksOptions options{dir.sub("events"), true};
  options.env = std::shared_ptr<rocksdb::Env>(rocksdb::NewCompositeEnv(fs).release());
  options.index_memtable_bytes = 64 << 10;  // a flush every few hundred commands
  options.index_tail_limit = 3000;
  auto opened = RocksEventStore::open(options);
  ASSERT_TRUE(opened) << opened.status().to_string();
  auto& store = **opened;
  auto versions = append_some(store, 100, 7);
  ASSERT_TRUE(wait_indexed(store));

  fs->set_full(true);
  // Appends go on until the index's next flush fails and then the tail reaches its limit.
  int accepted = 100;
  std::set<std::string> refused;
  Status unhealthy;
  for (int round = 0; round < 400 && refused.empty(); ++round) {
    std::vector<AppendRequest> batch;
    std::map<std::string, uint64_t> next = versions;
    for (int i = accepted; i < accepted + 50; ++i) {
      const std::string s = "s" + std::to_string(i % 7);
      batch.push_back(req(s, next[s], "c" + std::to_string(i), {s + "@" + std::to_string(next[s] + 1)}));
      ++next[s];
    }
    const auto out = store.append(batch);
    if (out[0].status) {
      for (const auto& r : out) ASSERT_TRUE(r.status) << r.status.to_string();
      versions = next;
      accepted += 50;
    } else {
      for (const auto& r : out) EXPECT_EQ(r.status.code(), StatusCode::kUnavailable) << r.status.to_string();
      for (const auto& r : batch) refused.insert(r.command_id);
      EXPECT_NE(out[0].status.message().find("index"), std::string::npos) << out[0].status.to_string();
    }
    if (!store.health()) unhealthy = store.health();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_GT(fs->refused(), 0u) << "the injected fault was never hit";
  ASSERT_FALSE(refused.empty()) << "the tail grew past its limit: " << accepted << " commands accepted";
  EXPECT_EQ(unhealthy.code(), StatusCode::kUnavailable) << "health() never said the index fails";
  EXPECT_NE(unhealthy.message().find("index"), std::string::npos) << unhealthy.to_string();
  EXPECT_LT(store.indexed(), store.head());
  // Reads meanwhile: everything accepted, from the tail and the index files together.
  expect_consistent(store, versions, accepted);

  fs->set_full(false);
  ASSERT_TRUE(wait_indexed(store)) << "no recovery: " << store.indexed() << " of " << store.head();
  const auto healthy_by = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!store.health() && std::chrono::steady_clock::now() < healthy_by)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(store.health()) << store.health().to_string();
  versions = append_some(store, 40, 7, versions, "after");
  expect_consistent(store, versions, 40, "after");
  opened->reset();

  auto reopened = open_store(dir.sub("events"));
  expect_consistent(*reopened, versions, accepted);
  for (const auto& id : refused) {
    auto found = reopened->find_command(id);
    ASSERT_TRUE(found);
    EXPECT_FALSE(found->has_value()) << id << " was refused, yet written";
  }
}

// A data block of an index table damaged on disk: Open reads only the tables' footers and
// indexes, so the damage shows at a read. That read fails (never a wrong answer), health()
// names the index, and the next open rebuilds it from the log.
TEST(RocksTrailingIndex, AnIndexTableDamagedInsideIsRebuiltAtTheNextOpen) {
  TempDir dir;
  const std::string path = dir.sub("events");
  std::map<std::string, uint64_t> versions;
  {
    auto store = open_store(path);
    versions = append_some(*store, 200, 4);
  }  // closed: the index is in table files
  // The tables of the index and command-id families (not the mark's: open reads that).
  std::vector<std::string> tables;
  {
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    const std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
        {rocksdb::kDefaultColumnFamilyName, {}}, {"index", {}}, {"commands", {}}};
    ASSERT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(), path + "/index", cfs, &handles, &raw).ok());
    std::vector<rocksdb::LiveFileMetaData> files;
    raw->GetLiveFilesMetaData(&files);
    for (const auto& f : files)
      if (f.column_family_name != rocksdb::kDefaultColumnFamilyName) tables.push_back(f.db_path + f.name);
    for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
    delete raw;
  }
  ASSERT_FALSE(tables.empty()) << "no index table to damage";
  for (const auto& t : tables) {
    std::fstream f(t, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(16);  // inside the first data block
    f.write("\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", 8);
  }
  {
    auto store = open_store(path);
    ASSERT_TRUE(store->health()) << store->health().to_string();
    Status failed;
    for (const auto& [s, v] : versions) {
      std::vector<RecordedEvent> got;
      const Status read = store->read_stream(s, 1, &got);
      if (!read) {
        failed = read;
      } else {
        EXPECT_EQ(got.size(), v) << "a read that did not fail answered wrong: " << s;
      }
    }
    auto found = store->find_command("c7");
    if (!found) failed = found.status();
    ASSERT_FALSE(failed) << "no read met the damage";
    EXPECT_NE(failed.message().find("damaged"), std::string::npos) << failed.to_string();
    EXPECT_EQ(store->health().code(), StatusCode::kUnavailable);
    EXPECT_NE(store->health().message().find("index"), std::string::npos) << store->health().to_string();
    EXPECT_TRUE(fs::exists(path + "/index/ORDERFLOW-REBUILD"));
  }
  auto store = open_store(path);
  EXPECT_TRUE(store->health()) << store->health().to_string();
  EXPECT_FALSE(fs::exists(path + "/index/ORDERFLOW-REBUILD"));
  expect_consistent(*store, versions, 200);
}

// A store in this layout must not be opened by a binary from before it, which would create
// the index families empty in the log's DB and accept version 1 again on existing streams:
// the layout family makes RocksDB refuse (it opens all of a DB's families or none). And this
// binary refuses a layout it does not know.
TEST(RocksTrailingIndex, AnOlderOrNewerBinaryAndThisOneRefuseEachOthersLayout) {
  TempDir dir;
  const std::string path = dir.sub("events");
  {
    auto store = open_store(path);
    append_some(*store, 10, 2);
  }
  {
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    auto s = open_as_before_the_move(path, &handles, &raw);
    ASSERT_FALSE(s.ok()) << "an older binary opened the store";
    EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
    EXPECT_NE(s.ToString().find(kLayoutFamily), std::string::npos) << s.ToString();
  }
  {
    rocksdb::Options o;
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(o, path, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const auto& n : names) cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, path, cfs, &handles, &raw).ok());
    rocksdb::ColumnFamilyHandle* newer = nullptr;
    ASSERT_TRUE(raw->CreateColumnFamily({}, "orderflow-layout-3", &newer).ok());
    handles.push_back(newer);
    for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
    delete raw;
  }
  auto r = RocksEventStore::open(RocksOptions{path, true});
  ASSERT_FALSE(r) << "opened a store in a layout this binary does not know";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("orderflow-layout-3"), std::string::npos) << r.status().to_string();
}

}  // namespace
}  // namespace orderflow::connectors
