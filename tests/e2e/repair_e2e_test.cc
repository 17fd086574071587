// Replay and repair through the real binary: `orderflow serve` on loopback and a data
// directory, stopped, repaired with `orderflow repair ...`, served again, checked over HTTP.
//
//   ReadModelBehindItsEventStoreIsCaughtUpAtStart
//                                   the snapshot store restored from an older copy while the
//                                   projection's checkpoint stayed ahead: the read model of a
//                                   stream with no new events used to stay stale for ever
//   EventStoreOlderThanItsReadModelIsRefusedUntilRebuilt
//                                   the event store restored from an older copy: refused at
//                                   start (it answered 409 for ever), writable after a rebuild
//   SnapshotStoreWipedIsRebuiltAtStart
//                                   the snapshot store's directory deleted: rebuilt from the log
//   RebuildProjectionRefoldsTheReadModel
//                                   repair rebuild-projection drops the snapshots and the
//                                   checkpoint; the next serve refolds every event
//   ResetCheckpointByPositionAndTimeRedelivers
//                                   repair reset-checkpoint --position / --time: the saga gets
//                                   exactly the events after the new checkpoint again
//   RepairRefusesARunningServersDirectory
//   RepairHelpAndBadUsage           --help on each command, exit 2 naming what is wrong
//
// CosmosRepairE2eTest: the same on graphs/orders-cosmos.yaml against the Cosmos DB stand-in,
// repaired offline without a data directory (every instance stopped):
//   RebuildProjectionClearsSnapshotsAndRefolds
//                                   rebuild-projection empties the snapshot container and
//                                   resets the projection's leases (the saga's stay); the next
//                                   serve refolds the same read model from the change feed
//   RefusedWhileAnInstanceHoldsTheLeases
//                                   a running server's leases refuse the offline repair (naming
//                                   the owner, dropping nothing); its admin API answers 409
//                                   pointing at the offline command
//   ResetCheckpointByTimeRedeliversOnlyLaterEvents
//                                   reset-checkpoint --time: the saga is handed exactly the
//                                   events committed after the time again; --position 0 all
//   ResetCheckpointRefusesOtherPositions
//                                   --position 5 on Cosmos DB: exit 2, no global positions
#include "tests/support/cosmos_standin.h"
#include "tests/support/e2e_http.h"
#include "tests/support/server_process.h"
#include "tests/support/shell.h"
#include <gtest/gtest.h>

#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "connectors/cosmos_client.h"
#include "connectors/cosmos_store.h"

namespace {

namespace fs = std::filesystem;
using orderflow::testing::describe_wait_status;
using orderflow::testing::Ran;
using orderflow::testing::ServerProcess;
using namespace orderflow::testing::e2e;

const std::string kGraph = std::string(ORDERFLOW_SOURCE_DIR) + "/graphs/orders.yaml";

class RepairE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }

  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "orderflow-repair-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << "mkdtemp: " << strerror(errno);
    dir_ = tmpl;
    data_ = dir_ / "data";
    log_ = dir_ / "server.log";
    port_ = free_port();
    ASSERT_GT(port_, 0) << "no free loopback port";
    server_ = std::make_unique<ServerProcess>(data_, log_);
  }

  void TearDown() override {
    if (server_) server_->kill_now();
    if (HasFailure()) orderflow::testing::print_log_tail(log_, 120);
    server_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void start_server() {
    const std::string why = server_->start_ready(port_, 15s);
    ASSERT_TRUE(why.empty()) << why;
  }

  void stop_server() {
    const auto status = server_->terminate(15s);
    ASSERT_TRUE(status.has_value()) << "server did not exit within 15 s of SIGTERM";
    ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << describe_wait_status(*status);
  }

  Ran repair(const std::string& args) {
    return orderflow::testing::run_shell(std::string(ORDERFLOW_BINARY) + " repair " + args);
  }
  std::string data_flag() const { return kGraph + " --data-dir '" + data_.string() + "'"; }

  void command(Http& h, const Cmd& c) {
    const Reply r = h.command(c.body);
    ASSERT_EQ(r.status, 200) << c.body << " -> " << r.describe();
  }

  // The subscriber's "in" count and checkpoint gauge, and the feed's head, from /api/v1/metrics.
  struct FeedView {
    int64_t in = -1;
    double checkpoint = -1;
    double lag = -1;
  };
  FeedView feed_view(Http& h, const std::string& subscriber) {
    const Reply r = h.get("/api/v1/metrics");
    const value* n = metrics_node(r.json, subscriber);
    if (n == nullptr) return {};
    return {num(*n, "in"), gauge(n, "checkpoint"), gauge(n, "lag_events")};
  }

  // Both subscribers have checkpointed the whole log, and it is `head` events long (any
  // length when head < 0).
  bool caught_up(Http& h, double head) {
    const FeedView p = feed_view(h, "projection"), s = feed_view(h, "saga");
    return (head < 0 || p.checkpoint == head) && p.checkpoint == s.checkpoint && p.lag == 0 && s.lag == 0;
  }
  // Waits for caught_up, then stops the server (so the checkpoints on disk are at the head).
  void stop_caught_up(double head) {
    {
      Http h(port_);
      ASSERT_TRUE(eventually([&] { return caught_up(h, head); }, 5s))
          << "projection checkpoint " << feed_view(h, "projection").checkpoint << ", saga "
          << feed_view(h, "saga").checkpoint << ", expected " << head;
    }
    stop_server();
  }

  // The head of the change feed, from `repair checkpoints` (a stopped server).
  int64_t head_offline() {
    const Ran r = repair("checkpoints " + data_flag());
    EXPECT_EQ(r.exit_code, 0) << r.output;
    std::smatch m;
    if (!std::regex_search(r.output, m, std::regex(R"(head (\d+))"))) return -1;
    return std::stoll(m[1]);
  }

  fs::path dir_, data_, log_;
  int port_ = 0;
  std::unique_ptr<ServerProcess> server_;
};

