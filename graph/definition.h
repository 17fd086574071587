// Graph definitions: the typed model of a graphs/*.yaml file, its loader and validator.
//
// A GraphDef is a plain value built by load_graph_file()/load_graph_string(); it owns
// everything it holds and is not tied to any running pipeline. validate() checks it
// against a KindRegistry (the node kinds the binary knows, registered by nodes/) and
// reports every problem at once, each with file:line:column. Nothing here starts a
// thread; all functions are thread-compatible (no shared mutable state).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "graph/status.h"

namespace orderflow {
class Domain;
class RuntimeNode;
struct BuildContext;  // graph/build.h
}  // namespace orderflow

namespace orderflow::graph {

// Position of a YAML element, 1-based (0 = unknown).
struct Mark {
  int line = 0;
  int column = 0;
};

// One "file:line:column: message" problem.
struct Diagnostic {
  std::string file;
  Mark mark;
  std::string message;
  std::string to_string() const;  // "file:line:col: error: message"
};

// `text` with its control bytes (0x00-0x1f, 0x7f) written as \n, \r, \t or \xNN: messages
// that quote a graph file (ids, kinds, values, YAML errors) stay one readable line and put
// nothing raw on a terminal. Diagnostics hold their messages escaped so.
std::string escape_control_bytes(std::string_view text);

// A scalar parameter as written in the YAML, typed later by validate().
struct ParamValue {
  std::string text;     // the scalar as written (sequences/maps are errors)
  bool is_scalar = true;
  Mark mark;            // position of the value
  Mark key_mark;        // position of the key
};

struct StoreDef {
  std::string name;                        // key under `stores:`
  std::string kind;                        // "rocksdb" | "memory"
  std::map<std::string, ParamValue> params;
  Mark mark;
};

struct NodeDef {
  std::string id;
  std::string kind;
  std::string service;                     // optional; empty = every service
  std::map<std::string, ParamValue> params;
  Mark mark;        // position of the node's map
  Mark kind_mark;   // position of the kind value

  // Typed access after validate() succeeded (defaults from the kind spec applied).
  std::string get_string(const std::string& name) const;
  int64_t get_int(const std::string& name) const;
  bool get_bool(const std::string& name) const;
  double get_double(const std::string& name) const;
  bool has(const std::string& name) const { return params.count(name) > 0; }
  // Whether a process started with `--service service` builds this node ("" = all).
  bool runs_in(const std::string& service) const {
    return service.empty() || this->service.empty() || this->service == service;
  }
};

struct EdgeDef {
  std::string from;
  std::string to;
  Mark mark;
};

struct GraphDef {
  std::string file;                        // for diagnostics; "<string>" when loaded from text
  std::string name;                        // top-level `graph:` key
  std::string domain;                      // top-level `domain:` key; "" = the binary's default
  Mark domain_mark;
  std::map<std::string, StoreDef> stores;
  std::vector<NodeDef> nodes;              // in file order
  std::vector<EdgeDef> edges;              // in file order
  Mark nodes_mark;                         // the `nodes:` key (for a graph without nodes)

  const NodeDef* find_node(const std::string& id) const;
  std::vector<const NodeDef*> successors(const std::string& id) const;
  std::vector<const NodeDef*> predecessors(const std::string& id) const;
};

// What flows on a port. Edges must connect an output to an input of the same type.
enum class PortType {
  kNone = 0,   // the node has no such port
  kCommand,    // command envelopes (sources, saga -> route)
  kRouted,     // commands assigned to a lane by stream (route -> lanes): only a route makes them
  kDecision,   // decided events awaiting commit (lanes -> commit)
  kCommitted,  // store-mediated link: commit -> change feed
  kEvent,      // committed events from the change feed (feed -> subscribers)
};
const char* port_type_name(PortType t);
// An edge of this type is no in-process channel: the downstream node reads what the
// upstream one wrote to a store (commit -> change_feed). Only such edges may cross services.
inline bool store_mediated(PortType t) { return t == PortType::kCommitted; }

// Strict scalar parsing shared by validate() and the NodeDef getters, so both agree on
// what a valid value is: the whole text must parse. Booleans accept true/false, yes/no,
// on/off (any case); doubles must be finite. Return false on malformed input.
bool parse_int(const std::string& text, int64_t* out);
bool parse_bool(const std::string& text, bool* out);
bool parse_double(const std::string& text, double* out);

enum class ParamType { kString, kInt, kBool, kDouble, kEnum, kStoreRef };

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::kString;
  bool required = false;
  std::string default_value;               // applied when absent and not required
  int64_t min = INT64_MIN;                 // kInt only
  int64_t max = INT64_MAX;
  std::vector<std::string> choices;        // kEnum only
  std::string help;
  // A further check of a value that has the right type: "" = fine, else the reason. Set by
  // the library that uses the value (e.g. the Cosmos DB client for `endpoint`).
  std::function<std::string(const std::string&)> check;
};

