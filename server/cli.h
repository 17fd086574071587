// The `orderflow` command line (serve, validate, dot, bench, mock-kafka) over a registry of
// node kinds, store kinds and domains. A binary for another domain links this library,
// registers its domain beside the standard kinds and calls run_cli from its main().
#pragma once

#include "graph/definition.h"

namespace orderflow {

// Parses argv (CLI11: --help on every command, --version, exit 2 with the reason on a bad
// flag) and runs the command; returns the process's exit code. `registry` must outlive it.
int run_cli(int argc, char** argv, const graph::KindRegistry& registry);

}  // namespace orderflow
