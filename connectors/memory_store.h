// In-memory EventStore + ChangeFeed + SnapshotStore (`kind: memory`) for tests and
// benchmarks. Same semantics as the RocksDB store, nothing durable. Thread-safe (one
// mutex); owned by the StoreSet that opened it.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <unordered_map>

#include "graph/store.h"

namespace orderflow::connectors {

class MemoryEventStore final : public EventStore, public ChangeFeed {
 public:
  std::vector<AppendResult> append(const std::vector<AppendRequest>& batch) override;
  Status read_stream(const std::string& stream, uint64_t from_version,
                     std::vector<RecordedEvent>* out) override;
  Result<std::optional<AppendResult>> find_command(const std::string& command_id) override;
  Result<uint64_t> stream_version(const std::string& stream) override;

  Status read(uint64_t after, size_t max, std::vector<RecordedEvent>* out) override;
  uint64_t head() override;
  void wait(uint64_t after, std::chrono::milliseconds timeout) override;
  Result<uint64_t> load_checkpoint(const std::string& subscriber) override;
  Status save_checkpoint(const std::string& subscriber, uint64_t position) override;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<RecordedEvent> log_;                                  // position = index + 1
  std::unordered_map<std::string, std::vector<uint64_t>> streams_;  // stream -> positions
  std::unordered_map<std::string, AppendResult> commands_;
  std::map<std::string, uint64_t> checkpoints_;
};

class MemorySnapshotStore final : public SnapshotStore {
 public:
  Result<Snapshot> get(const std::string& stream) override;
  Status put(const std::vector<std::pair<std::string, Snapshot>>& entries) override;

 private:
  std::mutex mu_;
  std::unordered_map<std::string, Snapshot> map_;
};

}  // namespace orderflow::connectors
