#include "connectors/http_server.h"

#include <pthread.h>

#include <utility>  // before Boost.Asio: its C++20 awaitable.hpp uses std::exchange
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <atomic>
#include <cctype>
#include <map>
#include <mutex>
#include <thread>
#include <type_traits>

namespace orderflow::connectors::http {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// RFC 9110 token characters.
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!(std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos))
      return false;
  return true;
}

std::string error_json(std::string_view code, std::string_view message) {
  return std::string(R"({"error":{"code":")") + std::string(code) + R"(","message":")" + std::string(message) +
         R"("}})";
}

Response refusal(int status, std::string_view code, std::string_view message) {
  Response r;
  r.status = status;
  r.body = error_json(code, message);
  r.close = true;
  return r;
}

// Sent on a connection over the cap, without reading anything from it.
const std::string kOverCapacity =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    "Connection: close\r\nContent-Length: 78\r\n\r\n"
    R"({"error":{"code":"too_many_connections","message":"connection limit reached"}})";

}  // namespace

// Everything connections and responders share. Members are destroyed in reverse order: the
// io_context (and with it the connections its pending handlers hold) before the counters.
struct Server::Core {
  Core(ServerOptions o, HeaderCheck c, Handler h) : options(std::move(o)), check(std::move(c)), handler(std::move(h)) {}

  // Closes every open connection; only while no I/O thread runs.
  void close_all();

  const ServerOptions options;
  const HeaderCheck check;
  const Handler handler;
  std::atomic<uint64_t> open{0}, accepted{0}, refused{0}, timeouts{0}, limit_refusals{0}, bad_requests{0},
      tls_failures{0};
  std::atomic<bool> stopped{false};
  std::mutex sessions_mu;
  std::map<uint64_t, std::function<void()>> closers;  // guarded by sessions_mu: session id -> close
  uint64_t next_session = 0;                          // guarded by sessions_mu
  std::unique_ptr<ssl::context> tls;                  // outlives every TLS stream
  net::io_context ioc;
  std::optional<tcp::acceptor> acceptor;  // used on the I/O threads only
  std::optional<net::steady_timer> accept_backoff;
  std::vector<std::thread> threads;
  uint16_t port = 0;
};

void Server::Core::close_all() {
  std::map<uint64_t, std::function<void()>> all;
  {
    std::lock_guard lock(sessions_mu);
    all = closers;
  }
  for (auto& [id, close] : all) close();
}

namespace {

using Core = Server::Core;

template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  template <class... Args>
  Session(Core* core, tcp::socket&& socket, Args&&... args)
      : core_(core), stream_(std::move(socket), std::forward<Args>(args)...),
        buffer_(core->options.max_header_bytes + 1024) {
    core_->open.fetch_add(1);
    beast::error_code ec;
    const auto ep = tcp().socket().remote_endpoint(ec);
    if (!ec) remote_ = ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  ~Session() {
    {
      std::lock_guard lock(core_->sessions_mu);
      core_->closers.erase(id_);
    }
    core_->open.fetch_sub(1);
  }

  void run() {
    {
      std::lock_guard lock(core_->sessions_mu);
      id_ = ++core_->next_session;
      std::weak_ptr<Session> weak = this->shared_from_this();
      core_->closers[id_] = [weak] {
        if (auto s = weak.lock()) s->close_now();
      };
    }
    if constexpr (kTls) {
      tcp().expires_after(core_->options.header_timeout);
      stream_.async_handshake(ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
        if (ec) {
          self->core_->tls_failures.fetch_add(1);
          return self->close_now();
        }
        self->wait_for_request();
      });
    } else {
      wait_for_request();
    }
  }

  // Runs on the connection's strand (posted by the responder).
  void write_response(Response r) {
    auto res = std::make_unique<bhttp::response<bhttp::string_body>>(static_cast<bhttp::status>(r.status), 11);
    res->set(bhttp::field::server, "orderflow");
    res->set(bhttp::field::content_type, r.content_type);
    res->set("X-Content-Type-Options", "nosniff");
    res->set(bhttp::field::cache_control, "no-store");
    for (auto& [name, value] : r.fields) res->insert(name, value);
    const bool close = r.close || !keep_alive_ || body_unread_ || core_->stopped.load();
    res->keep_alive(!close);
    res->body() = std::move(r.body);
    res->prepare_payload();
    response_ = std::move(res);
    tcp().expires_after(core_->options.write_timeout);
    bhttp::async_write(stream_, *response_,
                       [self = this->shared_from_this(), close](beast::error_code ec, size_t) {
                         self->response_.reset();
                         if (ec) {
                           if (ec == beast::error::timeout) self->core_->timeouts.fetch_add(1);
                           return self->close_now();
                         }
                         if (close) return self->close_gracefully();
                         self->wait_for_request();
                       });
  }