std::string read_log(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Regression (issue 16): with the snapshot store's tail lost (here: an older copy of its
// directory restored) and the projection's checkpoint still ahead, streams with no new
// events answered their old state for ever. Now the start finds the projection's output
// behind its checkpoint, says so once, and replays the gap.
TEST_F(RepairE2eTest, ReadModelBehindItsEventStoreIsCaughtUpAtStart) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  {
    Http h(port_);
    ASSERT_NO_FATAL_FAILURE(command(h, add_stock("rm-1", "RM-A", 5)));
  }
  ASSERT_NO_FATAL_FAILURE(stop_caught_up(1));
  const fs::path old_copy = dir_ / "snapshots-old";
  fs::copy(data_ / "snapshots", old_copy, fs::copy_options::recursive);

  ASSERT_NO_FATAL_FAILURE(start_server());
  {
    Http h(port_);
    ASSERT_NO_FATAL_FAILURE(command(h, add_stock("rm-2", "RM-A", 7)));
    ASSERT_NO_FATAL_FAILURE(command(h, add_stock("rm-3", "RM-B", 3)));
    ASSERT_TRUE(eventually([&] { return num(h.get("/api/v1/inventory/RM-B").json, "version") == 1; }, 5s));
  }
  ASSERT_NO_FATAL_FAILURE(stop_caught_up(3));
  const int64_t head = head_offline();
  ASSERT_EQ(head, 3);

  // The snapshot store loses its tail; the event store and the checkpoints do not.
  fs::remove_all(data_ / "snapshots");
  fs::copy(old_copy, data_ / "snapshots", fs::copy_options::recursive);
  const Ran before = repair("checkpoints " + data_flag());
  ASSERT_EQ(before.exit_code, 0) << before.output;
  EXPECT_TRUE(std::regex_search(before.output, std::regex(R"(projection\s+3\s+0\s+1\b)"))) << before.output;

  ASSERT_NO_FATAL_FAILURE(start_server());
  Http h(port_);
  Reply a, b;
  const bool fresh = eventually(
      [&] {
        a = h.get("/api/v1/inventory/RM-A");
        b = h.get("/api/v1/inventory/RM-B");
        return num(a.json, "version") == 2 && num(b.json, "version") == 1;
      },
      5s);
  EXPECT_TRUE(fresh) << "read model stayed stale: RM-A " << a.describe() << "; RM-B " << b.describe();
  EXPECT_EQ(num(a.json, "onHand"), 12) << a.describe();
  EXPECT_EQ(num(b.json, "onHand"), 3) << b.describe();
  const std::string log = read_log(log_);
  EXPECT_NE(log.find("behind its checkpoint"), std::string::npos) << "no warning line";
  // The lanes never depended on the snapshot: they fold the events after its version.
  const Reply more = h.command(add_stock("rm-4", "RM-A", 1).body);
  EXPECT_EQ(more.status, 200) << more.describe();
  EXPECT_EQ(num(more.json, "version"), 3) << more.describe();
  EXPECT_TRUE(eventually([&] { return caught_up(h, 4); }, 5s));
}

