// The admin API of a running `orderflow serve` (RocksDB stores on disk, real HTTP on
// loopback) and the command line's --server mode that calls it.
//
//   RebuildUnderLoadKeepsTheReadModelEqualToTheEvents
//                         `orderflow repair rebuild-projection --server URL` while clients send
//                         orders: afterwards every order and SKU in the read model equals the
//                         fold of its events, and every acknowledged command's events exist
//   ResetRedeliversAndCatchesUp
//                         POST .../subscribers/saga/reset while commands flow: the saga's
//                         checkpoint goes back, it is handed the events again (idempotent: the
//                         log does not grow from them) and catches up to the head; by time,
//                         and through `orderflow repair reset-checkpoint / checkpoints --server`
//   TokensGateTheAdminEndpoints
//                         no token 401, read role reads but gets 403 on POST, write role resets
//   BadInputIsRefusedWithTheReason
//                         malformed JSON, unknown subscriber or projection, both or neither of
//                         position and time, beyond the head, wrong method and content type;
//                         the CLI's exit codes for them
//   ParkedReactionsAreListedThroughTheServer
//                         graphs/orders.yaml with `parked: snapshots` on the saga: GET .../parked
//                         answers an empty list after orders settle (read role), a replay of an
//                         unknown id is 404 and needs the write role; `orderflow parked list /
//                         replay --server` and their exit codes
//   MockClusterOfTheServerIsReadThroughIt
//                         a kafka_source on `mock:1`: its dead-letter topic is listed through
//                         the server, which runs that cluster
//
// Parking through the binary: the event store is of kind faulty (tests and fault drills
// only: appends to one stream fail while a heal file is absent), so the running server parks
// a poison command, which is listed and, once healed, replayed through the admin API and CLI.
//   SagaParksAPoisonReactionAndReplaysItOnceHealed
//                         a saga with `parked: snapshots, park_after: 3`: the reservation of an
//                         order for the failing SKU is parked while the other orders confirm;
//                         GET .../parked (read role) and `orderflow parked list --server` show it
//                         with its reason; a replay while still failing keeps it; healed, `parked
//                         replay --server` commits it once, the order confirms, the list is empty
//                         and a second replay finds nothing; every acknowledged command's events
//                         are in the store, once
//   KafkaSourceParksAPoisonCommandAndDlqReplayCommitsItOnce
//                         a kafka_source with park_after 3 on a mock cluster: the poison command
//                         is dead-lettered as parked while the others commit, `orderflow dlq list
//                         --server --json` shows it with kind parked; healed, `dlq replay --server`
//                         commits it, and a second replay of the same dead letter writes nothing
#include "tests/support/e2e_http.h"
#include "tests/support/kafka.h"
#include "tests/support/server_process.h"
#include "tests/support/shell.h"
#include <gtest/gtest.h>

#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <thread>

