// Kafka client plumbing without brokers: properties and secrets, the error mapping, the
// mock-cluster naming, and the command decoding shared with the HTTP API.
#include <gtest/gtest.h>

#include <cstdlib>

#include "connectors/command_codec.h"
#include "domain/orders/orders_domain.h"
#include "orderflow.pb.h"
#include "connectors/kafka_client.h"

namespace orderflow::connectors {
namespace {

TEST(KafkaProperties, ParsesPairsAndExpandsEnvironmentVariables) {
  ::setenv("ORDERFLOW_TEST_SECRET", "s3cr=t", 1);
  auto p = kafka::parse_properties(" security.protocol = SASL_SSL, sasl.password=${ORDERFLOW_TEST_SECRET} ,,linger.ms=5");
  ASSERT_TRUE(p) << p.status().to_string();
  ASSERT_EQ(p->size(), 3u);
  EXPECT_EQ((*p)[0], std::make_pair(std::string("security.protocol"), std::string("SASL_SSL")));
  EXPECT_EQ((*p)[1].second, "s3cr=t");
  EXPECT_EQ((*p)[2].first, "linger.ms");
  EXPECT_TRUE(kafka::parse_properties("")->empty());
}

TEST(KafkaProperties, RejectsMalformedPairsAndMissingVariables) {
  ::unsetenv("ORDERFLOW_TEST_MISSING");
  auto missing = kafka::parse_properties("sasl.password=${ORDERFLOW_TEST_MISSING}");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.status().message().find("ORDERFLOW_TEST_MISSING"), std::string::npos);
  EXPECT_FALSE(kafka::parse_properties("linger.ms"));
  EXPECT_FALSE(kafka::parse_properties("=5"));
  EXPECT_FALSE(kafka::parse_properties("a=${UNTERMINATED"));
}

TEST(KafkaProperties, BadPropertyIsNamedButASecretValueIsNeverEchoed) {
  auto bad = kafka::make_conf("127.0.0.1:9", {}, {{"no.such.property", "x"}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("no.such.property"), std::string::npos);
  auto secret = kafka::make_conf("127.0.0.1:9", {}, {{"sasl.mechanisms", "hunter2-not-a-mechanism"}});
  auto secret2 = kafka::make_conf("127.0.0.1:9", {}, {{"ssl.key.password.bogus", "hunter2"}});
  ASSERT_FALSE(secret2);
  EXPECT_EQ(secret2.status().message().find("hunter2"), std::string::npos) << secret2.status().message();
  EXPECT_TRUE(kafka::is_secret_key("sasl.password"));
  EXPECT_TRUE(kafka::is_secret_key("SSL.KEY.PEM"));
  EXPECT_FALSE(kafka::is_secret_key("linger.ms"));
  auto good = kafka::make_conf("127.0.0.1:9", {{"linger.ms", "1"}}, {{"linger.ms", "7"}});
  ASSERT_TRUE(good);
  char value[32];
  size_t size = sizeof value;
  ASSERT_EQ(rd_kafka_conf_get(*good, "linger.ms", value, &size), RD_KAFKA_CONF_OK);
  EXPECT_STREQ(value, "7") << "the user's properties win over the defaults";
  rd_kafka_conf_destroy(*good);
  if (secret) rd_kafka_conf_destroy(*secret);
}

// Regression: the dead-letter producer used to get only security/sasl/ssl properties, so a
// user's message.max.bytes, acks or message.timeout.ms never reached it.
TEST(KafkaProperties, ProducerGetsEveryPropertyButConsumerOnlyOnes) {
  EXPECT_TRUE(kafka::is_consumer_only("group.id"));
  EXPECT_TRUE(kafka::is_consumer_only("session.timeout.ms"));
  EXPECT_TRUE(kafka::is_consumer_only("fetch.wait.max.ms"));
  EXPECT_FALSE(kafka::is_consumer_only("message.max.bytes"));
  EXPECT_FALSE(kafka::is_consumer_only("linger.ms"));
  EXPECT_FALSE(kafka::is_consumer_only("no.such.property"));
  const kafka::Properties user = {{"fetch.wait.max.ms", "50"},     {"security.protocol", "SASL_SSL"},
                                  {"message.timeout.ms", "1500"},  {"session.timeout.ms", "6000"},
                                  {"sasl.username", "u"},          {"message.max.bytes", "2000000"},
                                  {"acks", "all"},                 {"client.rack", "r1"}};
  const kafka::Properties expected = {{"security.protocol", "SASL_SSL"}, {"message.timeout.ms", "1500"},
                                      {"sasl.username", "u"},            {"message.max.bytes", "2000000"},
                                      {"acks", "all"},                   {"client.rack", "r1"}};
  EXPECT_EQ(kafka::producer_properties(user), expected);
}

TEST(KafkaErrors, MapToStatusCodesByWhatTheCallerCanDo) {
  EXPECT_TRUE(kafka::to_status(RD_KAFKA_RESP_ERR_NO_ERROR, "x"));
  EXPECT_EQ(kafka::to_status(RD_KAFKA_RESP_ERR__QUEUE_FULL, "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(kafka::to_status(RD_KAFKA_RESP_ERR__TRANSPORT, "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(kafka::to_status(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(kafka::to_status(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(kafka::to_status(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, "x").code(), StatusCode::kNotFound);
  EXPECT_EQ(kafka::to_status(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, "x").code(), StatusCode::kIoError);
  const Status s = kafka::to_status(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, "delivery");
  EXPECT_NE(s.message().find("delivery: "), std::string::npos);
  EXPECT_NE(s.message().find("_MSG_TIMED_OUT"), std::string::npos) << s.message();
}

// What `orderflow dlq` reads from a dead letter: the source's headers are the ones after
// the last x-orderflow-error; everything before it is the original message's (even a header
// of the same name, or one from an earlier replay).
TEST(KafkaDeadLetters, HeadersSplitIntoTheOriginalsAndTheSourcesOwn) {
  const std::vector<std::pair<std::string, std::string>> headers = {
      {"content-type", "application/json"},
      {"x-orderflow-error", "a header the producer chose"},
      {"x-orderflow-replayed-from", "orders.commands.dlq/0/3"},
      {"x-orderflow-error", "not a valid command: oops"},
      {"x-orderflow-original-size", "120"},
      {"x-orderflow-source-topic", "orders.commands"},
      {"x-orderflow-source-partition", "5"},
      {"x-orderflow-source-offset", "77"},
  };
  auto d = kafka::read_dead_letter_headers(headers, 120);
  EXPECT_TRUE(d.from_source);
  EXPECT_EQ(d.reason, "not a valid command: oops");
  EXPECT_EQ(d.source_topic, "orders.commands");
  EXPECT_EQ(d.source_partition, 5);
  EXPECT_EQ(d.source_offset, 77);
  EXPECT_EQ(d.original_size, 120);
  EXPECT_FALSE(d.truncated);
  EXPECT_FALSE(d.headers_dropped);
  ASSERT_EQ(d.original.size(), 3u);
  EXPECT_EQ(d.original[1].second, "a header the producer chose");

  // Shorter than the original (with or without the truncated header), headers dropped.
  EXPECT_TRUE(kafka::read_dead_letter_headers(headers, 100).truncated);
  auto cut = headers;
  cut.push_back({"x-orderflow-headers-dropped", "2"});
  cut.push_back({"x-orderflow-truncated", "120"});
  d = kafka::read_dead_letter_headers(cut, 120);
  EXPECT_TRUE(d.truncated);
  EXPECT_TRUE(d.headers_dropped);

  // Not written by a source: nothing is taken for the source's, numbers that are not are unknown.
  d = kafka::read_dead_letter_headers({{"content-type", "application/json"}}, 10);
  EXPECT_FALSE(d.from_source);
  EXPECT_EQ(d.original.size(), 1u);
  d = kafka::read_dead_letter_headers({{"x-orderflow-error", "r"}, {"x-orderflow-source-offset", "-3"},
                                       {"x-orderflow-source-partition", "99999999999"}},
                                      0);
  EXPECT_TRUE(d.from_source);
  EXPECT_EQ(d.source_offset, -1);
  EXPECT_EQ(d.source_partition, -1);
  EXPECT_EQ(d.original_size, -1);
  EXPECT_FALSE(d.truncated);
}

TEST(KafkaMock, MockNamesStartOneClusterPerSizeAndRejectBadSizes) {
  EXPECT_FALSE(kafka::resolve_brokers("mock:0"));
  EXPECT_FALSE(kafka::resolve_brokers("mock:x"));
  EXPECT_FALSE(kafka::resolve_brokers(""));
  EXPECT_EQ(*kafka::resolve_brokers("10.0.0.1:9092"), "10.0.0.1:9092");
  auto a = kafka::resolve_brokers("mock:2");
  ASSERT_TRUE(a) << a.status().to_string();
  EXPECT_EQ(std::count(a->begin(), a->end(), ','), 1) << *a;
  EXPECT_EQ(a->rfind("127.0.0.1:", 0), 0u) << "loopback only: " << *a;
  EXPECT_EQ(*kafka::resolve_brokers("mock:2"), *a) << "the same name is the same cluster";
  EXPECT_TRUE(kafka::ensure_mock_topic("mock:2", "t", 3));
  EXPECT_TRUE(kafka::ensure_mock_topic("mock:2", "t", 3)) << "creating it again is fine";
}

TEST(CommandCodec, DecodesJsonAndBinaryAndExplainsWhatIsWrong) {
  EXPECT_EQ(*command_format(""), CommandFormat::kJson);
  EXPECT_EQ(*command_format("application/json; charset=utf-8"), CommandFormat::kJson);
  EXPECT_EQ(*command_format("Application/X-Protobuf"), CommandFormat::kBinary);
  EXPECT_FALSE(command_format("text/plain"));
  const Domain& domain = *orders::orders_domain();
  auto as = [](const Result<MessagePtr>& m) -> const v1::Command& { return static_cast<const v1::Command&>(**m); };

  auto json = decode_command(domain, R"({"commandId":"c1","addStock":{"sku":"A","quantity":3}})", CommandFormat::kJson);
  ASSERT_TRUE(json) << json.status().to_string();
  EXPECT_EQ(as(json).add_stock().quantity(), 3);
  auto binary = decode_command(domain, (*json)->SerializeAsString(), CommandFormat::kBinary);
  ASSERT_TRUE(binary);
  EXPECT_EQ(as(binary).command_id(), "c1");

  auto no_id = decode_command(domain, R"({"addStock":{"sku":"A","quantity":3}})", CommandFormat::kJson, "kafka:t:0:7");
  ASSERT_TRUE(no_id) << no_id.status().to_string();
  EXPECT_EQ(as(no_id).command_id(), "kafka:t:0:7");
  EXPECT_FALSE(decode_command(domain, R"({"addStock":{"sku":"A","quantity":3}})", CommandFormat::kJson))
      << "without a default, a command id is required";
  EXPECT_FALSE(decode_command(domain, R"({"commandId":"c","addStock":{"sku":"A","quantity":0}})", CommandFormat::kJson));
  EXPECT_FALSE(decode_command(domain, R"({"commandId":"c","reserveStock":{"sku":"A","orderId":"o","quantity":1}})",
                              CommandFormat::kJson));
  EXPECT_FALSE(decode_command(domain, "\xff\xff\xff", CommandFormat::kBinary));
  auto truncated = decode_command(domain, "{\"commandId\":", CommandFormat::kJson);
  ASSERT_FALSE(truncated);
  EXPECT_EQ(truncated.status().message().find('\n'), std::string::npos)
      << "one line, no caret: " << truncated.status().message();
  auto saga_id = decode_command(domain, R"({"commandId":"saga/order-o1/1/reserve/A","addStock":{"sku":"A","quantity":1}})",
                                CommandFormat::kJson);
  ASSERT_FALSE(saga_id);
  EXPECT_NE(saga_id.status().message().find("are the saga's"), std::string::npos) << saga_id.status().message();
  auto no_kind = decode_command(domain, R"({"commandId":"c"})", CommandFormat::kJson);
  ASSERT_FALSE(no_kind);
  EXPECT_NE(no_kind.status().message().find("clients send one of placeOrder, cancelOrder, shipOrder, addStock"),
            std::string::npos)
      << no_kind.status().message();
}

}  // namespace
}  // namespace orderflow::connectors
