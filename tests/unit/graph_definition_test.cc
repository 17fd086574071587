// Tests for graph definitions: YAML loading, validation diagnostics, defaults, DOT.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "graph/definition.h"
#include "connectors/stores.h"
#include "tests/support/kinds.h"
#include "tests/support/temp_dir.h"

namespace orderflow::graph {
namespace {

ParamSpec int_param(std::string name, std::string def, int64_t min = INT64_MIN,
                    int64_t max = INT64_MAX) {
  return p_int(std::move(name), std::move(def), min, max, "");
}

ParamSpec param(std::string name, ParamType type, std::string def, bool required = false) {
  ParamSpec p;
  p.name = std::move(name);
  p.type = type;
  p.default_value = std::move(def);
  p.required = required;
  return p;
}

ParamSpec store_ref(std::string name) {
  return param(std::move(name), ParamType::kStoreRef, "", /*required=*/true);
}

KindSpec kind(std::string name, PortType in, PortType out, std::vector<ParamSpec> params,
              bool source = false) {
  KindSpec k;
  k.name = std::move(name);
  k.input = in;
  k.output = out;
  k.is_source = source;
  k.params = std::move(params);
  return k;
}

// Mirrors the kinds nodes/ registers in the real binary.
KindRegistry real_kinds() {
  using P = PortType;
  KindRegistry r;
  r.add_node_kind(kind("http_source", P::kNone, P::kCommand,
                       {param("listen", ParamType::kString, "127.0.0.1:8080"),
                        int_param("max_body_bytes", "65536", 256, 16777216)},
                       true));
  r.add_node_kind(kind(
      "demo_source", P::kNone, P::kCommand,
      {int_param("rate", "0", 0), int_param("skus", "200", 1), int_param("seed", "42")}, true));
  r.add_node_kind(kind("route", P::kCommand, P::kCommand,
                       {int_param("lanes", "8", 1, 256), int_param("max_in_flight", "20000", 1)}));
  r.add_node_kind(
      kind("command_lane", P::kCommand, P::kDecision,
           {store_ref("events"), store_ref("snapshots"), int_param("cache_streams", "100000", 1)}));
  r.add_node_kind(kind("commit", P::kDecision, P::kCommitted,
                       {store_ref("events"), int_param("max_batch", "1000", 1, 100000),
                        int_param("max_retries", "8", 0, 1000)}));
  r.add_node_kind(kind(
      "change_feed", P::kCommitted, P::kEvent,
      {store_ref("events"), int_param("batch", "512", 1, 100000), int_param("poll_ms", "50", 1)}));
  r.add_node_kind(kind("projection", P::kEvent, P::kNone, {store_ref("snapshots")}));
  r.add_node_kind(kind("saga", P::kEvent, P::kCommand, {}));
  r.add_store_kind(
      kind("rocksdb", P::kNone, P::kNone,
           {param("path", ParamType::kString, "", true), param("sync", ParamType::kBool, "true")}));
  r.add_store_kind(kind("memory", P::kNone, P::kNone, {}));
  return r;
}

// The real kinds plus a test-only sink exercising the parameter types they do not use.
KindRegistry test_kinds() {
  KindRegistry r = real_kinds();
  ParamSpec mode = param("mode", ParamType::kEnum, "safe");
  mode.choices = {"fast", "safe"};
  r.add_node_kind(kind("tuning", PortType::kCommand, PortType::kNone,
                       {param("ratio", ParamType::kDouble, "0.5"), mode,
                        param("verbose", ParamType::kBool, "false")}));
  return r;
}

const char* kDefaultGraph = R"(graph: orders
stores:
  events:    {kind: rocksdb, path: events}      # path relative to --data-dir
  snapshots: {kind: rocksdb, path: snapshots}
nodes:
  - {id: http, kind: http_source, params: {listen: "127.0.0.1:8080", max_body_bytes: 65536}}
  - {id: route, kind: route, params: {lanes: 8, max_in_flight: 20000}}
  - {id: lanes, kind: command_lane, params: {events: events, snapshots: snapshots, cache_streams: 100000}}
  - {id: commit, kind: commit, params: {events: events, max_batch: 1000, max_retries: 8}}
  - {id: feed, kind: change_feed, params: {events: events, batch: 512}}
  - {id: projection, kind: projection, params: {snapshots: snapshots}}
  - {id: saga, kind: saga}
edges:
  - http -> route
  - route -> lanes
  - lanes -> commit
  - commit -> feed
  - feed -> projection
  - feed -> saga
  - saga -> route
)";

// A valid prefix for the single-check tests: nodes start on line 6.
const char* kPrefix = R"(graph: t
stores:
  events: {kind: memory}
  snapshots: {kind: memory}
nodes:
  - {id: http, kind: http_source}
)";

