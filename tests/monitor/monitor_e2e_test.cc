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
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "poller.h"

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

// A child process (argv[0] is a path), output to `log`; killed and reaped on scope exit.
class Child {
 public:
  Child(std::vector<std::string> args, const std::string& log) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
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
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~Child() {
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

std::vector<std::string> serve_args(const std::string& listen, const fs::path& dir,
                                    const std::vector<std::string>& extra) {
  std::vector<std::string> args{ORDERFLOW_BINARY, "serve", std::string(ORDERFLOW_SOURCE_DIR) + "/graphs/orders.yaml",
                                "--listen", listen, "--data-dir", (dir / "data").string(), "--demo-rate", "200",
                                "--threads", "2"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// `orderflow serve graphs/orders.yaml --demo-rate R [extra ...]` as a child.
class Server : public Child {
 public:
  Server(int port, const fs::path& dir) : Server("127.0.0.1:" + std::to_string(port), dir, {}) {}
  Server(const std::string& listen, const fs::path& dir, const std::vector<std::string>& extra)
      : Child(serve_args(listen, dir, extra), (dir / "server.log").string()) {}
};

// GET base + path; with a bearer token and/or a CA file for https when given.
std::optional<value> get_json(const std::string& base, const std::string& path, const std::string& token = "",
                              const std::string& ca_file = "") {
  try {
    web::http::client::http_client_config cfg;
    cfg.set_timeout(2s);
    if (!ca_file.empty())
      cfg.set_ssl_context_callback([ca_file](boost::asio::ssl::context& ctx) { ctx.load_verify_file(ca_file); });
    web::http::client::http_client c(base, cfg);
    web::http::http_request req(web::http::methods::GET);
    req.set_request_uri(web::uri(path));
    if (!token.empty()) req.headers().add("Authorization", "Bearer " + token);
    auto r = c.request(req).get();
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

// `env` (e.g. "ORDERFLOW_MONITOR_TOKEN=x ") goes before the command, for the monitor's environment.
int run_monitor(const std::string& url, const fs::path& dir, int frames, const std::string& flags = "",
                const std::string& env = "") {
  const std::string cmd = env + XVFB_RUN + " -a -s \"-screen 0 1280x800x24\" " + MONITOR_BINARY + " " + url +
                          flags + " --interval 250 --frames " + std::to_string(frames) + " --screenshot " +
                          (dir / "shot.png").string() + " --dump-layout " + (dir / "layout.json").string() + " > " +
                          (dir / "monitor.log").string() + " 2>&1";
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct PngInfo {
  int width = 0, height = 0;
  size_t distinct_colors = 0;
  std::map<std::uint32_t, size_t> samples;  // 0xRRGGBB -> pixels of that colour (every 3rd row and column)
  size_t count(std::uint32_t rgb) const {
    auto it = samples.find(rgb);
    return it == samples.end() ? 0 : it->second;
  }
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
  for (int y = 0; y < info.height; y += 3)
    for (int x = 0; x < info.width; x += 3) {
      const Bytef* p = &raw[stride * static_cast<size_t>(y) + 1 + static_cast<size_t>(x) * 4];
      info.samples[(std::uint32_t(p[0]) << 16) | (std::uint32_t(p[1]) << 8) | p[2]]++;
    }
  info.distinct_colors = info.samples.size();
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
  // The real server's admin paths: 404 before the admin API, a list (no kafka_source in
  // orders.yaml: no sources) with it; never a failure or a banner.
  const std::string admin = dump.at("deadLetters").at("servers").as_array().at(0).at("status").as_string();
  EXPECT_TRUE(admin == "no admin API" || admin == "ok") << dump.at("deadLetters").serialize();
  EXPECT_EQ(dump.at("deadLetters").at("total").at("deadLetters").as_integer(), 0);

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
  // Each serve names its instance in /api/v1/graph: two data directories, two ids.
  EXPECT_FALSE(servers.at(0).at("instance").as_string().empty());
  EXPECT_NE(servers.at(0).at("instance").as_string(), servers.at(1).at("instance").as_string());
  EXPECT_EQ(servers.at(1).at("duplicateOf").as_integer(), -1);
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

// Canned documents served by tests/monitor/fake_graph_server.py: every figure is the test's.
const char* kOpsGraph = R"({"name":"orders","service":"","instance":"INSTANCE","nodes":[
 {"id":"demo","kind":"demo_source","service":"","input":"none","output":"command","source":true,"params":{}},
 {"id":"http","kind":"http_source","service":"","input":"none","output":"command","source":true,"params":{}},
 {"id":"commit","kind":"commit","service":"","input":"command","output":"committed","source":false,"params":{}},
 {"id":"feed","kind":"change_feed","service":"","input":"committed","output":"event","source":false,"params":{}},
 {"id":"projection","kind":"projection","service":"","input":"event","output":"none","source":false,"params":{}}],
"edges":[{"from":"demo","to":"commit","type":"command","storeMediated":false},
 {"from":"http","to":"commit","type":"command","storeMediated":false},
 {"from":"commit","to":"feed","type":"committed","storeMediated":true},
 {"from":"feed","to":"projection","type":"event","storeMediated":false}]})";

std::string ops_node(const std::string& id, double rate, double busy_seconds, double queue, int errors,
                     const std::string& last_error, const std::string& gauges = "{}") {
  std::ostringstream o;
  o << R"({"id":")" << id << R"(","kind":"k","in":1000,"out":1000,"errors":)" << errors << R"(,"busySeconds":)"
    << busy_seconds << R"(,"queueDepth":)" << queue << R"(,"rateIn":)" << rate << R"(,"rateOut":)" << rate
    << R"(,"busyShare":0.2,"latencyUs":{"count":0},"lastError":")" << last_error << R"(","gauges":)" << gauges << "}";
  return o.str();
}

std::string ops_metrics(double rate, int http_errors, const std::string& http_error, double queue, double checkpoint,
                        double lag_events, double lag_seconds) {
  std::ostringstream g;
  g << R"({"checkpoint":)" << checkpoint << R"(,"lag_events":)" << lag_events << R"(,"lag_seconds":)" << lag_seconds
    << "}";
  return R"({"uptimeSeconds":100,"nodes":[)" + ops_node("demo", rate, 1, 0, 0, "") + "," +
         ops_node("http", 0, 0.1, 0, http_errors, http_error) + "," + ops_node("commit", rate, 3, queue, 0, "") + "," +
         ops_node("feed", rate, 0, 0, 0, "") + "," + ops_node("projection", rate, 2, 0, 0, "", g.str()) + "]}";
}

void write_file(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

// fake_graph_server.py serving `graph` and `metrics` on a free port (read from its --port-file).
// Writes the two documents and returns the command line; `extra` goes after the documents' flags
// (the admin API's: --dead-letters FILE, ...).
std::vector<std::string> fake_args(const fs::path& dir, const std::string& name, const fs::path& port_file,
                                   const std::string& graph, const std::string& metrics,
                                   const std::vector<std::string>& extra) {
  write_file(dir / (name + "-graph.json"), graph);
  write_file(dir / (name + "-metrics.json"), metrics);
  std::vector<std::string> args{"python3", std::string(ORDERFLOW_SOURCE_DIR) + "/tests/monitor/fake_graph_server.py",
                                "--port", "0", "--port-file", port_file.string(), "--graph",
                                (dir / (name + "-graph.json")).string(), "--metrics",
                                (dir / (name + "-metrics.json")).string()};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

struct FakeServer {
  FakeServer(const fs::path& dir, const std::string& name, const std::string& graph, const std::string& metrics,
             const std::vector<std::string>& extra = {})
      : port_file(dir / (name + ".port")),
        child(fake_args(dir, name, port_file, graph, metrics, extra), (dir / (name + ".log")).string()) {}
  int port() const {
    for (int i = 0; i < 100; ++i) {
      const std::string text = read_file(port_file);
      if (!text.empty()) return std::atoi(text.c_str());
      std::this_thread::sleep_for(50ms);
    }
    return 0;
  }
  fs::path port_file;
  Child child;
};

std::string with_instance(const std::string& id) {
  std::string g = kOpsGraph;
  g.replace(g.find("INSTANCE"), 8, id);
  return g;
}

const value* dumped_node(const value& dump, const std::string& id) {
  for (const value& n : dump.at("nodes").as_array())
    if (n.at("id").as_string() == id) return &n;
  return nullptr;
}

constexpr std::uint32_t kRedFill = 0xAA2D2D;     // ui.cc health_fill(kRed): 170, 45, 45
constexpr std::uint32_t kYellowFill = 0xAA8C14;  // health_fill(kYellow): 170, 140, 20

// Two instances of one graph, one of them reached through two URLs (127.0.0.1 and localhost):
// the duplicate is counted once, positions and lag are the maximum with each instance's own value
// in the dump, 4xx answers are client errors, the feed's busy share is "not measured", the lagging
// instance colours the projection red on screen, and --lag-bad moves that to yellow.
TEST(MonitorE2E, TwoInstancesOfOneServerWithLagAndClientErrors) {
  const fs::path dir = fresh_dir("ops");
  FakeServer a(dir, "a", with_instance("orders-a"),
               ops_metrics(200, 8, "400 invalid JSON at 1:1", 7, 8000, 13, 0.4));
  FakeServer b(dir, "b", with_instance("orders-b"), ops_metrics(100, 0, "", 3, 8200, 5000, 12));
  const int pa = a.port(), pb = b.port();
  ASSERT_GT(pa, 0) << read_file(dir / "a.log");
  ASSERT_GT(pb, 0) << read_file(dir / "b.log");
  const std::string url_a = "http://127.0.0.1:" + std::to_string(pa);
  const std::string url_a2 = "http://localhost:" + std::to_string(pa);
  const std::string url_b = "http://127.0.0.1:" + std::to_string(pb);
  ASSERT_TRUE(wait_for_graph(url_a));
  ASSERT_TRUE(wait_for_graph(url_b));

  ASSERT_EQ(run_monitor(url_a + " " + url_a2 + " " + url_b, dir, 4, " --select projection"), 0)
      << read_file(dir / "monitor.log");
  std::error_code ec;
  const value dump = value::parse(read_file(dir / "layout.json"), ec);
  ASSERT_FALSE(ec) << read_file(dir / "layout.json");

  const auto& servers = dump.at("servers").as_array();
  ASSERT_EQ(servers.size(), 3u);
  for (const value& sv : servers) EXPECT_TRUE(sv.at("reachable").as_bool()) << sv.serialize();
  EXPECT_EQ(servers.at(0).at("instance").as_string(), "orders-a");
  EXPECT_EQ(servers.at(1).at("instance").as_string(), "orders-a");
  EXPECT_EQ(servers.at(2).at("instance").as_string(), "orders-b");
  EXPECT_EQ(servers.at(0).at("duplicateOf").as_integer(), -1);
  EXPECT_EQ(servers.at(1).at("duplicateOf").as_integer(), 0) << "localhost is the same process";
  EXPECT_EQ(servers.at(2).at("duplicateOf").as_integer(), -1);
  EXPECT_DOUBLE_EQ(dump.at("totals").at("commandsPerSecond").as_double(), 300) << "200 + 100, not 200 + 200 + 100";
  EXPECT_EQ(dump.at("totals").at("errors").as_integer(), 0);
  EXPECT_EQ(dump.at("totals").at("clientErrors").as_integer(), 8);

  const value* http = dumped_node(dump, "http");
  ASSERT_NE(http, nullptr);
  EXPECT_EQ(http->at("errors").as_integer(), 0);
  EXPECT_EQ(http->at("clientErrors").as_integer(), 8);
  const value* commit = dumped_node(dump, "commit");
  ASSERT_NE(commit, nullptr);
  EXPECT_DOUBLE_EQ(commit->at("queueDepth").as_double(), 10);
  const value* feed = dumped_node(dump, "feed");
  ASSERT_NE(feed, nullptr);
  EXPECT_FALSE(feed->at("busyMeasured").as_bool());
  const value* projection = dumped_node(dump, "projection");
  ASSERT_NE(projection, nullptr);
  EXPECT_DOUBLE_EQ(projection->at("lagSeconds").as_double(), 12);
  EXPECT_DOUBLE_EQ(projection->at("lagEvents").as_double(), 5000);
  EXPECT_EQ(projection->at("health").as_string(), "red");
  const auto& inst = projection->at("instances").as_array();
  ASSERT_EQ(inst.size(), 3u);
  EXPECT_DOUBLE_EQ(inst.at(0).at("checkpoint").as_double(), 8000);
  EXPECT_FALSE(inst.at(1).at("counted").as_bool());
  EXPECT_DOUBLE_EQ(inst.at(2).at("checkpoint").as_double(), 8200);
  EXPECT_DOUBLE_EQ(inst.at(0).at("lagSeconds").as_double(), 0.4);

  std::string why;
  auto png = decode_png(read_file(dir / "shot.png"), why);
  ASSERT_TRUE(png) << why;
  EXPECT_GT(png->count(kRedFill), 50u) << "the lagging projection is drawn red";

  // Same figures, bad lag raised to 30 s: the projection turns yellow, nothing is red.
  ASSERT_EQ(run_monitor(url_a + " " + url_a2 + " " + url_b, dir, 4, " --lag-bad 30"), 0)
      << read_file(dir / "monitor.log");
  const value relaxed = value::parse(read_file(dir / "layout.json"), ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(dumped_node(relaxed, "projection")->at("health").as_string(), "yellow");
  png = decode_png(read_file(dir / "shot.png"), why);
  ASSERT_TRUE(png) << why;
  EXPECT_EQ(png->count(kRedFill), 0u);
  EXPECT_GT(png->count(kYellowFill), 50u);
  if (!HasFailure()) {
    std::error_code rm;
    fs::remove_all(dir, rm);
  }
}

// ---- The admin API (issue 14): dead letters, parked commands, replay ----

value read_dump(const fs::path& dir);  // below, with the token tests

// Canned dead-letter list: two dead letters (one not replayable) and one parked command.
const char* kDeadLetterList = R"json({"instance":"INSTANCE","sources":[{"node":"kafka","topic":"orders.commands.dlq","more":false,
 "dead_letters":[
  {"topic":"orders.commands.dlq","partition":0,"offset":3,"timestamp_ms":1764650000000,"key":"o-1",
   "reason":"invalid JSON at 1:1\nnext line\u0007","source":{"topic":"orders.commands","partition":1,"offset":17},
   "size":123,"original_size":123,"truncated":false,"headers_dropped":0,"kind":"dead_letter","replayable":true},
  {"topic":"orders.commands.dlq","partition":0,"offset":4,"timestamp_ms":1764650005000,"key":"sku-A",
   "reason":"store unavailable after 5 attempts (parked)","source":{"topic":"orders.commands","partition":0,"offset":40},
   "size":96,"original_size":96,"truncated":false,"headers_dropped":0,"kind":"parked","replayable":true},
  {"topic":"orders.commands.dlq","partition":1,"offset":9,"timestamp_ms":null,"key":null,
   "reason":"message too large","source":null,
   "size":4096,"original_size":90000,"truncated":true,"headers_dropped":1,"kind":"dead_letter","replayable":false,
   "not_replayable_because":"the payload was truncated when it was dead-lettered"}]}]})json";

const char* kSubscribers = R"({"instance":"INSTANCE","subscribers":[
 {"feed":"feed","subscriber":"projection","kind":"projection","checkpoint":8000,"head":8013,"behind":13,"resettable":true},
 {"feed":"feed","subscriber":"kafka-sink","kind":"sink","checkpoint":8013,"head":8013,"behind":0,"resettable":false}]})";

// kOpsGraph with its http source replaced by a kafka_source "kafka", and the metrics to match.
std::string kafka_graph(const std::string& instance) {
  std::string g = with_instance(instance);
  for (size_t at; (at = g.find("\"http\"")) != std::string::npos;) g.replace(at, 6, "\"kafka\"");
  g.replace(g.find("http_source"), 11, "kafka_source");
  return g;
}
std::string kafka_metrics(double rate) {
  std::string m = ops_metrics(rate, 0, "", 3, 8000, 13, 0.4);
  m.replace(m.find("\"http\""), 6, "\"kafka\"");
  return m;
}
std::string replace_instance(std::string doc, const std::string& id) {
  doc.replace(doc.find("INSTANCE"), 8, id);
  return doc;
}

const value* dumped_admin_server(const value& dump, size_t i) {
  const auto& servers = dump.at("deadLetters").at("servers").as_array();
  return i < servers.size() ? &servers.at(i) : nullptr;
}

// Two instances of one graph (a reached through two URLs) that list the same DLQ messages: the
// counts are each message once, the rows stay per instance. --replay-dead-letter (the Replay
// button's path) POSTs to a with the monitor's token; the fake server records it and moves the
// row out; the dump shows the answer and a's list polled again without it.
TEST(MonitorE2E, DeadLettersPerInstanceAndAReplayThatReachesTheServer) {
  ::unsetenv("ORDERFLOW_MONITOR_TOKEN");
  const fs::path dir = fresh_dir("dead-letters");
  write_file(dir / "a-dl.json", replace_instance(kDeadLetterList, "orders-a"));
  write_file(dir / "b-dl.json", replace_instance(kDeadLetterList, "orders-b"));
  write_file(dir / "subscribers.json", replace_instance(kSubscribers, "orders-a"));
  FakeServer a(dir, "a", kafka_graph("orders-a"), kafka_metrics(200),
               {"--dead-letters", (dir / "a-dl.json").string(), "--subscribers", (dir / "subscribers.json").string(),
                "--replay-log", (dir / "a-replays.jsonl").string()});
  FakeServer b(dir, "b", kafka_graph("orders-b"), kafka_metrics(100),
               {"--dead-letters", (dir / "b-dl.json").string(), "--replay-log", (dir / "b-replays.jsonl").string()});
  const int pa = a.port(), pb = b.port();
  ASSERT_GT(pa, 0) << read_file(dir / "a.log");
  ASSERT_GT(pb, 0) << read_file(dir / "b.log");
  const std::string url_a = "http://127.0.0.1:" + std::to_string(pa);
  const std::string url_a2 = "http://localhost:" + std::to_string(pa);
  const std::string url_b = "http://127.0.0.1:" + std::to_string(pb);
  ASSERT_TRUE(wait_for_graph(url_a));
  ASSERT_TRUE(wait_for_graph(url_b));
  const std::string urls = url_a + " " + url_a2 + " " + url_b;

  // Listing only.
  ASSERT_EQ(run_monitor(urls, dir, 3, " --show-dead-letters"), 0) << read_file(dir / "monitor.log");
  value dump = read_dump(dir);
  ASSERT_TRUE(dump.has_field("deadLetters")) << dump.serialize();
  EXPECT_EQ(dump.at("banners").as_array().size(), 0u);
  const value& total = dump.at("deadLetters").at("total");
  EXPECT_EQ(total.at("deadLetters").as_integer(), 2) << "each DLQ message once, not once per URL or instance";
  EXPECT_EQ(total.at("parked").as_integer(), 1);
  EXPECT_EQ(dump.at("deadLetters").at("perNode").at("kafka").at("parked").as_integer(), 1);
  for (size_t i : {0u, 2u}) {
    const value* sv = dumped_admin_server(dump, i);
    ASSERT_NE(sv, nullptr);
    EXPECT_EQ(sv->at("status").as_string(), "ok") << sv->serialize();
    const value& src = sv->at("sources").as_array().at(0);
    EXPECT_EQ(src.at("node").as_string(), "kafka");
    EXPECT_EQ(src.at("deadLetters").as_integer(), 2);
    EXPECT_EQ(src.at("parked").as_integer(), 1);
    const auto& rows = src.at("rows").as_array();
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows.at(0).at("shownReason").as_string(), "invalid JSON at 1:1\\nnext line\\x07");
    EXPECT_EQ(rows.at(1).at("kind").as_string(), "parked");
    EXPECT_FALSE(rows.at(2).at("replayable").as_bool());
    EXPECT_TRUE(rows.at(2).at("key").is_null());
  }
  EXPECT_EQ(dumped_admin_server(dump, 0)->at("instance").as_string(), "orders-a");
  EXPECT_FALSE(dumped_admin_server(dump, 1)->at("counted").as_bool()) << "localhost is a again";
  EXPECT_EQ(dumped_admin_server(dump, 2)->at("instance").as_string(), "orders-b");
  const value* kafka = dumped_node(dump, "kafka");
  ASSERT_NE(kafka, nullptr);
  EXPECT_EQ(kafka->at("lines").as_array().at(1).as_string(), "dead 2  parked 1") << "on the canvas";
  const auto& subs = dump.at("subscribers").as_array().at(0);
  EXPECT_EQ(subs.at("status").as_string(), "ok");
  ASSERT_EQ(subs.at("subscribers").as_array().size(), 2u);
  EXPECT_DOUBLE_EQ(subs.at("subscribers").as_array().at(0).at("behind").as_double(), 13);
  EXPECT_EQ(dump.at("subscribers").as_array().at(2).at("status").as_string(), "no admin API")
      << "b serves no subscriber list: 404";
  EXPECT_FALSE(fs::exists(dir / "a-replays.jsonl")) << "listing replays nothing";
  std::string why;
  auto png = decode_png(read_file(dir / "shot.png"), why);
  ASSERT_TRUE(png) << why;
  EXPECT_GT(png->distinct_colors, 20u);

