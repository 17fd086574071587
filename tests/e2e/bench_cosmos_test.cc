// `orderflow bench` against the Cosmos DB stand-in, as `make bench-cosmos` runs it: the real
// binary on graphs/orders-cosmos.yaml with a small count, its report checked against itself,
// against the stand-in's own request count and against the graph file; and the refusals
// when the endpoint or the key is missing.
#include <gtest/gtest.h>

#include <utility>  // before cpprestsdk: Boost.Asio's C++20 awaitable.hpp uses std::exchange
#include <cpprest/json.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "connectors/cosmos_client.h"
#include "tests/support/bench_report.h"
#include "tests/support/cosmos_standin.h"
#include "tests/support/shell.h"

namespace {

namespace fs = std::filesystem;

using orderflow::testing::CosmosStandIn;
using orderflow::testing::num;
using orderflow::testing::Ran;
using orderflow::testing::slurp;


Ran bench(const std::string& env, const std::string& graph, const std::string& args) {
  return orderflow::testing::run_shell(env + " " + ORDERFLOW_BINARY + " bench " + ORDERFLOW_SOURCE_DIR + "/graphs/" +
                                       graph + " --no-progress " + args);
}

// The events store's `parallelism` as graphs/orders-cosmos.yaml sets it.
int graph_parallelism() {
  std::smatch m;
  const std::string yaml = slurp(fs::path(ORDERFLOW_SOURCE_DIR) / "graphs" / "orders-cosmos.yaml");
  if (!std::regex_search(yaml, m, std::regex(R"(parallelism:\s*(\d+))"))) return -1;
  return std::stoi(m[1]);
}

TEST(BenchCosmos, ReportsRequestsAndRequestUnitsPerOrderAgainstRawCreates) {
  CosmosStandIn standin(CosmosStandIn::Options{4, "", "", 2});
  const fs::path dir = fs::temp_directory_path() / ("orderflow-bench-cosmos-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path json_path = dir / "bench.json", csv_path = dir / "bench.csv";
  const Ran r = bench("COSMOS_KEY='" + standin.key() + "'", "orders-cosmos.yaml",
                      "--cosmos-endpoint " + standin.endpoint() + " --commands 200 --skus 50 --runs 1 --threads 2 --json " +
                          json_path.string() + " --csv " + csv_path.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;

  const int parallelism = graph_parallelism();
  ASSERT_GT(parallelism, 0);
  EXPECT_NE(r.output.find("raw document creates, " + std::to_string(parallelism) + " at a time"), std::string::npos)
      << r.output;
  for (const char* s : {"requests/order", "RU/order", "RU by operation", "requests by operation", "settled/placed"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << " missing from\n" << r.output;

  const auto doc = web::json::value::parse(slurp(json_path));
  const auto& raw = doc.at(U("baselines")).at(U("raw-cosmos-creates"));
  const double raw_per_s = num(raw, "events_per_s");
  EXPECT_GT(raw_per_s, 0);
  ASSERT_EQ(raw.at(U("runs")).as_array().size(), 1u);
  const auto& raw_run = raw.at(U("runs")).as_array().at(0);
  EXPECT_EQ(num(raw_run, "concurrency"), parallelism);
  EXPECT_EQ(num(raw_run, "failed"), 0);

  const auto& summary = doc.at(U("summary")).as_array();
  ASSERT_EQ(summary.size(), 1u) << "Cosmos DB runs have no metrics-off twin";
  const auto& s = summary.at(0);
  ASSERT_TRUE(s.has_field(U("cosmos"))) << r.output;
  const auto& c = s.at(U("cosmos"));
  const double orders = num(c, "workload_orders");
  EXPECT_GT(orders, 100) << "about 70% of 200 commands place orders";
  EXPECT_EQ(num(s, "commands"), 250) << "client commands: 200 and 50 stockings";
  EXPECT_EQ(num(s, "failed"), 0);
  EXPECT_EQ(num(s, "orders"), orders) << "every PlaceOrder accepted";
  EXPECT_EQ(num(c, "orders_placed"), orders);
  EXPECT_EQ(num(c, "orders_settled"), num(c, "orders_placed")) << "the saga confirmed or rejected every order";
  EXPECT_GT(num(c, "commands"), num(s, "accepted")) << "the saga's commands are committed too";
  EXPECT_EQ(num(raw_run, "events"), num(c, "commands")) << "the baseline creates one document per committed command";
  EXPECT_NEAR(num(c, "commands_per_s") * num(s, "seconds"), num(c, "commands"), 1);

  EXPECT_GT(num(c, "requests_per_order"), 1);
  EXPECT_GT(num(c, "ru_per_order"), 1);
  // The JSON keeps 6 significant digits.
  EXPECT_NEAR(num(c, "requests_per_order") * orders, num(c, "requests"), 1e-5 * num(c, "requests"));
  EXPECT_NEAR(num(c, "ru_per_order") * orders, num(c, "request_units"), 1e-5 * num(c, "request_units"));
  double by_op = 0;
  for (const auto& [op, ru] : c.at(U("ru_by_operation")).as_object()) by_op += ru.as_double();
  EXPECT_NEAR(by_op, num(c, "request_units"), 1e-5 * num(c, "request_units")) << "the operations add up to the total";
  EXPECT_GT(num(c.at(U("ru_by_operation")), "append"), 0);
  double requests_by_op = 0;
  for (const auto& [op, n] : c.at(U("requests_by_operation")).as_object()) requests_by_op += n.as_double();
  EXPECT_NEAR(requests_by_op, num(c, "requests"), 1e-5 * num(c, "requests")) << "the operations add up to the total";
  EXPECT_GT(num(c.at(U("requests_by_operation")), "append"), 0);
  // The stand-in answered at least what the pipeline counted and the baseline created.
  EXPECT_GE(static_cast<double>(standin.stat("requests")), num(c, "requests") + num(raw_run, "events"));

  const double ratio = num(s.at(U("ratios")), "raw_cosmos_creates");
  EXPECT_NEAR(ratio, num(c, "commands_per_s") / raw_per_s, 1e-5 * ratio);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m,
                                std::regex(R"(ratio, cosmos t2: (\d+) commands/s / (\d+) raw creates/s = ([0-9.]+))")))
      << r.output;
  const double shown_cmds = std::stod(m[1]), shown_raw = std::stod(m[2]), shown_ratio = std::stod(m[3]);
  EXPECT_NEAR(shown_ratio, ratio, 0.005 + 1e-9);
  EXPECT_NEAR(shown_ratio, shown_cmds / shown_raw, 0.005 + (0.5 + 0.5 * shown_ratio) / shown_raw);

  // The CSV has the same figures per run.
  std::ifstream csv(csv_path);
  std::string header, row;
  ASSERT_TRUE(std::getline(csv, header));
  ASSERT_TRUE(std::getline(csv, row));
  EXPECT_NE(header.find("cosmos_ru_per_order"), std::string::npos);
  EXPECT_NE(header.find("raw_cosmos_creates_per_s"), std::string::npos);
  EXPECT_EQ(std::count(header.begin(), header.end(), ','), std::count(row.begin(), row.end(), ','));

  // Every run's database and the baseline's are gone.
  orderflow::connectors::CosmosOptions co;
  co.endpoint = standin.endpoint();
  co.key = standin.key();
  auto client = orderflow::connectors::CosmosClient::open(co);
  ASSERT_TRUE(client) << client.status().to_string();
  orderflow::connectors::CosmosRequest list;
  list.method = "GET";
  list.resource_type = "dbs";
  list.path = "dbs";
  auto dbs = (*client)->send(list);
  ASSERT_TRUE(dbs) << dbs.status().to_string();
  EXPECT_EQ(dbs->http_status, 200);
  EXPECT_EQ(dbs->body.find("orderflow-bench"), std::string::npos) << dbs->body;
  fs::remove_all(dir);
}

TEST(BenchCosmos, RefusesCosmosStoresWithoutEndpointOrKey) {
  // Nothing is contacted: the checks come before any run.
  Ran r = bench("COSMOS_KEY=c2VjcmV0", "orders-cosmos.yaml", "--commands 10");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("need --cosmos-endpoint URL"), std::string::npos) << r.output;

  r = bench("env -u COSMOS_KEY", "orders-cosmos.yaml", "--cosmos-endpoint http://127.0.0.1:9 --commands 10");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("environment variable COSMOS_KEY (its key_env) holds no Cosmos DB key"), std::string::npos)
      << r.output;

  r = bench("COSMOS_KEY=c2VjcmV0", "orders.yaml", "--cosmos-endpoint http://127.0.0.1:9 --commands 10");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("has no store of kind cosmos"), std::string::npos) << r.output;

  r = bench("COSMOS_KEY=c2VjcmV0", "orders-cosmos.yaml", "--cosmos-endpoint http://example.com:80 --commands 10");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--cosmos-endpoint:"), std::string::npos) << r.output;

  // --store switches the Cosmos DB stores away: no endpoint needed.
  r = bench("env -u COSMOS_KEY", "orders-cosmos.yaml",
            "--store memory --commands 50 --skus 10 --threads 1 --no-baselines");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace
