// A small HTTP/1.1 server for the API node, with every limit enforced as bytes arrive.
//
// Why not cpprestsdk's http_listener: it reads a request's header into an unbounded buffer
// with no timer, reads the whole body before a reply can leave (so 413 comes after the
// body), clears its read buffer at the start of every request (pipelined requests are
// lost) and has no hook to cap connections. This server is Boost.Beast on Boost.Asio; only
// http_server.cc includes them.
//
// Per connection, in order: (TLS handshake) -> wait for the first byte of a request (idle
// timeout) -> read the header (header timeout, header size and count limits) -> the
// HeaderCheck may answer at once (auth, 404/405/415, 413 from Content-Length) without
// reading the body -> read the body (body timeout, size limit, also for chunked bodies) ->
// Handler -> write the reply (write timeout) -> next request. One request at a time per
// connection, so pipelined requests are answered in order; the ones not yet read wait in
// the kernel's socket buffer. A connection whose body was not read is closed after its
// answer (a bounded drain first, so the client can read the answer).
//
// Memory is bounded by max_connections x (read buffer + max_body_bytes + the largest reply).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "graph/status.h"

namespace orderflow::connectors::http {

struct ServerOptions {
  std::string host = "127.0.0.1";  // an IPv4 or IPv6 address, or "localhost"
  uint16_t port = 0;               // 0: any free port (see Server::port())
  // TLS when cert and key are set (PEM files). With a client CA, clients must present a
  // certificate signed by it (mutual TLS).
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  int io_threads = 2;                 // the fixed pool that runs every connection
  size_t max_connections = 256;       // more are answered 503 and closed at once
  size_t max_header_bytes = 16384;    // request line and fields; more: 431
  size_t max_header_fields = 100;     // more: 431
  size_t max_body_bytes = 65536;      // more: 413 (from Content-Length before reading)
  std::chrono::milliseconds header_timeout{10000};  // first byte of a request to its blank line
  std::chrono::milliseconds body_timeout{10000};    // the whole body
  std::chrono::milliseconds idle_timeout{30000};    // keep-alive wait for the next request
  std::chrono::milliseconds write_timeout{10000};   // one reply
  std::chrono::milliseconds drain_timeout{1000};    // reading the unread rest before a close
  size_t drain_bytes = 1 << 20;                     // ... at most this much

  bool tls() const { return !tls_cert_file.empty(); }
};

// One request, header and body. Field names keep their case; look them up with field().
struct Request {
  std::string method;  // as sent: "GET", "POST", "TRACE", ...
  std::string target;  // as sent: "/api/v1/commands?wait=committed"
  std::string path;    // target before '?', not percent-decoded
  std::string query;   // target after '?', not percent-decoded
  std::vector<std::pair<std::string, std::string>> fields;
  std::string body;    // empty until the body is read
  bool has_body = false;  // Content-Length > 0 or chunked
  std::string remote;  // peer address, for logs

  // The first value of a field (case-insensitive name), or null.
  const std::string* field(std::string_view name) const;
  size_t field_count(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> fields;  // extra fields, e.g. Retry-After
  bool close = false;  // close the connection after this reply
};

// The way to answer one request: send() once, from any thread. Answers sent after the server
// stopped (or the client went away) are dropped. Thread-safe.
class Responder {
 public:
  virtual ~Responder() = default;
  virtual void send(Response response) = 0;
};

// Called on an I/O thread once the header is read (Request::body still empty): an answer
// here is sent without reading the body. Must not block.
using HeaderCheck = std::function<std::optional<Response>(const Request&)>;
// Called on an I/O thread with the whole request; answers through the responder now or
// later (from any thread). Must not block.
using Handler = std::function<void(Request&&, std::shared_ptr<Responder>)>;

// Counters, for metrics and tests.
struct ServerStats {
  uint64_t open_connections = 0;
  uint64_t accepted = 0;
  uint64_t refused_connections = 0;  // over max_connections
  uint64_t timeouts = 0;             // header, body, idle or write timeouts
  uint64_t limit_refusals = 0;       // 413 and 431
  uint64_t bad_requests = 0;         // unparsable or conflicting framing
  uint64_t tls_failures = 0;         // handshakes that failed
};

// Owned by its user (the HTTP API node); start() once, stop() (or the destructor) once.
// start/stop are not thread-safe against each other; stats() and the Responders are.
class Server {
 public:
  Server(ServerOptions options, HeaderCheck check, Handler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Loads the TLS files, binds, listens and starts the I/O threads.
  Status start();
  // Stops accepting, closes every connection and joins the I/O threads. Idempotent.
  void stop();
  uint16_t port() const;
  ServerStats stats() const;

  struct Core;  // shared with connections and responders (defined in http_server.cc)

 private:
  std::shared_ptr<Core> core_;
};

// Media type of a Content-Type value, lower-case, without parameters ("" when malformed):
// "APPLICATION/JSON; charset=utf-8" -> "application/json".
std::string media_type(std::string_view content_type);

// True if `host` names a loopback address (127.0.0.0/8, ::1, localhost).
bool is_loopback_host(std::string_view host);

}  // namespace orderflow::connectors::http
