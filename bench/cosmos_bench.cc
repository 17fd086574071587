// Cosmos DB connector benchmark on the stand-in (tests/cosmos/launcher.js): the whole
// pipeline of graphs/orders-cosmos.yaml driven in-process, once without batching (one
// command per group commit, one request at a time) and once with batching (group commits
// of up to 256 commands written 32 requests at a time). Reports commands/s, request units
// per order and per command, the split of request units by operation (which node spends
// them), and the change feed's idle cost. Request charges come from the launcher's model
// (about 1 RU per KB read, 5 RU per KB written, 2.5 RU + 0.3 per document queried): the
// counts of requests are exact, their prices are an estimate to check on a real account.
//
// Its baseline, in the same run on the same stand-in: a plain client creating commit-sized
// documents (one per command, 16 at a time), the ceiling of one document per command.
//
//   build/bench/cosmos_bench [--orders N] [--runs R] [--ranges P] [--latency-ms L (default 5)]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench.h"
#include "connectors/cosmos_client.h"
#include "connectors/cosmos_store.h"
#include "connectors/stores.h"
#include "graph/build.h"
#include "orderflow.pb.h"
#include "tests/support/cosmos_standin.h"

using namespace orderflow;
using Clock = std::chrono::steady_clock;

namespace {

struct Run {
  double commands_per_s = 0, ru_per_order = 0, ru_per_command = 0, idle_ru_per_s = 0, requests_per_order = 0;
  double commands_per_document = 0;
  uint64_t commands = 0;
  std::map<std::string, double> ru_by_op;
};

// Orders of 1-3 lines over 40 SKUs with plenty of stock, so most are confirmed.
std::vector<v1::Command> orders_workload(int orders, const std::string& prefix) {
  std::vector<v1::Command> out;
  for (int s = 0; s < 40; ++s) {
    v1::Command c;
    c.set_command_id(prefix + "stock-" + std::to_string(s));
    c.mutable_add_stock()->set_sku("K" + std::to_string(s));
    c.mutable_add_stock()->set_quantity(1000);
    out.push_back(std::move(c));
  }
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < orders; ++i) {
    v1::Command c;
    c.set_command_id(prefix + "order-" + std::to_string(i));
    auto* p = c.mutable_place_order();
    p->set_order_id(prefix + std::to_string(i));
    p->set_customer_id("u" + std::to_string(i % 97));
    const int lines = 1 + i % 3;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    for (int l = 0; l < lines; ++l) {  // distinct SKUs: 13 apart
      auto* line = p->add_lines();
      line->set_sku("K" + std::to_string((x % 40 + static_cast<uint64_t>(l) * 13) % 40));
      line->set_quantity(1);
      line->set_unit_price_cents(1000);
    }
    out.push_back(std::move(c));
  }
  return out;
}

double gauge(Pipeline& p, const std::string& name) {
  for (const auto& n : p.metrics().snapshot().nodes)
    if (n.id == "cosmos" && n.gauges.count(name)) return n.gauges.at(name);
  return 0;
}

