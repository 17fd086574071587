// The whole default pipeline in-process (no HTTP): thousands of concurrent commands over
// many orders and scarce SKUs, at 1 and 2 TBB threads, on memory and RocksDB stores.
// Checks the domain invariants of DESIGN.md against the event store and the projection.
#include <gtest/gtest.h>
#include <google/protobuf/util/message_differencer.h>

#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "connectors/stores.h"
#include "nodes/builder.h"
#include "nodes/domain.h"

namespace orderflow {
namespace {

std::string graph_yaml(const std::string& store_kind) {
  const std::string events = store_kind == "rocksdb" ? "{kind: rocksdb, path: events}" : "{kind: memory}";
  const std::string snaps = store_kind == "rocksdb" ? "{kind: rocksdb, path: snapshots}" : "{kind: memory}";
  return "graph: test\n"
         "stores:\n"
         "  events: " + events + "\n"
         "  snapshots: " + snaps + "\n"
         "nodes:\n"
         "  - {id: demo, kind: demo_source, params: {rate: 0}}\n"
         "  - {id: route, kind: route, params: {lanes: 4, max_in_flight: 500}}\n"
         "  - {id: lanes, kind: command_lane, params: {events: events, snapshots: snapshots, cache_streams: 50}}\n"
         "  - {id: commit, kind: commit, params: {events: events, max_batch: 64}}\n"
         "  - {id: feed, kind: change_feed, params: {events: events, batch: 100, poll_ms: 5}}\n"
         "  - {id: projection, kind: projection, params: {snapshots: snapshots}}\n"
         "  - {id: saga, kind: saga}\n"
         "edges: [demo -> route, route -> lanes, lanes -> commit, commit -> feed, feed -> projection, "
         "feed -> saga, saga -> route]\n";
}

struct Acked {
  std::mutex mu;
  std::map<std::string, Outcome> by_id;  // command id -> first outcome (events pointer cleared)
  std::atomic<int> pending{0};
};

class PipelineTest : public ::testing::TestWithParam<std::tuple<std::string, int>> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("orderflow-pipeline-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::remove_all(dir_);
    graph::KindRegistry registry;
    register_node_kinds(registry);
    auto loaded = graph::load_graph_string(graph_yaml(std::get<0>(GetParam())));
    ASSERT_TRUE(loaded.ok());
    def_ = loaded.graph;
    std::vector<graph::Diagnostic> diags;
    ASSERT_TRUE(graph::validate(def_, registry, diags)) << diags.front().to_string();
    stores_ = std::make_unique<connectors::StoreSet>(def_, dir_.string());
  }
  void TearDown() override {
    built_.pipeline.reset();
    stores_.reset();
    std::filesystem::remove_all(dir_);
  }

  void start(StoreProvider* provider = nullptr) {
    BuildOptions o;
    o.threads = std::get<1>(GetParam());
    auto b = build_pipeline(def_, provider != nullptr ? *provider : *stores_, o);
    ASSERT_TRUE(b) << b.status().to_string();
    built_ = std::move(*b);
    ASSERT_TRUE(built_.pipeline->start());
  }

