// The HTTP API node (`kind: http_source`), on cpprestsdk's http_listener.
//
// Ingest: POST /api/v1/commands (JSON mapping of orderflow.v1.Command), answered once the
// command's outcome is durable (202, or 200/409/422 with ?wait=committed).
// Queries: orders, inventory, stream events, health, readiness, metrics, graph topology.
// The listener's handlers run on cpprestsdk's thread pool (size it with
// crossplat::threadpool::initialize_with_threads before the first listener opens) and never
// block: replies are sent from the pipeline's completion. Owned by the Pipeline.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "graph/definition.h"
#include "graph/pipeline.h"
#include "graph/store.h"
#include "nodes/envelope.h"

namespace orderflow::connectors {

struct HttpApiContext {
  EventStore* events = nullptr;        // for /streams/{id}/events and duplicate replies
  SnapshotStore* snapshots = nullptr;  // for /orders and /inventory
  std::string graph_json;              // served at /api/v1/graph
  // Readiness beyond "listening": the stores' health (StoreSet::health); null = always ok.
  // Called on every GET /readyz: must not block.
  std::function<Status()> health;
};

Result<std::unique_ptr<RuntimeNode>> make_http_source(const graph::NodeDef& def, Pipeline& pipeline,
                                                      CommandSink* sink, HttpApiContext context);

// Turns "host:port" (or a full http:// URI) into the listener URI; error when malformed.
Result<std::string> listen_uri(const std::string& listen);

}  // namespace orderflow::connectors
