#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "bench/bench.h"
#include "graph/json.h"

namespace orderflow::bench {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

namespace {

// The process's CPU per event of a run, in µs (0 without events).
double cpu_us_per_event(const RunResult& r) {
  return r.events > 0 ? (r.cpu_user_s + r.cpu_sys_s) * 1e6 / static_cast<double>(r.events) : 0.0;
}

// Field-wise median of the runs of one configuration (each figure separately).
RunResult median_of(const std::vector<const RunResult*>& runs) {
  RunResult m = *runs.front();
  auto med = [&](auto get) {
    std::vector<double> v;
    for (const auto* r : runs) v.push_back(static_cast<double>(get(*r)));
    return median(v);
  };
  auto med_u = [&](auto get) { return static_cast<uint64_t>(med(get) + 0.5); };
  m.seconds = med([](const RunResult& r) { return r.seconds; });
  m.commands = med_u([](const RunResult& r) { return r.commands; });
  m.accepted = med_u([](const RunResult& r) { return r.accepted; });
  m.rejected = med_u([](const RunResult& r) { return r.rejected; });
  m.failed = med_u([](const RunResult& r) { return r.failed; });
  m.events = med_u([](const RunResult& r) { return r.events; });
  m.orders = med_u([](const RunResult& r) { return r.orders; });
  m.commands_per_s = med([](const RunResult& r) { return r.commands_per_s; });
  m.events_per_s = med([](const RunResult& r) { return r.events_per_s; });
  m.orders_per_s = med([](const RunResult& r) { return r.orders_per_s; });
  auto med_percentiles = [&](auto get) {
    Percentiles p;
    p.count = med_u([&](const RunResult& r) { return get(r).count; });
    p.p50_ms = med([&](const RunResult& r) { return get(r).p50_ms; });
    p.p95_ms = med([&](const RunResult& r) { return get(r).p95_ms; });
    p.p99_ms = med([&](const RunResult& r) { return get(r).p99_ms; });
    p.p999_ms = med([&](const RunResult& r) { return get(r).p999_ms; });
    p.max_ms = med([&](const RunResult& r) { return get(r).max_ms; });
    return p;
  };
  m.commit = med_percentiles([](const RunResult& r) -> const Percentiles& { return r.commit; });
  m.projection = med_percentiles([](const RunResult& r) -> const Percentiles& { return r.projection; });
  for (size_t k = 0; k < kStages; ++k)
    m.stages[k] = med_percentiles([k](const RunResult& r) -> const Percentiles& { return r.stages[k]; });
  m.cpu_user_s = med([](const RunResult& r) { return r.cpu_user_s; });
  m.cpu_sys_s = med([](const RunResult& r) { return r.cpu_sys_s; });
  m.peak_rss_mb = med([](const RunResult& r) { return r.peak_rss_mb; });
  m.mean_commit_group = med([](const RunResult& r) { return r.mean_commit_group; });
  {
    // Per thread name, the median of its CPU over the runs (0 in a run it did not appear in).
    std::map<std::string, ThreadCpu> names;
    for (const auto* r : runs)
      for (const auto& t : r->threads) names.emplace(t.name, t);
    m.threads.clear();
    for (auto& [name, t] : names) {
      auto of = [&name = name](const RunResult& r) -> const ThreadCpu* {
        for (const auto& x : r.threads)
          if (x.name == name) return &x;
        return nullptr;
      };
      t.cpu_s = med([&](const RunResult& r) { return of(r) ? of(r)->cpu_s : 0.0; });
      t.threads = static_cast<int>(med([&](const RunResult& r) { return of(r) ? of(r)->threads : 0; }) + 0.5);
      t.sleeps = med([&](const RunResult& r) { return of(r) ? of(r)->sleeps : 0.0; });
      if (t.cpu_s > 0) m.threads.push_back(t);
    }
    std::sort(m.threads.begin(), m.threads.end(), [](const ThreadCpu& a, const ThreadCpu& b) { return a.cpu_s > b.cpu_s; });
  }
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    auto node = [&](const RunResult& r) -> const NodeFigure* { return i < r.nodes.size() ? &r.nodes[i] : nullptr; };
    m.nodes[i].rate_out = med([&](const RunResult& r) { return node(r) ? node(r)->rate_out : 0.0; });
    m.nodes[i].busy_share = med([&](const RunResult& r) { return node(r) ? node(r)->busy_share : 0.0; });
    m.nodes[i].in = med_u([&](const RunResult& r) { return node(r) ? node(r)->in : 0; });
    m.nodes[i].out = med_u([&](const RunResult& r) { return node(r) ? node(r)->out : 0; });
    m.nodes[i].errors = med_u([&](const RunResult& r) { return node(r) ? node(r)->errors : 0; });
  }
  if (m.cosmos.measured) {
    CosmosFigures& c = m.cosmos;
    c.all_commands = med_u([](const RunResult& r) { return r.cosmos.all_commands; });
    c.all_commands_per_s = med([](const RunResult& r) { return r.cosmos.all_commands_per_s; });
    c.workload_orders = med_u([](const RunResult& r) { return r.cosmos.workload_orders; });
    c.requests = med_u([](const RunResult& r) { return r.cosmos.requests; });
    c.request_units = med([](const RunResult& r) { return r.cosmos.request_units; });
    c.throttles = med_u([](const RunResult& r) { return r.cosmos.throttles; });
    c.idle_ru_per_s = med([](const RunResult& r) { return r.cosmos.idle_ru_per_s; });
    c.orders_placed = med_u([](const RunResult& r) { return r.cosmos.orders_placed; });
    c.orders_settled = med_u([](const RunResult& r) { return r.cosmos.orders_settled; });
    // Each operation's median over the runs (0 in a run without it).
    for (auto by_op : {&CosmosFigures::ru_by_op, &CosmosFigures::requests_by_op}) {
      for (const auto* r : runs)
        for (const auto& [op, v] : r->cosmos.*by_op) (c.*by_op)[op] = 0;
      for (auto& [op, v] : c.*by_op)
        v = med([&op = op, by_op](const RunResult& r) {
          auto it = (r.cosmos.*by_op).find(op);
          return it == (r.cosmos.*by_op).end() ? 0.0 : it->second;
        });
    }
  }
  return m;
}

bool same(const RunConfig& a, const RunConfig& b) {
  return a.store == b.store && a.threads == b.threads && a.metrics == b.metrics;
}

double ratio(double a, double b) { return b > 0 ? a / b : 0; }

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

void write_percentiles(JsonWriter& w, const Percentiles& p) {
  w.begin_object()
      .field("count", p.count)
      .field("p50", p.p50_ms)
      .field("p95", p.p95_ms)
      .field("p99", p.p99_ms)
      .field("p999", p.p999_ms)
      .field("max", p.max_ms)
      .end_object();
}

void write_run(JsonWriter& w, const RunResult& r) {
  w.field("store", r.config.store)
      .field("threads", r.config.threads)
      .field("metrics", r.config.metrics)
      .field("seconds", r.seconds)
      .field("commands", r.commands)
      .field("accepted", r.accepted)
      .field("rejected", r.rejected)
      .field("failed", r.failed)
      .field("events", r.events)
      .field("orders", r.orders)
      .field("commands_per_s", r.commands_per_s)
      .field("events_per_s", r.events_per_s)
      .field("orders_per_s", r.orders_per_s);
  w.key("latency_commit_ms");
  write_percentiles(w, r.commit);
  w.key("latency_projection_ms");
  write_percentiles(w, r.projection);
  if (r.stages[0].count > 0) {
    w.key("latency_commit_stages_ms").begin_object();
    for (size_t k = 0; k < kStages; ++k) {
      w.key(kStageNames[k]);
      write_percentiles(w, r.stages[k]);
    }
    w.end_object();
  }
  w.field("cpu_user_s", r.cpu_user_s)
      .field("cpu_system_s", r.cpu_sys_s)
      .field("cpu_cores_used", r.seconds > 0 ? (r.cpu_user_s + r.cpu_sys_s) / r.seconds : 0.0)
      .field("cpu_us_per_event", cpu_us_per_event(r))
      .field("peak_rss_mb", r.peak_rss_mb)
      .field("mean_commit_group", r.mean_commit_group);
  if (r.cosmos.measured) {
    const CosmosFigures& c = r.cosmos;
    w.key("cosmos").begin_object()
        .field("commands", c.all_commands)
        .field("commands_per_s", c.all_commands_per_s)
        .field("workload_orders", c.workload_orders)
        .field("requests", c.requests)
        .field("request_units", c.request_units)
        .field("requests_per_order", c.requests_per_order())
        .field("ru_per_order", c.ru_per_order())
        .field("ru_per_command", c.ru_per_command())
        .field("throttles", c.throttles)
        .field("idle_ru_per_s", c.idle_ru_per_s)
        .field("orders_placed", c.orders_placed)
        .field("orders_settled", c.orders_settled);
    w.key("ru_by_operation").begin_object();
    for (const auto& [op, ru] : c.ru_by_op) w.field(op, ru);
    w.end_object();
    w.key("requests_by_operation").begin_object();
    for (const auto& [op, n] : c.requests_by_op) w.field(op, n);
    w.end_object().end_object();
  }
  if (!r.threads.empty()) {
    const double events = static_cast<double>(r.events);
    w.key("cpu_by_thread").begin_array();
    for (const auto& t : r.threads)
      w.begin_object()
          .field("name", t.name)
          .field("threads", t.threads)
          .field("cpu_s", t.cpu_s)
          .field("us_per_event", events > 0 ? t.cpu_s * 1e6 / events : 0.0)
          .field("sleeps", t.sleeps)
          .field("sleeps_per_event", events > 0 ? t.sleeps / events : 0.0)
          .field("serial", t.serial)
          .end_object();
    w.end_array();
    const Ceiling c = ceiling_of(r.threads, events);
    if (c.events_per_s > 0)
      w.key("ceiling").begin_object()
          .field("events_per_s", c.events_per_s)
          .field("limit", c.limit)
          .field("cores", c.cores)
          .end_object();
  }
  w.key("nodes").begin_array();
  for (const auto& n : r.nodes)
    w.begin_object()
        .field("id", n.id)
        .field("kind", n.kind)
        .field("in", n.in)
        .field("out", n.out)
        .field("errors", n.errors)
        .field("rate_out_per_s", n.rate_out)
        .field("busy_share", n.busy_share)
        .end_object();
  w.end_array();
}

std::string machine_line() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::string model;
  std::ifstream cpu("/proc/cpuinfo");
  for (std::string line; std::getline(cpu, line);)
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  return std::to_string(std::thread::hardware_concurrency()) + " cores, " + model;
}

