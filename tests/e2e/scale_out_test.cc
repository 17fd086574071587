// Several `orderflow serve` processes on one Cosmos DB account (the npm stand-in): the
// scale-out case of DESIGN.md ("Core v2"), where no instance's cache is the truth.
//
//   TwoInstancesSettleEveryOrderWithoutWrongRejections
//       orders placed through both instances, their saga steps decided by whichever
//       instance holds the feed range; every order confirmed, then shipped through the
//       instance that placed it (whose cache may be stale): never a rejection decided on
//       state the store has moved past; stock folds to what was shipped.
//   LeasesMoveWithin10sOfAKillAndASecondOfAStop
//       two instances share the change-feed ranges; kill -9 of one: the other holds every
//       range within 10 s; the killed one restarted with its --instance-id takes its share
//       back at once; SIGTERM of one: the other holds every range within about a second.
//   SeedTopologyTwoInstancesPerServiceSurvivesAKillOfEach
//       graphs/orders-azure.yaml on the stand-in and a mock Kafka cluster: commands, views
//       and publisher, two instances each; orders over HTTP and Kafka; kill -9 of one
//       instance of every service mid-load (the first half of the HTTP orders goes through
//       both command instances at once: one placement each). Nothing acknowledged lost, every order
//       confirmed or rejected exactly once, the stock invariants, the read model equal to a
//       fold of the log, every event on its topic in version order; takeover under 10 s.
//   OutageIsReportedAnsweredByTheDeadlineAndRecoveredWithoutRestart
//       Cosmos DB answering 503 to everything under load: /readyz 503 with the reason, one
//       warning line each way, every request answered by its deadline, acknowledged
//       commands kept, and commands work again without a restart; a stop while it is down
//       is bounded by the drain timeout.
//   BlackHoledAccountIsReportedAnsweredByTheDeadlineAndRecoveredWithoutRestart
//       the same with the stand-in's process frozen (SIGSTOP): nothing answers, nothing is
//       refused; readiness must see requests that never come back.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <iterator>
#include <set>
#include <mutex>
#include <thread>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "connectors/cosmos_store.h"
#include "tests/support/cosmos_standin.h"
#include "tests/support/invariants.h"
#include "tests/support/kafka.h"
#include "tests/support/e2e_http.h"
#include "tests/support/server_process.h"

namespace {

namespace fs = std::filesystem;
using orderflow::testing::CosmosStandIn;
using orderflow::testing::cosmos_graph;
using orderflow::testing::describe_wait_status;
using orderflow::testing::ServerProcess;
using namespace orderflow::testing::e2e;

namespace v1 = orderflow::v1;

class ScaleOutTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }

  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "orderflow-scale-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    standin_ = std::make_unique<CosmosStandIn>(CosmosStandIn::Options{4, "", ""});
    ::setenv("COSMOS_KEY", standin_->key().c_str(), 1);  // inherited by the servers
    graph_ = dir_ / "orders-cosmos.yaml";
    std::ofstream(graph_) << cosmos_graph(*standin_, "scaleout");
  }

  void TearDown() override {
    for (auto& i : instances_) i.server->kill_now();
    if (HasFailure())
      for (auto& i : instances_) orderflow::testing::print_log_tail(i.log, 120);
    instances_.clear();
    standin_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  struct Instance {
    std::string name;
    int port = 0;
    fs::path log;
    std::unique_ptr<ServerProcess> server;
  };

  // Starts instance `name` and waits (at most 30 s) until its /readyz answers 200.
  Instance& start(const std::string& name, std::vector<std::string> args = {}) {
    Instance i;
    i.name = name;
    i.port = free_port();
    i.log = dir_ / (name + ".log");
    i.server = std::make_unique<ServerProcess>(dir_ / ("data-" + name), i.log, graph_.string());
    i.server->add_args(std::move(args));
    instances_.push_back(std::move(i));
    Instance& in = instances_.back();
    wait_ready(in);
    return in;
  }

  // (Re)starts an instance's process and waits until it is ready.
  void wait_ready(Instance& in) {
    const std::string& name = in.name;
    EXPECT_TRUE(in.server->start(in.port));
    Http h(in.port, 2s);
    Reply last;
    const bool ready = eventually(
        [&] {
          if (!in.server->running()) return true;
          last = h.get("/readyz");
          return last.status == 200;
        },
        30s, 50ms);
    EXPECT_TRUE(in.server->running()) << name << " exited during start-up: "
                                      << describe_wait_status(in.server->last_status().value_or(0));
    EXPECT_TRUE(ready) << name << ": GET /readyz never answered 200; last: " << last.describe();
  }

  // Change-feed ranges (of 4) `instance` holds for `subscriber`, as its Cosmos probe says; -1
  // when the instance does not answer.
  static int leases(const Instance& in, const std::string& subscriber) {
    Http h(in.port, 2s);
    Reply r = h.get("/api/v1/metrics");
    if (r.status != 200) return -1;
    return static_cast<int>(gauge(metrics_node(r.json, "cosmos"), "leases_" + subscriber + "_" + in.name));
  }


  void outage_under_load(const std::function<void()>& begin_outage, const std::function<void()>& end_outage,
                         std::chrono::milliseconds length);

  fs::path dir_, graph_;
  std::unique_ptr<CosmosStandIn> standin_;
  std::deque<Instance> instances_;
};

