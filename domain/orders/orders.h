// The order domain as pure functions: no I/O, no clocks, no shared state.
//
//   stream_of(command)        which stream a command belongs to ("order-o1", "sku-A")
//   validate_command(command) malformed input (HTTP 400), before anything is queued
//   decide(state, command)    events to append, or a rejection (HTTP 422)
//   evolve(state, event)      the fold that builds state from events
//   saga_react(event, ...)    the commands the reservation saga issues for an event
//
// All functions are thread-safe (they touch only their arguments).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "graph/status.h"
#include "orderflow.pb.h"

namespace orderflow::orders {

inline constexpr const char* kOrderPrefix = "order-";
inline constexpr const char* kSkuPrefix = "sku-";

std::string order_stream(const std::string& order_id);
std::string sku_stream(const std::string& sku);

// Empty string when the command has no kind.
std::string stream_of(const v1::Command& command);

// Commands clients may send (placeOrder, cancelOrder, shipOrder, addStock); the others
// are the saga's steps and would let a client bypass the reservation protocol.
bool is_public_command(const v1::Command& command);

// "placed", "confirmed", "rejected", "cancelled", "shipped" ("absent" for none).
const char* order_status_name(v1::OrderStatus status);

// Name of the command's oneof case in the JSON mapping, e.g. "placeOrder".
std::string command_name(const v1::Command& command);
std::string event_name(const v1::Event& event);

// Checks shape only (ids present, quantities positive, lines unique); not state.
Status validate_command(const v1::Command& command);

// Decides on `state` (version 0 and no kind = the stream does not exist yet).
// Returns the events to append (at least one) or a kRejected status with the reason.
Result<std::vector<v1::Event>> decide(const v1::StreamState& state, const v1::Command& command);

// The same, for the first event of a decision: written into *event (ok), or a kRejected
// status with the reason (nothing written). Every decision makes one event, except a
// recordReservation that decides an order's last line: its OrderConfirmed or OrderRejected
// follows (settle_event), so the order settles without another saga round trip.
Status decide_event(const v1::StreamState& state, const v1::Command& command, v1::Event* event);

// The event that settles the order a ReservationRecorded `recorded` (decided on `state`)
// completed, written into *out: true when there is one (recorded->settled()). Should none
// be decided, settled is cleared, so the saga settles the order as before.
bool settle_event(const v1::StreamState& state, v1::Event* recorded, v1::Event* out);

// Applies one event and bumps state.version by one.
void evolve(v1::StreamState& state, const v1::Event& event);

// Commands the saga issues in reaction to the event at (stream, version). Their ids are
// derived from the triggering event, so a redelivered event yields the same ids.
std::vector<v1::Command> saga_react(const std::string& stream, uint64_t version,
                                    const v1::Event& event);
// The same, each command on the heap (what the Domain interface hands out).
std::vector<std::unique_ptr<v1::Command>> saga_commands(const std::string& stream, uint64_t version,
                                                        const v1::Event& event);

}  // namespace orderflow::orders
