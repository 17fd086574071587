// The ingest benchmarks as a user runs them, briefly: `orderflow bench --http` (wrk against
// the real server and the two bare 202 handlers), `--half-max` (the open loop at half the
// closed loop's rate) and build/bench/kafka_bench (the pipeline against the bare and the
// durable consumer). Checks that every figure is there and
// positive and that the ratio lines are printed; speed itself is never asserted.
#include <gtest/gtest.h>

#include <utility>  // before cpprestsdk: Boost.Asio's C++20 awaitable.hpp uses std::exchange
#include <cpprest/json.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "tests/support/bench_report.h"
#include "tests/support/shell.h"

namespace {

namespace fs = std::filesystem;

using orderflow::testing::num;
using orderflow::testing::Ran;
using orderflow::testing::slurp;

Ran run_bench(const std::string& args) {
  return orderflow::testing::run_shell(std::string(ORDERFLOW_BINARY) + " bench " + ORDERFLOW_SOURCE_DIR +
                                       "/graphs/orders.yaml " + args);
}

std::string str(const web::json::value& v, const char* key) {
  return utility::conversions::to_utf8string(v.at(utility::conversions::to_string_t(key)).as_string());
}

class BenchIngest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("orderflow-bench-ingest-test-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(BenchIngest, HttpModeReportsThePipelineAgainstBothBareHandlers) {
  ASSERT_EQ(std::system("command -v wrk >/dev/null 2>&1"), 0) << "wrk is needed (scripts/deps.sh installs it)";
  const auto json_path = dir_ / "http.json";
  // One second per target: the listener, cpprestsdk and the pipeline on RocksDB.
  const Ran r = run_bench("--http --duration 1 --runs 1 --connections 8 --store rocksdb --threads 2 --no-progress "
                          "--data-dir " + (dir_ / "data").string() + " --json " + json_path.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* s : {"listener-202", "cpprest-202", "pipeline rocksdb t2", "accepted/s", "p99 ms",
                        "ratio pipeline rocksdb t2 / listener-202: "})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << " missing from\n" << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "data" / "run")) << "the pipeline's stores are removed";

  const auto doc = web::json::value::parse(slurp(json_path));
  EXPECT_EQ(str(doc, "mode"), "http");
  const auto& runs = doc.at(U("runs")).as_array();
  ASSERT_EQ(runs.size(), 3u);
  std::set<std::string> targets;
  for (const auto& run : runs) {
    const std::string target = str(run, "target");
    targets.insert(target);
    EXPECT_GT(num(run, "accepted"), 0) << target;
    EXPECT_EQ(num(run, "accepted") + num(run, "non_2xx"), num(run, "requests")) << target;
    EXPECT_GT(num(run, "accepted_per_s"), 0) << target;
    EXPECT_GT(num(run, "seconds"), 0.5) << target;
    const auto& latency = run.at(U("latency_ms"));
    EXPECT_GT(num(latency, "p50"), 0) << target;
    EXPECT_LE(num(latency, "p50"), num(latency, "p99")) << target;
    EXPECT_LE(num(latency, "p99"), num(latency, "max")) << target;
    EXPECT_GT(num(run, "cpu_us_per_request"), 0) << target;
  }
  EXPECT_EQ(targets, (std::set<std::string>{"listener-202", "cpprest-202", "pipeline rocksdb t2"}));
  const auto& summary = doc.at(U("summary")).as_array();
  ASSERT_EQ(summary.size(), 3u);
  EXPECT_EQ(str(summary.at(0), "target"), "listener-202");
  EXPECT_DOUBLE_EQ(num(summary.at(0), "ratio_to_listener"), 1.0);
  for (const auto& s : summary) {
    EXPECT_GT(num(s, "accepted_per_s"), 0) << str(s, "target");
    EXPECT_GT(num(s, "ratio_to_listener"), 0) << str(s, "target");
    EXPECT_GT(num(s, "p99_ms"), 0) << str(s, "target");
  }
}

TEST_F(BenchIngest, HttpModeRefusesClosedLoopOptions) {
  struct Case {
    std::string args, reason;
  } cases[] = {
      {"--http --rate 100", "--rate excludes --http"},
      {"--http --commands 10", "--commands excludes --http"},
      {"--connections 8", "--connections requires --http"},
      {"--half-max --rate 100", "--rate excludes --half-max"},
      {"--half-max --store memory,rocksdb", "--half-max takes one --store and one --threads value"},
  };
  for (const auto& c : cases) {
    const Ran r = run_bench(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args;
    EXPECT_NE(r.output.find(c.reason), std::string::npos) << c.args << ":\n" << r.output;
  }
}

TEST_F(BenchIngest, HalfMaxRunsTheOpenLoopAtHalfTheClosedLoopsRate) {
  const auto json_path = dir_ / "half.json";
  // The closed loop of the default 50,000 commands on memory stores, then 0.5 s open loop.
  const Ran r = run_bench("--half-max --duration 0.5 --skus 200 --store memory --threads 2 --no-baselines --no-progress "
                          "--json " + json_path.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::regex line(R"(maximum, closed loop of 50000 commands \+ 200 stockings \(median of 1\): (\d+) commands/s; )"
                        R"(open loop at half: (\d+) commands/s)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, line)) << r.output;
  const double max = std::stod(m[1]), half = std::stod(m[2]);
  EXPECT_GT(max, 0);
  EXPECT_NEAR(half, max / 2, 1);
  EXPECT_NE(r.output.find("ingest to durable commit"), std::string::npos) << r.output;

  const auto doc = web::json::value::parse(slurp(json_path));
  const auto& options = doc.at(U("options"));
  EXPECT_EQ(str(options, "mode"), "open");
  EXPECT_NEAR(num(options, "rate") * 2, num(options, "half_max_of"), 2);  // JSON keeps 6 digits
  const auto& runs = doc.at(U("runs")).as_array();
  ASSERT_EQ(runs.size(), 1u);
  const auto& commit = runs.at(0).at(U("latency_commit_ms"));
  EXPECT_GT(num(commit, "count"), 0);
  EXPECT_GT(num(commit, "p50"), 0);
  EXPECT_LE(num(commit, "p50"), num(commit, "p99"));
}

TEST_F(BenchIngest, KafkaBenchReportsThePipelineAgainstTheDurableConsumer) {
  // 3,000 commands over 8 partitions, one run: the mock's 3 s group join is most of it.
  const Ran r = orderflow::testing::run_shell(std::string(KAFKA_BENCH_BINARY) +
                                              " --commands 3000 --partitions 8 --runs 1 --store rocksdb");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::regex line(R"(run 1: raw consumer (\d+) msg/s, durable consumer (\d+) msg/s \((\d+) per synced batch\), )"
                        R"(pipeline (\d+) commands/s)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, line)) << r.output;
  for (int i = 1; i <= 4; ++i) EXPECT_GT(std::stod(m[i]), 0) << i << ":\n" << r.output;
  EXPECT_NE(r.output.find("consumer + synced RocksDB batch + commit"), std::string::npos) << r.output;
  const std::regex ratio(R"(ratio pipeline / durable consumer: ([0-9.]+) \(target >= 0.5\))");
  ASSERT_TRUE(std::regex_search(r.output, m, ratio)) << r.output;
  EXPECT_GT(std::stod(m[1]), 0);
}

}  // namespace
