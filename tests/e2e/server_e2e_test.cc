// End-to-end tests of `orderflow serve`: the real binary, started with fork/exec on a free
// loopback port and a fresh data directory, driven over HTTP with cpprestsdk.
//
//   HttpApiErrorsAndObservability   status codes and JSON shapes of errors, health, metrics, graph
//   CommandLifecycleAndCleanStop    commit, 202, duplicates, rejection, the saga, SIGTERM -> 0
//   KillDuringLoadLosesNothingAcknowledged
//                                   concurrent clients, kill -9 under load, restart on the same
//                                   data dir, then the invariants of docs/architecture.md checked over HTTP
//   ConcurrentRetryOfSameCommandIsIdempotent
//                                   a retry racing its original gets the original's result
//
// Every loop is bounded in count and time; the server's stderr goes to a log file in the
// test's temporary directory and is printed when a test fails.
#include "tests/support/net.h"
#include "tests/support/server_process.h"
#include "tests/support/e2e_http.h"
#include <gtest/gtest.h>

#include <utility>  // before cpprestsdk: Boost.Asio's C++20 awaitable.hpp uses std::exchange
#define _TURN_OFF_PLATFORM_STRING  // no U() macro: it breaks gtest's templates (template <class U>)
#include <cpprest/http_client.h>
#include <cpprest/json.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using orderflow::testing::describe_wait_status;
using orderflow::testing::ServerProcess;
using Clock = std::chrono::steady_clock;
using web::json::value;
using namespace std::chrono_literals;

using namespace orderflow::testing::e2e;

// ---- fixture ----------------------------------------------------------------------

class ServerE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }

  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "orderflow-e2e-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << "mkdtemp: " << strerror(errno);
    dir_ = tmpl;
    log_ = dir_ / "server.log";
    port_ = free_port();
    ASSERT_GT(port_, 0) << "no free loopback port";
    server_ = std::make_unique<ServerProcess>(dir_ / "data", log_);
  }

  void TearDown() override {
    if (server_) server_->kill_now();
    if (HasFailure()) print_log();
    server_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void print_log() const { orderflow::testing::print_log_tail(log_, 200); }

  // Starts the server and waits (at most 20 s) until GET /readyz answers 200.
  void start_server() {
    ASSERT_TRUE(server_->start(port_)) << "fork failed: " << strerror(errno);
    Http h(port_, 2s);
    Reply last;
    const bool ready = eventually(
        [&] {
          if (!server_->running()) return true;
          last = h.get("/readyz");
          return last.status == 200;
        },
        20s, 50ms);
    ASSERT_TRUE(server_->running()) << "server exited during start-up: "
                                    << describe_wait_status(server_->last_status().value_or(0));
    ASSERT_TRUE(ready) << "GET /readyz never answered 200 in 20 s; last: " << last.describe();
    EXPECT_EQ(str(last.json, "status"), "ready");
  }

  // SIGTERM and expect a clean exit (code 0) within 20 s.
  void stop_server_cleanly() {
    const auto status = server_->terminate(20s);
    ASSERT_TRUE(status.has_value()) << "server did not exit within 20 s of SIGTERM (killed)";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << "after SIGTERM: " << describe_wait_status(*status);
  }

  // Waits until no command is in flight and both change-feed subscribers (projection and
  // saga) have consumed the whole log, unchanged over three polls 100 ms apart.
  void wait_quiescent(std::chrono::seconds timeout) {
    Http h(port_);
    std::string last, state;
    int stable = 0;
    const bool ok = eventually(
        [&] {
          Reply r = h.get("/api/v1/metrics");
          const value* route = metrics_node(r.json, "route");
          const value* commit = metrics_node(r.json, "commit");
          const value* feed = metrics_node(r.json, "feed");
          const value* projection = metrics_node(r.json, "projection");
          const value* saga = metrics_node(r.json, "saga");
          if (r.status != 200 || !route || !commit || !feed || !projection || !saga) {
            last = r.describe();
            stable = 0;
            return false;
          }
          const bool idle = num(*route, "in") == num(*route, "out") && num(*route, "queueDepth") == 0 &&
                            num(*commit, "queueDepth") == 0 && gauge(projection, "lag_events") == 0 &&
                            gauge(saga, "lag_events") == 0;
          const std::string now = std::to_string(num(*route, "in")) + "/" + std::to_string(num(*feed, "in")) +
                                  "/" + std::to_string(gauge(projection, "checkpoint")) + "/" +
                                  std::to_string(gauge(saga, "checkpoint"));
          stable = idle && now == state ? stable + 1 : 0;
          state = now;
          last = r.text.substr(0, 2000);
          return stable >= 3;
        },
        timeout, 100ms);
    ASSERT_TRUE(ok) << "the pipeline did not become quiescent in " << timeout.count() << " s; last metrics: " << last;
  }

  fs::path dir_;
  fs::path log_;
  int port_ = 0;
  std::unique_ptr<ServerProcess> server_;
};

// ---- HTTP behaviour ---------------------------------------------------------------

