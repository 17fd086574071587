#include "connectors/command_codec.h"

#include <algorithm>
#include <cctype>

#include <google/protobuf/util/json_util.h>


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

Result<MessagePtr> decode_command(const Domain& domain, std::string_view body, CommandFormat format,
                                  const std::string& default_id) {
  MessagePtr cmd = domain.new_command();
  if (format == CommandFormat::kJson) {
    google::protobuf::util::JsonParseOptions opts;
    opts.ignore_unknown_fields = false;
    auto parsed = google::protobuf::util::JsonStringToMessage(
        google::protobuf::StringPiece(body.data(), body.size()), cmd.get(), opts);
    if (!parsed.ok()) {
      // protobuf appends the input's context and a caret on further lines: keep the sentence.
      std::string why(parsed.message());
      why = why.substr(0, why.find('\n'));
      return Status::invalid_argument("not a valid command: " + why);
    }
  } else if (!cmd->ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return Status::invalid_argument("not a valid command: cannot parse the binary protobuf " +
                                    cmd->GetDescriptor()->name());
  }
  if (domain.command_id(*cmd).empty() && !default_id.empty()) domain.set_command_id(*cmd, default_id);
  // The process manager's commands carry ids derived from their triggering event
  // ("saga/..."); a client's command holding one would make the saga's own command a
  // refused reuse.
  const std::string& id = domain.command_id(*cmd);
  if (id.rfind("saga/", 0) == 0)
    return Status::invalid_argument("commandId '" + id + "': ids starting with 'saga/' are the saga's");
  const std::string name = domain.command_name(*cmd);
  if (name.empty())
    return Status::invalid_argument("command has no kind (or one this server does not know): clients send one of " +
                                    domain.public_commands());
  if (!domain.is_public(*cmd))
    return Status::invalid_argument(name + " is issued by the saga only; clients may send " + domain.public_commands());
  if (auto s = domain.validate(*cmd); !s) return s;
  return cmd;
}

}  // namespace orderflow::connectors
