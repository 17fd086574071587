// In-memory EventStore + ChangeFeed + SnapshotStore (`kind: memory`) for tests and
// benchmarks. Same semantics as the RocksDB store, nothing durable. Thread-safe (one
// mutex); owned by the StoreSet that opened it.
#pragma once

#include <array>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>

#include <absl/container/node_hash_map.h>

#include "graph/store.h"

namespace orderflow::connectors {

// A hash map split into 64 independent tables, so growing never rehashes more than a
// 64th of the entries at once (one big rehash under the store's mutex stalled every lane
// and the writer for tens of milliseconds).
template <typename V>
class ShardedMap {
 public:
  V* find(const std::string& key) {
    auto& m = shard(key);
    auto it = m.find(key);
    return it == m.end() ? nullptr : &it->second;
  }
  V& operator[](const std::string& key) { return shard(key)[key]; }

 private:
  absl::node_hash_map<std::string, V>& shard(const std::string& key) {
    return shards_[std::hash<std::string>()(key) >> 58];  // the top bits: Abseil hashes again
  }
  // Abseil's node table: one allocation per entry (not two) and no bucket array to chase;
  // the values stay where they are, as find() callers expect while the lock is held.
  std::array<absl::node_hash_map<std::string, V>, 64> shards_;
};

class MemoryEventStore final : public EventStore, public ChangeFeed {
 public:
  std::vector<AppendResult> append(const std::vector<AppendRequest>& batch) override;
  Status read_stream(const std::string& stream, uint64_t from_version,
                     std::vector<RecordedEvent>* out) override;
  Result<std::optional<AppendResult>> find_command(const std::string& command_id) override;
  Result<uint64_t> stream_version(const std::string& stream) override;
  bool finds_repeats_on_append() const override { return true; }  // plan_append looks each id up

  Status read(uint64_t after, size_t max, std::vector<RecordedEvent>* out) override;
  uint64_t head() override;
  void wait(uint64_t after, std::chrono::milliseconds timeout) override;
  Result<uint64_t> load_checkpoint(const std::string& subscriber) override;
  Status save_checkpoint(const std::string& subscriber, uint64_t position) override;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  // A deque and sharded maps: growing a vector or rehashing a map of a few hundred
  // thousand entries under mu_ stalled every lane and the writer for 10-50 ms (seen as
  // latency spikes in `orderflow bench --rate`).
  std::deque<RecordedEvent> log_;                       // position = index + 1
  ShardedMap<std::vector<uint64_t>> streams_;           // stream -> positions
  ShardedMap<AppendResult> commands_;
  std::map<std::string, uint64_t> checkpoints_;
};

// Also keeps parked commands (ParkingStore), apart from the snapshots: clear() keeps them.
class MemorySnapshotStore final : public SnapshotStore, public ParkingStore {
 public:
  Result<Snapshot> get(const std::string& stream) override;
  Status put(const std::vector<std::pair<std::string, Snapshot>>& entries) override;
  Status put_covering(const std::vector<std::pair<std::string, Snapshot>>& entries, const std::string& writer,
                      uint64_t position) override;
  Result<std::optional<uint64_t>> covered_position(const std::string& writer) override;
  Status clear() override;

  Status park(const ParkedCommand& p) override;
  Status list(const std::string& node, std::vector<ParkedCommand>* out) override;
  Status remove(const std::string& node, const std::string& command_id) override;

 private:
  void put_locked(const std::vector<std::pair<std::string, Snapshot>>& entries);
  std::mutex mu_;
  ShardedMap<Snapshot> map_;
  std::map<std::string, uint64_t> covered_;  // guarded by mu_: writer -> feed position
  std::map<std::pair<std::string, std::string>, ParkedCommand> parked_;  // guarded by mu_
};

}  // namespace orderflow::connectors