TEST_F(ServerE2eTest, HttpApiErrorsAndObservability) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  Http h(port_);

  Reply r = h.get("/healthz");
  EXPECT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(str(r.json, "status"), "ok");

  // Malformed JSON.
  r = h.command(R"({"commandId":"bad-1","addStock":{"sku":"A","quantity":)");
  EXPECT_EQ(r.status, 400) << r.describe();
  EXPECT_TRUE(is_error_body(r, "bad_request")) << r.text;
  // A field the Command message does not have.
  r = h.command(R"({"commandId":"bad-2","addStock":{"sku":"A","quantity":1},"priority":"high"})");
  EXPECT_EQ(r.status, 400) << r.describe();
  EXPECT_TRUE(is_error_body(r, "bad_request")) << r.text;
  r = h.command(R"({"commandId":"bad-3","addStock":{"sku":"A","quantity":1,"warehouse":"W1"}})");
  EXPECT_EQ(r.status, 400) << r.describe();
  EXPECT_TRUE(is_error_body(r)) << r.text;
  // No command kind; a non-positive quantity; no command id.
  r = h.command(R"({"commandId":"bad-4"})");
  EXPECT_EQ(r.status, 400) << r.describe();
  EXPECT_TRUE(is_error_body(r)) << r.text;
  r = h.command(R"({"commandId":"bad-5","addStock":{"sku":"A","quantity":0}})");
  EXPECT_EQ(r.status, 400) << r.describe();
  EXPECT_TRUE(is_error_body(r)) << r.text;
  r = h.command(R"({"addStock":{"sku":"A","quantity":1}})");
  EXPECT_EQ(r.status, 400) << r.describe();
  EXPECT_TRUE(is_error_body(r)) << r.text;
  // Saga-internal commands are refused from clients.
  r = h.command(R"({"commandId":"bad-6","reserveStock":{"sku":"A","orderId":"o-x","quantity":1}})");
  EXPECT_EQ(r.status, 400) << r.describe();
  EXPECT_TRUE(is_error_body(r, "bad_request")) << r.text;
  EXPECT_NE(error_message(r).find("saga"), std::string::npos) << r.text;
  r = h.command(R"({"commandId":"bad-7","confirmOrder":{"orderId":"o-x"}})");
  EXPECT_EQ(r.status, 400) << r.describe();
  r = h.command(R"({"commandId":"bad-8","releaseStock":{"sku":"A","orderId":"o-x"}})");
  EXPECT_EQ(r.status, 400) << r.describe();
  // Wrong content type.
  r = h.post("/api/v1/commands?wait=committed", add_stock("bad-9", "A", 1).body, "text/plain");
  EXPECT_EQ(r.status, 415) << r.describe();
  EXPECT_TRUE(is_error_body(r, "unsupported_media_type")) << r.text;
  // A body over max_body_bytes (65536).
  const std::string huge = add_stock("bad-10", std::string(70000, 'X'), 1).body;
  ASSERT_GT(huge.size(), 65536u);
  r = h.post("/api/v1/commands?wait=committed", huge);
  EXPECT_EQ(r.status, 413) << r.describe();
  EXPECT_TRUE(is_error_body(r, "body_too_large")) << r.text;
  // Only wait=committed is understood.
  r = h.post("/api/v1/commands?wait=forever", add_stock("bad-11", "A", 1).body);
  EXPECT_EQ(r.status, 400) << r.describe();
  EXPECT_TRUE(is_error_body(r)) << r.text;
  // Methods and paths.
  r = h.get("/api/v1/commands");
  EXPECT_EQ(r.status, 405) << r.describe();
  EXPECT_TRUE(is_error_body(r)) << r.text;
  r = h.request(web::http::methods::DEL, "/api/v1/orders/o-x");
  EXPECT_EQ(r.status, 405) << r.describe();
  r = h.get("/no/such/path");
  EXPECT_EQ(r.status, 404) << r.describe();
  EXPECT_TRUE(is_error_body(r, "not_found")) << r.text;
  r = h.get("/api/v1/orders/never-placed");
  EXPECT_EQ(r.status, 404) << r.describe();
  EXPECT_TRUE(is_error_body(r)) << r.text;
  r = h.get("/api/v1/inventory/never-stocked");
  EXPECT_EQ(r.status, 404) << r.describe();
  r = h.get("/api/v1/streams/order-never-placed/events");
  EXPECT_EQ(r.status, 200) << r.describe();
  ASSERT_NE(arr(r.json, "events"), nullptr) << r.text;
  EXPECT_TRUE(arr(r.json, "events")->size() == 0) << r.text;
  r = h.get("/api/v1/streams/sku-A/events?fromVersion=abc");
  EXPECT_EQ(r.status, 400) << r.describe();

  // None of the refused commands wrote anything.
  r = h.get("/api/v1/streams/sku-A/events");
  ASSERT_NE(arr(r.json, "events"), nullptr) << r.describe();
  EXPECT_EQ(arr(r.json, "events")->size(), 0u) << r.text;

  // One accepted command, so the counters below are not all zero.
  r = h.command(add_stock("ok-1", "A", 3).body);
  ASSERT_EQ(r.status, 200) << r.describe();

  // Prometheus text.
  r = h.get("/metrics");
  EXPECT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(r.content_type.rfind("text/plain", 0), 0u) << r.content_type;
  EXPECT_NE(r.text.find("# TYPE orderflow_node_messages_in_total counter"), std::string::npos) << r.text;
  EXPECT_NE(r.text.find("orderflow_node_messages_in_total{node=\"commit\",kind=\"commit\"} "), std::string::npos)
      << r.text;
  EXPECT_NE(r.text.find("orderflow_node_messages_out_total{node=\"commit\""), std::string::npos) << r.text;
  EXPECT_NE(r.text.find("orderflow_lag_events{node=\"projection\",kind=\"projection\"}"), std::string::npos)
      << r.text;
  EXPECT_NE(r.text.find("orderflow_uptime_seconds "), std::string::npos);

  // Topology.
  r = h.get("/api/v1/graph");
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(r.content_type.rfind("application/json", 0), 0u) << r.content_type;
  ASSERT_NE(arr(r.json, "nodes"), nullptr) << r.text;
  ASSERT_NE(arr(r.json, "edges"), nullptr) << r.text;
  std::set<std::string> ids;
  for (const auto& n : *arr(r.json, "nodes")) ids.insert(str(n, "id"));
  EXPECT_EQ(ids, (std::set<std::string>{"http", "route", "lanes", "commit", "feed", "projection", "saga"}));
  std::set<std::string> edges;
  for (const auto& e : *arr(r.json, "edges")) edges.insert(str(e, "from") + "->" + str(e, "to"));
  EXPECT_EQ(edges, (std::set<std::string>{"http->route", "route->lanes", "lanes->commit", "commit->feed",
                                          "feed->projection", "feed->saga", "saga->route"}));
  // The flag overrides the YAML's listen address.
  for (const auto& n : *arr(r.json, "nodes"))
    if (str(n, "id") == "http") {
      ASSERT_NE(field(n, "params"), nullptr);
      EXPECT_EQ(str(*field(n, "params"), "listen"), "127.0.0.1:" + std::to_string(port_));
    }

  // Metrics snapshot.
  r = h.get("/api/v1/metrics");
  ASSERT_EQ(r.status, 200) << r.describe();
  ASSERT_NE(arr(r.json, "nodes"), nullptr) << r.text;
  for (const std::string id : {"http", "route", "lanes", "commit", "feed", "projection", "saga"})
    EXPECT_NE(metrics_node(r.json, id), nullptr) << "no metrics for node " << id << ": " << r.text;
  const value* commit = metrics_node(r.json, "commit");
  ASSERT_NE(commit, nullptr);
  EXPECT_GE(num(*commit, "out"), 1) << commit->serialize();
  EXPECT_NE(field(*commit, "latencyUs"), nullptr);
  const value* http = metrics_node(r.json, "http");
  ASSERT_NE(http, nullptr);
  EXPECT_GE(num(*http, "errors"), 10) << "refused commands count as errors of the http node: " << http->serialize();

  ASSERT_NO_FATAL_FAILURE(stop_server_cleanly());
}

