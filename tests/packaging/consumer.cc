// Uses each installed library through its public headers: proto (a generated message),
// graph (load and validate a graph definition), nodes (the node kinds), connectors (their
// kinds), orders (the domain). Prints what it saw; exits non-zero if anything is off.
#include <cstdio>

#include "connectors/kinds.h"
#include "domain/orders/orders_domain.h"
#include "graph/definition.h"
#include "nodes/kinds.h"
#include "orderflow.pb.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer GRAPH.yaml\n");
    return 2;
  }
  orderflow::v1::Command command;
  command.set_command_id("c-1");
  if (command.SerializeAsString().empty()) return 1;

  orderflow::graph::KindRegistry registry;
  orderflow::register_node_kinds(registry);
  orderflow::connectors::register_connector_kinds(registry);
  registry.add_domain(orderflow::orders::orders_domain());
  const orderflow::graph::LoadResult loaded = orderflow::graph::load_and_validate(argv[1], registry);
  for (const auto& d : loaded.diagnostics) std::fprintf(stderr, "%s\n", d.to_string().c_str());
  if (!loaded.ok() || loaded.graph.nodes.empty()) return 1;
  std::printf("consumer: %s ok (%zu nodes, %zu edges, %zu node kinds)\n", argv[1], loaded.graph.nodes.size(),
              loaded.graph.edges.size(), registry.node_kind_names().size());
  return 0;
}
