// The HTTP API as exposed to a network, against the real `orderflow serve` on loopback:
// limits enforced while reading (413/431 before the body, chunked bodies cut off with the
// server's RSS bounded), header and idle timeouts, the connection cap, pipelining and
// Connection: close, conflicting framing, methods, media types, strict query numbers,
// paged stream reads, no client bytes echoed unescaped, bearer-token roles and TLS.
//
// Raw sockets for the protocol cases (a client library would normalise what is sent);
// cpprestsdk (tests/support/e2e_http.h) for the API cases.
#include "tests/support/net.h"
#include "tests/support/server_process.h"
#include "tests/support/shell.h"
#include "tests/support/e2e_http.h"
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace orderflow::testing {
namespace {

namespace fs = std::filesystem;
using namespace orderflow::testing::e2e;

// ---- a raw HTTP/1.1 connection ------------------------------------------------------

struct RawReply {
  int status = 0;
  std::map<std::string, std::string> fields;  // lower-case names
  std::string body;
  std::string field(const std::string& name) const {
    auto it = fields.find(name);
    return it == fields.end() ? "" : it->second;
  }
};

// One TCP connection to 127.0.0.1:port. Not thread-safe.
class Raw {
 public:
  explicit Raw(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~Raw() {
    if (fd_ >= 0) ::close(fd_);
  }
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;

  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  bool send_all(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads until `ready(buffer)` or the peer closes or `timeout` passes. False on timeout.
  bool fill(const std::function<bool()>& ready, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!ready()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[65536];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_ = true;
        return ready();
      }
      buf_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }

  // The next response (by Content-Length), or nullopt if none arrives within `timeout`.
  std::optional<RawReply> read_reply(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    std::optional<RawReply> out;
    fill([&] { return (out = parse()).has_value() || closed_; }, timeout);
    if (!out) out = parse();
    return out;
  }

  // True if the server closes the connection within `timeout` (bytes before it are kept).
  bool closed_within(std::chrono::milliseconds timeout) {
    fill([&] { return closed_; }, timeout);
    return closed_;
  }

  const std::string& buffered() const { return buf_; }

 private:
  std::optional<RawReply> parse() {
    const size_t end = buf_.find("\r\n\r\n");
    if (end == std::string::npos || buf_.rfind("HTTP/1.", 0) != 0) return std::nullopt;
    RawReply r;
    r.status = std::atoi(buf_.c_str() + 9);
    size_t pos = buf_.find("\r\n") + 2;
    while (pos < end) {
      const size_t eol = buf_.find("\r\n", pos);
      const std::string line = buf_.substr(pos, eol - pos);
      const size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      r.fields[name] = value;
      pos = eol + 2;
    }
    const size_t length = static_cast<size_t>(std::atoll(r.field("content-length").c_str()));
    if (buf_.size() < end + 4 + length) return std::nullopt;
    r.body = buf_.substr(end + 4, length);
    buf_.erase(0, end + 4 + length);
    return r;
  }

  int fd_ = -1;
  std::string buf_;
  bool closed_ = false;
};

std::string get_request(const std::string& path, const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + "\r\n";
}

std::string post_request(const std::string& path, const std::string& body, const std::string& extra = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + extra + "\r\n" + body;
}

// Resident memory of a process in KiB (VmRSS), or -1.
long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

constexpr const char* kWriteToken = "write-token-0123456789abcdef";
constexpr const char* kReadToken = "read-token-0123456789abcdef";

// ---- fixture -------------------------------------------------------------------------

class HttpHardeningTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }

  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "orderflow-http-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << "mkdtemp: " << strerror(errno);
    dir_ = tmpl;
    log_ = dir_ / "server.log";
    port_ = free_port();
    ASSERT_GT(port_, 0) << "no free loopback port";
    server_ = std::make_unique<ServerProcess>(dir_ / "data", log_);
  }

  void TearDown() override {
    if (server_) server_->kill_now();
    if (HasFailure()) print_log();
    server_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void print_log() const { orderflow::testing::print_log_tail(log_, 100); }

  std::string log_text() const {
    std::ifstream in(log_);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  // Starts the server and waits (at most 20 s) until GET /readyz answers 200.
  void start_server(HttpAccess access = {}) {
    ASSERT_TRUE(server_->start(port_)) << "fork failed: " << strerror(errno);
    Http h(port_, 2s, access);
    Reply last;
    const bool ready = eventually(
        [&] {
          if (!server_->running()) return true;
          last = h.get("/readyz");
          return last.status == 200;
        },
        20s, 50ms);
    ASSERT_TRUE(server_->running()) << "server exited during start-up: "
                                    << describe_wait_status(server_->last_status().value_or(0));
    ASSERT_TRUE(ready) << "GET /readyz never answered 200 in 20 s; last: " << last.describe();
  }

  fs::path write_token_file() {
    const fs::path p = dir_ / "tokens";
    std::ofstream out(p);
    out << "# role token\nwrite " << kWriteToken << "\nread " << kReadToken << "\n";
    return p;
  }

  // A self-signed certificate for 127.0.0.1 (and its key), made with the openssl tool.
  void make_certificate(const std::string& name) {
    const auto r = run_shell("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
                             "-addext subjectAltName=IP:127.0.0.1 -keyout " + (dir_ / (name + ".key")).string() +
                             " -out " + (dir_ / (name + ".pem")).string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }

  fs::path dir_;
  fs::path log_;
  int port_ = 0;
  std::unique_ptr<ServerProcess> server_;
};

// ---- limits as bytes arrive ----------------------------------------------------------

TEST_F(HttpHardeningTest, OversizedContentLengthIsRefusedBeforeTheBody) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  Raw c(port_);
  ASSERT_TRUE(c.connected());
  // Only the header is sent: the answer must not wait for 100 MB that never come.
  ASSERT_TRUE(c.send_all("POST /api/v1/commands HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         "Content-Length: 100000000\r\n\r\n"));
  const auto r = c.read_reply(2000ms);
  ASSERT_TRUE(r.has_value()) << "no answer before the body: " << c.buffered();
  EXPECT_EQ(r->status, 413) << r->body;
  EXPECT_NE(r->body.find("body_too_large"), std::string::npos) << r->body;
  EXPECT_EQ(r->field("connection"), "close");
  EXPECT_TRUE(c.closed_within(3000ms));
}

TEST_F(HttpHardeningTest, OversizedChunkedBodiesAreCutOffWithMemoryBounded) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  const long before = rss_kib(server_->pid());
  ASSERT_GT(before, 0);
  // Four clients at once, each offering a 256 MiB chunked body in 64 KiB chunks; each must
  // get 413 after a small part of it, and the server must not grow by the bodies' size.
  constexpr size_t kOffer = 256u << 20;
  const std::string chunk = [] {
    std::string data(65536, 'x');
    char head[16];
    std::snprintf(head, sizeof head, "%zx\r\n", data.size());
    return head + data + "\r\n";
  }();
  struct Result {
    int status = 0;
    size_t sent = 0;
  };
  std::vector<Result> results(4);
  std::vector<std::thread> clients;
  for (size_t k = 0; k < results.size(); ++k)
    clients.emplace_back([&, k] {
      Raw c(port_);
      if (!c.connected()) return;
      c.send_all("POST /api/v1/commands HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n");
      const auto deadline = Clock::now() + 20s;
      while (results[k].sent < kOffer && Clock::now() < deadline) {
        pollfd p{c.fd(), POLLIN | POLLOUT, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) break;  // the answer (or the close) came
        const ssize_t n = ::send(c.fd(), chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        if (n <= 0) break;
        results[k].sent += static_cast<size_t>(n);
      }
      if (auto r = c.read_reply(3000ms)) results[k].status = r->status;
    });
  long peak = before;
  std::atomic<bool> done{false};
  std::thread sampler([&] {
    while (!done) {
      peak = std::max(peak, rss_kib(server_->pid()));
      std::this_thread::sleep_for(20ms);
    }
  });
  for (auto& t : clients) t.join();
  done = true;
  sampler.join();
  for (size_t k = 0; k < results.size(); ++k) {
    EXPECT_EQ(results[k].status, 413) << "client " << k << " after " << results[k].sent << " bytes";
    EXPECT_LT(results[k].sent, 16u << 20) << "client " << k << ": the body was not cut off early";
  }
  const long after = rss_kib(server_->pid());
  EXPECT_LT(peak - before, 32 * 1024) << "RSS grew from " << before << " KiB to a peak of " << peak << " KiB";
  EXPECT_LT(after - before, 16 * 1024) << "RSS grew from " << before << " KiB to " << after << " KiB";
  EXPECT_EQ(Http(port_).get("/healthz").status, 200);
}

TEST_F(HttpHardeningTest, OversizedHeadersGet431) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  {
    Raw c(port_);
    ASSERT_TRUE(c.send_all(get_request("/healthz", "X-Big: " + std::string(64 * 1024, 'a') + "\r\n")));
    const auto r = c.read_reply();
    ASSERT_TRUE(r.has_value()) << c.buffered();
    EXPECT_EQ(r->status, 431) << r->body;
  }
  {
    std::string many;
    for (int i = 0; i < 150; ++i) many += "X-F" + std::to_string(i) + ": v\r\n";
    Raw c(port_);
    ASSERT_TRUE(c.send_all(get_request("/healthz", many)));
    const auto r = c.read_reply();
    ASSERT_TRUE(r.has_value()) << c.buffered();
    EXPECT_EQ(r->status, 431) << r->body;
  }
  EXPECT_EQ(Http(port_).get("/healthz").status, 200);
}

TEST_F(HttpHardeningTest, SlowHeadersAndIdleConnectionsAreClosedAtTheirTimeouts) {
  server_->add_args({"--http-option", "header_timeout_ms=1000", "--http-option", "idle_timeout_ms=1500"});
  ASSERT_NO_FATAL_FAILURE(start_server());
  // Slow headers: one byte every 100 ms, never finishing.
  Raw slow(port_);
  ASSERT_TRUE(slow.send_all("GET /healthz HTTP/1.1\r\n"));
  const auto t0 = Clock::now();
  bool closed = false;
  for (int i = 0; i < 50 && !closed; ++i) {
    if (!slow.send_all("X")) break;
    closed = slow.closed_within(100ms);
  }
  closed = closed || slow.closed_within(1000ms);
  const auto slow_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EXPECT_TRUE(closed) << "a header trickling for " << slow_ms << " ms was not cut off";
  EXPECT_GE(slow_ms, 800);
  EXPECT_LE(slow_ms, 3000);
  // Idle: connected, nothing sent.
  Raw idle(port_);
  const auto t1 = Clock::now();
  EXPECT_TRUE(idle.closed_within(5000ms));
  const auto idle_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t1).count();
  EXPECT_GE(idle_ms, 1300);
  EXPECT_LE(idle_ms, 3500);
  // Keep-alive after a request: closed after the idle timeout too.
  Raw kept(port_);
  ASSERT_TRUE(kept.send_all(get_request("/healthz")));
  const auto r = kept.read_reply();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(kept.closed_within(4000ms));
}

TEST_F(HttpHardeningTest, ConnectionsOverTheCapAreRefusedWith503) {
  server_->add_args({"--http-option", "max_connections=4"});
  ASSERT_NO_FATAL_FAILURE(start_server());
  // The start-up probe's connection may still be counted for a moment after it closes (the
  // server notices the close asynchronously): a held connection refused then is retried, so
  // the four held are four accepted sessions and nothing else is open when `over` connects.
  std::vector<std::unique_ptr<Raw>> held;
  for (int i = 0; i < 4; ++i) {
    std::optional<RawReply> r;
    for (int attempt = 0; attempt < 50; ++attempt) {
      auto c = std::make_unique<Raw>(port_);
      ASSERT_TRUE(c->connected());
      // Each answers, so each is known to be counted before the next connects.
      ASSERT_TRUE(c->send_all(get_request("/healthz")));
      r = c->read_reply();
      ASSERT_TRUE(r.has_value()) << c->buffered();
      if (r->status != 503) {
        held.push_back(std::move(c));
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
    ASSERT_EQ(r->status, 200) << "held connection " << i << ": " << r->body;
  }
  Raw over(port_);
  ASSERT_TRUE(over.connected());
  const auto r = over.read_reply(2000ms);
  ASSERT_TRUE(r.has_value()) << over.buffered();
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find("too_many_connections"), std::string::npos) << r->body;
  EXPECT_EQ(r->field("retry-after"), "1");
  EXPECT_TRUE(over.closed_within(2000ms));
  held.pop_back();  // one closes: a new client gets in
  EXPECT_TRUE(eventually([&] { return Http(port_, 2s).get("/healthz").status == 200; }, 5s, 100ms));
}

// ---- HTTP/1.1 as clients use it --------------------------------------------------------

TEST_F(HttpHardeningTest, PipelinedRequestsAreAllAnsweredInOrder) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  Raw c(port_);
  std::string batch;
  constexpr int kN = 30;
  for (int i = 0; i < kN; ++i) {
    if (i % 3 == 0) batch += get_request("/healthz");
    else if (i % 3 == 1) batch += post_request("/api/v1/commands?wait=committed", add_stock("p-" + std::to_string(i), "P" + std::to_string(i), 1).body);
    else batch += get_request("/api/v1/inventory/never-" + std::to_string(i));
  }
  batch += get_request("/healthz", "Connection: close\r\n");
  ASSERT_TRUE(c.send_all(batch));  // one write: the requests arrive together
  for (int i = 0; i < kN; ++i) {
    const auto r = c.read_reply(10000ms);
    ASSERT_TRUE(r.has_value()) << "answer " << i << " of " << kN << " missing";
    if (i % 3 == 0) {
      EXPECT_EQ(r->status, 200) << i << ": " << r->body;
      EXPECT_NE(r->body.find("\"ok\""), std::string::npos) << i << ": " << r->body;
    } else if (i % 3 == 1) {
      EXPECT_EQ(r->status, 200) << i << ": " << r->body;
      EXPECT_NE(r->body.find("\"commandId\":\"p-" + std::to_string(i) + "\""), std::string::npos) << i << ": " << r->body;
    } else {
      EXPECT_EQ(r->status, 404) << i << ": " << r->body;
    }
  }
  const auto last = c.read_reply();
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->status, 200);
  EXPECT_EQ(last->field("connection"), "close");
  EXPECT_TRUE(c.closed_within(2000ms)) << "Connection: close not honoured";
}

TEST_F(HttpHardeningTest, ConflictingFramingMethodsAndMediaTypes) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  const std::string body = add_stock("f-1", "F", 1).body;
  auto one = [&](const std::string& request) {
    Raw c(port_);
    EXPECT_TRUE(c.send_all(request));
    auto r = c.read_reply();
    return r ? *r : RawReply{};
  };
  const std::string head = "POST /api/v1/commands HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
  const std::string len = std::to_string(body.size());
  RawReply r = one(head + "Content-Length: " + len + "\r\nContent-Length: 5\r\n\r\n" + body);
  EXPECT_EQ(r.status, 400) << "two different Content-Lengths: " << r.body;
  r = one(head + "Content-Length: " + len + "\r\nContent-Length: " + len + "\r\n\r\n" + body);
  EXPECT_EQ(r.status, 400) << "Content-Length twice: " << r.body;
  r = one(head + "Content-Length: " + len + "\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  EXPECT_EQ(r.status, 400) << "Content-Length with chunked: " << r.body;
  r = one(head + "Transfer-Encoding: chunked\r\nContent-Length: " + len + "\r\n\r\n0\r\n\r\n");
  EXPECT_EQ(r.status, 400) << "chunked with Content-Length: " << r.body;
  r = one(head + "Transfer-Encoding: gzip\r\n\r\n" + body);
  EXPECT_EQ(r.status, 400) << "a transfer coding other than chunked: " << r.body;
  r = one("TRACE /api/v1/commands HTTP/1.1\r\nHost: x\r\nX-Secret: s3cr3t\r\n\r\n");
  EXPECT_EQ(r.status, 405) << r.body;
  EXPECT_EQ(r.body.find("s3cr3t"), std::string::npos) << "TRACE echoed the request: " << r.body;
  EXPECT_EQ(one("TRACE /healthz HTTP/1.1\r\nHost: x\r\n\r\n").status, 405);
  r = one("OPTIONS /api/v1/graph HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.field("allow"), "GET");
  // A chunked command within the limit works.
  char size[16];
  std::snprintf(size, sizeof size, "%zx", body.size());
  r = one("POST /api/v1/commands?wait=committed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          "Transfer-Encoding: chunked\r\n\r\n" + std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n");
  EXPECT_EQ(r.status, 200) << r.body;

  // Content-Type is a media type: case-insensitive, parameters allowed, nothing appended.
  Http h(port_);
  Reply ok = h.post("/api/v1/commands?wait=committed", add_stock("m-1", "M", 1).body, "APPLICATION/JSON; charset=utf-8");
  EXPECT_EQ(ok.status, 200) << ok.describe();
  Reply bad = h.post("/api/v1/commands?wait=committed", add_stock("m-2", "M", 1).body, "application/jsonfoo");
  EXPECT_EQ(bad.status, 415) << bad.describe();
  // A hostile Content-Type is neither echoed to the client nor kept in the metrics.
  bad = h.post("/api/v1/commands", add_stock("m-3", "M", 1).body, "text/<script>alert(1)</script>");
  EXPECT_EQ(bad.status, 415) << bad.describe();
  EXPECT_EQ(bad.text.find("<script>"), std::string::npos) << bad.text;
  Reply metrics = h.get("/api/v1/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.text.find("<script"), std::string::npos) << "client text in the metrics";
  EXPECT_EQ(metrics.text.find('<'), std::string::npos) << "an unescaped '<' in the metrics JSON";
}

TEST_F(HttpHardeningTest, QueryNumbersAreParsedStrictlyAndStreamsArePaged) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  Http h(port_);
  for (const char* q : {"fromVersion=-1", "fromVersion=2abc", "fromVersion=%202", "fromVersion=", "fromVersion=1e3",
                        "fromVersion=99999999999999999999", "limit=0", "limit=1001", "limit=-5", "limit=10x",
                        "fromVersion=1&fromVersion=2"}) {
    Reply r = h.get(std::string("/api/v1/streams/sku-Q/events?") + q);
    EXPECT_EQ(r.status, 400) << q << ": " << r.describe();
    EXPECT_TRUE(is_error_body(r, "bad_request")) << q << ": " << r.text;
  }
  Reply r = h.post("/api/v1/commands?wait=committed", add_stock("t-1", "Q", 1).body);
  ASSERT_EQ(r.status, 200) << r.describe();
  {
    Raw c(port_);
    ASSERT_TRUE(c.send_all(post_request("/api/v1/commands", add_stock("t-2", "Q", 1).body, "X-Timeout-Ms: 5s\r\n")));
    const auto bad = c.read_reply();
    ASSERT_TRUE(bad.has_value());
    EXPECT_EQ(bad->status, 400) << bad->body;
  }

  // 25 events on one stream, read 10 at a time.
  for (int i = 2; i <= 25; ++i) ASSERT_EQ(h.command(add_stock("t-" + std::to_string(i + 1), "Q", 1).body).status, 200);
  std::vector<int64_t> versions;
  std::string path = "/api/v1/streams/sku-Q/events?limit=10";
  for (int page = 0; page < 5 && !path.empty(); ++page) {
    Raw c(port_);
    ASSERT_TRUE(c.send_all(get_request(path)));
    const auto p = c.read_reply();
    ASSERT_TRUE(p.has_value());
    ASSERT_EQ(p->status, 200) << p->body;
    std::error_code ec;
    const value v = value::parse(p->body, ec);
    ASSERT_FALSE(ec) << p->body;
    const auto* evs = arr(v, "events");
    ASSERT_NE(evs, nullptr);
    for (const auto& e : *evs) versions.push_back(num(e, "version"));
    EXPECT_EQ(num(v, "nextVersion"), versions.empty() ? 1 : versions.back() + 1);
    const bool more = flag(v, "more");
    path = more ? str(v, "next") : "";
    if (more) {
      EXPECT_EQ(evs->size(), 10u);
      EXPECT_EQ(p->field("link"), "<" + path + ">; rel=\"next\"");
    } else {
      EXPECT_EQ(p->field("link"), "");
    }
  }
  EXPECT_TRUE(path.empty()) << "still more after 5 pages";
  ASSERT_EQ(versions.size(), 25u);
  for (size_t i = 0; i < versions.size(); ++i) EXPECT_EQ(versions[i], static_cast<int64_t>(i) + 1);
  // The default page is the maximum, 1000; a read past the end is empty with nextVersion there.
  r = h.get("/api/v1/streams/sku-Q/events?fromVersion=26");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(arr(r.json, "events")->size(), 0u);
  EXPECT_EQ(num(r.json, "nextVersion"), 26);
  EXPECT_FALSE(flag(r.json, "more"));
}

// ---- authentication and TLS ---------------------------------------------------------------

void expect_roles(int port, const HttpAccess& base, const std::string& label) {
  HttpAccess none = base, read = base, write = base, wrong = base;
  read.token = kReadToken;
  write.token = kWriteToken;
  wrong.token = "not-a-token-0123456789";
  Http anon(port, 5s, none), reader(port, 5s, read), writer(port, 5s, write), liar(port, 5s, wrong);
  EXPECT_EQ(anon.get("/healthz").status, 200) << label;
  EXPECT_EQ(anon.get("/readyz").status, 200) << label;
  Reply r = anon.get("/api/v1/metrics");
  EXPECT_EQ(r.status, 401) << label << ": " << r.describe();
  EXPECT_TRUE(is_error_body(r, "unauthorized")) << label << ": " << r.text;
  r = anon.command(add_stock("a-1", "A", 1).body);
  EXPECT_EQ(r.status, 401) << label << ": " << r.describe();
  EXPECT_EQ(liar.get("/api/v1/graph").status, 401) << label;
  r = reader.command(add_stock("a-2", "A", 1).body);
  EXPECT_EQ(r.status, 403) << label << ": " << r.describe();
  EXPECT_TRUE(is_error_body(r, "forbidden")) << label << ": " << r.text;
  EXPECT_EQ(reader.get("/api/v1/streams/sku-A/events").status, 200) << label;
  r = writer.command(add_stock("a-3", "A", 2).body);
  EXPECT_EQ(r.status, 200) << label << ": " << r.describe();
  EXPECT_EQ(writer.get("/api/v1/metrics").status, 200) << label << ": write implies read";
  r = reader.get("/api/v1/streams/sku-A/events");
  ASSERT_EQ(r.status, 200) << label;
  EXPECT_EQ(arr(r.json, "events")->size(), 1u) << label << ": only the write token's command was written";
}

TEST_F(HttpHardeningTest, BearerTokensWithReadAndWriteRoles) {
  server_->add_args({"--token-file", write_token_file().string()});
  ASSERT_NO_FATAL_FAILURE(start_server());
  expect_roles(port_, {}, "http");
  Raw c(port_);
  ASSERT_TRUE(c.send_all(get_request("/api/v1/graph")));
  const auto r = c.read_reply();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(r->field("www-authenticate"), "Bearer realm=\"orderflow\"");
  EXPECT_EQ(log_text().find(kWriteToken), std::string::npos) << "a token in the log";
}

TEST_F(HttpHardeningTest, TokensFromTheEnvironment) {
  ::setenv("ORDERFLOW_WRITE_TOKEN", kWriteToken, 1);  // inherited by the child at fork
  ::setenv("ORDERFLOW_READ_TOKEN", kReadToken, 1);
  start_server();
  ::unsetenv("ORDERFLOW_WRITE_TOKEN");
  ::unsetenv("ORDERFLOW_READ_TOKEN");
  if (HasFatalFailure()) return;
  expect_roles(port_, {}, "env");
}

TEST_F(HttpHardeningTest, AuthenticationIsOffOnlyOnLoopbackAndSaysSo) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  EXPECT_EQ(Http(port_).get("/api/v1/metrics").status, 200);
  const std::string log = log_text();
  EXPECT_NE(log.find("authentication off: listening on a loopback address without tokens"), std::string::npos) << log;
  server_->kill_now();

  // All interfaces and no tokens: refused at start.
  const auto r = run_shell(std::string(ORDERFLOW_BINARY) + " serve " + ORDERFLOW_SOURCE_DIR +
                           "/graphs/orders.yaml --listen 0.0.0.0:" + std::to_string(free_port()) + " --data-dir " +
                           (dir_ / "data2").string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("without authentication"), std::string::npos) << r.output;
}

TEST_F(HttpHardeningTest, TlsWithTokensAndClientCertificates) {
  ASSERT_NO_FATAL_FAILURE(make_certificate("server"));
  const std::string cert = (dir_ / "server.pem").string(), key = (dir_ / "server.key").string();
  server_->add_args({"--listen", "https://127.0.0.1:" + std::to_string(port_), "--tls-cert", cert, "--tls-key", key,
                     "--token-file", write_token_file().string()});
  HttpAccess tls;
  tls.ca_file = cert;
  ASSERT_NO_FATAL_FAILURE(start_server(tls));
  expect_roles(port_, tls, "https");
  // Plain HTTP to the TLS port gets no HTTP answer.
  Raw plain(port_);
  ASSERT_TRUE(plain.send_all(get_request("/healthz")));
  EXPECT_FALSE(plain.read_reply(2000ms).has_value()) << plain.buffered();
  server_->kill_now();

  // Mutual TLS: a client without a certificate signed by the client CA is turned away.
  ASSERT_NO_FATAL_FAILURE(make_certificate("client"));
  const std::string client_cert = (dir_ / "client.pem").string(), client_key = (dir_ / "client.key").string();
  server_->add_args({"--tls-client-ca", client_cert});
  ASSERT_TRUE(server_->start(port_));
  const std::string url = "https://127.0.0.1:" + std::to_string(port_) + "/healthz";
  std::string with, without;
  ASSERT_TRUE(eventually(
      [&] {
        with = run_shell("curl -sS -m 5 -o /dev/null -w '%{http_code}' --cacert " + cert + " --cert " + client_cert +
                         " --key " + client_key + " " + url).output;
        return with == "200";
      },
      20s, 100ms))
      << "with a client certificate: " << with;
  without = run_shell("curl -sS -m 5 -o /dev/null -w '%{http_code}' --cacert " + cert + " " + url).output;
  EXPECT_EQ(without.find("200"), std::string::npos) << "without a client certificate: " << without;
}

}  // namespace
}  // namespace orderflow::testing
