// Store interfaces the graph sees: EventStore, ChangeFeed, SnapshotStore.
//
// Payloads are opaque bytes (serialized protobuf events and states): the stores know
// streams, versions, positions and command ids, not the domain. Implementations live in
// connectors/ (RocksDB, memory; later Cosmos DB) and are chosen by the graph YAML.
// All implementations are safe for concurrent use by multiple threads; the pipeline
// calls EventStore::append from a single group-commit writer thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graph/status.h"

namespace google::protobuf {
class Message;
}

namespace orderflow {

// One command's events, appended atomically if the stream is at expected_version.
struct AppendRequest {
  std::string stream;
  uint64_t expected_version = 0;        // version the events were decided on; 0 = new stream
  std::string command_id;               // idempotency key
  std::vector<std::string> events;      // at least one payload
  // Speculative decision chain (0 = none). A command lane decides later commands of a
  // stream on state that includes earlier, not yet committed ones; if one of those fails
  // (conflict, duplicate, error), every later request of the same stream with a chain id
  // <= its chain fails as a conflict too, even where the version happens to match.
  uint64_t chain = 0;
  // An earlier request of this chain failed in an earlier group: this one fails as a
  // conflict as well, unless its command id names a written command of its stream (then it
  // answers as that command's duplicate, like any repeat).
  bool chain_failed = false;
  // A check instead of a write (events empty): the stream must be at expected_version and
  // nothing is written. A command lane sends one for a rejection it decided on cached state
  // when other processes may write the store (EventStore::shared): ok means the rejection
  // was decided on the stream's current version; kConflict means it must be re-decided. A
  // command id the store already holds answers as a duplicate (the rejection was of a
  // repeat, decided on state that holds the first one's events).
  bool verify_only = false;
};

struct AppendResult {
  Status status;                        // ok, kConflict, kIoError, kInvalidArgument
  bool duplicate = false;               // command id seen before: fields describe the first result
  std::string stream;
  uint64_t first_version = 0;           // versions written (inclusive)
  uint64_t last_version = 0;
  uint64_t first_position = 0;          // global positions written (inclusive)
  uint64_t last_position = 0;
  uint64_t actual_version = 0;          // the stream's version when status is kConflict
};

struct RecordedEvent {
  std::string stream;
  uint64_t version = 0;                 // 1-based within the stream
  uint64_t position = 0;                // 1-based, global commit order
  int64_t committed_at_us = 0;          // wall clock at commit, microseconds since epoch
  std::string command_id;
  std::string payload;
  // The payload decoded, when the change feed that delivered the event decoded it (once for
  // all its subscribers, see ChangeFeedNode); null from a store's own reads, and for a
  // payload the domain cannot decode.
  std::shared_ptr<const google::protobuf::Message> event;
};

class EventStore {
 public:
  virtual ~EventStore() = default;

  // Appends every request in one durable write (group commit): each request is checked
  // against the stream's version and the command-id index, including earlier requests of
  // the same batch. Results are in request order. Returns only after the write is durable
  // (synced when the store is configured so); on an I/O error every result carries it.
  virtual std::vector<AppendResult> append(const std::vector<AppendRequest>& batch) = 0;

  // Events of `stream` with version >= from_version, in version order.
  virtual Status read_stream(const std::string& stream, uint64_t from_version,
                             std::vector<RecordedEvent>* out) = 0;

  // The first result recorded for `command_id`, if any.
  virtual Result<std::optional<AppendResult>> find_command(const std::string& command_id) = 0;
  // The same, for a caller that knows the command's stream (the command lanes): a store
  // partitioned by stream (Cosmos DB) then looks in that one partition instead of all.
  // A command id belongs to one stream (the command names it), so both answer alike.
  virtual Result<std::optional<AppendResult>> find_command_in(const std::string& stream,
                                                              const std::string& command_id) {
    (void)stream;
    return find_command(command_id);
  }

  // Current version of a stream (0 = absent).
  virtual Result<uint64_t> stream_version(const std::string& stream) = 0;

  // True when processes other than this one may append to the store (Cosmos DB): a cached
  // stream state can then be behind the store without this process knowing, so decisions
  // that write nothing are verified (AppendRequest::verify_only). False (the default) for a
  // store only this process writes (RocksDB holds a lock on its directory; memory).
  virtual bool shared() const { return false; }