  // Replay 0:3 with a token.
  const std::string token = "monitor-admin-token-0123456789";
  ASSERT_EQ(run_monitor(urls, dir, 3, " --show-dead-letters --replay-dead-letter kafka:0:3",
                        "ORDERFLOW_MONITOR_TOKEN=" + token + " "),
            0)
      << read_file(dir / "monitor.log");
  const std::string log = read_file(dir / "a-replays.jsonl");
  std::istringstream lines(log);
  std::string line;
  std::vector<value> posts;
  while (std::getline(lines, line))
    if (!line.empty()) posts.push_back(value::parse(line));
  ASSERT_EQ(posts.size(), 1u) << log;
  EXPECT_EQ(posts[0].at("authorization").as_string(), "Bearer " + token);
  const value& body = posts[0].at("body");
  EXPECT_EQ(body.at("node").as_string(), "kafka");
  EXPECT_EQ(body.at("partition").as_integer(), 0);
  EXPECT_EQ(body.at("offset").as_integer(), 3);
  EXPECT_FALSE(body.has_field("all"));
  EXPECT_FALSE(fs::exists(dir / "b-replays.jsonl")) << "only the first instance that lists the node";

  dump = read_dump(dir);
  const value* sa = dumped_admin_server(dump, 0);
  ASSERT_NE(sa, nullptr);
  const auto& replays = sa->at("replays").as_array();
  ASSERT_EQ(replays.size(), 1u) << sa->serialize();
  EXPECT_EQ(replays.at(0).at("state").as_string(), "done");
  EXPECT_EQ(replays.at(0).at("replayed").as_integer(), 1);
  EXPECT_EQ(replays.at(0).at("summary").as_string(), "kafka 0:3: replayed 1");
  const auto& rows_a = sa->at("sources").as_array().at(0).at("rows").as_array();
  ASSERT_EQ(rows_a.size(), 2u) << "listed again after the replay";
  EXPECT_EQ(rows_a.at(0).at("offset").as_integer(), 4);
  EXPECT_EQ(dumped_admin_server(dump, 2)->at("sources").as_array().at(0).at("rows").as_array().size(), 3u)
      << "b's rows are b's";
  EXPECT_EQ(dump.at("deadLetters").at("total").at("deadLetters").as_integer(), 2) << "b still lists 0:3";
  EXPECT_EQ(read_file(dir / "layout.json").find(token), std::string::npos) << "token in the dump";
  EXPECT_EQ(read_file(dir / "monitor.log").find(token), std::string::npos) << "token in the output";

