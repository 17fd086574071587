// RocksDB stores (`kind: rocksdb`): the embedded default.
//
// RocksEventStore keeps the log in one DB (the store's directory), with column families:
//   log:      position (u64 big-endian)            -> stream, version, time, command id, payload
//   default:  "checkpoint/" subscriber              -> position
// and its indexes in a second DB, in the subdirectory index/:
//   index:    stream '\0' version (u64 big-endian) -> position
//   commands: command id                            -> first AppendResult
//   default:  "indexed"                             -> the position the indexes cover
// append() writes a whole group commit's log records as one WriteBatch (synced unless
// sync=false), so a batch is all-or-nothing and positions follow commit order. The log is
// the only thing the commit writer writes: the indexes trail it (a trailing index, as event
// stores built on a log keep theirs). Until the indexer thread (`of-index`) has written a
// command's entries, they live in memory (the tail), where every read looks first; the
// indexer writes them, with the "indexed" mark, in batches without a WAL (derived data), then
// drops them from the tail. Flushes of the index DB are atomic across its column families, so
// its files always hold exactly what the mark says; at open, whatever the log holds beyond the
// mark (a crash lost the index's memtables) is indexed again from the log, and an index that
// is damaged or ahead of the log is rebuilt from the whole log. A store written before the
// index moved (index and commands families in the log's DB) is reindexed once, and those
// families dropped; the log's DB then carries the family kLayoutFamily, so that an older
// binary refuses the store instead of misreading it. If the index DB cannot be written (its
// disk failing), the tail keeps serving reads and appends, health() is not ok, and at
// index_tail_limit events appends answer unavailable until the indexer writes again. A read
// that finds the index's files damaged (a block's checksum) fails, marks the index for a
// rebuild at the next open (file ORDERFLOW-REBUILD in index/), and health() says so. A failed write stops appends
// (leveldb's bg_error_) until RocksDB resumes (below), and then the version cache is refilled. Checkpoints are written without a sync of their own (a lost one
// means redelivery, which subscribers tolerate); the next group commit syncs them. Thread-safe; append() serializes on a mutex.
//
// Lost writes are refused at open. RocksDB alone cannot tell a torn last record (a kill -9
// mid-write, never acknowledged) from a live WAL cut short or deleted after acknowledged
// writes: it tracks only closed WALs in the MANIFEST. So the store keeps its own lower bound
// of what was synced, the file ORDERFLOW-SYNCED-HEAD in its directory (the position of the
// last synced group commit, written after the sync; fdatasync'ed at most once a second).
// Open fails, naming the damage and what to do, when that position or a subscriber's
// checkpoint is beyond the log's head (recovery keeps the WAL's consistent prefix, so a
// corrupt record among synced ones shows as a head behind that position, while a power
// failure's torn, unsynced tail opens), or RocksDB finds a closed WAL missing or of the
// wrong size.
//
// A write that fails for want of space or another I/O error (not corruption) makes appends
// answer kUnavailable, with no write reaching RocksDB, until DB::Resume() succeeds (tried
// by the next append at most every 500 ms; it flushes the memtables to a fresh WAL, so the
// failed write can never reappear; for NoSpace, RocksDB's SstFileManager also recovers by
// itself, polling free space every 5 s, and Resume answers Busy meanwhile). An error RocksDB
// cannot resume from stays, as kIoError.
//
// RocksSnapshotStore: stream -> (version, state) in its own DB; in a column family of its own
// ("covered"), writer -> the feed position its snapshots cover, written in the same
// WriteBatch as the snapshots (SnapshotStore::put_covering). put() syncs; put_covering() does
// not: a power loss may take back its newest batches, marks included, and the change feed
// then delivers those events again (a checkpoint ahead of the covered position moves back).
// A writer whose feed cannot do that (no global positions: Cosmos DB leases) asks for synced
// covering writes (require_durable_covering). The WAL recovers to its last consistent point
// (kPointInTimeRecovery); the sequence number of the last synced write, in the file
// ORDERFLOW-SYNCED-SEQUENCE, makes an open that recovered less than that (a damaged WAL) fail. Parked commands
// (ParkingStore) in a third family ("parked"), node '\0' command id -> encode_parked(),
// synced writes; clear() (a projection rebuild) leaves them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <absl/container/flat_hash_map.h>
#include <absl/container/node_hash_map.h>

#include "graph/store.h"

namespace rocksdb {
class DB;
class Status;
class ColumnFamilyHandle;
class Env;
}  // namespace rocksdb

