// Starts the Cosmos DB stand-in (tests/cosmos/launcher.js on node) on 127.0.0.1 with a
// port it picks itself, a fresh random master key and N partition key ranges; stops it on
// destruction. Also drives the launcher's test controls (fault injection, stats).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef ORDERFLOW_SOURCE_DIR
#error "ORDERFLOW_SOURCE_DIR must point at the source tree"
#endif

namespace orderflow::testing {

class CosmosStandIn {
 public:
  struct Options {
    int ranges = 1;
    std::string tls_cert, tls_key;  // both set: HTTPS
    int latency_ms = 0;             // added before every answer (benchmarks)
  };
  explicit CosmosStandIn(const Options& o) : key_(random_key()) { start(o); }
  CosmosStandIn() : CosmosStandIn(Options{}) {}
  ~CosmosStandIn() { stop(); }
  CosmosStandIn(const CosmosStandIn&) = delete;
  CosmosStandIn& operator=(const CosmosStandIn&) = delete;

  int port() const { return port_; }
  const std::string& key() const { return key_; }
  std::string endpoint() const { return (tls_ ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port_); }

  // The next `count` requests (matching `method` if not empty) answer `status`.
  // With `after`, the requests are carried out and only their answers replaced (lost answers).
  void inject(int status, int count, int retry_after_ms = 10, const std::string& method = "", double probability = 1,
              bool after = false) {
    std::string body = "{\"status\":" + std::to_string(status) + ",\"count\":" + std::to_string(count) +
                       ",\"retryAfterMs\":" + std::to_string(retry_after_ms) +
                       ",\"probability\":" + std::to_string(probability);
    if (!method.empty()) body += ",\"method\":\"" + method + "\"";
    if (after) body += ",\"after\":true";
    body += "}";
    control("POST", "/_launcher/faults", body);
  }
  void clear_faults() { control("DELETE", "/_launcher/faults", ""); }
  // Freezes the stand-in's process (SIGSTOP): connections are still accepted by the
  // kernel, nothing is answered, as when an account or the path to it black-holes traffic.
  // resume() (SIGCONT) lets it answer what queued up meanwhile.
  void pause() {
    if (pid_ > 0) ::kill(pid_, SIGSTOP);
  }
  void resume() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
  }
  // GET /_launcher/stats as JSON text.
  std::string stats() { return control("GET", "/_launcher/stats", ""); }
  // A number from the stats JSON, e.g. stat("faults").
  long stat(const std::string& name) {
    const std::string s = stats();
    const auto at = s.find("\"" + name + "\":");
    return at == std::string::npos ? -1 : std::atol(s.c_str() + at + name.size() + 3);
  }

  static std::string random_key() {
    static const char* kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::random_device rd;
    std::string k;
    for (int i = 0; i < 84; ++i) k.push_back(kB64[rd() % 64]);  // 63 bytes of key material
    return k;
  }

 private:
  void start(const Options& o) {
    tls_ = !o.tls_cert.empty();
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
    const std::string launcher = std::string(ORDERFLOW_SOURCE_DIR) + "/tests/cosmos/launcher.js";
    std::vector<std::string> args = {"node", launcher, "--host", "127.0.0.1", "--port", "0", "--key", key_,
                                     "--ranges", std::to_string(o.ranges), "--latency-ms",
                                     std::to_string(o.latency_ms)};
    if (tls_) {
      args.insert(args.end(), {"--tls-cert", o.tls_cert, "--tls-key", o.tls_key});
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      ::close(out[1]);
      ::execvp("node", argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    // First line: {"port":N}
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    char c;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      if (::read(out[0], &c, 1) != 1) break;
      if (c == '\n') break;
      line.push_back(c);
    }
    ::close(out[0]);
    const auto at = line.find("\"port\":");
    if (at == std::string::npos) {
      stop();
      throw std::runtime_error("the Cosmos stand-in did not start (is `npm ci` done in tests/cosmos?): '" + line + "'");
    }
    port_ = std::atoi(line.c_str() + at + 7);
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);  // a paused process would not act on SIGTERM
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 50; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      ::usleep(100000);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  // A plain HTTP/1.0 exchange with the launcher's control endpoints (never TLS: tests
  // that use TLS do not inject faults).
  std::string control(const std::string& method, const std::string& path, const std::string& body) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      throw std::runtime_error("cannot reach the stand-in");
    }
    std::string req = method + " " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
                      "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    if (::send(fd, req.data(), req.size(), 0) != static_cast<ssize_t>(req.size())) {
      ::close(fd);
      throw std::runtime_error("send to the stand-in failed");
    }
    std::string resp;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) resp.append(buf, static_cast<size_t>(n));
    ::close(fd);
    const auto split = resp.find("\r\n\r\n");
    return split == std::string::npos ? std::string() : resp.substr(split + 4);
  }

  std::string key_;
  pid_t pid_ = -1;
  int port_ = 0;
  bool tls_ = false;
};

// graphs/orders-cosmos.yaml (or another shipped graph) as shipped, pointed at the stand-in
// and a database of its own.
inline std::string cosmos_graph(const CosmosStandIn& standin, const std::string& database,
                                const std::string& file = "orders-cosmos.yaml") {
  std::ifstream in(std::string(ORDERFLOW_SOURCE_DIR) + "/graphs/" + file);
  std::stringstream text;
  text << in.rdbuf();
  std::string yaml = text.str();
  auto replace_all = [&](const std::string& from, const std::string& to) {
    for (size_t at = yaml.find(from); at != std::string::npos; at = yaml.find(from, at + to.size()))
      yaml.replace(at, from.size(), to);
  };
  replace_all("https://YOUR-ACCOUNT.documents.azure.com:443", standin.endpoint());
  replace_all("database: orderflow", "database: " + database);
  return yaml;
}

}  // namespace orderflow::testing
