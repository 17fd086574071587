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
#include "tests/support/e2e_http.h"
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
using orderflow::testing::Ran;
using orderflow::testing::ServerProcess;
using namespace orderflow::testing::e2e;

const std::string kReadToken = "read-token-0123456789abcdef";
const std::string kWriteToken = "write-token-0123456789abcdef";

Ran orderflow_cli(const std::string& args) {
  return orderflow::testing::run_shell(std::string(ORDERFLOW_BINARY) + " " + args);
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

}  // namespace
