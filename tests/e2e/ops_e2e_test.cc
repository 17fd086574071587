// Operations checks with the tools operators use, on the real binary and the files in deploy/:
//
//   LiveMetricsPassPromtool        `promtool check metrics` on a running server's /metrics,
//                                  served for a graph whose node id needs escaping
//   AlertRulesPassPromtool         `promtool check rules` and the rules' own unit tests
//   DashboardLoadsAndNamesExportedMetrics
//                                  the Grafana JSON parses; every metric its queries and the
//                                  alert rules name is one the server exports or a figure the
//                                  code sets
//   SystemdUnitVerifies            `systemd-analyze verify` of the unit template
//
// promtool comes from Debian's prometheus package (scripts/deps.sh); a test skips only
// when a tool is missing.
#include "tests/support/net.h"
#include "tests/support/server_process.h"
#include "tests/support/shell.h"
#include <gtest/gtest.h>

#include <utility>  // before cpprestsdk: Boost.Asio's C++20 awaitable.hpp uses std::exchange
#define _TURN_OFF_PLATFORM_STRING  // no U() macro: it breaks gtest's templates (template <class U>)
#include <cpprest/http_client.h>
#include <cpprest/json.h>

#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "graph/metrics.h"

namespace {

namespace fs = std::filesystem;
using orderflow::testing::run_shell;
using orderflow::testing::ServerProcess;
using namespace std::chrono_literals;

const fs::path kSource = ORDERFLOW_SOURCE_DIR;

bool have(const std::string& tool) { return run_shell("command -v " + tool).exit_code == 0; }

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The shell-quoted form of a path.
std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

// The default graph with the HTTP source's id holding a quote, a backslash and a newline:
// every label value that carries it must be escaped, or the whole scrape is invalid.
const char* kOddGraph = R"(graph: "orders \"odd\""
stores:
  events:    {kind: rocksdb, path: events}
  snapshots: {kind: rocksdb, path: snapshots}
nodes:
  - {id: "ht\"tp\\x\nnext", kind: http_source, params: {listen: "127.0.0.1:8080"}}
  - {id: route, kind: route, params: {lanes: 2}}
  - {id: lanes, kind: command_lane, params: {events: events, snapshots: snapshots}}
  - {id: commit, kind: commit, params: {events: events}}
  - {id: feed, kind: change_feed, params: {events: events}}
  - {id: projection, kind: projection, params: {snapshots: snapshots}}
  - {id: saga, kind: saga}
edges:
  - {from: "ht\"tp\\x\nnext", to: route}
  - route -> lanes
  - lanes -> commit
  - commit -> feed
  - feed -> projection
  - feed -> saga
  - saga -> route
)";