  // Replay all: 0:4 replayed, 1:9 refused with its reason.
  ASSERT_EQ(run_monitor(url_a, dir, 3, " --replay-dead-letter kafka:all", "ORDERFLOW_MONITOR_TOKEN=" + token + " "),
            0)
      << read_file(dir / "monitor.log");
  dump = read_dump(dir);
  const value& all = dumped_admin_server(dump, 0)->at("replays").as_array().at(0);
  EXPECT_EQ(all.at("replayed").as_integer(), 1) << all.serialize();
  EXPECT_EQ(all.at("refused").as_integer(), 1);
  EXPECT_NE(all.at("summary").as_string().find("1:9: the payload was truncated"), std::string::npos)
      << all.serialize();
  if (!HasFailure()) {
    std::error_code rm;
    fs::remove_all(dir, rm);
  }
}

// Commands the saga parked (GET /api/v1/admin/parked): listed per instance, counted with the
// parked dead letters (each command id once over instances), and --replay-parked (the path of
// the panel's Replay button) POSTs {"command_id"} to /api/v1/admin/parked/replay with the token.
const char* kParkedList = R"json({"instance":"INSTANCE","parked":[
  {"node":"saga","command_id":"saga/order-o7/1/reserve/A","command":"reserveStock","stream":"sku-A",
   "event_stream":"order-o7","event_version":1,"reason":"store unavailable\u0007 for sku-A","attempts":10,
   "parked_at_ms":1764650000000},
  {"node":"saga","command_id":"saga/order-o8/1/reserve/A","command":"reserveStock","stream":"sku-A",
   "event_stream":"order-o8","event_version":1,"reason":"store unavailable","attempts":12,"parked_at_ms":null}]})json";

