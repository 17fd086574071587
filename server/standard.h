// Every kind and domain the `orderflow` binary knows, in one registry: the generic node
// kinds (nodes/), the connectors' node and store kinds (connectors/) and the order domain
// (domain/orders, the default domain). The one place that includes a domain.
#pragma once

#include "graph/definition.h"

namespace orderflow {

void register_standard_kinds(graph::KindRegistry& registry);

}  // namespace orderflow
