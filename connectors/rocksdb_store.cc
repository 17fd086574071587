#include "connectors/rocksdb_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "connectors/append_plan.h"
#include "graph/containers.h"
#include "graph/log.h"
#include "graph/pipeline.h"

namespace orderflow::connectors {
namespace {

enum Cf { kDefault = 0, kLog = 1, kLayout = 2 };        // the log's DB
enum IndexCf { kMark = 0, kIndex = 1, kCommands = 2 };   // the index DB
constexpr size_t kVersionCacheLimit = 1 << 20;
constexpr auto kResumeInterval = std::chrono::milliseconds(500);
// The indexer writes when this many events wait, or when the oldest waited kIndexDelay: at
// low rates one index write covers many group commits instead of one wake-up each.
constexpr size_t kIndexBatch = 4096;
constexpr auto kIndexDelay = std::chrono::milliseconds(10);
constexpr const char* kIndexedMark = "indexed";
// In the index's directory: a run found its files damaged; the next open rebuilds it.
constexpr const char* kRebuildFile = "ORDERFLOW-REBUILD";

Status map(const rocksdb::Status& s) { return from_rocks(&s); }

std::string index_key(const std::string& stream, uint64_t version) {
  std::string k;
  k.reserve(stream.size() + 9);
  k.append(stream);
  k.push_back('\0');
  put_u64_be(k, version);
  return k;
}

std::string position_key(uint64_t position) {
  std::string k;
  put_u64_be(k, position);
  return k;
}

rocksdb::Options base_options() {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.create_missing_column_families = true;
  o.IncreaseParallelism(2);
  // A power failure leaves the WAL's unsynced tail torn: some of its pages written, some not
  // or half (unsynced checkpoints and an unacknowledged group commit sit there). Recovery
  // keeps the consistent prefix. That alone would also recover around damage to synced
  // records, silently: the stores keep their own lower bound of what was synced
  // (ORDERFLOW-SYNCED-HEAD, ORDERFLOW-SYNCED-SEQUENCE) and refuse an open that recovered
  // less. (kTolerateCorruptedTailRecords, used before, refused an open after a power loss
  // about once in fifty: garbage in a torn tail followed by intact records is not a "tail".)
  o.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  // A closed WAL (synced at its switch) that is missing or shorter than when it was closed
  // fails the open (RocksDB keeps its synced size in the MANIFEST).
  o.track_and_verify_wals_in_manifest = true;
  o.paranoid_checks = true;  // the default, relied on: corruption found in files is an error
  return o;
}

// ORDERFLOW-SYNCED-HEAD: 16 bytes, the position big-endian and the same XOR a constant, so
// a torn or foreign file is told from a position.
constexpr uint64_t kSyncedHeadCheck = 0x6f72646572666c77ULL;  // "orderflw"

std::string synced_head_bytes(uint64_t head) {
  std::string b;
  put_u64_be(b, head);
  put_u64_be(b, head ^ kSyncedHeadCheck);
  return b;
}

// A lower-bound file (ORDERFLOW-SYNCED-HEAD, ORDERFLOW-SYNCED-SEQUENCE), opened or created:
// `value` is what it holds (nullopt: new), `error` why it cannot be opened, `damage` why its
// bytes are not a value.
struct BoundFile {
  int fd = -1;
  std::optional<uint64_t> value;
  std::string error, damage;
};

BoundFile open_bound_file(const std::string& file) {
  BoundFile b;
  b.fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (b.fd < 0) {
    b.error = "cannot open " + file + ": " + std::strerror(errno);
    return b;
  }
  char buf[16];
  const ssize_t n = ::pread(b.fd, buf, sizeof buf, 0);
  if (n == 16) {
    if ((get_u64_be(buf) ^ kSyncedHeadCheck) == get_u64_be(buf + 8)) {
      b.value = get_u64_be(buf);
    } else {
      b.damage = file + " is damaged";
    }
  } else if (n != 0) {
    b.damage = file + " is damaged (" + std::to_string(n) + " bytes)";
  }
  return b;
}

// Writes `value` into a lower-bound file opened by open_bound_file, synced when `sync`.
bool write_bound_file(int fd, uint64_t value, bool sync) {
  const std::string b = synced_head_bytes(value);
  if (::pwrite(fd, b.data(), b.size(), 0) != static_cast<ssize_t>(b.size())) return false;
  return !sync || ::fdatasync(fd) == 0;
}

std::string with_advice(const std::string& path, const std::string& damage) {
  return "event store at " + path + ": " + damage +
         ". Refusing to start: events that were acknowledged (to clients, to subscribers, to the "
         "snapshot store) may be missing, and running on would contradict them (for example "
         "answer 409 for ever on streams whose snapshots are ahead). Restore " + path +
         " from a backup or replica and start again; to accept the loss instead, move the damaged "
         "directory aside, or remove " + path + "/" + kSyncedHeadFile +
         " and reset the checkpoints beyond the head and rebuild the snapshot store";
}

rocksdb::ColumnFamilyOptions point_lookup_cf() {
  rocksdb::ColumnFamilyOptions cf;
  rocksdb::BlockBasedTableOptions t;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  // Most look-ups here miss (a new command id, a new stream): a bloom filter over the
  // memtable answers those without a skiplist search (the writer's Gets were 14% of its
  // CPU in `perf`).
  cf.memtable_prefix_bloom_size_ratio = 0.05;
  cf.memtable_whole_key_filtering = true;
  return cf;
}

// The stream of an index key (stream '\0' version): every read of the index stays inside
// one stream (read_stream, lookup_version).
class StreamOfIndexKey final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "orderflow.StreamOfIndexKey"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), key.size() - 8);
  }
  bool InDomain(const rocksdb::Slice& key) const override { return key.size() >= 9; }
};

// The index DB's families keep RocksDB's plain skiplist memtables. The indexer inserts
// sorted batches (each insert starts near the previous one). Hashed memtables (by stream, by
// command id) took a little off the indexer but made every flush sort the whole memtable
// first: RocksDB's flush thread spent 4.1-4.6 µs per event in runs of 400,000 commands,
// 1.0-1.5 with skiplists, and the pipeline ran 10% faster (`orderflow bench graphs/orders.yaml
// --commands 400000 --runs 1 --threads 2 --store rocksdb --no-baselines`). The prefix
// extractors feed the memtable bloom filters (most look-ups miss) and keep each index
// iterator inside its stream.
rocksdb::ColumnFamilyOptions index_cf(size_t memtable_bytes) {
  rocksdb::ColumnFamilyOptions cf = point_lookup_cf();
  cf.prefix_extractor = std::make_shared<StreamOfIndexKey>();
  cf.write_buffer_size = memtable_bytes;
  return cf;
}

