// End-to-end: `orderflow serve` with Kafka in and out (a kafka_source and a kafka_sink on a
// librdkafka mock cluster owned by this test, reached over TCP on 127.0.0.1), killed with
// SIGKILL mid-stream and restarted on the same data directory. Redelivered commands must
// produce no duplicate events, and every event must reach its topic at least once, in
// order per key. The stores are read back directly after a clean stop.
#include <gtest/gtest.h>

#include <utility>  // before cpprestsdk: Boost.Asio's C++20 awaitable.hpp uses std::exchange
#define _TURN_OFF_PLATFORM_STRING
#include <cpprest/json.h>
#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <iostream>
#include <set>
#include <thread>

#include "connectors/rocksdb_store.h"
#include "domain/orders/orders.h"
#include "tests/support/invariants.h"
#include "tests/support/kafka.h"
#include "tests/support/net.h"
#include "tests/support/server_process.h"

namespace orderflow {
namespace {

namespace fs = std::filesystem;
using testing::eventually;
using testing::MockKafka;
using namespace std::chrono_literals;

// A node's gauges from GET /api/v1/metrics (empty when the server does not answer).
std::map<std::string, double> gauges_of(int port, const std::string& node) {
  std::map<std::string, double> out;
  const std::string body = testing::http_get_body(port, "/api/v1/metrics");
  if (body.empty()) return out;
  try {
    auto v = web::json::value::parse(body);
    for (const auto& n : v.at("nodes").as_array()) {
      if (n.at("id").as_string() != node) continue;
      for (const auto& [k, g] : n.at("gauges").as_object()) out[k] = g.as_double();
    }
  } catch (const std::exception&) {
  }
  return out;
}

// A node's messages out (for a source: messages finished) from GET /api/v1/metrics; -1 when
// the server does not answer.
int64_t out_of(int port, const std::string& node) {
  const std::string body = testing::http_get_body(port, "/api/v1/metrics");
  if (body.empty()) return -1;
  try {
    auto v = web::json::value::parse(body);
    for (const auto& n : v.at("nodes").as_array())
      if (n.at("id").as_string() == node) return n.at("out").as_number().to_int64();
  } catch (const std::exception&) {
  }
  return -1;
}

class KafkaServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("orderflow-kafka-e2e-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    kafka_ = std::make_unique<MockKafka>(3);
    kafka_->create_topic("orders.commands", 6);
    kafka_->create_topic("orders.commands.dlq", 1);
    kafka_->create_topic("orders.events", 4);
    kafka_->create_topic("inventory.events", 4);
    port_ = testing::free_loopback_port();
    const std::string b = kafka_->bootstrap();
    std::ofstream(dir_ / "graph.yaml")
        << "graph: kafka-e2e\n"
           "stores:\n"
           "  events: {kind: rocksdb, path: events}\n"
           "  snapshots: {kind: rocksdb, path: snapshots}\n"
           "nodes:\n"
           "  - {id: kin, kind: kafka_source, params: {brokers: \"" << b << "\", group: e2e, commit_interval_ms: 50,"
           " max_in_flight: 200, properties: \"fetch.wait.max.ms=50,session.timeout.ms=6000\"}}\n"
           "  - {id: http, kind: http_source}\n"
           "  - {id: route, kind: route, params: {lanes: 4}}\n"
           "  - {id: lanes, kind: command_lane, params: {events: events, snapshots: snapshots}}\n"
           "  - {id: commit, kind: commit, params: {events: events, max_batch: 32}}\n"
           "  - {id: feed, kind: change_feed, params: {events: events, batch: 50, poll_ms: 5}}\n"
           "  - {id: projection, kind: projection, params: {snapshots: snapshots}}\n"
           "  - {id: saga, kind: saga}\n"
           "  - {id: kout, kind: kafka_sink, params: {brokers: \"" << b << "\", properties: \"linger.ms=1\"}}\n"
           "edges: [kin -> route, http -> route, route -> lanes, lanes -> commit, commit -> feed,"
           " feed -> projection, feed -> saga, feed -> kout, saga -> route]\n";
    server_ = std::make_unique<testing::ServerProcess>(dir_ / "data", dir_ / "server.log", (dir_ / "graph.yaml").string());
  }
  void TearDown() override {
    server_.reset();
    kafka_.reset();
    if (HasFailure()) {
      std::ifstream log(dir_ / "server.log");
      std::cerr << "---- server log ----\n" << log.rdbuf() << "--------------------\n";
    }
    fs::remove_all(dir_);
  }

  void send_orders(int from, int to) {
    for (int i = from; i < to; ++i) {
      const std::string order = "o" + std::to_string(i);
      const std::string json = "{\"commandId\":\"place-" + order + "\",\"placeOrder\":{\"orderId\":\"" + order +
                               "\",\"customerId\":\"c\",\"lines\":[{\"sku\":\"S" + std::to_string(i % 5) +
                               "\",\"quantity\":" + std::to_string(1 + i % 3) + ",\"unitPriceCents\":10}]}}";
      kafka_->produce("orders.commands", "order-" + order, json);
    }
    ASSERT_TRUE(kafka_->flush());
  }

  int64_t committed_total() {
    int64_t n = 0;
    for (const auto& [p, off] : kafka_->committed("e2e", "orders.commands")) n += std::max<int64_t>(0, off);
    return n;
  }

