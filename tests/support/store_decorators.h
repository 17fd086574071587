// Fault injection by decoration (leveldb's ErrorEnv idea): EventsDecorator passes every
// EventStore and ChangeFeed call through to a real store; a test's decorator overrides only
// the calls it disturbs. DecoratedProvider hands a pipeline that decorator as its "events"
// store and the StoreSet's own snapshot store. Both live as long as the test's StoreSet.
#pragma once

#include "connectors/stores.h"
#include "graph/store.h"

namespace orderflow::testing {

class EventsDecorator : public EventStore, public ChangeFeed {
 public:
  EventsDecorator(EventStore* events, ChangeFeed* feed) : events_(events), feed_(feed) {}

  std::vector<AppendResult> append(const std::vector<AppendRequest>& batch) override { return events_->append(batch); }
  Status read_stream(const std::string& s, uint64_t from, std::vector<RecordedEvent>* out) override {
    return events_->read_stream(s, from, out);
  }
  Result<std::optional<AppendResult>> find_command(const std::string& id) override { return events_->find_command(id); }
  Result<uint64_t> stream_version(const std::string& s) override { return events_->stream_version(s); }
  Status read(uint64_t after, size_t max, std::vector<RecordedEvent>* out) override { return feed_->read(after, max, out); }
  uint64_t head() override { return feed_->head(); }
  void wait(uint64_t after, std::chrono::milliseconds t) override { feed_->wait(after, t); }
  Result<uint64_t> load_checkpoint(const std::string& s) override { return feed_->load_checkpoint(s); }
  Status save_checkpoint(const std::string& s, uint64_t p) override { return feed_->save_checkpoint(s, p); }

 protected:
  EventStore* events_;
  ChangeFeed* feed_;
};

template <typename Decorator>
class DecoratedProvider final : public StoreProvider {
 public:
  explicit DecoratedProvider(connectors::StoreSet& inner)
      : inner_(inner), events(*inner.event_store("events"), *inner.change_feed("events")) {}
  Result<EventStore*> event_store(const std::string&) override { return static_cast<EventStore*>(&events); }
  Result<ChangeFeed*> change_feed(const std::string&) override { return static_cast<ChangeFeed*>(&events); }
  Result<SnapshotStore*> snapshot_store(const std::string& n) override { return inner_.snapshot_store(n); }
  Result<ParkingStore*> parking_store(const std::string& n) override { return inner_.parking_store(n); }

 private:
  connectors::StoreSet& inner_;

 public:
  Decorator events;
};

}  // namespace orderflow::testing
