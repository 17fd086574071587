// Kafka in, crash before durable: the pipeline stops while commands read from Kafka are
// handed out but not yet written (their group commit is held by a store decorator, then
// fails as the write of a killed process never completes). After the restart every one of
// those commands is in the event store, once: the group's offsets were never committed
// past a command that was not durable. On librdkafka's mock cluster over TCP.
#include <gtest/gtest.h>
#include <google/protobuf/util/json_util.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <set>

#include "connectors/kafka.h"
#include "connectors/stores.h"
#include "tests/support/kinds.h"
#include "domain/orders/orders.h"
#include "tests/support/kafka.h"
#include "tests/support/store_decorators.h"

namespace orderflow {
namespace {

using testing::eventually;
using testing::MockKafka;

constexpr const char* kCommands = "orders.commands";
constexpr const char* kGroup = "orderflow-crash-test";

// While `hold` is set, each group commit waits (counted in `held`) instead of reaching the
// store; once `killed` is set, every waiting and later one fails without writing anything,
// as the writes of a process killed mid-commit never complete.
class HeldEvents final : public testing::EventsDecorator {
 public:
  using EventsDecorator::EventsDecorator;

  std::vector<AppendResult> append(const std::vector<AppendRequest>& batch) override {
    {
      std::unique_lock lock(mu_);
      if (hold_ && !killed_) {
        held_ += batch.size();
        cv_.notify_all();
        cv_.wait(lock, [&] { return !hold_ || killed_; });
      }
      if (killed_) {
        std::vector<AppendResult> r(batch.size());
        for (size_t i = 0; i < batch.size(); ++i) {
          r[i].stream = batch[i].stream;
          r[i].status = Status::io_error("the process was killed before this write was durable");
        }
        return r;
      }
    }
    return events_->append(batch);
  }

  void hold() {
    std::lock_guard lock(mu_);
    hold_ = true;
  }
  // Waits until `n` commands are held (false if they did not come within the timeout).
  bool wait_held(size_t n, std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return held_ >= n; });
  }
  size_t held() {
    std::lock_guard lock(mu_);
    return held_;
  }
  void kill() {
    {
      std::lock_guard lock(mu_);
      killed_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool hold_ = false;    // guarded by mu_
  bool killed_ = false;  // guarded by mu_
  size_t held_ = 0;      // guarded by mu_: commands whose write was held
};
using HeldProvider = testing::DecoratedProvider<HeldEvents>;

class KafkaCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kafka_ = std::make_unique<MockKafka>(1);
    kafka_->create_topic(kCommands, 3);
    dir_ = std::filesystem::temp_directory_path() / ("orderflow-kafka-crash-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    const std::string yaml =
        "graph: kafka-crash\n"
        "stores:\n"
        "  events: {kind: rocksdb, path: events}\n"
        "  snapshots: {kind: memory}\n"
        "nodes:\n"
        "  - {id: kin, kind: kafka_source, params: {brokers: \"" + kafka_->bootstrap() + "\", topics: " +
        kCommands + ", group: " + kGroup + ", max_in_flight: 16, commit_interval_ms: 20,"
        " properties: \"fetch.wait.max.ms=50,session.timeout.ms=6000\"}}\n"
        "  - {id: route, kind: route, params: {lanes: 2, max_in_flight: 1000}}\n"
        "  - {id: lanes, kind: command_lane, params: {events: events, snapshots: snapshots}}\n"
        "  - {id: commit, kind: commit, params: {events: events, max_batch: 4}}\n"
        "edges: [kin -> route, route -> lanes, lanes -> commit]\n";
    auto loaded = graph::load_graph_string(yaml);
    ASSERT_TRUE(loaded.ok()) << loaded.diagnostics.front().to_string();
    def_ = loaded.graph;
    graph::KindRegistry registry;
    register_standard_kinds(registry);
    std::vector<graph::Diagnostic> diags;
    ASSERT_TRUE(graph::validate(def_, registry, diags)) << diags.front().to_string();
  }
  void TearDown() override {
    if (built_.pipeline) built_.pipeline->shutdown(std::chrono::seconds(10));
    built_.pipeline.reset();
    provider_.reset();
    stores_.reset();
    kafka_.reset();
    std::filesystem::remove_all(dir_);
  }

  void start() {
    stores_ = std::make_unique<connectors::StoreSet>(def_, dir_.string());
    provider_ = std::make_unique<HeldProvider>(*stores_);
    BuildOptions o;
    o.threads = 2;
    auto built = build_pipeline(def_, test_support::standard_kinds(), *provider_, o);
    ASSERT_TRUE(built) << built.status().to_string();
    built_ = std::move(*built);
    ASSERT_TRUE(built_.pipeline->start());
  }

  // `n` AddStock commands on their own streams (nothing is rejected), in JSON.
  std::vector<std::string> send(const std::string& prefix, int n) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      v1::Command c;
      c.set_command_id(prefix + std::to_string(i));
      c.mutable_add_stock()->set_sku(prefix + "sku-" + std::to_string(i % 40));
      c.mutable_add_stock()->set_quantity(1);
      std::string json;
      google::protobuf::util::MessageToJsonString(c, &json);
      kafka_->produce(kCommands, orders::stream_of(c), json, {{"content-type", "application/json"}});
      ids.push_back(c.command_id());
    }
    EXPECT_TRUE(kafka_->flush());
    return ids;
  }

  std::vector<std::string> missing(const std::vector<std::string>& ids) {
    std::vector<std::string> out;
    auto* events = *stores_->event_store("events");
    for (const auto& id : ids) {
      auto found = events->find_command(id);
      if (!found || !found->has_value()) out.push_back(id);
    }
    return out;
  }

  std::unique_ptr<MockKafka> kafka_;
  std::filesystem::path dir_;
  graph::GraphDef def_;
  std::unique_ptr<connectors::StoreSet> stores_;
  std::unique_ptr<HeldProvider> provider_;
  BuiltPipeline built_;
};

