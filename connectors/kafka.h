// Kafka connectors (librdkafka), as node kinds of the graph (registered by
// connectors/kinds.h):
//
//   kafka_source  a consumer-group member: decodes each message into a command of the
//                 graph's domain (protobuf JSON, or binary by content-type header) and
//                 submits it to its route; offsets are committed only past commands that
//                 are durably committed (or dead-lettered), in order per partition;
//                 partitions pause while the pipeline is full; undecodable or malformed
//                 messages go to a dead-letter topic with the reason in headers.
//   kafka_sink    a change-feed subscriber: publishes committed events with an idempotent
//                 producer, key = stream id, topic by the domain's category of the stream;
//                 its checkpoint moves only past delivered events.
//
// Nodes are owned by the Pipeline. librdkafka headers stay in the .cc files.
#pragma once

#include <memory>

#include "graph/build.h"
#include "graph/options.h"

namespace orderflow::connectors {

struct KafkaSourceOptions {
  std::string brokers;                           // host:port[,host:port], or mock:N (required)
  // {domain} in the two topic names is the graph's domain ("orders.commands" for orders).
  std::string topics = "{domain}.commands";      // command topics, comma-separated
  std::string group = "orderflow";               // consumer group id
  std::string dead_letter_topic = "{domain}.commands.dlq";  // undecodable or malformed messages
  int64_t max_message_bytes = 1048576;           // larger messages are dead-lettered
  int64_t max_in_flight = 5000;                  // submitted, not yet finished; more pauses
  int commit_interval_ms = 200;                  // how often finished offsets are committed
  int partitions = 8;                            // partitions of topics created on a mock cluster
  std::string properties;                        // librdkafka properties k=v,k=v; ${ENV} expands
  // A command that failed this many times (retried with a growing backoff, 0.1 s doubling up
  // to 5 s) while other commands of the source went through is poison: it is parked on the
  // dead-letter topic with its reason and its partition moves on. 0 = retry for ever.
  int park_after = 10;
};
const graph::Options<KafkaSourceOptions>& kafka_source_options();

struct KafkaSinkOptions {
  std::string brokers;                           // as the source's (required)
  std::string topic = "{category}.events";       // {category}: the domain's category of the stream
  std::string format = "json";                   // json or binary
  int partitions = 8;                            // partitions of topics created on a mock cluster
  std::string properties;                        // librdkafka properties k=v,k=v; ${ENV} expands
};
const graph::Options<KafkaSinkOptions>& kafka_sink_options();

Result<std::unique_ptr<RuntimeNode>> make_kafka_source(const graph::NodeDef& def, BuildContext& context);
Result<std::unique_ptr<RuntimeNode>> make_kafka_sink(const graph::NodeDef& def, BuildContext& context);

}  // namespace orderflow::connectors
