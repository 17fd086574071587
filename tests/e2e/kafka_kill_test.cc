// End-to-end: `orderflow serve` consuming commands from Kafka (a kafka_source on a librdkafka
// mock cluster owned by this test, over TCP on 127.0.0.1) killed with SIGKILL while the
// source has handed commands to the pipeline that are not durable yet, then restarted on the
// same data directory. Offsets must never be committed past a command that is not durable:
// after the restart every command produced is in the event store exactly once.
//
// The window is made wide on purpose: the source keeps up to kInFlight commands handed out,
// and a graph without subscribers writes them one synced write per command, so for most of
// the run well over a thousand handed-out commands are not durable yet. What was durable at
// the kill is read from a copy of the event store, and no committed offset may be past it.
#include <gtest/gtest.h>

#include <utility>  // before cpprestsdk: Boost.Asio's C++20 awaitable.hpp uses std::exchange
#define _TURN_OFF_PLATFORM_STRING
#include <cpprest/json.h>

#include <fstream>
#include <iostream>
#include <map>
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

constexpr int kInFlight = 2000;      // the source's max_in_flight
constexpr int kFirstBatch = 4000;    // commands on the topic before the first start
constexpr int kMaxProduced = 16000;  // more are produced while it runs, up to this many

// A node's message counters from GET /api/v1/metrics. For a kafka_source, `in` counts
// messages handed out to the pipeline and `out` those finished (durable, rejected or
// dead-lettered). -1 when the server does not answer.
struct Counts {
  int64_t in = -1, out = -1;
};

Counts counts_of(int port, const std::string& node) {
  const std::string body = testing::http_get_body(port, "/api/v1/metrics");
  if (body.empty()) return {};
  try {
    auto v = web::json::value::parse(body);
    for (const auto& n : v.at("nodes").as_array())
      if (n.at("id").as_string() == node)
        return {n.at("in").as_number().to_int64(), n.at("out").as_number().to_int64()};
  } catch (const std::exception&) {
  }
  return {};
}

// The command id of a command this test produced (its JSON starts with it).
std::string command_id_of(const std::string& json) {
  const std::string tag = "{\"commandId\":\"";
  if (json.rfind(tag, 0) != 0) return "";
  return json.substr(tag.size(), json.find('"', tag.size()) - tag.size());
}

// Command id -> events written for it, read from the event store at `path`.
std::map<std::string, size_t> events_per_command(const fs::path& path) {
  connectors::RocksOptions o;
  o.path = path.string();
  auto events = connectors::RocksEventStore::open(o);
  EXPECT_TRUE(events) << path << ": " << events.status().to_string();
  std::map<std::string, size_t> out;
  if (!events) return out;
  for (const auto& r : testing::read_whole_log(**events)) {
    v1::Event e;
    EXPECT_TRUE(e.ParseFromString(r.payload));
    EXPECT_EQ(e.kind_case(), v1::Event::kOrderPlaced) << r.command_id;
    ++out[r.command_id];
  }
  return out;
}

class KafkaKillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("orderflow-kafka-kill-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    kafka_ = std::make_unique<MockKafka>(3);
    kafka_->create_topic("orders.commands", 6);
    kafka_->create_topic("orders.commands.dlq", 1);
    port_ = testing::free_loopback_port();
    // No change feed, projection, saga or sink: only ingest, decisions and synced commits,
    // one command per write so that commands become durable well behind the source.
    std::ofstream(dir_ / "graph.yaml")
        << "graph: kafka-kill\n"
           "stores:\n"
           "  events: {kind: rocksdb, path: events}\n"
           "  snapshots: {kind: rocksdb, path: snapshots}\n"
           "nodes:\n"
           "  - {id: kin, kind: kafka_source, params: {brokers: \"" << kafka_->bootstrap() << "\", group: kill,"
           " commit_interval_ms: 20, max_in_flight: " << kInFlight << ","
           " properties: \"fetch.wait.max.ms=50,session.timeout.ms=6000\"}}\n"
           "  - {id: http, kind: http_source}\n"
           "  - {id: route, kind: route, params: {lanes: 4}}\n"
           "  - {id: lanes, kind: command_lane, params: {events: events, snapshots: snapshots}}\n"
           "  - {id: commit, kind: commit, params: {events: events, max_batch: 1}}\n"
           "edges: [kin -> route, http -> route, route -> lanes, lanes -> commit]\n";
    server_ = std::make_unique<testing::ServerProcess>(dir_ / "data", dir_ / "server.log", (dir_ / "graph.yaml").string());
  }
  void TearDown() override {
    server_.reset();
    kafka_.reset();
    if (HasFailure()) testing::print_log_tail(dir_ / "server.log", 60);
    fs::remove_all(dir_);
  }

  void send_orders(int from, int to) {
    for (int i = from; i < to; ++i) {
      const std::string order = "o" + std::to_string(i);
      kafka_->produce("orders.commands", "order-" + order,
                      "{\"commandId\":\"place-" + order + "\",\"placeOrder\":{\"orderId\":\"" + order +
                          "\",\"customerId\":\"c\",\"lines\":[{\"sku\":\"S" + std::to_string(i % 5) +
                          "\",\"quantity\":1,\"unitPriceCents\":10}]}}");
    }
    ASSERT_TRUE(kafka_->flush());
  }

  int64_t committed_total() {
    int64_t n = 0;
    for (const auto& [p, off] : kafka_->committed("kill", "orders.commands")) n += std::max<int64_t>(0, off);
    return n;
  }

  fs::path dir_;
  int port_ = 0;
  std::unique_ptr<MockKafka> kafka_;
  std::unique_ptr<testing::ServerProcess> server_;
};