// The Cosmos DB section: every committed command's rate, requests and request units per
// order of the workload, by operation, and the raw-creates baseline of the same run.
void print_cosmos(const Report& report, const std::vector<Summary>& summary) {
  if (std::none_of(summary.begin(), summary.end(), [](const Summary& s) { return s.median.cosmos.measured; })) return;
  std::printf("\nCosmos DB at %s (a database per run, deleted after it); cmd/s: every committed command, the saga's "
              "included; per order: per PlaceOrder command of the workload; figures from the first submit until "
              "quiescent\n",
              report.options.cosmos_endpoint.c_str());
  std::printf("%-24s %9s %12s %8s %14s %10s %10s %10s %9s %15s\n", "configuration", "cmd/s", "client cmd/s",
              "vs raw", "requests/order", "RU/order", "RU/command", "idle RU/s", "throttles", "settled/placed");
  for (const auto& s : summary) {
    const CosmosFigures& c = s.median.cosmos;
    if (!c.measured) continue;
    std::printf("%-24s %9.0f %12.0f %8.2f %14.2f %10.2f %10.2f %10.1f %9llu %15s\n", s.config.name().c_str(),
                c.all_commands_per_s, s.median.commands_per_s, s.vs_raw_cosmos, c.requests_per_order(),
                c.ru_per_order(), c.ru_per_command(), c.idle_ru_per_s, static_cast<unsigned long long>(c.throttles),
                (std::to_string(c.orders_settled) + "/" + std::to_string(c.orders_placed)).c_str());
  }
  for (const auto& s : summary) {
    const CosmosFigures& c = s.median.cosmos;
    if (!c.measured) continue;
    const auto per_order = [&c](double v) { return c.workload_orders ? v / static_cast<double>(c.workload_orders) : 0; };
    std::printf("RU by operation, %s (RU, RU/order):", s.config.name().c_str());
    for (const auto& [op, ru] : c.ru_by_op) std::printf(" %s %.0f (%.2f)", op.c_str(), ru, per_order(ru));
    std::printf("\nrequests by operation, %s (requests, per order):", s.config.name().c_str());
    for (const auto& [op, n] : c.requests_by_op) std::printf(" %s %.0f (%.2f)", op.c_str(), n, per_order(n));
    std::printf("\n");
  }
  const double raw = median_baseline(report, "raw-cosmos-creates");
  if (raw <= 0) return;
  int concurrency = 0;
  uint64_t docs = 0, failed = 0;
  for (const auto& b : report.baselines)
    if (b.name == "raw-cosmos-creates") concurrency = b.concurrency, docs = b.events, failed += b.failed;
  std::printf("baseline (same run): raw document creates, %d at a time (the events store's parallelism): %.0f/s "
              "(%llu commit-sized documents per run, a plain client; %llu failed)\n",
              concurrency, raw, static_cast<unsigned long long>(docs), static_cast<unsigned long long>(failed));
  for (const auto& s : summary)
    if (s.median.cosmos.measured)
      std::printf("ratio, %s: %.0f commands/s / %.0f raw creates/s = %.2f\n", s.config.name().c_str(),
                  s.median.cosmos.all_commands_per_s, raw, s.vs_raw_cosmos);
}

}  // namespace

