#include "graph/pipeline.h"

#include <pthread.h>

#include <algorithm>
#include <mutex>
#include <thread>

#include <oneapi/tbb/info.h>

namespace orderflow {

void name_thread(const std::string& name) { pthread_setname_np(pthread_self(), name.substr(0, 15).c_str()); }

Status RuntimeNode::connect_to(RuntimeNode& to) {
  return Status::internal("node " + id_ + " (kind " + kind_ + ") has no output to connect to node " + to.id());
}

namespace {

// oneTBB caps the workers of the whole process at the smallest max_allowed_parallelism of
// all live global_control objects, and by default at one less than the cores. No
// application thread joins a graph's arena (sources, the commit writer and the feeds are
// plain threads that only put), so every pipeline's N threads are N workers, and oneTBB
// counts one slot for a joining thread: one control, sized for every live pipeline
// (sum of their threads + 1), replaced as pipelines come and go.
std::mutex g_workers_mu;
int g_workers = 0;
std::unique_ptr<tbb::global_control> g_workers_control;

void reserve_workers(int delta) {
  std::lock_guard lock(g_workers_mu);
  g_workers = std::max(0, g_workers + delta);
  if (g_workers == 0) {
    g_workers_control.reset();
    return;
  }
  // The new one exists before the old one goes, so the limit never lapses to the default.
  auto next = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                    static_cast<size_t>(g_workers) + 1);
  g_workers_control = std::move(next);
}

}  // namespace

Pipeline::Pipeline(int threads)
    // The default follows oneTBB's, which respects the process's CPU affinity (taskset,
    // cpusets), unlike std::thread::hardware_concurrency.
    : threads_(threads > 0 ? threads : std::max(1, tbb::info::default_concurrency())) {
  reserve_workers(threads_);
  // A graph lives in the arena it is created in. The implicit arena of the creating thread
  // reserves a slot for that thread, which never runs node bodies: on 2 cores only one
  // worker ran them, whatever --threads said. An arena with no reserved slot gets N workers.
  arena_.initialize(threads_, 0);
  worker_names_ = std::make_unique<WorkerNames>(arena_);
  arena_.execute([this] { graph_ = std::make_unique<tbb::flow::graph>(); });
}

void Pipeline::WorkerNames::on_scheduler_entry(bool worker) {
  // Workers only (not an application thread entering the arena), once per thread: workers
  // enter the arena each time they wake.
  thread_local bool named = false;
  if (worker && !named) {
    name_thread("of-worker");
    named = true;
  }
}

Pipeline::~Pipeline() {
  shutdown();
  reserve_workers(-threads_);
}

RuntimeNode* Pipeline::find(const std::string& id) const {
  for (const auto& n : nodes_)
    if (n->id() == id) return n.get();
  return nullptr;
}

Status Pipeline::health() const {
  for (const auto& n : nodes_) {
    if (Status s = n->health(); !s) return Status(s.code(), "node " + n->id() + ": " + s.message());
  }
  return Status::ok();
}

Status Pipeline::start() {
  if (started_) return Status::ok();
  started_ = true;
  // Downstream first (the builder adds nodes upstream first), so nothing is sent to a
  // node that is not running yet.
  for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it) {
    auto& n = *it;
    if (auto s = n->start(); !s) {
      return Status(s.code(), "node " + n->id() + ": " + s.message());
    }
  }
  return Status::ok();
}

void Pipeline::shutdown(std::chrono::milliseconds drain_timeout) {
  if (stopped_) return;
  stopped_ = true;
  const auto deadline = std::chrono::steady_clock::now() + drain_timeout;
  for (auto& n : nodes_) n->stop_intake();
  for (auto& n : nodes_) n->drain(deadline);
  graph_->wait_for_all();
  for (auto& n : nodes_) n->stop();
  graph_->wait_for_all();
}

}  // namespace orderflow