// Parameter declarations for kinds, e.g. p_int("lanes", "8", 1, 256, "serial command lanes").
ParamSpec p_int(std::string name, std::string def, int64_t min, int64_t max, std::string help);
ParamSpec p_string(std::string name, std::string def, std::string help);  // def "" + required: see p_required
ParamSpec p_required(std::string name, std::string help);                  // a string without default
ParamSpec p_store(std::string name, std::string help);                     // a required store name
ParamSpec p_bool(std::string name, std::string def, std::string help);
ParamSpec p_enum(std::string name, std::string def, std::vector<std::string> choices, std::string help);

// Creates a node of a kind from its validated definition (defaults applied). Wiring comes
// later: the builder calls RuntimeNode::connect_to for each edge.
using NodeFactory =
    std::function<Result<std::unique_ptr<RuntimeNode>>(const NodeDef& def, orderflow::BuildContext& context)>;

// When a node is drained at shutdown, relative to the others: lower first (sources stop
// before what they feed, and commit drains last, after everything that submits to it).
enum class DrainOrder { kIngest = 0, kSubscriber = 1, kAdmission = 2, kDecision = 3, kCommit = 4 };

struct KindSpec {
  std::string name;
  std::string help;
  PortType input = PortType::kNone;
  PortType output = PortType::kNone;
  bool is_source = false;                  // roots for reachability (http, kafka, demo)
  // The node cannot run without a successor on its output port (a route without lanes
  // would accept commands and never decide them): validate() refuses a graph without one.
  bool output_required = false;
  std::vector<ParamSpec> params;
  NodeFactory factory;                     // null: the kind can be validated, not built
  DrainOrder drain = DrainOrder::kIngest;
};

// The node kinds and store kinds a binary knows. Filled at start-up, then read-only.
class KindRegistry {
 public:
  void add_node_kind(KindSpec spec);
  void add_store_kind(KindSpec spec);       // ports unused for stores
  const KindSpec* node_kind(const std::string& name) const;
  const KindSpec* store_kind(const std::string& name) const;
  // Adds a check to a registered store kind's parameter (no-op when either is unknown).
  void set_store_param_check(const std::string& kind, const std::string& param,
                             std::function<std::string(const std::string&)> check);
  std::vector<std::string> node_kind_names() const;
  std::vector<std::string> store_kind_names() const;

  // Domains a graph may name with `domain:`. The first one added is the default, for a
  // graph that names none.
  void add_domain(std::shared_ptr<const Domain> domain);
  // Null when unknown; "" = the default (null when none was added).
  const Domain* domain(const std::string& name) const;
  std::vector<std::string> domain_names() const;

 private:
  std::map<std::string, KindSpec> nodes_;
  std::map<std::string, KindSpec> stores_;
  std::vector<std::shared_ptr<const Domain>> domains_;
};

struct LoadResult {
  GraphDef graph;
  std::vector<Diagnostic> diagnostics;     // empty = valid
  bool ok() const { return diagnostics.empty(); }
};

// Parses YAML into a GraphDef. Syntax errors and structural problems (missing `nodes`,
// a node without id/kind, malformed edges, unknown top-level keys) become diagnostics.
LoadResult load_graph_string(const std::string& text, const std::string& file = "<string>");
LoadResult load_graph_file(const std::string& path);

// Checks a loaded graph against the registry, appends every problem to `out`, and fills
// in defaults for absent optional parameters. Returns true when nothing was found.
bool validate(GraphDef& graph, const KindRegistry& registry, std::vector<Diagnostic>& out);

// load + validate in one call: what `orderflow validate` and `serve` use.
LoadResult load_and_validate(const std::string& path, const KindRegistry& registry);

// Graphviz DOT of the graph: nodes labelled "id\nkind", store-mediated edges dashed.
std::string to_dot(const GraphDef& graph, const KindRegistry& registry);

}  // namespace orderflow::graph

namespace orderflow::graph {

// The topology as JSON for GET /api/v1/graph and the monitor, the whole graph as declared:
// {"name", "service" (this process's, "" = all),
//  "nodes":[{"id","kind","service","running","input","output","source","params":{}}],
//  "edges":[{"from","to","type","storeMediated"}]}; `running` is false for a node of
// another service (it runs, and reports its metrics, in another process).
std::string to_json(const GraphDef& graph, const KindRegistry& registry, const std::string& service = "");

}  // namespace orderflow::graph
