// The server's throughput with and without orderflow-monitor polling it, same run (issue 3).
//
// A closed-loop HTTP load: C connections, each with one request in flight, posting commands
// with ?wait=committed over keep-alive sockets, so the measured rate is what the server
// commits, not what a generator offers. The commands cycle over a bounded set of SKUs (AddStock)
// plus a share of new orders (PlaceOrder of 1-2 lines on those SKUs), so the working set stays
// steady through the run.
//
// Windows alternate without / with polling, the order flipped every round (ABBA) so a drift
// of the machine hits both sides alike. "With polling" runs the monitor's own Poller
// (monitor-ui/poller.cc: GET /api/v1/metrics every --interval, /api/v1/graph every 30 polls,
// one keep-alive cpprestsdk client), i.e. exactly the requests the desktop app sends.
// Printed: each window's rate and the spread of its one-second rates, medians per side, the
// ratio of the medians and the median of the per-round ratios.
//
//   build/bench/monitor_overhead_bench --url http://127.0.0.1:18300 [--connections 16]
//       [--rounds 6] [--secs 10] [--warmup 5] [--interval 250] [--skus 256] [--orders 0.1]
//       [--server-pid PID]
//
// With --server-pid, each window also reports the server's CPU time per completed command
// (/proc/PID/stat): on a machine shared with other work the server's CPU share, and with it the
// saturated throughput, moves from window to window; its CPU per command moves much less, and
// the polling overhead shows there directly.
//
// bench/monitor_overhead.sh starts a server on a fresh data directory and runs this.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "poller.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string url = "http://127.0.0.1:8080";
  int connections = 16;
  int rounds = 6;
  double secs = 10;
  double warmup = 5;
  int interval_ms = 250;
  int skus = 256;
  double orders = 0.1;  // share of PlaceOrder among the commands
  int server_pid = 0;   // > 0: also measure the server's CPU time per command (/proc/PID/stat)
};

bool parse_url(const std::string& url, Options& o) {
  const std::string prefix = "http://";
  if (url.compare(0, prefix.size(), prefix) != 0) return false;
  const std::string rest = url.substr(prefix.size());
  const size_t colon = rest.find(':');
  if (colon == std::string::npos) return false;
  o.host = rest.substr(0, colon);
  o.port = std::atoi(rest.c_str() + colon + 1);
  o.url = url;
  return o.port > 0;
}

bool parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return false;
    const char* v = argv[++i];
    if (a == "--url") {
      if (!parse_url(v, o)) {
        std::fprintf(stderr, "--url needs http://IPV4:PORT, got %s\n", v);
        return false;
      }
    } else if (a == "--connections") {
      o.connections = std::max(1, std::atoi(v));
    } else if (a == "--rounds") {
      o.rounds = std::max(1, std::atoi(v));
    } else if (a == "--secs") {
      o.secs = std::max(1.0, std::atof(v));
    } else if (a == "--warmup") {
      o.warmup = std::max(0.0, std::atof(v));
    } else if (a == "--interval") {
      o.interval_ms = std::max(50, std::atoi(v));
    } else if (a == "--skus") {
      o.skus = std::max(1, std::atoi(v));
    } else if (a == "--server-pid") {
      o.server_pid = std::atoi(v);
    } else if (a == "--orders") {
      o.orders = std::clamp(std::atof(v), 0.0, 1.0);
    } else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return false;
    }
  }
  return true;
}