Run run_once(bool batching, int orders, int ranges, int latency_ms, const std::string& tag) {
  orderflow::testing::CosmosStandIn standin(orderflow::testing::CosmosStandIn::Options{ranges, "", "", latency_ms});
  ::setenv("COSMOS_KEY", standin.key().c_str(), 1);
  graph::KindRegistry registry;
  bench::register_bench_kinds(registry);
  auto loaded = graph::load_graph_file(std::string(ORDERFLOW_SOURCE_DIR) + "/graphs/orders-cosmos.yaml");
  if (!loaded.ok()) {
    std::fprintf(stderr, "cannot load graphs/orders-cosmos.yaml\n");
    std::exit(1);
  }
  graph::GraphDef def = loaded.graph;
  for (auto& [name, store] : def.stores) {
    store.params["endpoint"].text = standin.endpoint();
    if (name == "events") store.params["parallelism"].text = batching ? "32" : "1";
  }
  for (auto& n : def.nodes)
    if (n.kind == "commit") n.params["max_batch"].text = batching ? "256" : "1";
  std::vector<graph::Diagnostic> diags;
  if (!graph::validate(def, registry, diags)) {
    std::fprintf(stderr, "%s\n", diags.front().to_string().c_str());
    std::exit(1);
  }
  Run r;
  connectors::StoreSet stores(def, "");
  BuildOptions o;
  o.threads = 2;
  auto built = build_pipeline(def, registry, stores, o);
  if (!built || !built->pipeline->start()) {
    std::fprintf(stderr, "cannot start: %s\n", built ? "start failed" : built.status().to_string().c_str());
    std::exit(1);
  }
  Pipeline& p = *built->pipeline;
  ChangeFeed* saga = *(*stores.change_feed("events"))->subscribe("saga");
  const auto commands = orders_workload(orders, tag);
  std::atomic<int64_t> pending{0};
  const auto t0 = Clock::now();
  for (const auto& c : commands) {
    auto env = make_envelope(c, [&pending](const Outcome&) { pending.fetch_sub(1); });
    pending.fetch_add(1);
    for (Status s; !(s = built->sink->submit(env));) {
      if (s.code() != StatusCode::kUnavailable) {
        std::fprintf(stderr, "command %s refused: %s\n", c.command_id().c_str(), s.to_string().c_str());
        std::exit(1);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  // Done when nothing is in flight and the saga has handled everything it has read, for
  // 2 s in a row, longer than the feed's slowest idle poll (its follow-up commands would
  // be in flight otherwise).
  auto last_idle = Clock::now();
  for (int stable = 0; stable < 8;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    const bool idle = pending.load() == 0 && built->sink->in_flight() == 0 && saga->head() == *saga->load_checkpoint("saga");
    if (idle && stable == 0) last_idle = Clock::now();
    stable = idle ? stable + 1 : 0;
  }
  const double seconds = std::chrono::duration<double>(last_idle - t0).count();
  for (const auto& n : p.metrics().snapshot().nodes)
    if (n.kind == "commit") r.commands = n.out;
  r.commands_per_s = static_cast<double>(r.commands) / seconds;
  const double total = gauge(p, "request_units_total");
  r.ru_per_order = total / orders;
  for (const auto& n : p.metrics().snapshot().nodes)
    if (n.id == "cosmos") r.requests_per_order = static_cast<double>(n.in) / orders;
  r.ru_per_command = total / static_cast<double>(std::max<uint64_t>(1, r.commands));
  r.commands_per_document = gauge(p, "commands_per_document");
  for (const auto& n : p.metrics().snapshot().nodes)
    if (n.id == "cosmos")
      for (const auto& [k, v] : n.gauges)
        if (k.rfind("ru_", 0) == 0 && k != "ru_per_command") r.ru_by_op[k.substr(3)] = v;
  // The change feed's cost while nothing happens: polls of every range by every subscriber.
  const double before = gauge(p, "request_units_total");
  std::this_thread::sleep_for(std::chrono::seconds(2));
  r.idle_ru_per_s = (gauge(p, "request_units_total") - before) / 2;
  p.shutdown();
  return r;
}

// Documents created per second by a plain client, `concurrency` requests at a time, on a
// stand-in of its own (bench/cosmos_baseline.cc, as `orderflow bench` measures it).
double raw_creates_per_s(int ranges, int latency_ms, int docs, int concurrency) {
  orderflow::testing::CosmosStandIn standin(orderflow::testing::CosmosStandIn::Options{ranges, "", "", latency_ms});
  connectors::CosmosOptions co;
  co.endpoint = standin.endpoint();
  co.key = standin.key();
  auto raw = bench::raw_cosmos_creates_baseline(co, "raw", static_cast<uint64_t>(docs), concurrency);
  if (!raw) {
    std::fprintf(stderr, "raw baseline: %s\n", raw.status().to_string().c_str());
    std::exit(1);
  }
  if (raw->failed > 0) std::fprintf(stderr, "raw baseline: %llu creates failed\n", static_cast<unsigned long long>(raw->failed));
  return raw->events_per_s;
}

}  // namespace

int main(int argc, char** argv) {
  int orders = 400, runs = 3, ranges = 4, latency_ms = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--orders") orders = std::atoi(argv[i + 1]);
    else if (a == "--runs") runs = std::atoi(argv[i + 1]);
    else if (a == "--ranges") ranges = std::atoi(argv[i + 1]);
    else if (a == "--latency-ms") latency_ms = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: cosmos_bench [--orders N] [--runs R] [--ranges P] [--latency-ms L]\n");
      return 2;
    }
  }
  std::printf("orderflow cosmos_bench: graphs/orders-cosmos.yaml on the stand-in, %d orders (+40 stock commands "
              "+ saga follow-ups), %d partition key ranges, %d ms added per request, median of %d runs, %u cores\n",
              orders, ranges, latency_ms, runs, std::thread::hardware_concurrency());
  std::vector<double> raws;
  for (int i = 0; i < runs; ++i) raws.push_back(raw_creates_per_s(ranges, latency_ms, 2000, 16));
  std::sort(raws.begin(), raws.end());
  const double raw = raws[raws.size() / 2];
  std::printf("baseline: raw document creates, 16 at a time: %.0f/s\n", raw);
  std::printf("%-44s %12s %10s %12s %12s %12s %14s\n", "configuration", "commands/s", "vs raw", "requests/order",
              "RU/order", "RU/command", "idle RU/s");
  for (bool batching : {false, true}) {
    std::vector<Run> all;
    for (int i = 0; i < runs; ++i) all.push_back(run_once(batching, orders, ranges, latency_ms, "r" + std::to_string(i) + "-"));
    std::sort(all.begin(), all.end(), [](const Run& a, const Run& b) { return a.commands_per_s < b.commands_per_s; });
    const Run& m = all[all.size() / 2];
    std::printf("%-44s %12.0f %10.2f %12.1f %12.1f %12.1f %14.1f\n",
                batching ? "batching (max_batch 256, 32 requests at once)" : "no batching (max_batch 1, 1 request)",
                m.commands_per_s, m.commands_per_s / raw, m.requests_per_order, m.ru_per_order, m.ru_per_command,
                m.idle_ru_per_s);
    std::printf("    RU by operation:");
    for (const auto& [op, ru] : m.ru_by_op) std::printf(" %s %.0f", op.c_str(), ru);
    std::printf("  (commands committed %llu, %.2f per document)\n", static_cast<unsigned long long>(m.commands),
                m.commands_per_document);
  }
  return 0;
}