TEST_F(ServerE2eTest, CommandLifecycleAndCleanStop) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  Http h(port_);

  // ?wait=committed: 200 with stream, version and events.
  const Cmd stock_a = add_stock("life-stock-a", "A", 10);
  Reply r = h.command(stock_a.body);
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(str(r.json, "commandId"), stock_a.id);
  EXPECT_EQ(str(r.json, "status"), "committed");
  EXPECT_EQ(str(r.json, "stream"), "sku-A");
  EXPECT_EQ(num(r.json, "version"), 1);
  EXPECT_EQ(num(r.json, "firstVersion"), 1);
  EXPECT_FALSE(flag(r.json, "duplicate"));
  EXPECT_GE(num(r.json, "position"), 1);
  ASSERT_NE(arr(r.json, "events"), nullptr) << r.text;
  ASSERT_EQ(arr(r.json, "events")->size(), 1u) << r.text;
  const value& ev = arr(r.json, "events")->at(0);
  EXPECT_EQ(str(ev, "type"), "stockAdded");
  EXPECT_EQ(num(ev, "version"), 1);
  ASSERT_NE(field(ev, "data"), nullptr);
  ASSERT_NE(field(*field(ev, "data"), "stockAdded"), nullptr) << ev.serialize();
  EXPECT_EQ(num(*field(*field(ev, "data"), "stockAdded"), "quantity"), 10);

  // Without wait: 202.
  r = h.command(add_stock("life-stock-b", "B", 5).body, /*wait=*/false);
  ASSERT_EQ(r.status, 202) << r.describe();
  EXPECT_EQ(str(r.json, "commandId"), "life-stock-b");
  Reply inv_b;
  EXPECT_TRUE(eventually(
      [&] {
        inv_b = h.get("/api/v1/inventory/B");
        return inv_b.status == 200 && num(inv_b.json, "onHand") == 5;
      },
      5s))
      << "the 202-accepted addStock never showed up: " << inv_b.describe();

  // A duplicate command id: the first result, nothing new written.
  std::string why;
  auto before = fetch_events(h, "sku-A", &why);
  ASSERT_TRUE(before) << why;
  ASSERT_EQ(before->size(), 1u);
  for (bool wait : {true, false}) {
    r = h.command(stock_a.body, wait);
    ASSERT_EQ(r.status, wait ? 200 : 202) << r.describe();
    EXPECT_TRUE(flag(r.json, "duplicate")) << r.text;
    EXPECT_EQ(str(r.json, "stream"), "sku-A") << r.text;
    EXPECT_EQ(num(r.json, "version"), 1) << r.text;
    if (wait) {
      ASSERT_NE(arr(r.json, "events"), nullptr) << r.text;
      ASSERT_EQ(arr(r.json, "events")->size(), 1u) << r.text;
      EXPECT_EQ(str(arr(r.json, "events")->at(0), "commandId"), stock_a.id) << r.text;
    }
  }
  // Even with a different body, the id decides.
  r = h.command(add_stock(stock_a.id, "A", 99).body);
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_TRUE(flag(r.json, "duplicate")) << r.text;
  auto after = fetch_events(h, "sku-A", &why);
  ASSERT_TRUE(after) << why;
  ASSERT_EQ(after->size(), 1u) << "a duplicate wrote events";
  EXPECT_EQ((*after)[0].command_id, stock_a.id);
  EXPECT_EQ((*after)[0].version, 1);
  EXPECT_TRUE(eventually(
      [&] {
        r = h.get("/api/v1/inventory/A");
        return num(r.json, "version") == 1;
      },
      5s))
      << r.describe();
  EXPECT_EQ(num(r.json, "onHand"), 10) << "a duplicate changed the stock: " << r.describe();
  // The id of a command on another stream is refused, not answered with that command's result.
  r = h.command(add_stock(stock_a.id, "Z", 5).body);
  EXPECT_EQ(r.status, 400) << r.describe();
  EXPECT_TRUE(is_error_body(r, "invalid_argument")) << r.text;
  EXPECT_NE(r.text.find("already names a command on stream sku-A"), std::string::npos) << r.text;
  auto z = fetch_events(h, "sku-Z", &why);
  ASSERT_TRUE(z) << why;
  EXPECT_TRUE(z->empty()) << "a refused command wrote events";
  r = h.get("/api/v1/metrics");
  EXPECT_NE(r.text.find("already names a command on stream sku-A"), std::string::npos)
      << "the lanes' last error shows it: " << r.text.substr(0, 400);

  // Domain rejections: 422 with the reason.
  r = h.command(cancel_order("life-cancel-ghost", "ghost").body);
  EXPECT_EQ(r.status, 422) << r.describe();
  EXPECT_TRUE(is_error_body(r, "rejected")) << r.text;
  r = h.command(ship_order("life-ship-ghost", "ghost").body, /*wait=*/false);
  EXPECT_EQ(r.status, 202) << r.describe();
  EXPECT_EQ(str(r.json, "status"), "rejected") << r.text;

  // An order over stocked SKUs: the saga reserves the stock and confirms it.
  const Cmd place1 = place_order("life-place-1", "o-1", "u-1", {{"A", 2, 1999}, {"B", 3, 500}});
  r = h.command(place1.body);
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(str(r.json, "stream"), "order-o-1");
  EXPECT_EQ(num(r.json, "version"), 1);
  ASSERT_NE(arr(r.json, "events"), nullptr);
  EXPECT_EQ(str(arr(r.json, "events")->at(0), "type"), "orderPlaced");
  Reply order;
  ASSERT_TRUE(eventually(
      [&] {
        order = h.get("/api/v1/orders/o-1");
        return order.status == 200 && str(order.json, "status") == "confirmed";
      },
      10s))
      << "order o-1 never confirmed: " << order.describe();
  EXPECT_EQ(str(order.json, "orderId"), "o-1");
  EXPECT_EQ(str(order.json, "customerId"), "u-1");
  EXPECT_EQ(num(order.json, "totalCents"), 2 * 1999 + 3 * 500);
  ASSERT_NE(arr(order.json, "lines"), nullptr);
  EXPECT_EQ(arr(order.json, "lines")->size(), 2u);
  for (const auto& l : *arr(order.json, "lines")) EXPECT_EQ(str(l, "reservation"), "reserved") << l.serialize();
  auto order_events = fetch_events(h, "order-o-1", &why);
  ASSERT_TRUE(order_events) << why;
  EXPECT_EQ(num(order.json, "version"), static_cast<int64_t>(order_events->size()));
  EXPECT_EQ(order_events->back().type, "orderConfirmed");
  // A second placeOrder for the same order is a domain rejection.
  r = h.command(place_order("life-place-1-again", "o-1", "u-1", {{"A", 1, 1}}).body);
  EXPECT_EQ(r.status, 422) << r.describe();

  Reply inv;
  EXPECT_TRUE(eventually(
      [&] {
        inv = h.get("/api/v1/inventory/A");
        return inv.status == 200 && num(inv.json, "reserved") == 2;
      },
      5s))
      << inv.describe();
  EXPECT_EQ(str(inv.json, "sku"), "A");
  EXPECT_EQ(num(inv.json, "onHand"), 10);
  EXPECT_EQ(num(inv.json, "available"), 8);
  EXPECT_EQ(num(inv.json, "holds"), 1);
  inv = h.get("/api/v1/inventory/B");
  EXPECT_EQ(num(inv.json, "reserved"), 3) << inv.describe();
  EXPECT_EQ(num(inv.json, "available"), 2) << inv.describe();

  // More than is available: the saga rejects the order and releases what it held.
  r = h.command(place_order("life-place-2", "o-2", "u-2", {{"A", 1, 100}, {"B", 5, 100}}).body);
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_TRUE(eventually(
      [&] {
        order = h.get("/api/v1/orders/o-2");
        return str(order.json, "status") == "rejected";
      },
      10s))
      << "order o-2 (B: 5 of 2 available) was not rejected: " << order.describe();
  EXPECT_TRUE(eventually(
      [&] {
        inv = h.get("/api/v1/inventory/A");
        return num(inv.json, "reserved") == 2 && num(inv.json, "holds") == 1;
      },
      5s))
      << "the rejected order's hold on A was not released: " << inv.describe();

  // Cancel a confirmed order: its holds are released.
  r = h.command(place_order("life-place-3", "o-3", "u-3", {{"A", 4, 100}}).body);
  ASSERT_EQ(r.status, 200) << r.describe();
  ASSERT_TRUE(eventually([&] { return str(h.get("/api/v1/orders/o-3").json, "status") == "confirmed"; }, 10s));
  const int64_t confirmed_version = num(h.get("/api/v1/orders/o-3").json, "version");
  r = h.command(cancel_order("life-cancel-3", "o-3").body);
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(num(r.json, "version"), confirmed_version + 1) << "cancel appends right after confirmation: " << r.text;
  EXPECT_TRUE(eventually(
      [&] {
        inv = h.get("/api/v1/inventory/A");
        return num(inv.json, "reserved") == 2 && num(inv.json, "onHand") == 10;
      },
      5s))
      << "cancelling o-3 did not release its 4 of A: " << inv.describe();
  r = h.command(ship_order("life-ship-3", "o-3").body);
  EXPECT_EQ(r.status, 422) << "a cancelled order cannot ship: " << r.describe();

  // Ship o-1: its stock leaves.
  r = h.command(ship_order("life-ship-1", "o-1").body);
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_TRUE(eventually(
      [&] {
        inv = h.get("/api/v1/inventory/A");
        return num(inv.json, "reserved") == 0 && num(inv.json, "onHand") == 8;
      },
      5s))
      << "shipping o-1 did not take 2 of A off hand: " << inv.describe();
  EXPECT_TRUE(eventually(
      [&] {
        inv = h.get("/api/v1/inventory/B");
        return num(inv.json, "reserved") == 0 && num(inv.json, "onHand") == 2 && num(inv.json, "holds") == 0;
      },
      5s))
      << inv.describe();
  EXPECT_EQ(str(h.get("/api/v1/orders/o-1").json, "status"), "shipped");
  r = h.command(cancel_order("life-cancel-1", "o-1").body);
  EXPECT_EQ(r.status, 422) << "a shipped order cannot be cancelled: " << r.describe();

  ASSERT_NO_FATAL_FAILURE(stop_server_cleanly());
  std::ifstream in(log_);
  const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(log.find("msg=stopped"), std::string::npos) << "no 'stopped' line in the server log";
  EXPECT_EQ(log.find("msg=\"http request\""), std::string::npos) << "info level: no line per request";
}

