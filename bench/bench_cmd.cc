#include "bench/bench_cmd.h"

#include <oneapi/tbb/info.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <thread>
#include <utility>  // before cpprestsdk: Boost.Asio's C++20 awaitable.hpp uses std::exchange

#include <CLI/CLI.hpp>
#include <pplx/threadpool.h>

#include "bench/bench.h"
#include "connectors/stores.h"
#include "nodes/nodes.h"

namespace orderflow::bench {

namespace {

// The graph to run for one store kind: every store switched to `store` (RocksDB stores
// keep their path or take their name), demo sources silenced (the bench is the load).
bool graph_for(const graph::GraphDef& base, const std::string& store, const graph::KindRegistry& registry,
               graph::GraphDef* out) {
  graph::GraphDef def = base;
  if (!store.empty()) {
    for (auto& [name, s] : def.stores) {
      if (s.kind == store) continue;
      s.kind = store;
      s.params.clear();
      if (store == "rocksdb") s.params["path"].text = name;
    }
  }
  for (auto& n : def.nodes)
    if (n.kind == "demo_source") n.params["rate"].text = "0";
  std::vector<graph::Diagnostic> diags;
  if (!graph::validate(def, registry, diags)) {
    for (const auto& d : diags) std::fprintf(stderr, "%s\n", d.to_string().c_str());
    return false;
  }
  *out = std::move(def);
  return true;
}

// Cosmos DB runs: fewer commands and SKUs by default (the stand-in commits about a
// thousand commands/s, not a hundred thousand).
constexpr uint64_t kCosmosCommands = 2000;
constexpr size_t kCosmosSkus = 200;

bool has_cosmos(const graph::GraphDef& def) {
  for (const auto& [name, s] : def.stores)
    if (s.kind == "cosmos") return true;
  return false;
}

// The account a cosmos store of the graph reaches at `endpoint` (its key from key_env).
connectors::CosmosOptions cosmos_account(const graph::StoreDef& store, const std::string& endpoint) {
  const auto params = connectors::cosmos_store_params().parse(store);
  connectors::CosmosOptions co;
  co.endpoint = endpoint;
  co.ca_file = params.ca_file;
  if (const char* key = std::getenv(params.key_env.c_str())) co.key = key;
  return co;
}

// Checks what a run against Cosmos DB needs before anything runs and applies its
// defaults. False: refused (the reason printed), exit 2.
bool prepare_cosmos(Options& o, const graph::GraphDef& def) {
  if (!has_cosmos(def)) {
    if (o.cosmos_endpoint.empty()) return true;
    std::fprintf(stderr, "orderflow bench: --cosmos-endpoint: the graph%s has no store of kind cosmos\n",
                 o.stores.empty() ? "" : " (after --store)");
    return false;
  }
  if (o.cosmos_endpoint.empty()) {
    std::fprintf(stderr,
                 "orderflow bench: the graph's stores of kind cosmos need --cosmos-endpoint URL (each run creates a "
                 "database of its own there and deletes it afterwards), or --store memory|rocksdb\n");
    return false;
  }
  if (auto s = connectors::CosmosClient::check_endpoint(o.cosmos_endpoint); !s) {
    std::fprintf(stderr, "orderflow bench: --cosmos-endpoint: %s\n", s.to_string().c_str());
    return false;
  }
  for (const auto& [name, s] : def.stores) {
    if (s.kind != "cosmos") continue;
    const std::string key_env = connectors::cosmos_store_params().parse(s).key_env;
    const char* key = std::getenv(key_env.c_str());
    if (key == nullptr || *key == '\0') {
      std::fprintf(stderr, "orderflow bench: store '%s': environment variable %s (its key_env) holds no Cosmos DB key\n",
                   name.c_str(), key_env.c_str());
      return false;
    }
  }
  if (o.http || o.half_max) {
    std::fprintf(stderr, "orderflow bench: --http and --half-max do not run against Cosmos DB stores\n");
    return false;
  }
  if (!o.commands_given && o.duration_s <= 0) o.commands = kCosmosCommands;
  if (!o.skus_given) o.workload.skus = kCosmosSkus;
  return true;
}

// One run's graph: every cosmos store at the endpoint, in the database "<database>-<tag>"
// (fresh, so runs do not see each other's documents).
graph::GraphDef cosmos_run_graph(const graph::GraphDef& def, const std::string& endpoint, const std::string& tag) {
  graph::GraphDef g = def;
  for (auto& [name, s] : g.stores) {
    if (s.kind != "cosmos") continue;
    s.params["endpoint"].text = endpoint;
    s.params["database"].text = connectors::cosmos_store_params().parse(s).database + "-" + tag;
  }
  return g;
}

// Deletes the databases of a run's graph (best effort: a warning when it fails).
void drop_cosmos_databases(const graph::GraphDef& g) {
  std::map<std::string, connectors::CosmosOptions> databases;
  for (const auto& [name, s] : g.stores) {
    if (s.kind != "cosmos") continue;
    const auto params = connectors::cosmos_store_params().parse(s);
    databases[params.database] = cosmos_account(s, params.endpoint);
  }
  for (const auto& [database, account] : databases) {
    auto client = connectors::CosmosClient::open(account);
    Status s = client ? drop_cosmos_database(**client, database) : client.status();
    if (!s) std::fprintf(stderr, "orderflow bench: warning: database %s not deleted: %s\n", database.c_str(), s.to_string().c_str());
  }
}

// The store the commit node writes (the raw baseline's account and concurrency).
const graph::StoreDef* events_store(const graph::GraphDef& def) {
  for (const auto& n : def.nodes)
    if (n.kind == "commit")
      if (auto it = def.stores.find(n.get_string("events")); it != def.stores.end()) return &it->second;
  return nullptr;
}

// The spacing of the commit node's synced writes: its write_interval_us, whose default
// (auto) is 1 ms on a store that syncs each append (CommitNode::resolve_write_interval).
std::chrono::microseconds commit_write_interval(const graph::GraphDef& def) {
  for (const auto& n : def.nodes)
    if (n.kind == "commit" && n.has("write_interval_us") && n.get_int("write_interval_us") >= 0)
      return std::chrono::microseconds(n.get_int("write_interval_us"));
  return CommitNode::kSyncedWriteInterval;
}

}  // namespace

int run_bench(Options o, const graph::KindRegistry& registry) {
  // As `orderflow serve` does: cpprestsdk's default pool of 40 threads is several times
  // slower on few cores (its blocked threads hand every request over through futexes). It
  // can be sized once per process, before its first use: the Cosmos DB client, `--http`'s
  // bare cpprestsdk handler.
  try {
    crossplat::threadpool::initialize_with_threads(std::max(2u, std::thread::hardware_concurrency()));
  } catch (const std::exception&) {  // already running: keep it
  }
  const std::string& file = o.graph_file;
  if (o.threads.empty()) o.threads.push_back(std::max(1, tbb::info::default_concurrency()));  // as serve

  auto loaded = graph::load_and_validate(file, registry);
  for (const auto& d : loaded.diagnostics) std::fprintf(stderr, "%s\n", d.to_string().c_str());
  if (!loaded.ok()) return 2;
  std::vector<std::string> stores = o.stores.empty() ? std::vector<std::string>{""} : o.stores;
  std::vector<graph::GraphDef> graphs(stores.size());
  for (size_t i = 0; i < stores.size(); ++i)
    if (!graph_for(loaded.graph, stores[i], registry, &graphs[i])) return 2;
  // Runs are named by the store kind they use; with the YAML's own stores, say which.
  for (size_t i = 0; i < stores.size(); ++i) {
    if (!stores[i].empty()) continue;
    std::string kinds;
    for (const auto& [name, s] : graphs[i].stores) kinds = kinds.empty() || kinds == s.kind ? s.kind : "mixed";
    stores[i] = kinds.empty() ? "none" : kinds;
  }
  if (!prepare_cosmos(o, graphs[0])) return 2;
  const bool cosmos = has_cosmos(graphs[0]);  // then the YAML's stores: one graph
  const graph::StoreDef* cosmos_events = cosmos ? events_store(graphs[0]) : nullptr;
  if (cosmos && (cosmos_events == nullptr || cosmos_events->kind != "cosmos")) {
    std::fprintf(stderr, "orderflow bench: the graph's commit node does not write a store of kind cosmos\n");
    return 2;
  }

  namespace fs = std::filesystem;
  const bool own_dir = o.data_dir.empty();
  if (own_dir) o.data_dir = (fs::temp_directory_path() / ("orderflow-bench-" + std::to_string(::getpid()))).string();

  if (o.http) {
    if (o.duration_s <= 0) o.duration_s = 5;
    const int code = run_http_bench(o, registry, graphs, stores);
    if (own_dir) {
      std::error_code ec;
      fs::remove_all(o.data_dir, ec);
    }
    return code;
  }

  if (o.half_max) {
    // The maximum first, in the same invocation, so "half" is of this machine as it is now.
    if (stores.size() != 1 || o.threads.size() != 1) {
      std::fprintf(stderr, "orderflow bench: --half-max takes one --store and one --threads value\n");
      return 2;
    }
    Options closed = o;
    closed.rate = 0;
    closed.duration_s = 0;
    WorkloadGenerator g(o.workload);
    std::vector<v1::Command> cs;
    for (uint64_t i = 0; i < o.workload.skus + o.commands; ++i) cs.push_back(g.next());
    std::vector<double> rates;
    for (int rep = 0; rep < o.runs; ++rep) {
      auto r = run_pipeline(graphs[0], registry, RunConfig{stores[0], o.threads[0], true}, closed, cs, nullptr,
                            (fs::path(o.data_dir) / "run").string(), nullptr);
      if (!r) {
        std::fprintf(stderr, "orderflow bench: --half-max closed loop: %s\n", r.status().to_string().c_str());
        return 1;
      }
      rates.push_back(r->commands_per_s);
    }
    o.measured_max = median(rates);
    o.rate = std::max(1.0, o.measured_max / 2);
    if (o.duration_s <= 0) o.duration_s = 5;
    std::printf("maximum, closed loop of %lu commands + %lu stockings (median of %d): %.0f commands/s; "
                "open loop at half: %.0f commands/s\n\n",
                static_cast<unsigned long>(o.commands), static_cast<unsigned long>(o.workload.skus), o.runs,
                o.measured_max, o.rate);
    std::fflush(stdout);
  }

  // The same commands for every run and for the CPU loop.
  WorkloadGenerator generator(o.workload);
  const uint64_t count = o.duration_s > 0 ? (o.rate > 0 ? static_cast<uint64_t>(o.rate * o.duration_s) : 10000)
                                          : o.commands;
  std::vector<v1::Command> commands;
  commands.reserve(o.workload.skus + count);
  for (uint64_t i = 0; i < o.workload.skus + count; ++i) commands.push_back(generator.next());
  WorkloadGenerator* more = o.duration_s > 0 && o.rate <= 0 ? &generator : nullptr;

  Report report;
  report.options = o;
  int exit_code = 0;
  auto fail = [&](const std::string& what, const Status& s) {
    std::fprintf(stderr, "orderflow bench: %s: %s\n", what.c_str(), s.to_string().c_str());
    exit_code = 1;
  };
  const std::string run_dir = (fs::path(o.data_dir) / "run").string();
  for (int rep = 0; rep < o.runs && exit_code == 0; ++rep) {
    std::vector<std::string> recorded;
    bool raw_done = !o.baselines || cosmos;  // raw-rocksdb (Cosmos DB runs: raw creates, below)
    for (size_t si = 0; si < stores.size() && exit_code == 0; ++si) {
      for (int threads : o.threads) {
        // Which of the pair runs first alternates by repetition: the second run of a pair
        // reuses memory the first one faulted in (the memory store's on/off ratio read 0.87
        // with metrics always first).
        const bool on_first = rep % 2 == 0;
        for (bool metrics : {on_first, !on_first}) {
          // Cosmos DB runs leave out the metrics-off run: the request units are metrics.
          if (!metrics && (!o.baselines || cosmos)) continue;
          RunConfig c{stores[si], threads, metrics};
          const std::string tag = "bench-" + std::to_string(::getpid()) + "-r" + std::to_string(rep) + "-t" +
                                  std::to_string(threads);
          const graph::GraphDef run_graph = cosmos ? cosmos_run_graph(graphs[si], o.cosmos_endpoint, tag) : graphs[si];
          auto r = run_pipeline(run_graph, registry, c, o, commands, more, run_dir, raw_done ? nullptr : &recorded);
          if (cosmos) drop_cosmos_databases(run_graph);
          if (!r) {
            fail(c.name(), r.status());
            break;
          }
          r->repetition = rep;
          const double run_events_per_s = r->events_per_s;
          const uint64_t documents = std::max<uint64_t>(r->cosmos.all_commands, 1);
          report.runs.push_back(std::move(*r));
          if (cosmos && o.baselines && threads == o.threads.front()) {
            // The same count of documents as the run committed commands, created by a plain
            // client as many at a time as the event store writes, right after the run.
            const auto params = connectors::cosmos_store_params().parse(*cosmos_events);
            auto raw = raw_cosmos_creates_baseline(cosmos_account(*cosmos_events, o.cosmos_endpoint),
                                                   params.database + "-" + tag + "-raw", documents, params.parallelism);
            if (!raw) {
              fail("raw-cosmos-creates baseline", raw.status());
              break;
            }
            raw->repetition = rep;
            report.baselines.push_back(*raw);
          }
          if (!raw_done) {
            // Right after the run whose events it writes, so both see the same machine.
            auto raw = raw_rocksdb_baseline(recorded, (fs::path(o.data_dir) / "raw").string());
            if (!raw) {
              fail("raw-rocksdb baseline", raw.status());
              break;
            }
            raw->repetition = rep;
            report.baselines.push_back(*raw);
            if (o.rate > 0 && std::find(stores.begin(), stores.end(), "rocksdb") != stores.end()) {
              // An open loop with RocksDB runs: the same events at the run's rate, to set their
              // CPU per event against.
              auto paced = raw_rocksdb_paced_baseline(recorded, (fs::path(o.data_dir) / "raw").string(),
                                                      run_events_per_s, commit_write_interval(graphs[si]));
              if (!paced) {
                fail("raw-rocksdb-paced baseline", paced.status());
                break;
              }
              paced->repetition = rep;
              report.baselines.push_back(*paced);
            }
            raw_done = true;
            recorded = {};
          }
        }
        if (exit_code != 0) break;
      }
    }
    if (o.baselines && !cosmos && exit_code == 0) {
      auto cpu = cpu_loop_baseline(commands);
      cpu.repetition = rep;
      report.baselines.push_back(cpu);
    }
  }
  if (own_dir) {
    std::error_code ec;
    fs::remove_all(o.data_dir, ec);
  }
  if (report.runs.empty()) return exit_code == 0 ? 1 : exit_code;

  const auto summary = summarize(report);
  print_table(report, summary);
  if (!o.json_file.empty())
    if (auto s = write_json(report, summary, o.json_file); !s) fail("--json", s);
  if (!o.csv_file.empty())
    if (auto s = write_csv(report, o.csv_file); !s) fail("--csv", s);
  if (!o.plot_file.empty())
    if (auto s = write_plot(report, summary, o.plot_file); !s) fail("--plot", s);
  return exit_code;
}

// Options and the parser's own checks: a bad value is refused with its reason (exit 2)
// before anything runs.
void add_bench_command(CLI::App& app, const graph::KindRegistry& registry, int* exit_code) {
  auto o = std::make_shared<Options>();
  o->progress = ::isatty(STDERR_FILENO) == 1;
  CLI::App* cmd = app.add_subcommand("bench", "drive a graph in-process and measure it against its baselines");
  cmd->add_option("FILE", o->graph_file, "graph definition (YAML)")->required();
  auto* commands = cmd->add_option("--commands", o->commands,
                                   "client commands per run (after the stocking; with Cosmos DB stores default " +
                                       std::to_string(kCosmosCommands) + ")")
                       ->capture_default_str()
                       ->check(CLI::PositiveNumber);
  cmd->add_option("--duration", o->duration_s, "run for this many seconds instead of a command count")
      ->check(CLI::Range(0.001, 1e9))
      ->excludes(commands);
  cmd->add_option("--rate", o->rate, "open loop at this many commands/s (default: closed loop)")
      ->check(CLI::Range(1.0, 1e12));
  cmd->add_option("--in-flight", o->in_flight, "closed loop: commands outstanding at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  cmd->add_option("--threads", o->threads, "TBB threads to sweep, e.g. 1,2 (default: the core count)")
      ->delimiter(',')
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--store", o->stores, "store kinds to run, e.g. memory,rocksdb (default: the YAML's)")
      ->delimiter(',')
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->check(CLI::IsMember({"memory", "rocksdb"}));
  cmd->add_option("--runs", o->runs, "repetitions; medians are reported")->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->add_flag("--no-baselines{false}", o->baselines, "skip the baselines and the metrics-off runs");
  cmd->add_option("--json", o->json_file, "write the report as JSON");
  cmd->add_option("--csv", o->csv_file, "write every run as CSV");
  cmd->add_option("--plot", o->plot_file, "draw the figures to a PNG (gnuplot)");
  cmd->add_option("--data-dir", o->data_dir, "where the runs' RocksDB stores live (default: a temporary folder, removed)");
  auto* skus = cmd->add_option("--skus", o->workload.skus,
                               "SKUs of the workload (with Cosmos DB stores default " + std::to_string(kCosmosSkus) + ")")
                   ->capture_default_str()
                   ->check(CLI::Range(1, 10000000));
  cmd->add_option("--cosmos-endpoint", o->cosmos_endpoint,
                  "run the graph's stores of kind cosmos against this account (e.g. the stand-in's "
                  "http://127.0.0.1:PORT), a fresh database per run; the key from each store's key_env");
  cmd->add_option("--zipf", o->workload.zipf_s, "Zipf exponent of SKU popularity")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", o->workload.seed, "workload seed")->capture_default_str();
  cmd->add_flag("--half-max", o->half_max,
                "measure the maximum with a closed loop of --commands first, then run the open loop at half of it "
                "for --duration (default 5 s); one --store and one --threads value")
      ->excludes("--rate")
      ->excludes("--in-flight");
  auto* http = cmd->add_flag("--http", o->http,
                             "drive the graph's http_source with wrk (--duration, default 5 s), against bare 202 "
                             "handlers of the same HTTP servers");
  http->excludes(commands)->excludes("--rate")->excludes("--half-max")->excludes("--in-flight")->excludes("--csv")->excludes("--plot");
  cmd->add_option("--connections", o->connections, "--http: wrk connections, one request in flight each")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000))
      ->needs(http);
  cmd->add_option("--wrk-threads", o->wrk_threads, "--http: wrk threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 64))
      ->needs(http);
  cmd->add_flag("--progress,!--no-progress", o->progress, "draw a progress bar on stderr (default: on a terminal)");
  cmd->callback([o, &registry, exit_code, commands, skus] {
    o->commands_given = commands->count() > 0;
    o->skus_given = skus->count() > 0;
    *exit_code = run_bench(*o, registry);
  });
}

}  // namespace orderflow::bench