std::string RunConfig::name() const {
  return (store.empty() ? "yaml" : store) + " t" + std::to_string(threads) + (metrics ? "" : " metrics-off");
}

double median_baseline(const Report& report, const std::string& name) {
  std::vector<double> v;
  for (const auto& b : report.baselines)
    if (b.name == name) v.push_back(b.events_per_s);
  return median(v);
}

PacedFigures median_paced(const Report& report) {
  std::vector<double> cpu, sleeps, writes;
  for (const auto& b : report.baselines) {
    if (b.name != "raw-rocksdb-paced" || b.events == 0 || b.seconds <= 0) continue;
    const double events = static_cast<double>(b.events);
    cpu.push_back(b.cpu_s * 1e6 / events);
    sleeps.push_back(b.sleeps / events);
    writes.push_back(static_cast<double>(b.writes) / b.seconds);
  }
  return {median(cpu), median(sleeps), median(writes)};
}

std::vector<Summary> summarize(const Report& report) {
  std::vector<Summary> out;
  for (const auto& r : report.runs) {
    if (std::any_of(out.begin(), out.end(), [&](const Summary& s) { return same(s.config, r.config); })) continue;
    std::vector<const RunResult*> group;
    for (const auto& x : report.runs)
      if (same(x.config, r.config)) group.push_back(&x);
    Summary s;
    s.config = r.config;
    s.median = median_of(group);
    out.push_back(std::move(s));
  }
  const double raw = median_baseline(report, "raw-rocksdb");
  const double cpu = median_baseline(report, "cpu-loop");
  const double raw_cosmos = median_baseline(report, "raw-cosmos-creates");
  const PacedFigures paced = median_paced(report);
  for (auto& s : out) {
    const double ev = s.median.events_per_s;
    if (s.median.cosmos.measured) s.vs_raw_cosmos = ratio(s.median.cosmos.all_commands_per_s, raw_cosmos);
    if (s.config.store == "rocksdb") s.vs_raw_rocksdb = ratio(ev, raw);
    if (s.config.store == "rocksdb") s.cpu_vs_raw_paced = ratio(cpu_us_per_event(s.median), paced.cpu_us_per_event);
    if (s.config.store == "memory") s.vs_cpu_loop = ratio(ev, cpu);
    for (const auto& o : out) {
      if (o.config.store != s.config.store) continue;
      if (s.config.metrics && !o.config.metrics && o.config.threads == s.config.threads)
        s.vs_metrics_off = ratio(ev, o.median.events_per_s);
      if (o.config.metrics == s.config.metrics && !report.options.threads.empty() &&
          o.config.threads == report.options.threads.front())
        s.vs_first_threads = ratio(ev, o.median.events_per_s);
    }
  }
  return out;
}