TEST_F(ScaleOutTest, TwoInstancesSettleEveryOrderWithoutWrongRejections) {
  Instance& a = start("a");
  Instance& b = start("b");
  ASSERT_FALSE(HasFailure());
  const std::vector<std::string> skus = {"S0", "S1", "S2", "S3"};
  constexpr int kStock = 100000;
  constexpr int kOrders = 80;
  {
    Http h(a.port, 30s);
    for (const auto& sku : skus) {
      Reply r = h.command(add_stock("stock-" + sku, sku, kStock).body);
      ASSERT_EQ(r.status, 200) << r.describe();
    }
  }
  // Orders alternate between the instances; the saga's steps for each are decided by the
  // instance whose feed holds the order's range, so the placing instance's cache of the
  // order often stops at `placed`.
  auto order_id = [](int i) { return "o" + std::to_string(i); };
  auto placed_by = [&](int i) -> Instance& { return i % 2 == 0 ? a : b; };
  for (int i = 0; i < kOrders; ++i) {
    Http h(placed_by(i).port, 30s);
    Reply r = h.command(place_order("place-" + order_id(i), order_id(i), "u" + std::to_string(i),
                                    {{skus[i % 4], 1, 100}, {skus[(i + 1) % 4], 2, 100}})
                            .body);
    ASSERT_EQ(r.status, 200) << order_id(i) << " via " << placed_by(i).name << ": " << r.describe();
  }

  // Stock is ample, so every order must be confirmed (a stale rejection leaves it placed).
  Http reader(a.port, 10s);
  std::vector<std::string> unsettled;
  const bool settled = eventually(
      [&] {
        unsettled.clear();
        std::string why;
        for (int i = 0; i < kOrders; ++i) {
          auto evs = fetch_events(reader, "order-" + order_id(i), &why);
          const std::string status = evs ? fold_order(*evs).status : why;
          if (status != "confirmed") unsettled.push_back(order_id(i) + "=" + status);
        }
        return unsettled.empty();
      },
      90s, 500ms);
  ASSERT_TRUE(settled) << unsettled.size() << " of " << kOrders << " orders not confirmed, e.g. " << unsettled.front();

  // Shipped through the instance that placed the order: its lane may hold the order as
  // `placed` in its cache; the decision must be made on the store's current version.
  for (int i = 0; i < kOrders; ++i) {
    Http h(placed_by(i).port, 30s);
    Reply r = h.command(ship_order("ship-" + order_id(i), order_id(i)).body);
    EXPECT_EQ(r.status, 200) << "shipOrder " << order_id(i) << " via " << placed_by(i).name << ": " << r.describe();
  }

  // The saga releases every hold as shipped: stock folds to exactly what was ordered.
  std::map<std::string, int64_t> shipped;
  for (int i = 0; i < kOrders; ++i) {
    shipped[skus[i % 4]] += 1;
    shipped[skus[(i + 1) % 4]] += 2;
  }
  std::string problem;
  const bool released = eventually(
      [&] {
        for (const auto& sku : skus) {
          auto evs = fetch_events(reader, "sku-" + sku, &problem);
          if (!evs) return false;
          const FoldedInventory s = fold_inventory(*evs);
          if (!s.problem.empty() || s.reserved != 0 || s.on_hand != kStock - shipped[sku]) {
            problem = sku + ": onHand " + std::to_string(s.on_hand) + " reserved " + std::to_string(s.reserved) +
                      " holds " + std::to_string(s.holds.size()) + " " + s.problem;
            return false;
          }
        }
        return true;
      },
      90s, 500ms);
  EXPECT_TRUE(released) << problem;
}