namespace {

namespace fs = std::filesystem;
using orderflow::testing::MockKafka;
using orderflow::testing::Ran;
using orderflow::testing::ServerProcess;
using namespace orderflow::testing::e2e;

const std::string kReadToken = "read-token-0123456789abcdef";
const std::string kWriteToken = "write-token-0123456789abcdef";

Ran orderflow_cli(const std::string& args) {
  return orderflow::testing::run_shell(std::string(ORDERFLOW_BINARY) + " " + args);
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The events of `stream` written by `command_id`.
size_t events_of(const std::vector<Ev>& evs, const std::string& command_id) {
  size_t n = 0;
  for (const auto& e : evs) n += e.command_id == command_id;
  return n;
}

class AdminE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }

  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "orderflow-admin-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << "mkdtemp: " << strerror(errno);
    dir_ = tmpl;
    log_ = dir_ / "server.log";
    port_ = free_port();
    ASSERT_GT(port_, 0) << "no free loopback port";
  }

  void TearDown() override {
    if (server_) server_->kill_now();
    if (HasFailure()) orderflow::testing::print_log_tail(log_, 120);
    server_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void start(const std::string& graph = std::string(ORDERFLOW_SOURCE_DIR) + "/graphs/orders.yaml",
             std::vector<std::string> args = {}) {
    server_ = std::make_unique<ServerProcess>(dir_ / "data", log_, graph);
    server_->add_args(std::move(args));
    const std::string why = server_->start_ready(port_, 15s);
    ASSERT_TRUE(why.empty()) << why;
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  static const value* subscriber(const Reply& r, const std::string& id) {
    if (const auto* subs = arr(r.json, "subscribers"); subs != nullptr)
      for (const auto& s : *subs)
        if (str(s, "subscriber") == id) return &s;
    return nullptr;
  }

  // Every subscriber has checkpointed the whole log.
  static bool caught_up(Http& h) {
    const Reply r = h.get("/api/v1/admin/subscribers");
    const auto* subs = arr(r.json, "subscribers");
    if (r.status != 200 || subs == nullptr || subs->size() == 0) return false;
    for (const auto& s : *subs)
      if (num(s, "behind") != 0 || num(s, "checkpoint") != num(s, "head")) return false;
    return true;
  }

  int64_t saga_in(Http& h) {
    const Reply r = h.get("/api/v1/metrics");
    const value* n = metrics_node(r.json, "saga");
    return n != nullptr ? num(*n, "in") : -1;
  }

  // The read model of every order and SKU equals the fold of its events.
  void expect_read_model_equals_events(Http& h, const std::set<std::string>& orders,
                                       const std::set<std::string>& skus) {
    for (const auto& o : orders) {
      std::string why;
      auto evs = fetch_events(h, "order-" + o, &why);
      ASSERT_TRUE(evs.has_value()) << why;
      if (evs->empty()) continue;  // placed but rejected by the domain: no stream
      const FoldedOrder folded = fold_order(*evs);
      const Reply r = h.get("/api/v1/orders/" + o);
      EXPECT_EQ(str(r.json, "status"), folded.status) << o << ": " << r.describe();
      EXPECT_EQ(num(r.json, "version"), evs->back().version) << o << ": " << r.describe();
    }
    for (const auto& s : skus) {
      std::string why;
      auto evs = fetch_events(h, "sku-" + s, &why);
      ASSERT_TRUE(evs.has_value()) << why;
      const FoldedInventory folded = fold_inventory(*evs);
      const Reply r = h.get("/api/v1/inventory/" + s);
      EXPECT_EQ(num(r.json, "onHand"), folded.on_hand) << s << ": " << r.describe();
      EXPECT_EQ(num(r.json, "reserved"), folded.reserved) << s << ": " << r.describe();
      EXPECT_EQ(num(r.json, "version"), evs->back().version) << s << ": " << r.describe();
    }
  }

  // Clients sending orders (and some cancels) until stopped; what was acknowledged is kept.
  struct Load {
    std::atomic<bool> stop{false};
    std::mutex mu;
    std::set<std::string> orders;
    std::vector<std::pair<std::string, std::string>> acked;  // command id, stream
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    std::string last_failure;
  };
  void start_load(Load& load, int clients, const std::vector<std::string>& skus, int max_per_client = 400) {
    for (int c = 0; c < clients; ++c)
      load.threads.emplace_back([&load, this, skus, c, max_per_client] {
        Http h(port_);
        for (int i = 0; i < max_per_client && !load.stop; ++i) {
          const std::string order = "ld-" + std::to_string(c) + "-" + std::to_string(i);
          Cmd cmd = (i % 5 == 4) ? cancel_order("cx-" + order, "ld-" + std::to_string(c) + "-" + std::to_string(i - 1))
                                 : place_order("po-" + order, order, "u-" + std::to_string(c),
                                               {{skus[static_cast<size_t>(i) % skus.size()], 1 + i % 3, 100}});
          const Reply r = h.command(cmd.body);
          std::lock_guard lock(load.mu);
          if (cmd.kind == "placeOrder") load.orders.insert(order);
          if (r.status == 200) {
            load.acked.push_back({cmd.id, str(r.json, "stream")});
          } else if (r.status != 422) {  // a cancel the domain refuses is an answer too
            ++load.failures;
            load.last_failure = cmd.body + " -> " + r.describe();
          }
        }
      });
  }
  void stop_load(Load& load) {
    load.stop = true;
    for (auto& t : load.threads) t.join();
    load.threads.clear();
  }

  // Every acknowledged command's events are in its stream.
  void expect_nothing_lost(Http& h, const Load& load) {
    std::map<std::string, std::set<std::string>> by_stream;
    for (const auto& [id, stream] : load.acked) by_stream[stream].insert(id);
    for (const auto& [stream, ids] : by_stream) {
      std::string why;
      auto evs = fetch_events(h, stream, &why);
      ASSERT_TRUE(evs.has_value()) << why;
      std::set<std::string> have;
      for (const auto& e : *evs) have.insert(e.command_id);
      for (const auto& id : ids) EXPECT_TRUE(have.count(id)) << id << " acknowledged but not in " << stream;
    }
  }

  // ---- parking through the binary ----------------------------------------------------

  // A graph whose commits go through a faulty store failing `stream` until the heal file
  // exists; `source` and `saga` are the node lines that differ between the tests.
  fs::path write_graph(const std::string& stream, const std::string& source, const std::string& saga) {
    const fs::path graph = dir_ / "parking.yaml";
    fs::create_directories(dir_ / "data");
    std::ofstream(graph) << "graph: parking-e2e\n"
                            "stores:\n"
                            "  log: {kind: rocksdb, path: events}\n"
                            "  events: {kind: faulty, inner: log, fail_streams: "
                         << stream
                         << ", heal_file: healed}\n"
                            "  snapshots: {kind: rocksdb, path: snapshots}\n"
                            "nodes:\n"
                         << source
                         << "  - {id: http, kind: http_source}\n"
                            "  - {id: route, kind: route, params: {lanes: 4}}\n"
                            "  - {id: lanes, kind: command_lane, params: {events: events, snapshots: snapshots}}\n"
                            "  - {id: commit, kind: commit, params: {events: events, max_batch: 32}}\n"
                            "  - {id: feed, kind: change_feed, params: {events: events, batch: 50, poll_ms: 5}}\n"
                            "  - {id: projection, kind: projection, params: {snapshots: snapshots}}\n"
                         << saga
                         << "edges: [" << (source.empty() ? "" : "kin -> route, ")
                         << "http -> route, route -> lanes, lanes -> commit, commit -> feed, feed -> projection"
                         << (saga.empty() ? "" : ", feed -> saga, saga -> route") << "]\n";
    return graph;
  }

  void set_healed(bool healed) {
    if (healed)
      std::ofstream(heal_file()) << "healed\n";
    else
      fs::remove(heal_file());
  }

  // The graph's heal_file, relative to --data-dir.
  fs::path heal_file() const { return dir_ / "data" / "healed"; }

  std::vector<Ev> events(Http& h, const std::string& stream) {
    std::string why;
    auto evs = fetch_events(h, stream, &why);
    EXPECT_TRUE(evs.has_value()) << why;
    return evs.value_or(std::vector<Ev>());
  }

  double saga_gauge(Http& h, const std::string& name) {
    return gauge(metrics_node(h.get("/api/v1/metrics").json, "saga"), name);
  }

  fs::path dir_, log_;
  int port_ = 0;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(AdminE2eTest, RebuildUnderLoadKeepsTheReadModelEqualToTheEvents) {
  ASSERT_NO_FATAL_FAILURE(start());
  Http h(port_);
  const std::vector<std::string> skus = {"AD-A", "AD-B", "AD-C", "AD-D"};
  for (size_t i = 0; i < skus.size(); ++i) {
    const Reply r = h.command(add_stock("ad-stock-" + std::to_string(i), skus[i], 300).body);
    ASSERT_EQ(r.status, 200) << r.describe();
  }
  Load load;
  start_load(load, 3, skus);
  std::this_thread::sleep_for(700ms);
  const Ran rebuilt = orderflow_cli("repair rebuild-projection --server " + url());
  ASSERT_EQ(rebuilt.exit_code, 0) << rebuilt.output;
  EXPECT_NE(rebuilt.output.find("projection 'projection': dropped the snapshots in store 'snapshots', checkpoint "),
            std::string::npos)
      << rebuilt.output;
  EXPECT_NE(rebuilt.output.find(" -> 0 (head "), std::string::npos) << rebuilt.output;
  std::this_thread::sleep_for(700ms);
  stop_load(load);
  EXPECT_EQ(load.failures.load(), 0) << load.last_failure;
  ASSERT_GT(load.acked.size(), 20u) << "too little load to mean anything";

  ASSERT_TRUE(eventually([&] { return caught_up(h); }, 15s)) << h.get("/api/v1/admin/subscribers").describe();
  ASSERT_NO_FATAL_FAILURE(expect_nothing_lost(h, load));
  ASSERT_NO_FATAL_FAILURE(expect_read_model_equals_events(h, load.orders, {skus.begin(), skus.end()}));
  // The projection really re-folded the log (its output covers the head again).
  const Reply subs = h.get("/api/v1/admin/subscribers");
  const value* p = subscriber(subs, "projection");
  ASSERT_NE(p, nullptr) << subs.describe();
  EXPECT_EQ(num(*p, "covered"), num(*p, "head")) << subs.describe();
  EXPECT_NE(orderflow::testing::run_shell("grep -c 'projection rebuilding from the event store' '" + log_.string() + "'")
                .output,
            "0\n");
}

TEST_F(AdminE2eTest, ResetRedeliversAndCatchesUp) {
  ASSERT_NO_FATAL_FAILURE(start());
  Http h(port_);
  ASSERT_EQ(h.command(add_stock("rs-1", "RS-A", 50).body).status, 200);
  ASSERT_EQ(h.command(place_order("rs-2", "rs-o1", "u-1", {{"RS-A", 2, 100}}).body).status, 200);
  ASSERT_TRUE(eventually([&] { return str(h.get("/api/v1/orders/rs-o1").json, "status") == "confirmed"; }, 5s));
  ASSERT_TRUE(eventually([&] { return caught_up(h); }, 5s));

  Reply subs = h.get("/api/v1/admin/subscribers");
  ASSERT_EQ(subs.status, 200) << subs.describe();
  EXPECT_FALSE(str(subs.json, "instance").empty()) << subs.describe();
  const value* saga = subscriber(subs, "saga");
  ASSERT_NE(saga, nullptr) << subs.describe();
  EXPECT_EQ(str(*saga, "feed"), "feed");
  EXPECT_EQ(str(*saga, "kind"), "saga");
  EXPECT_TRUE(flag(*saga, "resettable"));
  const value* proj = subscriber(subs, "projection");
  ASSERT_NE(proj, nullptr) << subs.describe();
  EXPECT_EQ(str(*proj, "kind"), "projection");
  const int64_t head = num(*saga, "head");
  ASSERT_GE(head, 4);
  const int64_t before = saga_in(h);

  // While commands flow: the saga goes back to 0, is handed everything again, catches up.
  Load load;
  start_load(load, 2, {"RS-A"}, 30);
  Reply r = h.post("/api/v1/admin/subscribers/saga/reset", R"({"position":0})");
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(str(r.json, "subscriber"), "saga");
  EXPECT_GE(num(r.json, "from"), head);
  EXPECT_EQ(num(r.json, "to"), 0);
  stop_load(load);
  EXPECT_EQ(load.failures.load(), 0) << load.last_failure;
  EXPECT_TRUE(eventually([&] { return saga_in(h) >= before + head && caught_up(h); }, 10s))
      << "saga in " << saga_in(h) << " (before " << before << ", head " << head << ")";
  ASSERT_NO_FATAL_FAILURE(expect_nothing_lost(h, load));
  std::set<std::string> orders = load.orders;
  orders.insert("rs-o1");
  ASSERT_NO_FATAL_FAILURE(expect_read_model_equals_events(h, orders, {"RS-A"}));
  // Redelivered reactions carry the ids of the first ones: no order reserved twice.
  std::string why;
  auto stock = fetch_events(h, "sku-RS-A", &why);
  ASSERT_TRUE(stock.has_value()) << why;
  std::set<std::string> ids;
  for (const auto& e : *stock) EXPECT_TRUE(ids.insert(e.command_id).second) << "twice: " << e.command_id;

  // By time: far in the past is 0, in the future is the head.
  const Reply now = h.get("/api/v1/admin/subscribers");
  ASSERT_NE(subscriber(now, "projection"), nullptr) << now.describe();
  const int64_t head2 = num(*subscriber(now, "projection"), "head");
  r = h.post("/api/v1/admin/subscribers/projection/reset", R"({"time":"2000-01-01T00:00:00Z"})");
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(num(r.json, "to"), 0);
  ASSERT_TRUE(eventually([&] { return caught_up(h); }, 10s));
  r = h.post("/api/v1/admin/subscribers/projection/reset", R"({"time":"2100-01-01T00:00:00Z"})");
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(num(r.json, "to"), head2);

  // The command line, same output as offline.
  Ran cli = orderflow_cli("repair reset-checkpoint --server " + url() + " --subscriber saga --position 1");
  ASSERT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_TRUE(std::regex_search(cli.output, std::regex("subscriber 'saga': checkpoint \\d+ -> 1 \\(head " +
                                                       std::to_string(head2) + "\\)")))
      << cli.output;
  ASSERT_TRUE(eventually([&] { return caught_up(h); }, 10s));
  cli = orderflow_cli("repair checkpoints --server " + url());
  ASSERT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_NE(cli.output.find("change feed 'feed' (store 'events'): head " + std::to_string(head2)), std::string::npos)
      << cli.output;
  EXPECT_TRUE(std::regex_search(cli.output, std::regex("saga\\s+" + std::to_string(head2) + "\\s+0\\s+-")))
      << cli.output;
  EXPECT_TRUE(std::regex_search(cli.output, std::regex("projection\\s+" + std::to_string(head2) + "\\s+0\\s+" +
                                                       std::to_string(head2))))
      << cli.output;
}

TEST_F(AdminE2eTest, TokensGateTheAdminEndpoints) {
  const fs::path tokens = dir_ / "tokens";
  std::ofstream(tokens) << "read " << kReadToken << "\nwrite " << kWriteToken << "\n";
  ASSERT_NO_FATAL_FAILURE(start(std::string(ORDERFLOW_SOURCE_DIR) + "/graphs/orders.yaml",
                                {"--token-file", tokens.string()}));
  Http anonymous(port_), reader(port_, 10s, {kReadToken, ""}), writer(port_, 10s, {kWriteToken, ""});
  EXPECT_EQ(anonymous.get("/api/v1/admin/subscribers").status, 401);
  EXPECT_EQ(anonymous.post("/api/v1/admin/subscribers/saga/reset", R"({"position":0})").status, 401);
  EXPECT_EQ(reader.get("/api/v1/admin/subscribers").status, 200);
  EXPECT_EQ(reader.get("/api/v1/admin/dead-letters").status, 200);
  for (const auto& [path, body] : std::vector<std::pair<std::string, std::string>>{
           {"/api/v1/admin/subscribers/saga/reset", R"({"position":0})"},
           {"/api/v1/admin/projections/projection/rebuild", ""},
           {"/api/v1/admin/dead-letters/replay", R"({"all":true})"}}) {
    const Reply r = reader.post(path, body);
    EXPECT_EQ(r.status, 403) << path << ": " << r.describe();
    EXPECT_TRUE(is_error_body(r, "forbidden")) << r.describe();
  }
  Reply r = writer.post("/api/v1/admin/subscribers/saga/reset", R"({"position":0})");
  EXPECT_EQ(r.status, 200) << r.describe();
  r = writer.post("/api/v1/admin/projections/projection/rebuild", "");
  EXPECT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(str(r.json, "projection"), "projection");
  EXPECT_EQ(str(r.json, "store"), "snapshots");

  // The command line: the token from a file (its first line) or ORDERFLOW_TOKEN.
  const fs::path read_file = dir_ / "read.token", write_file = dir_ / "write.token";
  std::ofstream(read_file) << kReadToken << "\n";
  std::ofstream(write_file) << kWriteToken << "\n";
  Ran cli = orderflow_cli("repair checkpoints --server " + url());
  EXPECT_EQ(cli.exit_code, 1) << cli.output;
  EXPECT_NE(cli.output.find("bearer token"), std::string::npos) << cli.output;
  cli = orderflow_cli("repair checkpoints --server " + url() + " --token-file " + read_file.string());
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  cli = orderflow_cli("repair reset-checkpoint --server " + url() + " --token-file " + read_file.string() +
                      " --subscriber saga --position 0");
  EXPECT_EQ(cli.exit_code, 1) << cli.output;
  EXPECT_NE(cli.output.find("write role"), std::string::npos) << cli.output;
  cli = orderflow_cli("repair reset-checkpoint --server " + url() + " --token-file " + write_file.string() +
                      " --subscriber saga --position 0");
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  cli = orderflow::testing::run_shell("ORDERFLOW_TOKEN=" + kWriteToken + " " + ORDERFLOW_BINARY +
                                      " repair rebuild-projection --server " + url());
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  cli = orderflow::testing::run_shell("ORDERFLOW_TOKEN=" + kReadToken + " " + ORDERFLOW_BINARY +
                                      " dlq list --server " + url());
  EXPECT_EQ(cli.exit_code, 2) << cli.output;  // no kafka_source here: as offline, bad usage
  EXPECT_NE(cli.output.find("runs no kafka_source"), std::string::npos) << cli.output;
}

TEST_F(AdminE2eTest, BadInputIsRefusedWithTheReason) {
  ASSERT_NO_FATAL_FAILURE(start());
  Http h(port_);
  ASSERT_EQ(h.command(add_stock("bi-1", "BI-A", 5).body).status, 200);
  ASSERT_TRUE(eventually([&] { return caught_up(h); }, 5s));

  struct Case {
    std::string path, body;
    int status;
    std::string says;
  };
  for (const auto& c : std::vector<Case>{
           {"/api/v1/admin/subscribers/saga/reset", R"({"position":)", 400, "malformed JSON"},
           {"/api/v1/admin/subscribers/saga/reset", R"([1,2])", 400, "malformed JSON"},
           {"/api/v1/admin/subscribers/saga/reset", R"({})", 400, "exactly one"},
           {"/api/v1/admin/subscribers/saga/reset", R"({"position":0,"time":"2026-12-02T03:00:00Z"})", 400,
            "exactly one"},
           {"/api/v1/admin/subscribers/saga/reset", R"({"position":-1})", 400, "whole number"},
           {"/api/v1/admin/subscribers/saga/reset", R"({"position":1.5})", 400, "whole number"},
           {"/api/v1/admin/subscribers/saga/reset", R"({"position":"3"})", 400, "whole number"},
           {"/api/v1/admin/subscribers/saga/reset", R"({"position":99999})", 400, "beyond the head"},
           {"/api/v1/admin/subscribers/saga/reset", R"({"time":"yesterday"})", 400, "ISO 8601"},
           {"/api/v1/admin/subscribers/nope/reset", R"({"position":0})", 404, "no subscriber 'nope'"},
           {"/api/v1/admin/projections/nope/rebuild", "", 404, "no projection 'nope'"},
           {"/api/v1/admin/projections/saga/rebuild", "", 404, "no projection 'saga'"},
           {"/api/v1/admin/dead-letters/replay", R"({"all":true})", 404, "runs no kafka_source"},
           {"/api/v1/admin/dead-letters/replay", R"({"offset":3})", 400, "partition"},
       }) {
    const Reply r = h.post(c.path, c.body);
    EXPECT_EQ(r.status, c.status) << c.path << " " << c.body << ": " << r.describe();
    EXPECT_TRUE(is_error_body(r)) << r.describe();
    EXPECT_NE(error_message(r).find(c.says), std::string::npos) << c.body << ": " << r.describe();
  }
  Reply r = h.get("/api/v1/admin/subscribers/saga/reset");
  EXPECT_EQ(r.status, 405) << r.describe();
  r = h.post("/api/v1/admin/subscribers", "{}");
  EXPECT_EQ(r.status, 405) << r.describe();
  r = h.get("/api/v1/admin/nothing-here");
  EXPECT_EQ(r.status, 404) << r.describe();
  r = h.post("/api/v1/admin/subscribers/saga/reset", R"({"position":0})", "text/plain");
  EXPECT_EQ(r.status, 415) << r.describe();
  r = h.get("/api/v1/admin/dead-letters?limit=0");
  EXPECT_EQ(r.status, 400) << r.describe();
  r = h.get("/api/v1/admin/dead-letters");
  ASSERT_EQ(r.status, 200) << r.describe();
  const auto* sources = arr(r.json, "sources");
  ASSERT_NE(sources, nullptr) << r.describe();
  EXPECT_EQ(sources->size(), 0u) << r.describe();
  EXPECT_FALSE(str(r.json, "instance").empty()) << r.describe();

  // Nothing moved.
  EXPECT_TRUE(caught_up(h));

  Ran cli = orderflow_cli("repair reset-checkpoint --server " + url() + " --subscriber nope --position 0");
  EXPECT_EQ(cli.exit_code, 2) << cli.output;
  EXPECT_NE(cli.output.find("no subscriber 'nope'"), std::string::npos) << cli.output;
  cli = orderflow_cli("repair reset-checkpoint --server " + url() + " --subscriber saga --position 99999");
  EXPECT_EQ(cli.exit_code, 2) << cli.output;
  cli = orderflow_cli("repair reset-checkpoint --server " + url() + " --subscriber saga");
  EXPECT_EQ(cli.exit_code, 2) << cli.output;
  cli = orderflow_cli("repair checkpoints " + std::string(ORDERFLOW_SOURCE_DIR) + "/graphs/orders.yaml --server " +
                      url());
  EXPECT_EQ(cli.exit_code, 2) << cli.output;
  cli = orderflow_cli("repair checkpoints");
  EXPECT_EQ(cli.exit_code, 2) << cli.output;
  cli = orderflow_cli("repair checkpoints --server ftp://x");
  EXPECT_EQ(cli.exit_code, 2) << cli.output;
  const int closed = free_port();
  cli = orderflow_cli("repair checkpoints --server http://127.0.0.1:" + std::to_string(closed));
  EXPECT_EQ(cli.exit_code, 1) << cli.output;
  EXPECT_NE(cli.output.find("cannot reach"), std::string::npos) << cli.output;
}

TEST_F(AdminE2eTest, ParkedReactionsAreListedThroughTheServer) {
  std::string yaml;
  {
    std::ifstream in(std::string(ORDERFLOW_SOURCE_DIR) + "/graphs/orders.yaml");
    yaml.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::string saga = "{id: saga, kind: saga}";
  ASSERT_NE(yaml.find(saga), std::string::npos);
  yaml.replace(yaml.find(saga), saga.size(), "{id: saga, kind: saga, params: {parked: snapshots, park_after: 5}}");
  const fs::path graph = dir_ / "parking.yaml";
  std::ofstream(graph) << yaml;
  const fs::path tokens = dir_ / "tokens";
  std::ofstream(tokens) << "read " << kReadToken << "\nwrite " << kWriteToken << "\n";
  ASSERT_NO_FATAL_FAILURE(start(graph.string(), {"--token-file", tokens.string()}));
  Http reader(port_, 10s, {kReadToken, ""}), writer(port_, 10s, {kWriteToken, ""});
  Reply r = writer.post("/api/v1/commands?wait=committed",
                        R"({"commandId":"s-1","addStock":{"sku":"A","quantity":5}})");
  ASSERT_EQ(r.status, 200) << r.describe();
  r = writer.post("/api/v1/commands?wait=committed",
                  R"({"commandId":"p-1","placeOrder":{"orderId":"o1","customerId":"c","lines":[{"sku":"A","quantity":1,"unitPriceCents":5}]}})");
  ASSERT_EQ(r.status, 200) << r.describe();
  ASSERT_TRUE(eventually([&] { return caught_up(reader); }, 10s));

  EXPECT_EQ(Http(port_).get("/api/v1/admin/parked").status, 401);
  r = reader.get("/api/v1/admin/parked");
  ASSERT_EQ(r.status, 200) << r.describe();
  const auto* parked = arr(r.json, "parked");
  ASSERT_NE(parked, nullptr) << r.describe();
  EXPECT_EQ(parked->size(), 0u) << "nothing failed, nothing parked";
  EXPECT_EQ(reader.post("/api/v1/admin/parked/replay", R"({"all":true})").status, 403);
  r = writer.post("/api/v1/admin/parked/replay", R"({"command_id":"nope"})");
  EXPECT_EQ(r.status, 404) << r.describe();
  r = writer.post("/api/v1/admin/parked/replay", R"({"all":true,"command_id":"x"})");
  EXPECT_EQ(r.status, 400) << r.describe();
  r = writer.post("/api/v1/admin/parked/replay", R"({"all":true})");
  EXPECT_EQ(r.status, 200) << r.describe();
  EXPECT_NE(arr(r.json, "replayed"), nullptr) << r.describe();

  const fs::path read_file = dir_ / "read.token", write_file = dir_ / "write.token";
  std::ofstream(read_file) << kReadToken << "\n";
  std::ofstream(write_file) << kWriteToken << "\n";
  Ran cli = orderflow_cli("parked list --server " + url() + " --token-file " + read_file.string());
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_NE(cli.output.find("0 parked reactions"), std::string::npos) << cli.output;
  cli = orderflow_cli("parked list --json --server " + url() + " --token-file " + read_file.string());
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_NE(cli.output.find("[]"), std::string::npos) << cli.output;
  cli = orderflow_cli("parked replay --all --server " + url() + " --token-file " + read_file.string());
  EXPECT_EQ(cli.exit_code, 1) << cli.output;
  EXPECT_NE(cli.output.find("write role"), std::string::npos) << cli.output;
  cli = orderflow_cli("parked replay --command-id nope --server " + url() + " --token-file " + write_file.string());
  EXPECT_EQ(cli.exit_code, 1) << cli.output;
  EXPECT_NE(cli.output.find("no parked command"), std::string::npos) << cli.output;
  cli = orderflow_cli("parked replay --server " + url() + " --token-file " + write_file.string());
  EXPECT_EQ(cli.exit_code, 2) << cli.output;
  cli = orderflow_cli("parked list");
  EXPECT_EQ(cli.exit_code, 2) << cli.output;
}

TEST_F(AdminE2eTest, MockClusterOfTheServerIsReadThroughIt) {
  const fs::path graph = dir_ / "graph.yaml";
  std::ofstream(graph) << "graph: admin-mock\n"
                          "stores:\n"
                          "  events: {kind: memory}\n"
                          "  snapshots: {kind: memory}\n"
                          "nodes:\n"
                          "  - {id: kin, kind: kafka_source, params: {brokers: \"mock:1\", group: admin-mock}}\n"
                          "  - {id: http, kind: http_source}\n"
                          "  - {id: route, kind: route, params: {lanes: 2}}\n"
                          "  - {id: lanes, kind: command_lane, params: {events: events, snapshots: snapshots}}\n"
                          "  - {id: commit, kind: commit, params: {events: events}}\n"
                          "  - {id: feed, kind: change_feed, params: {events: events, poll_ms: 5}}\n"
                          "  - {id: projection, kind: projection, params: {snapshots: snapshots}}\n"
                          "edges: [kin -> route, http -> route, route -> lanes, lanes -> commit, commit -> feed,"
                          " feed -> projection]\n";
  ASSERT_NO_FATAL_FAILURE(start(graph.string()));
  Http h(port_);
  Reply r = h.get("/api/v1/admin/dead-letters");
  ASSERT_EQ(r.status, 200) << r.describe();
  const auto* sources = arr(r.json, "sources");
  ASSERT_NE(sources, nullptr) << r.describe();
  ASSERT_EQ(sources->size(), 1u) << r.describe();
  EXPECT_EQ(str(sources->at(0), "node"), "kin");
  EXPECT_EQ(str(sources->at(0), "topic"), "orders.commands.dlq");
  EXPECT_EQ(str(sources->at(0), "brokers").rfind("127.0.0.1:", 0), 0u) << r.describe();
  EXPECT_EQ(arr(sources->at(0), "dead_letters")->size(), 0u);
  EXPECT_EQ(h.get("/api/v1/admin/dead-letters?node=nope").status, 404);

  const Ran cli = orderflow_cli("dlq list --server " + url());
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_NE(cli.output.find("0 dead letters in orders.commands.dlq (kafka_source 'kin', brokers 127.0.0.1:"),
            std::string::npos)
      << cli.output;
  // A feed on a memory store has global positions: its subscriber can be reset too.
  r = h.post("/api/v1/admin/subscribers/projection/reset", R"({"position":0})");
  EXPECT_EQ(r.status, 200) << r.describe();
}

TEST_F(AdminE2eTest, SagaParksAPoisonReactionAndReplaysItOnceHealed) {
  const fs::path tokens = dir_ / "tokens", read_file = dir_ / "read.token", write_file = dir_ / "write.token";
  std::ofstream(tokens) << "read " << kReadToken << "\nwrite " << kWriteToken << "\n";
  std::ofstream(read_file) << kReadToken << "\n";
  std::ofstream(write_file) << kWriteToken << "\n";
  const fs::path graph =
      write_graph("sku-POISON", "", "  - {id: saga, kind: saga, params: {parked: snapshots, park_after: 3}}\n");
  set_healed(true);  // stock for every SKU first, the poison one included
  ASSERT_NO_FATAL_FAILURE(start(graph.string(), {"--token-file", tokens.string()}));
  Http reader(port_, 10s, {kReadToken, ""}), writer(port_, 10s, {kWriteToken, ""});
  const int64_t started_ms = now_ms();

  std::vector<Cmd> acked;  // every command the server acknowledged (200 after the commit)
  auto send = [&](const Cmd& c) {
    const Reply r = writer.command(c.body);
    ASSERT_EQ(r.status, 200) << c.id << ": " << r.describe();
    acked.push_back(c);
  };
  for (const std::string sku : {"POISON", "A", "B"}) ASSERT_NO_FATAL_FAILURE(send(add_stock("s-" + sku, sku, 10)));
  set_healed(false);

  // The poison order first, then healthy ones: their reactions succeed while its reservation
  // keeps failing, which is what makes it poison rather than an outage.
  ASSERT_NO_FATAL_FAILURE(send(place_order("p-poison", "o-poison", "c", {{"POISON", 2, 100}})));
  std::vector<std::string> healthy;
  for (int i = 0; i < 6; ++i) {
    const std::string order = "o-" + std::to_string(i);
    ASSERT_NO_FATAL_FAILURE(send(place_order("p-" + order, order, "c", {{i % 2 ? "A" : "B", 1, 100}})));
    healthy.push_back(order);
  }

  const std::string id = "saga/order-o-poison/1/reserve/POISON";
  Reply r;
  ASSERT_TRUE(eventually(
      [&] {
        r = reader.get("/api/v1/admin/parked");
        const auto* parked = arr(r.json, "parked");
        return r.status == 200 && parked != nullptr && parked->size() == 1;
      },
      20s))
      << "the poison reaction was never parked: " << r.describe();
  {
    const value& p = arr(r.json, "parked")->at(0);
    EXPECT_EQ(str(p, "node"), "saga") << r.describe();
    EXPECT_EQ(str(p, "command_id"), id) << r.describe();
    EXPECT_EQ(str(p, "command"), "reserveStock") << r.describe();
    EXPECT_EQ(str(p, "stream"), "sku-POISON") << r.describe();
    EXPECT_EQ(str(p, "event_stream"), "order-o-poison") << r.describe();
    EXPECT_EQ(num(p, "event_version"), 1) << r.describe();
    EXPECT_GT(num(p, "event_position"), 0) << r.describe();
    const std::string reason = str(p, "reason");
    EXPECT_EQ(reason.rfind("parked after ", 0), 0u) << reason;
    EXPECT_NE(reason.find("while other reactions succeeded"), std::string::npos) << reason;
    EXPECT_NE(reason.find("injected fault (store 'events', kind faulty): appends to stream 'sku-POISON' fail"),
              std::string::npos)
        << reason;
    EXPECT_GE(num(p, "attempts"), 3) << r.describe();
    EXPECT_GE(num(p, "parked_at_ms"), started_ms) << r.describe();
    EXPECT_LE(num(p, "parked_at_ms"), now_ms()) << r.describe();
  }
  // The poison's checkpoint moved on: the other orders settle while it stays parked.
  for (const auto& o : healthy)
    EXPECT_TRUE(eventually([&] { return str(reader.get("/api/v1/orders/" + o).json, "status") == "confirmed"; }, 10s))
        << o << ": " << reader.get("/api/v1/orders/" + o).describe();
  EXPECT_TRUE(eventually([&] { return caught_up(reader); }, 10s)) << "the saga's checkpoint did not pass the poison";
  EXPECT_EQ(str(reader.get("/api/v1/orders/o-poison").json, "status"), "placed");
  EXPECT_EQ(events(reader, "sku-POISON").size(), 1u) << "only the stock added before the fault";
  EXPECT_EQ(saga_gauge(reader, "parked"), 1);
  EXPECT_EQ(Http(port_).get("/api/v1/admin/parked").status, 401);

  Ran cli = orderflow_cli("parked list --server " + url() + " --token-file " + read_file.string());
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_NE(cli.output.find("1 parked reaction (server " + url() + ")"), std::string::npos) << cli.output;
  EXPECT_NE(cli.output.find(id), std::string::npos) << cli.output;
  EXPECT_NE(cli.output.find("order-o-poison/1"), std::string::npos) << cli.output;
  EXPECT_NE(cli.output.find("injected fault"), std::string::npos) << cli.output;
  cli = orderflow_cli("parked list --json --server " + url() + " --token-file " + read_file.string());
  ASSERT_EQ(cli.exit_code, 0) << cli.output;
  {
    std::error_code ec;
    const value listed = value::parse(cli.output, ec);
    ASSERT_FALSE(ec) << cli.output;
    ASSERT_TRUE(listed.is_array() && listed.as_array().size() == 1) << cli.output;
    EXPECT_EQ(str(listed.as_array().at(0), "command_id"), id) << cli.output;
    EXPECT_EQ(str(listed.as_array().at(0), "stream"), "sku-POISON") << cli.output;
  }

  // Still failing: a replay keeps it parked and says why.
  cli = orderflow_cli("parked replay --command-id " + id + " --timeout 5 --server " + url() + " --token-file " +
                      write_file.string());
  EXPECT_EQ(cli.exit_code, 1) << cli.output;
  EXPECT_NE(cli.output.find(id + " kept: "), std::string::npos) << cli.output;
  EXPECT_NE(cli.output.find("injected fault"), std::string::npos) << cli.output;
  EXPECT_EQ(arr(reader.get("/api/v1/admin/parked").json, "parked")->size(), 1u);

  // Healed: the replay commits it once and the order settles.
  set_healed(true);
  cli = orderflow_cli("parked replay --command-id " + id + " --server " + url() + " --token-file " +
                      write_file.string());
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_NE(cli.output.find("replayed " + id + ": committed"), std::string::npos) << cli.output;
  EXPECT_NE(cli.output.find("1 replayed, 0 kept"), std::string::npos) << cli.output;
  EXPECT_TRUE(eventually([&] { return str(reader.get("/api/v1/orders/o-poison").json, "status") == "confirmed"; },
                         10s))
      << reader.get("/api/v1/orders/o-poison").describe();
  r = reader.get("/api/v1/admin/parked");
  ASSERT_NE(arr(r.json, "parked"), nullptr) << r.describe();
  EXPECT_EQ(arr(r.json, "parked")->size(), 0u) << r.describe();
  EXPECT_TRUE(eventually([&] { return saga_gauge(reader, "parked") == 0; }, 5s));
  cli = orderflow_cli("parked list --server " + url() + " --token-file " + read_file.string());
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_NE(cli.output.find("0 parked reactions"), std::string::npos) << cli.output;

  // Replayed once: a second replay finds nothing, and nothing is written twice.
  r = writer.post("/api/v1/admin/parked/replay", R"({"command_id":")" + id + R"("})");
  EXPECT_EQ(r.status, 404) << r.describe();
  cli = orderflow_cli("parked replay --command-id " + id + " --server " + url() + " --token-file " +
                      write_file.string());
  EXPECT_EQ(cli.exit_code, 1) << cli.output;
  EXPECT_NE(cli.output.find("no parked command"), std::string::npos) << cli.output;
  ASSERT_TRUE(eventually([&] { return caught_up(reader); }, 10s));
  const auto poison = events(reader, "sku-POISON");
  EXPECT_EQ(events_of(poison, id), 1u) << "the parked reservation written once";
  EXPECT_EQ(poison.size(), 2u) << "stock added, then reserved once";
  const FoldedInventory inv = fold_inventory(poison);
  EXPECT_EQ(inv.reserved, 2);
  EXPECT_EQ(num(reader.get("/api/v1/inventory/POISON").json, "reserved"), 2);

  // Nothing acknowledged was lost: every command's events are in its stream, once.
  for (const Cmd& c : acked) {
    const auto evs = events(reader, c.stream);
    EXPECT_EQ(events_of(evs, c.id), 1u) << c.id << " in " << c.stream;
    if (c.kind == "placeOrder") {
      EXPECT_EQ(fold_order(evs).status, "confirmed") << c.stream;
    }
  }
}

TEST_F(AdminE2eTest, KafkaSourceParksAPoisonCommandAndDlqReplayCommitsItOnce) {
  MockKafka kafka(1);
  kafka.create_topic("orders.commands", 2);
  kafka.create_topic("orders.commands.dlq", 1);
  const std::string group = "parking-e2e";
  const fs::path graph = write_graph(
      "sku-KPOISON",
      "  - {id: kin, kind: kafka_source, params: {brokers: \"" + kafka.bootstrap() + "\", group: " + group +
          ", commit_interval_ms: 50, park_after: 3, properties: \"fetch.wait.max.ms=50\"}}\n",
      "");
  ASSERT_NO_FATAL_FAILURE(start(graph.string()));
  Http h(port_);

  const std::string poison_id = "k-poison";
  kafka.produce("orders.commands", "sku-KPOISON", add_stock(poison_id, "KPOISON", 7).body);
  std::vector<Cmd> healthy;
  for (int i = 0; i < 20; ++i) {
    healthy.push_back(add_stock("k-" + std::to_string(i), "K" + std::to_string(i % 4), 1 + i));
    kafka.produce("orders.commands", healthy.back().stream, healthy.back().body);
  }
  ASSERT_TRUE(kafka.flush());

  // Parked: dead-lettered with its reason while the others commit, and the group moves past it.
  Reply r;
  const value* dead = nullptr;
  ASSERT_TRUE(eventually(
      [&] {
        r = h.get("/api/v1/admin/dead-letters");
        const auto* sources = arr(r.json, "sources");
        if (r.status != 200 || sources == nullptr || sources->size() != 1) return false;
        const auto* letters = arr(sources->at(0), "dead_letters");
        dead = letters != nullptr && letters->size() == 1 ? &letters->at(0) : nullptr;
        return dead != nullptr;
      },
      30s))
      << "the poison command was never parked: " << r.describe() << "\nthe source's figures: " << [&] {
           // Whether it fetched nothing or kept failing the poison (partitions, consumer_lag,
           // in_flight, parked, ...), as the metrics say.
           const value* n = metrics_node(h.get("/api/v1/metrics").json, "kin");
           return n != nullptr ? utility::conversions::to_utf8string(n->serialize()) : std::string("(none)");
         }();
  EXPECT_EQ(str(*dead, "kind"), "parked") << r.describe();
  EXPECT_EQ(str(*dead, "key"), "sku-KPOISON") << r.describe();
  EXPECT_TRUE(flag(*dead, "replayable")) << r.describe();
  const std::string reason = str(*dead, "reason");
  EXPECT_EQ(reason.rfind("parked after ", 0), 0u) << reason;
  EXPECT_NE(reason.find("appends to stream 'sku-KPOISON' fail"), std::string::npos) << reason;
  const int64_t partition = num(*dead, "partition"), offset = num(*dead, "offset");
  ASSERT_TRUE(eventually([&] { return kafka.caught_up(group, "orders.commands"); }, 20s))
      << "the poison's partition did not move on";
  for (const Cmd& c : healthy) EXPECT_EQ(events_of(events(h, c.stream), c.id), 1u) << c.id;
  EXPECT_TRUE(events(h, "sku-KPOISON").empty());

  Ran cli = orderflow_cli("dlq list --json --server " + url());
  ASSERT_EQ(cli.exit_code, 0) << cli.output;
  {
    std::error_code ec;
    const value listed = value::parse(cli.output, ec);
    ASSERT_FALSE(ec) << cli.output;
    ASSERT_TRUE(listed.is_array() && listed.as_array().size() == 1) << cli.output;
    EXPECT_EQ(str(listed.as_array().at(0), "kind"), "parked") << cli.output;
    EXPECT_EQ(str(listed.as_array().at(0), "key"), "sku-KPOISON") << cli.output;
    EXPECT_EQ(str(listed.as_array().at(0), "reason"), reason) << cli.output;
  }

  // Healed: the replay commits it once; replaying the same dead letter again is a repeat.
  set_healed(true);
  const std::string where = " --partition " + std::to_string(partition) + " --offset " + std::to_string(offset);
  cli = orderflow_cli("dlq replay --server " + url() + where);
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_NE(cli.output.find("replayed "), std::string::npos) << cli.output;
  EXPECT_TRUE(eventually([&] { return events_of(events(h, "sku-KPOISON"), poison_id) == 1; }, 20s))
      << "the replayed command was not committed";
  cli = orderflow_cli("dlq replay --server " + url() + where);
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  ASSERT_TRUE(eventually([&] { return kafka.caught_up(group, "orders.commands"); }, 20s))
      << "the second replay was not consumed";
  const auto poison = events(h, "sku-KPOISON");
  EXPECT_EQ(poison.size(), 1u) << "committed once";
  EXPECT_EQ(fold_inventory(poison).on_hand, 7);
  ASSERT_TRUE(eventually([&] { return caught_up(h); }, 10s));
  EXPECT_EQ(num(h.get("/api/v1/inventory/KPOISON").json, "onHand"), 7);
  r = h.get("/api/v1/admin/dead-letters");
  EXPECT_EQ(arr(arr(r.json, "sources")->at(0), "dead_letters")->size(), 1u) << "a replay does not add a dead letter";
}

}  // namespace