  // True when append() itself finds a repeated command id (every store here: plan_append
  // looks each id up while it plans the write; Cosmos DB also has a unique key), so command
  // lanes skip a find_command_in() per command before deciding and leave repeats to the
  // append, and to a version check (AppendRequest::verify_only) for a rejection: a repeat of
  // a written command is answered with the first result either way.
  virtual bool finds_repeats_on_append() const { return false; }

  // True when every append() ends with a sync to a local disk (RocksDB with sync on), whose
  // cost is per call, not per command: the commit node then spaces its writes under load
  // (commit param `write_interval_us`, auto) so a sync carries more commands.
  virtual bool syncs_each_append() const { return false; }

  // Whether the store can serve now, as its latest operations found it (no I/O): not ok,
  // with the reason, while it is unreachable or damaged. Readiness reports it.
  virtual Status health() const { return Status::ok(); }
};

// Committed events in global position order, from per-subscriber checkpoints.
class ChangeFeed {
 public:
  virtual ~ChangeFeed() = default;

  // The feed one subscriber reads, from its start until the process ends. A store with
  // global positions (RocksDB, memory) returns itself. A store without them (Cosmos DB,
  // whose change feed is per partition key range) returns a per-subscriber view whose
  // positions are synthetic and process-local: valid only with that view, starting from
  // the subscriber's persisted checkpoint (load_checkpoint returns 0 then). Owned by this
  // feed and lives as long as it.
  virtual Result<ChangeFeed*> subscribe(const std::string& subscriber) {
    (void)subscriber;
    return this;
  }

  // True when positions are global and persistent (RocksDB, memory): a position kept
  // elsewhere (a subscriber's output, SnapshotStore::covered_position) can be compared with
  // head() and the checkpoints. False for per-subscriber views with synthetic positions.
  virtual bool global_positions() const { return true; }

  // Up to `max` events with position > after, in position order.
  virtual Status read(uint64_t after, size_t max, std::vector<RecordedEvent>* out) = 0;
  // Position of the last committed event (0 = empty).
  virtual uint64_t head() = 0;
  // Blocks until head() > after or the timeout passes.
  virtual void wait(uint64_t after, std::chrono::milliseconds timeout) = 0;

  virtual Result<uint64_t> load_checkpoint(const std::string& subscriber) = 0;
  virtual Status save_checkpoint(const std::string& subscriber, uint64_t position) = 0;
};

struct Snapshot {
  uint64_t version = 0;                 // 0 = absent
  std::string state;
};

class SnapshotStore {
 public:
  virtual ~SnapshotStore() = default;

  virtual Result<Snapshot> get(const std::string& stream) = 0;
  // Writes every entry whose version is newer than the stored one, in one write; an
  // entry at or below the stored version is skipped (re-applying is a no-op).
  virtual Status put(const std::vector<std::pair<std::string, Snapshot>>& entries) = 0;

  // As put(), and records in the same atomic write that `writer` (a change-feed subscriber,
  // the projection) has folded every event up to feed position `position` into this store.
  // Stored with the snapshots themselves, the mark is lost exactly when they are (a
  // restored older copy, a WAL tail gone, a wiped directory), so at start a writer whose
  // feed checkpoint is ahead of its mark is known to be behind and replays the gap. The
  // default, for a store that cannot keep it, writes the entries only.
  virtual Status put_covering(const std::vector<std::pair<std::string, Snapshot>>& entries,
                              const std::string& writer, uint64_t position) {
    (void)writer;
    (void)position;
    return put(entries);
  }
  // Asked by a writer whose change feed cannot replay what a lost tail of this store held
  // (a feed without global positions, so no covered mark to move back to): from now on
  // put_covering() is as durable as put(). Default: nothing to do (every write durable).
  virtual void require_durable_covering() {}
  // The position put_covering() last recorded for `writer`: 0 when none was (an empty or a
  // new store, whose writer must then replay from the start); nullopt when this store keeps
  // no marks (the default; Cosmos DB, whose feed positions are process-local).
  virtual Result<std::optional<uint64_t>> covered_position(const std::string& writer) {
    (void)writer;
    return std::optional<uint64_t>();
  }
  // Removes every snapshot and mark (a projection rebuilt from the event store): offline, or
  // on a running server while every projection that writes the store is paused (readers,
  // the command lanes, may read meanwhile: a missing snapshot means "fold the events").
  virtual Status clear() { return Status::invalid_argument("this snapshot store cannot be cleared offline"); }