TEST_F(RepairE2eTest, SnapshotStoreWipedIsRebuiltAtStart) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  {
    Http h(port_);
    ASSERT_NO_FATAL_FAILURE(command(h, add_stock("w-1", "W-A", 4)));
    ASSERT_NO_FATAL_FAILURE(command(h, add_stock("w-2", "W-A", 6)));
  }
  ASSERT_NO_FATAL_FAILURE(stop_caught_up(2));
  fs::remove_all(data_ / "snapshots");
  ASSERT_NO_FATAL_FAILURE(start_server());
  Http h(port_);
  Reply a;
  EXPECT_TRUE(eventually(
      [&] {
        a = h.get("/api/v1/inventory/W-A");
        return num(a.json, "version") == 2;
      },
      5s))
      << a.describe();
  EXPECT_EQ(num(a.json, "onHand"), 10) << a.describe();
  EXPECT_NE(read_log(log_).find("replaying the feed from the start"), std::string::npos) << "no warning line";
}

// Regression (issue 16): the event store restored from an older copy than the snapshot
// store started as if nothing happened, and every command on a stream whose snapshot was
// ahead answered 409 for ever. Now the start is refused, naming the way out, and
// rebuild-projection (accepting the event store as it is) makes the streams writable again.
TEST_F(RepairE2eTest, EventStoreOlderThanItsReadModelIsRefusedUntilRebuilt) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  {
    Http h(port_);
    ASSERT_NO_FATAL_FAILURE(command(h, add_stock("eo-1", "EO-A", 5)));
  }
  ASSERT_NO_FATAL_FAILURE(stop_caught_up(1));
  const fs::path old_copy = dir_ / "events-old";
  fs::copy(data_ / "events", old_copy, fs::copy_options::recursive);
  ASSERT_NO_FATAL_FAILURE(start_server());
  {
    Http h(port_);
    ASSERT_NO_FATAL_FAILURE(command(h, add_stock("eo-2", "EO-A", 7)));
  }
  ASSERT_NO_FATAL_FAILURE(stop_caught_up(2));
  fs::remove_all(data_ / "events");
  fs::copy(old_copy, data_ / "events", fs::copy_options::recursive);

  ASSERT_TRUE(server_->start(port_));
  EXPECT_TRUE(eventually([&] { return !server_->running(); }, 10s)) << "a server started on stores that disagree";
  server_->kill_now();
  const auto status = server_->last_status();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << describe_wait_status(*status);
  const std::string log = read_log(log_);
  EXPECT_NE(log.find("older than its read model"), std::string::npos) << log;
  EXPECT_NE(log.find("rebuild-projection"), std::string::npos) << log;

  const Ran r = repair("rebuild-projection " + data_flag());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_NO_FATAL_FAILURE(start_server());
  Http h(port_);
  Reply a;
  EXPECT_TRUE(eventually(
      [&] {
        a = h.get("/api/v1/inventory/EO-A");
        return num(a.json, "version") == 1;
      },
      5s))
      << a.describe();
  EXPECT_EQ(num(a.json, "onHand"), 5) << a.describe();
  const Reply more = h.command(add_stock("eo-3", "EO-A", 2).body);
  EXPECT_EQ(more.status, 200) << more.describe();
  EXPECT_EQ(num(more.json, "version"), 2) << more.describe();
}

