// The JSON fast path of command decoding (connectors/command_codec.h) against protobuf's
// own parser: what the fast path accepts must be exactly what protobuf makes of it, and
// whatever it declines still decodes (or fails) as protobuf decides.
#include <gtest/gtest.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <random>
#include <string>
#include <vector>

#include "connectors/command_codec.h"
#include "domain/orders/orders.h"
#include "domain/orders/orders_domain.h"

namespace orderflow::connectors {
namespace {

// protobuf's answer for `body`: the message, or nothing when it refuses it.
bool protobuf_parse(const std::string& body, v1::Command* out) {
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = false;
  return google::protobuf::util::JsonStringToMessage(body, out, opts).ok();
}

// Whether the fast path took `body`; fails the test when it took it into another message
// than protobuf's, or took what protobuf refuses.
bool fast_agrees(const std::string& body) {
  v1::Command fast, slow;
  const bool took = parse_plain_json(body, &fast);
  const bool ok = protobuf_parse(body, &slow);
  if (took) {
    EXPECT_TRUE(ok) << "the fast path took what protobuf refuses: " << body;
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(fast, slow))
        << body << "\n fast: " << fast.ShortDebugString() << "\n protobuf: " << slow.ShortDebugString();
  } else {
    EXPECT_EQ(fast.ByteSizeLong(), 0u) << "a declined body leaves the message empty: " << body;
  }
  return took;
}

TEST(CommandJsonFastPath, TakesTheCommonShapesIntoProtobufsMessage) {
  const std::vector<std::string> common = {
      R"({"commandId":"c1","addStock":{"sku":"A","quantity":3}})",
      R"({"commandId":"c-2","placeOrder":{"orderId":"o1","customerId":"cu","lines":[{"sku":"A","quantity":2,"unitPriceCents":1999},{"sku":"B","quantity":1}]}})",
      " {\n  \"commandId\" : \"c3\" ,\r\n\t\"cancelOrder\" : { \"orderId\" : \"o1\", \"reason\": \"changed my mind\" } } \n",
      R"({"command_id":"c4","ship_order":{"order_id":"o1"}})",  // proto names
      R"({"commandId":"c5","placeOrder":{"orderId":"o1","customerId":"c","lines":[]}})",
      R"({"commandId":"c6","addStock":{}})",
      R"({"addStock":{"sku":"A","quantity":-2147483648}})",
      R"({"addStock":{"sku":"A","quantity":2147483647}})",
      R"({"addStock":{"sku":"A","quantity":0}})",
      R"({"releaseStock":{"sku":"A","orderId":"o","shipped":true}})",
      R"({"reserveStock":{"sku":"A","orderId":"o","quantity":4}})",
      R"({})",
      R"({"commandId":""})",
      R"({"commandId":"saga/order-o1/1/reserve/A","reserveStock":{"sku":"A","orderId":"o1","quantity":1}})",
  };
  for (const auto& body : common) EXPECT_TRUE(fast_agrees(body)) << "declined: " << body;
}

TEST(CommandJsonFastPath, DeclinesTheRestAndProtobufDecides) {
  const std::vector<std::string> rest = {
      R"({"commandId":"c\u0031","addStock":{"sku":"A","quantity":3}})",       // escape
      R"({"commandId":"c\"1"})",                                             // escape
      "{\"commandId\":\"c\xc3\xa9\"}",                                       // UTF-8
      "{\"commandId\":\"c\xff\"}",                                           // not UTF-8
      R"({"addStock":{"sku":"A","quantity":3.0}})",                          // fraction
      R"({"addStock":{"sku":"A","quantity":3e0}})",                          // exponent
      R"({"addStock":{"sku":"A","quantity":"3"}})",                          // quoted number
      R"({"addStock":{"sku":"A","quantity":2147483648}})",                   // out of range
      R"({"addStock":{"sku":"A","quantity":-0}})",
      R"({"addStock":{"sku":"A","quantity":03}})",
      R"({"addStock":{"sku":"A","quantity":null}})",
      R"({"addStock":null})",
      R"({"commandId":"a","commandId":"b"})",                                // repeated key
      R"({"commandId":"a","command_id":"b"})",                               // same field twice
      R"({"addStock":{"sku":"A"},"shipOrder":{"orderId":"o"}})",              // two of a oneof
      R"({"launchRocket":{}})",                                              // unknown name
      R"({"commandId":"c1"} x)",                                             // trailing bytes
      R"({"commandId":"c1",})",
      R"([{"commandId":"c1"}])",
      R"("c1")",
      "",
      "{",
      R"({"commandId":"c1")",
      R"({"placeOrder":{"lines":{"sku":"A"}}})",
      R"({"placeOrder":{"lines":[{"sku":"A"},]}})",
      R"({"releaseStock":{"shipped":1}})",
      R"({"releaseStock":{"shipped":True}})",
      "{\"commandId\":\"c\x01\"}",
      "\xef\xbb\xbf{\"commandId\":\"c1\"}",                                   // BOM
      "{\v\"commandId\":\"c1\"}",
  };
  for (const auto& body : rest) EXPECT_FALSE(fast_agrees(body)) << "took: " << body;

  // Declined is not refused: decode_command hands those to protobuf's parser.
  const Domain& domain = *orders::orders_domain();
  auto escaped = decode_command(domain, R"({"commandId":"c\u0031","addStock":{"sku":"A","quantity":3}})",
                                CommandFormat::kJson);
  ASSERT_TRUE(escaped) << escaped.status().to_string();
  EXPECT_EQ(static_cast<const v1::Command&>(**escaped).command_id(), "c1");
  auto quoted = decode_command(domain, R"({"commandId":"c2","addStock":{"sku":"A","quantity":"3"}})",
                               CommandFormat::kJson);
  ASSERT_TRUE(quoted) << quoted.status().to_string();
  EXPECT_EQ(static_cast<const v1::Command&>(**quoted).add_stock().quantity(), 3);
  auto unknown = decode_command(domain, R"({"commandId":"c3","launchRocket":{}})", CommandFormat::kJson);
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.status().message().find("launchRocket"), std::string::npos) << unknown.status().to_string();
}