  // As EventStore::health.
  virtual Status health() const { return Status::ok(); }
};

// A process manager's reaction that kept failing while other reactions succeeded (a poison
// command), kept so that its event's checkpoint can move on without losing it (SagaNode,
// `parked:`). Replayed by the admin API, which resubmits `command` with its own id.
struct ParkedCommand {
  std::string node;                     // the saga that parked it
  std::string command_id;               // the command's own (deterministic) id
  std::string command_name;             // Domain::command_name, e.g. reserveStock
  std::string stream;                   // the stream the command writes
  std::string command;                  // the serialized domain command
  std::string event_stream;             // the event it reacted to
  uint64_t event_version = 0;
  uint64_t event_position = 0;
  std::string reason;                   // starts with kParkedReasonPrefix; the last error
  uint64_t attempts = 0;                // failures before it was parked
  int64_t parked_at_ms = 0;             // wall clock, milliseconds since epoch
};

// The start of every parked reason (the Kafka source's dead letters use the same words).
inline constexpr const char* kParkedReasonPrefix = "parked after ";

// Encoding of a ParkedCommand as bytes (for stores that keep it as one value).
std::string encode_parked(const ParkedCommand& p);
bool decode_parked(const std::string& bytes, ParkedCommand* out);

// Durable home of parked commands, keyed by (node, command id). Implemented by the rocksdb
// snapshot store (a column family of its own, which a projection rebuild does not clear) and
// the memory one. Thread-safe.
class ParkingStore {
 public:
  virtual ~ParkingStore() = default;
  // Durable (synced) on return; replaces a record with the same node and command id.
  virtual Status park(const ParkedCommand& p) = 0;
  // Every record of `node` ("" = of every node), in command id order.
  virtual Status list(const std::string& node, std::vector<ParkedCommand>* out) = 0;
  // Removing an absent record is ok.
  virtual Status remove(const std::string& node, const std::string& command_id) = 0;
};

// What the admin API sees of a node that parks commands (SagaNode with `parked:`).
struct ReplayOutcome {
  std::string command_id;
  Status status;                        // the final outcome, or why it was kept
  bool removed = false;                 // a final outcome (written, duplicate, rejected): record gone
  std::string outcome;                  // "committed", "duplicate", "rejected", "failed"
};
class ParkingControl {
 public:
  virtual ~ParkingControl() = default;
  virtual const std::string& parking_node_id() const = 0;
  virtual Status parked(std::vector<ParkedCommand>* out) = 0;
  // Resubmits one parked command (its own id) through the node's output and waits up to
  // `timeout` for its outcome; removes the record when the outcome is final. kNotFound when
  // no such record.
  virtual ReplayOutcome replay(const std::string& command_id, std::chrono::milliseconds timeout) = 0;
};

}  // namespace orderflow

namespace orderflow {

class MetricsRegistry;

// Hands out the stores named under `stores:` in a graph definition, by role. Owned by
// whoever opened them (connectors::StoreSet); outlives the pipeline that uses them.
class StoreProvider {
 public:
  virtual ~StoreProvider() = default;
  virtual Result<EventStore*> event_store(const std::string& name) = 0;
  virtual Result<ChangeFeed*> change_feed(const std::string& name) = 0;
  virtual Result<SnapshotStore*> snapshot_store(const std::string& name) = 0;
  // The parking side of a snapshot store (the same store: a snapshot store of a kind that
  // can keep parked commands).
  virtual Result<ParkingStore*> parking_store(const std::string& name) {
    return Status::invalid_argument("store '" + name + "' cannot keep parked commands");
  }
  // Stores that keep their own figures (Cosmos request units, throttles) register probes
  // in the pipeline's registry; called by the builder before any store is used.
  virtual void attach_metrics(MetricsRegistry& registry) { (void)registry; }
};

}  // namespace orderflow