namespace orderflow::connectors {

struct RocksOptions {
  std::string path;          // directory, created if missing
  bool sync = true;          // fsync each group commit (default true: acknowledged = durable)
  // The Env (and so FileSystem) RocksDB uses; default (null) the process's. Tests pass one
  // over a fault-injecting rocksdb::FileSystemWrapper. Kept alive by the store.
  std::shared_ptr<rocksdb::Env> env = nullptr;
  // Streams whose current version the event store keeps in memory (forgotten all at once
  // when full, then looked up again). Tests make it small to exercise the look-ups.
  size_t version_cache = size_t{1} << 20;
  // The event store's index DB: bytes of each memtable (what a crash makes the next open
  // index again), and the most events the tail may hold before appends wait for the indexer
  // (and, while its writes fail, answer unavailable). Tests make both small.
  size_t index_memtable_bytes = size_t{32} << 20;
  size_t index_tail_limit = size_t{1} << 20;
};

// The family the log's DB carries from the layout with the trailing index on: a binary that
// predates it (and would recreate the index families empty, then accept version 1 again on
// existing streams) fails to open such a store ("Column families not opened"), naming it.
inline constexpr const char* kLayoutFamily = "orderflow-layout-2-needs-orderflow-of-2026-12-02-or-later";

// The file in an event store's directory holding the last synced head (see RocksEventStore).
inline constexpr const char* kSyncedHeadFile = "ORDERFLOW-SYNCED-HEAD";
// The file in a snapshot store's directory holding the sequence number of its last synced
// write (see RocksSnapshotStore).
inline constexpr const char* kSyncedSequenceFile = "ORDERFLOW-SYNCED-SEQUENCE";

class RocksEventStore final : public EventStore, public ChangeFeed {
 public:
  static Result<std::unique_ptr<RocksEventStore>> open(const RocksOptions& options);
  ~RocksEventStore() override;

  std::vector<AppendResult> append(const std::vector<AppendRequest>& batch) override;
  Status read_stream(const std::string& stream, uint64_t from_version,
                     std::vector<RecordedEvent>* out) override;
  Result<std::optional<AppendResult>> find_command(const std::string& command_id) override;
  Result<uint64_t> stream_version(const std::string& stream) override;
  bool finds_repeats_on_append() const override { return true; }  // plan_append looks each id up
  bool syncs_each_append() const override { return sync_; }

  Status read(uint64_t after, size_t max, std::vector<RecordedEvent>* out) override;
  uint64_t head() override { return head_.load(std::memory_order_acquire); }
  void wait(uint64_t after, std::chrono::milliseconds timeout) override;
  Result<uint64_t> load_checkpoint(const std::string& subscriber) override;
  Status save_checkpoint(const std::string& subscriber, uint64_t position) override;
  // Not ok while writes are stopped (disk full: unavailable until RocksDB resumes; a fatal
  // error for good). Never blocks; when a resume is due and no append is under way it tries
  // one, so an instance that readiness took out of rotation still comes back by itself.
  Status health() const override;
  // The position the index DB covers; the tail in memory holds the entries after it. For
  // tests and diagnostics: readers never need it.
  uint64_t indexed() const { return indexed_.load(std::memory_order_acquire); }

 private:
  // One appended command as the indexes record it: its events are consecutive in the log.
  struct IndexedCommand {
    std::string stream;
    std::string command_id;
    std::string result;  // encode_result of its first (and only) AppendResult
    uint64_t first_version = 0;
    uint64_t last_version = 0;
    uint64_t first_position = 0;
    uint64_t last_position = 0;
  };
  struct StreamRange {
    uint64_t first_version, last_version, first_position;
  };

  RocksEventStore() = default;
  Status open_index(const std::string& path, bool legacy);
  Status reindex(uint64_t from);
  rocksdb::Status write_index(const std::vector<IndexedCommand>& commands, uint64_t through);
  void indexer_loop();
  void stop_indexer();
  // The stream's stored version, from versions_ (a miss is looked up and cached there);
  // `slot`, when given, points at its entry. Called with write_mu_ held.
  Result<uint64_t> lookup_version(const std::string& stream, uint64_t** slot = nullptr);
  Result<uint64_t> find_version(const std::string& stream);  // the tail, then the index DB
  Status wait_for_tail_room();
  // The stored results of the batch's command ids (id -> encoded result; absent: new), the
  // tail first, then one MultiGet on the index DB. Called with write_mu_ held.
  Result<absl::flat_hash_map<std::string_view, std::string>> find_commands(const std::vector<AppendRequest>& batch);
  // A command's stored result (`value` as the commands family holds it), decoded.
  static Result<std::optional<AppendResult>> stored_result(const std::string& command_id, const std::string& value);
  Status index_read_failed(const rocksdb::Status& s);
  Status verify_nothing_lost(const std::string& path);
  void write_failed(const std::string& what, const void* rocks_status);
  void try_resume();
  void record_synced_head(uint64_t head, bool force_sync);