rocksdb::ColumnFamilyOptions commands_cf(size_t memtable_bytes) {
  rocksdb::ColumnFamilyOptions cf = point_lookup_cf();
  cf.prefix_extractor.reset(rocksdb::NewNoopTransform());
  cf.write_buffer_size = memtable_bytes;
  return cf;
}

rocksdb::ColumnFamilyOptions log_cf() {
  rocksdb::ColumnFamilyOptions cf;
  // Small protobuf payloads compress poorly; compressing them at every flush costs CPU the
  // two pipeline cores need.
  cf.compression = rocksdb::kNoCompression;
  return cf;
}

}  // namespace

Status from_rocks(const void* p) {
  const auto& s = *static_cast<const rocksdb::Status*>(p);
  if (s.ok()) return Status::ok();
  if (s.IsNotFound()) return Status::not_found(s.ToString());
  if (s.IsInvalidArgument()) return Status::invalid_argument("rocksdb: " + s.ToString());
  if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut()) return Status::unavailable("rocksdb: " + s.ToString());
  return Status::io_error("rocksdb: " + s.ToString());
}

Result<std::unique_ptr<RocksEventStore>> RocksEventStore::open(const RocksOptions& options) {
  std::unique_ptr<RocksEventStore> store(new RocksEventStore());
  store->sync_ = options.sync;
  store->env_ = options.env;
  store->version_cache_ = std::max<size_t>(1, options.version_cache);
  store->tail_limit_ = std::max<size_t>(1, options.index_tail_limit);
  store->index_memtable_bytes_ = std::max<size_t>(64 << 10, options.index_memtable_bytes);
  rocksdb::Options db_options = base_options();
  if (options.env) db_options.env = options.env.get();
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {"log", log_cf()},
      {kLayoutFamily, rocksdb::ColumnFamilyOptions()},  // created by this open when missing: empty
  };
  // A store written before the indexes had a DB of their own holds them in two more
  // families: opened (RocksDB opens all or none), then dropped once the index DB holds them.
  std::vector<std::string> existing;
  bool legacy = false;
  if (rocksdb::DB::ListColumnFamilies(db_options, options.path, &existing).ok()) {
    for (const char* name : {"index", "commands"})
      if (std::find(existing.begin(), existing.end(), name) != existing.end()) {
        cfs.emplace_back(name, rocksdb::ColumnFamilyOptions());
        legacy = true;
      }
    for (const auto& name : existing)
      if (name.rfind("orderflow-layout-", 0) == 0 && name != kLayoutFamily)
        return Status::invalid_argument("event store at " + options.path + " was written by another orderflow (" +
                                        name + "); this binary knows only " + kLayoutFamily +
                                        ": run the orderflow that wrote it");
  }
  rocksdb::DB* db = nullptr;
  auto s = rocksdb::DB::Open(db_options, options.path, cfs, &store->handles_, &db);
  if (s.IsCorruption())
    return Status::io_error(with_advice(options.path, "its files are damaged (RocksDB: " + s.ToString() + ")"));
  if (!s.ok()) return Status::io_error("cannot open event store at " + options.path + ": " + s.ToString());
  store->db_.reset(db);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), store->handles_[kLog]));
  it->SeekToLast();
  if (it->Valid()) store->head_ = get_u64_be(it->key().data());
  if (!it->status().ok()) return map(it->status());
  it.reset();
  if (auto v = store->verify_nothing_lost(options.path); !v) return v;
  if (auto v = store->open_index(options.path, legacy); !v) return v;
  store->indexer_ = std::thread([raw = store.get()] { raw->indexer_loop(); });
  return store;
}

// The index DB: derived from the log, so anything wrong with it is repaired by indexing the
// log again, never refused.
Status RocksEventStore::open_index(const std::string& path, bool legacy) {
  const std::string dir = path + "/index";
  rocksdb::Options o = base_options();
  if (env_) o.env = env_.get();
  o.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;  // no WAL is written anyway
  o.track_and_verify_wals_in_manifest = false;
  // Written without a WAL: a flush must take every family at once, so the files never hold a
  // mark without its entries (or entries of one family without the other's).
  o.atomic_flush = true;
  o.avoid_flush_during_shutdown = false;
  o.allow_concurrent_memtable_write = false;  // the indexer is the only writer
  // The memtables' size bounds what a crash makes the next open index again (not logged).
  const auto index = index_cf(index_memtable_bytes_), commands = commands_cf(index_memtable_bytes_);
  const std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {"index", index},
      {"commands", commands},
  };
  auto close_index = [&] {
    for (auto* h : index_handles_) index_db_->DestroyColumnFamilyHandle(h);
    index_handles_.clear();
    index_db_->Close();
    index_db_.reset();
  };
  index_dir_ = dir;
  const std::string rebuild_file = dir + "/" + kRebuildFile;
  uint64_t mark = 0;
  for (int attempt = 0;; ++attempt) {
    std::string why;
    rocksdb::DB* db = nullptr;
    rocksdb::Status s;
    if (attempt == 0 && ::access(rebuild_file.c_str(), F_OK) == 0) {
      why = "a read found its files damaged (" + rebuild_file + ")";
    } else if (s = rocksdb::DB::Open(o, dir, cfs, &index_handles_, &db); s.ok()) {
      index_db_.reset(db);
      std::string value;
      auto g = index_db_->Get(rocksdb::ReadOptions(), index_handles_[kMark], kIndexedMark, &value);
      if (g.ok() && value.size() == 8) {
        mark = get_u64_be(value.data());
        if (mark <= head_.load()) break;
        why = "it covers position " + std::to_string(mark) + ", beyond the log's end " + std::to_string(head_.load());
      } else if (g.IsNotFound()) {
        mark = 0;
        break;
      } else {
        why = g.ok() ? "its mark is damaged" : g.ToString();
      }
      close_index();
    } else {
      // Damaged files, a missing MANIFEST: rebuilt. (Never another process's lock: this one
      // holds the log's DB, whose lock guards the whole directory.)
      why = s.ToString();
    }
    if (attempt > 0) return Status::io_error("cannot rebuild the event store's index at " + dir + ": " + why);
    log::warn("event store index is rebuilt from the log", {{"path", dir}, {"reason", why}});
    if (auto d = rocksdb::DestroyDB(dir, o, cfs); !d.ok())
      return Status::io_error("cannot remove the damaged index at " + dir + ": " + d.ToString());
    // Gone with the files it named: were this rebuild cut short, the index has no mark and
    // the next open indexes the whole log anyway.
    if (::unlink(rebuild_file.c_str()) != 0 && errno != ENOENT)
      return Status::io_error("cannot remove " + rebuild_file + ": " + std::strerror(errno));
  }
  if (auto r = reindex(mark); !r) return r;
  indexed_ = head_.load();
  if (legacy) {
    for (size_t i = kLayout + 1; i < handles_.size(); ++i) {
      if (auto d = db_->DropColumnFamily(handles_[i]); !d.ok()) return map(d);
      db_->DestroyColumnFamilyHandle(handles_[i]);
    }
    handles_.resize(kLayout + 1);
    log::info("event store: its index moved to its own database (once)", {{"path", dir}});
  }
  return Status::ok();
}

