// `orderflow`: the headless server and graph tools.
//
//   orderflow serve FILE [--listen HOST:PORT] [--data-dir DIR] [--threads N]
//                        [--demo-rate N] [--service NAME] [--instance-id ID] [--drain-timeout S]
//                        [--log-level LEVEL]
//                        [--token-file PATH] [--insecure-no-auth] [--tls-cert PEM --tls-key PEM
//                        [--tls-client-ca PEM]] [--http-option NAME=VALUE]...  (connectors/http_api.h)
//   orderflow validate FILE
//   orderflow dot FILE
//   orderflow bench FILE [options]   (bench/bench_cmd.h)
//   orderflow mock-kafka [--brokers N] [--topics A,B] [--partitions P]
//
// Exit codes: 0 success (also after SIGTERM/SIGINT with everything drained), 1 runtime
// failure (store cannot open, port taken), 2 bad usage or an invalid graph file.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <pthread.h>
#include <thread>

#include <utility>  // before Boost.Asio: its C++20 awaitable.hpp uses std::exchange
#include <pplx/threadpool.h>

#include "bench/bench_cmd.h"
#include "connectors/http_api.h"
#include "connectors/kafka.h"
#include "connectors/kafka_client.h"
#include "connectors/stores.h"
#include "graph/definition.h"
#include "graph/log.h"
#include "nodes/builder.h"

namespace {

using namespace orderflow;

const char* kUsage =
    "usage:\n"
    "  orderflow serve FILE [--listen HOST:PORT] [--data-dir DIR] [--threads N]\n"
    "                       [--demo-rate N] [--service NAME] [--instance-id ID] [--drain-timeout S]\n"
    "                       [--log-level debug|info|warn|error]\n"
    "                       [--token-file PATH] [--insecure-no-auth]\n"
    "                       [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]\n"
    "                       [--http-option NAME=VALUE]...\n"
    "  orderflow validate FILE   check a graph definition; print every problem\n"
    "  orderflow dot FILE        print the graph in Graphviz DOT\n"
    "  orderflow bench FILE ...  throughput experiments (orderflow bench FILE --help)\n"
    "  orderflow mock-kafka [--brokers N] [--topics A,B] [--partitions P]\n"
    "                            run librdkafka's mock cluster (N brokers, default 3; topics\n"
    "                            created with P partitions, default 4) on loopback until\n"
    "                            SIGTERM/SIGINT; prints its broker list\n";

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "orderflow: %s\n%s", msg.c_str(), kUsage);
  return 2;
}

bool load(const std::string& path, const graph::KindRegistry& registry, graph::GraphDef* out) {
  auto r = graph::load_and_validate(path, registry);
  for (const auto& d : r.diagnostics) std::fprintf(stderr, "%s\n", d.to_string().c_str());
  if (!r.ok()) {
    std::fprintf(stderr, "%zu problem%s in %s\n", r.diagnostics.size(), r.diagnostics.size() == 1 ? "" : "s",
                 path.c_str());
    return false;
  }
  *out = std::move(r.graph);
  return true;
}

bool parse_count(const std::string& text, int64_t min, int64_t* out) {
  return graph::parse_int(text, out) && *out >= min;
}

// The default instance id: this host and data directory, so a restarted instance has the
// same one (and reclaims its own Cosmos DB leases at once) while two instances on one host
// differ as long as their data directories do (the lock below makes sure of that).
std::string default_instance_id(const std::string& data_dir) {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof host, "host");
  std::error_code ec;
  auto path = std::filesystem::weakly_canonical(std::filesystem::absolute(data_dir), ec);
  const std::string text = ec ? data_dir : path.string();
  uint32_t h = 2166136261u;  // FNV-1a: stable across runs and builds, unlike std::hash
  for (unsigned char c : text) h = (h ^ c) * 16777619u;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "-%08x", h);
  std::string id;
  for (char c : std::string(host)) id += (std::isalnum(static_cast<unsigned char>(c)) || c == '-') ? c : '-';
  return id + suffix;
}

// An instance id names one live process: a lock in the data directory keeps a second
// process with the same directory (and so the same default id) from starting.
bool lock_data_dir(const std::string& data_dir) {
  const std::string path = (std::filesystem::path(data_dir) / "instance.lock").string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return false;
  }
  return true;  // held until the process exits
}

void set_param(graph::NodeDef& n, const std::string& name, const std::string& value) {
  n.params[name].text = value;
}

