// The command line's side of a running server's admin API (/api/v1/admin/..., see
// server/admin.h): `orderflow repair ... --server URL` and `orderflow dlq ... --server URL`
// call it instead of opening the data directory or Kafka themselves.
//
// Access: --server URL (http:// or https://), the bearer token from --token-file PATH (its
// first line, as orderflow-monitor reads one) or else the environment variable
// ORDERFLOW_TOKEN; --ca-file PEM trusts that CA for https://. Free functions; a call makes its
// own connection and blocks until the answer (or its timeout).
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace orderflow::server {

struct ServerAccess {
  std::string url;         // --server: empty = not asked
  std::string token_file;  // --token-file
  std::string ca_file;     // --ca-file
  int64_t timeout_s = 60;  // the request's timeout (a reset waits for the feed to pause)
  std::string token;       // resolved by resolve_access()
};

// Adds --server, --token-file and --ca-file to `cmd`; `access` must outlive parsing.
void add_server_options(CLI::App* cmd, ServerAccess* access, const std::string& what);

// Reads the token (--token-file, else ORDERFLOW_TOKEN); "" when fine, else why not.
std::string resolve_access(ServerAccess* access);

struct AdminAnswer {
  int status = 0;        // 0: no HTTP answer (then `error` says why)
  std::string body;      // the body of a 200
  std::string error;     // an error answer's message, or the transport error
};

// METHOD url + path (with its query); body sent as application/json when not empty.
AdminAnswer admin_call(const ServerAccess& access, const std::string& method, const std::string& path,
                       const std::string& body = "");

// The exit code and one stderr line ("orderflow PROGRAM: ...") for an answer that is not
// 200: 2 for 400 (bad usage, as the local command says), `not_found_code` for 404, else 1.
int admin_failure(const char* program, const AdminAnswer& a, int not_found_code);

}  // namespace orderflow::server
