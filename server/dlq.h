// `orderflow dlq`: the dead letters of a graph's kafka_source (its dead_letter_topic), for
// operators: list them, inspect one, replay them into the pipeline.
//
//   dlq list GRAPH [--brokers B] [--source NODE] [--partition P] [--from-offset N] [--limit N] [--json]
//       one line per dead letter: where it is in the dead-letter topic, when it was
//       dead-lettered, the original topic/partition/offset, key, size, truncated, reason
//   dlq inspect GRAPH --partition P --offset O [--json] [--hex]
//       one dead letter in full: every header and the value (text when it is valid UTF-8,
//       else escaped and a hex dump; control bytes and bidirectional marks escaped, never raw)
//   dlq replay GRAPH (--partition P --offset O | --all [--partition P] [--from-offset N] [--limit N])
//                    [--to TOPIC] [--dry-run]
//       produces the original value with its original key and headers to the original
//       topic (or --to, which must exist) with x-orderflow-replayed-from:
//       DLQTOPIC/PARTITION/OFFSET; refuses a dead letter that is not the whole original
//       (truncated, headers dropped)
//
// Reading uses a consumer that assigns partitions itself, joins no group and never commits,
// and asks for no topic by name (brokers that auto-create topics would create it): listing
// and inspecting change nothing. The brokers are the kafka_source's (${ENV} expands)
// unless --brokers says otherwise; a graph on `mock:N` needs --brokers (its cluster lives in
// the server process). The source's `properties` (security settings) apply, consumer-group
// ones aside. Exit codes: 0 done, 1 Kafka failed, nothing found or a dead letter refused,
// 2 bad usage (also a graph without a kafka_source).
#pragma once

#include "graph/definition.h"

namespace CLI {
class App;
}

namespace orderflow::server {

// Adds `dlq` and its subcommands to `app`; a chosen one runs in the parser's callback and
// leaves its exit code in *exit_code. `registry` and `exit_code` must outlive app.parse().
void add_dlq_command(CLI::App& app, const graph::KindRegistry& registry, int* exit_code);

}  // namespace orderflow::server