int serve(const std::string& file, const std::vector<std::string>& args, const graph::KindRegistry& registry) {
  std::string listen, data_dir = "./data", service, level = "info", instance_id;
  int64_t threads = 0, demo_rate = -1, drain_timeout_s = 30;
  connectors::HttpServeOptions http_options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= args.size()) return false;
      *out = args[++i];
      return true;
    };
    std::string v;
    if (a == "--listen" && value(&v)) listen = v;
    else if (a == "--data-dir" && value(&v)) data_dir = v;
    else if (a == "--service" && value(&v)) service = v;
    else if (a == "--log-level" && value(&v)) level = v;
    else if (a == "--instance-id" && value(&v)) {
      if (v.empty() || v.size() > 100 ||
          !std::all_of(v.begin(), v.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'; }))
        return usage_error("--instance-id needs 1-100 letters, digits, '-', '_' or '.', got '" + v + "'");
      instance_id = v;
    }
    else if (a == "--threads" && value(&v)) {
      if (!parse_count(v, 1, &threads)) return usage_error("--threads needs a positive integer, got '" + v + "'");
    } else if (a == "--drain-timeout" && value(&v)) {
      if (!parse_count(v, 1, &drain_timeout_s)) return usage_error("--drain-timeout needs seconds >= 1, got '" + v + "'");
    } else if (a == "--demo-rate" && value(&v)) {
      if (!parse_count(v, 0, &demo_rate)) return usage_error("--demo-rate needs an integer >= 0, got '" + v + "'");
    } else if (auto h = connectors::parse_http_flag(args, &i, &http_options); !h || !*h) {
      return usage_error(!h ? h.status().message() : "unknown or incomplete option '" + a + "'");
    }
  }
  log::Level lv;
  if (!log::parse_level(level, &lv)) return usage_error("--log-level must be debug, info, warn or error");
  log::set_level(lv);

  graph::GraphDef def;
  if (!load(file, registry, &def)) return 2;
  if (!service.empty()) {
    bool found = false;
    for (const auto& n : def.nodes) found = found || n.service == service;
    if (!found) return usage_error("no node in " + file + " has service '" + service + "'");
  }
  // Command-line flags override the YAML.
  for (auto& n : def.nodes) {
    if (n.kind == "http_source" && !listen.empty()) set_param(n, "listen", listen);
    if (n.kind == "demo_source" && demo_rate >= 0) set_param(n, "rate", std::to_string(demo_rate));
  }
  if (demo_rate > 0 && std::none_of(def.nodes.begin(), def.nodes.end(), [](auto& n) { return n.kind == "demo_source"; })) {
    auto route = std::find_if(def.nodes.begin(), def.nodes.end(), [](auto& n) { return n.kind == "route"; });
    if (route == def.nodes.end()) return usage_error("--demo-rate needs a route node in the graph");
    graph::NodeDef demo;
    demo.id = "demo";
    demo.kind = "demo_source";
    demo.service = route->service;  // built (and shown running) where its route is
    set_param(demo, "rate", std::to_string(demo_rate));
    def.edges.push_back({demo.id, route->id, {}});
    def.nodes.insert(def.nodes.begin(), demo);
    std::vector<graph::Diagnostic> diags;
    graph::validate(def, registry, diags);  // fills the demo node's defaults
  }
  for (const auto& n : def.nodes) {
    if (n.kind != "http_source") continue;
    if (auto uri = connectors::listen_uri(n.get_string("listen")); !uri) return usage_error(uri.status().message());
  }

  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    log::error("cannot create data directory", {{"dir", data_dir}, {"error", ec.message()}});
    return 1;
  }
  if (!lock_data_dir(data_dir)) {
    log::error("data directory is in use by another orderflow process; give each instance its own --data-dir",
               {{"dir", data_dir}});
    return 1;
  }
  if (instance_id.empty()) instance_id = default_instance_id(data_dir);

  // Block the stop signals in every thread; main waits for them with sigtimedwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  // cpprestsdk's default pool of 40 threads is several times slower on few cores.
  crossplat::threadpool::initialize_with_threads(std::max<size_t>(2, cores));

  connectors::StoreSet stores(def, data_dir);
  stores.set_instance_id(instance_id);
  BuildOptions options;
  options.threads = static_cast<int>(threads);
  options.service = service;
  // /api/v1/graph names this instance, so the monitor can tell two URLs of one process from two
  // processes (an instance id is letters, digits, '-', '_' and '.': nothing to escape).
  const std::string graph_json =
      "{\"instance\":\"" + instance_id + "\"," + graph::to_json(def, registry, service).substr(1);
  options.factories["http_source"] = [&](const graph::NodeDef& n, Pipeline& p, CommandSink* sink)
      -> Result<std::unique_ptr<RuntimeNode>> {
    connectors::HttpApiContext ctx;
    ctx.graph_json = graph_json;
    ctx.options = http_options;
    ctx.health = [&stores] { return stores.health(); };
    for (const auto& other : def.nodes) {
      if (other.kind != "command_lane") continue;
      if (auto e = stores.event_store(other.get_string("events")); e) ctx.events = *e;
      if (auto s = stores.snapshot_store(other.get_string("snapshots")); s) ctx.snapshots = *s;
      break;
    }
    return connectors::make_http_source(n, p, sink, ctx);
  };
  connectors::add_kafka_factories(options);
  auto built = build_pipeline(def, stores, options);
  if (!built) {
    log::error("cannot build pipeline", {{"error", built.status().to_string()}});
    return 1;
  }
  Pipeline& pipeline = *built->pipeline;
  pipeline.metrics().set_instance(instance_id);
  if (auto s = pipeline.start(); !s) {
    log::error("cannot start pipeline", {{"error", s.to_string()}});
    pipeline.shutdown(std::chrono::seconds(5));
    return 1;
  }
  std::string listening;
  for (const auto& n : def.nodes)
    if (n.kind == "http_source") listening += (listening.empty() ? "" : ",") + n.get_string("listen");
  log::info("serving", {{"graph", file}, {"listen", listening}, {"data_dir", data_dir},
                        {"threads", std::to_string(pipeline.threads())},
                        {"demo_rate", std::to_string(std::max<int64_t>(0, demo_rate))},
                        {"service", service.empty() ? "all" : service}, {"instance", instance_id}});

  int sig = 0;
  while (sig <= 0) {
    timespec timeout{1, 0};
    sig = sigtimedwait(&stop_signals, nullptr, &timeout);
    pipeline.metrics().sample();
    pipeline.metrics().set_ready(stores.health().is_ok());  // orderflow_ready, as /readyz sees the stores
  }
  log::info("stopping: draining in-flight commands", {{"signal", strsignal(sig)}});
  // The stop is bounded even when a store does not answer (a node blocked in its retries):
  // past the drain timeout and a grace period the process exits without the rest. Nothing
  // acknowledged is lost that way (answers follow durable writes); unanswered clients retry.
  const auto drain = std::chrono::seconds(drain_timeout_s);
  std::thread([drain] {
    std::this_thread::sleep_for(drain + std::chrono::seconds(3));
    log::error("drain timeout passed with work still blocked on a store; exiting without it",
               {{"drain_timeout_s", std::to_string(drain.count())}});
    std::_Exit(1);
  }).detach();
  pipeline.shutdown(drain);
  uint64_t committed = 0;
  for (const auto& n : pipeline.metrics().snapshot().nodes)
    if (n.kind == "commit") committed += n.out;
  log::info("stopped", {{"commands_committed", std::to_string(committed)}});
  return 0;
}

