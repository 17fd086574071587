// The orderflow binary's own commands, as a user types them: `validate` and `dot` on the
// shipped graphs and on a broken one, and the answers to a mistyped command line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/shell.h"

namespace orderflow {
namespace {

namespace fs = std::filesystem;

using testing::Ran;

Ran orderflow(const std::string& args) { return testing::run_shell(std::string(ORDERFLOW_BINARY) + " " + args); }

const std::string kGraphs = std::string(ORDERFLOW_SOURCE_DIR) + "/graphs/";

TEST(Cli, ShippedGraphsValidateAndDraw) {
  for (const char* g : {"orders.yaml", "orders-kafka.yaml", "orders-cosmos.yaml"}) {
    const Ran v = orderflow("validate " + kGraphs + g);
    EXPECT_EQ(v.exit_code, 0) << g << ":\n" << v.output;
    EXPECT_NE(v.output.find(": ok ("), std::string::npos) << v.output;
    const Ran d = orderflow("dot " + kGraphs + g);
    EXPECT_EQ(d.exit_code, 0) << g << ":\n" << d.output;
    EXPECT_EQ(d.output.rfind("digraph", 0), 0u) << d.output;
    EXPECT_NE(d.output.find("style=dashed"), std::string::npos) << "commit -> feed goes through the store:\n"
                                                                 << d.output;
  }
}

TEST(Cli, BrokenGraphIsRefusedWithEveryProblemAndItsLine) {
  const fs::path file = fs::temp_directory_path() / ("orderflow-cli-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(file) << "graph: broken\n"
                         "stores:\n"
                         "  events: {kind: memory}\n"
                         "nodes:\n"
                         "  - {id: route, kind: route, params: {lanes: 0}}\n"
                         "  - {id: lanes, kind: command_lane, params: {events: nowhere}}\n"
                         "  - {id: x, kind: no_such_kind}\n"
                         "edges: [route -> lanes, lanes -> ghost]\n";
  const Ran r = orderflow("validate " + file.string());
  fs::remove(file);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  for (const char* problem : {"no_such_kind", "nowhere", "ghost", "[1, 256]", "5 problems"})
    EXPECT_NE(r.output.find(problem), std::string::npos) << problem << " not reported:\n" << r.output;
  EXPECT_NE(r.output.find(file.filename().string() + ":5:"), std::string::npos) << "file:line:\n" << r.output;
}

TEST(Cli, CosmosEndpointInClearToAnotherMachineIsRefusedByValidate) {
  const fs::path file = fs::temp_directory_path() / ("orderflow-cli-cosmos-" + std::to_string(::getpid()) + ".yaml");
  auto write = [&](const std::string& endpoint) {
    std::ofstream(file) << "graph: c\n"
                           "stores:\n"
                           "  events: {kind: cosmos, endpoint: \"" << endpoint << "\", database: d, container: e}\n"
                           "  snapshots: {kind: memory}\n"
                           "nodes:\n"
                           "  - {id: http, kind: http_source}\n"
                           "  - {id: route, kind: route}\n"
                           "  - {id: lanes, kind: command_lane, params: {events: events, snapshots: snapshots}}\n"
                           "  - {id: commit, kind: commit, params: {events: events}}\n"
                           "edges: [http -> route, route -> lanes, lanes -> commit]\n";
  };
  write("http://db.example.com:8081");
  Ran r = orderflow("validate " + file.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("plain http:// is only for a stand-in"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(file.filename().string() + ":3:"), std::string::npos) << "at the endpoint's line:\n"
                                                                                 << r.output;
  write("http://127.0.0.1:1@db.example.com");
  r = orderflow("validate " + file.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("no user info"), std::string::npos) << r.output;
  write("http://127.0.0.1:8081");
  r = orderflow("validate " + file.string());
  EXPECT_EQ(r.exit_code, 0) << "a stand-in on this machine is fine:\n" << r.output;
  fs::remove(file);
}

TEST(Cli, MistypedCommandLinesSayWhatIsWrong) {
  Ran r = orderflow("bogus");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("unknown command 'bogus'"), std::string::npos) << r.output;
  r = orderflow("bogus " + kGraphs + "orders.yaml");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("unknown command 'bogus'"), std::string::npos) << r.output;
  r = orderflow("validate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("validate needs a graph FILE"), std::string::npos) << r.output;
  r = orderflow("validate /nonexistent/graph.yaml");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("/nonexistent/graph.yaml"), std::string::npos) << r.output;
  r = orderflow("serve " + kGraphs + "orders.yaml --threads zero");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--threads needs a positive integer"), std::string::npos) << r.output;
  r = orderflow("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("orderflow serve FILE"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace orderflow