TEST_F(ServerE2eTest, DebugLogLevelWritesALinePerRequest) {
  server_->add_args({"--log-level", "debug"});
  ASSERT_NO_FATAL_FAILURE(start_server());
  Http h(port_);
  EXPECT_EQ(h.get("/healthz").status, 200);
  EXPECT_EQ(h.command("{not json").status, 400);
  EXPECT_EQ(h.get("/metrics").status, 200);
  ASSERT_NO_FATAL_FAILURE(stop_server_cleanly());
  std::ifstream in(log_);
  const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char* line : {"msg=\"http request\" method=GET path=/healthz status=200",
                           "msg=\"http request\" method=POST path=/api/v1/commands status=400",
                           "msg=\"http request\" method=GET path=/metrics status=200"})
    EXPECT_NE(log.find(line), std::string::npos) << line << " missing from the log";
}

// ---- kill -9 under load -----------------------------------------------------------

struct Ack {
  Cmd cmd;
  int http = 0;  // 200 (committed) or 422 (rejected)
  std::string stream;
  int64_t first_version = 0;
  int64_t version = 0;
  bool duplicate = false;
};

// What the client threads saw; merged after they stop.
struct Load {
  std::mutex mu;
  std::vector<Ack> acks;
  std::vector<std::string> problems;               // answers the API does not allow
  std::map<std::string, std::vector<Line>> sent;   // order id -> lines of every placeOrder sent
  std::atomic<int> acked{0};
  std::atomic<int> no_answer{0};                   // requests that got no HTTP answer
  std::atomic<int> conflicts{0};                   // 409: documented, not acknowledged
  std::atomic<bool> stop{false};
};