TEST(MonitorE2E, ParkedSagaCommandsAreListedCountedOnceAndReplayed) {
  ::unsetenv("ORDERFLOW_MONITOR_TOKEN");
  const fs::path dir = fresh_dir("parked");
  write_file(dir / "a-dl.json", replace_instance(kDeadLetterList, "orders-a"));
  write_file(dir / "a-parked.json", replace_instance(kParkedList, "orders-a"));
  write_file(dir / "b-dl.json", replace_instance(kDeadLetterList, "orders-b"));
  write_file(dir / "b-parked.json", replace_instance(kParkedList, "orders-b"));
  FakeServer a(dir, "a", kafka_graph("orders-a"), kafka_metrics(200),
               {"--dead-letters", (dir / "a-dl.json").string(), "--parked", (dir / "a-parked.json").string(),
                "--replay-log", (dir / "a-replays.jsonl").string()});
  FakeServer b(dir, "b", kafka_graph("orders-b"), kafka_metrics(100),
               {"--dead-letters", (dir / "b-dl.json").string(), "--parked", (dir / "b-parked.json").string()});
  const int pa = a.port(), pb = b.port();
  ASSERT_GT(pa, 0) << read_file(dir / "a.log");
  ASSERT_GT(pb, 0) << read_file(dir / "b.log");
  const std::string url_a = "http://127.0.0.1:" + std::to_string(pa);
  const std::string url_b = "http://127.0.0.1:" + std::to_string(pb);
  ASSERT_TRUE(wait_for_graph(url_a));
  ASSERT_TRUE(wait_for_graph(url_b));

  ASSERT_EQ(run_monitor(url_a + " " + url_b, dir, 3, " --show-dead-letters"), 0) << read_file(dir / "monitor.log");
  value dump = read_dump(dir);
  const value& total = dump.at("deadLetters").at("total");
  EXPECT_EQ(total.at("parked").as_integer(), 3) << "1 parked dead letter + 2 parked saga commands, each once";
  EXPECT_EQ(dump.at("deadLetters").at("perNode").at("saga").at("parked").as_integer(), 2);
  for (size_t i : {0u, 1u}) {
    const value* sv = dumped_admin_server(dump, i);
    ASSERT_NE(sv, nullptr);
    EXPECT_EQ(sv->at("parkedView").at("status").as_string(), "ok") << sv->serialize();
    const auto& rows = sv->at("parkedCommands").as_array();
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows.at(0).at("commandId").as_string(), "saga/order-o7/1/reserve/A");
    EXPECT_EQ(rows.at(0).at("command").as_string(), "reserveStock");
    EXPECT_EQ(rows.at(0).at("eventStream").as_string(), "order-o7");
    EXPECT_EQ(rows.at(0).at("attempts").as_integer(), 10);
  }

  const std::string token = "monitor-admin-token-0123456789";
  ASSERT_EQ(run_monitor(url_a + " " + url_b, dir, 3, " --show-dead-letters --replay-parked saga/order-o7/1/reserve/A",
                        "ORDERFLOW_MONITOR_TOKEN=" + token + " "),
            0)
      << read_file(dir / "monitor.log");
  const std::string log = read_file(dir / "a-replays.jsonl");
  const value post = value::parse(log.substr(0, log.find('\n')));
  EXPECT_EQ(post.at("authorization").as_string(), "Bearer " + token);
  EXPECT_EQ(post.at("body").at("command_id").as_string(), "saga/order-o7/1/reserve/A");
  EXPECT_FALSE(post.at("body").has_field("partition"));
  dump = read_dump(dir);
  const value* sa = dumped_admin_server(dump, 0);
  ASSERT_NE(sa, nullptr);
  const auto& replays = sa->at("replays").as_array();
  ASSERT_EQ(replays.size(), 1u) << sa->serialize();
  EXPECT_TRUE(replays.at(0).at("parked").as_bool());
  EXPECT_EQ(replays.at(0).at("state").as_string(), "done");
  EXPECT_EQ(replays.at(0).at("summary").as_string(), "saga parked saga/order-o7/1/reserve/A: replayed 1");
  EXPECT_EQ(sa->at("parkedCommands").as_array().size(), 1u) << "listed again after the replay";
  EXPECT_EQ(dumped_admin_server(dump, 1)->at("parkedCommands").as_array().size(), 2u) << "b's list is b's";
  if (!HasFailure()) {
    std::error_code rm;
    fs::remove_all(dir, rm);
  }
}