TEST_F(ScaleOutTest, LeasesMoveWithin10sOfAKillAndASecondOfAStop) {
  Instance& a = start("a", {"--instance-id", "a"});
  Instance& b = start("b", {"--instance-id", "b"});
  ASSERT_FALSE(HasFailure());
  auto holds = [&](const Instance& in, int ranges) {
    return leases(in, "projection") == ranges && leases(in, "saga") == ranges;
  };
  ASSERT_TRUE(eventually([&] { return holds(a, 2) && holds(b, 2); }, 20s, 100ms))
      << "the instances did not share the 4 ranges: a holds " << leases(a, "projection") << ", b "
      << leases(b, "projection");

  // kill -9: b's ranges expire (lease_expiry_ms 6000) and a takes them at its next cycle.
  b.server->kill_now();
  auto t0 = Clock::now();
  ASSERT_TRUE(eventually([&] { return holds(a, 4); }, 15s, 50ms)) << "a holds " << leases(a, "projection");
  const auto takeover = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  std::cout << "takeover after kill -9: " << takeover.count() << " ms\n";
  EXPECT_LT(takeover, 10s);

  // Restarted with the same instance id: b takes a fair share back at once.
  wait_ready(b);
  t0 = Clock::now();
  ASSERT_TRUE(eventually([&] { return holds(b, 2); }, 15s, 50ms)) << "b holds " << leases(b, "projection");
  std::cout << "restarted instance holds its share after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count() << " ms\n";

  // SIGTERM: b hands its ranges back as it stops; a holds all within about a second.
  ASSERT_TRUE(eventually([&] { return holds(a, 2) && holds(b, 2); }, 15s, 100ms));
  const auto stopped = b.server->terminate(20s);
  t0 = Clock::now();
  ASSERT_TRUE(stopped.has_value()) << "b did not stop within 20 s of SIGTERM";
  ASSERT_TRUE(eventually([&] { return holds(a, 4); }, 10s, 20ms)) << "a holds " << leases(a, "projection");
  const auto handover = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  std::cout << "handover after SIGTERM: " << handover.count() << " ms\n";
  EXPECT_LT(handover, 3s);  // one lease cycle (1 s) after the release, with slack for a busy machine
}