// load_and_validate() through a real file, removed afterwards.
LoadResult load_and_validate_text(const std::string& name, const std::string& text) {
  auto path = std::filesystem::temp_directory_path() /
              ("orderflow_gdt_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(path) << text;
  LoadResult result = load_and_validate(path.string(), real_kinds());
  std::filesystem::remove(path);
  return result;
}

// load + validate a string; the loader must have found nothing.
std::vector<Diagnostic> check(const std::string& text, GraphDef* out = nullptr) {
  LoadResult r = load_graph_string(text, "g.yaml");
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.diagnostics[0].to_string());
  std::vector<Diagnostic> diags;
  validate(r.graph, test_kinds(), diags);
  if (out != nullptr) *out = r.graph;
  return diags;
}

std::string dump(const std::vector<Diagnostic>& diags) {
  std::string s;
  for (const Diagnostic& d : diags) s += "\n  " + d.to_string();
  return s;
}

// Asserts exactly one diagnostic at line:col contains `text`.
void expect_diag(const std::vector<Diagnostic>& diags, int line, int col, const std::string& text) {
  int hits = 0;
  for (const Diagnostic& d : diags) {
    if (d.mark.line == line && d.mark.column == col && d.message.find(text) != std::string::npos) {
      ++hits;
    }
  }
  EXPECT_EQ(hits, 1) << "want " << line << ":" << col << " '" << text << "' in:" << dump(diags);
}

TEST(GraphDefinition, DefaultGraphLoadsAndValidates) {
  GraphDef g;
  std::vector<Diagnostic> diags = check(kDefaultGraph, &g);
  EXPECT_TRUE(diags.empty()) << dump(diags);
  EXPECT_EQ(g.name, "orders");
  ASSERT_EQ(g.nodes.size(), 7u);
  ASSERT_EQ(g.edges.size(), 7u);
  EXPECT_EQ(g.stores.at("events").kind, "rocksdb");
  EXPECT_EQ(g.stores.at("events").params.at("path").text, "events");
  EXPECT_EQ(g.nodes[1].get_int("lanes"), 8);
  EXPECT_EQ(g.nodes[0].get_string("listen"), "127.0.0.1:8080");
  EXPECT_EQ(g.nodes[1].mark.line, 7);
  EXPECT_EQ(g.nodes[1].mark.column, 5);
  EXPECT_EQ(g.nodes[1].kind_mark.column, 23);
  ASSERT_EQ(g.successors("feed").size(), 2u);
  EXPECT_EQ(g.successors("feed")[1]->id, "saga");
  ASSERT_EQ(g.predecessors("route").size(), 2u);
  EXPECT_EQ(g.predecessors("route")[1]->id, "saga");
  EXPECT_EQ(g.find_node("nope"), nullptr);
}

TEST(GraphDefinition, ShippedOrdersYamlIsValid) {
  auto path = std::filesystem::path(ORDERFLOW_SOURCE_DIR) / "graphs/orders.yaml";
  LoadResult r = load_and_validate(path.string(), real_kinds());
  EXPECT_TRUE(r.ok()) << dump(r.diagnostics);
  EXPECT_EQ(r.graph.nodes.size(), 7u);
}

TEST(GraphDefinition, EveryShippedGraphIsValid) {
  // With the kinds the orderflow binary registers (server/standard.cc).
  KindRegistry binary_kinds;
  orderflow::register_standard_kinds(binary_kinds);
  auto dir = std::filesystem::path(ORDERFLOW_SOURCE_DIR) / "graphs";
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    LoadResult r = load_and_validate(entry.path().string(), binary_kinds);
    EXPECT_TRUE(r.ok()) << entry.path() << "\n" << dump(r.diagnostics);
    ++checked;
  }
  EXPECT_GE(checked, 2);
}