  void close_now() {
    beast::error_code ec;
    tcp().socket().shutdown(tcp::socket::shutdown_both, ec);
    tcp().close();
  }

 private:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  // Answers one request once, from any thread, on the connection's strand.
  class OneReply final : public Responder {
   public:
    OneReply(std::shared_ptr<Core> core, std::shared_ptr<Session> session)
        : core_(std::move(core)), session_(std::move(session)) {}
    ~OneReply() override {
      // A handler that dropped its responder: the client still gets an answer.
      if (session_) send(refusal(500, "internal", "the request was dropped without an answer"));
    }
    void send(Response r) override {
      if (sent_.exchange(true)) return;
      auto session = std::move(session_);
      net::post(session->stream_.get_executor(),
                [session, r = std::move(r)]() mutable { session->write_response(std::move(r)); });
    }

   private:
    std::shared_ptr<Core> core_;  // keeps the io_context alive for the post (declared first: dies last)
    std::shared_ptr<Session> session_;
    std::atomic<bool> sent_{false};
  };

  beast::tcp_stream& tcp() { return beast::get_lowest_layer(stream_); }

  // Keep-alive: the next request's first byte within the idle timeout. Bytes already read
  // (a pipelined request) go straight to the header.
  void wait_for_request() {
    if (buffer_.size() > 0) return read_header();
    tcp().expires_after(core_->options.idle_timeout);
    stream_.async_read_some(buffer_.prepare(std::min<size_t>(4096, buffer_.max_size() - buffer_.size())),
                            [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec) {
                                if (ec == beast::error::timeout) self->core_->timeouts.fetch_add(1);
                                return self->close_now();
                              }
                              self->buffer_.commit(n);
                              self->read_header();
                            });
  }

  void read_header() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(core_->options.max_header_bytes));
    parser_->body_limit(core_->options.max_body_bytes);
    request_ = Request{};
    request_.remote = remote_;
    keep_alive_ = false;
    body_unread_ = false;
    tcp().expires_after(core_->options.header_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec) return refuse_read(ec, /*header=*/true);
    const auto& msg = parser_->get();
    request_.method = std::string(msg.method_string());
    request_.target = std::string(msg.target());
    const auto q = request_.target.find('?');
    request_.path = request_.target.substr(0, q);
    request_.query = q == std::string::npos ? "" : request_.target.substr(q + 1);
    size_t count = 0;
    for (const auto& f : msg) {
      if (++count > core_->options.max_header_fields) {
        core_->limit_refusals.fetch_add(1);
        return refuse(refusal(431, "header_too_large", "more than " + std::to_string(core_->options.max_header_fields) +
                                                          " header fields"));
      }
      request_.fields.emplace_back(std::string(f.name_string()), std::string(f.value()));
    }
    keep_alive_ = parser_->keep_alive();
    request_.has_body = parser_->chunked() || parser_->content_length().value_or(0) > 0;
    body_unread_ = request_.has_body;
    // Framing the parser lets through but a proxy in front might read differently.
    if (request_.field_count("content-length") > 1) {
      core_->bad_requests.fetch_add(1);
      return refuse(refusal(400, "bad_request", "more than one Content-Length"));
    }
    if (request_.field("transfer-encoding") != nullptr && !parser_->chunked()) {
      core_->bad_requests.fetch_add(1);
      return refuse(refusal(400, "bad_request", "the only transfer coding understood is chunked"));
    }
    try {
      if (auto early = core_->check(request_)) return refuse(std::move(*early));
    } catch (const std::exception&) {
      return refuse(refusal(500, "internal", "cannot check the request"));
    }
    if (!request_.has_body) return dispatch();
    const std::string* expect = request_.field("expect");
    if (expect != nullptr && iequals(trim(*expect), "100-continue")) {
      // The client waits for this before sending the body; a refusal above came instead.
      auto cont = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_, 11);
      tcp().expires_after(core_->options.write_timeout);
      bhttp::async_write(stream_, *cont, [self = this->shared_from_this(), cont](beast::error_code ec, size_t) {
        if (ec) return self->close_now();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    tcp().expires_after(core_->options.body_timeout);
    bhttp::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->refuse_read(ec, /*header=*/false);
      self->body_unread_ = false;
      self->request_.body = std::move(self->parser_->get().body());
      self->dispatch();
    });
  }

  // A read that failed: a timeout or a closed connection ends it quietly; a limit or a
  // malformed message gets its status, then the connection closes.
  void refuse_read(beast::error_code ec, bool header) {
    if (ec == beast::error::timeout) {
      core_->timeouts.fetch_add(1);
      return close_now();
    }
    if (ec == bhttp::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
        ec == net::error::operation_aborted || ec == bhttp::error::partial_message ||
        ec == ssl::error::stream_truncated)
      return close_now();
    body_unread_ = true;
    if (ec == bhttp::error::body_limit) {
      core_->limit_refusals.fetch_add(1);
      return refuse(refusal(413, "body_too_large",
                            "body exceeds the limit of " + std::to_string(core_->options.max_body_bytes) + " bytes"));
    }
    if (header && (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow)) {
      core_->limit_refusals.fetch_add(1);
      return refuse(refusal(431, "header_too_large",
                            "header exceeds the limit of " + std::to_string(core_->options.max_header_bytes) + " bytes"));
    }
    core_->bad_requests.fetch_add(1);
    if (ec == bhttp::error::bad_content_length || ec == bhttp::error::bad_transfer_encoding)
      return refuse(refusal(400, "bad_request", "conflicting or malformed message framing"));
    refuse(refusal(400, "bad_request", "malformed HTTP request"));
  }

  void refuse(Response r) {
    if (body_unread_) r.close = true;
    write_response(std::move(r));
  }

  void dispatch() {
    auto reply = std::make_shared<OneReply>(std::shared_ptr<Core>(core_self()), this->shared_from_this());
    try {
      core_->handler(std::move(request_), reply);
    } catch (const std::exception&) {
      reply->send(refusal(500, "internal", "the request failed"));
    }
  }

  // The Core as a shared_ptr, for responders (set by the acceptor).
  std::shared_ptr<Core> core_self() const { return core_shared_.lock(); }

  // After a reply with Connection: close. Plain TCP: half-close, then read and drop what the
  // client still sends (bounded in time and bytes) so that our answer is not lost to a reset.
  void close_gracefully() {
    if constexpr (kTls) {
      tcp().expires_after(core_->options.drain_timeout);
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) { self->close_now(); });
    } else {
      beast::error_code ec;
      tcp().socket().shutdown(tcp::socket::shutdown_send, ec);
      if (ec) return close_now();
      buffer_.clear();
      drained_ = 0;
      tcp().expires_after(core_->options.drain_timeout);
      drain();
    }
  }

  void drain() {
    stream_.async_read_some(buffer_.prepare(std::min<size_t>(4096, buffer_.max_size())),
                            [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ >= self->core_->options.drain_bytes) return self->close_now();
                              self->buffer_.clear();
                              self->drain();
                            });
  }

 public:
  std::weak_ptr<Core> core_shared_;

 private:
  Core* core_;
  Stream stream_;
  beast::flat_buffer buffer_;  // at most max_header_bytes + 1 KiB: read-ahead and headers
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  Request request_;
  std::unique_ptr<bhttp::response<bhttp::string_body>> response_;
  std::string remote_;
  uint64_t id_ = 0;
  size_t drained_ = 0;
  bool keep_alive_ = false;
  bool body_unread_ = false;
};

