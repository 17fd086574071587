#include "connectors/memory_store.h"

#include "connectors/append_plan.h"

namespace orderflow::connectors {

std::vector<AppendResult> MemoryEventStore::append(const std::vector<AppendRequest>& batch) {
  std::vector<AppendResult> results;
  {
    std::lock_guard lock(mu_);
    AppendLookups lookups{
        [this](const std::string& id) -> Result<std::optional<AppendResult>> {
          const AppendResult* r = commands_.find(id);
          return r == nullptr ? std::optional<AppendResult>() : std::optional<AppendResult>(*r);
        },
        [this](const std::string& stream) -> Result<uint64_t> {
          const auto* positions = streams_.find(stream);
          return positions == nullptr ? uint64_t{0} : uint64_t{positions->size()};
        }};
    auto plan = plan_append(batch, log_.size(), lookups, results);
    const int64_t at = now_us();
    for (const auto& p : plan) {
      const AppendRequest& req = batch[p.request];
      auto& positions = streams_[req.stream];
      for (size_t k = 0; k < req.events.size(); ++k) {
        log_.push_back({req.stream, p.first_version + k, p.first_position + k, at, req.command_id,
                        req.events[k], nullptr});
        positions.push_back(p.first_position + k);
      }
      commands_[req.command_id] = results[p.request];
    }
  }
  cv_.notify_all();
  return results;
}

Status MemoryEventStore::read_stream(const std::string& stream, uint64_t from_version,
                                     std::vector<RecordedEvent>* out) {
  std::lock_guard lock(mu_);
  const auto* positions = streams_.find(stream);
  if (positions == nullptr) return Status::ok();
  for (uint64_t v = std::max<uint64_t>(from_version, 1); v <= positions->size(); ++v)
    out->push_back(log_[(*positions)[v - 1] - 1]);
  return Status::ok();
}

Result<std::optional<AppendResult>> MemoryEventStore::find_command(const std::string& command_id) {
  std::lock_guard lock(mu_);
  const AppendResult* r = commands_.find(command_id);
  return r == nullptr ? std::optional<AppendResult>() : std::optional<AppendResult>(*r);
}

Result<uint64_t> MemoryEventStore::stream_version(const std::string& stream) {
  std::lock_guard lock(mu_);
  const auto* positions = streams_.find(stream);
  return positions == nullptr ? uint64_t{0} : uint64_t{positions->size()};
}

Status MemoryEventStore::read(uint64_t after, size_t max, std::vector<RecordedEvent>* out) {
  // Only the addresses are taken under the lock: logged events never change, and a deque
  // keeps its elements in place as it grows, so they are copied after it is released
  // (copying a batch of 512 under the lock held the lanes and the writer back).
  std::vector<const RecordedEvent*> events;
  {
    std::lock_guard lock(mu_);
    for (uint64_t p = after + 1; p <= log_.size() && events.size() < max; ++p) events.push_back(&log_[p - 1]);
  }
  out->reserve(out->size() + events.size());
  for (const auto* e : events) out->push_back(*e);
  return Status::ok();
}

uint64_t MemoryEventStore::head() {
  std::lock_guard lock(mu_);
  return log_.size();
}

void MemoryEventStore::wait(uint64_t after, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return log_.size() > after; });
}

Result<uint64_t> MemoryEventStore::load_checkpoint(const std::string& subscriber) {
  std::lock_guard lock(mu_);
  auto it = checkpoints_.find(subscriber);
  return it == checkpoints_.end() ? uint64_t{0} : it->second;
}

Status MemoryEventStore::save_checkpoint(const std::string& subscriber, uint64_t position) {
  std::lock_guard lock(mu_);
  checkpoints_[subscriber] = position;
  return Status::ok();
}

Result<Snapshot> MemorySnapshotStore::get(const std::string& stream) {
  std::lock_guard lock(mu_);
  const Snapshot* snap = map_.find(stream);
  return snap == nullptr ? Snapshot{} : *snap;
}

Status MemorySnapshotStore::put(const std::vector<std::pair<std::string, Snapshot>>& entries) {
  std::lock_guard lock(mu_);
  put_locked(entries);
  return Status::ok();
}

void MemorySnapshotStore::put_locked(const std::vector<std::pair<std::string, Snapshot>>& entries) {
  for (const auto& [stream, snap] : entries) {
    auto& cur = map_[stream];
    if (snap.version > cur.version) cur = snap;
  }
}

Status MemorySnapshotStore::put_covering(const std::vector<std::pair<std::string, Snapshot>>& entries,
                                         const std::string& writer, uint64_t position) {
  std::lock_guard lock(mu_);
  put_locked(entries);
  covered_[writer] = position;
  return Status::ok();
}

Result<std::optional<uint64_t>> MemorySnapshotStore::covered_position(const std::string& writer) {
  std::lock_guard lock(mu_);
  auto it = covered_.find(writer);
  return std::optional<uint64_t>(it == covered_.end() ? 0 : it->second);
}

Status MemorySnapshotStore::clear() {
  std::lock_guard lock(mu_);
  map_ = ShardedMap<Snapshot>();
  covered_.clear();
  return Status::ok();
}

Status MemorySnapshotStore::park(const ParkedCommand& p) {
  std::lock_guard lock(mu_);
  parked_[{p.node, p.command_id}] = p;
  return Status::ok();
}

Status MemorySnapshotStore::list(const std::string& node, std::vector<ParkedCommand>* out) {
  std::lock_guard lock(mu_);
  for (const auto& [key, p] : parked_)
    if (node.empty() || key.first == node) out->push_back(p);
  return Status::ok();
}

Status MemorySnapshotStore::remove(const std::string& node, const std::string& command_id) {
  std::lock_guard lock(mu_);
  parked_.erase({node, command_id});
  return Status::ok();
}

}  // namespace orderflow::connectors
