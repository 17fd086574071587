// Kafka connectors (librdkafka), as node kinds of the graph (declared in nodes/builder.cc):
//
//   kafka_source  a consumer-group member: decodes each message into a command (protobuf
//                 JSON, or binary by content-type header) and submits it to its route;
//                 offsets are committed only past commands that are durably committed (or
//                 dead-lettered), in order per partition; partitions pause while the
//                 pipeline is full; undecodable or malformed messages go to a dead-letter
//                 topic with the reason in headers.
//   kafka_sink    a change-feed subscriber: publishes committed events with an idempotent
//                 producer, key = stream id, topic by event category; its checkpoint moves
//                 only past delivered events.
//
// add_kafka_factories() installs both into BuildOptions. Nodes are owned by the Pipeline.
// librdkafka headers stay in the .cc files.
#pragma once

#include "nodes/builder.h"

namespace orderflow::connectors {

void add_kafka_factories(BuildOptions& options);

}  // namespace orderflow::connectors