// Indexes the log's records after `from` (those the index DB's files do not hold), then
// flushes the index, so this is not repeated by the next open.
Status RocksEventStore::reindex(uint64_t from) {
  const uint64_t head = head_.load();
  if (from >= head) return Status::ok();
  std::vector<IndexedCommand> batch;
  uint64_t events = 0;
  // A command's result, as append() recorded it, once its last event is known.
  auto finish = [](IndexedCommand& c) {
    AppendResult r;
    r.stream = c.stream;
    r.first_version = c.first_version;
    r.last_version = c.last_version;
    r.first_position = c.first_position;
    r.last_position = c.last_position;
    c.result = encode_result(r);
  };
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), handles_[kLog]));
  RecordedEvent e;
  for (it->Seek(position_key(from + 1)); it->Valid(); it->Next()) {
    const uint64_t position = get_u64_be(it->key().data());
    if (!decode_event(std::string_view(it->value().data(), it->value().size()), &e))
      return Status::io_error("corrupt event record at position " + std::to_string(position));
    ++events;
    if (!batch.empty()) {
      IndexedCommand& last = batch.back();
      if (last.command_id == e.command_id && last.stream == e.stream && last.last_version + 1 == e.version &&
          last.last_position + 1 == position) {
        last.last_version = e.version;
        last.last_position = position;
        continue;
      }
      finish(last);
      if (batch.size() > 10000) {
        if (auto w = write_index(batch, last.last_position); !w.ok()) return map(w);
        batch.clear();
      }
    }
    batch.push_back({e.stream, e.command_id, {}, e.version, e.version, position, position});
  }
  if (!it->status().ok()) return map(it->status());
  if (!batch.empty()) {
    IndexedCommand& last = batch.back();
    finish(last);
    if (auto w = write_index(batch, last.last_position); !w.ok()) return map(w);
  }
  rocksdb::FlushOptions fo;
  if (auto f = index_db_->Flush(fo, index_handles_); !f.ok()) return map(f);
  log::info("event store indexed the log's tail", {{"from", std::to_string(from + 1)},
                                                   {"events", std::to_string(events)}});
  return Status::ok();
}

// The entries of `commands` and the mark `through`, in one batch without a WAL.
rocksdb::Status RocksEventStore::write_index(const std::vector<IndexedCommand>& commands, uint64_t through) {
  // Keys are random; inserted in key order, each memtable insert starts from the previous
  // one's position in the skiplist instead of from the top.
  std::vector<std::pair<std::string, std::string>> index;
  std::vector<std::pair<const std::string*, const std::string*>> ids;
  size_t bytes = 64;
  ids.reserve(commands.size());
  for (const auto& c : commands) {
    for (uint64_t v = c.first_version; v <= c.last_version; ++v) {
      index.emplace_back(index_key(c.stream, v), position_key(c.first_position + (v - c.first_version)));
      bytes += c.stream.size() + 32;
    }
    ids.emplace_back(&c.command_id, &c.result);
    bytes += c.command_id.size() + c.result.size() + 16;
  }
  std::sort(index.begin(), index.end());
  std::sort(ids.begin(), ids.end(), [](const auto& a, const auto& b) { return *a.first < *b.first; });
  rocksdb::WriteBatch wb(bytes);
  for (const auto& [k, v] : index) wb.Put(index_handles_[kIndex], k, v);
  for (const auto& [k, v] : ids) wb.Put(index_handles_[kCommands], *k, *v);
  wb.Put(index_handles_[kMark], kIndexedMark, position_key(through));
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  return index_db_->Write(wo, &wb);
}

void RocksEventStore::indexer_loop() {
  name_thread("of-index");
  std::unique_lock lock(tail_mu_);
  bool failing = false;
  for (;;) {
    index_cv_.wait(lock, [&] { return stop_indexer_ || !pending_.empty(); });
    const size_t enough = std::min(kIndexBatch, tail_limit_);
    if (!stop_indexer_)
      index_cv_.wait_for(lock, failing ? kResumeInterval : kIndexDelay,
                         [&] { return stop_indexer_ || (!failing && pending_events_ >= enough); });
    if (pending_.empty()) {
      if (stop_indexer_) return;
      continue;
    }
    std::vector<IndexedCommand> batch = std::move(pending_);
    pending_.clear();
    inflight_events_ = pending_events_;  // still in the tail, still counted against its limit
    pending_events_ = 0;
    lock.unlock();
    rocksdb::Status written = write_index(batch, batch.back().last_position);
    rocksdb::Status resumed;
    if (!written.ok()) {
      // A memtable write never touches the disk, but a failed flush or compaction stops the
      // index DB's writes until it resumes. Outside the lock: appends go on meanwhile.
      resumed = index_db_->Resume();
    }
    lock.lock();
    if (!written.ok()) {
      // The tail keeps serving reads and appends (up to tail_limit_); retried until it works,
      // or given up at shutdown (the next open indexes the log's tail again). Damage (a
      // compaction that read a corrupt block) never resumes: marked for a rebuild at the next
      // open, as a read that meets it does.
      const bool damaged = written.IsCorruption() || resumed.IsCorruption() ||
                           written.severity() >= rocksdb::Status::Severity::kFatalError;
      if (!failing) log::error("event store cannot write its index; retrying", {{"error", written.ToString()}});
      failing = true;
      index_error_ = written.ToString();
      if (damaged) {
        lock.unlock();
        index_read_failed(written.IsCorruption() ? written : resumed.IsCorruption() ? resumed
                                                                                    : rocksdb::Status::Corruption(written.ToString()));
        lock.lock();
      }
      if (stop_indexer_) return;
      for (auto& c : pending_) batch.push_back(std::move(c));
      pending_ = std::move(batch);
      inflight_events_ = 0;
      pending_events_ = 0;
      for (const auto& c : pending_) pending_events_ += c.last_version - c.first_version + 1;
      indexed_cv_.notify_all();  // appends waiting on the limit answer unavailable now
      continue;
    }
    inflight_events_ = 0;
    indexed_.store(batch.back().last_position, std::memory_order_release);
    if (failing) log::info("event store writes its index again");
    failing = false;
    index_error_.clear();
    for (const auto& c : batch) {
      tail_commands_.erase(c.command_id);
      auto s = tail_streams_.find(c.stream);
      if (s == tail_streams_.end()) continue;
      auto& ranges = s->second;
      size_t done = 0;
      while (done < ranges.size() && ranges[done].last_version <= c.last_version) ++done;
      if (done == ranges.size()) {
        tail_streams_.erase(s);
      } else {
        ranges.erase(ranges.begin(), ranges.begin() + static_cast<std::ptrdiff_t>(done));
      }
    }
    indexed_cv_.notify_all();
  }
}

