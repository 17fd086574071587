// The unit of work that flows through the pipeline: one command, its decision, its
// completion. Created by a source, owned by shared_ptr while it travels (TBB copies the
// pointer between nodes); `done` is called exactly once, from whichever thread finishes
// the command (a lane for rejections, else the commit node's completer thread, or its
// writer for a small group). It must not block: later commands wait behind it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "graph/domain.h"
#include "graph/pipeline.h"
#include "graph/status.h"
#include "graph/store.h"

namespace orderflow {

struct Outcome {
  // ok (written or duplicate), kRejected (domain said no; nothing written), kConflict
  // (retries exhausted), kUnavailable / kIoError (store trouble; nothing acknowledged).
  Status status;
  bool duplicate = false;
  AppendResult result;                 // stream, versions and positions written
  const std::vector<MessagePtr>* events = nullptr;  // the events written (not for duplicates)
};

using Completion = std::function<void(const Outcome&)>;

struct Envelope;

// A command lane's entry for one stream (nodes/nodes.h, LaneGroupNode): the state its
// decisions build on, and how many of them commit has not yet settled.
struct LaneStream {
  MessagePtr state;    // null once invalidated while decisions were pending: reloaded
  uint64_t chain = 0;  // unique per load: decisions on this speculative chain share it
  int pending = 0;     // decisions sent to commit, not yet settled
};

// What admitted an envelope into a pipeline (its route), told once when the envelope is
// completed, after its `done`: frees its place under the in-flight limit. A pointer in the
// envelope instead of a completion wrapped around the source's: no allocation per command.
class Admission {
 public:
  virtual ~Admission() = default;
  virtual void release(const Envelope& envelope) = 0;
};

struct Envelope {
  MessagePtr command;                  // a message of the domain's command type
  // Domain::command_id(command): set on submit, points into `command` (never changed after).
  const std::string* command_id_ref = nullptr;
  const std::string& command_id() const { return *command_id_ref; }
  std::string stream;                  // Domain::stream_of(command), set on submit
  uint64_t ingest_ns = 0;              // steady clock, for latency
  // Steady clock; 0 = none. A command still undecided (or decided but not yet written) when
  // it passes is dropped, never executed, and completed as kUnavailable; its client has
  // given up by then (the HTTP source answers 504 at the deadline).
  uint64_t deadline_ns = 0;
  // Where its latency went (steady clock; set only while metrics are on, see
  // NodeProbe::enabled; `orderflow bench` reports them): its last decision started,
  // it was queued for commit, its group's write started, the write was durable.
  uint64_t decide_ns = 0, queued_ns = 0, write_ns = 0, written_ns = 0;
  int attempts = 0;                    // decisions so far (conflicts re-decide)
  uint32_t lane = 0;
  Completion done;
  Admission* admitted = nullptr;       // set by the route that took it; released after `done`

  // Filled by the lane.
  uint64_t expected_version = 0;
  uint64_t chain = 0;                  // generation of the lane's cached state it was decided on
  // Its stream's lane entry while the decision is pending (counted in lane_stream->pending,
  // which keeps the entry); null once settled.
  LaneStream* lane_stream = nullptr;
  std::vector<MessagePtr> events;
  std::vector<std::string> payloads;   // serialized events
  // Not ok: the lane rejected the command on cached state of a shared store, and commit
  // checks that state's version (AppendRequest::verify_only) before the rejection counts.
  Status rejection;

  bool expired(uint64_t now_ns) const { return deadline_ns != 0 && now_ns > deadline_ns; }

  // Calls `done` (if any), then releases the admission; at most once.
  void complete(const Outcome& o) {
    if (!done && admitted == nullptr) return;
    auto d = std::move(done);
    done = nullptr;
    Admission* a = admitted;
    admitted = nullptr;
    if (d) d(o);
    if (a != nullptr) a->release(*this);
  }
};

using EnvelopePtr = std::shared_ptr<Envelope>;
// The unit of flow between route, lanes and commit (DESIGN.md, Core v2): one TBB message,
// one queue operation per batch of commands, not per command. Shared, because TBB copies
// messages between nodes; the vector itself is never copied.
using EnvelopeBatch = std::vector<EnvelopePtr>;
using BatchPtr = std::shared_ptr<EnvelopeBatch>;

inline uint64_t steady_ns() {
  return static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}

// Where sources put commands. Thread-safe. submit() fails with kUnavailable when the
// pipeline is at its in-flight limit or stopping (the caller answers 429/503 or retries),
// and with kInvalidArgument when the command is malformed; on failure `done` is not called.
class CommandSink {
 public:
  virtual ~CommandSink() = default;
  virtual Status submit(EnvelopePtr envelope) = 0;
  // Several commands at once (a source's poll, a process manager's reactions to a batch of
  // events): one admission and one hand-over per lane instead of one per command. Either
  // takes every envelope (the batch is cleared; a malformed one is completed with
  // kInvalidArgument instead of refused) or, at the in-flight limit or while stopping,
  // none (kUnavailable, the batch untouched). Commands of one stream keep their order.
  virtual Status submit_batch(EnvelopeBatch& batch) = 0;
  virtual int64_t in_flight() const = 0;
  virtual int64_t max_in_flight() const = 0;
};

// Convenience for sources: builds an envelope around a command.
EnvelopePtr make_envelope(MessagePtr command, Completion done);
// The same for a command of a concrete domain type (tests, benchmarks).
template <typename M, typename = std::enable_if_t<std::is_base_of_v<Message, std::decay_t<M>>>>
EnvelopePtr make_envelope(M&& command, Completion done) {
  return make_envelope(MessagePtr(new std::decay_t<M>(std::forward<M>(command))), std::move(done));
}

// The CommandSink that `to` offers on its input port, for a node whose output port carries
// commands (RuntimeNode::connect_to of sources and process managers).
Result<CommandSink*> command_sink_of(const RuntimeNode& from, RuntimeNode& to);

}  // namespace orderflow
