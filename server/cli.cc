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
//   orderflow repair checkpoints|reset-checkpoint|rebuild-projection FILE --data-dir DIR ...
//                                    (server/repair.h; a stopped server's data directory)
//   orderflow dlq list|inspect|replay FILE ...  (server/dlq.h; a kafka_source's dead letters)
//   orderflow parked list|replay --server URL   (server/parked.h; a saga's parked reactions)
//
// run_cli() is the whole command line for a registry of kinds and domains: the `orderflow`
// binary (server/main.cc) passes the standard one; a binary of another domain passes its own.
//
// Exit codes: 0 success (also after SIGTERM/SIGINT with everything drained), 1 runtime
// failure (store cannot open, port taken), 2 bad usage or an invalid graph file.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
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

#include <CLI/CLI.hpp>

#include "server/admin.h"
#include "server/cli.h"
#include "server/data_dir.h"
#include "server/dlq.h"
#include "server/parked.h"
#include "server/repair.h"

#include "bench/bench_cmd.h"
#include "connectors/http_api.h"
#include "connectors/kafka_client.h"
#include "connectors/stores.h"
#include "graph/build.h"
#include "graph/definition.h"
#include "graph/log.h"

namespace {

using namespace orderflow;

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "orderflow: %s\nRun 'orderflow --help' or 'orderflow COMMAND --help' for the options.\n",
               msg.c_str());
  return 2;
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

// An instance id names one live process: the lock in the data directory
// (server::lock_data_dir) keeps a second process with the same directory (and so the same
// default id) from starting.
using server::lock_data_dir;

bool load(const std::string& path, const graph::KindRegistry& registry, graph::GraphDef* out) {
  return server::load_graph(path, registry, out);
}

void set_param(graph::NodeDef& n, const std::string& name, const std::string& value) {
  n.params[name].text = value;
}

// `orderflow serve`'s flags, as the command line (or ORDERFLOW_* variables) gave them.
struct ServeFlags {
  std::string file;
  std::string listen, data_dir = "./data", service, level = "info", instance_id;
  int64_t threads = 0, demo_rate = -1, drain_timeout_s = 30;
  std::string token_file, tls_cert, tls_key, tls_client_ca;
  bool insecure_no_auth = false;
  std::vector<std::string> http_options;  // NAME=VALUE
};

