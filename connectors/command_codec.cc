#include "connectors/command_codec.h"

#include <algorithm>
#include <cctype>

#include <google/protobuf/util/json_util.h>

#include "nodes/domain.h"

namespace orderflow::connectors {

Result<CommandFormat> command_format(std::string_view content_type) {
  std::string t(content_type.substr(0, content_type.find(';')));
  t.erase(std::remove_if(t.begin(), t.end(), [](unsigned char c) { return std::isspace(c); }), t.end());
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t.empty() || t == "application/json") return CommandFormat::kJson;
  if (t == "application/x-protobuf" || t == "application/protobuf" || t == "application/vnd.google.protobuf")
    return CommandFormat::kBinary;
  return Status::invalid_argument("unsupported content type '" + std::string(content_type) +
                                  "' (use application/json or application/x-protobuf)");
}

Result<v1::Command> decode_command(std::string_view body, CommandFormat format, const std::string& default_id) {
  v1::Command cmd;
  if (format == CommandFormat::kJson) {
    google::protobuf::util::JsonParseOptions opts;
    opts.ignore_unknown_fields = false;
    auto parsed = google::protobuf::util::JsonStringToMessage(
        google::protobuf::StringPiece(body.data(), body.size()), &cmd, opts);
    if (!parsed.ok()) {
      // protobuf appends the input's context and a caret on further lines: keep the sentence.
      std::string why(parsed.message());
      why = why.substr(0, why.find('\n'));
      return Status::invalid_argument("not a valid command: " + why);
    }
  } else if (!cmd.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return Status::invalid_argument("not a valid command: cannot parse the binary protobuf Command");
  }
  if (cmd.command_id().empty() && !default_id.empty()) cmd.set_command_id(default_id);
  // The saga's commands carry ids derived from their triggering event ("saga/..."); a
  // client's command holding one would make the saga's own command a refused reuse.
  if (cmd.command_id().rfind("saga/", 0) == 0)
    return Status::invalid_argument("commandId '" + cmd.command_id() + "': ids starting with 'saga/' are the saga's");
  if (cmd.kind_case() == v1::Command::KIND_NOT_SET)
    return Status::invalid_argument(
        "command has no kind (or one this server does not know): clients send one of placeOrder, cancelOrder, "
        "shipOrder, addStock");
  if (cmd.kind_case() != v1::Command::KIND_NOT_SET && !domain::is_public_command(cmd))
    return Status::invalid_argument(domain::command_name(cmd) +
                                    " is issued by the saga only; clients may send placeOrder, "
                                    "cancelOrder, shipOrder and addStock");
  if (auto s = domain::validate_command(cmd); !s) return s;
  return cmd;
}

}  // namespace orderflow::connectors