TEST_F(RepairE2eTest, RebuildProjectionRefoldsTheReadModel) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  {
    Http h(port_);
    ASSERT_NO_FATAL_FAILURE(command(h, add_stock("rb-1", "RB-A", 10)));
    ASSERT_NO_FATAL_FAILURE(command(h, place_order("rb-2", "rb-o1", "u-1", {{"RB-A", 3, 150}})));
    ASSERT_TRUE(eventually([&] { return str(h.get("/api/v1/orders/rb-o1").json, "status") == "confirmed"; }, 5s));
  }
  ASSERT_NO_FATAL_FAILURE(stop_caught_up(-1));  // the saga's reactions make the log's length
  const int64_t head = head_offline();
  ASSERT_GT(head, 3);

  const Ran r = repair("rebuild-projection " + data_flag());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("projection 'projection': dropped the snapshots"), std::string::npos) << r.output;
  const Ran listed = repair("checkpoints " + data_flag());
  EXPECT_TRUE(std::regex_search(listed.output, std::regex(R"(projection\s+0\s+)" + std::to_string(head) + R"(\s+0\b)")))
      << listed.output;

  ASSERT_NO_FATAL_FAILURE(start_server());
  Http h(port_);
  // Every event folded again from the log (not a stale snapshot left behind).
  EXPECT_TRUE(eventually([&] { return feed_view(h, "projection").in == head && caught_up(h, double(head)); }, 5s))
      << "projection in " << feed_view(h, "projection").in << ", head " << head;
  const Reply order = h.get("/api/v1/orders/rb-o1");
  EXPECT_EQ(str(order.json, "status"), "confirmed") << order.describe();
  const Reply stock = h.get("/api/v1/inventory/RB-A");
  EXPECT_EQ(num(stock.json, "onHand"), 10) << stock.describe();
  EXPECT_EQ(num(stock.json, "reserved"), 3) << stock.describe();
  EXPECT_EQ(read_log(log_).find("behind its checkpoint"), std::string::npos) << "the reset left nothing to detect";
}

std::string iso8601_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[80];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms));
  return out;
}

TEST_F(RepairE2eTest, ResetCheckpointByPositionAndTimeRedelivers) {
  std::string cut;
  int64_t first_after_cut = 0;
  ASSERT_NO_FATAL_FAILURE(start_server());
  {
    Http h(port_);
    ASSERT_NO_FATAL_FAILURE(command(h, add_stock("rc-1", "RC-A", 5)));
    ASSERT_NO_FATAL_FAILURE(command(h, add_stock("rc-2", "RC-B", 5)));
    std::this_thread::sleep_for(50ms);
    cut = iso8601_now();
    std::this_thread::sleep_for(50ms);
    const Reply r = h.command(add_stock("rc-3", "RC-C", 5).body);
    ASSERT_EQ(r.status, 200) << r.describe();
    ASSERT_NO_FATAL_FAILURE(command(h, add_stock("rc-4", "RC-A", 1)));
    std::string why;
    auto evs = fetch_events(h, "sku-RC-C", &why);
    ASSERT_TRUE(evs && !evs->empty()) << why;
    first_after_cut = evs->front().position;
  }
  ASSERT_NO_FATAL_FAILURE(stop_caught_up(4));
  const int64_t head = head_offline();
  ASSERT_EQ(head, 4);
  ASSERT_EQ(first_after_cut, 3);

  // By time: the saga is handed the events committed at or after the cut again.
  Ran r = repair("reset-checkpoint " + data_flag() + " --subscriber saga --time " + cut);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("checkpoint 4 -> 2 (head 4)"), std::string::npos) << r.output;
  ASSERT_NO_FATAL_FAILURE(start_server());
  {
    Http h(port_);
    EXPECT_TRUE(eventually([&] { return feed_view(h, "saga").in == 2 && caught_up(h, 4); }, 5s))
        << "saga in " << feed_view(h, "saga").in;
  }
  ASSERT_NO_FATAL_FAILURE(stop_caught_up(4));

  // By position: from the start. Redelivery is idempotent (the saga's reactions carry
  // deterministic command ids), so the log does not grow.
  r = repair("reset-checkpoint " + data_flag() + " --subscriber saga --position 0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("checkpoint 4 -> 0"), std::string::npos) << r.output;
  ASSERT_NO_FATAL_FAILURE(start_server());
  {
    Http h(port_);
    EXPECT_TRUE(eventually([&] { return feed_view(h, "saga").in == 4 && caught_up(h, 4); }, 5s))
        << "saga in " << feed_view(h, "saga").in;
    EXPECT_EQ(feed_view(h, "projection").in, 0);  // untouched: it resumed at its checkpoint
  }
  ASSERT_NO_FATAL_FAILURE(stop_caught_up(4));
  EXPECT_EQ(head_offline(), 4);

  r = repair("reset-checkpoint " + data_flag() + " --subscriber saga --position 5");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("beyond the head"), std::string::npos) << r.output;
}