void print_table(const Report& report, const std::vector<Summary>& summary) {
  const Options& o = report.options;
  std::printf("orderflow bench %s: %s, %s, %d run%s (medians), %s\n", o.graph_file.c_str(),
              o.rate > 0 ? ("open loop at " + fmt("%.0f", o.rate) + " commands/s").c_str()
                         : ("closed loop, " + std::to_string(o.in_flight) + " in flight").c_str(),
              o.duration_s > 0 ? (fmt("%.1f", o.duration_s) + " s").c_str()
                               : (std::to_string(o.commands) + " commands + " + std::to_string(o.workload.skus) +
                                  " stockings")
                                     .c_str(),
              o.runs, o.runs == 1 ? "" : "s", machine_line().c_str());
  std::printf("\n%-24s %9s %10s %9s %8s %6s %7s %7s\n", "configuration", "cmd/s", "events/s", "orders/s", "cpu s",
              "cores", "us/ev", "rss MB");
  for (const auto& s : summary) {
    const RunResult& m = s.median;
    const double cpu = m.cpu_user_s + m.cpu_sys_s;
    std::printf("%-24s %9.0f %10.0f %9.0f %8.2f %6.2f %7.1f %7.0f\n", s.config.name().c_str(), m.commands_per_s,
                m.events_per_s, m.orders_per_s, cpu, m.seconds > 0 ? cpu / m.seconds : 0,
                cpu_us_per_event(m), m.peak_rss_mb);
  }
  std::printf("\nlatency, ms              %-37s %s\n%-24s", "ingest to durable commit", "ingest to projection",
              "configuration");
  for (const char* gap : {" ", "  "}) std::printf("%s%8s %8s %8s %8s", gap, "p50", "p95", "p99", "p99.9");
  std::printf("\n");
  for (const auto& s : summary) {
    const RunResult& m = s.median;
    std::printf("%-24s", s.config.name().c_str());
    for (const auto* q : {&m.commit, &m.projection})
      std::printf("%s%8.2f %8.2f %8.2f %8.2f", q == &m.commit ? " " : "  ", q->p50_ms, q->p95_ms, q->p99_ms,
                  q->p999_ms);
    std::printf("\n");
  }
  const double raw = median_baseline(report, "raw-rocksdb");
  const double cpu = median_baseline(report, "cpu-loop");
  const double raw_paced = median_baseline(report, "raw-rocksdb-paced");
  const PacedFigures paced = median_paced(report);
  if (raw > 0 || cpu > 0) {
    std::printf("\nbaselines (same run)       events/s\n");
    if (raw > 0) std::printf("%-24s %12.0f   synced WriteBatch of 1000 of the same events\n", "raw-rocksdb", raw);
    if (raw_paced > 0)
      std::printf("%-24s %12.0f   the same events at the run's rate, synced as the commit node spaces its writes "
                  "(%.0f writes/s): %.1f us of CPU, %.3f sleeps per event\n",
                  "raw-rocksdb-paced", raw_paced, paced.writes_per_s, paced.cpu_us_per_event, paced.sleeps_per_event);
    if (cpu > 0)
      std::printf("%-24s %12.0f   decide/evolve/saga on one thread, no graph, no store (%.1f us/event)\n", "cpu-loop", cpu,
                  1e6 / cpu);
  }
  std::printf("\nratios (events/s)        %12s %12s %12s %12s\n", "/raw-rocksdb", "/cpu-loop", "/metrics-off",
              "/first-thr");
  auto cell = [](double v) { return v > 0 ? fmt("%12.2f", v) : std::string(12, ' '); };
  for (const auto& s : summary) {
    std::printf("%-24s %s %s %s %s\n", s.config.name().c_str(), cell(s.vs_raw_rocksdb).c_str(),
                cell(s.vs_cpu_loop).c_str(), cell(s.vs_metrics_off).c_str(), cell(s.vs_first_threads).c_str());
  }
  if (std::any_of(summary.begin(), summary.end(), [](const Summary& s) { return s.cpu_vs_raw_paced > 0; })) {
    std::printf("\nCPU per event (us)       %12s %12s %12s\n", "this run", "raw-paced", "ratio");
    for (const auto& s : summary) {
      if (s.cpu_vs_raw_paced <= 0) continue;
      std::printf("%-24s %12.1f %12.1f %12.2f\n", s.config.name().c_str(), cpu_us_per_event(s.median),
                  paced.cpu_us_per_event, s.cpu_vs_raw_paced);
    }
  }
  bool staged = false;
  for (const auto& s : summary) {
    if (s.median.stages[0].count == 0) continue;
    if (!staged) {
      std::printf("\ncommit latency by stage, p50 / p99 ms (a command's stages add up to its commit latency; their percentiles do not add up)\n%-24s", "configuration");
      for (const char* name : kStageNames) std::printf(" %15s", name);
      std::printf("\n");
      staged = true;
    }
    std::printf("%-24s", s.config.name().c_str());
    for (const auto& p : s.median.stages) std::printf(" %15s", (fmt("%.2f", p.p50_ms) + " / " + fmt("%.2f", p.p99_ms)).c_str());
    std::printf("\n");
  }
  print_cosmos(report, summary);
  for (const auto& s : summary) {
    if (s.median.nodes.empty()) continue;
    std::printf("\nnodes, %s (commit group %.0f commands)\n  %-14s %-14s %12s %8s\n", s.config.name().c_str(),
                s.median.mean_commit_group, "node", "kind", "out/s", "busy");
    for (const auto& n : s.median.nodes)
      std::printf("  %-14s %-14s %12.0f %7.0f%%\n", n.id.c_str(), n.kind.c_str(), n.rate_out, n.busy_share * 100);
  }
  for (const auto& s : summary) {
    const RunResult& r = s.median;
    if (r.threads.empty() || r.events == 0) continue;
    const double events = static_cast<double>(r.events);
    double all = 0, slept = 0;
    for (const auto& t : r.threads) {
      all += t.cpu_s;
      slept += t.sleeps;
    }
    std::printf("\nCPU by thread, %s (a serial thread caps events/s at 1e6 / its us per event, on any number of cores;\n"
                "sleeps: times a thread blocked and was woken again, per event)\n"
                "  %-16s %7s %10s %7s %14s %10s\n", s.config.name().c_str(), "thread", "threads", "us/event", "share",
                "serial cap/s", "sleeps/ev");
    for (const auto& t : r.threads) {
      const std::string cap = t.serial && t.cpu_s > 0 ? fmt("%.0f", events / t.cpu_s) : "";
      std::printf("  %-16s %7d %10.2f %6.0f%% %14s %10.3f\n", t.name.c_str(), t.threads, t.cpu_s * 1e6 / events,
                  all > 0 ? t.cpu_s / all * 100 : 0.0, cap.c_str(), t.sleeps / events);
    }
    std::printf("  %-16s %7s %10.2f %7s %14s %10.3f\n", "all", "", all * 1e6 / events, "", "", slept / events);
    // An open loop's CPU per event includes its idle wake-ups: no ceiling from it. Nor on
    // Cosmos DB, where the account, not this process's cores, sets the limit.
    const Ceiling c = report.options.rate > 0 || r.cosmos.measured ? Ceiling{} : ceiling_of(r.threads, events);
    if (c.events_per_s > 0)
      std::printf("  ceiling on more cores: %.0f events/s (%s), %.2fx this run, %.1f cores busy (this run's CPU per "
                  "event, contention on these cores included)\n",
                  c.events_per_s, c.limit.c_str(), r.events_per_s > 0 ? c.events_per_s / r.events_per_s : 0.0, c.cores);
  }
  std::fflush(stdout);
}

