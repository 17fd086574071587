// Cost of a node's counters per message, as the pipeline pays it: a message counted in and
// out and through the queue gauge, by 1..4 threads at once (lanes and commit count one
// command from two or three threads). Baseline in the same run: the same four counters on
// one shared cache line (NodeProbe's layout before it striped them per thread).
//   build/bench/probe_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <atomic>

#include "graph/metrics.h"

namespace {

struct SharedLine {
  std::atomic<uint64_t> in{0}, out{0}, busy_ns{0};
  std::atomic<int64_t> queue{0};
};

SharedLine shared_line;
orderflow::NodeProbe probe("lanes", "command_lane");

void BM_SharedLine(benchmark::State& state) {
  for (auto _ : state) {
    shared_line.queue.fetch_add(1, std::memory_order_relaxed);
    shared_line.in.fetch_add(1, std::memory_order_relaxed);
    shared_line.queue.fetch_add(-1, std::memory_order_relaxed);
    shared_line.busy_ns.fetch_add(100, std::memory_order_relaxed);
    shared_line.out.fetch_add(1, std::memory_order_relaxed);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_NodeProbe(benchmark::State& state) {
  for (auto _ : state) {
    probe.queue_add(1);
    probe.add_in();
    probe.queue_add(-1);
    probe.add_busy_ns(100);
    probe.add_out();
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) benchmark::DoNotOptimize(probe.out());
}

BENCHMARK(BM_SharedLine)->ThreadRange(1, 4)->UseRealTime();
BENCHMARK(BM_NodeProbe)->ThreadRange(1, 4)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
