// Command decoding as the HTTP and Kafka sources do it (connectors/command_codec.h).
// Input: one byte choosing the format (even: JSON, odd: binary protobuf), then the body.
// Checks beyond "no crash": an accepted command is one a client may send and passes the
// domain's shape check; an accepted JSON command printed back as JSON decodes to the same;
// the JSON fast path agrees with protobuf's parser on what it takes.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <google/protobuf/stubs/logging.h>

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "connectors/command_codec.h"
#include "domain/orders/orders.h"
#include "domain/orders/orders_domain.h"

using orderflow::connectors::CommandFormat;

// protobuf logs every string field with invalid UTF-8 it refuses; the refusal is what is
// checked here, the log line only slows the run.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const CommandFormat format = data[0] % 2 == 0 ? CommandFormat::kJson : CommandFormat::kBinary;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  // The content-type parser sees the same bytes (the Kafka header and HTTP header path).
  (void)orderflow::connectors::command_format(body.substr(0, 64));
  // The JSON fast path takes only what protobuf's parser takes, into the same message.
  if (format == CommandFormat::kJson) {
    orderflow::v1::Command fast, slow;
    if (orderflow::connectors::parse_plain_json(body, &fast)) {
      google::protobuf::util::JsonParseOptions opts;
      if (!google::protobuf::util::JsonStringToMessage(std::string(body), &slow, opts).ok() ||
          !google::protobuf::util::MessageDifferencer::Equals(fast, slow))
        std::abort();
    }
  }
  const orderflow::Domain& domain = *orderflow::orders::orders_domain();
  auto decoded = orderflow::connectors::decode_command(domain, body, format, "fuzz-default-id");
  if (!decoded) {
    if (decoded.status().code() != orderflow::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  const auto* cmd = static_cast<const orderflow::v1::Command*>(decoded->get());
  if (cmd->command_id().empty() || !orderflow::orders::is_public_command(*cmd) ||
      !orderflow::orders::validate_command(*cmd))
    std::abort();
  if (format == CommandFormat::kJson) {
    std::string json;
    if (!google::protobuf::util::MessageToJsonString(*cmd, &json).ok()) std::abort();
    auto again = orderflow::connectors::decode_command(domain, json, CommandFormat::kJson);
    if (!again || !google::protobuf::util::MessageDifferencer::Equals(*cmd, **again)) std::abort();
  }
  return 0;
}
