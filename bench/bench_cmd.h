// The `orderflow bench` subcommand (server/main.cc dispatches to it).
#pragma once

#include <string>
#include <vector>

#include "graph/definition.h"

namespace orderflow::bench {

extern const char* const kBenchUsage;

// Runs `orderflow bench FILE ARGS...`; returns the exit code (0 ok, 1 runtime failure,
// 2 bad usage or an invalid graph).
int bench_main(const std::string& file, const std::vector<std::string>& args, const graph::KindRegistry& registry);

}  // namespace orderflow::bench
