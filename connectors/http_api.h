// The HTTP API node (`kind: http_source`), served by connectors/http_server (Boost.Beast).
//
// Ingest: POST /api/v1/commands (JSON mapping of the domain's command message), answered
// once the command's outcome is durable (202, or 200/409/422 with ?wait=committed).
// Queries: the domain's (Domain::queries: GET /api/v1/{collection}/{id}, e.g. orders and
// inventory), paged stream events, health, readiness, metrics, graph topology.
// Requests run on the server's small I/O pool and never block it: replies are sent from the
// pipeline's completion (or the deadline watcher). Owned by the Pipeline.
//
// Authentication: bearer tokens with a role, `read` (queries, metrics, graph) or `write`
// (commands, and everything `read` may), from --token-file or the environment variables
// ORDERFLOW_WRITE_TOKEN / ORDERFLOW_READ_TOKEN, never from the graph file. /healthz and
// /readyz are open. Without tokens the API is open only on a loopback address.
//
// Admin: /api/v1/admin/... from HttpApiContext::admin_routes (GET: read role, POST: write
// role), each handler run on the node's admin thread; none registered = 404.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph/definition.h"
#include "graph/pipeline.h"
#include "graph/store.h"
#include "graph/build.h"
#include "graph/options.h"

namespace orderflow::connectors {

// The `serve` flags of the HTTP API (none of them can be set in the graph file).
struct HttpServeOptions {
  std::string token_file;      // --token-file PATH: lines "read TOKEN" / "write TOKEN", '#' comments
  bool insecure_no_auth = false;  // --insecure-no-auth: allow no tokens on a non-loopback address
  std::string tls_cert;        // --tls-cert PEM (with --tls-key; needed for https:// listen addresses)
  std::string tls_key;         // --tls-key PEM
  std::string tls_client_ca;   // --tls-client-ca PEM: require client certificates signed by it
  // --http-option NAME=VALUE, limits of connectors/http_server.h: max_connections,
  // max_header_bytes, max_header_fields, header_timeout_ms, body_timeout_ms, idle_timeout_ms,
  // write_timeout_ms, io_threads.
  std::vector<std::pair<std::string, int64_t>> limits;
};

// Consumes args[*i] (and its value, advancing *i) if it is one of the flags above: true if
// it was, false if it is not an HTTP flag, an error when its value is bad.
Result<bool> parse_http_flag(const std::vector<std::string>& args, size_t* i, HttpServeOptions* out);

// The http_source kind's options as a graph file sets them, with their defaults.
struct HttpSourceOptions {
  std::string listen = "127.0.0.1:8080";  // host:port (or https://host:port) of the HTTP API
  int64_t max_body_bytes = 65536;         // larger bodies get 413
  int64_t command_timeout_ms = 30000;     // a command's deadline (X-Timeout-Ms may ask for less)
};
const graph::Options<HttpSourceOptions>& http_source_options();

// ---- admin routes ------------------------------------------------------------------
// The HTTP API serves /api/v1/admin/... from a table its owner fills (the server: see
// server/admin.h); connectors/ knows no feed, repair or Kafka tool behind it.

// One admin request, as the handler sees it.
struct AdminRequest {
  std::vector<std::string> params;          // the path segments the route's "*" matched, decoded
  std::map<std::string, std::string> query;  // decoded query parameters (each given once)
  std::string body;                         // the request body (JSON when not empty)
};

// An admin answer: 200 with `body` (a JSON document), or an error status with `error`,
// sent as the API's error body {"error": {"code", "message"}}.
struct AdminReply {
  int status = 200;
  std::string body;
  std::string error;
  static AdminReply json(std::string body) { return AdminReply{200, std::move(body), ""}; }
  static AdminReply fail(int status, std::string message) { return AdminReply{status, "", std::move(message)}; }
};

// A handler may block (it waits for a change feed to pause, or for Kafka): the API runs it
// on its own admin thread, one request at a time, never on the I/O threads; unless its
// route says it answers at once.
using AdminHandler = std::function<AdminReply(const AdminRequest&)>;

struct AdminRoute {
  std::string method;             // "GET" (needs the read role) or "POST" (needs the write role)
  std::vector<std::string> path;  // segments after /api/v1/admin; "*" matches any one segment
  AdminHandler handler;
  // false: the handler never waits (in-memory state, a local store read, as the query
  // routes do): it runs on the I/O thread, not queued behind a slow admin request. Default true.
  bool blocks = true;
};

struct HttpApiContext {
  // Null: those of the nearest node downstream that names an `events` / `snapshots` store.
  EventStore* events = nullptr;        // for /streams/{id}/events and duplicate replies
  SnapshotStore* snapshots = nullptr;  // for the domain's queries (/orders/{id}, ...)
  std::string graph_json;              // served at /api/v1/graph
  // Readiness beyond "listening": the stores' health (StoreSet::health); null = always ok.
  // Called on every GET /readyz: must not block.
  std::function<Status()> health;
  HttpServeOptions options;
  // /api/v1/admin/...: none by default (404).
  std::vector<AdminRoute> admin_routes;
};

Result<std::unique_ptr<RuntimeNode>> make_http_source(const graph::NodeDef& def, BuildContext& build,
                                                      HttpApiContext context);

// Turns "host:port", "http://host:port" or "https://host:port" (IPv6 as [::1]:port) into the
// listen URI; error when malformed.
Result<std::string> listen_uri(const std::string& listen);

}  // namespace orderflow::connectors