constexpr int kSkus = 20;
constexpr int kHotSkus = 6;

std::string sku_name(int s) { return "S" + std::to_string(s); }

// POSTs with ?wait=committed, retrying 429/503 a bounded number of times. Records 200 and
// 422 answers. False when the server gave no answer (the client then stops).
bool send_recorded(Http& h, const Cmd& c, Load& load, Ack* out = nullptr) {
  for (int attempt = 0; attempt < 50 && !load.stop; ++attempt) {
    Reply r = h.command(c.body);
    if (r.status == 0) {
      ++load.no_answer;
      return false;
    }
    if (r.status == 429 || r.status == 503) {
      std::this_thread::sleep_for(20ms);
      continue;
    }
    if (r.status == 409) {
      ++load.conflicts;
      return true;
    }
    if (r.status != 200 && r.status != 422) {
      std::lock_guard lock(load.mu);
      load.problems.push_back(c.id + ": unexpected " + r.describe());
      return true;
    }
    Ack a;
    a.cmd = c;
    a.http = r.status;
    if (r.status == 200) {
      a.stream = str(r.json, "stream");
      a.first_version = num(r.json, "firstVersion");
      a.version = num(r.json, "version");
      a.duplicate = flag(r.json, "duplicate");
      if (a.stream != c.stream || a.version < 1 || a.first_version < 1 || a.first_version > a.version) {
        std::lock_guard lock(load.mu);
        load.problems.push_back(c.id + ": 200 without a sane stream/version: " + r.text);
      }
    } else if (!is_error_body(r, "rejected")) {
      std::lock_guard lock(load.mu);
      load.problems.push_back(c.id + ": 422 without the error shape: " + r.text);
    }
    {
      std::lock_guard lock(load.mu);
      load.acks.push_back(a);
    }
    ++load.acked;
    if (out != nullptr) *out = a;
    return true;
  }
  return !load.stop;
}

// One client: orders over a few hot SKUs, with retries of the same command id, cancels,
// shipments of earlier orders and restocks mixed in (like the integration test's drive()).
void client_thread(int port, int t, int clients, Load& load) {
  Http h(port, 5s);
  std::mt19937 rng(4321 + t);
  for (int i = t; i < 100000 && !load.stop; i += clients) {
    const std::string order = "o" + std::to_string(i);
    std::vector<Line> lines;
    std::set<int> used;
    const int n = 1 + static_cast<int>(rng() % 3);
    for (int l = 0; l < n; ++l) {
      const int s = static_cast<int>(rng() % 10 == 0 ? rng() % kSkus : rng() % kHotSkus);
      if (!used.insert(s).second) continue;
      lines.push_back({sku_name(s), 1 + static_cast<int>(rng() % 2), 250 + s});
    }
    const Cmd place = place_order("e2e-place-" + std::to_string(i), order, "c" + std::to_string(i % 13), lines);
    {
      std::lock_guard lock(load.mu);
      load.sent[order] = lines;
    }
    Ack first;
    if (!send_recorded(h, place, load, &first)) return;
    if (i % 7 == 0 && first.http == 200) {  // a client retry with the same command id
      Ack again;
      if (!send_recorded(h, place, load, &again)) return;
      if (again.http != 200 || !again.duplicate || again.version != first.version || again.stream != first.stream) {
        std::lock_guard lock(load.mu);
        load.problems.push_back(place.id + ": a retry was not answered as a duplicate of version " +
                                std::to_string(first.version) + " (http " + std::to_string(again.http) +
                                ", duplicate " + std::to_string(again.duplicate) + ", version " +
                                std::to_string(again.version) + ")");
      }
    }
    if (i % 5 == 0 && !send_recorded(h, cancel_order("e2e-cancel-" + std::to_string(i), order), load)) return;
    if (i % 11 == 0 && i > 20 &&
        !send_recorded(h, ship_order("e2e-ship-" + std::to_string(i), "o" + std::to_string(i - 20)), load))
      return;
    if (i % 50 == 0 &&
        !send_recorded(h, add_stock("e2e-restock-" + std::to_string(i), sku_name(static_cast<int>(rng() % kHotSkus)), 2),
                       load))
      return;
  }
}