// One keep-alive HTTP/1.1 connection with blocking I/O; reconnects after any error.
class Connection {
 public:
  Connection(const std::string& host, int port) {
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, host.c_str(), &addr_.sin_addr);
  }
  ~Connection() { close(); }

  // Sends the request and reads one response; returns the status code, or -1 on I/O failure.
  int round_trip(const std::string& request) {
    if (fd_ < 0 && !connect()) return -1;
    if (!send_all(request)) return fail();
    // Headers.
    size_t header_end;
    while ((header_end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill()) return fail();
    const int status = buf_.size() > 12 ? std::atoi(buf_.c_str() + 9) : -1;
    size_t length = 0;
    bool close_after = false;
    for (size_t at = buf_.find("\r\n") + 2; at < header_end;) {
      const size_t eol = buf_.find("\r\n", at);
      std::string line = buf_.substr(at, eol - at);
      for (char& c : line) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (line.rfind("content-length:", 0) == 0) length = std::strtoul(line.c_str() + 15, nullptr, 10);
      if (line.rfind("connection:", 0) == 0 && line.find("close") != std::string::npos) close_after = true;
      at = eol + 2;
    }
    const size_t total = header_end + 4 + length;
    while (buf_.size() < total)
      if (!fill()) return fail();
    buf_.erase(0, total);
    if (close_after) close();
    return status;
  }

 private:
  bool connect() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return false;
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{5, 0};  // a stuck server fails the request instead of hanging the bench
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_) != 0) {
      close();
      return false;
    }
    return true;
  }
  bool send_all(const std::string& s) {
    for (size_t at = 0; at < s.size();) {
      const ssize_t n = ::send(fd_, s.data() + at, s.size() - at, MSG_NOSIGNAL);
      if (n <= 0) return false;
      at += static_cast<size_t>(n);
    }
    return true;
  }
  bool fill() {
    char tmp[8192];
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  int fail() {
    close();
    return -1;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buf_.clear();
  }

  sockaddr_in addr_{};
  int fd_ = -1;
  std::string buf_;
};

struct Counters {
  std::atomic<uint64_t> ok{0};        // 200 committed
  std::atomic<uint64_t> rejected{0};  // 422: the domain said no (still a full round trip)
  std::atomic<uint64_t> refused{0};   // 429/503: overload
  std::atomic<uint64_t> failed{0};    // other statuses, I/O errors
  uint64_t done() const {
    return ok.load(std::memory_order_relaxed) + rejected.load(std::memory_order_relaxed);
  }
};