  fs::path dir_;
  int port_ = 0;
  std::unique_ptr<MockKafka> kafka_;
  std::unique_ptr<testing::ServerProcess> server_;
};

TEST_F(KafkaServerTest, KilledMidStreamAndRestartedNoDuplicatesEveryEventPublished) {
  for (int s = 0; s < 5; ++s)
    kafka_->produce("orders.commands", "sku-S" + std::to_string(s),
                    "{\"commandId\":\"stock-" + std::to_string(s) + "\",\"addStock\":{\"sku\":\"S" + std::to_string(s) +
                        "\",\"quantity\":150}}");
  ASSERT_NO_FATAL_FAILURE(send_orders(0, 300));

  ASSERT_TRUE(server_->start(port_));
  // Kill it mid-stream, with commands the source finished (durable or rejected) whose
  // offsets are not committed yet: those are redelivered after the restart and must not be
  // applied twice. Orders keep arriving in chunks while it runs. To know that such commands
  // exist at the kill, the server is frozen (SIGSTOP) between reading how many messages it
  // finished and reading the committed offsets, which cannot move while it is frozen.
  int produced = 300;
  bool killed = false;
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  while (!killed && std::chrono::steady_clock::now() < give_up) {
    const int64_t finished = out_of(port_, "kin");
    ASSERT_EQ(::kill(server_->pid(), SIGSTOP), 0);
    const int64_t done = committed_total();
    if (done >= 150 && finished > done) {
      server_->kill_now();
      killed = true;
      std::cout << "killed with " << finished << " commands finished and " << done << " offsets committed (of "
                << produced + 5 << ")\n";
      break;
    }
    ASSERT_EQ(::kill(server_->pid(), SIGCONT), 0);
    if (done >= 150 && produced < 3000) {
      ASSERT_NO_FATAL_FAILURE(send_orders(produced, produced + 10));
      produced += 10;
    }
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(killed) << "nothing consumed, or never caught with finished but uncommitted commands (committed "
                      << committed_total() << " of " << produced + 5 << ")";
  ASSERT_NO_FATAL_FAILURE(send_orders(produced, produced + 300));
  produced += 300;

  ASSERT_TRUE(server_->start(port_));
  ASSERT_TRUE(eventually([&] { return kafka_->caught_up("e2e", "orders.commands"); }, 90s, 100ms))
      << "the restarted server did not consume the topic to its end";
  ASSERT_TRUE(eventually(
      [&] {
        auto g = gauges_of(port_, "kout");
        auto p = gauges_of(port_, "projection");
        auto s = gauges_of(port_, "saga");
        return g.count("lag_events") && g["lag_events"] == 0 && p["lag_events"] == 0 && s["lag_events"] == 0 &&
               g["checkpoint"] > 0 && g["checkpoint"] == p["checkpoint"] && g["checkpoint"] == s["checkpoint"];
      },
      60s, 100ms))
      << "the sink did not catch up";
  auto status = server_->terminate(30s);
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << testing::describe_wait_status(*status);

  // The stores: each command applied once (commands of the killed run were redelivered).
  connectors::RocksOptions eo;
  eo.path = (dir_ / "data" / "events").string();
  auto events = connectors::RocksEventStore::open(eo);
  ASSERT_TRUE(events) << events.status().to_string();
  connectors::RocksOptions so;
  so.path = (dir_ / "data" / "snapshots").string();
  auto snapshots = connectors::RocksSnapshotStore::open(so);
  ASSERT_TRUE(snapshots) << snapshots.status().to_string();
  testing::StoreFold fold;
  ASSERT_NO_FATAL_FAILURE(testing::check_store_invariants(**events, **snapshots, &fold));
  size_t placed = 0, added = 0;
  for (const auto& r : fold.all) {
    v1::Event e;
    ASSERT_TRUE(e.ParseFromString(r.payload));
    placed += e.kind_case() == v1::Event::kOrderPlaced;
    added += e.kind_case() == v1::Event::kStockAdded;
  }
  EXPECT_EQ(placed, static_cast<size_t>(produced)) << "an order placed twice or never";
  EXPECT_EQ(added, 5u);
  EXPECT_GT(fold.confirmed, 0u);
  EXPECT_GT(fold.rejected, 0u);

  // The topics: every event at least once, in version order per key.
  auto records = kafka_->read_all("orders.events");
  auto inventory = kafka_->read_all("inventory.events");
  records.insert(records.end(), inventory.begin(), inventory.end());
  std::map<std::string, uint64_t> highest;
  std::map<std::string, std::set<uint64_t>> seen;
  size_t republished = 0;
  for (const auto& r : records) {
    const uint64_t v = std::stoull(r.headers.at("orderflow-version"));
    ASSERT_LE(v, highest[r.key] + 1) << r.key << ": version " << v << " before " << highest[r.key] + 1;
    republished += v <= highest[r.key];
    highest[r.key] = std::max(highest[r.key], v);
    seen[r.key].insert(v);
  }
  for (const auto& [stream, st] : fold.states) EXPECT_EQ(seen[stream].size(), st.version()) << stream;
  std::cout << "events " << fold.all.size() << ", published " << records.size() << " (" << republished
            << " again after the kill)\n";
}

}  // namespace
}  // namespace orderflow