TEST_F(ServerE2eTest, KillDuringLoadLosesNothingAcknowledged) {
  const auto test_start = Clock::now();
  ASSERT_NO_FATAL_FAILURE(start_server());
  Load load;
  {
    Http h(port_);
    for (int s = 0; s < kSkus; ++s) {
      const Cmd c = add_stock("e2e-stock-" + std::to_string(s), sku_name(s), 3 + s % 7);
      Ack a;
      ASSERT_TRUE(send_recorded(h, c, load, &a)) << "seeding stock: no answer";
      ASSERT_EQ(a.http, 200) << c.id;
    }
  }

  // Load from 6 clients; kill -9 after ~1.5 s (at least 300 acknowledged commands, at most
  // 6000), while they are still sending.
  constexpr int kClients = 6;
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) clients.emplace_back(client_thread, port_, t, kClients, std::ref(load));
  const auto load_start = Clock::now();
  while (Clock::now() - load_start < 10s) {
    const int acked = load.acked.load();
    if ((Clock::now() - load_start >= 1500ms && acked >= 300) || acked >= 6000) break;
    std::this_thread::sleep_for(10ms);
  }
  const int acked_at_kill = load.acked.load();
  const bool was_running = server_->running();
  const auto killed = server_->kill_now();
  const auto load_time = Clock::now() - load_start;
  load.stop = true;
  for (auto& t : clients) t.join();
  ASSERT_TRUE(was_running) << "the server died under load before the kill";
  ASSERT_TRUE(killed && WIFSIGNALED(*killed) && WTERMSIG(*killed) == SIGKILL)
      << describe_wait_status(killed.value_or(0));
  std::cout << "[ load     ] " << load.acks.size() << " acknowledged commands ("
            << acked_at_kill << " at the kill) in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(load_time).count() << " ms; "
            << load.no_answer.load() << " requests cut off by the kill, " << load.conflicts.load() << " 409s\n";
  EXPECT_GE(acked_at_kill, 300) << "too little load to be a meaningful test";
  EXPECT_GT(load.no_answer.load(), 0) << "the kill did not interrupt any request: clients were not sending";
  for (const auto& p : load.problems) ADD_FAILURE() << "during load: " << p;

  // Restart on the same data directory and port.
  ASSERT_NO_FATAL_FAILURE(start_server());
  ASSERT_NO_FATAL_FAILURE(wait_quiescent(20s));

  // Read back every stream the load could have touched.
  std::vector<std::string> streams;
  std::vector<std::string> orders;
  for (const auto& [order, lines] : load.sent) {
    orders.push_back(order);
    streams.push_back("order-" + order);
  }
  for (int s = 0; s < kSkus; ++s) streams.push_back("sku-" + sku_name(s));
  std::vector<std::optional<std::vector<Ev>>> fetched(streams.size());
  std::vector<std::string> fetch_errors(streams.size());
  parallel_for(port_, streams.size(), 4,
               [&](Http& h, size_t i) { fetched[i] = fetch_events(h, streams[i], &fetch_errors[i]); });
  std::map<std::string, std::vector<Ev>> events;  // stream -> events, index = version - 1
  for (size_t i = 0; i < streams.size(); ++i) {
    ASSERT_TRUE(fetched[i]) << fetch_errors[i];
    events[streams[i]] = std::move(*fetched[i]);
  }
  std::map<std::string, int> events_per_command;
  for (const auto& [stream, evs] : events) {
    int64_t last_position = 0;
    for (size_t v = 0; v < evs.size(); ++v) {
      ASSERT_EQ(evs[v].version, static_cast<int64_t>(v + 1)) << "versions of " << stream << " are dense";
      EXPECT_GT(evs[v].position, last_position) << "positions grow within " << stream;
      last_position = evs[v].position;
      EXPECT_FALSE(evs[v].command_id.empty()) << stream << " v" << evs[v].version;
      // The record of an order's last line settles it in the same command: its second
      // event, OrderConfirmed or OrderRejected, is not counted as a second write.
      const bool settles = v > 0 && evs[v - 1].command_id == evs[v].command_id &&
                           evs[v - 1].type == "reservationRecorded" &&
                           (evs[v].type == "orderConfirmed" || evs[v].type == "orderRejected");
      if (!settles) events_per_command[evs[v].command_id]++;
    }
  }

  // (a) Every command acknowledged before the kill is in the store, at its version, once.
  size_t committed = 0, rejected = 0, lost = 0;
  for (const auto& a : load.acks) {
    const auto& evs = events[a.cmd.stream];
    if (a.http == 422) {
      ++rejected;
      EXPECT_EQ(events_per_command.count(a.cmd.id), 0u) << "a rejected command wrote events: " << a.cmd.id;
      continue;
    }
    ++committed;
    if (a.first_version < 1 || a.version > static_cast<int64_t>(evs.size())) {
      if (++lost <= 20)
        ADD_FAILURE() << "LOST: " << a.cmd.id << " was acknowledged at " << a.stream << " v" << a.version
                      << " but the stream has " << evs.size() << " events after the restart";
      continue;
    }
    for (int64_t v = a.first_version; v <= a.version; ++v)
      if (evs[static_cast<size_t>(v - 1)].command_id != a.cmd.id && ++lost <= 20)
        ADD_FAILURE() << a.stream << " v" << v << " should hold acknowledged command " << a.cmd.id << ", holds "
                      << evs[static_cast<size_t>(v - 1)].command_id;
    const auto written = events_per_command.find(a.cmd.id);
    EXPECT_EQ(written == events_per_command.end() ? 0 : written->second, a.version - a.first_version + 1)
        << "events of " << a.cmd.id << " exist exactly once";
  }
  EXPECT_EQ(lost, 0u) << "acknowledged commands missing from the store after kill -9 (first 20 listed)";
  EXPECT_GE(committed, 300u);
  // Every command id, the client's and the saga's, produced its events once.
  for (const auto& [id, n] : events_per_command) {
    EXPECT_EQ(n, 1) << "command " << id << " has " << n << " events";
    if (id.rfind("saga/", 0) != 0) {
      EXPECT_EQ(id.rfind("e2e-", 0), 0u) << "an event of an unknown command " << id;
    }
  }

  // (b) Resending acknowledged commands: duplicates with the first version, nothing written.
  {
    Http h(port_);
    std::vector<const Ack*> sample;
    std::set<std::string> seen;
    const size_t step = std::max<size_t>(1, load.acks.size() / 40);
    for (size_t i = 0; i < load.acks.size(); i += step) {
      const Ack& a = load.acks[i];
      if (a.http == 200 && !a.duplicate && seen.insert(a.cmd.id).second) sample.push_back(&a);
    }
    if (!load.acks.empty() && load.acks.back().http == 200 && seen.insert(load.acks.back().cmd.id).second)
      sample.push_back(&load.acks.back());  // one of the last before the kill
    ASSERT_GE(sample.size(), 10u);
    for (const Ack* a : sample) {
      Reply r = h.command(a->cmd.body);
      ASSERT_EQ(r.status, 200) << a->cmd.id << ": " << r.describe();
      EXPECT_TRUE(flag(r.json, "duplicate")) << a->cmd.id << ": " << r.text;
      EXPECT_EQ(str(r.json, "stream"), a->stream) << r.text;
      EXPECT_EQ(num(r.json, "version"), a->version) << r.text;
      EXPECT_EQ(num(r.json, "firstVersion"), a->first_version) << r.text;
    }
    for (const Ack* a : sample) {
      std::string why;
      auto now = fetch_events(h, a->stream, &why);
      ASSERT_TRUE(now) << why;
      EXPECT_EQ(now->size(), events[a->stream].size()) << "resending " << a->cmd.id << " wrote to " << a->stream;
    }
  }

  // (c) The invariants, over HTTP: every order decided, stock never negative, reserved =
  // the confirmed orders' lines, and the projection equals a fold of the event store.
  std::vector<Reply> order_states(orders.size());
  parallel_for(port_, orders.size(), 4, [&](Http& h, size_t i) { order_states[i] = h.get("/api/v1/orders/" + orders[i]); });
  std::set<std::string> placed_acked;
  for (const auto& a : load.acks)
    if (a.http == 200 && a.cmd.kind == "placeOrder") placed_acked.insert(a.cmd.stream);
  std::map<std::string, int64_t> expected_reserved;  // sku -> sum over confirmed orders
  std::map<std::string, int64_t> expected_holds;     // sku -> confirmed orders holding it
  std::map<std::string, int> by_status;
  for (size_t i = 0; i < orders.size(); ++i) {
    const std::string stream = "order-" + orders[i];
    const Reply& r = order_states[i];
    const auto& evs = events[stream];
    if (r.status == 404) {
      EXPECT_TRUE(evs.empty()) << stream << " has events but no projected state";
      EXPECT_EQ(placed_acked.count(stream), 0u) << "LOST: acknowledged order " << stream;
      continue;
    }
    ASSERT_EQ(r.status, 200) << stream << ": " << r.describe();
    const std::string status = str(r.json, "status");
    by_status[status]++;
    EXPECT_NE(status, "placed") << stream << " is still placed after quiescence";
    EXPECT_EQ(num(r.json, "version"), static_cast<int64_t>(evs.size()))
        << "the projection of " << stream << " is not at the stream's version";
    const FoldedOrder folded = fold_order(evs);
    EXPECT_EQ(status, folded.status) << "projection vs fold of " << stream;
    const auto* lines = arr(r.json, "lines");
    ASSERT_NE(lines, nullptr) << r.text;
    const auto& sent = load.sent[orders[i]];
    EXPECT_EQ(lines->size(), sent.size()) << stream;
    for (const auto& l : *lines) {
      const std::string sku = str(l, "sku");
      const int64_t qty = num(l, "quantity");
      const std::string reservation = str(l, "reservation");
      EXPECT_EQ(reservation, folded.line.count(sku) ? folded.line.at(sku) : "?") << stream << " line " << sku;
      EXPECT_EQ(qty, folded.quantity.count(sku) ? folded.quantity.at(sku) : -1) << stream << " line " << sku;
      bool was_sent = false;
      for (const auto& s : sent) was_sent = was_sent || (s.sku == sku && s.quantity == qty);
      EXPECT_TRUE(was_sent) << stream << " has a line the client never sent: " << l.serialize();
      if (status == "confirmed") {
        EXPECT_EQ(reservation, "reserved") << "confirmed only if every line was reserved: " << stream;
        expected_reserved[sku] += qty;
        expected_holds[sku]++;
      }
    }
  }
  for (int s = 0; s < kSkus; ++s) {
    const std::string sku = sku_name(s);
    Http h(port_);
    Reply r = h.get("/api/v1/inventory/" + sku);
    ASSERT_EQ(r.status, 200) << sku << ": " << r.describe();
    const int64_t on_hand = num(r.json, "onHand"), reserved = num(r.json, "reserved");
    EXPECT_GE(on_hand, 0) << sku;
    EXPECT_GE(reserved, 0) << sku;
    EXPECT_LE(reserved, on_hand) << "stock never negative: " << sku;
    EXPECT_EQ(num(r.json, "available"), on_hand - reserved) << sku;
    EXPECT_EQ(reserved, expected_reserved[sku]) << "reserved = sum of the confirmed orders' lines: " << sku;
    EXPECT_EQ(num(r.json, "holds"), expected_holds[sku]) << "holds = confirmed orders with a line of " << sku;
    const auto& evs = events["sku-" + sku];
    EXPECT_EQ(num(r.json, "version"), static_cast<int64_t>(evs.size())) << "projection version of " << sku;
    const FoldedInventory folded = fold_inventory(evs);
    EXPECT_TRUE(folded.problem.empty()) << sku << ": " << folded.problem;
    EXPECT_EQ(on_hand, folded.on_hand) << "projection vs fold: onHand of " << sku;
    EXPECT_EQ(reserved, folded.reserved) << "projection vs fold: reserved of " << sku;
    EXPECT_EQ(num(r.json, "holds"), static_cast<int64_t>(folded.holds.size())) << sku;
  }
  std::cout << "[ after    ] orders:";
  for (const auto& [status, n] : by_status) std::cout << " " << status << "=" << n;
  std::cout << "; " << committed << " committed and " << rejected << " rejected acknowledgements checked\n";
  EXPECT_GT(by_status["confirmed"], 0);
  EXPECT_GT(by_status["rejected"], 0) << "stock is scarce: some orders must be rejected";

  // The restarted server still takes and processes orders.
  {
    Http h(port_);
    ASSERT_EQ(h.command(add_stock("e2e-after-stock", "FRESH", 5).body).status, 200);
    ASSERT_EQ(h.command(place_order("e2e-after-place", "after-1", "c", {{"FRESH", 5, 1}}).body).status, 200);
    Reply o;
    EXPECT_TRUE(eventually(
        [&] {
          o = h.get("/api/v1/orders/after-1");
          return str(o.json, "status") == "confirmed";
        },
        10s))
        << o.describe();
  }

  ASSERT_NO_FATAL_FAILURE(stop_server_cleanly());
  std::cout << "[ runtime  ] "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - test_start).count() << " ms\n";
}

