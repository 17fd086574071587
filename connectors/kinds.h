// The connectors' kinds in a KindRegistry: the store kinds (rocksdb, memory, cosmos) with
// their parameter checks, and the node kinds http_source, kafka_source and kafka_sink with
// their factories. A process that must give a kind more (the server's HTTP flags and
// readiness) overrides its factory in BuildOptions::factories.
#pragma once

#include "graph/definition.h"

namespace orderflow::connectors {

void register_connector_kinds(graph::KindRegistry& registry);

}  // namespace orderflow::connectors
