#include "bench/bench_cmd.h"

#include <oneapi/tbb/info.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <thread>

#include "bench/bench.h"

namespace orderflow::bench {

const char* const kBenchUsage =
    "  orderflow bench FILE [--commands N | --duration S] [--rate N | --in-flight N]\n"
    "                       [--threads 1,2] [--store memory|rocksdb[,...]] [--runs R] [--no-baselines]\n"
    "                       [--json FILE] [--csv FILE] [--plot FILE.png] [--skus N] [--zipf S] [--seed N]\n"
    "                       [--data-dir DIR] [--progress|--no-progress]\n"
    "                       drive the graph in-process and measure it against its baselines\n";

namespace {

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "orderflow bench: %s\nusage:\n%s", msg.c_str(), kBenchUsage);
  return 2;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(item);
  return out;
}

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

int bench_main(const std::string& file, const std::vector<std::string>& args, const graph::KindRegistry& registry) {
  Options o;
  o.graph_file = file;
  o.progress = ::isatty(STDERR_FILENO) == 1;
  bool commands_given = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= args.size()) return false;
      *out = args[++i];
      return true;
    };
    auto number = [&](int64_t min, int64_t* out) {
      std::string v;
      return value(&v) && graph::parse_int(v, out) && *out >= min;
    };
    auto real = [&](double min, double* out) {
      std::string v;
      return value(&v) && graph::parse_double(v, out) && *out >= min;
    };
    int64_t n = 0;
    std::string v;
    if (a == "--help" || a == "-h") {
      std::printf("usage:\n%s", kBenchUsage);
      return 0;
    }
    if (a == "--commands") {
      if (!number(1, &n)) return usage_error("--commands needs a positive integer");
      o.commands = static_cast<uint64_t>(n);
      commands_given = true;
    } else if (a == "--duration") {
      if (!real(0.001, &o.duration_s)) return usage_error("--duration needs a positive number of seconds");
    } else if (a == "--rate") {
      if (!real(1, &o.rate)) return usage_error("--rate needs commands per second >= 1");
    } else if (a == "--in-flight") {
      if (!number(1, &n) || n > 10000000) return usage_error("--in-flight needs an integer in [1, 10000000]");
      o.in_flight = static_cast<int>(n);
    } else if (a == "--runs") {
      if (!number(1, &n) || n > 1000) return usage_error("--runs needs an integer in [1, 1000]");
      o.runs = static_cast<int>(n);
    } else if (a == "--threads") {
      if (!value(&v)) return usage_error("--threads needs a list like 1,2");
      for (const auto& t : split(v)) {
        int64_t k = 0;
        if (!graph::parse_int(t, &k) || k < 1 || k > 1024) return usage_error("--threads: '" + t + "' is not a thread count");
        o.threads.push_back(static_cast<int>(k));
      }
      if (o.threads.empty()) return usage_error("--threads needs a list like 1,2");
    } else if (a == "--store") {
      if (!value(&v)) return usage_error("--store needs memory or rocksdb");
      for (const auto& s : split(v)) {
        if (s != "memory" && s != "rocksdb") return usage_error("--store: '" + s + "' is not memory or rocksdb");
        o.stores.push_back(s);
      }
    } else if (a == "--no-baselines") {
      o.baselines = false;
    } else if (a == "--json" && value(&v)) {
      o.json_file = v;
    } else if (a == "--csv" && value(&v)) {
      o.csv_file = v;
    } else if (a == "--plot" && value(&v)) {
      o.plot_file = v;
    } else if (a == "--data-dir" && value(&v)) {
      o.data_dir = v;
    } else if (a == "--skus") {
      if (!number(1, &n) || n > 10000000) return usage_error("--skus needs an integer in [1, 10000000]");
      o.workload.skus = static_cast<size_t>(n);
    } else if (a == "--zipf") {
      if (!real(0, &o.workload.zipf_s)) return usage_error("--zipf needs an exponent >= 0");
    } else if (a == "--seed") {
      if (!value(&v) || !graph::parse_int(v, &n)) return usage_error("--seed needs an integer");
      o.workload.seed = static_cast<uint64_t>(n);
    } else if (a == "--progress") {
      o.progress = true;
    } else if (a == "--no-progress") {
      o.progress = false;
    } else {
      return usage_error("unknown or incomplete option '" + a + "'");
    }
  }
  if (commands_given && o.duration_s > 0) return usage_error("give --commands or --duration, not both");
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
          auto r = run_pipeline(graphs[si], c, o, commands, more, run_dir, raw_done ? nullptr : &recorded);
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

}  // namespace orderflow::bench