TEST_F(RepairE2eTest, RepairRefusesARunningServersDirectory) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  for (const char* cmd : {"checkpoints", "rebuild-projection"}) {
    const Ran r = repair(std::string(cmd) + " " + data_flag());
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("in use by a running orderflow process"), std::string::npos) << r.output;
  }
  Http h(port_);
  EXPECT_EQ(h.get("/readyz").status, 200);
}

TEST_F(RepairE2eTest, RepairHelpAndBadUsage) {
  for (const char* cmd : {"", "checkpoints", "reset-checkpoint", "rebuild-projection"}) {
    const Ran r = repair(std::string(cmd) + " --help");
    EXPECT_EQ(r.exit_code, 0) << cmd << ": " << r.output;
    EXPECT_NE(r.output.find("--help"), std::string::npos) << r.output;
  }
  EXPECT_NE(repair("reset-checkpoint --help").output.find("--time"), std::string::npos);
  Ran r = repair("checkpoints " + kGraph + " --data-dir /tmp --bogus");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--bogus"), std::string::npos) << r.output;
  r = repair("checkpoints " + kGraph);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--data-dir"), std::string::npos) << r.output;
  r = repair("reset-checkpoint " + data_flag() + " --subscriber saga");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--position"), std::string::npos) << r.output;
  r = repair("reset-checkpoint " + data_flag() + " --subscriber saga --position 1 --time 2026-01-01T00:00:00Z");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = repair("reset-checkpoint " + data_flag() + " --subscriber saga --time yesterday");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("yesterday"), std::string::npos) << r.output;
  // No server ran here: nothing to repair, and nothing created.
  r = repair("checkpoints " + data_flag());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_FALSE(fs::exists(data_ / "events"));
  fs::create_directories(data_);
  r = repair("checkpoints " + data_flag());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("no store 'events'"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(data_ / "events"));
  ASSERT_NO_FATAL_FAILURE(start_server());
  ASSERT_NO_FATAL_FAILURE(stop_server());
  r = repair("reset-checkpoint " + data_flag() + " --subscriber nobody --position 0");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("subscribers: projection, saga"), std::string::npos) << r.output;
  r = repair("rebuild-projection " + data_flag() + " --projection saga");
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

// ---- Cosmos DB: offline, every instance stopped ------------------------------------------

namespace conn = orderflow::connectors;

class CosmosRepairE2eTest : public RepairE2eTest {
 protected:
  void SetUp() override {
    RepairE2eTest::SetUp();
    if (HasFatalFailure()) return;
    standin_ = std::make_unique<orderflow::testing::CosmosStandIn>(orderflow::testing::CosmosStandIn::Options{4, "", ""});
    ::setenv("COSMOS_KEY", standin_->key().c_str(), 1);  // inherited by the server and the CLI
    graph_ = dir_ / "orders-cosmos.yaml";
    std::ofstream(graph_) << orderflow::testing::cosmos_graph(*standin_, "repair");
    server_ = std::make_unique<ServerProcess>(data_, log_, graph_.string());
  }
  void TearDown() override {
    RepairE2eTest::TearDown();
    standin_.reset();
  }

  // Both subscribers handed and checkpointed `events` events since this process started.
  void wait_handled(Http& h, int64_t events) {
    ASSERT_TRUE(eventually(
        [&] {
          const FeedView p = feed_view(h, "projection"), s = feed_view(h, "saga");
          return p.in == events && s.in == events && p.checkpoint == events && s.checkpoint == events;
        },
        20s))
        << "projection in " << feed_view(h, "projection").in << ", saga in " << feed_view(h, "saga").in
        << ", expected " << events;
  }

