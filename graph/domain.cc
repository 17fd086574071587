#include "graph/domain.h"

#include <google/protobuf/util/json_util.h>

namespace orderflow {

Status command_id_taken(const std::string& command_id, const std::string& other_stream) {
  return Status::invalid_argument("commandId '" + command_id + "' already names a command on stream " + other_stream +
                                  "; a new command needs a new id");
}

std::string message_json(const Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(message, &out, o).ok()) return "null";
  return out;
}

}  // namespace orderflow
