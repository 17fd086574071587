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

namespace orderflow::connectors {

Result<std::unique_ptr<RuntimeNode>> make_kafka_source(const graph::NodeDef& def, BuildContext& context);
Result<std::unique_ptr<RuntimeNode>> make_kafka_sink(const graph::NodeDef& def, BuildContext& context);

}  // namespace orderflow::connectors