  // The account as the stores see it (for checks behind the server's back).
  std::shared_ptr<conn::CosmosClient> client() {
    conn::CosmosOptions o;
    o.endpoint = standin_->endpoint();
    o.key = standin_->key();
    auto c = conn::CosmosClient::open(o);
    EXPECT_TRUE(c.is_ok()) << c.status().message();
    return c.is_ok() ? *c : nullptr;
  }
  conn::CosmosStoreOptions options(const std::string& container) {
    conn::CosmosStoreOptions o;
    o.database = "repair";
    o.container = container;
    o.create_if_missing = false;
    return o;
  }
  // The snapshot version the container holds for `stream` (0: none).
  uint64_t snapshot_version(const std::string& stream) {
    auto snaps = conn::CosmosSnapshotStore::open(client(), options("snapshots"));
    EXPECT_TRUE(snaps.is_ok()) << snaps.status().message();
    if (!snaps.is_ok()) return 0;
    auto s = (*snaps)->get(stream);
    EXPECT_TRUE(s.is_ok()) << s.status().message();
    return s.is_ok() ? s->version : 0;
  }
  std::vector<conn::CosmosLease> leases(const std::string& subscriber) {
    auto events = conn::CosmosEventStore::open(client(), options("events"));
    EXPECT_TRUE(events.is_ok()) << events.status().message();
    if (!events.is_ok()) return {};
    auto l = (*events)->leases(subscriber);
    EXPECT_TRUE(l.is_ok()) << l.status().message();
    return l.is_ok() ? *l : std::vector<conn::CosmosLease>{};
  }

  // The read model at the given API paths, as answered (status and body).
  std::map<std::string, std::string> read_model(Http& h, const std::vector<std::string>& paths) {
    std::map<std::string, std::string> out;
    for (const auto& p : paths) {
      const Reply r = h.get(p);
      out[p] = std::to_string(r.status) + " " + r.json.serialize();
    }
    return out;
  }

  fs::path graph_;
  std::unique_ptr<orderflow::testing::CosmosStandIn> standin_;
};