void RocksEventStore::stop_indexer() {
  if (!indexer_.joinable()) return;
  {
    std::lock_guard lock(tail_mu_);
    stop_indexer_ = true;
  }
  index_cv_.notify_all();
  indexed_cv_.notify_all();
  indexer_.join();
}

// A read of the index DB failed. Damaged files (a block whose checksum fails: Open reads only
// the tables' footers and indexes) are derived data: marked for a rebuild from the log at the
// next open, and reported by health() until then; the read itself fails.
Status RocksEventStore::index_read_failed(const rocksdb::Status& s) {
  if (!s.IsCorruption()) return map(s);
  const std::string why = "the event store's index at " + index_dir_ + " is damaged (" + s.ToString() +
                          "); restart the instance: the next start rebuilds it from the log";
  bool first = false;
  {
    std::lock_guard lock(tail_mu_);
    if (index_damage_.empty()) {
      index_damage_ = why;
      first = true;
    }
  }
  if (first) {
    const std::string file = index_dir_ + "/" + kRebuildFile;
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    // The new name is durable once its directory is synced.
    const int dir = ::open(index_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || dir < 0 || ::fsync(fd) != 0 || ::fsync(dir) != 0)
      log::error("cannot mark the event store's index for a rebuild", {{"file", file}, {"error", std::strerror(errno)}});
    if (fd >= 0) ::close(fd);
    if (dir >= 0) ::close(dir);
    log::error("event store index is damaged; reads that need it fail until a restart rebuilds it",
               {{"path", index_dir_}, {"error", s.ToString()}});
  }
  return Status::io_error(why);
}

Status RocksEventStore::verify_nothing_lost(const std::string& path) {
  const uint64_t head = head_.load();
  // Subscribers checkpoint only positions they read from this store.
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), handles_[kDefault]));
    const std::string prefix = "checkpoint/";
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      if (it->value().size() != 8) continue;
      const uint64_t at = get_u64_be(it->value().data());
      if (at > head)
        return Status::io_error(with_advice(
            path, "subscriber " + it->key().ToString().substr(prefix.size()) + " has read up to position " +
                      std::to_string(at) + ", but the log ends at " + std::to_string(head) + " (" +
                      std::to_string(at - head) + " events lost; its write-ahead log *.log was damaged or deleted)"));
    }
    if (!it->status().ok()) return map(it->status());
  }
  const BoundFile bound = open_bound_file(path + "/" + kSyncedHeadFile);
  if (!bound.error.empty()) return Status::io_error("event store at " + path + ": " + bound.error);
  synced_head_fd_ = bound.fd;
  if (!bound.damage.empty())
    return Status::io_error(with_advice(path, bound.damage + ", so the store cannot show it lost nothing"));
  if (bound.value && *bound.value > head)
    return Status::io_error(with_advice(
        path, "it was synced up to position " + std::to_string(*bound.value) + ", but its log ends at " +
                  std::to_string(head) + " (" + std::to_string(*bound.value - head) +
                  " acknowledged events lost; its write-ahead log *.log was truncated, damaged or deleted)"));
  if (sync_) record_synced_head(head, true);
  return Status::ok();
}

// After a synced write: the marker never claims more than the disk holds. Kept in the page
// cache on each commit (a kill -9 keeps it), on disk at most once a second (a power loss
// may take it back a little, which only weakens the check).
void RocksEventStore::record_synced_head(uint64_t head, bool force_sync) {
  if (synced_head_fd_ < 0) return;
  const auto now = std::chrono::steady_clock::now();
  const bool sync = force_sync || now - synced_head_flushed_ >= std::chrono::seconds(1);
  if (sync) synced_head_flushed_ = now;
  if (!write_bound_file(synced_head_fd_, head, sync)) log::warn("cannot record the event store's synced head", {{"error", std::strerror(errno)}});
}

// Called with write_mu_ held. RocksDB has stopped writes (paranoid_checks): none may reach
// it until it resumes, or a WAL writer that saw the error would be used again.
void RocksEventStore::write_failed(const std::string& what, const void* rocks_status) {
  const auto& s = *static_cast<const rocksdb::Status*>(rocks_status);
  const bool resumable = !s.IsCorruption() && s.severity() < rocksdb::Status::Severity::kFatalError;
  if (resumable) {
    bg_error_ = Status::unavailable(what + " (" + s.ToString() + "); appends resume when the disk accepts writes");
    next_resume_ = std::chrono::steady_clock::now() + kResumeInterval;
    log::error("event store cannot write; appends answer unavailable until it resumes", {{"error", s.ToString()}});
  } else {
    bg_error_ = Status::io_error(what + ": " + s.ToString());
    log::error("event store failed for good; restart after fixing the cause", {{"error", s.ToString()}});
  }
}

// Called with write_mu_ held, while writes are stopped.
void RocksEventStore::try_resume() {
  auto s = db_->Resume();
  if (s.ok()) {
    bg_error_ = Status::ok();
    versions_.clear();  // cheap to refill; nothing a failed write did may linger
    log::info("event store resumed writing");
    return;
  }
  if (s.IsCorruption() || s.severity() >= rocksdb::Status::Severity::kFatalError) {
    write_failed("event store cannot resume", &s);
    return;
  }
  next_resume_ = std::chrono::steady_clock::now() + kResumeInterval;
}

Status RocksEventStore::health() const {
  {
    // An index that cannot be written holds the tail in memory, growing: take the instance
    // out of rotation while it lasts (reads and appends still work, up to the tail's limit).
    auto* self = const_cast<RocksEventStore*>(this);
    std::lock_guard tl(self->tail_mu_);
    if (!index_damage_.empty()) return Status::unavailable(index_damage_);
    if (!index_error_.empty())
      return Status::unavailable("event store cannot write its index (" + index_error_ + "); " +
                                 std::to_string(pending_events_ + inflight_events_) + " events wait in memory");
  }
  std::unique_lock lock(write_mu_, std::try_to_lock);
  if (!lock.owns_lock()) return Status::ok();  // an append is under way: writes are not stopped
  auto* self = const_cast<RocksEventStore*>(this);  // resuming changes state, not the answer's meaning
  if (!bg_error_.is_ok() && bg_error_.code() == StatusCode::kUnavailable &&
      std::chrono::steady_clock::now() >= next_resume_)
    self->try_resume();
  return bg_error_;
}

