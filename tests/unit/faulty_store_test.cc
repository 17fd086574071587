// `kind: faulty` (tests and fault drills): appends to the named streams fail with kIoError
// until the heal file exists, everything else goes to the wrapped store; validate() names
// what is wrong with its parameters.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "connectors/stores.h"
#include "graph/definition.h"
#include "tests/support/kinds.h"
#include "tests/support/temp_dir.h"

namespace orderflow::connectors {
namespace {

std::string problems(const std::string& stores) {
  auto loaded = graph::load_graph_string("graph: g\nstores:\n" + stores +
                                             "nodes:\n  - {id: http, kind: http_source}\nedges: []\n",
                                         "g.yaml");
  EXPECT_TRUE(loaded.ok());
  std::vector<graph::Diagnostic> diags;
  graph::validate(loaded.graph, test_support::standard_kinds(), diags);
  std::string all;
  for (const auto& d : diags) all += d.to_string() + "\n";
  return all;
}

TEST(FaultyStore, ValidationNamesEachBadParameter) {
  EXPECT_EQ(problems("  real: {kind: memory}\n  events: {kind: faulty, inner: real, fail_streams: \"sku-A,sku-B\", "
                     "heal_file: healed}\n"),
            "");
  const std::string all = problems(
      "  real: {kind: memory}\n"
      "  a: {kind: faulty, inner: real, fail_streams: \"sku-A,,sku-B\"}\n"
      "  b: {kind: faulty, inner: real, fail_streams: \"sku-A, sku-B\"}\n"
      "  c: {kind: faulty, inner: nope, fail_streams: x}\n"
      "  d: {kind: faulty, fail_streams: x}\n"
      "  e: {kind: faulty, inner: real}\n"
      "  f: {kind: faulty, inner: f, fail_streams: x}\n"
      "  g: {kind: faulty, inner: h, fail_streams: x}\n"
      "  h: {kind: faulty, inner: g, fail_streams: x}\n"
      "  i: {kind: faulty, inner: real, fail_streams: x, heal: y}\n");
  EXPECT_NE(all.find("g.yaml:4:48: error: parameter 'fail_streams': must be a comma-separated list of stream ids "
                     "(e.g. \"sku-X,sku-Y\"), without empty items"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("parameter 'fail_streams': must be a comma-separated list of stream ids without spaces, got "
                     "' sku-B'"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("parameter 'inner' must be the name of a store declared under 'stores:'"), std::string::npos)
      << all;
  EXPECT_NE(all.find("store 'd' is missing required parameter 'inner'"), std::string::npos) << all;
  EXPECT_NE(all.find("store 'e' is missing required parameter 'fail_streams'"), std::string::npos) << all;
  EXPECT_NE(all.find("store 'f' wraps itself (f -> f)"), std::string::npos) << all;
  EXPECT_NE(all.find("store 'g' wraps itself (g -> h -> g)"), std::string::npos) << all;
  EXPECT_NE(all.find("store 'h' wraps itself (h -> g -> h)"), std::string::npos) << all;
  EXPECT_NE(all.find("unknown parameter 'heal' for kind 'faulty' (known: fail_streams, heal_file, inner)"),
            std::string::npos)
      << all;
}

class FaultyStoreTest : public ::testing::Test {
 protected:
  void open(const std::string& stores) {
    auto loaded = graph::load_graph_string("graph: g\nstores:\n" + stores +
                                           "nodes:\n  - {id: http, kind: http_source}\nedges: []\n");
    ASSERT_TRUE(loaded.ok());
    std::vector<graph::Diagnostic> diags;
    ASSERT_TRUE(graph::validate(loaded.graph, test_support::standard_kinds(), diags));
    stores_ = std::make_unique<StoreSet>(loaded.graph, dir_.path());
  }

  static AppendRequest add(const std::string& stream, const std::string& id, uint64_t expected = 0) {
    AppendRequest r;
    r.stream = stream;
    r.command_id = id;
    r.expected_version = expected;
    r.events = {"e-" + id};
    return r;
  }

  testing::TempDir dir_{"faulty-store"};
  std::unique_ptr<StoreSet> stores_;
};

TEST_F(FaultyStoreTest, AppendsToFailingStreamsFailUntilTheHealFileExists) {
  ASSERT_NO_FATAL_FAILURE(open("  real: {kind: memory}\n"
                               "  events: {kind: faulty, inner: real, fail_streams: \"sku-X,sku-Y\", heal_file: ok}\n"));
  EventStore* events = *stores_->event_store("events");
  ChangeFeed* feed = *stores_->change_feed("events");
  EventStore* real = *stores_->event_store("real");

  auto out = events->append({add("sku-A", "c1"), add("sku-X", "c2"), add("sku-B", "c3")});
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(out[0].status.is_ok()) << out[0].status.to_string();
  EXPECT_EQ(out[1].status.code(), StatusCode::kIoError);
  EXPECT_EQ(out[1].stream, "sku-X");
  EXPECT_EQ(out[1].status.message(),
            "injected fault (store 'events', kind faulty): appends to stream 'sku-X' fail until " +
                dir_.sub("ok") + " exists");
  EXPECT_TRUE(out[2].status.is_ok()) << out[2].status.to_string();
  EXPECT_EQ(out[2].first_position, 2u) << "the healthy requests went through in one append";
  EXPECT_EQ(*real->stream_version("sku-X"), 0u);
  EXPECT_EQ(feed->head(), 2u);
  EXPECT_EQ(*feed->load_checkpoint("s"), 0u);
  ASSERT_TRUE(feed->save_checkpoint("s", 2));
  EXPECT_EQ(*stores_->change_feed("real").value()->load_checkpoint("s"), 2u) << "the feed is the inner store's";

  std::ofstream(dir_.sub("ok")) << "\n";  // healed
  out = events->append({add("sku-X", "c2")});
  EXPECT_TRUE(out[0].status.is_ok()) << out[0].status.to_string();
  std::vector<RecordedEvent> read;
  ASSERT_TRUE(events->read_stream("sku-X", 1, &read));
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read[0].command_id, "c2");

  std::filesystem::remove(dir_.sub("ok"));  // broken again
  out = events->append({add("sku-Y", "c4"), add("sku-X", "c5", 1)});
  EXPECT_EQ(out[0].status.code(), StatusCode::kIoError);
  EXPECT_EQ(out[1].status.code(), StatusCode::kIoError);
  EXPECT_EQ(feed->head(), 3u);
}

TEST_F(FaultyStoreTest, ItWrapsAnEventStoreOnly) {
  ASSERT_NO_FATAL_FAILURE(open("  real: {kind: memory}\n"
                               "  events: {kind: faulty, inner: real, fail_streams: sku-X}\n"));
  auto snaps = stores_->snapshot_store("events");
  ASSERT_FALSE(snaps);
  EXPECT_EQ(snaps.status().message(),
            "store 'events': a store of kind faulty wraps an event store; it cannot serve as snapshots");
  // Without a heal file it never heals.
  auto out = (*stores_->event_store("events"))->append({add("sku-X", "c1")});
  EXPECT_EQ(out[0].status.message(), "injected fault (store 'events', kind faulty): appends to stream 'sku-X' fail");
}

}  // namespace
}  // namespace orderflow::connectors