void refuse_over_capacity(tcp::socket& socket) {
  // A best-effort answer without a connection object: one non-blocking write, then close.
  beast::error_code ec;
  socket.non_blocking(true, ec);
  if (!ec) socket.write_some(net::buffer(kOverCapacity), ec);
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

void accept_next(const std::shared_ptr<Core>& core);

void on_accept(const std::weak_ptr<Core>& weak, beast::error_code ec, tcp::socket socket) {
  auto core = weak.lock();
  if (!core || core->stopped.load()) return;
  if (ec) {
    if (ec == net::error::operation_aborted) return;
    // Out of descriptors (EMFILE) or memory: accepting again at once would spin on a core.
    core->accept_backoff->expires_after(std::chrono::milliseconds(100));
    core->accept_backoff->async_wait([weak](beast::error_code e) {
      auto c = weak.lock();
      if (!e && c && !c->stopped.load()) accept_next(c);
    });
    return;
  }
  core->accepted.fetch_add(1);
  if (core->open.load() >= core->options.max_connections) {
    core->refused.fetch_add(1);
    if (!core->options.tls()) refuse_over_capacity(socket);
    accept_next(core);
    return;
  }
  beast::error_code nodelay_ec;
  socket.set_option(tcp::no_delay(true), nodelay_ec);
  if (core->tls) {
    auto s = std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(core.get(), std::move(socket), *core->tls);
    s->core_shared_ = core;
    s->run();
  } else {
    auto s = std::make_shared<Session<beast::tcp_stream>>(core.get(), std::move(socket));
    s->core_shared_ = core;
    s->run();
  }
  accept_next(core);
}

void accept_next(const std::shared_ptr<Core>& core) {
  std::weak_ptr<Core> weak = core;
  core->acceptor->async_accept(net::make_strand(core->ioc), [weak](beast::error_code ec, tcp::socket socket) {
    on_accept(weak, ec, std::move(socket));
  });
}

}  // namespace

