// End-to-end tests of orderflow-monitor: the real `orderflow serve --demo-rate` on a free
// loopback port, the monitor run under xvfb-run with --screenshot/--dump-layout/--frames, and
// assertions on the dump and the PNG. A second test points the monitor at a closed port.
#define _TURN_OFF_PLATFORM_STRING  // cpprest's U() macro breaks gtest templates
#include "tests/support/net.h"
#include "tests/support/shell.h"
#include <utility>  // before cpprest (Boost.Asio with C++20)

#include <arpa/inet.h>
#include <cpprest/http_client.h>
#include <cpprest/json.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using web::json::value;

int free_port() { return orderflow::testing::free_loopback_port(); }

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("orderflow-monitor-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// `orderflow serve graphs/orders.yaml --demo-rate R` as a child; killed and reaped on scope exit.
class Server {
 public:
  Server(int port, const fs::path& dir) {
    std::vector<std::string> args = {ORDERFLOW_BINARY, "serve", std::string(ORDERFLOW_SOURCE_DIR) + "/graphs/orders.yaml",
                                     "--listen", "127.0.0.1:" + std::to_string(port), "--data-dir",
                                     (dir / "data").string(), "--demo-rate", "200", "--threads", "2"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string log = (dir / "server.log").string();
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::close_range(3, ~0U, 0);
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, STDOUT_FILENO);
        ::dup2(fd, STDERR_FILENO);
      }
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~Server() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      for (int i = 0; i < 100; ++i) {
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
        std::this_thread::sleep_for(50ms);
      }
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  bool started() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
};

std::optional<value> get_json(const std::string& base, const std::string& path) {
  try {
    web::http::client::http_client_config cfg;
    cfg.set_timeout(2s);
    web::http::client::http_client c(base, cfg);
    auto r = c.request(web::http::methods::GET, path).get();
    if (r.status_code() != 200) return std::nullopt;
    return r.extract_json(true).get();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

int run_monitor(const std::string& url, const fs::path& dir, int frames) {
  const std::string cmd = std::string(XVFB_RUN) + " -a -s \"-screen 0 1280x800x24\" " + MONITOR_BINARY + " " + url +
                          " --interval 250 --frames " + std::to_string(frames) + " --screenshot " +
                          (dir / "shot.png").string() + " --dump-layout " + (dir / "layout.json").string() + " > " +
                          (dir / "monitor.log").string() + " 2>&1";
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct PngInfo {
  int width = 0, height = 0;
  size_t distinct_colors = 0;
};

// Decodes the monitor's own PNG flavour (RGBA8, filter 0, one or more IDAT chunks); checks CRCs.
std::optional<PngInfo> decode_png(const std::string& bytes, std::string& why) {
  if (bytes.size() < 8 || bytes.compare(0, 8, "\x89PNG\r\n\x1a\n", 8) != 0) {
    why = "no PNG signature";
    return std::nullopt;
  }
  auto u32 = [&](size_t at) {
    return (std::uint32_t(std::uint8_t(bytes[at])) << 24) | (std::uint32_t(std::uint8_t(bytes[at + 1])) << 16) |
           (std::uint32_t(std::uint8_t(bytes[at + 2])) << 8) | std::uint32_t(std::uint8_t(bytes[at + 3]));
  };
  PngInfo info;
  std::string idat;
  bool end = false;
  for (size_t at = 8; at + 12 <= bytes.size() && !end;) {
    const std::uint32_t len = u32(at);
    if (at + 12 + len > bytes.size()) break;
    const std::string type = bytes.substr(at + 4, 4);
    const uLong crc = crc32(0, reinterpret_cast<const Bytef*>(bytes.data() + at + 4), len + 4);
    if (crc != u32(at + 8 + len)) {
      why = "bad CRC in " + type;
      return std::nullopt;
    }
    if (type == "IHDR") {
      info.width = static_cast<int>(u32(at + 8));
      info.height = static_cast<int>(u32(at + 12));
      if (bytes[at + 16] != 8 || bytes[at + 17] != 6) {
        why = "not RGBA8";
        return std::nullopt;
      }
    } else if (type == "IDAT") {
      idat += bytes.substr(at + 8, len);
    } else if (type == "IEND") {
      end = true;
    }
    at += 12 + len;
  }
  if (!end || info.width <= 0 || info.height <= 0) {
    why = "truncated PNG";
    return std::nullopt;
  }
  const size_t stride = static_cast<size_t>(info.width) * 4 + 1;
  std::vector<Bytef> raw(stride * static_cast<size_t>(info.height));
  uLongf raw_len = raw.size();
  if (uncompress(raw.data(), &raw_len, reinterpret_cast<const Bytef*>(idat.data()), idat.size()) != Z_OK ||
      raw_len != raw.size()) {
    why = "IDAT does not inflate to the image size";
    return std::nullopt;
  }
  std::set<std::uint32_t> colors;
  for (int y = 0; y < info.height && colors.size() < 10000; y += 3)
    for (int x = 0; x < info.width; x += 3) {
      const Bytef* p = &raw[stride * static_cast<size_t>(y) + 1 + static_cast<size_t>(x) * 4];
      colors.insert((std::uint32_t(p[0]) << 16) | (std::uint32_t(p[1]) << 8) | p[2]);
    }
  info.distinct_colors = colors.size();
  return info;
}

TEST(MonitorE2E, DrawsEveryNodeOfTheLiveGraphWithARate) {
  const fs::path dir = fresh_dir("live");
  const int port = free_port();
  ASSERT_GT(port, 0);
  Server server(port, dir);
  ASSERT_TRUE(server.started());
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  std::optional<value> graph;
  for (int i = 0; i < 100 && !graph; ++i) {
    graph = get_json(base, "/api/v1/graph");
    if (!graph) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(graph) << "server did not come up; log:\n" << read_file(dir / "server.log");

  // Traffic through the HTTP source too, so every node (not only the demo path) has a rate.
  std::atomic<bool> stop{false};
  std::thread feeder([&] {
    web::http::client::http_client_config cfg;
    cfg.set_timeout(2s);
    web::http::client::http_client c(base, cfg);
    for (int i = 0; !stop.load(); ++i) {
      value a = value::object();
      a["sku"] = value::string("mon-" + std::to_string(i % 7));
      a["quantity"] = value::number(1);
      value cmd = value::object();
      cmd["commandId"] = value::string("monitor-e2e-" + std::to_string(i));
      cmd["addStock"] = a;
      try {
        c.request(web::http::methods::POST, "/api/v1/commands", cmd).wait();
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(20ms);
    }
  });
  std::this_thread::sleep_for(2500ms);  // let the rate windows fill
  const int rc = run_monitor(base, dir, 8);
  stop = true;
  feeder.join();
  ASSERT_EQ(rc, 0) << read_file(dir / "monitor.log");

  std::error_code ec;
  const value dump = value::parse(read_file(dir / "layout.json"), ec);
  ASSERT_FALSE(ec) << read_file(dir / "layout.json");
  EXPECT_TRUE(dump.at("banners").as_array().size() == 0) << dump.at("banners").serialize();
  EXPECT_TRUE(dump.at("servers").as_array().at(0).at("reachable").as_bool());
  std::map<std::string, value> drawn;
  for (const value& n : dump.at("nodes").as_array()) drawn[n.at("id").as_string()] = n;
  ASSERT_FALSE(graph->at("nodes").as_array().size() == 0);
  for (const value& n : graph->at("nodes").as_array()) {
    const std::string id = n.at("id").as_string();
    ASSERT_TRUE(drawn.count(id)) << id << " not drawn";
    EXPECT_TRUE(drawn[id].at("hasMetrics").as_bool()) << id;
    EXPECT_GT(drawn[id].at("rate").as_double(), 0) << id << ": " << drawn[id].serialize();
    EXPECT_TRUE(drawn[id].at("x").is_number() && drawn[id].at("y").is_number());
  }
  EXPECT_EQ(dump.at("edges").as_array().size(), graph->at("edges").as_array().size());

  std::string why;
  auto png = decode_png(read_file(dir / "shot.png"), why);
  ASSERT_TRUE(png) << why;
  EXPECT_EQ(png->width, 1280);
  EXPECT_EQ(png->height, 800);
  EXPECT_GT(png->distinct_colors, 20u) << "screenshot looks blank";
  if (!HasFailure()) {
    std::error_code rm;
    fs::remove_all(dir, rm);  // kept for inspection when the test failed
  }
}

std::optional<value> wait_for_graph(const std::string& base) {
  std::optional<value> graph;
  for (int i = 0; i < 100 && !graph; ++i) {
    graph = get_json(base, "/api/v1/graph");
    if (!graph) std::this_thread::sleep_for(100ms);
  }
  return graph;
}

// Two instances of one graph (two servers, each on its own data directory): the monitor sums
// their figures and keeps a per-instance breakdown, both checked from the dump.
TEST(MonitorE2E, SeveralUrlsAreSummedWithAPerInstanceBreakdown) {
  const fs::path dir = fresh_dir("multi");
  const fs::path dir_a = dir / "a", dir_b = dir / "b";
  fs::create_directories(dir_a);
  fs::create_directories(dir_b);
  const int port_a = free_port(), port_b = free_port();
  ASSERT_GT(port_a, 0);
  ASSERT_GT(port_b, 0);
  ASSERT_NE(port_a, port_b);
  Server a(port_a, dir_a), b(port_b, dir_b);
  ASSERT_TRUE(a.started() && b.started());
  const std::string url_a = "http://127.0.0.1:" + std::to_string(port_a);
  const std::string url_b = "http://127.0.0.1:" + std::to_string(port_b);
  const auto graph = wait_for_graph(url_a);
  ASSERT_TRUE(graph) << "server a did not come up; log:\n" << read_file(dir_a / "server.log");
  ASSERT_TRUE(wait_for_graph(url_b)) << "server b did not come up; log:\n" << read_file(dir_b / "server.log");
  std::this_thread::sleep_for(2500ms);  // let both demo sources' rate windows fill

  const int rc = run_monitor(url_a + " " + url_b, dir, 6);
  ASSERT_EQ(rc, 0) << read_file(dir / "monitor.log");
  std::error_code ec;
  const value dump = value::parse(read_file(dir / "layout.json"), ec);
  ASSERT_FALSE(ec) << read_file(dir / "layout.json");

  const auto& servers = dump.at("servers").as_array();
  ASSERT_EQ(servers.size(), 2u);
  EXPECT_EQ(servers.at(0).at("url").as_string(), url_a);
  EXPECT_EQ(servers.at(1).at("url").as_string(), url_b);
  double commands = 0;
  for (const value& sv : servers) {
    EXPECT_TRUE(sv.at("reachable").as_bool()) << sv.serialize();
    EXPECT_GT(sv.at("commandsPerSecond").as_double(), 0) << "each demo source runs: " << sv.serialize();
    commands += sv.at("commandsPerSecond").as_double();
  }
  EXPECT_EQ(dump.at("banners").as_array().size(), 0u);
  EXPECT_NEAR(dump.at("totals").at("commandsPerSecond").as_double(), commands, 1e-6 * commands)
      << "totals are the sum of the instances";

  ASSERT_EQ(dump.at("nodes").as_array().size(), graph->at("nodes").as_array().size());
  for (const value& n : dump.at("nodes").as_array()) {
    const std::string id = n.at("id").as_string();
    const auto& inst = n.at("instances").as_array();
    ASSERT_EQ(inst.size(), 2u) << id;
    EXPECT_EQ(inst.at(0).at("url").as_string(), url_a) << id;
    EXPECT_EQ(inst.at(1).at("url").as_string(), url_b) << id;
    double rate_in = 0, rate_out = 0, queue = 0;
    for (const value& i : inst) {
      ASSERT_TRUE(i.at("hasMetrics").as_bool()) << id << ": " << i.serialize();
      rate_in += i.at("rateIn").as_double();
      rate_out += i.at("rateOut").as_double();
      queue += i.at("queueDepth").as_double();
    }
    EXPECT_NEAR(n.at("rateIn").as_double(), rate_in, 1e-6 * (1 + rate_in)) << id;
    EXPECT_NEAR(n.at("rateOut").as_double(), rate_out, 1e-6 * (1 + rate_out)) << id;
    EXPECT_NEAR(n.at("queueDepth").as_double(), queue, 1e-6 * (1 + queue)) << id;
    if (id == "demo" || id == "commit") {
      EXPECT_GT(inst.at(0).at("rateOut").as_double(), 0) << id << " on a";
      EXPECT_GT(inst.at(1).at("rateOut").as_double(), 0) << id << " on b";
    }
  }
  if (!HasFailure()) {
    std::error_code rm;
    fs::remove_all(dir, rm);
  }
}

TEST(MonitorE2E, ClosedPortShowsUnreachableBanner) {
  const fs::path dir = fresh_dir("closed");
  const int port = free_port();  // bound and closed again: nothing listens
  ASSERT_GT(port, 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = run_monitor(url, dir, 4);
  ASSERT_EQ(rc, 0) << read_file(dir / "monitor.log");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s) << "an absent server must not stall the monitor";

  std::error_code ec;
  const value dump = value::parse(read_file(dir / "layout.json"), ec);
  ASSERT_FALSE(ec) << read_file(dir / "layout.json");
  const value& server = dump.at("servers").as_array().at(0);
  EXPECT_EQ(server.at("url").as_string(), url);
  EXPECT_FALSE(server.at("reachable").as_bool());
  EXPECT_GT(server.at("unreachableSince").as_double(), 0);
  ASSERT_EQ(dump.at("banners").as_array().size(), 1u);
  const std::string banner = dump.at("banners").as_array().at(0).as_string();
  EXPECT_NE(banner.find(url + " unreachable since"), std::string::npos) << banner;
  EXPECT_EQ(dump.at("nodes").as_array().size(), 0u);

  std::string why;
  auto png = decode_png(read_file(dir / "shot.png"), why);
  ASSERT_TRUE(png) << why;
  EXPECT_GT(png->distinct_colors, 5u);
  if (!HasFailure()) {
    std::error_code rm;
    fs::remove_all(dir, rm);
  }
}

// Bad flags are refused before any window opens (no display needed), each with its reason.
TEST(MonitorE2E, BadFlagsAreRefusedWithAReason) {
  struct Case {
    const char* args;
    const char* reason;
  } cases[] = {
      {"--size abc", "--size needs WIDTHxHEIGHT"},
      {"--size 1280x800x", "--size needs WIDTHxHEIGHT"},
      {"--frames many", "--frames needs a number"},
      {"--frames 2.5", "--frames needs a whole number"},
      {"--warmup soon", "--warmup needs a number"},
      {"--interval 10", "--interval needs a number in [50,"},
      {"--zoom 100", "--zoom needs a value"},
      {"--bogus", "unknown option --bogus"},
  };
  for (const auto& c : cases) {
    const orderflow::testing::Ran r = orderflow::testing::run_shell(std::string(MONITOR_BINARY) + " " + c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << ":\n" << r.output;
    EXPECT_NE(r.output.find(c.reason), std::string::npos) << c.args << ":\n" << r.output;
  }
}

}  // namespace