// Regression guard: the Kafka source committing the highest offset it had handed out (not
// the end of the done prefix) passed every test; a crash then skipped undone commands.
TEST_F(KafkaCrashTest, CommandsHandedOutButNotDurableAtACrashAreNotLost) {
  ASSERT_NO_FATAL_FAILURE(start());
  const auto before = send("before-", 60);
  ASSERT_TRUE(eventually([&] { return kafka_->caught_up(kGroup, kCommands); }, std::chrono::seconds(60)))
      << "the first commands were not all committed";
  EXPECT_TRUE(missing(before).empty());

  // Commands are read and handed to the pipeline; their writes wait. Then the process dies.
  provider_->events.hold();
  const auto during = send("during-", 120);
  ASSERT_TRUE(provider_->events.wait_held(1, std::chrono::seconds(60)))
      << "the source never handed out commands (held " << provider_->events.held() << ")";
  provider_->events.kill();
  built_.pipeline->shutdown(std::chrono::seconds(10));  // offsets are committed on the way out
  built_ = BuiltPipeline{};
  const auto lost_at_crash = missing(during);
  ASSERT_FALSE(lost_at_crash.empty()) << "the crash came too late: every command was already durable";
  provider_.reset();
  stores_.reset();

  // Restarted: Kafka redelivers from the committed offsets; every command ends up written once.
  ASSERT_NO_FATAL_FAILURE(start());
  const auto after = send("after-", 10);  // and the partitions move on
  std::vector<std::string> all = before;
  all.insert(all.end(), during.begin(), during.end());
  all.insert(all.end(), after.begin(), after.end());
  const bool done = eventually([&] { return kafka_->caught_up(kGroup, kCommands) && built_.sink->in_flight() == 0; },
                               std::chrono::seconds(60));
  EXPECT_TRUE(done) << "the restarted source did not catch up";
  const auto lost = missing(all);
  EXPECT_TRUE(lost.empty()) << lost.size() << " of the " << lost_at_crash.size()
                            << " commands not durable at the crash are missing after the restart, e.g. "
                            << (lost.empty() ? "" : lost.front());
  // Once each: every command's single event, nothing doubled by the redelivery.
  std::vector<RecordedEvent> log;
  ASSERT_TRUE((*stores_->change_feed("events"))->read(0, 1000000, &log));
  std::multiset<std::string> ids;
  for (const auto& e : log) ids.insert(e.command_id);
  for (const auto& id : all) EXPECT_EQ(ids.count(id), 1u) << id;
}

}  // namespace
}  // namespace orderflow
