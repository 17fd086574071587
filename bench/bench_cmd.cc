#include "bench/bench_cmd.h"

#include <oneapi/tbb/info.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include <CLI/CLI.hpp>

#include "bench/bench.h"

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

}  // namespace

int run_bench(Options o, const graph::KindRegistry& registry) {
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
    bool raw_done = !o.baselines;
    for (size_t si = 0; si < stores.size() && exit_code == 0; ++si) {
      for (int threads : o.threads) {
        // Which of the pair runs first alternates by repetition: the second run of a pair
        // reuses memory the first one faulted in (the memory store's on/off ratio read 0.87
        // with metrics always first).
        const bool on_first = rep % 2 == 0;
        for (bool metrics : {on_first, !on_first}) {
          if (!metrics && !o.baselines) continue;
          RunConfig c{stores[si], threads, metrics};
          auto r = run_pipeline(graphs[si], registry, c, o, commands, more, run_dir, raw_done ? nullptr : &recorded);
          if (!r) {
            fail(c.name(), r.status());
            break;
          }
          r->repetition = rep;
          report.runs.push_back(std::move(*r));
          if (!raw_done) {
            // Right after the run whose events it writes, so both see the same machine.
            auto raw = raw_rocksdb_baseline(recorded, (fs::path(o.data_dir) / "raw").string());
            if (!raw) {
              fail("raw-rocksdb baseline", raw.status());
              break;
            }
            raw->repetition = rep;
            report.baselines.push_back(*raw);
            raw_done = true;
            recorded = {};
          }
        }
        if (exit_code != 0) break;
      }
    }
    if (o.baselines && exit_code == 0) {
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
  auto* commands = cmd->add_option("--commands", o->commands, "client commands per run (after the stocking)")
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
  cmd->add_option("--skus", o->workload.skus, "SKUs of the workload")->capture_default_str()->check(CLI::Range(1, 10000000));
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
  cmd->callback([o, &registry, exit_code] { *exit_code = run_bench(*o, registry); });
}

}  // namespace orderflow::bench