// Every ordered pair of the binary's node kinds joined by one edge: the edge is refused,
// with its line and column, exactly when the output port of the first is not the input
// port of the second. Pairs that pass are the ones the builder wires (route -> lanes only
// through the `routed` port, so a source straight into lanes is refused, not left unwired).
TEST(GraphDefinition, EveryPairOfKindsWithMismatchedPortsIsRefusedWithAPosition) {
  KindRegistry kinds;
  orderflow::register_standard_kinds(kinds);
  auto params_of = [&](const KindSpec& k) {
    std::string p;
    for (const auto& spec : k.params) {
      if (!spec.required && spec.type != ParamType::kStoreRef) continue;
      std::string v;
      switch (spec.type) {
        case ParamType::kStoreRef:  // a saga's `parked` names a snapshot store
          v = spec.name == "snapshots" || spec.name == "parked" ? "snapshots" : "events";
          break;
        case ParamType::kInt: v = std::to_string(std::max<int64_t>(spec.min, 1)); break;
        case ParamType::kEnum: v = spec.choices.at(0); break;
        case ParamType::kBool: v = "true"; break;
        case ParamType::kDouble: v = "1"; break;
        case ParamType::kString: v = spec.name == "brokers" ? "mock:1" : "x"; break;
      }
      p += (p.empty() ? "" : ", ") + spec.name + ": \"" + v + "\"";
    }
    return "{" + p + "}";
  };
  int refused = 0, accepted = 0;
  orderflow::testing::TempDir dir("orderflow-kind-pairs");
  for (const auto& from : kinds.node_kind_names()) {
    const KindSpec* a = kinds.node_kind(from);
    if (a->output == PortType::kNone) continue;
    for (const auto& to : kinds.node_kind_names()) {
      const KindSpec* b = kinds.node_kind(to);
      if (b->input == PortType::kNone) continue;
      const std::string yaml = "graph: pair\n"
                               "stores:\n"
                               "  events: {kind: memory}\n"
                               "  snapshots: {kind: memory}\n"
                               "nodes:\n"
                               "  - {id: a, kind: " + from + ", params: " + params_of(*a) + "}\n"
                               "  - {id: b, kind: " + to + ", params: " + params_of(*b) + "}\n"
                               "edges:\n"
                               "  - a -> b\n";
      LoadResult r = load_graph_string(yaml, "pair.yaml");
      ASSERT_TRUE(r.ok()) << dump(r.diagnostics);
      std::vector<Diagnostic> diags;
      validate(r.graph, kinds, diags);
      const Diagnostic* port = nullptr;
      for (const auto& d : diags)
        if (d.message.find("port type") != std::string::npos) port = &d;
      const bool match = a->output == b->input;
      if (match) {
        EXPECT_EQ(port, nullptr) << from << " -> " << to << ": " << dump(diags);
        ++accepted;
        // ... and the builder wires what validate accepts: each kind from its factory, the
        // edge by connect_to (an in-process edge; a store-mediated one needs no wiring).
        orderflow::connectors::StoreSet stores(r.graph, dir.path());
        auto built = orderflow::build_pipeline(r.graph, kinds, stores, orderflow::BuildOptions{});
        EXPECT_TRUE(built) << from << " -> " << to << ": " << built.status().to_string();
      } else {
        ASSERT_NE(port, nullptr) << from << " -> " << to << " (" << port_type_name(a->output) << " into "
                                 << port_type_name(b->input) << ") was not refused: " << dump(diags);
        EXPECT_EQ(port->mark.line, 9) << port->to_string();
        EXPECT_GT(port->mark.column, 0) << port->to_string();
        ++refused;
      }
    }
  }
  EXPECT_GT(accepted, 5);
  EXPECT_GT(refused, 20);
}

TEST(GraphDefinition, ReportsEveryProblemAtOnceInFileOrder) {
  const std::string text = R"(graph: broken
stores:
  events: {kind: rocksdb, path: events}
  cache: {kind: redis}
nodes:
  - {id: http, kind: http_source, params: {max_body_bytes: 10}}
  - {id: route, kind: route, params: {lane: 8}}
  - {id: lanes, kind: command_lane, params: {events: evts}}
  - {id: commit, kind: commit, params: {events: events}}
  - {id: audit, kind: auditor}
  - {id: route, kind: saga}
  - {id: projection, kind: projection, params: {snapshots: [a, b]}}
edges:
  - http -> route
  - route -> commit
  - route -> lanes
  - lanes -> ghost
  - http -> route
  - {from: projection, to: route}
colour: blue
)";
  LoadResult r = load_and_validate_text("many.yaml", text);
  const auto& d = r.diagnostics;
  expect_diag(d, 4, 10, "unknown store kind 'redis' for store 'cache' (known: memory, rocksdb)");
  expect_diag(d, 6, 60,
              "parameter 'max_body_bytes' must be an integer in [256, 16777216], got '10'");
  expect_diag(d, 7, 39,
              "unknown parameter 'lane' for kind 'route' (known: lanes, max_in_flight)"
              "; did you mean 'lanes'?");
  expect_diag(d, 8, 54,
              "parameter 'events' must be the name of a store declared under 'stores:' "
              "(declared: cache, events), got 'evts'");
  expect_diag(d, 8, 5, "node 'lanes' is missing required parameter 'snapshots'");
  expect_diag(d, 10, 23, "unknown node kind 'auditor' (known: change_feed, command_lane, commit,");
  expect_diag(d, 11, 5, "duplicate node id 'route' (first defined at 7:5)");
  expect_diag(d, 12, 60, "parameter 'snapshots' must be the name of a store");
  expect_diag(d, 12, 5,
              "node 'projection' is unreachable: it has no incoming edge (sources: http)");
  expect_diag(d, 15, 5, "edge route -> commit connects port type 'command' to 'decision'");
  expect_diag(d, 17, 5, "edge lanes -> ghost ends at unknown node 'ghost'");
  expect_diag(d, 18, 5, "duplicate edge http -> route (first at 14:5)");
  expect_diag(d, 19, 5,
              "edge projection -> route: node 'projection' (kind 'projection') has no "
              "output port");
  expect_diag(d, 20, 1, "unknown top-level key 'colour'");
  EXPECT_EQ(d.size(), 14u) << dump(d);
  for (size_t i = 1; i < d.size(); ++i) {
    EXPECT_LE(d[i - 1].mark.line, d[i].mark.line) << "not in file order:" << dump(d);
  }
  EXPECT_EQ(d.front().to_string().substr(d.front().file.size()),
            ":4:10: error: unknown store kind 'redis' for store 'cache' (known: memory, rocksdb)");
}