// A client that times out and retries while its first request is still in flight must get
// the first result (docs/architecture.md: "a repeated id returns the first result and
// writes nothing"), not a domain rejection caused by its own first attempt. Each round
// sends the same command on 4 connections at once, with background load on the commit.
TEST_F(ServerE2eTest, ConcurrentRetryOfSameCommandIsIdempotent) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  Http setup(port_);
  ASSERT_EQ(setup.command(add_stock("race-stock", "R", 1000).body).status, 200);

  std::atomic<bool> stop{false};
  std::vector<std::thread> background;
  struct JoinOnExit {
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    void join() {
      stop = true;
      for (auto& t : threads)
        if (t.joinable()) t.join();
    }
    ~JoinOnExit() { join(); }
  } background_join{stop, background};
  for (int t = 0; t < 2; ++t)
    background.emplace_back([&, t] {
      Http h(port_, 5s);
      for (int k = 0; k < 20000 && !stop; ++k)
        if (h.command(add_stock("race-bg-" + std::to_string(t) + "-" + std::to_string(k), "BG" + std::to_string(k % 8), 1).body)
                .status == 0)
          return;
    });

  constexpr int kRounds = 20;
  constexpr int kCopies = 4;
  std::vector<std::unique_ptr<Http>> clients;
  for (int c = 0; c < kCopies; ++c) clients.push_back(std::make_unique<Http>(port_));
  std::vector<std::string> failures;
  for (int i = 0; i < kRounds && failures.size() < 5; ++i) {
    const std::vector<Cmd> cmds = {
        place_order("race-place-" + std::to_string(i), "race-" + std::to_string(i), "c", {{"R", 1, 1}}),
        cancel_order("race-cancel-" + std::to_string(i), "race-" + std::to_string(i)),
        add_stock("race-restock-" + std::to_string(i), "R", 1)};
    for (const Cmd& cmd : cmds) {
      std::vector<pplx::task<Reply>> tasks;
      for (auto& c : clients) tasks.push_back(c->command_async(cmd.body));
      int originals = 0, ok = 0;
      std::set<int64_t> versions;
      std::string answers;
      for (auto& t : tasks) {
        const Reply r = t.get();
        answers += " | " + r.describe().substr(0, 160);
        if (r.status != 200) continue;
        ++ok;
        originals += !flag(r.json, "duplicate");
        versions.insert(num(r.json, "version"));
      }
      std::string why;
      auto evs = fetch_events(setup, cmd.stream, &why);
      ASSERT_TRUE(evs) << why;
      int written = 0;
      for (const auto& e : *evs) written += e.command_id == cmd.id;
      EXPECT_EQ(written, 1) << "events of " << cmd.id << " exist exactly once";
      // Every copy is answered 200 with the same version; exactly one of them is the original.
      if (ok != kCopies || originals != 1 || versions.size() != 1)
        failures.push_back(cmd.id + ": " + std::to_string(ok) + " answered 200, " + std::to_string(originals) +
                           " as the original, " + std::to_string(versions.size()) + " versions" + answers);
    }
  }
  background_join.join();
  for (const auto& f : failures) ADD_FAILURE() << "racing retries of one command id: " << f;
  ASSERT_NO_FATAL_FAILURE(stop_server_cleanly());
}

}  // namespace