// The Poller itself: a replay is queued without waiting (pending at once), goes out on the admin
// thread with the token while the metrics polls go on, and is followed by a fresh list (the
// timer alone would list again only after a minute); stop() cancels a replay in flight.
TEST(MonitorE2E, PollerReplaysOnItsAdminThreadWithoutHoldingUpPolls) {
  using orderflow::monitor::AdminStatus;
  using orderflow::monitor::Poller;
  using orderflow::monitor::PollerOptions;
  using orderflow::monitor::ReplayOutcome;
  const fs::path dir = fresh_dir("poller-replay");
  write_file(dir / "dl.json", replace_instance(kDeadLetterList, "orders-a"));
  FakeServer a(dir, "a", kafka_graph("orders-a"), kafka_metrics(10),
               {"--dead-letters", (dir / "dl.json").string(), "--replay-log", (dir / "replays.jsonl").string(),
                "--replay-delay", "2"});
  const int port = a.port();
  ASSERT_GT(port, 0) << read_file(dir / "a.log");
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  ASSERT_TRUE(wait_for_graph(url));
  PollerOptions o;
  o.interval = 100ms;
  o.admin_interval = 60s;  // after the first list, only a replay makes it list again
  o.token = "poller-token-0123456789";
  Poller p(url, o);
  p.start();
  auto wait_until = [](auto&& done, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(20ms);
    return done();
  };
  ASSERT_TRUE(wait_until([&] { return p.state().dead_letters_view.status == AdminStatus::kOk; }, 10s))
      << p.state().dead_letters_view.error;
  ASSERT_EQ(p.state().dead_letters->sources.at(0).dead_letters.size(), 3u);

  const auto t0 = std::chrono::steady_clock::now();
  p.request_replay({0, "kafka", false, 0, 3});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 100ms) << "queued, not sent on the caller's thread";
  ASSERT_EQ(p.state().replays.size(), 1u);
  EXPECT_EQ(p.state().replays[0].state, ReplayOutcome::State::kPending);
  const int polls = p.attempts();
  std::this_thread::sleep_for(1s);  // the server holds the replay's answer for 2 s
  EXPECT_GE(p.attempts(), polls + 3) << "metrics polls go on during the replay";
  EXPECT_EQ(p.state().replays[0].state, ReplayOutcome::State::kPending);
  ASSERT_TRUE(wait_until([&] { return p.state().replays[0].state != ReplayOutcome::State::kPending; }, 10s));
  EXPECT_EQ(p.state().replays[0].summary(), "kafka 0:3: replayed 1");
  ASSERT_TRUE(wait_until([&] { return p.state().dead_letters->sources.at(0).dead_letters.size() == 2u; }, 5s))
      << "listed again after the replay";
  const value post = value::parse(read_file(dir / "replays.jsonl"));
  EXPECT_EQ(post.at("authorization").as_string(), "Bearer " + o.token);

  p.request_replay({0, "kafka", true, 0, 0});
  std::this_thread::sleep_for(300ms);  // on its way: the server holds the answer for 2 s
  const auto t1 = std::chrono::steady_clock::now();
  p.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 1500ms) << "stop() cancels the replay in flight";
  if (!HasFailure()) {
    std::error_code rm;
    fs::remove_all(dir, rm);
  }
}

