// Graph diagnostics never echo raw control bytes: what a graph file quotes (ids, kinds,
// parameter values, edges, YAML errors) is shown with \xNN (\n, \r, \t) instead, so
// `orderflow validate` output stays one line per problem and nothing reaches a terminal raw.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "graph/definition.h"
#include "tests/support/kinds.h"

namespace orderflow::graph {
namespace {

bool has_raw_control_byte(const std::string& s) {
  for (const char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b == 0x7f) return true;
  }
  return false;
}

std::vector<Diagnostic> load_and_check(const std::string& yaml) {
  LoadResult r = load_graph_string(yaml, "g.yaml");
  if (!r.ok()) return r.diagnostics;
  KindRegistry registry;
  register_standard_kinds(registry);
  std::vector<Diagnostic> out;
  validate(r.graph, registry, out);
  return out;
}

TEST(GraphEscaping, ControlBytesAreWrittenAsEscapes) {
  EXPECT_EQ(escape_control_bytes(std::string("a\x01z", 3)), "a\\x01z");
  EXPECT_EQ(escape_control_bytes(std::string("\0", 1)), "\\x00");
  EXPECT_EQ(escape_control_bytes("tab\there\nline\rcr\x1b[31m\x7f"), "tab\\there\\nline\\rcr\\x1b[31m\\x7f");
  EXPECT_EQ(escape_control_bytes("caf\xc3\xa9 \\ ok"), "caf\xc3\xa9 \\ ok") << "UTF-8 and printable bytes stay";
}

// Regression: validation messages echoed raw control bytes from the file.
TEST(GraphEscaping, ValidationMessagesQuoteControlBytesEscaped) {
  // YAML double-quoted scalars carry the bytes: an unknown kind, a dangling edge, a bad value.
  const auto diags = load_and_check(
      "graph: t\n"
      "stores:\n"
      "  events: {kind: memory}\n"
      "nodes:\n"
      "  - {id: a, kind: \"no\\x1bsuch\"}\n"
      "  - {id: r, kind: route, params: {lanes: \"4\\x01\"}}\n"
      "edges: [\"a -> ghost\\x07\"]\n");
  ASSERT_FALSE(diags.empty());
  std::string all;
  for (const auto& d : diags) {
    EXPECT_FALSE(has_raw_control_byte(d.message)) << d.to_string();
    EXPECT_FALSE(has_raw_control_byte(d.to_string())) << d.to_string();
    EXPECT_GT(d.mark.line, 0) << d.to_string();
    all += d.to_string() + "\n";
  }
  EXPECT_NE(all.find("no\\x1bsuch"), std::string::npos) << all;
  EXPECT_NE(all.find("4\\x01"), std::string::npos) << all;
  EXPECT_NE(all.find("ghost\\x07"), std::string::npos) << all;
}

TEST(GraphEscaping, YamlErrorsAndFileNamesAreEscapedToo) {
  LoadResult r = load_graph_string(std::string("graph: t\nnodes: [\x01\x02", 17), "bad\nname.yaml");
  ASSERT_FALSE(r.ok());
  for (const auto& d : r.diagnostics) {
    EXPECT_FALSE(has_raw_control_byte(d.message)) << d.to_string();
    EXPECT_FALSE(has_raw_control_byte(d.to_string())) << d.to_string();
    EXPECT_EQ(d.to_string().rfind("bad\\nname.yaml", 0), 0u) << d.to_string();
  }
}

}  // namespace
}  // namespace orderflow::graph