TEST_F(CosmosRepairE2eTest, RebuildProjectionClearsSnapshotsAndRefolds) {
  const std::vector<std::string> paths = {"/api/v1/orders/o1", "/api/v1/orders/o2", "/api/v1/orders/o3",
                                          "/api/v1/inventory/A", "/api/v1/inventory/B"};
  std::map<std::string, std::string> before;
  ASSERT_NO_FATAL_FAILURE(start_server());
  {
    Http h(port_);
    ASSERT_NO_FATAL_FAILURE(command(h, add_stock("s-a", "A", 10)));
    ASSERT_NO_FATAL_FAILURE(command(h, add_stock("s-b", "B", 1)));
    ASSERT_NO_FATAL_FAILURE(command(h, place_order("p-1", "o1", "u1", {{"A", 3, 100}})));
    ASSERT_NO_FATAL_FAILURE(command(h, place_order("p-2", "o2", "u1", {{"A", 1, 100}, {"B", 5, 100}})));  // short of B
    ASSERT_NO_FATAL_FAILURE(command(h, place_order("p-3", "o3", "u2", {{"B", 1, 100}})));
    auto status = [&](const std::string& o) { return str(h.get("/api/v1/orders/" + o).json, "status"); };
    ASSERT_TRUE(eventually([&] { return status("o1") == "confirmed" && status("o2") == "rejected" &&
                                        status("o3") == "confirmed"; }, 20s))
        << status("o1") << " " << status("o2") << " " << status("o3");
    ASSERT_NO_FATAL_FAILURE(command(h, cancel_order("c-3", "o3")));
    ASSERT_TRUE(eventually([&] {
      return status("o3") == "cancelled" && num(h.get("/api/v1/inventory/B").json, "reserved") == 0;
    }, 20s));
    std::this_thread::sleep_for(1500ms);  // the projection's flush and checkpoints settle
    before = read_model(h, paths);
  }
  ASSERT_NO_FATAL_FAILURE(stop_server());
  for (const auto& [p, v] : before) ASSERT_EQ(v.rfind("200 ", 0), 0u) << p << ": " << v;
  ASSERT_GT(snapshot_version("order-o1"), 0u);
  ASSERT_GT(snapshot_version("sku-A"), 0u);
  // Ranges that held events have continuations (not every range of 4 gets one of these streams).
  auto continuations = [&](const std::string& subscriber) {
    std::map<std::string, std::string> out;
    for (const auto& l : leases(subscriber)) out[l.range] = l.continuation;
    return out;
  };
  auto any_read = [](const std::map<std::string, std::string>& c) {
    for (const auto& [range, cont] : c)
      if (!cont.empty()) return true;
    return false;
  };
  ASSERT_TRUE(any_read(continuations("projection")));
  const auto saga_before = continuations("saga");
  ASSERT_TRUE(any_read(saga_before));

  const Ran r = repair("rebuild-projection '" + graph_.string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("projection 'projection': dropped the snapshots in store 'snapshots', leases of 4 partition "
                          "key ranges -> the start of the change feed"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(snapshot_version("order-o1"), 0u) << "the snapshot container was not cleared";
  EXPECT_EQ(snapshot_version("order-o3"), 0u);
  EXPECT_EQ(snapshot_version("sku-A"), 0u);
  const auto proj = leases("projection");
  ASSERT_EQ(proj.size(), 4u);
  for (const auto& l : proj) {
    EXPECT_TRUE(l.continuation.empty()) << "range " << l.range << ": " << l.continuation;
    EXPECT_TRUE(l.owner.empty()) << l.owner;
    EXPECT_EQ(l.start_time_ms, 0);
  }
  EXPECT_EQ(continuations("saga"), saga_before) << "the saga's leases were touched";

  ASSERT_NO_FATAL_FAILURE(start_server());
  {
    Http h(port_);
    std::map<std::string, std::string> after;
    EXPECT_TRUE(eventually([&] { return (after = read_model(h, paths)) == before; }, 20s));
    for (const auto& p : paths) EXPECT_EQ(after[p], before[p]) << p;
    EXPECT_EQ(feed_view(h, "saga").in, 0) << "the saga resumed at its own checkpoint";
  }
  ASSERT_NO_FATAL_FAILURE(stop_server());
  EXPECT_GT(snapshot_version("order-o1"), 0u) << "the refolded read model is written back";
}

TEST_F(CosmosRepairE2eTest, RefusedWhileAnInstanceHoldsTheLeases) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  Http h(port_);
  ASSERT_NO_FATAL_FAILURE(command(h, add_stock("s-a", "A", 10)));
  ASSERT_NO_FATAL_FAILURE(wait_handled(h, 1));
  ASSERT_TRUE(eventually([&] { return snapshot_version("sku-A") == 1; }, 10s));
  const std::string instance = str(h.get("/api/v1/admin/subscribers").json, "instance");
  ASSERT_FALSE(instance.empty());

  for (const std::string& args : {"rebuild-projection '" + graph_.string() + "'",
                                 "reset-checkpoint '" + graph_.string() + "' --subscriber saga --position 0"}) {
    const Ran r = repair(args);
    EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.output;
    EXPECT_NE(r.output.find("leases are held"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(" by " + instance), std::string::npos) << "names the owner: " << r.output;
    EXPECT_NE(r.output.find("Stop every instance"), std::string::npos) << r.output;
  }
  EXPECT_EQ(snapshot_version("sku-A"), 1u) << "a refused rebuild dropped the snapshots";
  // Listing works while it runs: each subscriber's lease per range, and who holds it.
  const Ran list = repair("checkpoints '" + graph_.string() + "'");
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_NE(list.output.find("one lease per partition key range"), std::string::npos) << list.output;
  EXPECT_NE(list.output.find(instance + " (running)"), std::string::npos) << list.output;
  for (const auto& l : leases("saga")) EXPECT_EQ(l.owner, instance);

  // The running server's admin API: still 409, now pointing at the offline command.
  Reply a = h.post("/api/v1/admin/projections/projection/rebuild", "");
  EXPECT_EQ(a.status, 409) << a.describe();
  ASSERT_TRUE(a.json.has_field("error") && a.json.at("error").has_field("code")) << "JSON error shape: " << a.describe();
  EXPECT_NE(str(a.json.at("error"), "message").find("'orderflow repair rebuild-projection GRAPH.yaml"), std::string::npos)
      << a.describe();
  EXPECT_NE(a.describe().find("with every instance stopped"), std::string::npos) << a.describe();
  a = h.post("/api/v1/admin/subscribers/saga/reset", "{\"position\":0}");
  EXPECT_EQ(a.status, 409) << a.describe();
  EXPECT_NE(a.describe().find("'orderflow repair reset-checkpoint GRAPH.yaml --subscriber saga"), std::string::npos)
      << a.describe();
  EXPECT_EQ(h.get("/readyz").status, 200);
}

TEST_F(CosmosRepairE2eTest, ResetCheckpointByTimeRedeliversOnlyLaterEvents) {
  std::string cut;
  ASSERT_NO_FATAL_FAILURE(start_server());
  {
    Http h(port_);
    ASSERT_NO_FATAL_FAILURE(command(h, add_stock("rt-1", "RT-A", 5)));
    ASSERT_NO_FATAL_FAILURE(command(h, add_stock("rt-2", "RT-B", 5)));
    // The change feed starts from a time to the second (a second earlier at most): the cut
    // is more than two seconds after the first events and one before the later ones.
    std::this_thread::sleep_for(2200ms);
    cut = iso8601_now();
    std::this_thread::sleep_for(1200ms);
    ASSERT_NO_FATAL_FAILURE(command(h, add_stock("rt-3", "RT-C", 5)));
    ASSERT_NO_FATAL_FAILURE(command(h, add_stock("rt-4", "RT-A", 1)));
    ASSERT_NO_FATAL_FAILURE(command(h, add_stock("rt-5", "RT-D", 1)));
    ASSERT_NO_FATAL_FAILURE(wait_handled(h, 5));
  }
  ASSERT_NO_FATAL_FAILURE(stop_server());

  Ran r = repair("reset-checkpoint '" + graph_.string() + "' --subscriber saga --time " + cut);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("subscriber 'saga': leases of 4 partition key ranges reset"), std::string::npos) << r.output;
  for (const auto& l : leases("saga")) {
    EXPECT_TRUE(l.continuation.empty());
    EXPECT_GT(l.start_time_ms, 0);
  }
  const Ran list = repair("checkpoints '" + graph_.string() + "'");
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_NE(list.output.find("changes after " + cut.substr(0, 19)), std::string::npos) << list.output;
  ASSERT_NO_FATAL_FAILURE(start_server());
  {
    Http h(port_);
    // Exactly the three events after the cut: 5 if the time were ignored, 0 if nothing was reset.
    EXPECT_TRUE(eventually([&] { return feed_view(h, "saga").checkpoint == 3; }, 20s))
        << "saga in " << feed_view(h, "saga").in;
    std::this_thread::sleep_for(1500ms);  // nothing more arrives
    EXPECT_EQ(feed_view(h, "saga").in, 3);
    EXPECT_EQ(feed_view(h, "projection").in, 0);  // untouched: it resumed at its leases
  }
  ASSERT_NO_FATAL_FAILURE(stop_server());
  // Ranges that delivered events hold continuations again (the start time applied once);
  // ranges with nothing after the time keep it.
  int continued = 0;
  for (const auto& l : leases("saga")) {
    if (!l.continuation.empty()) ++continued;
    else EXPECT_GT(l.start_time_ms, 0) << "range " << l.range;
  }
  EXPECT_GT(continued, 0);

  // From the start: every event again.
  r = repair("reset-checkpoint '" + graph_.string() + "' --subscriber saga --position 0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("to the start of the feed"), std::string::npos) << r.output;
  ASSERT_NO_FATAL_FAILURE(start_server());
  {
    Http h(port_);
    EXPECT_TRUE(eventually([&] { return feed_view(h, "saga").checkpoint == 5; }, 20s))
        << "saga in " << feed_view(h, "saga").in;
    EXPECT_EQ(feed_view(h, "saga").in, 5);
  }
}

TEST_F(CosmosRepairE2eTest, ResetCheckpointRefusesOtherPositions) {
  Ran r = repair("reset-checkpoint '" + graph_.string() + "' --subscriber saga --position 5");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--position 5: change feed 'feed' reads Cosmos DB store 'events', which has no global "
                          "positions"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("give --position 0 or --time"), std::string::npos) << r.output;
  // A graph with rocksdb stores still needs its data directory.
  r = repair("rebuild-projection '" + std::string(ORDERFLOW_SOURCE_DIR) + "/graphs/orders.yaml'");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("give --data-dir"), std::string::npos) << r.output;
}

}  // namespace