// Under load, `begin_outage` cuts the account off for `length`, then `end_outage` brings it
// back; then the account goes once more and the instance is stopped.
void ScaleOutTest::outage_under_load(const std::function<void()>& begin_outage, const std::function<void()>& end_outage,
                                     std::chrono::milliseconds length) {
  Instance& a = start("a", {"--drain-timeout", "2"});
  ASSERT_FALSE(HasFailure());
  Http h(a.port, 30s);
  ASSERT_EQ(h.command(add_stock("stock", "S", 1000000).body).status, 200);

  // Load: orders with a 1.5 s deadline from two threads until told to stop.
  constexpr int kTimeoutMs = 1500;
  struct Sent {
    std::string id;
    int status = 0;
    std::chrono::milliseconds took{0};
    bool during_outage = false;
  };
  std::mutex mu;
  std::vector<Sent> sent;
  std::atomic<bool> stop{false}, outage{false};
  std::vector<std::thread> load;
  for (int t = 0; t < 2; ++t)
    load.emplace_back([&, t] {
      Http client(a.port, 20s);
      for (int i = 0; !stop; ++i) {
        const std::string id = "o" + std::to_string(t) + "-" + std::to_string(i);
        web::http::http_request req(web::http::methods::POST);
        req.set_request_uri(web::uri("/api/v1/commands?wait=committed"));
        req.headers().add("X-Timeout-Ms", std::to_string(kTimeoutMs));
        req.set_body(place_order(id, id, "u", {{"S", 1, 100}}).body, "application/json");
        const bool during = outage;
        const auto t0 = Clock::now();
        int status = 0;
        try {
          web::http::client::http_client_config cfg;
          cfg.set_timeout(20s);
          web::http::client::http_client c("http://127.0.0.1:" + std::to_string(a.port), cfg);
          status = c.request(req).get().status_code();
        } catch (const std::exception&) {
        }
        std::lock_guard lock(mu);
        sent.push_back({id, status, std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0),
                        during || outage});
        if (status != 200) std::this_thread::sleep_for(50ms);
      }
    });
  std::this_thread::sleep_for(1s);

  begin_outage();
  outage = true;
  Reply ready;
  EXPECT_TRUE(eventually([&] { return (ready = h.get("/readyz")).status == 503; }, 10s, 100ms))
      << "readiness stayed " << ready.describe();
  EXPECT_NE(ready.text.find("Cosmos DB"), std::string::npos) << ready.text;
  std::this_thread::sleep_for(length);
  end_outage();
  outage = false;
  EXPECT_TRUE(eventually([&] { return (ready = h.get("/readyz")).status == 200; }, 20s, 100ms))
      << "readiness after the outage: " << ready.describe();
  std::this_thread::sleep_for(1s);
  stop = true;
  for (auto& t : load) t.join();

  // Every request was answered by its deadline (plus scheduling slack), whatever happened.
  int acknowledged = 0, refused_in_outage = 0;
  for (const auto& s : sent) {
    EXPECT_NE(s.status, 0) << s.id << " got no answer";
    EXPECT_LT(s.took, std::chrono::milliseconds(kTimeoutMs + 1500)) << s.id << " answered " << s.status;
    if (s.status == 200) ++acknowledged;
    if (s.during_outage && s.status != 200) ++refused_in_outage;
  }
  std::map<int, int> by_status;
  std::chrono::milliseconds slowest{0};
  for (const auto& s : sent) {
    by_status[s.status]++;
    slowest = std::max(slowest, s.took);
  }
  std::cout << sent.size() << " orders sent, slowest answer " << slowest.count() << " ms; by status:";
  for (const auto& [status, n] : by_status) std::cout << " " << status << "=" << n;
  std::cout << "\n";
  EXPECT_GT(acknowledged, 0);
  EXPECT_GT(refused_in_outage, 0) << "the outage refused nothing: was it an outage?";
  // Nothing acknowledged is lost; a command answered 504/503 is settled by sending it again
  // with the same id: it exists exactly once either way.
  for (const auto& s : sent) {
    if (s.status != 200) {
      Reply again = h.command(place_order(s.id, s.id, "u", {{"S", 1, 100}}).body);
      EXPECT_EQ(again.status, 200) << s.id << " sent again after the outage: " << again.describe();
    }
    std::string why;
    auto evs = fetch_events(h, "order-" + s.id, &why);
    ASSERT_TRUE(evs.has_value()) << why;
    ASSERT_FALSE(evs->empty()) << s.id << " (answered " << s.status << ") is not in the event store";
    EXPECT_EQ((*evs)[0].type, "orderPlaced");
    EXPECT_EQ(std::count_if(evs->begin(), evs->end(), [](const Ev& e) { return e.type == "orderPlaced"; }), 1);
  }
  // One warning line when the account went, one when it came back.
  std::ifstream in(a.log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("cosmos db unavailable"), 1u) << text.substr(0, 4000);
  EXPECT_EQ(count("cosmos db reachable again"), 1u);

  // A stop while the account is down is bounded by the drain timeout (2 s here), not by the
  // store's retries.
  begin_outage();
  EXPECT_TRUE(eventually([&] { return h.get("/readyz").status == 503; }, 10s, 100ms));
  std::thread late([&] { Http(a.port, 10s).command(place_order("late", "late", "u", {{"S", 1, 100}}).body); });
  std::this_thread::sleep_for(300ms);
  const auto t0 = Clock::now();
  const auto status = a.server->terminate(30s);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  late.join();
  std::cout << "stop while Cosmos DB is down: " << took.count() << " ms\n";
  EXPECT_TRUE(status.has_value()) << "not stopped within 30 s of SIGTERM";
  EXPECT_LT(took, 2s + 3s + 2s);  // drain timeout, the grace period, slack for a busy machine
}

TEST_F(ScaleOutTest, OutageIsReportedAnsweredByTheDeadlineAndRecoveredWithoutRestart) {
  // Every request to the account answers 503 for 4 s.
  outage_under_load([&] { standin_->inject(503, 1000000); }, [&] { standin_->clear_faults(); }, 4s);
}

TEST_F(ScaleOutTest, BlackHoledAccountIsReportedAnsweredByTheDeadlineAndRecoveredWithoutRestart) {
  // The account's process is frozen for 5 s: connections open, nothing answers (requests
  // would only time out after the client's 10 s request timeout).
  outage_under_load([&] { standin_->pause(); }, [&] { standin_->resume(); }, 5s);
}