  void submit(v1::Command cmd, Acked& acked) {
    acked.pending++;
    const std::string id = cmd.command_id();
    auto env = make_envelope(std::move(cmd), [&acked, id](const Outcome& o) {
      {
        std::lock_guard lock(acked.mu);
        Outcome copy = o;
        copy.events = nullptr;
        acked.by_id.emplace(id + (o.duplicate ? "#dup" + std::to_string(acked.by_id.size()) : ""), copy);
      }
      acked.pending--;
    });
    for (;;) {
      Status s = built_.sink->submit(env);
      if (s) return;
      ASSERT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  // Waits until no command is in flight and both subscribers have consumed the whole log.
  void wait_quiescent() {
    auto* feed = *stores_->change_feed("events");
    int stable = 0;
    for (int i = 0; i < 3000 && stable < 3; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      const uint64_t head = feed->head();
      const bool idle = built_.sink->in_flight() == 0 && *feed->load_checkpoint("saga") == head &&
                        *feed->load_checkpoint("projection") == head && feed->head() == head;
      stable = idle ? stable + 1 : 0;
    }
    ASSERT_EQ(stable, 3) << "pipeline did not become quiescent";
  }

  void check_invariants(const Acked& acked) {
    auto* feed = *stores_->change_feed("events");
    auto* snapshots = *stores_->snapshot_store("snapshots");
    std::vector<RecordedEvent> all;
    ASSERT_TRUE(feed->read(0, 100000000, &all));
    ASSERT_EQ(all.size(), feed->head());

    std::map<std::string, v1::StreamState> states;
    std::map<std::string, uint64_t> events_per_command;
    for (size_t i = 0; i < all.size(); ++i) {
      const auto& r = all[i];
      ASSERT_EQ(r.position, i + 1) << "positions are dense and in commit order";
      auto& st = states[r.stream];
      ASSERT_EQ(r.version, st.version() + 1) << "versions of " << r.stream << " are dense";
      v1::Event e;
      ASSERT_TRUE(e.ParseFromString(r.payload));
      domain::evolve(st, e);
      events_per_command[r.command_id]++;
    }
    // Every acknowledged command's events exist exactly once.
    size_t written = 0;
    for (const auto& [id, o] : acked.by_id) {
      if (!o.status.is_ok()) continue;
      const std::string cmd = id.substr(0, id.find('#'));
      ASSERT_EQ(events_per_command[cmd], o.result.last_version - o.result.first_version + 1) << cmd;
      if (!o.duplicate) ++written;
    }
    EXPECT_GT(written, 100u);

    std::map<std::string, std::map<std::string, int32_t>> holds_by_order;  // order -> sku -> qty
    size_t confirmed = 0, rejected = 0;
    for (const auto& [stream, st] : states) {
      if (st.kind_case() == v1::StreamState::kInventory) {
        const auto& inv = st.inventory();
        EXPECT_GE(inv.on_hand(), 0) << stream;
        EXPECT_GE(inv.reserved(), 0) << stream;
        EXPECT_LE(inv.reserved(), inv.on_hand()) << "stock never negative: " << stream;
        int64_t sum = 0;
        for (const auto& [order, q] : inv.holds()) {
          sum += q;
          holds_by_order[order][inv.sku()] = q;
        }
        EXPECT_EQ(inv.reserved(), sum) << "reserved = sum of holds: " << stream;
      }
    }
    for (const auto& [stream, st] : states) {
      if (st.kind_case() != v1::StreamState::kOrder) continue;
      const auto& o = st.order();
      const auto& holds = holds_by_order[o.order_id()];
      switch (o.status()) {
        case v1::ORDER_STATUS_CONFIRMED:
          ++confirmed;
          for (const auto& l : o.lines()) {
            EXPECT_EQ(l.status(), v1::LINE_RESERVED) << "confirmed only if every line was reserved: " << stream;
            auto h = holds.find(l.line().sku());
            ASSERT_NE(h, holds.end()) << stream << " confirmed without a hold on " << l.line().sku();
            EXPECT_EQ(h->second, l.line().quantity());
          }
          EXPECT_EQ(holds.size(), static_cast<size_t>(o.lines_size()));
          break;
        case v1::ORDER_STATUS_PLACED: {
          std::string trail;  // what happened to it, for the failure message
          for (const auto& r : all) {
            v1::Event e;
            e.ParseFromString(r.payload);
            if (r.stream == stream || e.ShortDebugString().find("\"" + o.order_id() + "\"") != std::string::npos)
              trail += "\n  " + std::to_string(r.position) + " " + r.stream + " v" + std::to_string(r.version) +
                       " [" + r.command_id + "] " + e.ShortDebugString();
          }
          ADD_FAILURE() << stream << " is still placed after quiescence:" << trail;
          break;
        }
        default:
          if (o.status() == v1::ORDER_STATUS_REJECTED) ++rejected;
          EXPECT_TRUE(holds.empty()) << stream << " is closed but holds stock";
      }
    }
    for (const auto& [order, h] : holds_by_order) {
      auto st = states.find(domain::order_stream(order));
      ASSERT_NE(st, states.end());
      if (!h.empty()) {
        EXPECT_EQ(st->second.order().status(), v1::ORDER_STATUS_CONFIRMED) << order;
      }
    }
    EXPECT_GT(confirmed, 0u);
    EXPECT_GT(rejected, 0u) << "stock is scarce: some orders must be rejected";
    // The projection's business gauges count the outcome events it applied.
    size_t confirmed_events = 0, rejected_events = 0;
    for (const auto& r : all) {
      v1::Event e;
      ASSERT_TRUE(e.ParseFromString(r.payload));
      confirmed_events += e.kind_case() == v1::Event::kOrderConfirmed;
      rejected_events += e.kind_case() == v1::Event::kOrderRejected;
    }
    if (!restarted_) {
      const auto gauges = built_.pipeline->find("projection")->probe().gauges();
      EXPECT_EQ(gauges.at("orders_confirmed"), static_cast<double>(confirmed_events));
      EXPECT_EQ(gauges.at("orders_rejected"), static_cast<double>(rejected_events));
    }

    // The projection equals a fold of the event store.
    for (const auto& [stream, st] : states) {
      auto snap = snapshots->get(stream);
      ASSERT_TRUE(snap);
      v1::StreamState projected;
      ASSERT_TRUE(projected.ParseFromString(snap->state));
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(projected, st)) << stream;
    }
  }

  // Orders over scarce SKUs from several client threads, with cancels, shipments and
  // resubmitted command ids mixed in.
  void drive(int orders, int clients, const std::string& prefix, Acked& acked) {
    const int skus = 30;
    for (int s = 0; s < skus; ++s) {
      v1::Command c;
      c.set_command_id(prefix + "stock-" + std::to_string(s));
      c.mutable_add_stock()->set_sku("S" + std::to_string(s));
      c.mutable_add_stock()->set_quantity(3 + s % 7);
      submit(c, acked);
    }
    std::vector<std::thread> threads;
    for (int t = 0; t < clients; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(1234 + t);
        for (int i = t; i < orders; i += clients) {
          const std::string order = prefix + "o" + std::to_string(i);
          v1::Command c;
          c.set_command_id(prefix + "place-" + std::to_string(i));
          auto* p = c.mutable_place_order();
          p->set_order_id(order);
          p->set_customer_id("c" + std::to_string(i % 17));
          std::set<int> used;
          const int lines = 1 + static_cast<int>(rng() % 3);
          for (int l = 0; l < lines; ++l) {
            const int s = static_cast<int>(rng() % 10 == 0 ? rng() % skus : rng() % 6);  // a few hot SKUs
            if (!used.insert(s).second) continue;
            auto* line = p->add_lines();
            line->set_sku("S" + std::to_string(s));
            line->set_quantity(1 + static_cast<int>(rng() % 2));
            line->set_unit_price_cents(500);
          }
          submit(c, acked);
          if (i % 7 == 0) submit(c, acked);  // a client retry: same command id
          if (i % 5 == 0) {
            v1::Command cancel;
            cancel.set_command_id(prefix + "cancel-" + std::to_string(i));
            cancel.mutable_cancel_order()->set_order_id(order);
            submit(cancel, acked);
          }
          if (i % 11 == 0 && i > 20) {
            v1::Command ship;
            ship.set_command_id(prefix + "ship-" + std::to_string(i));
            ship.mutable_ship_order()->set_order_id(prefix + "o" + std::to_string(i - 20));
            submit(ship, acked);
          }
          if (i % 50 == 0) {
            v1::Command restock;
            restock.set_command_id(prefix + "restock-" + std::to_string(i));
            restock.mutable_add_stock()->set_sku("S" + std::to_string(rng() % 6));
            restock.mutable_add_stock()->set_quantity(2);
            submit(restock, acked);
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    for (int i = 0; i < 6000 && acked.pending.load() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_EQ(acked.pending.load(), 0) << "every submitted command completes";
  }

  bool restarted_ = false;  // gauges count since the process (here: pipeline) started
  static inline int counter_ = 0;
  std::filesystem::path dir_;
  graph::GraphDef def_;
  std::unique_ptr<connectors::StoreSet> stores_;
  BuiltPipeline built_;
};

TEST_P(PipelineTest, ConcurrentOrdersKeepInvariants) {
  start();
  Acked acked;
  drive(2000, 4, "a-", acked);
  wait_quiescent();
  check_invariants(acked);
  // Resubmitted command ids were answered with the first result and wrote nothing.
  size_t dups = 0;
  for (const auto& [id, o] : acked.by_id) {
    if (!o.duplicate) continue;
    ++dups;
    const auto& first = acked.by_id.at(id.substr(0, id.find('#')));
    EXPECT_EQ(first.result.first_position, o.result.first_position) << id;
  }
  EXPECT_GT(dups, 0u);
}

// Fault injection (leveldb's ErrorEnv idea): an event store whose appends and feed reads
// fail while `fail` is set.
class FlakyEvents final : public EventStore, public ChangeFeed {
 public:
  FlakyEvents(EventStore* events, ChangeFeed* feed) : events_(events), feed_(feed) {}
  std::atomic<bool> fail{false};
  std::atomic<int> failed_appends{0};

  std::vector<AppendResult> append(const std::vector<AppendRequest>& batch) override {
    if (!fail) return events_->append(batch);
    failed_appends++;
    std::vector<AppendResult> r(batch.size());
    for (auto& x : r) x.status = Status::io_error("injected write failure");
    return r;
  }
  Status read_stream(const std::string& s, uint64_t from, std::vector<RecordedEvent>* out) override {
    return events_->read_stream(s, from, out);
  }
  Result<std::optional<AppendResult>> find_command(const std::string& id) override { return events_->find_command(id); }
  Result<uint64_t> stream_version(const std::string& s) override { return events_->stream_version(s); }
  Status read(uint64_t after, size_t max, std::vector<RecordedEvent>* out) override {
    if (fail) return Status::io_error("injected read failure");
    return feed_->read(after, max, out);
  }
  uint64_t head() override { return feed_->head(); }
  void wait(uint64_t after, std::chrono::milliseconds t) override { feed_->wait(after, t); }
  Result<uint64_t> load_checkpoint(const std::string& s) override { return feed_->load_checkpoint(s); }
  Status save_checkpoint(const std::string& s, uint64_t p) override { return feed_->save_checkpoint(s, p); }

 private:
  EventStore* events_;
  ChangeFeed* feed_;
};

class FlakyProvider final : public StoreProvider {
 public:
  explicit FlakyProvider(connectors::StoreSet& inner)
      : inner_(inner), events(*inner.event_store("events"), *inner.change_feed("events")) {}
  Result<EventStore*> event_store(const std::string&) override { return static_cast<EventStore*>(&events); }
  Result<ChangeFeed*> change_feed(const std::string&) override { return static_cast<ChangeFeed*>(&events); }
  Result<SnapshotStore*> snapshot_store(const std::string& n) override { return inner_.snapshot_store(n); }

 private:
  connectors::StoreSet& inner_;

 public:
  FlakyEvents events;
};

// A store that fails for a while: commands in that window fail (HTTP 503) and write
// nothing; the change feed and the saga retry; afterwards everything converges.
// Regression: a lane evicted a stream's cached state while a decision on it was still in
// flight, reloaded it without those events, and rejected a saga command on that stale
// state ("order does not exist"); the rejection never reached the store, so nothing caught
// it and an order stayed "placed" for ever (about 1 run in 60 of this test).
TEST_P(PipelineTest, StoreFailuresLoseNothingAndConverge) {
  FlakyProvider flaky(*stores_);
  start(&flaky);
  Acked acked;
  drive(300, 2, "before-", acked);
  flaky.events.fail = true;
  Acked during;
  for (int i = 0; i < 50; ++i) {
    v1::Command c;
    c.set_command_id("during-" + std::to_string(i));
    c.mutable_add_stock()->set_sku("S" + std::to_string(i % 6));
    c.mutable_add_stock()->set_quantity(1);
    submit(c, during);
  }
  for (int i = 0; i < 1000 && during.pending.load() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(during.pending.load(), 0);
  EXPECT_GT(flaky.events.failed_appends.load(), 0);
  auto* inner = *stores_->event_store("events");
  for (const auto& [id, o] : during.by_id) {
    // The write failed (503), or its re-decisions behind a failed write ran out (409).
    EXPECT_TRUE(o.status.code() == StatusCode::kIoError || o.status.code() == StatusCode::kConflict)
        << id << ": " << o.status.to_string();
    auto found = inner->find_command(id);
    ASSERT_TRUE(found);
    EXPECT_FALSE(found->has_value()) << id << " failed but was written";
  }
  flaky.events.fail = false;
  drive(300, 2, "after-", acked);
  wait_quiescent();
  check_invariants(acked);
}

// A snapshot store whose writes fail while `fail` is set.
class FlakySnapshots final : public SnapshotStore, public StoreProvider {
 public:
  explicit FlakySnapshots(connectors::StoreSet& inner) : inner_(inner), snaps_(*inner.snapshot_store("snapshots")) {}
  std::atomic<bool> fail{false};
  std::atomic<int> failed_puts{0};

  Result<Snapshot> get(const std::string& stream) override { return snaps_->get(stream); }
  Status put(const std::vector<std::pair<std::string, Snapshot>>& entries) override {
    if (!fail) return snaps_->put(entries);
    failed_puts++;
    return Status::io_error("injected snapshot write failure");
  }
  Result<EventStore*> event_store(const std::string& n) override { return inner_.event_store(n); }
  Result<ChangeFeed*> change_feed(const std::string& n) override { return inner_.change_feed(n); }
  Result<SnapshotStore*> snapshot_store(const std::string&) override { return static_cast<SnapshotStore*>(this); }

 private:
  connectors::StoreSet& inner_;
  SnapshotStore* snaps_;
};

// The projection writes the snapshots of several batches at once and completes their
// tickets only then. Regression guard for that coalescing: when a write fails, the states
// it held are dropped from the cache and redelivered from the checkpoint, so the projection
// still equals a fold of the event store after the store recovers. Regression: the
// confirmed/rejected gauges counted the redelivered events twice after a failed write.
TEST_P(PipelineTest, SnapshotWriteFailuresConverge) {
  FlakySnapshots flaky(*stores_);
  start(&flaky);
  Acked acked;
  drive(300, 2, "before-", acked);
  flaky.fail = true;
  drive(300, 2, "during-", acked);  // commands commit; the projection cannot write
  for (int i = 0; i < 400 && flaky.failed_puts.load() < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_GE(flaky.failed_puts.load(), 3) << "the projection retried its writes";
  flaky.fail = false;
  drive(300, 2, "after-", acked);
  wait_quiescent();
  check_invariants(acked);
}

class PipelineRestartTest : public PipelineTest {};  // RocksDB only: memory does not survive

TEST_P(PipelineRestartTest, RestartResumesFromCheckpoints) {
  start();
  Acked acked;
  drive(600, 2, "r1-", acked);
  built_.pipeline->shutdown();  // SIGTERM path: drain, save checkpoints
  built_.pipeline.reset();
  stores_ = std::make_unique<connectors::StoreSet>(def_, dir_.string());  // reopen from disk
  restarted_ = true;
  start();
  drive(600, 2, "r2-", acked);
  wait_quiescent();
  check_invariants(acked);
}

INSTANTIATE_TEST_SUITE_P(RocksDbThreads, PipelineRestartTest,
                         ::testing::Combine(::testing::Values("rocksdb"), ::testing::Values(1, 2)),
                         [](const auto& info) { return "threads" + std::to_string(std::get<1>(info.param)); });
INSTANTIATE_TEST_SUITE_P(StoresAndThreads, PipelineTest,
                         ::testing::Combine(::testing::Values("memory", "rocksdb"), ::testing::Values(1, 2)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_threads" + std::to_string(std::get<1>(info.param));
                         });

}  // namespace
}  // namespace orderflow

namespace orderflow {
namespace {

// Overload: past max_in_flight the pipeline refuses (HTTP answers 429) instead of queueing
// without bound, and every admitted command still completes.
TEST(PipelineOverload, RefusesPastMaxInFlightAndCompletesWhatItAdmitted) {
  graph::KindRegistry registry;
  register_node_kinds(registry);
  auto loaded = graph::load_graph_string(
      "graph: overload\nstores:\n  events: {kind: memory}\n  snapshots: {kind: memory}\nnodes:\n"
      "  - {id: demo, kind: demo_source}\n"
      "  - {id: route, kind: route, params: {lanes: 2, max_in_flight: 50}}\n"
      "  - {id: lanes, kind: command_lane, params: {events: events, snapshots: snapshots}}\n"
      "  - {id: commit, kind: commit, params: {events: events}}\n"
      "edges: [demo -> route, route -> lanes, lanes -> commit]\n");
  ASSERT_TRUE(loaded.ok());
  std::vector<graph::Diagnostic> diags;
  ASSERT_TRUE(graph::validate(loaded.graph, registry, diags));
  connectors::StoreSet stores(loaded.graph, "");
  BuildOptions o;
  o.threads = 1;
  auto built = build_pipeline(loaded.graph, stores, o);
  ASSERT_TRUE(built);
  ASSERT_TRUE(built->pipeline->start());
  std::atomic<int> completed{0};
  int admitted = 0, refused = 0;
  int64_t max_seen = 0;
  std::vector<bool> was_admitted(5000);
  for (int i = 0; i < 5000; ++i) {
    v1::Command c;
    c.set_command_id("ov-" + std::to_string(i));
    c.mutable_add_stock()->set_sku("S" + std::to_string(i % 100));
    c.mutable_add_stock()->set_quantity(1);
    Status s = built->sink->submit(make_envelope(c, [&](const Outcome& out) {
      EXPECT_TRUE(out.status) << out.status.to_string();
      completed++;
    }));
    if (s) {
      ++admitted;
      was_admitted[static_cast<size_t>(i)] = true;
    } else {
      EXPECT_EQ(s.code(), StatusCode::kUnavailable);
      ++refused;
    }
    max_seen = std::max(max_seen, built->sink->in_flight());
  }
  EXPECT_GT(refused, 0) << "5000 commands at once must exceed a limit of 50";
  EXPECT_LE(max_seen, 50);
  built->pipeline->shutdown();  // drains: everything admitted completes
  EXPECT_EQ(completed.load(), admitted);
  auto* events = *stores.event_store("events");
  for (int i = 0; i < 5000; ++i) {
    auto found = events->find_command("ov-" + std::to_string(i));
    ASSERT_TRUE(found);
    EXPECT_EQ(found->has_value(), was_admitted[static_cast<size_t>(i)]) << "ov-" << i << ": refused means not written";
  }
}

}  // namespace
}  // namespace orderflow