RocksEventStore::~RocksEventStore() {
  stop_indexer();  // writes what the tail holds
  if (index_db_) {
    index_db_->Flush(rocksdb::FlushOptions(), index_handles_);  // best effort: else indexed again at open
    for (auto* h : index_handles_) index_db_->DestroyColumnFamilyHandle(h);
    index_db_->Close();
  }
  if (!db_) return;
  for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  db_->Close();
  if (synced_head_fd_ >= 0) {
    ::fdatasync(synced_head_fd_);
    ::close(synced_head_fd_);
  }
}

Result<uint64_t> RocksEventStore::lookup_version(const std::string& stream, uint64_t** slot) {
  // One hash look-up of the (large, cache-missing) map whether the stream is known or not;
  // the caller may keep the slot to record the version it writes (no clear() meanwhile).
  auto [cached, fresh] = versions_.try_emplace(stream, 0);
  if (slot != nullptr) *slot = &cached->second;
  if (!fresh) return cached->second;
  auto found = find_version(stream);
  if (!found) {
    versions_.erase(cached);
    if (slot != nullptr) *slot = nullptr;
    return found.status();
  }
  cached->second = *found;
  return *found;
}

Result<uint64_t> RocksEventStore::find_version(const std::string& stream) {
  {
    std::lock_guard lock(tail_mu_);  // the newest versions, when the index DB lacks them
    if (auto t = tail_streams_.find(stream); t != tail_streams_.end()) return t->second.back().last_version;
  }
  // A stream's versions are 1..N without a gap, so N is found by point look-ups (bloom
  // filters): doubling, then halving. New streams, the common miss, cost one; cheaper than
  // creating an iterator to seek backwards.
  std::string ignored;
  auto exists = [&](uint64_t version) -> Result<bool> {
    auto s = index_db_->Get(rocksdb::ReadOptions(), index_handles_[kIndex], index_key(stream, version), &ignored);
    if (s.IsNotFound()) return false;
    if (!s.ok()) return index_read_failed(s);
    return true;
  };
  uint64_t known = 0, absent = 1;  // known exists (0: none), absent does not
  for (;;) {
    auto e = exists(absent);
    if (!e) return e.status();
    if (!*e) break;
    known = absent;
    absent *= 2;
  }
  while (absent - known > 1) {
    const uint64_t mid = known + (absent - known) / 2;
    auto e = exists(mid);
    if (!e) return e.status();
    (*e ? known : absent) = mid;
  }
  return known;
}

// Called with write_mu_ held. A tail at its limit waits for the indexer (it writes 4,096
// events a batch, far faster than appends come); while the indexer's writes fail, or if it
// makes no room within a second, the append answers unavailable and writes nothing.
Status RocksEventStore::wait_for_tail_room() {
  std::unique_lock tl(tail_mu_);
  auto room = [&] { return pending_events_ + inflight_events_ < tail_limit_; };
  if (room()) return Status::ok();
  index_cv_.notify_one();
  indexed_cv_.wait_for(tl, std::chrono::seconds(1),
                       [&] { return room() || !index_error_.empty() || stop_indexer_; });
  if (room()) return Status::ok();
  return Status::unavailable("event store's index is " + std::to_string(pending_events_ + inflight_events_) +
                             " events behind the log" +
                             (index_error_.empty() ? std::string() : " (" + index_error_ + ")") +
                             "; appends wait until it catches up");
}

