// FaultyEventStore (`kind: faulty`): FOR TESTS AND FAULT DRILLS ONLY. An event store that
// wraps another one (`inner:`, another store declared in the same graph) and makes
// every append to some streams (`fail_streams:`) fail with kIoError, as a store refusing
// writes to one stream would (a poison command), while every other stream's appends, all
// reads, the change feed and the checkpoints go to the inner store unchanged. While the
// file `heal_file` exists nothing fails, so a running server is broken and healed by
// creating and removing that file (checked once per append batch that touches a failing
// stream; healthy batches cost nothing extra). Lets an end-to-end test or a drill on the
// real binary make the saga and the Kafka source park a command (`park_after`) and then
// replay it.
//
// Owned by the StoreSet that opened it; the inner store (owned by the same StoreSet) must
// outlive it. Thread-safe as the inner store is.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "graph/options.h"
#include "graph/store.h"

namespace orderflow::connectors {

// `kind: faulty` as a graph file sets it: `{kind: faulty, inner: events-real,
// fail_streams: "sku-X,sku-Y", heal_file: heal}`.
struct FaultyStoreParams {
  std::string inner;         // the wrapped event store, another store of the graph (required)
  std::string fail_streams;  // comma-separated stream ids whose appends fail (required)
  std::string heal_file;     // relative to --data-dir; while it exists nothing fails; "" = never heals
};
const graph::Options<FaultyStoreParams>& faulty_store_params();

// The stream ids of `fail_streams`, or none with *why set when the list is malformed (empty,
// an empty item, an item with spaces).
std::set<std::string> parse_fail_streams(const std::string& text, std::string* why);

// Answers each request of `batch` that `refuse` answers with an error with that error, and
// appends the others to `inner` in one append, as a store refusing only those would. The
// faulty store's append, and the tests' own store decorators'.
std::vector<AppendResult> append_refusing(EventStore& inner, const std::vector<AppendRequest>& batch,
                                          const std::function<Status(const AppendRequest&)>& refuse);

class FaultyEventStore final : public EventStore, public ChangeFeed {
 public:
  // name: this store's name (for messages). heal_file: absolute, or "" (never heals).
  FaultyEventStore(std::string name, EventStore* events, ChangeFeed* feed, std::set<std::string> fail_streams,
                   std::string heal_file);

  std::vector<AppendResult> append(const std::vector<AppendRequest>& batch) override;
  Status read_stream(const std::string& stream, uint64_t from_version, std::vector<RecordedEvent>* out) override {
    return events_->read_stream(stream, from_version, out);
  }
  Result<std::optional<AppendResult>> find_command(const std::string& id) override {
    return events_->find_command(id);
  }
  Result<std::optional<AppendResult>> find_command_in(const std::string& stream, const std::string& id) override {
    return events_->find_command_in(stream, id);
  }
  Result<uint64_t> stream_version(const std::string& stream) override { return events_->stream_version(stream); }
  bool shared() const override { return events_->shared(); }
  bool finds_repeats_on_append() const override { return events_->finds_repeats_on_append(); }
  bool syncs_each_append() const override { return events_->syncs_each_append(); }
  Status health() const override { return events_->health(); }

  Result<ChangeFeed*> subscribe(const std::string& subscriber) override { return feed_->subscribe(subscriber); }
  bool global_positions() const override { return feed_->global_positions(); }
  Status read(uint64_t after, size_t max, std::vector<RecordedEvent>* out) override {
    return feed_->read(after, max, out);
  }
  uint64_t head() override { return feed_->head(); }
  void wait(uint64_t after, std::chrono::milliseconds timeout) override { feed_->wait(after, timeout); }
  Result<uint64_t> load_checkpoint(const std::string& subscriber) override {
    return feed_->load_checkpoint(subscriber);
  }
  Status save_checkpoint(const std::string& subscriber, uint64_t position) override {
    return feed_->save_checkpoint(subscriber, position);
  }

 private:
  bool healed() const;

  const std::string name_;
  EventStore* const events_;
  ChangeFeed* const feed_;
  const std::set<std::string> fail_streams_;
  const std::string heal_file_;
};

}  // namespace orderflow::connectors