// Mutations of the common shapes (bytes dropped, doubled, replaced by JSON's punctuation):
// whatever the fast path takes, protobuf takes into the same message.
TEST(CommandJsonFastPath, AgreesWithProtobufOnMutatedCommands) {
  const std::vector<std::string> seeds = {
      R"({"commandId":"c-2","placeOrder":{"orderId":"o1","customerId":"cu","lines":[{"sku":"A","quantity":2,"unitPriceCents":1999},{"sku":"B","quantity":1}]}})",
      R"({"command_id":"c4","reserveStock":{"sku":"A","order_id":"o","quantity":12}})",
  };
  const std::string alphabet = "{}[],:\"0123456789-.eE tfnrua\\";
  std::mt19937 rng(20261203);
  int taken = 0, total = 0;
  for (const auto& seed : seeds) {
    for (int i = 0; i < 4000; ++i) {
      std::string body = seed;
      const int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits && !body.empty(); ++e) {
        const size_t at = rng() % body.size();
        switch (rng() % 3) {
          case 0: body.erase(at, 1); break;
          case 1: body.insert(at, 1, body[at]); break;
          default: body[at] = alphabet[rng() % alphabet.size()];
        }
      }
      ++total;
      if (fast_agrees(body)) ++taken;
      if (HasFailure()) return;
    }
  }
  // Both sides were exercised: some mutants keep the common shape (a few hundred of 8,000:
  // a changed digit, a dropped space), most do not.
  EXPECT_GT(taken, 100);
  EXPECT_LT(taken, total - 100);
}

}  // namespace
}  // namespace orderflow::connectors