TEST(GraphDefinition, SyntaxErrorHasPosition) {
  LoadResult r =
      load_graph_string("graph: x\nnodes:\n  - {id: a, kind: route\nedges: []\n", "s.yaml");
  ASSERT_EQ(r.diagnostics.size(), 1u) << dump(r.diagnostics);
  EXPECT_EQ(r.diagnostics[0].file, "s.yaml");
  // yaml-cpp reports where it noticed: at the ':' of the key after the unclosed map.
  EXPECT_EQ(r.diagnostics[0].mark.line, 4);
  EXPECT_EQ(r.diagnostics[0].mark.column, 6);
  EXPECT_NE(r.diagnostics[0].message.find("YAML syntax error: end of map flow not found"),
            std::string::npos)
      << r.diagnostics[0].message;
}

TEST(GraphDefinition, SyntaxErrorSkipsValidation) {
  LoadResult r = load_and_validate_text("syntax.yaml", "nodes: [\n");
  ASSERT_EQ(r.diagnostics.size(), 1u) << dump(r.diagnostics);
  EXPECT_NE(r.diagnostics[0].message.find("YAML syntax error"), std::string::npos);
}

TEST(GraphDefinition, MissingFile) {
  std::string path = (std::filesystem::temp_directory_path() / "orderflow_no_such.yaml").string();
  LoadResult r = load_graph_file(path);
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].mark.line, 0);
  EXPECT_EQ(r.diagnostics[0].mark.column, 0);
  EXPECT_EQ(r.diagnostics[0].to_string(),
            path + ": error: cannot open graph file: No such file or directory");
  EXPECT_FALSE(load_and_validate(path, real_kinds()).ok());
}

TEST(GraphDefinition, StructuralLoaderErrors) {
  LoadResult r = load_graph_string(R"(graph: t
nodes:
  - {kind: route}
  - {id: x}
  - just-a-string
  - {id: y, kind: route, colour: red, params: [1]}
)");
  const auto& d = r.diagnostics;
  expect_diag(d, 3, 5, "node has no 'id'");
  expect_diag(d, 4, 5, "node 'x' has no 'kind'");
  expect_diag(d, 5, 5, "a node must be a map with 'id' and 'kind'");
  expect_diag(d, 6, 26,
              "unknown key 'colour' in node 'y' (allowed: description, id, kind, "
              "params, service)");
  expect_diag(d, 6, 47, "'params' in node 'y' must be a map of name: value, got a list");
  EXPECT_EQ(d.size(), 5u) << dump(d);

  expect_diag(load_graph_string("graph: t\n").diagnostics, 1, 1, "missing top-level key 'nodes'");
  expect_diag(load_graph_string("- a\n- b\n").diagnostics, 1, 1, "must be a map");
  expect_diag(load_graph_string("nodes: []\nnodes: []\n").diagnostics, 2, 1,
              "duplicate key 'nodes' (first at line 1)");
}

TEST(GraphDefinition, LoaderAndValidatorReportMissingKindOnce) {
  std::string text = std::string(kPrefix) + "  - {id: x}\nedges:\n  - http -> x\n";
  LoadResult r = load_and_validate_text("nokind.yaml", text);
  ASSERT_EQ(r.diagnostics.size(), 1u) << dump(r.diagnostics);
  expect_diag(r.diagnostics, 7, 5, "node 'x' has no 'kind'");
}

