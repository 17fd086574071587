#include "graph/pipeline.h"

#include <thread>

namespace orderflow {

Pipeline::Pipeline(int threads)
    : threads_(threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency())) {
  // No application thread joins the graph's arena (sources, the commit writer and the
  // feeds are plain threads that only put), so all node bodies run on TBB workers, and
  // oneTBB counts one slot for a joining thread: N workers need a limit of N + 1. Also
  // for the default: oneTBB's own limit is one worker less than the cores, so "one per
  // core" ran one worker fewer than the log said (and oneTBB printed a warning).
  control_ = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                   static_cast<size_t>(threads_) + 1);
  // A graph lives in the arena it is created in. The implicit arena of the creating thread
  // reserves a slot for that thread, which never runs node bodies: on 2 cores only one
  // worker ran them, whatever --threads said. An arena with no reserved slot gets N workers.
  arena_.initialize(threads_, 0);
  arena_.execute([this] { graph_ = std::make_unique<tbb::flow::graph>(); });
}

Pipeline::~Pipeline() { shutdown(); }

RuntimeNode* Pipeline::find(const std::string& id) const {
  for (const auto& n : nodes_)
    if (n->id() == id) return n.get();
  return nullptr;
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