std::vector<AppendResult> RocksEventStore::append(const std::vector<AppendRequest>& batch) {
  std::vector<AppendResult> results;
  auto fail_all = [&](const Status& why) {  // nothing of the batch is written
    results.assign(batch.size(), AppendResult{});
    for (size_t i = 0; i < batch.size(); ++i) {
      results[i].stream = batch[i].stream;
      results[i].status = why;
    }
    return results;
  };
  std::lock_guard lock(write_mu_);
  if (bg_error_.code() == StatusCode::kUnavailable && std::chrono::steady_clock::now() >= next_resume_) try_resume();
  if (!bg_error_.is_ok()) return fail_all(bg_error_);
  if (auto full = wait_for_tail_room(); !full) return fail_all(full);
  // Every command id of the group is looked up at once (the tail under one lock, the rest
  // with one MultiGet) before planning: one look-up per command was a third of the writer's
  // time. Only this writer adds commands (write_mu_), and an entry leaves the tail only
  // after the index DB has it, so tail-then-index finds every committed id.
  auto found = find_commands(batch);
  if (!found) return fail_all(found.status());
  // The versions cache is bounded by emptying it, never while this batch holds slots in it.
  if (versions_.size() + batch.size() >= version_cache_) empty_keeping_capacity(versions_);
  // Each stream planned here was looked up once (plan_append remembers the rest of the
  // batch): its slot in versions_ takes the version written, without a second look-up.
  absl::flat_hash_map<std::string_view, uint64_t*> slots;
  AppendLookups lookups{[&found](const std::string& id) -> Result<std::optional<AppendResult>> {
                          auto it = found->find(id);
                          if (it == found->end()) return std::optional<AppendResult>();
                          return stored_result(id, it->second);
                        },
                        [this, &slots](const std::string& stream) {
                          uint64_t* slot = nullptr;
                          auto v = lookup_version(stream, &slot);
                          if (slot != nullptr) slots[stream] = slot;
                          return v;
                        }};
  const uint64_t head = head_.load(std::memory_order_relaxed);
  auto plan = plan_append(batch, head, lookups, results);
  if (plan.empty()) return results;

  size_t bytes = 0;
  for (const auto& p : plan)
    for (const auto& e : batch[p.request].events)
      bytes += e.size() + batch[p.request].stream.size() + batch[p.request].command_id.size() + 64;
  rocksdb::WriteBatch wb(bytes);  // one allocation for the whole group
  const int64_t at = now_us();
  std::string value;  // one buffer for every event of the group
  for (const auto& p : plan) {
    const AppendRequest& req = batch[p.request];
    for (size_t k = 0; k < req.events.size(); ++k) {
      value.clear();
      append_event(value, req.stream, p.first_version + k, at, req.command_id, req.events[k]);
      wb.Put(handles_[kLog], position_key(p.first_position + k), value);
    }
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync_;
  auto s = db_->Write(wo, &wb);
  if (!s.ok()) {
    write_failed("event store write failed", &s);
    for (const auto& p : plan) results[p.request].status = bg_error_;
    return results;
  }
  uint64_t new_head = head;
  std::vector<IndexedCommand> written;
  written.reserve(plan.size());
  size_t events = 0;
  for (const auto& p : plan) {
    const auto& r = results[p.request];
    if (auto slot = slots.find(batch[p.request].stream); slot != slots.end()) {
      *slot->second = r.last_version;
    } else {
      versions_[r.stream] = r.last_version;  // not expected: every planned stream was looked up
    }
    new_head = std::max(new_head, r.last_position);
    written.push_back({r.stream, batch[p.request].command_id, encode_result(r), r.first_version, r.last_version,
                       r.first_position, r.last_position});
    events += r.last_version - r.first_version + 1;
  }
  if (sync_) record_synced_head(new_head, false);
  // Into the tail before the head moves: whoever sees the new head finds the new entries.
  bool wake;
  {
    std::lock_guard tl(tail_mu_);
    for (auto& c : written) {
      tail_streams_[c.stream].push_back({c.first_version, c.last_version, c.first_position});
      tail_commands_[c.command_id] = c.result;
    }
    wake = pending_.empty() || (pending_events_ < kIndexBatch && pending_events_ + events >= kIndexBatch);
    pending_events_ += events;
    if (pending_.empty()) {
      pending_ = std::move(written);
    } else {
      for (auto& c : written) pending_.push_back(std::move(c));
    }
  }
  if (wake) index_cv_.notify_one();
  {
    std::lock_guard wl(wait_mu_);
    head_.store(new_head, std::memory_order_release);
  }
  wait_cv_.notify_all();
  return results;
}

Status RocksEventStore::read_stream(const std::string& stream, uint64_t from_version,
                                    std::vector<RecordedEvent>* out) {
  const uint64_t from = std::max<uint64_t>(from_version, 1);
  // The tail first: an entry leaves it only after the index DB holds it, so the two reads
  // together miss nothing committed before this call.
  std::vector<StreamRange> recent;
  {
    std::lock_guard lock(tail_mu_);
    if (auto t = tail_streams_.find(stream); t != tail_streams_.end()) recent = t->second;
  }
  std::vector<std::string> positions;  // of versions from, from + 1, ...
  if (recent.empty() || recent.front().first_version > from) {
    // Most reads are of new or fully snapshotted streams: a point look-up (bloom filter,
    // memtable) answers those far cheaper than creating an iterator.
    std::string first;
    auto s = index_db_->Get(rocksdb::ReadOptions(), index_handles_[kIndex], index_key(stream, from), &first);
    if (!s.ok() && !s.IsNotFound()) return index_read_failed(s);
    if (s.ok()) {
      std::unique_ptr<rocksdb::Iterator> it(index_db_->NewIterator(rocksdb::ReadOptions(), index_handles_[kIndex]));
      const std::string prefix = stream + '\0';
      for (it->Seek(index_key(stream, from));
           it->Valid() && it->key().starts_with(prefix) && it->key().size() == prefix.size() + 8; it->Next())
        positions.push_back(it->value().ToString());
      if (!it->status().ok()) return index_read_failed(it->status());
    }
  }
  for (const auto& r : recent)
    for (uint64_t v = std::max(r.first_version, from + positions.size()); v <= r.last_version; ++v)
      positions.push_back(position_key(r.first_position + (v - r.first_version)));
  if (positions.empty()) return Status::ok();
  std::vector<rocksdb::Slice> keys(positions.begin(), positions.end());
  std::vector<std::string> values;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs(keys.size(), handles_[kLog]);
  auto statuses = db_->MultiGet(rocksdb::ReadOptions(), cfs, keys, &values);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!statuses[i].ok()) return map(statuses[i]);
    RecordedEvent e;
    if (!decode_event(values[i], &e)) return Status::io_error("corrupt event record in stream " + stream);
    e.position = get_u64_be(positions[i].data());
    out->push_back(std::move(e));
  }
  return Status::ok();
}

Result<std::optional<AppendResult>> RocksEventStore::find_command(const std::string& command_id) {
  std::string value;
  bool recent = false;
  {
    std::lock_guard lock(tail_mu_);
    if (auto t = tail_commands_.find(command_id); t != tail_commands_.end()) {
      value = t->second;
      recent = true;
    }
  }
  if (!recent) {
    auto s = index_db_->Get(rocksdb::ReadOptions(), index_handles_[kCommands], command_id, &value);
    if (s.IsNotFound()) return std::optional<AppendResult>();
    if (!s.ok()) return index_read_failed(s);
  }
  return stored_result(command_id, value);
}

Result<std::optional<AppendResult>> RocksEventStore::stored_result(const std::string& command_id,
                                                                   const std::string& value) {
  AppendResult r;
  if (!decode_result(value, &r)) return Status::io_error("corrupt command record " + command_id);
  return std::optional<AppendResult>(std::move(r));
}

Result<absl::flat_hash_map<std::string_view, std::string>> RocksEventStore::find_commands(
    const std::vector<AppendRequest>& batch) {
  absl::flat_hash_map<std::string_view, std::string> found;
  std::vector<std::string_view> ids;
  {
    std::lock_guard lock(tail_mu_);
    for (const auto& r : batch) {
      if (r.command_id.empty()) continue;
      if (auto t = tail_commands_.find(r.command_id); t != tail_commands_.end()) found.emplace(r.command_id, t->second);
      else ids.push_back(r.command_id);
    }
  }
  if (ids.empty()) return found;
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::vector<rocksdb::Slice> keys(ids.begin(), ids.end());
  std::vector<rocksdb::PinnableSlice> values(ids.size());
  std::vector<rocksdb::Status> statuses(ids.size());
  index_db_->MultiGet(rocksdb::ReadOptions(), index_handles_[kCommands], keys.size(), keys.data(), values.data(),
                      statuses.data(), /*sorted_input=*/true);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (statuses[i].IsNotFound()) continue;
    if (!statuses[i].ok()) return index_read_failed(statuses[i]);
    found.emplace(ids[i], values[i].ToString());
  }
  return found;
}

Result<uint64_t> RocksEventStore::stream_version(const std::string& stream) {
  std::lock_guard lock(write_mu_);
  if (versions_.size() >= version_cache_) empty_keeping_capacity(versions_);
  return lookup_version(stream);
}

