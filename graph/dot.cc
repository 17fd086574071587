// to_dot(): Graphviz rendering of a graph definition (`orderflow dot FILE`).
//
// Works on unvalidated graphs too, so a broken file can still be looked at: nodes of
// unknown kind are drawn red, edges to missing nodes appear as bare Graphviz nodes.
#include <sstream>

#include "graph/definition.h"

namespace orderflow::graph {
namespace {

// Body of a DOT double-quoted string.
std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string quote(const std::string& s) { return "\"" + escape(s) + "\""; }

void write_node(std::ostream& os, const NodeDef& node, const KindSpec* spec, const char* indent) {
  os << indent << quote(node.id) << " [label=\"" << escape(node.id) << "\\n"
     << escape(node.kind) << "\"";
  if (spec == nullptr) {
    os << ", color=red, fontcolor=red";
  } else if (spec->is_source) {
    os << ", shape=cds";
  }
  os << "];\n";
}

}  // namespace

std::string to_dot(const GraphDef& graph, const KindRegistry& registry) {
  std::ostringstream os;
  os << "digraph " << quote(graph.name.empty() ? "graph" : graph.name) << " {\n"
     << "  rankdir=LR;\n"
     << "  node [shape=box];\n";
  // Nodes pinned to a service are drawn in a cluster per service, so a split into
  // microservices (`serve --service NAME`) is visible at a glance.
  std::map<std::string, std::vector<const NodeDef*>> by_service;
  for (const NodeDef& node : graph.nodes) by_service[node.service].push_back(&node);
  for (const auto& [service, nodes] : by_service) {
    const char* indent = service.empty() ? "  " : "    ";
    if (!service.empty()) {
      os << "  subgraph " << quote("cluster_" + service) << " {\n"
         << "    label=" << quote(service) << ";\n";
    }
    for (const NodeDef* node : nodes) {
      write_node(os, *node, registry.node_kind(node->kind), indent);
    }
    if (!service.empty()) os << "  }\n";
  }
  for (const EdgeDef& edge : graph.edges) {
    os << "  " << quote(edge.from) << " -> " << quote(edge.to);
    // commit -> change feed is not a message channel: the feed reads what commit wrote
    // to the event store. Dashed says "through the store".
    const NodeDef* from = graph.find_node(edge.from);
    const KindSpec* spec = from ? registry.node_kind(from->kind) : nullptr;
    if (spec != nullptr && spec->output == PortType::kCommitted) os << " [style=dashed]";
    os << ";\n";
  }
  os << "}\n";
  return os.str();
}

}  // namespace orderflow::graph
