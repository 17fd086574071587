#include "bench/bench.h"

#include "connectors/kinds.h"
#include "domain/orders/orders_domain.h"
#include "nodes/kinds.h"

namespace orderflow::bench {

void register_bench_kinds(graph::KindRegistry& registry) {
  register_node_kinds(registry);
  connectors::register_connector_kinds(registry);
  registry.add_domain(orders::orders_domain());
}

}  // namespace orderflow::bench