TEST_F(ScaleOutTest, SeedTopologyTwoInstancesPerServiceSurvivesAKillOfEach) {
  orderflow::testing::MockKafka kafka(3);
  kafka.create_topic("orders.commands", 4);
  kafka.create_topic("orders.commands.dlq", 1);
  kafka.create_topic("orders.events", 4);
  kafka.create_topic("inventory.events", 4);
  ::setenv("KAFKA_BROKERS", kafka.bootstrap().c_str(), 1);
  graph_ = dir_ / "orders-azure.yaml";
  std::ofstream(graph_) << cosmos_graph(*standin_, "seed", "orders-azure.yaml");

  std::map<std::string, Instance*> in;
  for (const auto& [name, service] : std::vector<std::pair<std::string, std::string>>{
           {"c1", "commands"}, {"c2", "commands"}, {"v1", "views"}, {"v2", "views"}, {"p1", "publisher"},
           {"p2", "publisher"}}) {
    in[name] = &start(name, {"--service", service, "--instance-id", name});
    ASSERT_FALSE(HasFailure()) << name;
  }
  const std::vector<std::string> skus = {"K0", "K1", "K2", "K3"};
  {
    Http h(in["c1"]->port, 30s);
    for (const auto& sku : skus) ASSERT_EQ(h.command(add_stock("stock-" + sku, sku, 40).body).status, 200);
  }
  // Orders: even ones over HTTP (both command instances, then the survivor), odd ones over
  // Kafka keyed by stream. Demand (about 60 per SKU) exceeds stock (40): some are rejected.
  constexpr int kOrders = 160;
  auto id_of = [](int i) { return "s" + std::to_string(i); };
  auto order_of = [&](int i) { return place_order("place-" + id_of(i), id_of(i), "u", {{skus[i % 4], 1 + i % 3, 250}}); };
  std::set<std::string> acknowledged, produced;
  std::mutex mu;
  auto send_http = [&](int from, int to, Instance* via, std::atomic<bool>* dead) {
    Http h(via->port, 10s);
    for (int i = from; i < to; i += 2) {
      if (dead != nullptr && *dead) return;
      Reply r = h.command(order_of(i).body);
      std::lock_guard lock(mu);
      if (r.status == 200) acknowledged.insert(id_of(i));
    }
  };
  auto send_kafka = [&](int from, int to) {
    for (int i = from + 1; i < to; i += 2) {
      kafka.produce("orders.commands", "order-" + id_of(i), order_of(i).body);
      produced.insert(id_of(i));
      std::this_thread::sleep_for(10ms);
    }
    kafka.flush();
  };
  // First half: through both command instances, then kill -9 one instance of each service.
  {
    std::atomic<bool> c2_dead{false};
    std::thread t1(send_http, 0, kOrders / 2, in["c1"], nullptr);
    std::thread t2(send_http, kOrders / 4 - (kOrders / 4) % 2, kOrders / 2, in["c2"], &c2_dead);
    send_kafka(0, kOrders / 2);
    for (const char* victim : {"c2", "v2", "p2"}) in[victim]->server->kill_now();
    c2_dead = true;
    t1.join();
    t2.join();
  }
  const auto killed_at = Clock::now();
  // Second half through the survivors, while they take the killed instances' work over.
  {
    std::thread t1(send_http, kOrders / 2, kOrders, in["c1"], nullptr);
    send_kafka(kOrders / 2, kOrders);
    t1.join();
  }
  auto holds_all = [&](Instance* i, const std::string& subscriber) { return leases(*i, subscriber) == 4; };
  ASSERT_TRUE(eventually([&] {
    return holds_all(in["c1"], "saga") && holds_all(in["v1"], "projection") && holds_all(in["p1"], "kafka_out");
  }, 30s, 50ms)) << "saga " << leases(*in["c1"], "saga") << ", projection " << leases(*in["v1"], "projection")
                 << ", kafka_out " << leases(*in["p1"], "kafka_out");
  const auto takeover = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed_at);
  std::cout << "every change-feed range held by the survivors " << takeover.count() << " ms after the kills\n";
  EXPECT_LT(takeover, 10s);

  // The Kafka commands are all consumed (the survivor took the killed member's partitions).
  EXPECT_TRUE(eventually([&] { return kafka.caught_up("orderflow-commands", "orders.commands"); }, 60s, 200ms))
      << "the commands group did not commit every partition to its end";

  // Settled: every order that exists ends confirmed or rejected; the read model catches up.
  auto client = orderflow::connectors::CosmosClient::open([&] {
    orderflow::connectors::CosmosOptions o;
    o.endpoint = standin_->endpoint();
    o.key = standin_->key();
    return o;
  }());
  ASSERT_TRUE(client) << client.status().to_string();
  orderflow::connectors::CosmosStoreOptions eo;
  eo.database = "seed";
  eo.container = "events";
  eo.create_if_missing = false;
  eo.release_leases_on_close = false;
  auto events = orderflow::connectors::CosmosEventStore::open(*client, eo);
  ASSERT_TRUE(events) << events.status().to_string();
  orderflow::connectors::CosmosStoreOptions so = eo;
  so.container = "snapshots";
  auto snapshots = orderflow::connectors::CosmosSnapshotStore::open(*client, so);
  ASSERT_TRUE(snapshots) << snapshots.status().to_string();
  std::string waiting;
  const bool settled = eventually(
      [&] {
        for (int i = 0; i < kOrders; ++i) {
          std::vector<orderflow::RecordedEvent> evs;
          if (!(*events)->read_stream("order-" + id_of(i), 1, &evs)) return false;
          const bool must = acknowledged.count(id_of(i)) || produced.count(id_of(i));
          if (evs.empty() && !must) continue;
          v1::StreamState st;
          for (const auto& r : evs) {
            v1::Event e;
            if (!e.ParseFromString(r.payload)) return false;
            orderflow::orders::evolve(st, e);
          }
          auto snap = (*snapshots)->get("order-" + id_of(i));
          const auto status = st.order().status();
          if (evs.empty() || (status != v1::ORDER_STATUS_CONFIRMED && status != v1::ORDER_STATUS_REJECTED) ||
              !snap || snap->version != st.version()) {
            waiting = id_of(i) + " has " + std::to_string(evs.size()) + " events, snapshot v" +
                      std::to_string(snap ? snap->version : 0);
            return false;
          }
        }
        return true;
      },
      120s, 500ms);
  ASSERT_TRUE(settled) << "not settled: " << waiting;
  // SKU snapshots catch up too (releases after rejections come last).
  std::this_thread::sleep_for(3s);
  orderflow::testing::StoreFold fold;
  ASSERT_NO_FATAL_FAILURE(orderflow::testing::check_store_invariants(**events, **snapshots, &fold));
  size_t placed = 0;
  for (const auto& r : fold.all) {
    v1::Event e;
    ASSERT_TRUE(e.ParseFromString(r.payload));
    placed += e.kind_case() == v1::Event::kOrderPlaced;
  }
  EXPECT_GE(placed, acknowledged.size() + produced.size());
  EXPECT_LE(placed, static_cast<size_t>(kOrders)) << "an order placed twice";
  EXPECT_EQ(fold.confirmed + fold.rejected, placed) << "an order neither confirmed nor rejected";
  EXPECT_GT(fold.confirmed, 0u);
  EXPECT_GT(fold.rejected, 0u);
  std::cout << kOrders << " orders: " << acknowledged.size() << " acknowledged over HTTP, " << produced.size()
            << " over Kafka, " << placed << " placed, " << fold.confirmed << " confirmed, " << fold.rejected
            << " rejected\n";

  // Every event on its topic, in version order per key (redelivery may repeat a prefix).
  std::vector<orderflow::testing::KafkaRecord> records;
  ASSERT_TRUE(eventually([&] {
    records = kafka.read_all("orders.events");
    auto inventory = kafka.read_all("inventory.events");
    records.insert(records.end(), inventory.begin(), inventory.end());
    std::map<std::string, std::set<uint64_t>> seen;
    for (const auto& r : records) seen[r.key].insert(std::stoull(r.headers.at("orderflow-version")));
    for (const auto& [stream, st] : fold.states)
      if (seen[stream].size() != st.version()) return false;
    return true;
  }, 60s, 500ms)) << "not every event reached its topic";
  std::map<std::string, uint64_t> highest;
  for (const auto& r : records) {
    const uint64_t v = std::stoull(r.headers.at("orderflow-version"));
    ASSERT_LE(v, highest[r.key] + 1) << r.key << ": version " << v << " before " << highest[r.key] + 1;
    highest[r.key] = std::max(highest[r.key], v);
  }
}

}  // namespace
