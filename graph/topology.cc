#include "graph/definition.h"
#include "graph/json.h"

namespace orderflow::graph {

std::string to_json(const GraphDef& graph, const KindRegistry& registry, const std::string& service) {
  JsonWriter w;
  w.begin_object().field("name", graph.name).field("service", service).key("nodes").begin_array();
  for (const auto& n : graph.nodes) {
    const KindSpec* k = registry.node_kind(n.kind);
    w.begin_object().field("id", n.id).field("kind", n.kind).field("service", n.service);
    w.field("running", n.runs_in(service));
    w.field("input", port_type_name(k ? k->input : PortType::kNone));
    w.field("output", port_type_name(k ? k->output : PortType::kNone));
    w.field("source", k != nullptr && k->is_source);
    w.key("params").begin_object();
    for (const auto& [name, v] : n.params) w.field(name, v.text);
    w.end_object().end_object();
  }
  w.end_array().key("edges").begin_array();
  for (const auto& e : graph.edges) {
    const NodeDef* from = graph.find_node(e.from);
    const KindSpec* k = from ? registry.node_kind(from->kind) : nullptr;
    const PortType t = k ? k->output : PortType::kNone;
    w.begin_object().field("from", e.from).field("to", e.to).field("type", port_type_name(t));
    w.field("storeMediated", t == PortType::kCommitted).end_object();
  }
  w.end_array().end_object();
  return w.take();
}

}  // namespace orderflow::graph
