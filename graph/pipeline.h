// Pipeline: owns the tbb::flow::graph, the TBB thread limit and every runtime node (RAII).
//
// Lifecycle: add nodes upstream first (the builder does); start() starts them in reverse
// (downstream first); shutdown() stops intake everywhere, drains each node in insertion
// order (in-flight commands reach durable commit), waits for the TBB graph, then stops
// the nodes. The destructor calls shutdown() if it was not called. start() and shutdown()
// are called from one control thread; nodes are thread-safe as they document.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_scheduler_observer.h>

#include "graph/metrics.h"
#include "graph/status.h"

namespace orderflow {

// Names the calling thread for `top -H`, perf and debuggers (Linux keeps 15 characters).
void name_thread(const std::string& name);

class RuntimeNode {
 public:
  RuntimeNode(std::string id, std::string kind, std::shared_ptr<NodeProbe> probe)
      : id_(std::move(id)), kind_(std::move(kind)), probe_(std::move(probe)) {}
  virtual ~RuntimeNode() = default;
  RuntimeNode(const RuntimeNode&) = delete;
  RuntimeNode& operator=(const RuntimeNode&) = delete;

  const std::string& id() const { return id_; }
  const std::string& kind() const { return kind_; }
  NodeProbe& probe() { return *probe_; }

  virtual Status start() { return Status::ok(); }
  // Stop taking new work from outside (listeners close, feeds finish their batch).
  virtual void stop_intake() {}
  // Block until work already accepted has left this node, or the deadline passes.
  virtual void drain(std::chrono::steady_clock::time_point /*deadline*/) {}
  // Release threads and resources; no work arrives any more.
  virtual void stop() {}

  // Whether the node does its work now, as its latest attempts found it (no I/O, no
  // blocking): not ok, with the reason, while it keeps failing (a feed subscriber that has
  // redelivered for seconds, ...). Readiness reports it. Thread-safe.
  virtual Status health() const { return Status::ok(); }

  // Wiring, by the builder before start(): this node's output port feeds `to`'s input port
  // for one edge of the graph (validate() checked that their port types match). Each kind
  // finds the interface of its port type on `to` (a CommandSink for commands, ...). The
  // default refuses: the kind has no in-process output.
  virtual Status connect_to(RuntimeNode& to);

 private:
  const std::string id_, kind_;
  std::shared_ptr<NodeProbe> probe_;
};

class Pipeline {
 public:
  // threads: TBB worker threads that run node bodies; 0 = oneTBB's default (one per core
  // the process may run on). Several live pipelines each get their own count of workers.
  explicit Pipeline(int threads = 0);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  tbb::flow::graph& graph() { return *graph_; }
  MetricsRegistry& metrics() { return metrics_; }
  int threads() const { return threads_; }

  template <typename T>
  T* add(std::unique_ptr<T> node) {
    T* raw = node.get();
    nodes_.push_back(std::move(node));
    return raw;
  }
  RuntimeNode* find(const std::string& id) const;
  const std::vector<std::unique_ptr<RuntimeNode>>& nodes() const { return nodes_; }

  Status start();
  // The first unhealthy node's health, named ("node projection: ..."), or ok. Thread-safe
  // once started (the node list no longer changes).
  Status health() const;
  void shutdown(std::chrono::milliseconds drain_timeout = std::chrono::seconds(30));

 private:
  int threads_;
  // The graph's own arena: `threads_` slots, none reserved for an application thread,
  // so every slot can hold a worker (see the constructor).
  tbb::task_arena arena_;
  // Names the oneTBB workers that join the arena "of-worker". A new thread inherits its
  // creator's name, and oneTBB creates workers from whichever thread first needs them (a
  // feed subscriber's, say): without this, profiles and `orderflow bench`'s CPU by thread
  // counted the workers as that thread.
  class WorkerNames final : public tbb::task_scheduler_observer {
   public:
    explicit WorkerNames(tbb::task_arena& arena) : tbb::task_scheduler_observer(arena) { observe(true); }
    ~WorkerNames() override { observe(false); }
    void on_scheduler_entry(bool worker) override;
  };
  std::unique_ptr<WorkerNames> worker_names_;
  MetricsRegistry metrics_;
  std::unique_ptr<tbb::flow::graph> graph_;
  std::vector<std::unique_ptr<RuntimeNode>> nodes_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace orderflow