TEST_F(KafkaKillTest, KilledWithCommandsHandedOutNotDurableNoneMissingAfterRestart) {
  int produced = kFirstBatch;
  ASSERT_NO_FATAL_FAILURE(send_orders(0, produced));
  ASSERT_TRUE(server_->start(port_));

  // Kill it while commands handed out a while ago are still unfinished: the counters only
  // grow, so `in` read 50 ms (a few commit intervals) before the kill counts commands handed
  // out by then, and `out` read just before it bounds what had finished from below. What
  // was durable at the kill is read back from the store below. Nothing waits for the
  // committed offsets to be behind what was handed out: a source that commits too far
  // would then be killed only in the milliseconds before its next commit, and hide.
  Counts earlier, now;
  bool killed = false;
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  while (!killed && std::chrono::steady_clock::now() < give_up) {
    now = counts_of(port_, "kin");
    if (now.in >= produced - kInFlight / 2 && produced < kMaxProduced) {  // keep a backlog
      ASSERT_NO_FATAL_FAILURE(send_orders(produced, produced + kInFlight));
      produced += kInFlight;
    }
    if (earlier.in >= 0 && now.out >= 200 && earlier.in - now.out >= kInFlight / 2) {
      server_->kill_now();
      killed = true;
      break;
    }
    earlier = now;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(killed) << "never caught with handed-out, unfinished commands (produced " << produced << ")";
  // A commit the server sent just before it died may still be on its way to the broker.
  std::this_thread::sleep_for(200ms);

  // What was durable at the kill, from a copy of the event store (the restart must find the
  // same files): some handed-out commands were not, and none of them may be below a
  // committed offset.
  const auto committed = kafka_->committed("kill", "orders.commands");
  std::error_code ec;
  fs::copy(dir_ / "data" / "events", dir_ / "events-at-kill", fs::copy_options::recursive, ec);
  ASSERT_FALSE(ec) << ec.message();
  const auto durable = events_per_command(dir_ / "events-at-kill");
  std::cout << "killed with " << now.in << " commands handed out (" << earlier.in << " 50 ms before), " << now.out
            << " finished, " << durable.size() << " durable, " << committed_total() << " offsets committed (of "
            << produced << ")\n";
  ASSERT_LT(static_cast<int64_t>(durable.size()), now.in)
      << "every handed-out command was durable at the kill: the test missed its window";
  size_t committed_not_durable = 0;
  std::string examples;
  for (const auto& r : kafka_->read_all("orders.commands")) {
    auto it = committed.find(r.partition);
    if (it == committed.end() || r.offset >= it->second || durable.count(command_id_of(r.value))) continue;
    if (++committed_not_durable <= 5)
      examples += " " + command_id_of(r.value) + " (" + std::to_string(r.partition) + "@" +
                  std::to_string(r.offset) + ")";
  }
  EXPECT_EQ(committed_not_durable, 0u) << "offsets committed past commands not durable at the kill:" << examples;

  // Restart on the same data directory, with more commands behind the redelivered ones.
  ASSERT_NO_FATAL_FAILURE(send_orders(produced, produced + 500));
  produced += 500;
  ASSERT_TRUE(server_->start(port_));
  ASSERT_TRUE(eventually([&] { return kafka_->caught_up("kill", "orders.commands"); }, 30s, 100ms))
      << "the restarted server did not consume the topic to its end (committed " << committed_total() << " of "
      << produced << ")";
  auto status = server_->terminate(30s);
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << testing::describe_wait_status(*status);

  // Every command produced is in the event store exactly once, and none was dead-lettered.
  EXPECT_EQ(kafka_->end_offsets("orders.commands.dlq")[0], 0) << "commands were dead-lettered";
  const auto written = events_per_command(dir_ / "data" / "events");
  size_t missing = 0, repeated = 0;
  std::string missing_ids, repeated_ids;
  for (int i = 0; i < produced; ++i) {
    const std::string id = "place-o" + std::to_string(i);
    auto it = written.find(id);
    if (it == written.end()) {
      if (++missing <= 10) missing_ids += " " + id;
    } else if (it->second != 1) {
      if (++repeated <= 10) repeated_ids += " " + id + " (x" + std::to_string(it->second) + ")";
    }
  }
  EXPECT_EQ(missing, 0u) << "commands never written after the restart:" << missing_ids;
  EXPECT_EQ(repeated, 0u) << "commands written more than once:" << repeated_ids;
  EXPECT_EQ(written.size(), static_cast<size_t>(produced)) << "events of commands nobody produced";
  std::cout << "after the restart: " << written.size() << " commands written of " << produced << " produced, "
            << missing << " missing, " << repeated << " repeated\n";
}

}  // namespace
}  // namespace orderflow
