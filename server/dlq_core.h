// The Kafka side of `orderflow dlq`, shared by the command line (server/dlq.cc, which talks
// to Kafka itself) and the admin API of a running server (server/admin.cc,
// GET /api/v1/admin/dead-letters and POST .../replay): which dead-letter topic and brokers a
// kafka_source has, reading dead letters without changing anything, describing them in
// JSON, and replaying them. Not thread-safe per call; calls share nothing, so several may
// run at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "connectors/kafka.h"
#include "connectors/kafka_client.h"
#include "graph/definition.h"
#include "graph/json.h"
#include "graph/status.h"

namespace google::protobuf {
class Struct;
}

namespace orderflow::server::dlq {

using Headers = std::vector<std::pair<std::string, std::string>>;

inline constexpr int64_t kDefaultListLimit = 100;

// One kafka_source's dead-letter topic, where to reach it and how.
struct Target {
  std::string node_id;
  std::string topic;                        // its dead-letter topic
  std::string brokers;                      // bootstrap list
  connectors::kafka::Properties properties;  // its `properties`
  size_t max_message_bytes = 0;
};

// The target of kafka_source `node` of `def`. `brokers` replaces the node's when not empty.
// `in_server`: called inside the server process, where a `mock:N` broker list names the mock
// cluster that process runs; elsewhere mock:N is refused (it would start an empty one).
// kInvalidArgument with the reason when it cannot be reached that way.
Result<Target> target_of(const graph::GraphDef& def, const graph::KindRegistry& registry, const graph::NodeDef& node,
                         const std::string& brokers, bool in_server);

struct DeadLetter {
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp_ms = -1;  // when it was dead-lettered; -1 unknown
  bool has_key = false;
  std::string key, value;
  Headers headers;
  connectors::kafka::DeadLetterHeaders about;
};

// Which dead letters: one partition or all, from an offset, at most `limit` (0: all).
struct Selection {
  std::optional<int32_t> partition;
  int64_t from_offset = 0;
  size_t limit = 0;
};

// The selected dead letters in partition and offset order; *more when the limit left some
// out. kNotFound when the topic or partition does not exist; kUnavailable and others when
// Kafka does not answer within `timeout`.
Status read_dead_letters(const Target& t, const Selection& s, std::chrono::seconds timeout,
                         std::vector<DeadLetter>* out, bool* more);
// The dead letter at partition/offset; kNotFound saying what the partition holds.
Result<DeadLetter> read_dead_letter(const Target& t, int32_t partition, int64_t offset, std::chrono::seconds timeout);

// A dead letter a kafka_source parked (its reason starts with kParkedReasonPrefix).
bool is_parked(const DeadLetter& d);
// Empty when `d` can be replayed to `to` (its source topic when empty), else why not.
std::string why_not_replayable(const DeadLetter& d, const std::string& to, const std::string& dlq_topic);

// The fields of one dead letter that `dlq list --json`, `inspect --json` and the admin API
// share: topic, partition, offset, timestamp_ms, key, reason, source, size, original_size,
// truncated, headers_dropped, from_source, kind ("parked" | "dead_letter"), replayable,
// not_replayable_because (when not).
void describe(JsonWriter& w, const std::string& topic, const DeadLetter& d);
// describe() plus the headers and the value (text, or value_hex): `inspect --json`.
void describe_in_full(JsonWriter& w, const std::string& topic, const DeadLetter& d, bool force_hex);
// The inverse of describe() / describe_in_full() (what a client of the admin API reads);
// false when `json` is not such an object.
bool parse_described(const std::string& json, DeadLetter* out);
bool parse_described(const google::protobuf::Struct& json, DeadLetter* out);

// The outcome of replaying one dead letter.
struct Replayed {
  int32_t partition = 0;  // in the dead-letter topic
  int64_t offset = 0;
  std::string refused;    // why it was not replayed; empty when it was (or would be)
  std::string topic;      // where it went (or would go)
  Status delivery;        // the producer's outcome (ok on a dry run)
  int32_t to_partition = -1;
  int64_t to_offset = -1;
};

// Replays `found` (each to its source topic, or `to`), the refused ones named; only to topics
// that exist. With dry_run nothing is produced. An error when Kafka cannot be asked at all.
Status replay(const Target& t, const std::vector<DeadLetter>& found, const std::string& to, bool dry_run,
              std::chrono::seconds timeout, std::vector<Replayed>* out);

std::string where(const std::string& topic, int32_t partition, int64_t offset);

// `bytes` with each byte that is not UTF-8 replaced by U+FFFD: what goes into a JSON string.
std::string as_text(const std::string& bytes);

}  // namespace orderflow::server::dlq