  std::shared_ptr<rocksdb::Env> env_;  // outlives db_ (declared first, destroyed last)
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // default, log, layout (then legacy families, dropped at open)
  std::unique_ptr<rocksdb::DB> index_db_;
  std::vector<rocksdb::ColumnFamilyHandle*> index_handles_;  // default (the mark), index, commands
  bool sync_ = true;
  mutable std::mutex write_mu_;                         // serializes append()
  Status bg_error_;                                     // guarded by write_mu_
  std::chrono::steady_clock::time_point next_resume_;   // guarded by write_mu_
  absl::node_hash_map<std::string, uint64_t> versions_;  // guarded by write_mu_; bounded cache
  size_t version_cache_ = size_t{1} << 20;              // bound of versions_
  std::atomic<uint64_t> head_{0};
  std::atomic<uint64_t> indexed_{0};
  int synced_head_fd_ = -1;                             // guarded by write_mu_ (after open)
  std::chrono::steady_clock::time_point synced_head_flushed_;  // guarded by write_mu_
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;

  // The tail: appended commands the index DB does not hold yet. Readers look here first, then
  // in the index DB (an entry leaves the tail only after its index write).
  std::mutex tail_mu_;
  std::condition_variable index_cv_;                                       // wakes the indexer
  std::vector<IndexedCommand> pending_;                                    // guarded by tail_mu_, commit order
  size_t pending_events_ = 0;                                              // guarded by tail_mu_
  size_t inflight_events_ = 0;  // guarded by tail_mu_: events of the batch the indexer is writing
  absl::node_hash_map<std::string, std::vector<StreamRange>> tail_streams_;  // guarded by tail_mu_
  absl::node_hash_map<std::string, std::string> tail_commands_;            // guarded by tail_mu_: id -> result
  bool stop_indexer_ = false;                                              // guarded by tail_mu_
  std::condition_variable indexed_cv_;  // appends waiting for a tail over its limit
  size_t tail_limit_ = size_t{1} << 20;
  size_t index_memtable_bytes_ = size_t{32} << 20;
  std::string index_error_;  // guarded by tail_mu_: why the indexer's writes fail; empty when they work
  std::string index_damage_;  // guarded by tail_mu_: a read found the index's files damaged
  std::string index_dir_;
  std::thread indexer_;
};

class RocksSnapshotStore final : public SnapshotStore, public ParkingStore {
 public:
  static Result<std::unique_ptr<RocksSnapshotStore>> open(const RocksOptions& options);
  ~RocksSnapshotStore() override;

  Result<Snapshot> get(const std::string& stream) override;
  Status put(const std::vector<std::pair<std::string, Snapshot>>& entries) override;
  Status put_covering(const std::vector<std::pair<std::string, Snapshot>>& entries, const std::string& writer,
                      uint64_t position) override;
  void require_durable_covering() override { durable_covering_ = true; }
  Result<std::optional<uint64_t>> covered_position(const std::string& writer) override;
  Status clear() override;

  Status park(const ParkedCommand& p) override;
  Status list(const std::string& node, std::vector<ParkedCommand>* out) override;
  Status remove(const std::string& node, const std::string& command_id) override;

 private:
  RocksSnapshotStore() = default;
  std::shared_ptr<rocksdb::Env> env_;  // outlives db_ (declared first, destroyed last)
  Status verify_synced(const std::string& path);
  Status record_synced();
  Status write(const std::vector<std::pair<std::string, Snapshot>>& entries, const std::string* writer,
               uint64_t position);
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // default (snapshots), covered, parked
  bool sync_ = true;
  std::mutex write_mu_;
  absl::node_hash_map<std::string, uint64_t> versions_;  // guarded by write_mu_: stored versions, bounded
  std::unordered_map<std::string, uint64_t> covered_;   // guarded by write_mu_: marks as last written
  std::atomic<bool> durable_covering_{false};
  int synced_seq_fd_ = -1;                              // guarded by write_mu_ (after open)
};

// The one place RocksDB statuses become orderflow statuses.
Status from_rocks(const void* rocks_status);

}  // namespace orderflow::connectors
