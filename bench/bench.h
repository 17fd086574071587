// `orderflow bench`: throughput experiments on a graph definition, driven in-process,
// with the baselines measured in the same run (see bench/README.md).
//
//   runner.cc      one pipeline run (closed or open loop), the raw-RocksDB and CPU-loop
//                  baselines
//   report.cc      medians, ratios to the baselines, the terminal table, JSON, CSV, plot
//   cosmos_baseline.cc  the raw-creates baseline of a Cosmos DB account (also cosmos_bench's)
//   bench_cmd.cc   the command line (bench_main)
//
// Everything here runs on the calling thread except the pipeline itself and the progress
// bar; none of it is meant for concurrent use.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bench/thread_cpu.h"
#include "bench/workload.h"
#include "connectors/cosmos_client.h"
#include "graph/definition.h"
#include "graph/status.h"

namespace orderflow::bench {

struct Percentiles {
  uint64_t count = 0;
  double p50_ms = 0, p95_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
};

// Where a client command's commit latency went (metrics on only): waiting for its lane,
// deciding, waiting for its group's write to start, the durable write itself, and from
// the write to its completion callback. Their sum is the commit latency.
constexpr size_t kStages = 5;
inline constexpr std::array<const char*, kStages> kStageNames = {"lane_wait", "decide", "group_wait", "write",
                                                                 "complete"};

struct NodeFigure {
  std::string id, kind;
  uint64_t in = 0, out = 0, errors = 0;
  double rate_out = 0;    // messages out per second of the run
  double busy_share = 0;  // busy time / run time (1.0 = one core; lanes can exceed it)
};

// One configuration of the graph under test.
struct RunConfig {
  std::string store;      // "rocksdb" | "memory" | "" (as in the YAML)
  int threads = 0;        // TBB threads
  bool metrics = true;    // probes on (false: the metrics-off baseline)
  std::string name() const;  // e.g. "rocksdb t2", "memory t1 metrics-off"
};

// What a run cost on Cosmos DB (graphs with stores of kind cosmos): the requests of the
// account's metrics node ("cosmos") from the first submit until the run was quiescent,
// so neither the opening of the stores nor the idle polls after the run count.
struct CosmosFigures {
  bool measured = false;
  uint64_t all_commands = 0;           // commands the commit node completed (saga follow-ups included)
  double all_commands_per_s = 0;
  uint64_t workload_orders = 0;        // PlaceOrder commands of the workload (the "per order" divisor)
  uint64_t requests = 0;               // requests to the account
  double request_units = 0;            // their request charges (the stand-in's model, or the account's)
  std::map<std::string, double> ru_by_op;  // request units by operation label (append, feed, ...)
  std::map<std::string, double> requests_by_op;  // requests by operation label
  uint64_t throttles = 0;              // 429 answers (retried)
  double idle_ru_per_s = 0;            // request units/s once quiescent (change-feed polls, lease renewals)
  uint64_t orders_placed = 0;          // distinct orders placed, as the change feed delivered them
  uint64_t orders_settled = 0;         // of those, confirmed, rejected or cancelled
  double requests_per_order() const { return workload_orders ? static_cast<double>(requests) / workload_orders : 0; }
  double ru_per_order() const { return workload_orders ? request_units / static_cast<double>(workload_orders) : 0; }
  double ru_per_command() const { return all_commands ? request_units / static_cast<double>(all_commands) : 0; }
};

struct RunResult {
  RunConfig config;
  int repetition = 0;
  double seconds = 0;                  // first submit -> every command durable and every subscriber caught up
  uint64_t commands = 0;               // client commands completed
  uint64_t accepted = 0, rejected = 0, failed = 0;  // accepted = written (or duplicates)
  uint64_t events = 0;                 // events in the store after the run (saga's included)
  uint64_t orders = 0;                 // PlaceOrder commands accepted
  double commands_per_s = 0, events_per_s = 0, orders_per_s = 0;
  Percentiles commit;                  // ingest -> durable commit (client commands)
  Percentiles projection;              // ingest -> projection checkpoint past the command's events
  std::array<Percentiles, kStages> stages;  // commit latency by stage (metrics on only; see kStageNames)
  double cpu_user_s = 0, cpu_sys_s = 0;
  double peak_rss_mb = 0;              // process peak resident set during the run
  double mean_commit_group = 0;        // commands per durable write (metrics on only)
  std::vector<NodeFigure> nodes;       // empty when metrics are off
  CosmosFigures cosmos;                // graphs with Cosmos DB stores only
  // CPU by thread name over the same interval as cpu_user_s + cpu_sys_s;
  // see thread_cpu.h for the ceiling it gives.
  std::vector<ThreadCpu> threads;
};

struct BaselineResult {
  // "raw-rocksdb" | "raw-rocksdb-paced" | "cpu-loop" | "raw-cosmos-creates"
  std::string name;
  int repetition = 0;
  uint64_t events = 0;                 // raw-cosmos-creates: documents created
  double seconds = 0, events_per_s = 0;  // raw-cosmos-creates: documents created per second
  int concurrency = 0;                 // raw-cosmos-creates: requests at a time
  uint64_t failed = 0;                 // raw-cosmos-creates: creates that did not answer 201
  // raw-rocksdb-paced: the process's CPU (all threads) and sleeps while it wrote, and its
  // synced writes.
  double cpu_s = 0, sleeps = 0;
  uint64_t writes = 0;
};

struct Options {
  std::string graph_file;
  std::vector<std::string> stores;     // empty: the YAML's store kinds
  std::vector<int> threads;            // TBB threads to sweep (default: the core count)
  uint64_t commands = 50000;           // client commands per run (after the initial stocking)
  double duration_s = 0;               // > 0: run for this long instead of a command count
  double rate = 0;                     // > 0: open loop, commands per second; 0 = closed loop
  int in_flight = 2000;                // closed loop: client commands outstanding at most
  int runs = 1;                        // repetitions; medians are reported
  bool baselines = true;
  WorkloadOptions workload;
  std::string data_dir;                // RocksDB stores and the raw baseline live here
  std::string json_file, csv_file, plot_file;
  bool progress = false;               // draw a progress bar on stderr
  // --half-max: a closed loop of `commands` first measures the maximum (median of `runs`), then
  // the open loop runs at half of it (rate is set to that) for duration_s (default 5).
  bool half_max = false;
  double measured_max = 0;             // --half-max: the closed loop's median commands/s
  // --http: the graph's http_source driven by wrk (duration_s, default 5, in whole seconds).
  bool http = false;
  int connections = 64;                // wrk -c: connections, each with one request in flight
  int wrk_threads = 1;                 // wrk -t: one is enough for loopback and leaves the server a core
  // --cosmos-endpoint: every store of kind cosmos is pointed there, with a database of
  // its own per run; needed when the graph (without --store) has such stores.
  std::string cosmos_endpoint;
  bool commands_given = false, skus_given = false;  // set on the command line (else Cosmos defaults apply)
};

struct Report {
  Options options;
  std::vector<RunResult> runs;
  std::vector<BaselineResult> baselines;
};

// ---- kinds.cc
// The kinds and the domain the benchmark executables build graphs with (those of the
// `orderflow` binary: the generic node kinds, the connectors' kinds, the order domain).
void register_bench_kinds(graph::KindRegistry& registry);

// ---- runner.cc
// Builds `def` (already overridden and validated) on fresh stores under `dir`, drives
// `commands` through it and returns the figures. In a closed-loop run with a duration,
// commands past the end of `commands` are drawn from `more` and appended (so the CPU-loop
// baseline sees them). `recorded` (if not null) receives every committed event, encoded
// as the event store's log records, for the raw-RocksDB baseline.
Result<RunResult> run_pipeline(const graph::GraphDef& def, const graph::KindRegistry& kinds,
                               const RunConfig& config, const Options& options,
                               std::vector<v1::Command>& commands, WorkloadGenerator* more,
                               const std::string& dir, std::vector<std::string>* recorded);
// Synced WriteBatches of 1000 of the recorded events, sequential keys, fresh DB in `dir`.
Result<BaselineResult> raw_rocksdb_baseline(const std::vector<std::string>& records, const std::string& dir);
// Open-loop runs: the same records written at the run's rate, `events_per_s`, each as soon
// as it is due but at most one synced WriteBatch per `interval` (the commit node's spacing on
// a syncing store), fresh DB in `dir`. What a durable log of these events costs this machine
// at this rate, in CPU and sleeps per event, with nothing else: the floor under the
// pipeline's CPU per event at the same rate.
Result<BaselineResult> raw_rocksdb_paced_baseline(const std::vector<std::string>& records, const std::string& dir,
                                                  double events_per_s, std::chrono::microseconds interval);
// decide/serialize/evolve/saga of the same client commands on one thread, no graph, no store.
BaselineResult cpu_loop_baseline(const std::vector<v1::Command>& commands);

// ---- cosmos_baseline.cc
// Cosmos DB runs: the documents commit writes (one per command), created `docs` times by
// a plain client, `concurrency` requests at a time, into the container "events" (by
// /streamId, unique key /commandId) of a fresh `database` on the account; the database is
// deleted afterwards. The same shape and size as the event store's commit documents (two
// 150-byte events). events_per_s: documents created per second (failed ones included).
Result<BaselineResult> raw_cosmos_creates_baseline(const connectors::CosmosOptions& account,
                                                   const std::string& database, uint64_t docs, int concurrency);
// Deletes a database (404 counts as done).
Status drop_cosmos_database(connectors::CosmosClient& client, const std::string& database);

// ---- http_bench.cc
// One wrk run against one target ("listener-202", "cpprest-202" or "pipeline <store> t<N>").
struct HttpRun {
  std::string target;
  int repetition = 0;
  double seconds = 0;                  // wrk's run
  uint64_t requests = 0;               // answers wrk read
  uint64_t accepted = 0;               // 2xx answers (202)
  uint64_t non_2xx = 0;                // answers with a status >= 400 (429/503 under overload)
  uint64_t socket_errors = 0;          // connect, read, write errors and timeouts
  double accepted_per_s = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;  // wrk's latency of every answer
  double cpu_us_per_request = 0;       // this process (the server) over wrk's run, per answer
};
// `--http`: for each repetition the two bare 202 handlers (unless --no-baselines) and the
// pipeline of each of `graphs` (named by `stores`), driven by the same wrk command; prints
// medians and ratios, writes --json. Returns the exit code.
int run_http_bench(const Options& options, const graph::KindRegistry& kinds, const std::vector<graph::GraphDef>& graphs,
                   const std::vector<std::string>& stores);

// ---- report.cc
double median(std::vector<double> v);  // of an even count, the mean of the middle two; 0 if empty
struct Summary {
  RunConfig config;
  RunResult median;                    // field-wise medians over repetitions
  double vs_raw_rocksdb = 0;           // events/s ratios to the baselines (0 = not measured)
  double vs_cpu_loop = 0;
  double vs_metrics_off = 0;
  double vs_first_threads = 0;         // to the same store at the first thread count
  double vs_raw_cosmos = 0;            // Cosmos DB: all commands/s / raw creates/s (medians)
  // Open loop on RocksDB: CPU per event / raw-rocksdb-paced's CPU per event (medians)
  double cpu_vs_raw_paced = 0;
};
std::vector<Summary> summarize(const Report& report);
double median_baseline(const Report& report, const std::string& name);
// raw-rocksdb-paced: medians over repetitions of its CPU (µs) and sleeps per event (0: none).
struct PacedFigures {
  double cpu_us_per_event = 0, sleeps_per_event = 0, writes_per_s = 0;
};
PacedFigures median_paced(const Report& report);
void print_table(const Report& report, const std::vector<Summary>& summary);
Status write_json(const Report& report, const std::vector<Summary>& summary, const std::string& path);
Status write_csv(const Report& report, const std::string& path);
Status write_plot(const Report& report, const std::vector<Summary>& summary, const std::string& path);

}  // namespace orderflow::bench