Status RocksEventStore::read(uint64_t after, size_t max, std::vector<RecordedEvent>* out) {
  const uint64_t head = head_.load(std::memory_order_acquire);
  if (after >= head || max == 0) return Status::ok();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), handles_[kLog]));
  for (it->Seek(position_key(after + 1)); it->Valid() && max > 0; it->Next(), --max) {
    RecordedEvent e;
    e.position = get_u64_be(it->key().data());
    if (e.position > head) break;
    if (!decode_event(std::string_view(it->value().data(), it->value().size()), &e))
      return Status::io_error("corrupt event record at position " + std::to_string(e.position));
    out->push_back(std::move(e));
  }
  return map(it->status());
}

void RocksEventStore::wait(uint64_t after, std::chrono::milliseconds timeout) {
  std::unique_lock lock(wait_mu_);
  wait_cv_.wait_for(lock, timeout, [&] { return head_.load(std::memory_order_acquire) > after; });
}

Result<uint64_t> RocksEventStore::load_checkpoint(const std::string& subscriber) {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), handles_[kDefault], "checkpoint/" + subscriber, &value);
  if (s.IsNotFound()) return uint64_t{0};
  if (!s.ok()) return map(s);
  if (value.size() != 8) return Status::io_error("corrupt checkpoint for " + subscriber);
  return get_u64_be(value.data());
}

Status RocksEventStore::save_checkpoint(const std::string& subscriber, uint64_t position) {
  // Not synced: it reaches the OS at once (a killed process keeps it) and the disk with
  // the next group commit's WAL sync. A power failure before that moves a subscriber back
  // a little, and redelivery is something every subscriber handles (at-least-once). A sync
  // here cost two fsyncs per feed batch, queued on the same disk as the group commit's.
  rocksdb::WriteOptions wo;
  wo.sync = false;
  return map(db_->Put(wo, handles_[kDefault], "checkpoint/" + subscriber, position_key(position)));
}

Result<std::unique_ptr<RocksSnapshotStore>> RocksSnapshotStore::open(const RocksOptions& options) {
  std::unique_ptr<RocksSnapshotStore> store(new RocksSnapshotStore());
  store->sync_ = options.sync;
  store->env_ = options.env;
  rocksdb::Options o = base_options();
  static_cast<rocksdb::ColumnFamilyOptions&>(o) = point_lookup_cf();
  if (options.env) o.env = options.env.get();  // lanes look up new streams: mostly misses
  // The marks live apart from the snapshots, so no stream id can collide with one and a
  // scan of either never meets the other. A store written before marks existed gets the
  // family created empty: its writers then replay from the start once (idempotent).
  // Snapshots are read by key only (clear() aside, offline), and a projection's flush writes
  // hot streams again and again: a memtable hashed by whole key takes each write without a
  // skiplist search (RocksDB writes were over half of the projection feed thread's CPU, its
  // memtable inserts 15%; hashed, that thread spends about 10% less per event). Hashed
  // memtables take one writer at a time.
  // Covering writes are not synced: after a power loss recovery keeps the WAL's consistent
  // prefix (base_options): everything synced, parked commands included, and whole batches of
  // snapshots with their marks.
  auto snapshots = point_lookup_cf();
  snapshots.prefix_extractor.reset(rocksdb::NewNoopTransform());
  snapshots.memtable_factory.reset(rocksdb::NewHashLinkListRepFactory(1 << 16));
  o.allow_concurrent_memtable_write = false;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, snapshots},
      {"covered", rocksdb::ColumnFamilyOptions()},
      {"parked", rocksdb::ColumnFamilyOptions()},  // created empty in an older store
  };
  rocksdb::DB* db = nullptr;
  auto s = rocksdb::DB::Open(o, options.path, cfs, &store->handles_, &db);
  if (!s.ok()) return Status::io_error("cannot open snapshot store at " + options.path + ": " + s.ToString());
  store->db_.reset(db);
  if (auto v = store->verify_synced(options.path); !v) return v;
  return store;
}

// Point-in-time recovery keeps the WAL's consistent prefix: right for the unsynced covering
// writes, but it would also drop, silently, a synced write behind damage in the WAL (a media
// error, a disk that ignored a flush). The sequence number of the last synced write, kept in
// ORDERFLOW-SYNCED-SEQUENCE, tells: recovery that ends before it lost acknowledged writes
// (parked saga commands among them), and the open is refused.
Status RocksSnapshotStore::verify_synced(const std::string& path) {
  const std::string file = path + "/" + kSyncedSequenceFile;
  const BoundFile bound = open_bound_file(file);
  if (!bound.error.empty()) return Status::io_error("snapshot store at " + path + ": " + bound.error);
  synced_seq_fd_ = bound.fd;
  const uint64_t recovered = db_->GetLatestSequenceNumber();
  auto refuse = [&](const std::string& damage) {
    return Status::io_error("snapshot store at " + path + ": " + damage +
                            ". Refusing to start: parked saga commands (or synced snapshots) may be missing. "
                            "Restore " + path + " from a backup and start again; to accept the loss instead, "
                            "remove " + file + " (then check `orderflow parked list` and rebuild the projection)");
  };
  if (!bound.damage.empty()) return refuse(bound.damage);
  if (bound.value && *bound.value > recovered)
    return refuse("its writes were synced up to sequence " + std::to_string(*bound.value) + ", but recovery ends at " +
                  std::to_string(recovered) + " (its write-ahead log *.log was damaged, truncated or deleted)");
  std::lock_guard lock(write_mu_);
  return record_synced();
}

// Called with write_mu_ held (every write takes it) after a synced write: everything up to
// the latest sequence number is on disk.
Status RocksSnapshotStore::record_synced() {
  if (!write_bound_file(synced_seq_fd_, db_->GetLatestSequenceNumber(), true))
    return Status::io_error(std::string("snapshot store: cannot record its synced sequence: ") + std::strerror(errno));
  return Status::ok();
}

RocksSnapshotStore::~RocksSnapshotStore() {
  if (db_) {
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
    db_->Close();
  }
  if (synced_seq_fd_ >= 0) ::close(synced_seq_fd_);
}

Result<std::optional<uint64_t>> RocksSnapshotStore::covered_position(const std::string& writer) {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), handles_[1], writer, &value);
  if (s.IsNotFound()) return std::optional<uint64_t>(0);
  if (!s.ok()) return map(s);
  if (value.size() != 8) return Status::io_error("corrupt covered position of " + writer + " in the snapshot store");
  return std::optional<uint64_t>(get_u64_be(value.data()));
}

