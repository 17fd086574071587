// Shared librdkafka plumbing for the Kafka connectors (kafka_source, kafka_sink):
// client configuration from graph parameters, the in-process mock cluster behind
// `brokers: mock:N`, and the one place where librdkafka error codes become Status.
// Included only by the Kafka connector sources and their tests (it pulls in rdkafka.h).
#pragma once

#include <librdkafka/rdkafka.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "graph/status.h"
#include "graph/domain.h"
#include "graph/store.h"

namespace orderflow::connectors::kafka {

using Properties = std::vector<std::pair<std::string, std::string>>;

// "mock:N" (1 <= N <= 16) starts, once per process and per N, a librdkafka mock cluster of
// N brokers on loopback and returns its bootstrap list; anything else is returned as given
// (a comma-separated host:port list). Mock clusters live until the process exits, so
// several nodes (a source and a sink) naming the same "mock:N" share one cluster.
Result<std::string> resolve_brokers(const std::string& brokers);
bool is_mock(const std::string& brokers);

// Creates `topic` with `partitions` partitions on the mock cluster behind `brokers`; a no-op
// for real brokers (topics there are provisioned by their operators) and for a topic the
// mock already has.
Status ensure_mock_topic(const std::string& brokers, const std::string& topic, int partitions);

// Parses "key=value,key=value" client properties. ${NAME} in a value is replaced by the
// environment variable NAME (an error if it is unset), so secrets such as
// sasl.password=${KAFKA_PASSWORD} never sit in the graph file.
Result<Properties> parse_properties(const std::string& text);

// Keys whose values are never logged or shown (passwords, keys, secrets, tokens).
bool is_secret_key(const std::string& key);

// True for a property librdkafka documents as consumer-only (group.id, session.timeout.ms,
// fetch.wait.max.ms, ...). Taken from librdkafka's own property table, so it follows the
// linked version; an unknown key is not consumer-only.
bool is_consumer_only(const std::string& key);

// The user's properties that apply to a producer: all but the consumer-only ones (which a
// producer ignores with a warning line each). A consumer's properties reach its helper
// producers this way (the kafka_source's dead-letter producer).
Properties producer_properties(const Properties& user);

// A librdkafka configuration: bootstrap servers, then `defaults` (our settings), then the
// user's properties, which win. Fails with a clear message naming the bad property (its
// value is not echoed for secret keys). The caller owns the result (or passes it to
// rd_kafka_new, which takes it over).
Result<rd_kafka_conf_t*> make_conf(const std::string& bootstrap, const Properties& defaults,
                                   const Properties& user);

// The mapping of librdkafka errors: retriable and transport errors -> kUnavailable,
// message too large / invalid -> kInvalidArgument, unknown topic -> kNotFound, the rest ->
// kIoError. `context` prefixes the message.
Status to_status(rd_kafka_resp_err_t err, const std::string& context);

// How kafka_source reads one message (pure; kept apart so it can be fuzzed):
// The value of the last "content-type" header, empty when there is none (hdrs may be null).
std::string content_type_of(const rd_kafka_headers_t* hdrs);
// Every header as (name, value) in order; a header without a value gets an empty one.
std::vector<std::pair<std::string, std::string>> headers_of(const rd_kafka_headers_t* hdrs);
// The command a message's value holds, by its content type; kInvalidArgument with the
// reason its dead letter carries: empty, larger than max_message_bytes, an unknown content
// type, undecodable or malformed. A command without an id gets default_id.
Result<MessagePtr> decode_message(const Domain& domain, const void* payload, size_t len,
                                  std::string_view content_type, size_t max_message_bytes,
                                  const std::string& default_id);

// `pattern` with every "{domain}" replaced by the graph's domain name (kafka_source's
// topics and dead_letter_topic).
std::string with_domain(std::string pattern, const std::string& domain);

// The headers kafka_source adds to a dead letter, after the original message's own.
inline constexpr const char* kDeadLetterError = "x-orderflow-error";  // the reason; the first of ours
inline constexpr const char* kDeadLetterOriginalSize = "x-orderflow-original-size";
inline constexpr const char* kDeadLetterSourceTopic = "x-orderflow-source-topic";
inline constexpr const char* kDeadLetterSourcePartition = "x-orderflow-source-partition";
inline constexpr const char* kDeadLetterSourceOffset = "x-orderflow-source-offset";
inline constexpr const char* kDeadLetterTruncated = "x-orderflow-truncated";  // the original size
inline constexpr const char* kDeadLetterHeadersDropped = "x-orderflow-headers-dropped";  // how many
// The reason of a dead letter a kafka_source parked (park_after: a command that kept failing
// while other commands went through) starts with this; `orderflow dlq` and the admin API
// show such dead letters as "parked". The same words as a saga's parked reactions.
inline constexpr const char* kParkedReasonPrefix = orderflow::kParkedReasonPrefix;
// Added by `orderflow dlq replay` to a replayed message: "dlqtopic/partition/offset".
inline constexpr const char* kReplayedFrom = "x-orderflow-replayed-from";

// What a dead letter's headers say about it (pure; `orderflow dlq` reads it).
struct DeadLetterHeaders {
  bool from_source = false;    // it has kafka_source's headers (an x-orderflow-error)
  std::string reason;
  std::string source_topic;    // empty when unknown
  int32_t source_partition = -1;
  int64_t source_offset = -1;
  int64_t original_size = -1;  // bytes of the original value; -1 when unknown
  bool truncated = false;      // the value is shorter than the original's
  bool headers_dropped = false;  // the original message's headers did not fit
  // The original message's headers: everything before the last x-orderflow-error (a header
  // of that name in the original message stays with it).
  std::vector<std::pair<std::string, std::string>> original;
};
// `headers` in order, as headers_of() gives them; `value_size` the dead letter's value bytes.
DeadLetterHeaders read_dead_letter_headers(const std::vector<std::pair<std::string, std::string>>& headers,
                                           size_t value_size);

}  // namespace orderflow::connectors::kafka
