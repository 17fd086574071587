// The generic node kinds of nodes/ in a KindRegistry: their ports, parameters (with their
// defaults) and factories. Connectors register theirs (sources, sinks, stores) in
// connectors/kinds.h, a domain with KindRegistry::add_domain.
#pragma once

#include "graph/definition.h"

namespace orderflow {

// route, command_lane, commit, change_feed, projection, saga, demo_source.
void register_node_kinds(graph::KindRegistry& registry);

}  // namespace orderflow