void client(const Options& o, int index, const std::string& run_id, std::atomic<bool>& stop, Counters& c) {
  Connection conn(o.host, o.port);
  std::mt19937_64 rng(static_cast<uint64_t>(index) * 7919 + 1);
  std::uniform_real_distribution<double> coin(0, 1);
  std::uniform_int_distribution<int> sku(0, o.skus - 1);
  const std::string host_header = "Host: " + o.host + ":" + std::to_string(o.port) + "\r\n";
  uint64_t n = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    const std::string id = "mb-" + run_id + "-" + std::to_string(index) + "-" + std::to_string(++n);
    std::string body;
    if (coin(rng) < o.orders) {
      const int a = sku(rng), b = sku(rng);
      body = R"({"commandId":")" + id + R"(","placeOrder":{"orderId":"o)" + id + R"(","customerId":"c)" +
             std::to_string(index) + R"(","lines":[{"sku":"mb-)" + std::to_string(a) +
             R"(","quantity":1,"unitPriceCents":500})" +
             (b != a ? R"(,{"sku":"mb-)" + std::to_string(b) + R"(","quantity":1,"unitPriceCents":700})" : "") +
             "]}}";
    } else {
      body = R"({"commandId":")" + id + R"(","addStock":{"sku":"mb-)" + std::to_string(sku(rng)) +
             R"(","quantity":5}})";
    }
    const std::string req = "POST /api/v1/commands?wait=committed HTTP/1.1\r\n" + host_header +
                            "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                            "\r\n\r\n" + body;
    const int status = conn.round_trip(req);
    if (status == 200) {
      c.ok.fetch_add(1, std::memory_order_relaxed);
    } else if (status == 422) {
      c.rejected.fetch_add(1, std::memory_order_relaxed);
    } else if (status == 429 || status == 503) {
      c.refused.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    } else {
      c.failed.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

// CPU seconds (user + system) the process has used, from /proc/PID/stat; -1 if unreadable.
double process_cpu_seconds(int pid) {
  if (pid <= 0) return -1;
  std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (!f) return -1;
  char buf[1024];
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');  // the command name may contain spaces
  if (!p) return -1;
  unsigned long utime = 0, stime = 0;
  // After ") ": state, then fields 4..13, then utime (14) and stime (15).
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2) return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct Window {
  double rate = 0;         // completed commands per second over the window
  double cv = 0;           // coefficient of variation of the one-second rates
  int polls = 0;           // monitor polls during the window
  double cpu_us_per = -1;  // server CPU microseconds per completed command (-1: not measured)
};

Window measure(const Options& o, const Counters& c, const orderflow::monitor::Poller* poller) {
  const int polls0 = poller ? poller->attempts() : 0;
  const double cpu0 = process_cpu_seconds(o.server_pid);
  std::vector<double> per_second;
  const auto t0 = Clock::now();
  const uint64_t n0 = c.done();
  uint64_t last = n0;
  auto tick = t0;
  const auto end = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.secs));
  while (Clock::now() < end) {
    tick += std::chrono::seconds(1);
    std::this_thread::sleep_until(std::min(tick, end));
    const uint64_t now = c.done();
    if (tick <= end || per_second.empty()) per_second.push_back(static_cast<double>(now - last));
    last = now;
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  Window w;
  w.rate = static_cast<double>(c.done() - n0) / secs;
  double mean = 0, var = 0;
  for (double x : per_second) mean += x;
  mean /= static_cast<double>(per_second.size());
  for (double x : per_second) var += (x - mean) * (x - mean);
  w.cv = mean > 0 ? std::sqrt(var / static_cast<double>(per_second.size())) / mean : 0;
  w.polls = poller ? poller->attempts() - polls0 : 0;
  const double cpu1 = process_cpu_seconds(o.server_pid);
  const uint64_t done = c.done() - n0;
  if (cpu0 >= 0 && cpu1 >= 0 && done > 0) w.cpu_us_per = (cpu1 - cpu0) * 1e6 / static_cast<double>(done);
  return w;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse_args(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: monitor_overhead_bench --url http://IPV4:PORT [--connections N] [--rounds N] [--secs S]\n"
                 "       [--warmup S] [--interval MS] [--skus N] [--orders SHARE] [--server-pid PID]\n");
    return 2;
  }
  const std::string run_id =
      std::to_string(std::chrono::system_clock::now().time_since_epoch().count() / 1000000 % 100000000);
  Counters c;
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int i = 0; i < o.connections; ++i) clients.emplace_back(client, std::cref(o), i, run_id, std::ref(stop), std::ref(c));

  std::printf("closed loop: %d connections, POST /api/v1/commands?wait=committed, %d SKUs, %.0f%% new orders; "
              "polling every %d ms; %d rounds of 2 x %.0f s after %.0f s warm-up\n",
              o.connections, o.skus, o.orders * 100, o.interval_ms, o.rounds, o.secs, o.warmup);
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup));
  if (c.done() == 0) {
    std::fprintf(stderr, "no command completed during the warm-up (failed %llu, refused %llu): is %s up?\n",
                 static_cast<unsigned long long>(c.failed.load()), static_cast<unsigned long long>(c.refused.load()),
                 o.url.c_str());
    stop = true;
    for (auto& t : clients) t.join();
    return 1;
  }

  orderflow::monitor::PollerOptions popt;
  popt.interval = std::chrono::milliseconds(o.interval_ms);
  std::vector<double> without, with, ratios, cpu_without, cpu_with;
  int rc = 0;
  for (int r = 1; r <= o.rounds; ++r) {
    Window w0, w1;
    auto polled = [&] {
      orderflow::monitor::Poller poller(o.url, popt);
      poller.start();
      Window w = measure(o, c, &poller);
      const auto st = poller.state();
      poller.stop();
      if (!st.reachable || w.polls == 0) {
        std::fprintf(stderr, "round %d: the monitor's poller did not reach %s (%s)\n", r, o.url.c_str(),
                     st.last_error.c_str());
        rc = 1;
      }
      return w;
    };
    if (r % 2) {
      w0 = measure(o, c, nullptr);
      w1 = polled();
    } else {
      w1 = polled();
      w0 = measure(o, c, nullptr);
    }
    without.push_back(w0.rate);
    with.push_back(w1.rate);
    ratios.push_back(w1.rate / w0.rate);
    std::printf("round %d (%s): without %.0f/s (cv %.3f)  polling %.0f/s (cv %.3f, %d polls)  ratio %.3f", r,
                r % 2 ? "without first" : "polling first", w0.rate, w0.cv, w1.rate, w1.cv, w1.polls,
                w1.rate / w0.rate);
    if (w0.cpu_us_per > 0 && w1.cpu_us_per > 0) {
      cpu_without.push_back(w0.cpu_us_per);
      cpu_with.push_back(w1.cpu_us_per);
      std::printf("; server CPU per command %.1f / %.1f us", w0.cpu_us_per, w1.cpu_us_per);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  stop = true;
  for (auto& t : clients) t.join();
  // The cost of one poll, measured directly on the now idle server: its CPU time over a burst
  // of the poller's requests (GET /api/v1/metrics, /api/v1/graph every 30th) minus its idle CPU
  // over as long. Set against the server's CPU per second under the load above, it bounds the
  // throughput a 4 Hz poller can take away: far below what the windows can resolve.
  double poll_cpu_us = -1, loaded_cpu_per_s = -1;
  if (o.server_pid > 0) {
    std::vector<double> per_s;
    for (size_t i = 0; i < cpu_with.size(); ++i) per_s.push_back(cpu_without[i] * 1e-6 * without[i]);
    if (!per_s.empty()) loaded_cpu_per_s = median(per_s);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const auto idle0 = Clock::now();
    const double idle_cpu0 = process_cpu_seconds(o.server_pid);
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const double idle_per_s = (process_cpu_seconds(o.server_pid) - idle_cpu0) /
                              std::chrono::duration<double>(Clock::now() - idle0).count();
    Connection conn(o.host, o.port);
    const std::string host_header = "Host: " + o.host + ":" + std::to_string(o.port) + "\r\n";
    const int polls = 2000;
    const auto t0 = Clock::now();
    const double cpu0 = process_cpu_seconds(o.server_pid);
    int ok = 0;
    for (int i = 0; i < polls; ++i) {
      ok += conn.round_trip("GET /api/v1/metrics HTTP/1.1\r\n" + host_header + "\r\n") == 200;
      if (i % 30 == 0) conn.round_trip("GET /api/v1/graph HTTP/1.1\r\n" + host_header + "\r\n");
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    const double burst_cpu = process_cpu_seconds(o.server_pid) - cpu0 - idle_per_s * secs;
    if (ok == polls) {
      poll_cpu_us = std::max(0.0, burst_cpu) * 1e6 / polls;
    } else {
      std::fprintf(stderr, "poll cost: only %d of %d polls answered 200\n", ok, polls);
      rc = 1;
    }
  }
  const double m0 = median(without), m1 = median(with);
  std::printf("median committed commands/s: without %.0f, polling at %.1f Hz %.0f; ratio of medians %.3f; "
              "median of per-round ratios %.3f (refused %llu, failed %llu)\n",
              m0, 1000.0 / o.interval_ms, m1, m1 / m0, median(ratios),
              static_cast<unsigned long long>(c.refused.load()), static_cast<unsigned long long>(c.failed.load()));
  if (!cpu_without.empty()) {
    // On a shared machine the server's CPU share moves with other load; its CPU time per
    // command does much less. Saturated and CPU-bound, throughput scales with its inverse.
    const double c0 = median(cpu_without), c1 = median(cpu_with);
    std::printf("median server CPU per committed command: without %.1f us, polling %.1f us; "
                "throughput-equivalent ratio (without / polling) %.3f\n",
                c0, c1, c0 / c1);
  }
  if (poll_cpu_us >= 0 && loaded_cpu_per_s > 0) {
    const double share = poll_cpu_us * 1e-6 * (1000.0 / o.interval_ms) / loaded_cpu_per_s;
    std::printf("one poll costs the server %.0f us of CPU (burst of 2000 on the idle server, idle CPU subtracted); "
                "at %.1f Hz that is %.3f%% of the %.2f CPU-seconds per second it spends under the load: "
                "throughput ratio bound %.4f\n",
                poll_cpu_us, 1000.0 / o.interval_ms, share * 100, loaded_cpu_per_s, 1 - share);
  }
  return rc;
}
