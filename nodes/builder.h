// Turns a validated GraphDef into a running-ready Pipeline.
//
// register_node_kinds() declares every node kind this binary knows (ports, parameters,
// defaults) for the validator; build_pipeline() instantiates the nodes and wires them by
// the graph's edges. Kinds implemented outside nodes/ (http_source, later kafka) are
// passed in as factories, so nodes/ needs no connector library.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "graph/definition.h"
#include "graph/pipeline.h"
#include "graph/store.h"
#include "nodes/envelope.h"

namespace orderflow {

void register_node_kinds(graph::KindRegistry& registry);

// Creates a source node; `sink` is where its commands go (the route it feeds).
using SourceFactory = std::function<Result<std::unique_ptr<RuntimeNode>>(
    const graph::NodeDef& def, Pipeline& pipeline, CommandSink* sink)>;

class FeedSubscriber;

// Creates a change-feed subscriber (kafka_sink, ...): the node the pipeline owns and its
// subscriber interface (usually the same object).
struct ExternalSubscriber {
  std::unique_ptr<RuntimeNode> node;
  FeedSubscriber* subscriber = nullptr;
};
using SubscriberFactory = std::function<Result<ExternalSubscriber>(const graph::NodeDef& def, Pipeline& pipeline)>;

struct BuildOptions {
  int threads = 0;                                   // TBB threads; 0 = all cores
  std::string service;                               // run only nodes of this service ("" = all)
  std::map<std::string, SourceFactory> factories;    // kind -> factory for external sources
  std::map<std::string, SubscriberFactory> subscriber_factories;  // kind -> external feed subscribers
};

// The built pipeline plus the handles servers and tests need.
struct BuiltPipeline {
  std::unique_ptr<Pipeline> pipeline;
  CommandSink* sink = nullptr;   // the (first) route: where in-process callers submit
};

Result<BuiltPipeline> build_pipeline(const graph::GraphDef& def, StoreProvider& stores,
                                     const BuildOptions& options);

}  // namespace orderflow