// A server without the admin API (404) says so quietly; one that refuses the token for it (403)
// is "not authorized" for that view only: no banner, the graph still drawn. A replay the server
// refuses (409) shows its HTTP status and error.
TEST(MonitorE2E, NoAdminApiNotAuthorizedAndARefusedReplay) {
  ::unsetenv("ORDERFLOW_MONITOR_TOKEN");
  const fs::path dir = fresh_dir("admin-states");
  write_file(dir / "c-dl.json", replace_instance(kDeadLetterList, "orders-c"));
  FakeServer old(dir, "old", kafka_graph("orders-old"), kafka_metrics(10));
  FakeServer locked(dir, "locked", kafka_graph("orders-locked"), kafka_metrics(10), {"--admin-status", "403"});
  FakeServer c(dir, "c", kafka_graph("orders-c"), kafka_metrics(10),
               {"--dead-letters", (dir / "c-dl.json").string(), "--replay-status", "409"});
  const int po = old.port(), pl = locked.port(), pc = c.port();
  ASSERT_GT(po, 0);
  ASSERT_GT(pl, 0);
  ASSERT_GT(pc, 0);
  const std::string url_o = "http://127.0.0.1:" + std::to_string(po);
  const std::string url_l = "http://127.0.0.1:" + std::to_string(pl);
  const std::string url_c = "http://127.0.0.1:" + std::to_string(pc);
  for (const auto& u : {url_o, url_l, url_c}) ASSERT_TRUE(wait_for_graph(u)) << u;

  ASSERT_EQ(run_monitor(url_o + " " + url_l + " " + url_c, dir, 3, " --show-dead-letters --replay-dead-letter kafka:0:3"),
            0)
      << read_file(dir / "monitor.log");
  const value dump = read_dump(dir);
  ASSERT_TRUE(dump.has_field("deadLetters"));
  EXPECT_EQ(dump.at("banners").as_array().size(), 0u) << dump.at("banners").serialize();
  for (const value& sv : dump.at("servers").as_array()) {
    EXPECT_TRUE(sv.at("reachable").as_bool()) << sv.serialize();
    EXPECT_FALSE(sv.at("unauthorized").as_bool()) << sv.serialize();
  }
  EXPECT_EQ(dumped_admin_server(dump, 0)->at("status").as_string(), "no admin API");
  EXPECT_EQ(dumped_admin_server(dump, 0)->at("httpStatus").as_integer(), 404);
  EXPECT_EQ(dumped_admin_server(dump, 1)->at("status").as_string(), "not authorized");
  EXPECT_EQ(dumped_admin_server(dump, 1)->at("httpStatus").as_integer(), 403);
  EXPECT_EQ(dumped_admin_server(dump, 1)->at("sources").as_array().size(), 0u);
  EXPECT_EQ(dump.at("subscribers").as_array().at(1).at("status").as_string(), "not authorized");
  const value* sc = dumped_admin_server(dump, 2);
  EXPECT_EQ(sc->at("status").as_string(), "ok");
  const value& refused = sc->at("replays").as_array().at(0);
  EXPECT_EQ(refused.at("state").as_string(), "failed");
  EXPECT_EQ(refused.at("httpStatus").as_integer(), 409);
  EXPECT_EQ(refused.at("summary").as_string(), "kafka 0:3: HTTP 409: refused by the test (409)");
  EXPECT_EQ(sc->at("sources").as_array().at(0).at("rows").as_array().size(), 3u) << "nothing replayed";
  EXPECT_EQ(dump.at("deadLetters").at("total").at("deadLetters").as_integer(), 2) << "c's only";
  const value* kafka = dumped_node(dump, "kafka");
  ASSERT_NE(kafka, nullptr);
  EXPECT_TRUE(kafka->at("hasMetrics").as_bool());
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

// ---- tokens and TLS (issue 15) ----

constexpr const char* kReadToken = "monitor-read-token-0123456789abcdef";

// The server's token file ("ROLE TOKEN" lines) and the monitor's (the token alone on line 1).
void write_token_files(const fs::path& dir) {
  write_file(dir / "server-tokens", "# role token\nread " + std::string(kReadToken) + "\n");
  write_file(dir / "monitor-token", std::string(kReadToken) + "\n");
}

// A test CA and a certificate for 127.0.0.1 signed by it (P-256 keys: quick to make), with the
// openssl tool: ca.pem, server.pem, server.key in `dir`.
bool make_ca_and_server_certificate(const fs::path& dir, std::string* output) {
  const std::string d = dir.string();
  write_file(dir / "server.ext", "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n");
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const auto r = orderflow::testing::run_shell(
      "(cd " + d + " && openssl req -x509" + ec +
      " -days 1 -subj /CN=orderflow-monitor-test-ca -keyout ca.key -out ca.pem" +
      " && openssl req" + ec + " -subj /CN=127.0.0.1 -keyout server.key -out server.csr" +
      " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile server.ext" +
      " -out server.pem)");
  *output = r.output;
  return r.exit_code == 0;
}

value read_dump(const fs::path& dir) {
  std::error_code ec;
  value dump = value::parse(read_file(dir / "layout.json"), ec);
  EXPECT_FALSE(ec) << read_file(dir / "layout.json");
  return ec ? value::object() : dump;
}

// The monitor's last run was turned away: one "unauthorized" banner, nothing drawn, no token leaked.
void expect_unauthorized(const fs::path& dir, const std::string& url, const std::string& label) {
  const value dump = read_dump(dir);
  if (!dump.has_field("servers")) return;
  const value& server = dump.at("servers").as_array().at(0);
  EXPECT_FALSE(server.at("reachable").as_bool()) << label;
  EXPECT_TRUE(server.at("unauthorized").as_bool()) << label << ": " << server.serialize();
  ASSERT_EQ(dump.at("banners").as_array().size(), 1u) << label;
  const std::string banner = dump.at("banners").as_array().at(0).as_string();
  EXPECT_NE(banner.find(url + " unauthorized: check --token-file"), std::string::npos) << label << ": " << banner;
  EXPECT_NE(banner.find("HTTP 401"), std::string::npos) << label << ": " << banner;
  EXPECT_EQ(dump.at("nodes").as_array().size(), 0u) << label;
}

// The monitor's last run drew every node of `graph` with metrics, no banner.
void expect_graph_drawn(const fs::path& dir, const value& graph, const std::string& label) {
  const value dump = read_dump(dir);
  if (!dump.has_field("servers")) return;
  EXPECT_EQ(dump.at("banners").as_array().size(), 0u) << label << ": " << dump.at("banners").serialize();
  const value& server = dump.at("servers").as_array().at(0);
  EXPECT_TRUE(server.at("reachable").as_bool()) << label << ": " << server.serialize();
  EXPECT_FALSE(server.at("unauthorized").as_bool()) << label;
  std::set<std::string> drawn;
  for (const value& n : dump.at("nodes").as_array())
    if (n.at("hasMetrics").as_bool()) drawn.insert(n.at("id").as_string());
  ASSERT_FALSE(graph.at("nodes").as_array().size() == 0);
  for (const value& n : graph.at("nodes").as_array())
    EXPECT_TRUE(drawn.count(n.at("id").as_string())) << label << ": " << n.at("id").as_string() << " not drawn";
  const std::string log = read_file(dir / "monitor.log");
  EXPECT_EQ(read_file(dir / "layout.json").find(kReadToken), std::string::npos) << label << ": token in the dump";
  EXPECT_EQ(log.find(kReadToken), std::string::npos) << label << ": token in the output";
}

// A server that wants a read token: without one (or with a wrong one) the monitor shows the
// unauthorized banner, not "unreachable"; with the token from --token-file or from
// ORDERFLOW_MONITOR_TOKEN it draws the graph.
TEST(MonitorE2E, ReadTokenFromAFileOrTheEnvironment) {
  ::unsetenv("ORDERFLOW_MONITOR_TOKEN");
  const fs::path dir = fresh_dir("token");
  write_token_files(dir);
  const int port = free_port();
  ASSERT_GT(port, 0);
  Server server("127.0.0.1:" + std::to_string(port), dir, {"--token-file", (dir / "server-tokens").string()});
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  std::optional<value> graph;
  for (int i = 0; i < 100 && !graph; ++i) {
    graph = get_json(url, "/api/v1/graph", kReadToken);
    if (!graph) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(graph) << "server did not come up; log:\n" << read_file(dir / "server.log");
  ASSERT_FALSE(get_json(url, "/api/v1/graph")) << "the server must refuse a request without a token";

  ASSERT_EQ(run_monitor(url, dir, 3), 0) << read_file(dir / "monitor.log");
  expect_unauthorized(dir, url, "no token");
  EXPECT_NE(read_dump(dir).at("banners").as_array().at(0).as_string().find("no token sent"), std::string::npos);

  ASSERT_EQ(run_monitor(url, dir, 3, "", "ORDERFLOW_MONITOR_TOKEN=not-the-token-0123456789 "), 0)
      << read_file(dir / "monitor.log");
  expect_unauthorized(dir, url, "wrong token");

  ASSERT_EQ(run_monitor(url, dir, 3, " --token-file " + (dir / "monitor-token").string()), 0)
      << read_file(dir / "monitor.log");
  expect_graph_drawn(dir, *graph, "--token-file");

  ASSERT_EQ(run_monitor(url, dir, 3, "", "ORDERFLOW_MONITOR_TOKEN=" + std::string(kReadToken) + " "), 0)
      << read_file(dir / "monitor.log");
  expect_graph_drawn(dir, *graph, "ORDERFLOW_MONITOR_TOKEN");
  if (!HasFailure()) {
    std::error_code rm;
    fs::remove_all(dir, rm);
  }
}

// The same server on https with a certificate signed by a CA the test makes: trusted with
// --ca-file (unauthorized without the token, the graph with it); without --ca-file the
// certificate is checked against the system's CAs and refused, so the server is unreachable.
TEST(MonitorE2E, HttpsWithACaFileAndAToken) {
  ::unsetenv("ORDERFLOW_MONITOR_TOKEN");
  const fs::path dir = fresh_dir("https");
  write_token_files(dir);
  std::string openssl_output;
  ASSERT_TRUE(make_ca_and_server_certificate(dir, &openssl_output)) << openssl_output;
  const int port = free_port();
  ASSERT_GT(port, 0);
  const std::string hostport = "127.0.0.1:" + std::to_string(port);
  Server server("https://" + hostport, dir,
                {"--tls-cert", (dir / "server.pem").string(), "--tls-key", (dir / "server.key").string(),
                 "--token-file", (dir / "server-tokens").string()});
  const std::string url = "https://" + hostport;
  const std::string ca = (dir / "ca.pem").string();
  std::optional<value> graph;
  for (int i = 0; i < 100 && !graph; ++i) {
    graph = get_json(url, "/api/v1/graph", kReadToken, ca);
    if (!graph) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(graph) << "server did not come up; log:\n" << read_file(dir / "server.log");

  ASSERT_EQ(run_monitor(url, dir, 3, " --ca-file " + ca), 0) << read_file(dir / "monitor.log");
  expect_unauthorized(dir, url, "https, no token");

  ASSERT_EQ(run_monitor(url, dir, 3, " --ca-file " + ca + " --token-file " + (dir / "monitor-token").string()), 0)
      << read_file(dir / "monitor.log");
  expect_graph_drawn(dir, *graph, "https with --ca-file and --token-file");

  ASSERT_EQ(run_monitor(url, dir, 3, " --token-file " + (dir / "monitor-token").string()), 0)
      << read_file(dir / "monitor.log");
  const value dump = read_dump(dir);
  ASSERT_TRUE(dump.has_field("servers"));
  const value& untrusted = dump.at("servers").as_array().at(0);
  EXPECT_FALSE(untrusted.at("reachable").as_bool()) << "a certificate of an unknown CA was accepted";
  EXPECT_FALSE(untrusted.at("unauthorized").as_bool());
  ASSERT_EQ(dump.at("banners").as_array().size(), 1u);
  const std::string banner = dump.at("banners").as_array().at(0).as_string();
  EXPECT_NE(banner.find(url + " unreachable since"), std::string::npos) << banner;
  EXPECT_NE(banner.find("--ca-file"), std::string::npos) << "no hint at the CA: " << banner;
  EXPECT_EQ(dump.at("nodes").as_array().size(), 0u);
  if (!HasFailure()) {
    std::error_code rm;
    fs::remove_all(dir, rm);
  }
}

// Bad flags are refused before any window opens (no display needed), each with its reason.
TEST(MonitorE2E, BadFlagsAreRefusedWithAReason) {
  const std::string source = ORDERFLOW_SOURCE_DIR;
  struct Case {
    std::string args;
    const char* reason;
    std::string env = "";
  } cases[] = {
      {"--size abc", "--size needs WIDTHxHEIGHT"},
      {"--size 1280x800x", "--size needs WIDTHxHEIGHT"},
      {"--frames many", "--frames needs a number"},
      {"--frames 2.5", "--frames needs a whole number"},
      {"--warmup soon", "--warmup needs a number"},
      {"--interval 10", "--interval needs a number in [50,"},
      {"--zoom 100", "--zoom needs a value"},
      {"--bogus", "unknown option --bogus"},
      {"--token-file", "--token-file needs a value"},
      {"--token-file /nonexistent/orderflow-token", "--token-file: cannot open /nonexistent/orderflow-token"},
      {"--token-file /dev/null", "first line: the token is empty"},
      {"--token-file " + source + "/tests/monitor/CMakeLists.txt", "first line: the token contains a blank"},
      {"", "ORDERFLOW_MONITOR_TOKEN: the token contains a blank", "ORDERFLOW_MONITOR_TOKEN='read abc' "},
      {"https://127.0.0.1:1 --ca-file", "--ca-file needs a value"},
      {"https://127.0.0.1:1 --ca-file /nonexistent/ca.pem", "--ca-file: cannot open /nonexistent/ca.pem"},
      {"https://127.0.0.1:1 --ca-file " + source + "/README.md", "holds no PEM certificate"},
      {"http://127.0.0.1:1 --ca-file " + source + "/README.md", "--ca-file is for https:// URLs"},
  };
  for (const auto& c : cases) {
    const orderflow::testing::Ran r =
        orderflow::testing::run_shell(c.env + std::string(MONITOR_BINARY) + " " + c.args);
    EXPECT_EQ(r.exit_code, 2) << c.env << c.args << ":\n" << r.output;
    EXPECT_NE(r.output.find(c.reason), std::string::npos) << c.env << c.args << ":\n" << r.output;
  }
}

}  // namespace
