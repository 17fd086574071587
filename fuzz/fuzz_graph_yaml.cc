// A graph definition from YAML text: load, validate with the kinds the orderflow binary
// registers, and print DOT and JSON for a valid one (graph/definition.h). Checks beyond
// "no crash": every diagnostic has a message free of raw control bytes.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "graph/definition.h"
#include "tests/support/kinds.h"

namespace {

const orderflow::graph::KindRegistry& kinds() {
  static const orderflow::graph::KindRegistry registry = [] {
    orderflow::graph::KindRegistry r;
    orderflow::register_standard_kinds(r);
    return r;
  }();
  return registry;
}

void check(const std::vector<orderflow::graph::Diagnostic>& diags) {
  for (const auto& d : diags) {
    if (d.message.empty()) std::abort();
    for (const char c : d.to_string())
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto loaded = orderflow::graph::load_graph_string(text, "fuzz.yaml");
  check(loaded.diagnostics);
  if (!loaded.ok()) return 0;
  std::vector<orderflow::graph::Diagnostic> found;
  const bool valid = orderflow::graph::validate(loaded.graph, kinds(), found);
  check(found);
  if (valid != found.empty()) std::abort();
  if (valid) {
    (void)orderflow::graph::to_dot(loaded.graph, kinds());
    (void)orderflow::graph::to_json(loaded.graph, kinds());
  }
  return 0;
}