class OpsE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }

  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "orderflow-ops-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (server_) server_->kill_now();
    if (HasFailure() && fs::exists(dir_ / "server.log")) std::cerr << "---- server log ----\n" << read_file(dir_ / "server.log");
    server_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Serves `graph_text` and sends a few commands through it; returns its /metrics text.
  std::string live_metrics(const std::string& graph_text) {
    const fs::path graph = dir_ / "graph.yaml";
    std::ofstream(graph) << graph_text;
    const int port = orderflow::testing::free_loopback_port();
    EXPECT_GT(port, 0);
    server_ = std::make_unique<ServerProcess>(dir_ / "data", dir_ / "server.log", graph.string());
    EXPECT_TRUE(server_->start(port));
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (orderflow::testing::http_get_body(port, "/readyz").empty()) {
      if (!server_->running() || std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "the server did not become ready";
        return "";
      }
      std::this_thread::sleep_for(50ms);
    }
    web::http::client::http_client client("http://127.0.0.1:" + std::to_string(port));
    const std::vector<std::string> commands = {
        R"({"commandId":"c-1","addStock":{"sku":"A","quantity":5}})",
        R"({"commandId":"c-2","placeOrder":{"orderId":"o-1","customerId":"u-1","lines":[{"sku":"A","quantity":2,"unitPriceCents":100}]}})",
        R"({"commandId":"c-3","placeOrder":{"orderId":"o-2","customerId":"u-1","lines":[{"sku":"B","quantity":1,"unitPriceCents":100}]}})",
        R"({"not a command":true})",
    };
    for (const auto& body : commands) {
      web::http::http_request req(web::http::methods::POST);
      req.set_request_uri(web::uri("/api/v1/commands?wait=committed"));
      req.set_body(body, "application/json");
      const auto status = client.request(req).get().status_code();
      EXPECT_TRUE(status == 200 || status == 400 || status == 422) << status << " for " << body;
    }
    // Let the saga confirm o-1 (and reject o-2) so the business counters are not all 0.
    std::string text;
    while (std::chrono::steady_clock::now() < deadline) {
      text = orderflow::testing::http_get_body(port, "/metrics");
      if (text.find("orderflow_orders_confirmed_total{node=\"projection\",kind=\"projection\"} 1\n") != std::string::npos &&
          text.find("orderflow_orders_rejected_total{node=\"projection\",kind=\"projection\"} 1\n") != std::string::npos)
        break;
      std::this_thread::sleep_for(100ms);
    }
    return text;
  }

  fs::path dir_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(OpsE2eTest, LiveMetricsPassPromtool) {
  if (!have("promtool")) GTEST_SKIP() << "promtool not installed (Debian package prometheus; scripts/deps.sh)";
  const std::string text = live_metrics(kOddGraph);
  ASSERT_FALSE(text.empty());
  const fs::path file = dir_ / "metrics.txt";
  std::ofstream(file) << text;
  const auto checked = run_shell("promtool check metrics < " + quoted(file));
  EXPECT_EQ(checked.exit_code, 0) << checked.output << "\n---- /metrics ----\n" << text;
  EXPECT_EQ(checked.output, "") << "lint findings are problems too";

  // The escaped id, and the figures as typed families.
  const std::string odd = R"(node="ht\"tp\\x\nnext",kind="http_source")";
  EXPECT_NE(text.find("orderflow_node_messages_in_total{" + odd + "} "), std::string::npos) << text;
  EXPECT_NE(text.find("orderflow_node_latency_seconds_bucket{" + odd + ",le=\"+Inf\"} "), std::string::npos);
  EXPECT_NE(text.find("orderflow_orders_confirmed_total{node=\"projection\",kind=\"projection\"} 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE orderflow_lag_seconds gauge\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE orderflow_node_latency_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("orderflow_build_info{version=\""), std::string::npos);
  EXPECT_NE(text.find("\nprocess_resident_memory_bytes "), std::string::npos);
  EXPECT_NE(text.find("\nprocess_start_time_seconds "), std::string::npos);
  EXPECT_EQ(text.find("orderflow_node_gauge"), std::string::npos);

  // promtool itself catches the bug this guards against: an unescaped copy is refused.
  std::string unescaped = text;
  const std::string escaped_id = R"(ht\"tp\\x\nnext)";
  for (size_t at; (at = unescaped.find(escaped_id)) != std::string::npos;)
    unescaped.replace(at, escaped_id.size(), "ht\"tp\\x next");
  std::ofstream(dir_ / "bad.txt") << unescaped;
  EXPECT_NE(run_shell("promtool check metrics < " + quoted(dir_ / "bad.txt")).exit_code, 0);
}

TEST_F(OpsE2eTest, AlertRulesPassPromtool) {
  if (!have("promtool")) GTEST_SKIP() << "promtool not installed (Debian package prometheus; scripts/deps.sh)";
  const fs::path rules = kSource / "deploy/prometheus/orderflow-rules.yml";
  const auto checked = run_shell("promtool check rules " + quoted(rules));
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_NE(checked.output.find("SUCCESS"), std::string::npos) << checked.output;
  // The alerts fire on the series they are meant for and stay quiet otherwise.
  const auto tested = run_shell("cd " + quoted(rules.parent_path()) + " && promtool test rules orderflow-rules.test.yml");
  EXPECT_EQ(tested.exit_code, 0) << tested.output;
}

// Metric names in a PromQL text: orderflow_* and process_* identifiers, with a histogram's
// _bucket/_sum/_count suffix taken off.
std::set<std::string> metric_names_in(const std::string& promql) {
  std::set<std::string> out;
  static const std::regex name(R"(\b((?:orderflow|process)_[a-zA-Z0-9_]+))");
  for (auto it = std::sregex_iterator(promql.begin(), promql.end(), name); it != std::sregex_iterator(); ++it) {
    std::string n = (*it)[1];
    for (const char* suffix : {"_bucket", "_sum", "_count"})
      if (n.size() > std::strlen(suffix) && n.compare(n.size() - std::strlen(suffix), std::string::npos, suffix) == 0 &&
          n.rfind("orderflow_node_latency_seconds", 0) == 0)
        n.resize(n.size() - std::strlen(suffix));
    out.insert(n);
  }
  return out;
}