Status write_json(const Report& report, const std::vector<Summary>& summary, const std::string& path) {
  const Options& o = report.options;
  JsonWriter w;
  w.begin_object().field("graph", o.graph_file).field("machine", machine_line());
  w.key("options").begin_object();
  w.field("mode", o.rate > 0 ? "open" : "closed")
      .field("rate", o.rate)
      .field("in_flight", o.in_flight)
      .field("commands", o.commands)
      .field("duration_s", o.duration_s)
      .field("runs", o.runs)
      .field("skus", static_cast<uint64_t>(o.workload.skus))
      .field("zipf_s", o.workload.zipf_s)
      .field("seed", o.workload.seed)
      .field("baselines", o.baselines);
  if (!o.cosmos_endpoint.empty()) w.field("cosmos_endpoint", o.cosmos_endpoint);
  if (o.measured_max > 0) w.field("half_max_of", o.measured_max);  // --half-max: the closed loop's maximum
  w.key("threads").begin_array();
  for (int t : o.threads) w.value(t);
  w.end_array().end_object();
  w.key("baselines").begin_object();
  for (const std::string name : {"raw-rocksdb", "raw-rocksdb-paced", "cpu-loop", "raw-cosmos-creates"}) {
    if (median_baseline(report, name) <= 0) continue;
    w.key(name).begin_object().field("events_per_s", median_baseline(report, name));
    if (name == "raw-rocksdb-paced") {
      const PacedFigures paced = median_paced(report);
      w.field("cpu_us_per_event", paced.cpu_us_per_event)
          .field("sleeps_per_event", paced.sleeps_per_event)
          .field("writes_per_s", paced.writes_per_s);
    }
    w.key("runs").begin_array();
    for (const auto& b : report.baselines) {
      if (b.name != name) continue;
      w.begin_object()
          .field("repetition", b.repetition)
          .field("events", b.events)
          .field("seconds", b.seconds)
          .field("events_per_s", b.events_per_s);
      if (name == "raw-cosmos-creates") w.field("concurrency", b.concurrency).field("failed", b.failed);
      if (name == "raw-rocksdb-paced") w.field("cpu_s", b.cpu_s).field("sleeps", b.sleeps).field("writes", b.writes);
      w.end_object();
    }
    w.end_array().end_object();
  }
  w.end_object();
  w.key("runs").begin_array();
  for (const auto& r : report.runs) {
    w.begin_object().field("config", r.config.name()).field("repetition", r.repetition);
    write_run(w, r);
    w.end_object();
  }
  w.end_array();
  w.key("summary").begin_array();
  for (const auto& s : summary) {
    w.begin_object().field("config", s.config.name());
    write_run(w, s.median);
    w.key("ratios").begin_object();
    if (s.vs_raw_rocksdb > 0) w.field("raw_rocksdb", s.vs_raw_rocksdb);
    if (s.vs_cpu_loop > 0) w.field("cpu_loop", s.vs_cpu_loop);
    if (s.vs_metrics_off > 0) w.field("metrics_off", s.vs_metrics_off);
    if (s.vs_first_threads > 0) w.field("first_threads", s.vs_first_threads);
    if (s.vs_raw_cosmos > 0) w.field("raw_cosmos_creates", s.vs_raw_cosmos);
    if (s.cpu_vs_raw_paced > 0) w.field("cpu_per_event_raw_rocksdb_paced", s.cpu_vs_raw_paced);
    w.end_object().end_object();
  }
  w.end_array().end_object();
  std::ofstream f(path);
  f << w.str() << "\n";
  f.close();
  if (!f) return Status::io_error("cannot write " + path);
  return Status::ok();
}

