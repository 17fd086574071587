// The order domain (orders, inventory, the reservation process manager) behind the
// framework's Domain interface (graph/domain.h): what `domain: orders` in a graph file
// selects. Stateless and thread-safe; one shared instance serves every pipeline.
#pragma once

#include <memory>

#include "graph/domain.h"

namespace orderflow::orders {

// The shared instance (its name is "orders").
std::shared_ptr<const Domain> orders_domain();

}  // namespace orderflow::orders
