// Turns a validated GraphDef into a ready-to-start Pipeline, generically: each node is made
// by its kind's factory (KindSpec::factory, or an override in BuildOptions), and each edge
// is wired by RuntimeNode::connect_to of its upstream node. There is no list of kind
// pairs: an edge whose port types validate() accepted is connected, or the build fails
// with the reason (never silently skipped).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "graph/definition.h"
#include "graph/envelope.h"
#include "graph/pipeline.h"
#include "graph/store.h"

namespace orderflow {

struct BuildOptions {
  int threads = 0;                                      // TBB threads; 0 = all cores
  std::string service;                                  // build only nodes of this service ("" = all)
  // kind -> factory, instead of the kind's registered one: a process gives a kind what only
  // it knows (the server's HTTP flags and readiness, a test's fault injection).
  std::map<std::string, graph::NodeFactory> factories;
};

// What a factory may use while its node is made. Lives for the build only.
struct BuildContext {
  const graph::GraphDef& graph;
  const graph::KindRegistry& kinds;
  Pipeline& pipeline;
  StoreProvider& stores;
  const Domain& domain;                                 // the graph's `domain:`
  const BuildOptions& options;
};

// The built pipeline plus the handles servers and tests need.
struct BuiltPipeline {
  std::unique_ptr<Pipeline> pipeline;
  // Where in-process callers submit: the first node (in file order) that takes commands.
  CommandSink* sink = nullptr;
  const Domain* domain = nullptr;
};

Result<BuiltPipeline> build_pipeline(const graph::GraphDef& def, const graph::KindRegistry& kinds,
                                     StoreProvider& stores, const BuildOptions& options);

}  // namespace orderflow