Status write_csv(const Report& report, const std::string& path) {
  // One row per run; one rate and one busy column per node of the graph.
  std::vector<std::string> node_ids;
  for (const auto& r : report.runs)
    for (const auto& n : r.nodes)
      if (std::find(node_ids.begin(), node_ids.end(), n.id) == node_ids.end()) node_ids.push_back(n.id);
  std::ofstream f(path);
  f << "config,store,threads,metrics,repetition,seconds,commands,accepted,rejected,failed,events,orders,"
       "commands_per_s,events_per_s,orders_per_s,commit_p50_ms,commit_p95_ms,commit_p99_ms,commit_p999_ms,"
       "projection_p50_ms,projection_p95_ms,projection_p99_ms,projection_p999_ms,cpu_user_s,cpu_system_s,"
       "peak_rss_mb,mean_commit_group,raw_rocksdb_events_per_s,cpu_loop_events_per_s";
  // Cosmos DB runs: their figures and the repetition's raw-creates baseline.
  const bool cosmos = std::any_of(report.runs.begin(), report.runs.end(), [](const RunResult& r) { return r.cosmos.measured; });
  if (cosmos)
    f << ",cosmos_commands,cosmos_commands_per_s,cosmos_requests_per_order,cosmos_ru_per_order,"
         "cosmos_ru_per_command,cosmos_idle_ru_per_s,cosmos_throttles,orders_placed,orders_settled,"
         "raw_cosmos_creates_per_s";
  for (const char* name : kStageNames) f << "," << name << "_p50_ms," << name << "_p99_ms";
  for (const auto& id : node_ids) f << ",rate_out_" << id << ",busy_" << id;
  f << "\n";
  auto baseline_of = [&](const std::string& name, int rep) {
    for (const auto& b : report.baselines)
      if (b.name == name && b.repetition == rep) return fmt("%.1f", b.events_per_s);
    return std::string();
  };
  for (const auto& r : report.runs) {
    f << r.config.name() << "," << r.config.store << "," << r.config.threads << "," << (r.config.metrics ? 1 : 0)
      << "," << r.repetition << "," << fmt("%.4f", r.seconds) << "," << r.commands << "," << r.accepted << ","
      << r.rejected << "," << r.failed << "," << r.events << "," << r.orders << "," << fmt("%.1f", r.commands_per_s)
      << "," << fmt("%.1f", r.events_per_s) << "," << fmt("%.1f", r.orders_per_s);
    for (const auto* p : {&r.commit, &r.projection})
      f << "," << fmt("%.3f", p->p50_ms) << "," << fmt("%.3f", p->p95_ms) << "," << fmt("%.3f", p->p99_ms) << ","
        << fmt("%.3f", p->p999_ms);
    f << "," << fmt("%.3f", r.cpu_user_s) << "," << fmt("%.3f", r.cpu_sys_s) << "," << fmt("%.1f", r.peak_rss_mb)
      << "," << fmt("%.1f", r.mean_commit_group) << "," << baseline_of("raw-rocksdb", r.repetition) << ","
      << baseline_of("cpu-loop", r.repetition);
    if (cosmos) {
      const CosmosFigures& c = r.cosmos;
      f << "," << c.all_commands << "," << fmt("%.1f", c.all_commands_per_s) << "," << fmt("%.3f", c.requests_per_order())
        << "," << fmt("%.3f", c.ru_per_order()) << "," << fmt("%.3f", c.ru_per_command()) << ","
        << fmt("%.2f", c.idle_ru_per_s) << "," << c.throttles << "," << c.orders_placed << "," << c.orders_settled << ","
        << baseline_of("raw-cosmos-creates", r.repetition);
    }
    for (const auto& p : r.stages)  // empty cells when not measured (metrics off), as the JSON leaves them out
      f << "," << (p.count ? fmt("%.3f", p.p50_ms) : "") << "," << (p.count ? fmt("%.3f", p.p99_ms) : "");
    for (const auto& id : node_ids) {
      auto n = std::find_if(r.nodes.begin(), r.nodes.end(), [&](const NodeFigure& x) { return x.id == id; });
      if (n == r.nodes.end()) f << ",,";
      else f << "," << fmt("%.1f", n->rate_out) << "," << fmt("%.4f", n->busy_share);
    }
    f << "\n";
  }
  f.close();
  if (!f) return Status::io_error("cannot write " + path);
  return Status::ok();
}

