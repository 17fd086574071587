// The RocksDB event store on a misbehaving disk, through its real files: a damaged or
// deleted write-ahead log after acknowledged (synced) writes must stop the open with an
// error that names the damage and what to do, while a clean restart and a crash image
// (the files as a kill -9 leaves them) open with everything. A full disk (a FileSystem
// decorator answering NoSpace) must neither abort nor stick: appends answer unavailable,
// then resume by themselves, and nothing acknowledged is lost.
#include <gtest/gtest.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "connectors/rocksdb_store.h"
#include "tests/support/faulty_fs.h"
#include "tests/support/temp_dir.h"

namespace orderflow::connectors {
namespace {

namespace fs = std::filesystem;

// One test's directory, named after this suite.
class TempDir : public testing::TempDir {
 public:
  TempDir() : testing::TempDir("orderflow-rocks-faults") {}
};

std::unique_ptr<RocksEventStore> open_store(const std::string& path) {
  auto r = RocksEventStore::open(RocksOptions{path, true});
  if (!r) throw std::runtime_error(r.status().to_string());
  return std::move(*r);
}

// `batches` synced group commits of 20 events of 200 bytes on 10 streams; returns the head.
uint64_t write_acknowledged(RocksEventStore& store, int batches, int first = 0) {
  for (int b = first; b < first + batches; ++b) {
    std::vector<AppendRequest> batch;
    for (int s = 0; s < 10; ++s) {
      AppendRequest r;
      r.stream = "stream-" + std::to_string(s);
      r.expected_version = static_cast<uint64_t>(b) * 2;  // two events per batch and stream
      r.command_id = "c-" + std::to_string(b) + "-" + std::to_string(s);
      r.events = {std::string(200, static_cast<char>('a' + s)), std::string(200, 'z')};
      batch.push_back(std::move(r));
    }
    for (const auto& r : store.append(batch))
      if (!r.status) throw std::runtime_error("append: " + r.status.to_string());
  }
  return store.head();
}

// The files as they are now, as a kill -9 of the process would leave them (the OS has
// every completed write; nothing else is on disk for a synced store anyway).
void crash_image(const std::string& from, const std::string& to) {
  fs::copy(from, to, fs::copy_options::recursive);
  fs::remove(to + "/LOCK");
}

std::string newest_wal(const std::string& dir) {
  std::vector<std::string> logs;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".log" && e.path().filename().string() != "LOG") logs.push_back(e.path().string());
  if (logs.empty()) throw std::runtime_error("no WAL in " + dir);
  std::sort(logs.begin(), logs.end());  // zero-padded numbers: the newest sorts last
  return logs.back();
}

Status open_status(const std::string& path) {
  auto r = RocksEventStore::open(RocksOptions{path, true});
  return r ? Status::ok() : r.status();
}

void expect_refused_clearly(const Status& s, const std::string& path) {
  ASSERT_FALSE(s) << "opened an event store that lost acknowledged writes";
  const std::string& m = s.message();
  EXPECT_NE(m.find(path), std::string::npos) << m;
  EXPECT_NE(m.find("Refusing to start"), std::string::npos) << m;
  EXPECT_NE(m.find("Restore"), std::string::npos) << m;
}

TEST(RocksLostWrites, CleanRestartAndCrashImageOpenWithEverything) {
  TempDir dir;
  uint64_t head = 0;
  {
    auto store = open_store(dir.sub("events"));
    head = write_acknowledged(*store, 40);
    ASSERT_TRUE(store->save_checkpoint("projection", head));
    crash_image(dir.sub("events"), dir.sub("crashed"));
  }
  for (const char* name : {"events", "crashed"}) {
    auto store = open_store(dir.sub(name));
    EXPECT_EQ(store->head(), head) << name;
    EXPECT_EQ(*store->load_checkpoint("projection"), head) << name;
    EXPECT_EQ(write_acknowledged(*store, 1, 40), head + 20) << name << ": appends go on";
  }
  // Reopened a second time (after RocksDB's recovery flushed the WAL), still fine.
  auto again = open_store(dir.sub("crashed"));
  EXPECT_EQ(again->head(), head + 20);
}

// Regression: the newest WAL cut to half after acknowledged writes and a kill -9 opened as
// if nothing happened (RocksDB takes a short tail for a torn last write).
TEST(RocksLostWrites, NewestWalTruncatedAfterAKillRefusesToOpen) {
  TempDir dir;
  {
    auto store = open_store(dir.sub("events"));
    write_acknowledged(*store, 40);
    crash_image(dir.sub("events"), dir.sub("crashed"));
  }
  const std::string wal = newest_wal(dir.sub("crashed"));
  fs::resize_file(wal, fs::file_size(wal) / 2);
  const Status s = open_status(dir.sub("crashed"));
  expect_refused_clearly(s, dir.sub("crashed"));
  EXPECT_NE(s.message().find("acknowledged events lost"), std::string::npos) << s.message();
  // Refused again on the next try: the refusal changed nothing.
  EXPECT_FALSE(open_status(dir.sub("crashed")));
}

TEST(RocksLostWrites, NewestWalTruncatedAfterACleanCloseRefusesToOpen) {
  TempDir dir;
  {
    auto store = open_store(dir.sub("events"));
    write_acknowledged(*store, 40);
  }
  const std::string wal = newest_wal(dir.sub("events"));
  fs::resize_file(wal, fs::file_size(wal) / 2);
  expect_refused_clearly(open_status(dir.sub("events")), dir.sub("events"));
}

TEST(RocksLostWrites, NewestWalDeletedRefusesToOpen) {
  TempDir dir;
  {
    auto store = open_store(dir.sub("events"));
    write_acknowledged(*store, 40);
    crash_image(dir.sub("events"), dir.sub("crashed"));
  }
  fs::remove(newest_wal(dir.sub("crashed")));
  expect_refused_clearly(open_status(dir.sub("crashed")), dir.sub("crashed"));
}

TEST(RocksLostWrites, ZeroedBytesInsideTheWalRefuseToOpen) {
  TempDir dir;
  {
    auto store = open_store(dir.sub("events"));
    write_acknowledged(*store, 40);
    crash_image(dir.sub("events"), dir.sub("crashed"));
  }
  const std::string wal = newest_wal(dir.sub("crashed"));
  {
    std::fstream f(wal, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(wal) / 3));
    const std::string zeros(64, '\0');
    f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  }
  expect_refused_clearly(open_status(dir.sub("crashed")), dir.sub("crashed"));
}