Status RocksSnapshotStore::clear() {
  std::lock_guard lock(write_mu_);
  versions_.clear();
  covered_.clear();
  // Offline and once: a batch of deletes per column family is simple and bounded by the
  // number of streams (one key each). Parked commands (handles_[2]) are not derived from the
  // event store: a rebuild keeps them.
  rocksdb::ReadOptions all;
  all.total_order_seek = true;  // the snapshots' memtable hashes by key: a plain iterator stays in one key
  for (auto* h : {handles_[0], handles_[1]}) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(all, h));
    rocksdb::WriteBatch wb;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      wb.Delete(h, it->key());
      if (wb.Count() >= 10000) {
        if (auto s = db_->Write(rocksdb::WriteOptions(), &wb); !s.ok()) return map(s);
        wb.Clear();
      }
    }
    if (!it->status().ok()) return map(it->status());
    rocksdb::WriteOptions wo;
    wo.sync = true;
    if (auto s = db_->Write(wo, &wb); !s.ok()) return map(s);
  }
  return record_synced();
}

namespace {
std::string parked_key(const std::string& node, const std::string& command_id) {
  std::string k = node;
  k.push_back('\0');
  k += command_id;
  return k;
}
}  // namespace

Status RocksSnapshotStore::park(const ParkedCommand& p) {
  std::lock_guard lock(write_mu_);
  rocksdb::WriteOptions wo;
  wo.sync = true;  // a parked command lets the saga's checkpoint move past its event: durable first
  if (auto s = db_->Put(wo, handles_[2], parked_key(p.node, p.command_id), encode_parked(p)); !s.ok()) return map(s);
  return record_synced();
}

Status RocksSnapshotStore::list(const std::string& node, std::vector<ParkedCommand>* out) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), handles_[2]));
  const std::string prefix = node.empty() ? std::string() : node + std::string(1, '\0');
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    ParkedCommand p;
    if (!decode_parked(it->value().ToString(), &p))
      return Status::io_error("corrupt parked command in the snapshot store: " + it->key().ToString());
    out->push_back(std::move(p));
  }
  return map(it->status());
}

Status RocksSnapshotStore::remove(const std::string& node, const std::string& command_id) {
  std::lock_guard lock(write_mu_);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (auto s = db_->Delete(wo, handles_[2], parked_key(node, command_id)); !s.ok()) return map(s);
  return record_synced();
}

Result<Snapshot> RocksSnapshotStore::get(const std::string& stream) {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), handles_[0], stream, &value);
  if (s.IsNotFound()) return Snapshot{};
  if (!s.ok()) return map(s);
  if (value.size() < 8) return Status::io_error("corrupt snapshot for " + stream);
  return Snapshot{get_u64_be(value.data()), value.substr(8)};
}

Status RocksSnapshotStore::put(const std::vector<std::pair<std::string, Snapshot>>& entries) {
  return write(entries, nullptr, 0);
}

Status RocksSnapshotStore::put_covering(const std::vector<std::pair<std::string, Snapshot>>& entries,
                                        const std::string& writer, uint64_t position) {
  return write(entries, &writer, position);
}

Status RocksSnapshotStore::write(const std::vector<std::pair<std::string, Snapshot>>& entries,
                                 const std::string* writer, uint64_t position) {
  // Serialized so the version check and the write cannot interleave with another put.
  std::lock_guard lock(write_mu_);
  rocksdb::WriteBatch wb;
  // Written: (stream, version, its entry in versions_), in key order; a stream twice in one
  // call is adjacent after the (stable) sort, and the newest version wins. versions_ is not
  // emptied while the entries are held (it is bounded here, before them).
  struct Written {
    const std::string* stream;
    uint64_t version;
    uint64_t* cached;
  };
  std::vector<Written> in_batch;
  if (versions_.size() + entries.size() > kVersionCacheLimit) empty_keeping_capacity(versions_);
  // In key order, so consecutive memtable inserts start from the previous one's position.
  std::vector<const std::pair<std::string, Snapshot>*> sorted;
  sorted.reserve(entries.size());
  for (const auto& e : entries) sorted.push_back(&e);
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
  in_batch.reserve(sorted.size());
  for (const auto* entry : sorted) {
    const auto& [stream, snap] = *entry;
    const bool again = !in_batch.empty() && *in_batch.back().stream == stream;
    uint64_t current;
    uint64_t* cached = nullptr;
    if (again) {
      current = in_batch.back().version;
    } else {
      // One look-up whether known or not: a known version is this process's own write (the
      // DB lock makes it the only writer); an unknown one is read once.
      auto [known, fresh] = versions_.try_emplace(stream, 0);
      if (fresh) {
        auto cur = get(stream);
        if (!cur) {
          versions_.erase(known);
          return cur.status();
        }
        known->second = cur->version;
      }
      current = known->second;
      cached = &known->second;
    }
    if (snap.version <= current) continue;
    if (again) {
      in_batch.back().version = snap.version;
    } else {
      in_batch.push_back({&stream, snap.version, cached});
    }
    // The version and the state as two parts of one value: no copy of the state (a hot SKU's
    // state grows with its open orders) before the batch's own.
    std::string version;
    put_u64_be(version, snap.version);
    const rocksdb::Slice value_parts[2] = {version, snap.state};
    const rocksdb::Slice key_part(stream);
    wb.Put(handles_[0], rocksdb::SliceParts(&key_part, 1), rocksdb::SliceParts(value_parts, 2));
  }
  // The mark goes in the same batch: it never claims snapshots the disk does not hold. An
  // unchanged mark with nothing else to write is not rewritten.
  if (writer != nullptr) {
    auto known = covered_.find(*writer);
    if (wb.Count() > 0 || known == covered_.end() || known->second != position) {
      std::string value;
      put_u64_be(value, position);
      wb.Put(handles_[1], *writer, value);
    }
  }
  if (wb.Count() == 0) return Status::ok();
  rocksdb::WriteOptions wo;
  // A writer's snapshots are derived from the log and carry their mark: unsynced, a power
  // loss takes back a tail of them with the mark, and the feed delivers that gap again
  // (ChangeFeedNode moves a checkpoint back to the covered position). A sync per flush was
  // a fifth of the projection's CPU at 2,000 commands/s, and queued on the disk with the
  // group commits' syncs.
  wo.sync = sync_ && (writer == nullptr || durable_covering_.load(std::memory_order_relaxed));
  auto s = db_->Write(wo, &wb);
  if (!s.ok()) {
    versions_.clear();
    covered_.clear();
    return map(s);
  }
  if (wo.sync)
    if (auto r = record_synced(); !r) return r;
  if (writer != nullptr) covered_[*writer] = position;
  for (const auto& w : in_batch) *w.cached = w.version;
  return Status::ok();
}

}  // namespace orderflow::connectors