// A Kafka cluster for trying the Kafka graphs across several processes on one machine:
// librdkafka's mock brokers (real Kafka protocol over TCP, data in memory).
int mock_kafka(const std::vector<std::string>& args) {
  int64_t brokers = 3, partitions = 4;
  std::vector<std::string> topics;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--brokers" && i + 1 < args.size()) {
      if (!graph::parse_int(args[++i], &brokers) || brokers < 1 || brokers > 16)
        return usage_error("--brokers needs a number from 1 to 16, got '" + args[i] + "'");
    } else if (args[i] == "--partitions" && i + 1 < args.size()) {
      if (!graph::parse_int(args[++i], &partitions) || partitions < 1 || partitions > 1000)
        return usage_error("--partitions needs a number from 1 to 1000, got '" + args[i] + "'");
    } else if (args[i] == "--topics" && i + 1 < args.size()) {
      std::stringstream list(args[++i]);
      for (std::string t; std::getline(list, t, ',');)
        if (!t.empty()) topics.push_back(t);
    } else {
      return usage_error("unknown or incomplete option '" + args[i] + "'");
    }
  }
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  auto bootstrap = connectors::kafka::resolve_brokers("mock:" + std::to_string(brokers));
  if (!bootstrap) {
    log::error("cannot start the mock cluster", {{"error", bootstrap.status().to_string()}});
    return 1;
  }
  const std::string mock = "mock:" + std::to_string(brokers);
  for (const auto& t : topics) {
    if (auto st = connectors::kafka::ensure_mock_topic(mock, t, static_cast<int>(partitions)); !st) {
      log::error("cannot create topic", {{"topic", t}, {"error", st.to_string()}});
      return 1;
    }
  }
  std::printf("%s\n", bootstrap->c_str());
  std::fflush(stdout);
  log::info("mock kafka cluster running; topics are created on first use (4 partitions)",
            {{"brokers", *bootstrap}});
  int sig = 0;
  while (sig <= 0) sig = sigwaitinfo(&stop_signals, nullptr);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  graph::KindRegistry registry;
  register_node_kinds(registry);
  connectors::add_store_param_checks(registry);
  const std::string cmd = args[0];
  if (cmd == "mock-kafka") return mock_kafka(std::vector<std::string>(args.begin() + 1, args.end()));
  if (cmd != "serve" && cmd != "validate" && cmd != "dot" && cmd != "bench")
    return usage_error("unknown command '" + cmd + "'");
  if (args.size() < 2) return usage_error(cmd + " needs a graph FILE");
  const std::string file = args[1];
  if (cmd == "validate") {
    graph::GraphDef def;
    if (!load(file, registry, &def)) return 2;
    std::printf("%s: ok (%zu nodes, %zu edges)\n", file.c_str(), def.nodes.size(), def.edges.size());
    return 0;
  }
  if (cmd == "dot") {
    graph::GraphDef def;
    if (!load(file, registry, &def)) return 2;
    std::fputs(graph::to_dot(def, registry).c_str(), stdout);
    return 0;
  }
  if (cmd == "bench") return bench::bench_main(file, std::vector<std::string>(args.begin() + 2, args.end()), registry);
  return serve(file, std::vector<std::string>(args.begin() + 2, args.end()), registry);
}
