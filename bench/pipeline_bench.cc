// End-to-end durable throughput of the default graph, driven in-process, next to the
// baselines measured in the same run:
//   raw-rocksdb   synced WriteBatches of 1000 sequential-key 200-byte puts (the storage limit)
//   cpu-loop      decide/evolve/saga of the same workload, one thread, no graph, no store
//   pipeline      graphs/orders.yaml minus HTTP, on RocksDB (synced) and on memory stores
// Each configuration runs --runs times (default 3); medians are reported.
//
//   build/bench/pipeline_bench [--orders N] [--runs R] [--threads T]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "connectors/stores.h"
#include "nodes/builder.h"
#include "nodes/domain.h"

using namespace orderflow;
using Clock = std::chrono::steady_clock;

namespace {

bool g_verbose = false;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The workload: stock for many SKUs, then orders (1-3 lines, Zipf-popular SKUs, scarce stock).
std::vector<v1::Command> workload(int orders, int skus, const std::string& prefix) {
  std::mt19937_64 rng(7);
  std::vector<double> cdf(static_cast<size_t>(skus));
  double sum = 0;
  for (int i = 0; i < skus; ++i) cdf[static_cast<size_t>(i)] = sum += 1.0 / (i + 1);
  std::vector<v1::Command> out;
  for (int s = 0; s < skus; ++s) {
    v1::Command c;
    c.set_command_id(prefix + "stock-" + std::to_string(s));
    c.mutable_add_stock()->set_sku("S" + std::to_string(s));
    c.mutable_add_stock()->set_quantity(50);
    out.push_back(std::move(c));
  }
  for (int i = 0; i < orders; ++i) {
    v1::Command c;
    c.set_command_id(prefix + "place-" + std::to_string(i));
    auto* p = c.mutable_place_order();
    p->set_order_id(prefix + "o" + std::to_string(i));
    p->set_customer_id("c" + std::to_string(i % 1000));
    std::vector<size_t> used;
    const int lines = 1 + static_cast<int>(rng() % 3);
    for (int l = 0; l < lines; ++l) {
      const double x = std::uniform_real_distribution<double>(0, sum)(rng);
      const size_t s = static_cast<size_t>(std::lower_bound(cdf.begin(), cdf.end(), x) - cdf.begin());
      if (std::find(used.begin(), used.end(), s) != used.end()) continue;
      used.push_back(s);
      auto* line = p->add_lines();
      line->set_sku("S" + std::to_string(s));
      line->set_quantity(1 + static_cast<int>(rng() % 3));
      line->set_unit_price_cents(999);
    }
    out.push_back(std::move(c));
  }
  return out;
}

// Baseline 1: the storage limit.
double raw_rocksdb_events_per_s(const std::string& dir, uint64_t events) {
  std::filesystem::remove_all(dir);
  rocksdb::Options o;
  o.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  if (!rocksdb::DB::Open(o, dir, &raw).ok()) return 0;
  std::unique_ptr<rocksdb::DB> db(raw);
  const std::string value(200, 'x');
  rocksdb::WriteOptions wo;
  wo.sync = true;
  const auto t0 = Clock::now();
  for (uint64_t i = 0; i < events;) {
    rocksdb::WriteBatch wb;
    for (int k = 0; k < 1000 && i < events; ++k, ++i) {
      char key[8];
      for (int b = 0; b < 8; ++b) key[b] = static_cast<char>((i >> (56 - 8 * b)) & 0xff);
      wb.Put(rocksdb::Slice(key, 8), value);
    }
    db->Write(wo, &wb);
  }
  const double s = seconds_since(t0);
  db.reset();
  std::filesystem::remove_all(dir);
  return static_cast<double>(events) / s;
}

// Baseline 2: the CPU limit. Same decide/evolve/saga work, one thread, plain maps.
std::pair<double, uint64_t> cpu_loop_events_per_s(const std::vector<v1::Command>& commands) {
  const auto t0 = Clock::now();
  std::unordered_map<std::string, v1::StreamState> states;
  std::vector<v1::Command> queue(commands.begin(), commands.end());
  uint64_t events = 0;
  for (size_t i = 0; i < queue.size(); ++i) {
    const v1::Command c = queue[i];
    const std::string stream = domain::stream_of(c);
    auto& st = states[stream];
    auto decided = domain::decide(st, c);
    if (!decided) continue;
    for (const auto& e : *decided) {
      std::string payload = e.SerializeAsString();  // the pipeline serializes too
      domain::evolve(st, e);
      ++events;
      for (auto& next : domain::saga_react(stream, st.version(), e)) queue.push_back(std::move(next));
    }
  }
  return {static_cast<double>(events) / seconds_since(t0), events};
}

struct RunResult {
  double events_per_s = 0;
  double commands_per_s = 0;
  uint64_t events = 0;
  double p50_ms = 0, p99_ms = 0;
};

RunResult pipeline_run(const std::string& store_kind, const std::string& dir, int threads,
                       const std::vector<v1::Command>& commands) {
  std::filesystem::remove_all(dir);
  const std::string ev = store_kind == "rocksdb" ? "{kind: rocksdb, path: events}" : "{kind: memory}";
  const std::string sn = store_kind == "rocksdb" ? "{kind: rocksdb, path: snapshots}" : "{kind: memory}";
  // graphs/orders.yaml without the HTTP source (driven in-process instead).
  const std::string yaml =
      "graph: bench\nstores:\n  events: " + ev + "\n  snapshots: " + sn +
      "\nnodes:\n"
      "  - {id: demo, kind: demo_source}\n"
      "  - {id: route, kind: route, params: {lanes: 8, max_in_flight: 20000}}\n"
      "  - {id: lanes, kind: command_lane, params: {events: events, snapshots: snapshots}}\n"
      "  - {id: commit, kind: commit, params: {events: events, max_batch: 1000}}\n"
      "  - {id: feed, kind: change_feed, params: {events: events, batch: 512}}\n"
      "  - {id: projection, kind: projection, params: {snapshots: snapshots}}\n"
      "  - {id: saga, kind: saga}\n"
      "edges: [demo -> route, route -> lanes, lanes -> commit, commit -> feed, feed -> projection, "
      "feed -> saga, saga -> route]\n";
  graph::KindRegistry registry;
  register_node_kinds(registry);
  auto loaded = graph::load_graph_string(yaml);
  std::vector<graph::Diagnostic> diags;
  if (!loaded.ok() || !graph::validate(loaded.graph, registry, diags)) {
    std::fprintf(stderr, "bench graph invalid\n");
    std::exit(1);
  }
  RunResult result;
  {
    connectors::StoreSet stores(loaded.graph, dir);
    BuildOptions o;
    o.threads = threads;
    auto built = build_pipeline(loaded.graph, stores, o);
    if (!built || !built->pipeline->start()) {
      std::fprintf(stderr, "cannot start pipeline: %s\n", built ? "start failed" : built.status().to_string().c_str());
      std::exit(1);
    }
    ChangeFeed* feed = *stores.change_feed("events");
    std::atomic<int64_t> pending{0};
    const auto t0 = Clock::now();
    for (const auto& c : commands) {
      auto env = make_envelope(c, [&pending](const Outcome&) { pending.fetch_sub(1); });
      pending.fetch_add(1);
      while (!built->sink->submit(env)) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    // Done when every command and every saga follow-up is durable: nothing in flight and
    // the saga has consumed the whole log.
    for (int stable = 0; stable < 2;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      const uint64_t head = feed->head();
      const bool idle = pending.load() == 0 && built->sink->in_flight() == 0 && *feed->load_checkpoint("saga") == head;
      stable = idle ? stable + 1 : 0;
    }
    const double s = seconds_since(t0);
    result.events = feed->head();
    result.events_per_s = static_cast<double>(result.events) / s;
    for (const auto& n : built->pipeline->metrics().snapshot().nodes) {
      if (g_verbose)
        std::printf("    %-8s %-11s in %9llu out %9llu busy %6.2f s (%4.0f%% of the run)\n", store_kind.c_str(),
                    n.id.c_str(), static_cast<unsigned long long>(n.in), static_cast<unsigned long long>(n.out),
                    static_cast<double>(n.busy_ns) / 1e9, 100.0 * static_cast<double>(n.busy_ns) / 1e9 / s);
      if (n.kind != "commit") continue;
      if (g_verbose && n.gauges.count("mean_batch_commands"))
        std::printf("    %-8s commit mean group size %.1f commands\n", store_kind.c_str(), n.gauges.at("mean_batch_commands"));
      result.commands_per_s = static_cast<double>(n.out) / s;
      result.p50_ms = n.latency.p50_us / 1000;
      result.p99_ms = n.latency.p99_us / 1000;
    }
    built->pipeline->shutdown();
  }
  std::filesystem::remove_all(dir);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  int orders = 50000, runs = 3, threads = 2;
  for (int i = 1; i < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--verbose") {
      g_verbose = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "usage: pipeline_bench [--orders N] [--runs R] [--threads T] [--verbose]\n");
      return 2;
    }
    if (a == "--orders") orders = std::atoi(argv[i + 1]);
    else if (a == "--runs") runs = std::atoi(argv[i + 1]);
    else if (a == "--threads") threads = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: pipeline_bench [--orders N] [--runs R] [--threads T] [--verbose]\n");
      return 2;
    }
  }
  const std::string dir = (std::filesystem::temp_directory_path() / ("orderflow-bench-" + std::to_string(::getpid()))).string();
  std::printf("orderflow pipeline_bench: %d orders over 2000 SKUs, %d TBB threads, median of %d runs, %u cores\n",
              orders, threads, runs, std::thread::hardware_concurrency());
  std::vector<double> raw, cpu, rocks, mem, rocks_cmd, mem_cmd, rocks_p50, rocks_p99;
  uint64_t events = 0;
  for (int r = 0; r < runs; ++r) {
    const auto commands = workload(orders, 2000, "r" + std::to_string(r) + "-");
    raw.push_back(raw_rocksdb_events_per_s(dir + "-raw", 400000));
    auto [c, n] = cpu_loop_events_per_s(commands);
    cpu.push_back(c);
    auto rr = pipeline_run("rocksdb", dir, threads, commands);
    rocks.push_back(rr.events_per_s);
    rocks_cmd.push_back(rr.commands_per_s);
    rocks_p50.push_back(rr.p50_ms);
    rocks_p99.push_back(rr.p99_ms);
    auto mr = pipeline_run("memory", dir, threads, commands);
    mem.push_back(mr.events_per_s);
    mem_cmd.push_back(mr.commands_per_s);
    events = rr.events;
    if (rr.events != n || mr.events != n)
      // Concurrent interleaving decides which orders win scarce stock, so counts differ a little.
      std::printf("  run %d events: pipeline rocksdb %llu, memory %llu, cpu loop %llu\n", r,
                  static_cast<unsigned long long>(rr.events), static_cast<unsigned long long>(mr.events),
                  static_cast<unsigned long long>(n));
  }
  std::printf("%-34s %14s %12s\n", "configuration", "events/s", "ratio");
  std::printf("%-34s %14.0f %12s\n", "raw-rocksdb (synced, batch 1000)", median(raw), "1.00");
  std::printf("%-34s %14.0f %12.2f   (vs raw-rocksdb)\n", "pipeline, rocksdb (synced)", median(rocks), median(rocks) / median(raw));
  std::printf("%-34s %14.0f %12s\n", "cpu-loop (1 thread, no store)", median(cpu), "1.00");
  std::printf("%-34s %14.0f %12.2f   (vs cpu-loop)\n", "pipeline, memory", median(mem), median(mem) / median(cpu));
  std::printf("events per run: %llu; commands/s rocksdb %.0f, memory %.0f; ingest-to-durable p50 %.2f ms p99 %.2f ms (rocksdb, closed loop at max rate)\n",
              static_cast<unsigned long long>(events), median(rocks_cmd), median(mem_cmd), median(rocks_p50), median(rocks_p99));
  return 0;
}
