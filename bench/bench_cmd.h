// The `orderflow bench` subcommand: its options on the one command-line parser of
// server/main.cc (CLI11), and the run.
#pragma once

#include "graph/definition.h"

namespace CLI {
class App;
}

namespace orderflow::bench {

// Adds `bench FILE [options]` to `app`. When the command line names it, the callback runs
// the benchmark and stores its exit code in *exit_code (0 ok, 1 runtime failure, 2 an
// invalid graph); bad options are refused by the parser before that. `registry` and
// `exit_code` must outlive app.parse().
void add_bench_command(CLI::App& app, const graph::KindRegistry& registry, int* exit_code);

}  // namespace orderflow::bench