const std::string* Request::field(std::string_view name) const {
  for (const auto& [n, v] : fields)
    if (iequals(n, name)) return &v;
  return nullptr;
}

size_t Request::field_count(std::string_view name) const {
  size_t n = 0;
  for (const auto& f : fields) n += iequals(f.first, name) ? 1 : 0;
  return n;
}

Server::Server(ServerOptions options, HeaderCheck check, Handler handler)
    : core_(std::make_shared<Core>(std::move(options), std::move(check), std::move(handler))) {}

Server::~Server() { stop(); }

Status Server::start() {
  Core& c = *core_;
  const auto& o = c.options;
  std::string where = o.host + ":" + std::to_string(o.port);
  try {
    if (o.tls()) {
      c.tls = std::make_unique<ssl::context>(ssl::context::tls_server);
      c.tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                         ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
      c.tls->use_certificate_chain_file(o.tls_cert_file);
      c.tls->use_private_key_file(o.tls_key_file, ssl::context::pem);
      if (!o.tls_client_ca_file.empty()) {
        c.tls->load_verify_file(o.tls_client_ca_file);
        c.tls->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
      }
    }
  } catch (const std::exception& ex) {
    return Status::invalid_argument(std::string("cannot load the TLS certificate or key: ") + ex.what());
  }
  try {
    const auto address = o.host == "localhost" ? net::ip::make_address("127.0.0.1") : net::ip::make_address(o.host);
    const tcp::endpoint endpoint(address, o.port);
    c.acceptor.emplace(c.ioc);
    c.acceptor->open(endpoint.protocol());
    c.acceptor->set_option(net::socket_base::reuse_address(true));
    c.acceptor->bind(endpoint);
    c.acceptor->listen(net::socket_base::max_listen_connections);
    c.port = c.acceptor->local_endpoint().port();
  } catch (const std::exception& ex) {
    c.acceptor.reset();
    return Status::unavailable("cannot listen on " + where + ": " + ex.what());
  }
  c.accept_backoff.emplace(c.ioc);
  accept_next(core_);
  const int n = std::max(1, o.io_threads);
  for (int i = 0; i < n; ++i)
    c.threads.emplace_back([core = core_.get()] {
      pthread_setname_np(pthread_self(), "of-http-io");
      for (;;) {
        try {
          core->ioc.run();
          return;
        } catch (const std::exception&) {
          // A handler threw: keep serving the other connections.
        }
      }
    });
  return Status::ok();
}

void Server::stop() {
  if (!core_ || core_->stopped.exchange(true)) return;
  core_->ioc.stop();
  for (auto& t : core_->threads)
    if (t.joinable()) t.join();
  // No I/O thread runs now: the acceptor and the sockets can be closed from here.
  beast::error_code ec;
  if (core_->acceptor) core_->acceptor->close(ec);
  core_->close_all();
}

uint16_t Server::port() const { return core_->port; }

ServerStats Server::stats() const {
  const Core& c = *core_;
  ServerStats s;
  s.open_connections = c.open.load();
  s.accepted = c.accepted.load();
  s.refused_connections = c.refused.load();
  s.timeouts = c.timeouts.load();
  s.limit_refusals = c.limit_refusals.load();
  s.bad_requests = c.bad_requests.load();
  s.tls_failures = c.tls_failures.load();
  return s;
}

std::string media_type(std::string_view content_type) {
  std::string_view s = content_type.substr(0, content_type.find(';'));
  s = trim(s);
  const auto slash = s.find('/');
  if (slash == std::string_view::npos || !is_token(s.substr(0, slash)) || !is_token(s.substr(slash + 1))) return "";
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

bool is_loopback_host(std::string_view host) {
  if (host == "localhost") return true;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  beast::error_code ec;
  const auto a = net::ip::make_address(std::string(host), ec);
  return !ec && a.is_loopback();
}

}  // namespace orderflow::connectors::http
