// What a change-feed subscriber implements (projection, process manager, sinks), and the
// ticket of a batch whose work finishes later.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
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
// batches whose tickets (and every earlier one) completed without error. On an error the
// feed redelivers from the checkpoint, so subscribers must be idempotent.
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
};

}  // namespace orderflow