Status write_plot(const Report& report, const std::vector<Summary>& summary, const std::string& path) {
  // Events/s against TBB threads, one line per store (metrics on), baselines as levels.
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("orderflow-plot-" + std::to_string(::getpid()));
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::set<std::string> stores;
  for (const auto& s : summary)
    if (s.config.metrics) stores.insert(s.config.store.empty() ? "yaml" : s.config.store);
  std::string plots;
  for (const auto& store : stores) {
    const fs::path data = dir / (store + ".dat");
    std::ofstream d(data);
    for (const auto& s : summary)
      if (s.config.metrics && (s.config.store.empty() ? "yaml" : s.config.store) == store)
        d << s.config.threads << " " << fmt("%.1f", s.median.events_per_s) << "\n";
    plots += (plots.empty() ? "" : ", ") + std::string("'") + data.string() + "' using 1:2 with linespoints lw 2 title 'pipeline, " +
             store + "'";
  }
  const double raw = median_baseline(report, "raw-rocksdb");
  const double cpu = median_baseline(report, "cpu-loop");
  if (raw > 0) plots += ", " + fmt("%.1f", raw) + " with lines dt 2 title 'raw RocksDB (storage limit)'";
  if (cpu > 0) plots += ", " + fmt("%.1f", cpu) + " with lines dt 3 title 'CPU loop (1 thread)'";
  int lo = 1, hi = 1;
  if (!report.options.threads.empty()) {
    lo = *std::min_element(report.options.threads.begin(), report.options.threads.end());
    hi = *std::max_element(report.options.threads.begin(), report.options.threads.end());
  }
  const fs::path script = dir / "plot.gp";
  {
    std::ofstream g(script);
    g << "set terminal png size 900,560\n"
      << "set output '" << path << "'\n"
      << "set title 'orderflow bench " << report.options.graph_file << ": events/s by TBB threads'\n"
      << "set xlabel 'TBB threads'\nset ylabel 'events/s'\nset grid\nset key outside bottom center horizontal\n"
      << "set yrange [0:*]\nset xrange [" << lo - 0.5 << ":" << hi + 0.5 << "]\nset xtics 1\n"
      << "plot " << plots << "\n";
  }
  const std::string cmd = "gnuplot '" + script.string() + "' 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return Status::io_error("cannot run gnuplot");
  std::string output;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p) != nullptr) output += buf;
  const int rc = ::pclose(p);
  fs::remove_all(dir, ec);
  if (rc != 0)
    return Status::io_error("gnuplot failed (install gnuplot-nox; scripts/deps.sh does): " + output);
  return Status::ok();
}

}  // namespace orderflow::bench
