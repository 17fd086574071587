// Inputs the libFuzzer targets in fuzz/ found crashing, fed through the same public
// functions; each test names what broke. The sanitizer build (`make sanitize`) also catches
// a return of undefined behaviour here.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "connectors/cosmos_store.h"

namespace orderflow::connectors {
namespace {

// Regression: a change-feed answer whose "Documents" was not an array threw out of the feed
// view (cpprestsdk's json_exception "not an array") and ended the process.
TEST(FuzzRegressions, CosmosChangeFeedPageWithoutADocumentsArrayIsAnError) {
  for (const char* body : {R"({"Documents":0})", R"({"Documents":{"events":["AA=="]}})", R"({"Documents":"x"})"}) {
    std::vector<RecordedEvent> out;
    Status s = Status::ok();
    EXPECT_NO_THROW(s = parse_change_feed_page(body, 1, &out)) << body;
    EXPECT_EQ(s.code(), StatusCode::kIoError) << body;
    EXPECT_TRUE(out.empty()) << body;
  }
  // The same for the answer not being an object at all, and not being JSON.
  for (const char* body : {"[1,2]", "17", "{\"Documents\":[", ""}) {
    std::vector<RecordedEvent> out;
    EXPECT_FALSE(parse_change_feed_page(body, 1, &out)) << body;
    EXPECT_TRUE(out.empty()) << body;
  }
}

// Regression: a firstVersion or committedAtUs beyond 2^64 (or negative) was cast from double
// to an unsigned integer: undefined behaviour (UndefinedBehaviorSanitizer: "1.7e+73 is
// outside the range of representable values"). Such a number now reads as absent (0).
TEST(FuzzRegressions, CosmosNumbersOutOfRangeReadAsAbsent) {
  std::vector<RecordedEvent> out;
  ASSERT_TRUE(parse_change_feed_page(
      R"({"Documents":[{"streamId":"s","commandId":"c","firstVersion":1.7e73,"committedAtUs":-5,"events":["AQI="]},)"
      R"({"streamId":"t","firstVersion":18446744073709551615,"committedAtUs":12,"events":["AQI=","AwQ="]}]})",
      10, &out));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].version, 0u);
  EXPECT_EQ(out[0].committed_at_us, 0);
  EXPECT_EQ(out[0].payload, std::string("\x01\x02"));
  EXPECT_EQ(out[1].version, 18446744073709551615ull) << "an exact 64-bit integer is kept";
  EXPECT_EQ(out[1].committed_at_us, 12);
  EXPECT_EQ(out[2].position, 12u);
}

// The documents of a transactional batch share one commit: a page may list them in any
// order. Each stream's events still come out in version order, in the places its documents
// take, with positions in the order given out (not a fuzz regression: the same parser).
TEST(FuzzRegressions, CosmosPageGivesEachStreamsDocumentsInVersionOrder) {
  std::vector<RecordedEvent> out;
  ASSERT_TRUE(parse_change_feed_page(
      R"({"Documents":[{"streamId":"s","firstVersion":3,"commands":[{"id":"c","n":1}],"events":["Aw=="]},)"
      R"({"streamId":"t","firstVersion":1,"commandId":"x","events":["CQ=="]},)"
      R"({"streamId":"s","firstVersion":1,"commands":[{"id":"a","n":1},{"id":"b","n":1}],"events":["AQ==","Ag=="]}]})",
      5, &out));
  ASSERT_EQ(out.size(), 4u);
  const std::vector<std::pair<std::string, uint64_t>> want{{"s", 1}, {"s", 2}, {"t", 1}, {"s", 3}};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(out[i].stream, want[i].first) << i;
    EXPECT_EQ(out[i].version, want[i].second) << i;
    EXPECT_EQ(out[i].position, 5 + i) << i;
  }
  EXPECT_EQ(out[0].command_id, "a");
  EXPECT_EQ(out[3].command_id, "c");
}

// A page with an undecodable event is refused whole: nothing of it is taken.
TEST(FuzzRegressions, CosmosPageWithABadEventTakesNothing) {
  std::vector<RecordedEvent> out;
  EXPECT_FALSE(parse_change_feed_page(
      R"({"Documents":[{"streamId":"s","firstVersion":1,"events":["AQI="]},{"streamId":"t","events":[5]}]})", 1, &out));
  EXPECT_TRUE(out.empty());
}

// A grouped commit document gives each event its own command; a command list that does not
// add up to the events (or is not a list of {id, n}) refuses the page whole, without throwing.
TEST(FuzzRegressions, CosmosGroupedDocumentsNameEachEventsCommandOrRefuseThePage) {
  std::vector<RecordedEvent> out;
  ASSERT_TRUE(parse_change_feed_page(
      R"({"Documents":[{"streamId":"s","firstVersion":4,"commands":[{"id":"a","n":1},{"id":"b","n":2}],)"
      R"("events":["AQI=","AwQ=","BQY="]}]})",
      1, &out));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].command_id, "a");
  EXPECT_EQ(out[1].command_id, "b");
  EXPECT_EQ(out[2].command_id, "b");
  EXPECT_EQ(out[2].version, 6u);
  for (const char* commands : {R"([{"id":"a","n":1}])", R"([{"id":"a","n":2},{"id":"b","n":2}])", R"([{"id":"a","n":0}])",
                               R"([{"id":"a","n":-1},{"id":"b","n":4}])", R"([7])", R"({"id":"a","n":3})", R"("ab")"}) {
    std::vector<RecordedEvent> bad;
    const std::string body = std::string(R"({"Documents":[{"streamId":"s","firstVersion":1,"commands":)") + commands +
                             R"(,"events":["AQI=","AwQ=","BQY="]}]})";
    Status s = Status::ok();
    EXPECT_NO_THROW(s = parse_change_feed_page(body, 1, &bad)) << commands;
    EXPECT_EQ(s.code(), StatusCode::kIoError) << commands;
    EXPECT_TRUE(bad.empty()) << commands;
  }
}

}  // namespace
}  // namespace orderflow::connectors