// Families named in TYPE lines of an exposition.
std::set<std::string> families_in(const std::string& exposition) {
  std::set<std::string> out;
  std::istringstream in(exposition);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("# TYPE ", 0) == 0) out.insert(line.substr(7, line.find(' ', 7) - 7));
  return out;
}

// Every PromQL expression in the dashboard (targets' expr, template queries).
void collect_queries(const web::json::value& v, std::vector<std::string>* out) {
  if (v.is_object()) {
    for (const auto& [key, child] : v.as_object()) {
      if ((key == "expr" || key == "query") && child.is_string()) out->push_back(child.as_string());
      collect_queries(child, out);
    }
  } else if (v.is_array()) {
    for (const auto& child : v.as_array()) collect_queries(child, out);
  }
}

TEST_F(OpsE2eTest, DashboardLoadsAndNamesExportedMetrics) {
  const fs::path dashboard_file = kSource / "deploy/grafana/orderflow-dashboard.json";
  std::error_code ec;
  const web::json::value dashboard = web::json::value::parse(read_file(dashboard_file), ec);
  ASSERT_FALSE(ec) << dashboard_file << ": " << ec.message();
  ASSERT_TRUE(dashboard.is_object());
  EXPECT_EQ(dashboard.at("title").as_string(), "orderflow");
  std::vector<std::string> queries;
  collect_queries(dashboard, &queries);
  ASSERT_GT(queries.size(), 15u);
  std::set<std::string> named;
  for (const auto& q : queries)
    for (const auto& n : metric_names_in(q)) named.insert(n);
  for (const auto& n : metric_names_in(read_file(kSource / "deploy/prometheus/orderflow-rules.yml"))) named.insert(n);
  ASSERT_GT(named.size(), 15u);

  // What is exported: a live server's families (default graph: HTTP, RocksDB, saga), plus
  // the families of every figure the Kafka and Cosmos connectors set (found in their
  // source), exported through the same code, and readiness once it is set.
  std::set<std::string> exported = families_in(live_metrics(read_file(kSource / "graphs/orders.yaml")));
  orderflow::MetricsRegistry registry;
  registry.set_ready(true);
  auto probe = registry.probe("p", "k");
  static const std::regex figure(R"re(set_gauge\("([^"]+)")re");
  for (const auto& entry : fs::directory_iterator(kSource / "connectors")) {
    const std::string code = read_file(entry.path());
    for (auto it = std::sregex_iterator(code.begin(), code.end(), figure); it != std::sregex_iterator(); ++it) {
      const std::string literal = (*it)[1];
      // A literal that is the start of a name ("lag." + partition) gets a stand-in rest.
      probe->set_gauge(literal.back() == '.' || literal.back() == '_' ? literal + "x" : literal, 1);
    }
  }
  for (const auto& f : families_in(registry.to_prometheus())) exported.insert(f);

  for (const auto& n : named) EXPECT_EQ(exported.count(n), 1u) << n << " is named in deploy/ but not exported";
  // The set above is not trivially everything.
  EXPECT_EQ(exported.count("orderflow_node_gauge"), 0u);
  EXPECT_EQ(exported.count("orderflow_cosmos_throttles_total"), 1u);
  EXPECT_EQ(exported.count("orderflow_dead_lettered_total"), 1u);
}

TEST_F(OpsE2eTest, SystemdUnitVerifies) {
  if (!have("systemd-analyze")) GTEST_SKIP() << "systemd-analyze not installed";
  // The template as installed would run /usr/local/bin/orderflow: point it at this build.
  std::string unit = read_file(kSource / "deploy/systemd/orderflow@.service");
  const std::string installed = "/usr/local/bin/orderflow";
  ASSERT_NE(unit.find("ExecStart=" + installed + " serve "), std::string::npos);
  unit.replace(unit.find(installed), installed.size(), ORDERFLOW_BINARY);
  std::ofstream(dir_ / "orderflow@.service") << unit;
  const auto verified = run_shell("cd " + quoted(dir_) + " && systemd-analyze verify ./orderflow@orders.service");
  EXPECT_EQ(verified.exit_code, 0) << verified.output;
  EXPECT_EQ(verified.output.find("orderflow@"), std::string::npos) << "warnings about the unit: " << verified.output;
}

}  // namespace
