#include "graph/build.h"

#include <algorithm>

namespace orderflow {

Result<BuiltPipeline> build_pipeline(const graph::GraphDef& def, const graph::KindRegistry& kinds,
                                     StoreProvider& stores, const BuildOptions& options) {
  const Domain* domain = kinds.domain(def.domain);
  if (domain == nullptr) {
    return Status::invalid_argument(def.domain.empty() ? std::string("this binary has no domain to run")
                                                       : "unknown domain '" + def.domain + "'");
  }
  BuiltPipeline built;
  built.domain = domain;
  built.pipeline = std::make_unique<Pipeline>(options.threads);
  Pipeline& p = *built.pipeline;
  p.metrics().set_graph_name(def.name);
  stores.attach_metrics(p.metrics());
  BuildContext context{def, kinds, p, stores, *domain, options};

  struct Made {
    std::unique_ptr<RuntimeNode> node;
    RuntimeNode* raw = nullptr;
    graph::DrainOrder drain = graph::DrainOrder::kIngest;
  };
  std::vector<Made> made;
  std::map<std::string, RuntimeNode*> by_id;
  for (const auto& n : def.nodes) {
    if (!n.runs_in(options.service)) continue;
    const graph::KindSpec* spec = kinds.node_kind(n.kind);
    if (spec == nullptr) return Status::invalid_argument("node " + n.id + ": unknown kind " + n.kind);
    const graph::NodeFactory* factory = &spec->factory;
    if (auto f = options.factories.find(n.kind); f != options.factories.end()) factory = &f->second;
    if (!*factory) return Status::invalid_argument("node " + n.id + ": kind " + n.kind + " cannot be built by this binary");
    auto node = (*factory)(n, context);
    if (!node) return Status(node.status().code(), "node " + n.id + ": " + node.status().message());
    RuntimeNode* raw = node->get();
    by_id[n.id] = raw;
    made.push_back(Made{std::move(*node), raw, spec->drain});
    if (built.sink == nullptr && spec->input == graph::PortType::kCommand)
      built.sink = dynamic_cast<CommandSink*>(raw);
  }

  for (const auto& e : def.edges) {
    auto from = by_id.find(e.from);
    auto to = by_id.find(e.to);
    if (from == by_id.end() || to == by_id.end()) continue;  // another service's
    const graph::KindSpec* spec = kinds.node_kind(def.find_node(e.from)->kind);
    if (graph::store_mediated(spec->output)) continue;       // the downstream reads the store
    if (auto s = from->second->connect_to(*to->second); !s) {
      return Status(s.code(), def.file + ":" + std::to_string(e.mark.line) + ":" + std::to_string(e.mark.column) +
                                  ": edge " + e.from + " -> " + e.to + ": " + s.message());
    }
  }

  // Added in drain order: sources first, commit last (see Pipeline::shutdown).
  std::stable_sort(made.begin(), made.end(), [](const Made& a, const Made& b) { return a.drain < b.drain; });
  for (auto& m : made) p.add(std::move(m.node));
  return built;
}

}  // namespace orderflow