TEST(GraphDefinition, BlockStyleNodesAndService) {
  GraphDef g;
  auto d = check(std::string(kPrefix) + R"(  - id: route
    kind: route
    service: router
    description: spreads streams over lanes
    params:
      lanes: 4
  - {id: demo, kind: demo_source, service: router}
edges:
  - demo -> route
)",
                 &g);
  // route is a dead end and http feeds nothing, but neither is an error here.
  EXPECT_TRUE(d.empty()) << dump(d);
  ASSERT_EQ(g.nodes.size(), 3u);
  EXPECT_EQ(g.nodes[1].service, "router");
  EXPECT_EQ(g.nodes[1].mark.line, 7);
  EXPECT_EQ(g.nodes[1].kind_mark.line, 8);
  EXPECT_EQ(g.nodes[1].kind_mark.column, 11);
  EXPECT_EQ(g.nodes[1].params.at("lanes").mark.line, 12);
  EXPECT_EQ(g.nodes[1].params.at("lanes").key_mark.column, 7);
  EXPECT_EQ(g.nodes[1].get_int("lanes"), 4);
}

TEST(GraphDefinition, EdgeForms) {
  LoadResult r = load_graph_string(R"(nodes: []
edges:
  - a->b
  - "  c   ->   d  "
  - {from: e, to: f}
  - g - h
  - {from: i}
  - {from: j, to: k, via: l}
  - [m, n]
  - o -> p -> q
)");
  ASSERT_EQ(r.graph.edges.size(), 4u);
  EXPECT_EQ(r.graph.edges[0].from, "a");
  EXPECT_EQ(r.graph.edges[0].to, "b");
  EXPECT_EQ(r.graph.edges[1].from, "c");
  EXPECT_EQ(r.graph.edges[1].to, "d");
  EXPECT_EQ(r.graph.edges[2].from, "e");
  EXPECT_EQ(r.graph.edges[2].to, "f");
  EXPECT_EQ(r.graph.edges[2].mark.line, 5);
  EXPECT_EQ(r.graph.edges[2].mark.column, 5);
  EXPECT_EQ(r.graph.edges[3].to, "k");  // the unknown key is reported, the edge kept
  const auto& d = r.diagnostics;
  expect_diag(d, 6, 5, "malformed edge 'g - h' (expected 'from -> to' or {from: a, to: b})");
  expect_diag(d, 7, 5, "edge needs both 'from' and 'to'");
  expect_diag(d, 8, 22, "unknown key 'via' in edge (allowed: from, to)");
  expect_diag(d, 9, 5, "malformed edge");
  expect_diag(d, 10, 5, "malformed edge 'o -> p -> q'");
  EXPECT_EQ(d.size(), 5u) << dump(d);
}

TEST(GraphDefinition, DuplicateNodeId) {
  auto d = check(std::string(kPrefix) + "  - {id: http, kind: http_source}\n");
  expect_diag(d, 7, 5, "duplicate node id 'http' (first defined at 6:5)");
  EXPECT_EQ(d.size(), 1u) << dump(d);
}

TEST(GraphDefinition, UnknownNodeKindSuggestsFix) {
  auto d = check(std::string(kPrefix) + "  - {id: c, kind: comit}\nedges: [http -> c]\n");
  expect_diag(d, 7, 19,
              "unknown node kind 'comit' (known: change_feed, command_lane, commit, "
              "demo_source, http_source, projection, route, saga, tuning); did you "
              "mean 'commit'?");
  EXPECT_EQ(d.size(), 1u) << dump(d);  // no port or reachability follow-ups
}

TEST(GraphDefinition, StoreChecks) {
  // Through load_and_validate: the loader reports the kind-less store, validate() not again.
  LoadResult r = load_and_validate_text("stores.yaml", R"(stores:
  a: {kind: rocksdb, sync: maybe, size: 3}
  b: {kind: memroy}
  c: {path: x}
  d: {kind: memory}
nodes:
  - {id: http, kind: http_source}
)");
  const auto& d = r.diagnostics;
  expect_diag(d, 2, 6, "store 'a' is missing required parameter 'path', which must be a string");
  expect_diag(d, 2, 28,
              "parameter 'sync' must be a boolean (true/false, yes/no, on/off), got "
              "'maybe'");
  expect_diag(d, 2, 35, "unknown parameter 'size' for kind 'rocksdb' (known: path, sync)");
  expect_diag(d, 3, 6,
              "unknown store kind 'memroy' for store 'b' (known: memory, rocksdb); "
              "did you mean 'memory'?");
  expect_diag(d, 4, 6, "store 'c' has no 'kind'");
  EXPECT_EQ(d.size(), 5u) << dump(d);
}

