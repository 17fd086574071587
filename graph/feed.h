// What a change-feed subscriber implements (projection, process manager, sinks), and the
// ticket of a batch whose work finishes later.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "graph/metrics.h"
#include "graph/status.h"
#include "graph/store.h"

namespace orderflow {

// Completion of a batch whose work finishes later (the saga's commands commit
// asynchronously). Thread-safe.
class BatchTicket {
 public:
  void add(int n = 1);
  void finish(const Status& s);  // one unit done; keeps the first failure
  bool done() const;
  // Waits until every unit is done or the timeout passes; true when done.
  bool wait_for(std::chrono::milliseconds timeout) const;
  Status status() const;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  int pending_ = 0;
  Status error_;
};

// A change-feed subscriber: handle() is called from the feed's thread for that
// subscriber with consecutive batches. It either finishes the batch before returning
// (returns a null ticket) or returns a ticket that completes later; the feed keeps a
// bounded number of batches outstanding and advances the persisted checkpoint only past
// batches whose tickets (and every earlier one) completed without error (saved at most every
// 100 ms while events keep coming, and when the feed goes quiet, pauses or stops). On an
// error the feed redelivers from the last handled batch, after a crash from the saved
// checkpoint, so subscribers must be idempotent.
// A node kind whose input port carries committed events implements it (the change feed's
// connect_to looks for it).
class FeedSubscriber {
 public:
  virtual ~FeedSubscriber() = default;
  virtual const std::string& subscriber_id() const = 0;
  virtual NodeProbe& subscriber_probe() = 0;
  virtual Result<std::shared_ptr<BatchTicket>> handle(const std::vector<RecordedEvent>& batch) = 0;
  // Called from the same thread when the feed has nothing new to deliver (again at least
  // every few milliseconds while tickets are outstanding), and with stopping = true before
  // it stops: a subscriber that holds tickets back to coalesce work must finish them then.
  virtual void idle(bool /*stopping*/) {}
  // The feed position up to which this subscriber's durable output is known complete, as
  // kept beside that output (a projection's snapshot store), or nullopt when it keeps no
  // such mark. Called once, from the feed's thread, before the first batch: a checkpoint
  // ahead of it means the output lost its tail (an older copy restored, a lost WAL) and
  // the feed moves the checkpoint back so the gap is delivered again.
  virtual Result<std::optional<uint64_t>> covered_position() { return std::optional<uint64_t>(); }
  // Called once by the feed it is connected to, before the first batch: whether that feed
  // moves a checkpoint ahead of covered_position() back at start (a feed with global
  // positions). When it cannot, output that a crash may take back must be made durable.
  virtual void feed_replays_lost_output(bool /*replays*/) {}
  // Called from the feed's thread while delivery to this subscriber is paused (no batch
  // outstanding) after its durable output was dropped (a projection rebuilt on a running
  // server): forget every state kept in memory, the next batches start from nothing.
  virtual void forget() {}
  // Batches the feed hands this subscriber before it waits for their tickets: more than it
  // holds back to coalesce (a projection's flush_batches), so the feed is not what stops it.
  virtual size_t max_outstanding() const { return 16; }
};

// Where one subscriber of a change feed is, as its feed thread last saved it.
struct SubscriberPosition {
  std::string subscriber;         // node id
  std::string kind;               // its node kind (projection, saga, kafka_sink, ...)
  uint64_t checkpoint = 0;        // persisted: every event up to here is handled
  uint64_t head = 0;              // the feed's last position (in this subscriber's terms)
  bool running = false;           // its feed thread has loaded the checkpoint and delivers
  bool resettable = false;        // its checkpoint can be moved while the feed runs
  std::string not_resettable_because;  // why not, when !resettable
};

// Operator control of a running change feed (the admin API): where each subscriber is, and
// moving one subscriber's checkpoint without a restart. Delivery to the subscriber pauses
// between batches (its outstanding batches finish and are checkpointed), the caller does
// what must happen meanwhile (e.g. drop a projection's snapshots), then delivery resumes
// from the new checkpoint; the feed's other subscribers keep running. Implemented by the
// change feed node; thread-safe; pause/resume block the caller (never a feed thread).
class FeedControl {
 public:
  virtual ~FeedControl() = default;
  virtual const std::string& feed_id() const = 0;
  // False for a store without global positions (Cosmos DB's per-range views): checkpoints
  // are not positions an operator can name, so they cannot be moved.
  virtual bool global_positions() const = 0;
  virtual ChangeFeed& store_feed() = 0;
  virtual std::vector<SubscriberPosition> positions() = 0;
  // Waits until delivery to `subscriber` is paused with nothing outstanding. kNotFound for
  // an unknown subscriber, kConflict when it cannot be reset (no global positions),
  // kUnavailable when its thread does not run or the timeout passed (then it is not paused).
  virtual Status pause(const std::string& subscriber, std::chrono::milliseconds timeout) = 0;
  // Resumes a paused subscriber. With `checkpoint`, its feed thread first saves it (and
  // calls forget() when `forget`), so the next batch starts after it. Returns the checkpoint
  // it had when paused, once the feed thread has applied the change; on an error it resumes
  // from where it was.
  virtual Result<uint64_t> resume(const std::string& subscriber, std::optional<uint64_t> checkpoint, bool forget) = 0;
};

}  // namespace orderflow
