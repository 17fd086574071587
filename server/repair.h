// `orderflow repair`: offline replay and repair against a stopped server's data directory.
//
//   repair checkpoints FILE --data-dir DIR
//       each change feed's head and, per subscriber, its checkpoint, how far behind it is
//       and (for a projection) the feed position its snapshots cover
//   repair reset-checkpoint FILE --data-dir DIR --subscriber ID (--position N | --time ISO8601)
//       moves one subscriber's checkpoint: the next serve delivers it every event after N
//       (or after the last event committed before TIME) again
//   repair rebuild-projection FILE --data-dir DIR [--projection ID]
//       drops the projection's snapshots and resets its checkpoint to 0: the next serve
//       rebuilds the read model from the event store (command lanes meanwhile fold streams
//       from their events, so decisions stay right while it catches up)
//
// Each takes the data directory's instance lock and refuses to run while a server holds
// it. Only stores with global positions on disk (kind: rocksdb) can be repaired offline.
// With --server URL instead of FILE and --data-dir, each runs against a running server
// through its admin API (server/admin.h; the token from --token-file or ORDERFLOW_TOKEN):
// the checkpoint moves and the projection rebuilds while the server runs, and the output
// is the same.
// Exit codes: 0 done, 1 the stores cannot be opened or the repair failed, 2 bad usage.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "graph/definition.h"
#include "graph/store.h"

namespace CLI {
class App;
}

namespace orderflow::server {

// Adds `repair` and its subcommands to `app`; a chosen one runs in the parser's callback
// and leaves its exit code in *exit_code. `registry` and `exit_code` must outlive
// app.parse().
void add_repair_command(CLI::App& app, const graph::KindRegistry& registry, int* exit_code);

// Shared with the admin API (server/admin.cc):
// ISO 8601 with a zone: 2026-12-01T22:33:24Z, 2026-12-01T22:33:24.250+01:00. Microseconds
// since the epoch, or nullopt.
std::optional<int64_t> parse_iso8601(const std::string& text);
// The checkpoint that redelivers every event committed at or after `at_us`: the position
// before the first such event (binary search: commit times follow positions, one writer,
// as long as the wall clock did not step back). The head when there is none.
Result<uint64_t> position_before(ChangeFeed& feed, int64_t at_us);

}  // namespace orderflow::server
