// The `orderflow` binary's registry (generic node kinds, connectors, the order domain) for
// tests that build pipelines in process.
#pragma once

#include "graph/build.h"
#include "server/standard.h"

namespace orderflow::test_support {

inline const graph::KindRegistry& standard_kinds() {
  static const graph::KindRegistry kinds = [] {
    graph::KindRegistry k;
    register_standard_kinds(k);
    return k;
  }();
  return kinds;
}

}  // namespace orderflow::test_support
