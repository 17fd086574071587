// What the commands that open a graph's stores share: loading a graph file with its
// diagnostics printed, and the data directory's instance lock. Free functions, no state.
#pragma once

#include <string>

#include "graph/definition.h"

namespace orderflow::server {

// Loads and validates `path`; prints every diagnostic (and a count) to stderr. False when
// the graph is invalid (the caller exits 2).
bool load_graph(const std::string& path, const graph::KindRegistry& registry, graph::GraphDef* out);

// Takes `data_dir`/instance.lock (flock, exclusive, not waiting) for the rest of the
// process's life. False when another process holds it: a server runs on that directory
// (or a repair command does), or the file cannot be opened.
bool lock_data_dir(const std::string& data_dir);

}  // namespace orderflow::server
