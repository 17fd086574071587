// `orderflow bench` as a user runs it: the real binary on graphs/orders.yaml with a small
// command count, its JSON, CSV and PNG outputs checked for structure and consistency.
#include <gtest/gtest.h>

#include <utility>  // before cpprestsdk: Boost.Asio's C++20 awaitable.hpp uses std::exchange
#include <cpprest/json.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/bench_report.h"
#include "tests/support/shell.h"

namespace {

namespace fs = std::filesystem;

using orderflow::testing::num;
using orderflow::testing::Ran;
using orderflow::testing::slurp;

Ran run(const std::string& args) {
  return orderflow::testing::run_shell(std::string(ORDERFLOW_BINARY) + " bench " + ORDERFLOW_SOURCE_DIR + "/graphs/orders.yaml " +
                            args);
}

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream in(line);
  for (std::string cell; std::getline(in, cell, ',');) out.push_back(cell);
  if (!line.empty() && line.back() == ',') out.emplace_back();
  return out;
}


std::string store_of(const std::string& config) { return config.substr(0, config.find(' ')); }

class BenchCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("orderflow-bench-test-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

void check_percentiles(const web::json::value& p, uint64_t expected_count, const std::string& what) {
  EXPECT_EQ(num(p, "count"), static_cast<double>(expected_count)) << what;
  EXPECT_GT(num(p, "p50"), 0) << what;
  EXPECT_LE(num(p, "p50"), num(p, "p95")) << what;
  EXPECT_LE(num(p, "p95"), num(p, "p99")) << what;
  EXPECT_LE(num(p, "p99"), num(p, "p999")) << what;
  EXPECT_LE(num(p, "p999"), num(p, "max")) << what;
}

TEST_F(BenchCli, SweepWritesConsistentJsonCsvAndPlot) {
  const int commands = 1500, skus = 200;
  const auto json_path = dir_ / "bench.json", csv_path = dir_ / "bench.csv", png_path = dir_ / "bench.png";
  const Ran r = run("--commands " + std::to_string(commands) + " --skus " + std::to_string(skus) +
                    " --threads 1,2 --store memory,rocksdb --data-dir " + (dir_ / "data").string() + " --json " +
                    json_path.string() + " --csv " + csv_path.string() + " --plot " + png_path.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The terminal tables name every configuration and both baselines, and give both latencies'
  // p50/p95/p99/p99.9.
  for (const char* s : {"memory t1", "memory t2 metrics-off", "rocksdb t2", "raw-rocksdb", "cpu-loop",
                        "ingest to durable commit", "ingest to projection", "p95", "p99.9"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << " missing from\n" << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "data" / "run")) << "run directories are removed";

  const auto doc = web::json::value::parse(slurp(json_path));
  const auto& baselines = doc.at(U("baselines"));
  EXPECT_GT(num(baselines.at(U("raw-rocksdb")), "events_per_s"), 0);
  EXPECT_GT(num(baselines.at(U("cpu-loop")), "events_per_s"), 0);
  EXPECT_FALSE(baselines.has_field(U("raw-rocksdb-paced"))) << "a closed loop has no rate to pace at";

  const auto& runs = doc.at(U("runs")).as_array();
  ASSERT_EQ(runs.size(), 8u) << "2 stores x 2 thread counts x metrics on/off";
  std::set<std::string> configs;
  for (const auto& run : runs) {
    const std::string config = utility::conversions::to_utf8string(run.at(U("config")).as_string());
    configs.insert(config);
    const bool metrics = run.at(U("metrics")).as_bool();
    const uint64_t accepted = static_cast<uint64_t>(num(run, "accepted"));
    EXPECT_EQ(num(run, "commands"), commands + skus) << config;
    EXPECT_EQ(num(run, "accepted") + num(run, "rejected") + num(run, "failed"), num(run, "commands")) << config;
    EXPECT_EQ(num(run, "failed"), 0) << config;
    EXPECT_GT(num(run, "rejected"), 0) << config << ": scarce stock rejects some cancels and shipments";
    EXPECT_GE(num(run, "events"), num(run, "accepted")) << config << ": every accepted command wrote an event";
    EXPECT_LE(num(run, "orders"), num(run, "accepted")) << config;
    EXPECT_GT(num(run, "orders"), 0) << config;
    EXPECT_NEAR(num(run, "events_per_s") * num(run, "seconds"), num(run, "events"), 1 + num(run, "events") * 1e-6);
    EXPECT_NEAR(num(run, "commands_per_s") * num(run, "seconds"), num(run, "commands"), 1 + num(run, "commands") * 1e-6);
    check_percentiles(run.at(U("latency_commit_ms")), accepted, config + " commit");
    check_percentiles(run.at(U("latency_projection_ms")), accepted, config + " projection");
    // Each command reaches the projection no earlier than its commit.
    for (const char* q : {"p50", "p99", "max"})
      EXPECT_GE(num(run.at(U("latency_projection_ms")), q), num(run.at(U("latency_commit_ms")), q)) << config << " " << q;
    EXPECT_GT(num(run, "cpu_user_s") + num(run, "cpu_system_s"), 0) << config;
    EXPECT_GT(num(run, "peak_rss_mb"), 1) << config;
    // CPU by thread: the pipeline's serial threads are there, they used about what the
    // process did (getrusage counts in ticks, the threads' figures in nanoseconds), and a serial thread cannot use more than the run's
    // time, so the ceiling it sets is at least about this run's rate.
    {
      ASSERT_TRUE(run.has_field(U("cpu_by_thread"))) << config;
      double sum = 0;
      std::map<std::string, web::json::value> threads;
      for (const auto& t : run.at(U("cpu_by_thread")).as_array()) {
        sum += num(t, "cpu_s");
        threads[utility::conversions::to_utf8string(t.at(U("name")).as_string())] = t;
      }
      EXPECT_LE(sum, 1.1 * (num(run, "cpu_user_s") + num(run, "cpu_system_s")) + 0.02) << config;
      ASSERT_TRUE(threads.count("of-commit")) << config;
      EXPECT_TRUE(threads["of-commit"].at(U("serial")).as_bool()) << config;
      // The writer waits for commands between groups and for each sync: it sleeps, at most
      // a few times per event (a group holds at least one).
      EXPECT_GT(num(threads["of-commit"], "sleeps"), 0) << config;
      EXPECT_LE(num(threads["of-commit"], "sleeps_per_event"), 20) << config;
      EXPECT_NEAR(num(threads["of-commit"], "sleeps_per_event"),
                  num(threads["of-commit"], "sleeps") / num(run, "events"), 1e-6) << config;
      ASSERT_TRUE(run.has_field(U("ceiling"))) << config;
      EXPECT_GE(num(run.at(U("ceiling")), "events_per_s"), 0.5 * num(run, "events_per_s")) << config;
    }
    const auto& nodes = run.at(U("nodes")).as_array();
    if (!metrics) {
      EXPECT_EQ(nodes.size(), 0u) << config << ": no per-node figures with metrics off";
      EXPECT_FALSE(run.has_field(U("latency_commit_stages_ms"))) << config << ": stage times need metrics";
      continue;
    }
    // The stages split each command's commit latency, so no stage's quantile can exceed
    // the same quantile of the whole (each stage is at most the whole, command by command).
    ASSERT_TRUE(run.has_field(U("latency_commit_stages_ms"))) << config;
    const auto& stages = run.at(U("latency_commit_stages_ms"));
    for (const char* stage : {"lane_wait", "decide", "group_wait", "write", "complete"}) {
      ASSERT_TRUE(stages.has_field(utility::conversions::to_string_t(stage))) << config << " " << stage;
      const auto& p = stages.at(utility::conversions::to_string_t(stage));
      EXPECT_EQ(num(p, "count"), static_cast<double>(accepted)) << config << " " << stage;
      for (const char* q : {"p50", "p99", "max"})
        EXPECT_LE(num(p, q), num(run.at(U("latency_commit_ms")), q)) << config << " " << stage << " " << q;
    }
    if (store_of(config) == "rocksdb") {
      EXPECT_GT(num(stages.at(U("write")), "max"), 0) << config << ": a synced write takes time";
    }
    std::map<std::string, web::json::value> by_id;
    for (const auto& n : nodes) by_id[utility::conversions::to_utf8string(n.at(U("id")).as_string())] = n;
    for (const char* id : {"route", "lanes", "commit", "feed", "projection", "saga"}) {
      ASSERT_TRUE(by_id.count(id)) << config << ": node " << id;
      EXPECT_GE(num(by_id[id], "busy_share"), 0) << id;
      EXPECT_GT(num(by_id[id], "rate_out_per_s"), 0) << config << " " << id;
    }
    // Commit writes every accepted command, client and saga alike; the projection applies every event.
    EXPECT_GE(num(by_id["commit"], "out"), num(run, "accepted")) << config;
    EXPECT_EQ(num(by_id["projection"], "out"), num(run, "events")) << config;
    EXPECT_GT(num(by_id["commit"], "busy_share"), 0) << config;
    EXPECT_GT(num(run, "mean_commit_group"), 0) << config;
  }
  EXPECT_EQ(configs.size(), 8u);

  const auto& summary = doc.at(U("summary")).as_array();
  ASSERT_EQ(summary.size(), 8u);
  for (const auto& s : summary) {
    const std::string config = utility::conversions::to_utf8string(s.at(U("config")).as_string());
    const auto& ratios = s.at(U("ratios"));
    const bool metrics = s.at(U("metrics")).as_bool();
    const std::string store = utility::conversions::to_utf8string(s.at(U("store")).as_string());
    const char* baseline = store == "rocksdb" ? "raw_rocksdb" : "cpu_loop";
    ASSERT_TRUE(ratios.has_field(utility::conversions::to_string_t(baseline))) << config;
    EXPECT_GT(num(ratios, baseline), 0) << config;
    EXPECT_EQ(ratios.has_field(U("metrics_off")), metrics) << config;
    ASSERT_TRUE(ratios.has_field(U("first_threads"))) << config;
    if (s.at(U("threads")).as_integer() == 1) {
      EXPECT_DOUBLE_EQ(num(ratios, "first_threads"), 1.0) << config;
    }
  }

  // CSV: a header and one row per run, every row as wide as the header, same figures.
  std::ifstream csv(csv_path);
  std::string line;
  ASSERT_TRUE(std::getline(csv, line));
  const auto header = split_csv_line(line);
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < header.size(); ++i) col[header[i]] = i;
  for (const char* c : {"config", "events_per_s", "commit_p99_ms", "projection_p999_ms", "busy_commit", "rate_out_lanes",
                        "raw_rocksdb_events_per_s", "cpu_loop_events_per_s", "peak_rss_mb", "group_wait_p50_ms",
                        "write_p99_ms"})
    EXPECT_TRUE(col.count(c)) << c;
  std::vector<std::vector<std::string>> rows;
  while (std::getline(csv, line)) rows.push_back(split_csv_line(line));
  ASSERT_EQ(rows.size(), runs.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    ASSERT_EQ(rows[i].size(), header.size()) << "row " << i;
    EXPECT_EQ(rows[i][col["config"]], utility::conversions::to_utf8string(runs.at(i).at(U("config")).as_string()));
    EXPECT_EQ(std::stod(rows[i][col["events"]]), num(runs.at(i), "events"));
    EXPECT_GT(std::stod(rows[i][col["raw_rocksdb_events_per_s"]]), 0);
  }

  const std::string png = slurp(png_path);
  ASSERT_GT(png.size(), 1000u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
}

TEST_F(BenchCli, OpenLoopRunsAtTheGivenRate) {
  const auto json_path = dir_ / "open.json";
  // 2000 commands/s for 0.5 s after stocking 100 SKUs: 1100 commands, well under capacity.
  const Ran r = run("--rate 2000 --duration 0.5 --skus 100 --store memory --threads 2 --no-baselines --no-progress --json " +
                    json_path.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto doc = web::json::value::parse(slurp(json_path));
  EXPECT_EQ(doc.at(U("options")).at(U("mode")).as_string(), U("open"));
  EXPECT_FALSE(doc.at(U("baselines")).has_field(U("raw-rocksdb")));
  const auto& runs = doc.at(U("runs")).as_array();
  ASSERT_EQ(runs.size(), 1u) << "--no-baselines: no metrics-off run";
  EXPECT_EQ(num(runs.at(0), "commands"), 1100);
  // Paced, so it takes about the scheduled time, not less.
  EXPECT_GE(num(runs.at(0), "seconds"), 0.5);
  EXPECT_LT(num(runs.at(0), "commands_per_s"), 2300);
}

TEST_F(BenchCli, OpenLoopOnRocksDbIsSetAgainstTheSameEventsWrittenAtTheSameRate) {
  const auto json_path = dir_ / "paced.json";
  // 1000 commands/s for 1 s on one TBB thread, with the baselines: the first run's events are
  // then written by a bare RocksDB at that run's rate, a synced write at most every 1 ms.
  const Ran r = run("--rate 1000 --duration 1 --skus 100 --store rocksdb --threads 1 --no-progress --data-dir " +
                    (dir_ / "data").string() + " --json " + json_path.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* s : {"raw-rocksdb-paced", "CPU per event (us)", "raw-paced"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << " missing from\n" << r.output;
  const auto doc = web::json::value::parse(slurp(json_path));
  const auto& runs = doc.at(U("runs")).as_array();
  ASSERT_EQ(runs.size(), 2u) << "metrics on and off";
  const auto& first = runs.at(0);  // the first repetition's first run records its events
  ASSERT_TRUE(first.at(U("metrics")).as_bool());
  const auto& paced = doc.at(U("baselines")).at(U("raw-rocksdb-paced"));
  const auto& b = paced.at(U("runs")).as_array().at(0);
  EXPECT_EQ(num(b, "events"), num(first, "events")) << "every event the run committed, once";
  // At the run's rate: about as long as the run took, not as fast as the disk can go.
  EXPECT_NEAR(num(b, "events_per_s"), num(first, "events_per_s"), 0.25 * num(first, "events_per_s"));
  EXPECT_GE(num(b, "seconds"), 0.7);
  // Spaced like the commit node's writes: at most one per millisecond, several events each.
  EXPECT_GE(num(b, "writes"), 100);
  EXPECT_LE(num(b, "writes"), 1000 * num(b, "seconds") + 1);
  EXPECT_LT(num(b, "writes"), num(b, "events"));
  // (The JSON holds 6 significant digits.)
  EXPECT_NEAR(num(paced, "writes_per_s"), num(b, "writes") / num(b, "seconds"), 1e-4 * num(paced, "writes_per_s"));
  // Each synced write sleeps at least once (its sync, or the wait for the next record).
  EXPECT_GE(num(b, "sleeps"), num(b, "writes"));
  EXPECT_GT(num(b, "cpu_s"), 0);
  EXPECT_NEAR(num(paced, "cpu_us_per_event"), num(b, "cpu_s") * 1e6 / num(b, "events"), 1e-4 * num(paced, "cpu_us_per_event"));
  EXPECT_NEAR(num(paced, "sleeps_per_event"), num(b, "sleeps") / num(b, "events"), 1e-4 * num(paced, "sleeps_per_event"));
  // The ratio the summary gives is the run's CPU per event over the baseline's.
  const auto& summary = doc.at(U("summary")).as_array().at(0);
  const double run_cpu_per_event =
      (num(summary, "cpu_user_s") + num(summary, "cpu_system_s")) * 1e6 / num(summary, "events");
  EXPECT_NEAR(num(summary.at(U("ratios")), "cpu_per_event_raw_rocksdb_paced"),
              run_cpu_per_event / num(paced, "cpu_us_per_event"), 1e-3 * run_cpu_per_event / num(paced, "cpu_us_per_event"));
}

TEST_F(BenchCli, BadOptionsAreRefusedWithAReason) {
  struct Case {
    std::string args, reason;
  } cases[] = {
      {"--store cosmos", "--store: cosmos not in {memory,rocksdb}"},
      {"--threads 1,x", "--threads: Value x"},
      {"--commands 10 --duration 1", "--commands excludes --duration"},
      {"--rate 0", "--rate: Value 0 not in range"},
      {"--frobnicate", "not expected: --frobnicate"},
  };
  for (const auto& c : cases) {
    const Ran r = run(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args;
    EXPECT_NE(r.output.find(c.reason), std::string::npos) << c.args << ":\n" << r.output;
  }
}

}  // namespace