TEST(GraphDefinition, ParameterTypes) {
  auto d = check(std::string(kPrefix) +
                 R"(  - {id: r, kind: route, params: {lanes: eight, max_in_flight: 0}}
  - {id: t, kind: tuning, params: {ratio: fast, mode: slow, verbose: 2}}
  - {id: u, kind: tuning, params: {ratio: 1e3, mode: fast, verbose: Yes}}
  - {id: s, kind: saga, params: {x: 1}}
  - {id: f, kind: change_feed, params: {events: {a: 1}, poll_ms: 99999999999999999999}}
edges: [http -> r, r -> t, r -> u, f -> s]
)");
  expect_diag(d, 7, 42, "parameter 'lanes' must be an integer in [1, 256], got 'eight'");
  expect_diag(d, 7, 64, "parameter 'max_in_flight' must be an integer >= 1, got '0'");
  expect_diag(d, 8, 43, "parameter 'ratio' must be a number, got 'fast'");
  expect_diag(d, 8, 55, "parameter 'mode' must be one of fast, safe, got 'slow'");
  expect_diag(d, 8, 70, "parameter 'verbose' must be a boolean");
  expect_diag(d, 10, 34, "unknown parameter 'x' for kind 'saga' (it takes no parameters)");
  expect_diag(d, 11, 49,
              "parameter 'events' must be the name of a store declared under "
              "'stores:' (declared: events, snapshots), not a list or map");
  expect_diag(d, 11, 66, "parameter 'poll_ms' must be an integer >= 1, got '9999");
  // f (change_feed) has no way in: nothing outputs 'committed' here.
  expect_diag(d, 11, 5, "node 'f' is unreachable: it has no incoming edge");
  expect_diag(d, 10, 5, "node 's' is unreachable: no path leads to it from a source");
  EXPECT_EQ(d.size(), 10u) << dump(d);
}

TEST(GraphDefinition, DefaultsFilledAndTypedGetters) {
  GraphDef g;
  auto d = check(std::string(kPrefix) + R"(  - {id: r, kind: route}
  - {id: u, kind: tuning, params: {ratio: "-2.5", verbose: off}}
  - {id: v, kind: tuning, params: {verbose: YES}}
edges: [http -> r, r -> u, r -> v]
)",
                 &g);
  ASSERT_TRUE(d.empty()) << dump(d);
  const NodeDef& route = g.nodes[1];
  EXPECT_EQ(route.get_int("lanes"), 8);
  EXPECT_EQ(route.get_int("max_in_flight"), 20000);
  EXPECT_EQ(route.params.at("lanes").mark.line, route.mark.line);
  EXPECT_EQ(route.params.at("lanes").mark.column, route.mark.column);
  EXPECT_EQ(g.nodes[0].get_string("listen"), "127.0.0.1:8080");
  EXPECT_EQ(g.nodes[0].get_int("max_body_bytes"), 65536);
  EXPECT_DOUBLE_EQ(g.nodes[2].get_double("ratio"), -2.5);
  EXPECT_FALSE(g.nodes[2].get_bool("verbose"));
  EXPECT_EQ(g.nodes[2].get_string("mode"), "safe");
  EXPECT_TRUE(g.nodes[3].get_bool("verbose"));
  EXPECT_DOUBLE_EQ(g.nodes[3].get_double("ratio"), 0.5);
  EXPECT_THROW(route.get_int("nope"), std::logic_error);
  EXPECT_THROW(g.nodes[2].get_int("mode"), std::logic_error);
  EXPECT_THROW(g.nodes[2].get_bool("mode"), std::logic_error);

  // rocksdb's optional `sync` is filled too.
  GraphDef g2;
  check(R"(stores: {e: {kind: rocksdb, path: p}}
nodes: [{id: http, kind: http_source}]
)",
        &g2);
  EXPECT_EQ(g2.stores.at("e").params.at("sync").text, "true");
}

TEST(GraphDefinition, ScalarParsing) {
  int64_t i = 0;
  EXPECT_TRUE(parse_int("+42", &i));
  EXPECT_EQ(i, 42);
  EXPECT_TRUE(parse_int("-9223372036854775808", &i));
  EXPECT_FALSE(parse_int("9223372036854775808", &i));
  EXPECT_FALSE(parse_int("12abc", &i));
  EXPECT_FALSE(parse_int("", &i));
  EXPECT_FALSE(parse_int("1.0", &i));
  double x = 0;
  EXPECT_TRUE(parse_double("1e-3", &x));
  EXPECT_FALSE(parse_double("nan", &x));
  EXPECT_FALSE(parse_double("1.5x", &x));
  bool b = false;
  EXPECT_TRUE(parse_bool("On", &b));
  EXPECT_TRUE(b);
  EXPECT_TRUE(parse_bool("no", &b));
  EXPECT_FALSE(b);
  EXPECT_FALSE(parse_bool("1", &b));
}

