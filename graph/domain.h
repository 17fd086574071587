// The application a graph runs: an event-sourced domain behind one interface, so the
// generic node kinds (nodes/) and connectors (connectors/) never name its commands,
// events or states.
//
// A domain's commands, events and stream states are protobuf messages of its own; the
// framework moves them as `google::protobuf::Message` and stores events and states as
// their binary wire form. Codecs are generic: the binary wire format and protobuf's JSON
// mapping of the prototypes below (unknown JSON fields are errors).
//
// A Domain is registered once at start-up (KindRegistry::add_domain) by the binary that
// links it, outlives every pipeline built with it, and is called from many threads at
// once: every method must be thread-safe and should be pure (no I/O, no clock).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/message.h>

#include "graph/status.h"

namespace orderflow {

using Message = google::protobuf::Message;
using MessagePtr = std::unique_ptr<Message>;

// A read endpoint of the HTTP API: GET /api/v1/{collection}/{id} answers the current
// state of stream `stream(id)` from the snapshot store, rendered by `render`.
struct QueryHandler {
  std::string collection;  // URL segment, e.g. "orders"
  // The stream an id names, or not ok (kInvalidArgument) for an id that names none.
  std::function<Result<std::string>(const std::string& id)> stream;
  // The JSON object of a state at `version`, or kNotFound when the stream's state is not
  // of this collection.
  std::function<Result<std::string>(const Message& state, uint64_t version)> render;
};

// A running total the projection keeps for the monitor and Prometheus (a counter of its
// node, `orderflow_<name>_total`), bumped once per event the domain assigns to it.
struct CounterSpec {
  std::string name;  // snake_case
  std::string help;
};

// A synthetic load for `demo_source`: an endless sequence of commands without ids (the
// node numbers them). Used by one thread at a time.
class CommandGenerator {
 public:
  virtual ~CommandGenerator() = default;
  virtual MessagePtr next() = 0;
};

class Domain {
 public:
  virtual ~Domain() = default;

  // The graph file's `domain:` value that selects this domain, e.g. "orders".
  virtual const std::string& name() const = 0;

  // Empty messages of the domain's command, event and stream-state types.
  virtual const Message& command_prototype() const = 0;
  virtual const Message& event_prototype() const = 0;
  virtual const Message& state_prototype() const = 0;

  // ---- commands ----
  // The idempotency key every command carries ("" when it has none yet).
  virtual const std::string& command_id(const Message& command) const = 0;
  virtual void set_command_id(Message& command, const std::string& id) const = 0;
  // The stream a command decides on ("order-o1"); "" when the command names none.
  virtual std::string stream_of(const Message& command) const = 0;
  // The name of the command's kind ("placeOrder"), for messages and metrics.
  virtual std::string command_name(const Message& command) const = 0;
  // Whether clients (HTTP, Kafka) may send it; the others are the process manager's steps.
  virtual bool is_public(const Message& command) const = 0;
  // The names of the public commands, for error messages ("placeOrder, cancelOrder, ...").
  virtual std::string public_commands() const = 0;
  // Shape only (ids present, amounts in range), not state: failures are kInvalidArgument
  // with a reason a client can act on.
  virtual Status validate(const Message& command) const = 0;
  // Whether the command normally starts its stream (placing an order under a new id). A
  // lane that does not hold the stream then decides it on the empty state instead of
  // reading the store first: the append expects version 0, so a stream that exists after
  // all makes it conflict, and the lane loads the stream and decides again (a rejection
  // is checked against the store the same way). Saves two reads per new stream; costs a
  // conflict when the guess is wrong, so only for commands that rarely meet a stream.
  virtual bool starts_stream(const Message& command) const {
    (void)command;
    return false;
  }

  // ---- the decision and the fold ----
  // Appends the events to write (at least one) to *events, or returns kRejected with the
  // reason. `state` is the stream's state (the prototype's empty state for a new stream).
  virtual Status decide(const Message& state, const Message& command, std::vector<MessagePtr>* events) const = 0;
  // Applies one event to the state and advances its version by one.
  virtual void evolve(Message& state, const Message& event) const = 0;
  // The number of events folded into a state.
  virtual uint64_t version(const Message& state) const = 0;
  // The name of an event's kind ("OrderPlaced"), for the API, Kafka headers and metrics.
  virtual std::string event_name(const Message& event) const = 0;

  // ---- the process manager (`saga` node) ----
  // The commands issued in reaction to the event at (stream, version). Their ids must be
  // derived from the event alone, so a redelivered event issues the same ids, and start
  // with "saga/" (a namespace clients may not use: ingest refuses such ids).
  virtual std::vector<MessagePtr> react(const std::string& stream, uint64_t version, const Message& event) const = 0;

  // ---- read side and sinks ----
  // A stream's category ("orders" for "order-o1"): sinks name topics by it.
  virtual std::string category(const std::string& stream) const = 0;
  // The read endpoints of the HTTP API.
  virtual std::vector<QueryHandler> queries() const { return {}; }
  // Running totals of the projection, and which of them an event bumps (-1 = none).
  virtual std::vector<CounterSpec> counters() const { return {}; }
  virtual int counter_of(const Message& event) const {
    (void)event;
    return -1;
  }
  // A synthetic load for `demo_source` over `keys` entities (e.g. SKUs); null = none.
  virtual std::unique_ptr<CommandGenerator> demo(int keys, uint64_t seed) const {
    (void)keys;
    (void)seed;
    return nullptr;
  }

  // ---- helpers on the prototypes (not virtual) ----
  MessagePtr new_command() const { return MessagePtr(command_prototype().New()); }
  MessagePtr new_event() const { return MessagePtr(event_prototype().New()); }
  MessagePtr new_state() const { return MessagePtr(state_prototype().New()); }
  MessagePtr copy(const Message& m) const {
    MessagePtr c(m.New());
    c->CopyFrom(m);
    return c;
  }
};

// The refusal of a command whose id already names a command on `other_stream`: ids name
// one command, and a command one stream (for the lanes and the stores alike).
Status command_id_taken(const std::string& command_id, const std::string& other_stream);

// The protobuf JSON mapping of a message (every field printed); "null" if it cannot be.
std::string message_json(const Message& message);

}  // namespace orderflow
