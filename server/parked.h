// `orderflow parked`: a running server's parked saga reactions (a saga with `parked:`; see
// SagaNode in nodes/nodes.h), over its admin API (server/admin.h).
//
//   parked list --server URL [--node SAGA] [--json]
//       one line per parked reaction: node, command id, command, its stream, the event it
//       reacted to (stream/version), attempts, when parked, the reason
//   parked replay (--command-id ID | --all) --server URL [--node SAGA] [--timeout S]
//       resubmits each stored command with its own id through the saga's route and waits for
//       its outcome; the record is removed when the outcome is final (committed, duplicate,
//       rejected), kept otherwise
//
// Access as `orderflow dlq --server` (--token-file or ORDERFLOW_TOKEN, --ca-file). Exit
// codes: 0 done, 1 the server failed, a command was not found or a replay was kept,
// 2 bad usage.
#pragma once

namespace CLI {
class App;
}

namespace orderflow::server {

// Adds `parked` and its subcommands to `app`; a chosen one runs in the parser's callback and
// leaves its exit code in *exit_code, which must outlive app.parse().
void add_parked_command(CLI::App& app, int* exit_code);

}  // namespace orderflow::server
