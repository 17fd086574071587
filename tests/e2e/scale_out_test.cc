// Several `orderflow serve` processes on one Cosmos DB account (the npm stand-in): the
// scale-out case of DESIGN.md ("Core v2"), where no instance's cache is the truth.
//
//   TwoInstancesSettleEveryOrderWithoutWrongRejections
//       orders placed through both instances, their saga steps decided by whichever
//       instance holds the feed range; every order confirmed, then shipped through the
//       instance that placed it (whose cache may be stale): never a rejection decided on
//       state the store has moved past; stock folds to what was shipped.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/cosmos_standin.h"
#include "tests/support/e2e_http.h"
#include "tests/support/server_process.h"

namespace {

namespace fs = std::filesystem;
using orderflow::testing::CosmosStandIn;
using orderflow::testing::describe_wait_status;
using orderflow::testing::ServerProcess;
using namespace orderflow::testing::e2e;

// graphs/orders-cosmos.yaml as shipped, pointed at the stand-in and a database of its own.
std::string cosmos_graph(const CosmosStandIn& standin, const std::string& database) {
  std::ifstream in(std::string(ORDERFLOW_SOURCE_DIR) + "/graphs/orders-cosmos.yaml");
  std::stringstream text;
  text << in.rdbuf();
  std::string yaml = text.str();
  auto replace_all = [&](const std::string& from, const std::string& to) {
    for (size_t at = yaml.find(from); at != std::string::npos; at = yaml.find(from, at + to.size()))
      yaml.replace(at, from.size(), to);
  };
  replace_all("https://YOUR-ACCOUNT.documents.azure.com:443", standin.endpoint());
  replace_all("database: orderflow", "database: " + database);
  return yaml;
}

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
      for (auto& i : instances_) print_log(i.log);
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
  Instance& start(const std::string& name) {
    Instance i;
    i.name = name;
    i.port = free_port();
    i.log = dir_ / (name + ".log");
    i.server = std::make_unique<ServerProcess>(dir_ / ("data-" + name), i.log, graph_.string());
    instances_.push_back(std::move(i));
    Instance& in = instances_.back();
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
    return in;
  }

  static void print_log(const fs::path& log) {
    std::ifstream in(log);
    std::deque<std::string> tail;
    for (std::string line; std::getline(in, line);) {
      tail.push_back(line);
      if (tail.size() > 120) tail.pop_front();
    }
    std::cerr << "---- " << log.filename().string() << " (last " << tail.size() << " lines) ----\n";
    for (const auto& l : tail) std::cerr << l << "\n";
  }

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

}  // namespace
