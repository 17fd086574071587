// The admin API of `orderflow serve`: the routes the server registers with its HTTP API
// (connectors/http_api.h, HttpApiContext::admin_routes), backed by the running pipeline.
//
//   GET  /api/v1/admin/subscribers                     each change feed subscriber: checkpoint, head,
//                                                      behind, kind, whether it can be reset
//   POST /api/v1/admin/subscribers/{id}/reset          {"position":N} or {"time":ISO8601}: moves its
//                                                      checkpoint while the server runs
//   POST /api/v1/admin/projections/{id}/rebuild        drops its snapshots and re-folds it from 0
//   GET  /api/v1/admin/dead-letters[?node&limit&partition&from_offset]
//                                                      the kafka_sources' dead letters (parked ones marked)
//   GET  /api/v1/admin/dead-letters/{partition}/{offset}[?node]
//                                                      one in full (`orderflow dlq inspect --server`)
//   POST /api/v1/admin/dead-letters/replay             {"node","partition","offset"} or {"node","all":true}
//
// GETs need the read role, POSTs the write role (when tokens are configured). A reset or a
// rebuild pauses the change feed's delivery to that subscriber between batches
// (FeedControl, graph/feed.h), lets its outstanding batches finish, moves the checkpoint
// (a rebuild clears the snapshot store first and drops the projection's in-memory states)
// and resumes; the answer comes once that is applied. Other subscribers keep running.
// Dead letters use the same code as `orderflow dlq` (server/dlq_core.h), with the brokers
// of the graph as served (a mock:N cluster is the one this process runs).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "connectors/http_api.h"
#include "graph/definition.h"
#include "graph/pipeline.h"
#include "graph/store.h"

namespace orderflow::server {

// What the admin routes use. The graph, registry and stores outlive the server's HTTP node;
// `pipeline` is null until the pipeline is built.
struct AdminContext {
  const graph::GraphDef* def = nullptr;
  const graph::KindRegistry* registry = nullptr;
  StoreProvider* stores = nullptr;
  std::string instance_id;
  const std::atomic<Pipeline*>* pipeline = nullptr;
};

std::vector<connectors::AdminRoute> admin_routes(const AdminContext& context);

}  // namespace orderflow::server
