// Decoding of client commands shared by the ingest connectors (HTTP, Kafka), so both apply
// the same rules: the protobuf JSON mapping of the domain's command message (unknown fields
// are errors) or its binary form, only the domain's public commands, shape checked by
// Domain::validate. Thread-safe (pure functions).
#pragma once

#include <string>
#include <string_view>

#include "graph/status.h"
#include "graph/domain.h"

namespace orderflow::connectors {

enum class CommandFormat { kJson, kBinary };

// Maps a content type ("application/json", "application/x-protobuf", ...; parameters such
// as "; charset=utf-8" ignored; empty = JSON) to a format. kInvalidArgument if unknown.
Result<CommandFormat> command_format(std::string_view content_type);

// Parses and checks one client command. kInvalidArgument with a reason a client can act
// on: not parseable, an internal (saga-only) command, or a malformed shape. A command
// without a commandId gets `default_id` when it is not empty (Kafka derives one from the
// message's topic, partition and offset, so a redelivery keeps its id).
Result<MessagePtr> decode_command(const Domain& domain, std::string_view body, CommandFormat format,
                                  const std::string& default_id = "");

// The fast path of decode_command's JSON: parses `body` into `m` (empty on entry) when it
// has the common shape of a command (plain ASCII strings, integers, booleans, objects and
// arrays, field names known, each once, one member per oneof) and returns true; returns
// false with `m` cleared for anything else, which protobuf's JSON parser then decides. What
// it accepts, protobuf's parser parses to the same message.
bool parse_plain_json(std::string_view body, google::protobuf::Message* m);

}  // namespace orderflow::connectors