TEST(GraphDefinition, EdgeChecks) {
  auto d = check(std::string(kPrefix) + R"(  - {id: r, kind: route}
  - {id: l, kind: command_lane, params: {events: events, snapshots: snapshots}}
  - {id: p, kind: projection, params: {snapshots: snapshots}}
edges:
  - http -> r
  - r -> l
  - r -> l
  - l -> rr
  - r -> http
  - p -> r
  - r -> p
)");
  expect_diag(d, 13, 5, "duplicate edge r -> l (first at 12:5)");
  expect_diag(d, 14, 5, "edge l -> rr ends at unknown node 'rr'; did you mean 'r'?");
  expect_diag(d, 15, 5, "edge r -> http: node 'http' (kind 'http_source') has no input port");
  expect_diag(d, 16, 5, "edge p -> r: node 'p' (kind 'projection') has no output port");
  expect_diag(d, 17, 5,
              "edge r -> p connects port type 'command' to 'event' ('p' takes 'event' "
              "from kinds: change_feed)");
  EXPECT_EQ(d.size(), 5u) << dump(d);  // p counts as reached through the mismatched edge
}

TEST(GraphDefinition, OnlyTheStoreEdgeMayCrossServices) {
  auto d = check(R"(graph: t
stores:
  events: {kind: memory}
  snapshots: {kind: memory}
nodes:
  - {id: http, kind: http_source, service: api}
  - {id: r, kind: route, service: api}
  - {id: l, kind: command_lane, service: api, params: {events: events, snapshots: snapshots}}
  - {id: c, kind: commit, service: writer, params: {events: events}}
  - {id: f, kind: change_feed, service: views, params: {events: events}}
  - {id: p, kind: projection, service: views, params: {snapshots: snapshots}}
  - {id: s, kind: saga, service: views}
  - {id: f2, kind: change_feed, params: {events: events}}
  - {id: p2, kind: projection, params: {snapshots: snapshots}}
  - {id: demo, kind: demo_source}
edges:
  - http -> r
  - r -> l
  - l -> c
  - c -> f
  - f -> p
  - f -> s
  - s -> r
  - c -> f2
  - f2 -> p2
  - demo -> r
)");
  // Fine: http -> r and r -> l stay in api; c -> f and c -> f2 go through the event store;
  // f -> p and f -> s stay in views; f2 -> p2 join two nodes without a service.
  expect_diag(d, 19, 5,
              "edge l -> c joins service 'api' to service 'writer': only an edge through a store (port type "
              "'committed', e.g. commit -> change_feed) may cross services; put both nodes in one service");
  expect_diag(d, 23, 5, "edge s -> r joins service 'views' to service 'api'");
  // demo runs in every service, r only in api: the other services would build a demo source
  // with nowhere to send its commands.
  expect_diag(d, 26, 5, "edge demo -> r joins no service to service 'api'");
  EXPECT_EQ(d.size(), 3u) << dump(d);
}

TEST(GraphDefinition, Reachability) {
  auto d = check(R"(stores: {events: {kind: memory}, snapshots: {kind: memory}}
nodes:
  - {id: r, kind: route}
  - {id: s, kind: saga}
)");
  expect_diag(d, 3, 5,
              "graph has no source node, so nothing ever enters it (add a node of "
              "kind: demo_source, http_source)");
  EXPECT_EQ(d.size(), 1u) << dump(d);

  // A cycle with no way in is unreachable even though every node has an incoming edge.
  d = check(std::string(kPrefix) + R"(  - {id: r, kind: route}
  - {id: r2, kind: route}
  - {id: r3, kind: route}
edges: [http -> r, r2 -> r3, r3 -> r2]
)");
  expect_diag(d, 8, 5,
              "node 'r2' is unreachable: no path leads to it from a source (sources: "
              "http)");
  expect_diag(d, 9, 5, "node 'r3' is unreachable");
  EXPECT_EQ(d.size(), 2u) << dump(d);

  GraphDef empty;
  std::vector<Diagnostic> out;
  EXPECT_FALSE(validate(empty, real_kinds(), out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].message, "graph has no nodes");
  EXPECT_EQ(out[0].mark.line, 1) << "every message has a position: " << out[0].to_string();

  // Regression: an empty node list was reported without file:line:column; now at `nodes:`.
  d = check("graph: t\nstores:\n  events: {kind: memory}\nnodes: []\n");
  expect_diag(d, 4, 1, "graph has no nodes");
  EXPECT_EQ(d.size(), 1u) << dump(d);
}