// A subscriber that read further than the log now goes proves writes were lost even
// without the synced-head file (removed here, as an operator might).
TEST(RocksLostWrites, CheckpointBeyondTheHeadRefusesToOpen) {
  TempDir dir;
  uint64_t head = 0;
  {
    auto store = open_store(dir.sub("events"));
    head = write_acknowledged(*store, 5);
    ASSERT_TRUE(store->save_checkpoint("projection", head + 7));
  }
  fs::remove(dir.sub("events") + "/" + kSyncedHeadFile);
  const Status s = open_status(dir.sub("events"));
  expect_refused_clearly(s, dir.sub("events"));
  EXPECT_NE(s.message().find("subscriber projection has read up to position " + std::to_string(head + 7)),
            std::string::npos)
      << s.message();
}

TEST(RocksLostWrites, DamagedSyncedHeadFileRefusesToOpen) {
  TempDir dir;
  {
    auto store = open_store(dir.sub("events"));
    write_acknowledged(*store, 2);
  }
  {
    std::ofstream f(dir.sub("events") + "/" + kSyncedHeadFile, std::ios::binary | std::ios::trunc);
    f << "not a position!!";
  }
  const Status s = open_status(dir.sub("events"));
  expect_refused_clearly(s, dir.sub("events"));
  EXPECT_NE(s.message().find("is damaged"), std::string::npos) << s.message();
}

// ---- Disk full ------------------------------------------------------------------------

// Regression: a write error made the event store fail for good (and, in RocksDB builds with
// assertions, a later write to the failed WAL aborted the process).
TEST(RocksDiskFull, AppendsAnswerUnavailableThenResumeAndNothingAcknowledgedIsLost) {
  TempDir dir;
  auto fs = std::make_shared<testing::FullDiskFs>(rocksdb::FileSystem::Default());
  RocksOptions options{dir.sub("events"), true};
  options.env = std::shared_ptr<rocksdb::Env>(rocksdb::NewCompositeEnv(fs).release());
  auto opened = RocksEventStore::open(options);
  ASSERT_TRUE(opened) << opened.status().to_string();
  auto& store = **opened;
  const uint64_t before = write_acknowledged(store, 10);

  // The disk fills: every append and checkpoint fails, none aborts, none sticks as fatal.
  fs->set_full(true);
  std::set<std::string> failed_ids;
  for (int i = 0; i < 20; ++i) {
    AppendRequest r;
    r.stream = "stream-full";
    r.expected_version = 0;
    r.command_id = "during-" + std::to_string(i);
    r.events = {std::string(300, 'f')};
    const auto out = store.append({r});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].status.code(), StatusCode::kUnavailable) << out[0].status.to_string();
    failed_ids.insert(r.command_id);
    EXPECT_FALSE(store.save_checkpoint("projection", before));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // past a resume attempt or two
  }
  EXPECT_GT(fs->refused(), 0u) << "the injected fault was never hit";
  EXPECT_EQ(store.head(), before);
  // Readiness sees it (GET /readyz answers 503 with this).
  EXPECT_EQ(store.health().code(), StatusCode::kUnavailable) << store.health().to_string();

  // Space returns: the store resumes by itself, even with no append arriving (readiness
  // took the instance out of rotation), and positions go on from the head.
  fs->set_full(false);
  const auto healthy_by = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!store.health() && std::chrono::steady_clock::now() < healthy_by)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(store.health()) << "no resume without appends: " << store.health().to_string();
  AppendResult after;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    AppendRequest r;
    r.stream = "stream-full";
    r.expected_version = 0;
    r.command_id = "after-space";
    r.events = {std::string(300, 'g')};
    after = store.append({r}).at(0);
    if (!after.status) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (!after.status && std::chrono::steady_clock::now() < deadline);
  ASSERT_TRUE(after.status) << "did not resume: " << after.status.to_string();
  EXPECT_EQ(after.first_position, before + 1);
  EXPECT_EQ(write_acknowledged(store, 2, 10), before + 1 + 40);
  ASSERT_TRUE(store.save_checkpoint("projection", before + 1));
  opened->reset();

  // Reopened on the plain file system: every acknowledged event is there once, none of the
  // refused ones.
  auto reopened = open_store(dir.sub("events"));
  EXPECT_EQ(reopened->head(), before + 1 + 40);
  std::vector<RecordedEvent> all;
  ASSERT_TRUE(reopened->read(0, 100000, &all));
  ASSERT_EQ(all.size(), before + 1 + 40);
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].position, i + 1);
    EXPECT_EQ(failed_ids.count(all[i].command_id), 0u) << all[i].command_id;
  }
  EXPECT_EQ(*reopened->load_checkpoint("projection"), before + 1);
}

}  // namespace
}  // namespace orderflow::connectors