int serve(const ServeFlags& flags, const graph::KindRegistry& registry) {
  const std::string& file = flags.file;
  const std::string& listen = flags.listen;
  const std::string& data_dir = flags.data_dir;
  const std::string& service = flags.service;
  const std::string& level = flags.level;
  std::string instance_id = flags.instance_id;
  const int64_t threads = flags.threads, demo_rate = flags.demo_rate, drain_timeout_s = flags.drain_timeout_s;
  // The HTTP flags keep their one parser (connectors/http_api.h), fed the flags given.
  connectors::HttpServeOptions http_options;
  {
    std::vector<std::string> args;
    auto pass = [&](const char* flag, const std::string& value) {
      if (value.empty()) return;
      args.push_back(flag);
      args.push_back(value);
    };
    pass("--token-file", flags.token_file);
    pass("--tls-cert", flags.tls_cert);
    pass("--tls-key", flags.tls_key);
    pass("--tls-client-ca", flags.tls_client_ca);
    if (flags.insecure_no_auth) args.push_back("--insecure-no-auth");
    for (const auto& o : flags.http_options) pass("--http-option", o);
    for (size_t i = 0; i < args.size(); ++i) {
      auto h = connectors::parse_http_flag(args, &i, &http_options);
      if (!h) return usage_error(h.status().message());
      if (!*h) return usage_error("unknown HTTP option '" + args[i] + "'");
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
  // Set once the pipeline is built; read by the HTTP node's readiness (after start()).
  std::atomic<Pipeline*> pipeline_ref{nullptr};
  // The HTTP node gets what only the server knows: its flags, the topology it serves, readiness.
  options.factories["http_source"] = [&](const graph::NodeDef& n, BuildContext& c) {
    connectors::HttpApiContext ctx;
    ctx.graph_json = graph_json;
    ctx.options = http_options;
    // /api/v1/admin/...: subscribers, resets, rebuilds and dead letters of this pipeline.
    server::AdminContext admin;
    admin.def = &def;
    admin.registry = &registry;
    admin.stores = &stores;
    admin.instance_id = instance_id;
    admin.pipeline = &pipeline_ref;
    ctx.admin_routes = server::admin_routes(admin);
    // Ready when the stores answer and every node does its work (no subscriber stuck).
    ctx.health = [&stores, &pipeline_ref] {
      if (Status s = stores.health(); !s) return s;
      Pipeline* p = pipeline_ref.load();
      return p != nullptr ? p->health() : Status::ok();
    };
    return connectors::make_http_source(n, c, ctx);
  };
  auto built = build_pipeline(def, registry, stores, options);
  if (!built) {
    log::error("cannot build pipeline", {{"error", built.status().to_string()}});
    return 1;
  }
  Pipeline& pipeline = *built->pipeline;
  pipeline_ref = &pipeline;
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
    // orderflow_ready, as /readyz sees it: the stores answer and no node is stuck.
    pipeline.metrics().set_ready(stores.health().is_ok() && pipeline.health().is_ok());
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
int mock_kafka(int64_t brokers, int64_t partitions, const std::vector<std::string>& topics) {
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

namespace orderflow {

int run_cli(int argc, char** argv, const graph::KindRegistry& registry) {
  // One parser for every command (CLI11): --help on each, --version, exit 2 with the
  // reason on a bad flag. Every serve flag may also come from ORDERFLOW_<FLAG>.
  CLI::App app{"orderflow: an event-sourced order processing engine on a oneTBB flow graph"};
  app.name("orderflow");
  app.set_version_flag("--version", std::string("orderflow ") + ORDERFLOW_VERSION);
  app.require_subcommand(1);
  int exit_code = 0;

  ServeFlags sf;
  // A flag given twice keeps its last value (a wrapper script may add to a base command line).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  CLI::App* serve_cmd = app.add_subcommand("serve", "run a graph headless: HTTP/Kafka ingest, the stores, metrics");
  serve_cmd->add_option("FILE", sf.file, "graph definition (YAML)")->required();
  serve_cmd->add_option("--listen", sf.listen, "HOST:PORT (or https://HOST:PORT) of the HTTP API; overrides the YAML")
      ->envname("ORDERFLOW_LISTEN");
  serve_cmd->add_option("--data-dir", sf.data_dir, "where RocksDB stores and the instance lock live")
      ->capture_default_str()
      ->envname("ORDERFLOW_DATA_DIR");
  serve_cmd->add_option("--threads", sf.threads, "TBB worker threads (default: one per usable core)")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}))
      ->envname("ORDERFLOW_THREADS");
  serve_cmd->add_option("--demo-rate", sf.demo_rate, "synthetic commands/s from a demo source (0 = none)")
      ->check(CLI::Range(int64_t{0}, int64_t{10000000}))
      ->envname("ORDERFLOW_DEMO_RATE");
  serve_cmd->add_option("--service", sf.service, "build only this service's nodes (and those without one)")
      ->envname("ORDERFLOW_SERVICE");
  serve_cmd->add_option("--instance-id", sf.instance_id,
                        "this instance's name among its service's (default: host + data directory)")
      ->check([](const std::string& v) {
        const bool ok = !v.empty() && v.size() <= 100 && std::all_of(v.begin(), v.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
        });
        return ok ? std::string() : "needs 1-100 letters, digits, '-', '_' or '.', got '" + v + "'";
      })
      ->envname("ORDERFLOW_INSTANCE_ID");
  serve_cmd->add_option("--drain-timeout", sf.drain_timeout_s, "seconds a stop waits for commands in flight")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{3600}))
      ->envname("ORDERFLOW_DRAIN_TIMEOUT");
  serve_cmd->add_option("--log-level", sf.level, "debug, info, warn or error")
      ->capture_default_str()
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->envname("ORDERFLOW_LOG_LEVEL");
  serve_cmd->add_option("--token-file", sf.token_file, "bearer tokens, lines 'ROLE TOKEN' (roles: read, write)")
      ->envname("ORDERFLOW_TOKEN_FILE");
  serve_cmd->add_flag("--insecure-no-auth", sf.insecure_no_auth,
                      "serve a non-loopback address without tokens")
      ->envname("ORDERFLOW_INSECURE_NO_AUTH");
  serve_cmd->add_option("--tls-cert", sf.tls_cert, "PEM certificate for https:// listen addresses")
      ->envname("ORDERFLOW_TLS_CERT");
  serve_cmd->add_option("--tls-key", sf.tls_key, "PEM private key")->envname("ORDERFLOW_TLS_KEY");
  serve_cmd->add_option("--tls-client-ca", sf.tls_client_ca, "PEM CA: require client certificates it signed")
      ->envname("ORDERFLOW_TLS_CLIENT_CA");
  serve_cmd->add_option("--http-option", sf.http_options,
                        "NAME=VALUE HTTP limit (max_connections, max_header_bytes, header_timeout_ms, ...)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->envname("ORDERFLOW_HTTP_OPTION");
  serve_cmd->callback([&] { exit_code = serve(sf, registry); });

  std::string file;
  CLI::App* validate_cmd = app.add_subcommand("validate", "check a graph definition; print every problem");
  validate_cmd->add_option("FILE", file, "graph definition (YAML)")->required();
  validate_cmd->callback([&] {
    graph::GraphDef def;
    if (!load(file, registry, &def)) {
      exit_code = 2;
      return;
    }
    std::printf("%s: ok (%zu nodes, %zu edges)\n", file.c_str(), def.nodes.size(), def.edges.size());
  });
  CLI::App* dot_cmd = app.add_subcommand("dot", "print the graph in Graphviz DOT");
  dot_cmd->add_option("FILE", file, "graph definition (YAML)")->required();
  dot_cmd->callback([&] {
    graph::GraphDef def;
    if (!load(file, registry, &def)) {
      exit_code = 2;
      return;
    }
    std::fputs(graph::to_dot(def, registry).c_str(), stdout);
  });

  bench::add_bench_command(app, registry, &exit_code);
  server::add_repair_command(app, registry, &exit_code);
  server::add_dlq_command(app, registry, &exit_code);
  server::add_parked_command(app, &exit_code);

  int64_t brokers = 3, partitions = 4;
  std::vector<std::string> topics;
  CLI::App* mock_cmd = app.add_subcommand(
      "mock-kafka", "run librdkafka's mock Kafka cluster on loopback until SIGTERM/SIGINT; prints its broker list");
  mock_cmd->add_option("--brokers", brokers, "brokers")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{16}));
  mock_cmd->add_option("--topics", topics, "topics to create, comma-separated")
      ->delimiter(',')
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  mock_cmd->add_option("--partitions", partitions, "partitions of each topic created")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000}));
  mock_cmd->callback([&] { exit_code = mock_kafka(brokers, partitions, topics); });

  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    for (const auto* sub : app.get_subcommands([](CLI::App*) { return true; })) known = known || sub->get_name() == argv[1];
    if (!known) return usage_error(std::string("unknown command '") + argv[1] + "'");
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage_error(e.what());
  }
  return exit_code;
}

}  // namespace orderflow