// Large graphs go through the validator's id and edge indexes (it was quadratic in the node
// count): the same verdicts as on small ones, for every node of a 20,000-node graph.
TEST(GraphDefinition, LargeGraphGetsEveryVerdictRight) {
  constexpr int kChain = 20000;
  std::string text = std::string(kPrefix) + "  - {id: r0, kind: route}\n";
  std::string edges = "edges: [http -> r0";
  for (int i = 1; i < kChain; ++i) {
    text += "  - {id: r" + std::to_string(i) + ", kind: route}\n";
    // Every 1000th link is missing: r1000, r2000, ... start islands with no incoming edge.
    if (i % 1000 != 0) edges += ", r" + std::to_string(i - 1) + " -> r" + std::to_string(i);
  }
  text += "  - {id: r5, kind: route}\n";  // a duplicate id, far from its first definition
  text += edges + ", r19999 -> nowhere]\n";
  const auto d = check(text);
  size_t unreachable_no_incoming = 0, unreachable_no_path = 0, duplicates = 0, dangling = 0;
  for (const auto& diag : d) {
    EXPECT_GT(diag.mark.line, 0) << diag.to_string();
    if (diag.message.find("is unreachable: it has no incoming edge") != std::string::npos) ++unreachable_no_incoming;
    if (diag.message.find("is unreachable: no path leads") != std::string::npos) ++unreachable_no_path;
    if (diag.message.find("duplicate node id 'r5'") != std::string::npos) ++duplicates;
    if (diag.message.find("ends at unknown node 'nowhere'") != std::string::npos) ++dangling;
  }
  EXPECT_EQ(unreachable_no_incoming, 19u) << "r1000 ... r19000";
  EXPECT_EQ(unreachable_no_path, 19u * 999u) << "the nodes behind each island's head";
  EXPECT_EQ(duplicates, 1u);
  EXPECT_EQ(dangling, 1u);
  EXPECT_EQ(d.size(), 19u + 19u * 999u + 2u);
  expect_diag(d, 7 + 1000, 5, "node 'r1000' is unreachable: it has no incoming edge");
  expect_diag(d, 7 + 1001, 5, "node 'r1001' is unreachable: no path leads to it from a source");
}

TEST(GraphDefinition, ValidateHandBuiltGraph) {
  GraphDef g;
  g.file = "built";
  g.nodes.resize(2);
  g.nodes[0].kind = "demo_source";
  g.nodes[0].mark = {2, 3};
  g.nodes[1].id = "d";
  g.nodes[1].kind = "demo_source";
  g.edges.push_back(EdgeDef{"d", "", {9, 1}});
  std::vector<Diagnostic> out;
  EXPECT_FALSE(validate(g, real_kinds(), out));
  expect_diag(out, 2, 3, "node has no 'id'");
  expect_diag(out, 9, 1, "edge 'd -> ' must name both 'from' and 'to'");
  EXPECT_EQ(out.size(), 2u) << dump(out);
  EXPECT_EQ(g.nodes[1].get_int("seed"), 42);
}

TEST(GraphDefinition, Dot) {
  KindRegistry kinds = real_kinds();
  GraphDef g = load_graph_string(kDefaultGraph).graph;
  std::string dot = to_dot(g, kinds);
  EXPECT_EQ(dot.rfind("digraph \"orders\" {\n  rankdir=LR;\n", 0), 0u) << dot;
  EXPECT_NE(dot.find("\"http\" [label=\"http\\nhttp_source\", shape=cds];"), std::string::npos)
      << dot;
  EXPECT_NE(dot.find("\"route\" [label=\"route\\nroute\"];"), std::string::npos) << dot;
  EXPECT_NE(dot.find("\"http\" -> \"route\";"), std::string::npos) << dot;
  EXPECT_NE(dot.find("\"saga\" -> \"route\";"), std::string::npos) << dot;
  EXPECT_NE(dot.find("\"commit\" -> \"feed\" [style=dashed];"), std::string::npos) << dot;
  EXPECT_EQ(dot.find("\"lanes\" -> \"commit\" [style"), std::string::npos) << dot;
  EXPECT_EQ(dot.back(), '\n');
  EXPECT_EQ(dot[dot.size() - 2], '}');

  GraphDef odd = load_graph_string(R"(nodes:
  - {id: 'a"b\c', kind: nope}
  - {id: x, kind: saga, service: sagas}
)")
                     .graph;
  dot = to_dot(odd, kinds);
  EXPECT_NE(dot.find("digraph \"graph\" {"), std::string::npos) << dot;
  EXPECT_NE(dot.find("\"a\\\"b\\\\c\" [label=\"a\\\"b\\\\c\\nnope\", color=red"), std::string::npos)
      << dot;
  EXPECT_NE(dot.find("subgraph \"cluster_sagas\" {\n    label=\"sagas\";\n    \"x\""),
            std::string::npos)
      << dot;
}

}  // namespace
}  // namespace orderflow::graph
