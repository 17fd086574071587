// The orderflow binary's own commands, as a user types them: `validate` and `dot` on the
// shipped graphs and on a broken one, and the answers to a mistyped command line.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "tests/support/kafka.h"
#include "tests/support/shell.h"

namespace orderflow {
namespace {

namespace fs = std::filesystem;

using testing::Ran;

Ran orderflow(const std::string& args) { return testing::run_shell(std::string(ORDERFLOW_BINARY) + " " + args); }

const std::string kGraphs = std::string(ORDERFLOW_SOURCE_DIR) + "/graphs/";

TEST(Cli, ShippedGraphsValidateAndDraw) {
  for (const char* g : {"orders.yaml", "orders-kafka.yaml", "orders-cosmos.yaml", "orders-azure.yaml"}) {
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

// `orderflow mock-kafka`: a broker list on stdout, the topics asked for with their
// partitions, a clean exit on SIGTERM (the README's scale-out walk-through uses it).
TEST(Cli, MockKafkaServesTopicsUntilStopped) {
  FILE* p = ::popen(("echo $$; exec " + std::string(ORDERFLOW_BINARY) +
                     " mock-kafka --brokers 2 --topics cli.a,cli.b --partitions 3 2>/dev/null").c_str(), "r");
  ASSERT_NE(p, nullptr);
  char line[512] = {0};
  ASSERT_NE(std::fgets(line, sizeof line, p), nullptr);
  const pid_t pid = std::atoi(line);
  ASSERT_GT(pid, 0);
  ASSERT_NE(std::fgets(line, sizeof line, p), nullptr) << "no broker list";
  std::string brokers(line);
  while (!brokers.empty() && (brokers.back() == '\n' || brokers.back() == '\r')) brokers.pop_back();
  EXPECT_NE(brokers.find("127.0.0.1:"), std::string::npos) << brokers;
  rd_kafka_t* rk = testing::new_kafka_handle(RD_KAFKA_PRODUCER, {{"bootstrap.servers", brokers}, {"log_level", "2"}});
  std::map<std::string, int> partitions;
  const rd_kafka_metadata_t* md = nullptr;
  ASSERT_EQ(rd_kafka_metadata(rk, 1, nullptr, &md, 5000), RD_KAFKA_RESP_ERR_NO_ERROR);
  for (int i = 0; i < md->topic_cnt; ++i) partitions[md->topics[i].topic] = md->topics[i].partition_cnt;
  rd_kafka_metadata_destroy(md);
  rd_kafka_destroy(rk);
  EXPECT_EQ(partitions["cli.a"], 3);
  EXPECT_EQ(partitions["cli.b"], 3);
  ::kill(pid, SIGTERM);
  const int status = ::pclose(p);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
}

// One parser for every command: --help on each (exit 0), --version, and a bad flag is
// refused with exit 2 naming it, also when it comes from an ORDERFLOW_* variable.
TEST(Cli, EveryCommandHasHelpAndBadFlagsAreRefused) {
  for (const char* cmd : {"serve", "validate", "dot", "bench", "mock-kafka", "repair", "dlq"}) {
    const Ran r = orderflow(std::string(cmd) + " --help");
    EXPECT_EQ(r.exit_code, 0) << cmd << ":\n" << r.output;
    EXPECT_NE(r.output.find(std::string("orderflow ") + cmd), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("--help"), std::string::npos) << r.output;
  }
  Ran r = orderflow("serve --help");
  for (const char* flag : {"--listen", "--data-dir", "--instance-id", "--drain-timeout", "--token-file",
                           "ORDERFLOW_LISTEN", "ORDERFLOW_INSTANCE_ID"})
    EXPECT_NE(r.output.find(flag), std::string::npos) << flag << " not in serve --help:\n" << r.output;
  r = orderflow("bench --help");
  for (const char* flag : {"--commands", "--store", "--threads", "--no-baselines"})
    EXPECT_NE(r.output.find(flag), std::string::npos) << flag << " not in bench --help:\n" << r.output;
  r = orderflow("--version");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.rfind("orderflow ", 0), 0u) << r.output;
  EXPECT_NE(r.output.find('.'), std::string::npos) << r.output;
  r = orderflow("serve " + kGraphs + "orders.yaml --no-such-flag");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--no-such-flag"), std::string::npos) << r.output;
  r = testing::run_shell("ORDERFLOW_LOG_LEVEL=loud " + std::string(ORDERFLOW_BINARY) + " serve " + kGraphs + "orders.yaml");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("loud"), std::string::npos) << r.output;
  r = orderflow("validate " + kGraphs + "orders.yaml --frobnicate");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--frobnicate"), std::string::npos) << r.output;
}

// The binary's malloc is jemalloc (server/CMakeLists.txt: TBB's and glibc's cost the
// pipeline 11-17% of its throughput): a link that lost it would still run, only slower.
TEST(Cli, TheBinaryAllocatesWithJemalloc) {
  const Ran r = testing::run_shell("MALLOC_CONF=stats_print:true " + std::string(ORDERFLOW_BINARY) + " --version 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("jemalloc statistics"), std::string::npos) << r.output.substr(0, 400);
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
  EXPECT_NE(r.output.find("FILE is required"), std::string::npos) << r.output;
  r = orderflow("validate /nonexistent/graph.yaml");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("/nonexistent/graph.yaml"), std::string::npos) << r.output;
  r = orderflow("serve " + kGraphs + "orders.yaml --threads zero");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--threads"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("zero"), std::string::npos) << r.output;
  r = orderflow("--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* cmd : {"serve", "validate", "dot", "bench", "mock-kafka", "repair", "dlq"})
    EXPECT_NE(r.output.find(cmd), std::string::npos) << cmd << " not listed:\n" << r.output;
}

}  // namespace
}  // namespace orderflow
