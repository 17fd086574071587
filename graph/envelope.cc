#include "graph/envelope.h"

namespace orderflow {

EnvelopePtr make_envelope(MessagePtr command, Completion done) {
  auto env = std::make_shared<Envelope>();
  env->command = std::move(command);
  env->done = std::move(done);
  return env;
}

Result<CommandSink*> command_sink_of(const RuntimeNode& from, RuntimeNode& to) {
  auto* sink = dynamic_cast<CommandSink*>(&to);
  if (sink == nullptr)
    return Status::internal("node " + from.id() + " sends commands, and node " + to.id() + " (kind " + to.kind() +
                            ") takes none");
  return sink;
}

}  // namespace orderflow
