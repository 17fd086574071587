// `orderflow bench FILE --http`: HTTP ingest through the real pipeline, driven by wrk, next
// to the cheapest handlers of the same HTTP servers driven by the same wrk command.
//
// Targets, each on a fresh free loopback port, their order rotated by repetition so a drift
// of the machine hits all of them alike:
//   listener-202   connectors/http_server (the product's Boost.Beast listener, the options the
//                  http_source uses) with a handler that takes the read body and answers 202
//   cpprest-202    a bare cpprestsdk http_listener that reads the body and answers 202 (the
//                  listener the product used before; the baseline)
//   pipeline ...   the graph with its http_source on fresh stores, per --store
// wrk runs as a child process with bench/wrk_commands.lua (compiled in, written to the data
// directory): unique command ids, restocks and orders. Only 2xx answers count as accepted;
// the server's CPU per request is this process's CPU time over wrk's run (wrk is not in it).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <utility>  // before cpprestsdk: Boost.Asio's C++20 awaitable.hpp uses std::exchange
#include <cpprest/http_listener.h>
#include <pplx/threadpool.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "bench/bench.h"
#include "bench/wrk_script.h"
#include "connectors/http_api.h"
#include "connectors/http_server.h"
#include "connectors/stores.h"
#include "graph/json.h"
#include "graph/log.h"
#include "graph/build.h"

namespace orderflow::bench {
namespace {

namespace fs = std::filesystem;

constexpr const char* kListenerTarget = "listener-202";
constexpr const char* kCpprestTarget = "cpprest-202";

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

// A port nobody listens on now. Each target gets its own, so none waits for the previous
// target's sockets to leave TIME_WAIT.
Result<uint16_t> free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return Status::io_error("socket() failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  ::close(fd);
  if (!ok) return Status::io_error("cannot find a free loopback port");
  return ntohs(a.sin_port);
}

// wrk's length of a run: whole seconds (it takes no fractions).
int wrk_seconds(const Options& o) { return std::max(1, static_cast<int>(o.duration_s + 0.5)); }

std::string wrk_command(const Options& o, const std::string& script, const std::string& port, const std::string& tag) {
  return "wrk -t" + std::to_string(o.wrk_threads) + " -c" + std::to_string(o.connections) + " -d" +
         std::to_string(wrk_seconds(o)) + "s --latency -s " + script + " http://127.0.0.1:" + port +
         "/api/v1/commands -- " + std::to_string(o.workload.skus) + " " + tag;
}

// The figures of the script's done() line ("orderflow-wrk requests=... p99_us=..."); wrk's
// own text is kept for errors.
Result<HttpRun> run_wrk(const std::string& command) {
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return Status::internal("cannot start wrk");
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  const int status = ::pclose(p);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Status::internal("wrk failed (" + command + "):\n" + out);
  const size_t at = out.find("orderflow-wrk ");
  if (at == std::string::npos) return Status::internal("wrk printed no orderflow-wrk line:\n" + out);
  std::map<std::string, double> v;
  std::istringstream line(out.substr(at + 14, out.find('\n', at) - at - 14));
  for (std::string kv; line >> kv;)
    if (const size_t eq = kv.find('='); eq != std::string::npos) v[kv.substr(0, eq)] = std::strtod(kv.c_str() + eq + 1, nullptr);
  HttpRun r;
  r.seconds = v["duration_us"] / 1e6;
  r.requests = static_cast<uint64_t>(v["requests"]);
  r.non_2xx = static_cast<uint64_t>(v["status_errors"]);  // wrk counts answers with a status >= 400
  r.socket_errors = static_cast<uint64_t>(v["connect_errors"] + v["read_errors"] + v["write_errors"] + v["timeouts"]);
  r.accepted = r.requests - std::min(r.requests, r.non_2xx);
  r.accepted_per_s = r.seconds > 0 ? static_cast<double>(r.accepted) / r.seconds : 0;
  r.p50_ms = v["p50_us"] / 1000;
  r.p99_ms = v["p99_us"] / 1000;
  r.max_ms = v["max_us"] / 1000;
  if (r.seconds <= 0) return Status::internal("wrk reported no duration:\n" + out);
  return r;
}

// Runs wrk against whatever serves `port` now; the CPU time is the server's (this process).
Result<HttpRun> drive(const Options& o, const std::string& script, uint16_t port, const std::string& target, int rep) {
  const double cpu0 = cpu_seconds();
  auto r = run_wrk(wrk_command(o, script, std::to_string(port), "r" + std::to_string(rep) + "-" + std::to_string(port)));
  if (!r) return r;
  r->target = target;
  r->repetition = rep;
  r->cpu_us_per_request = r->requests > 0 ? (cpu_seconds() - cpu0) * 1e6 / static_cast<double>(r->requests) : 0;
  return r;
}

Result<HttpRun> listener_baseline(const Options& o, const std::string& script, int rep) {
  auto port = free_port();
  if (!port) return port.status();
  connectors::http::ServerOptions so;
  so.port = *port;
  so.io_threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));  // as the http_source
  connectors::http::Server server(
      so, [](const connectors::http::Request&) { return std::optional<connectors::http::Response>(); },
      [](connectors::http::Request&& req, std::shared_ptr<connectors::http::Responder> responder) {
        connectors::http::Response resp;
        resp.status = 202;
        resp.body = "{\"status\":\"accepted\",\"bytes\":" + std::to_string(req.body.size()) + "}";
        responder->send(std::move(resp));
      });
  if (auto s = server.start(); !s) return s;
  auto r = drive(o, script, *port, kListenerTarget, rep);
  server.stop();
  return r;
}

Result<HttpRun> cpprest_baseline(const Options& o, const std::string& script, int rep) {
  namespace http = web::http;
  auto port = free_port();
  if (!port) return port.status();
  http::experimental::listener::http_listener listener("http://127.0.0.1:" + std::to_string(*port) + "/api/v1/commands");
  listener.support(http::methods::POST, [](http::http_request req) {
    req.extract_string(true).then([req](pplx::task<utility::string_t> body) mutable {
      try {
        const size_t bytes = body.get().size();
        req.reply(http::status_codes::Accepted, "{\"status\":\"accepted\",\"bytes\":" + std::to_string(bytes) + "}",
                  "application/json");
      } catch (const std::exception&) {  // the client went away: nothing to answer
      }
    });
  });
  try {
    listener.open().wait();
  } catch (const std::exception& e) {
    return Status::io_error(std::string("cpprestsdk listener: ") + e.what());
  }
  auto r = drive(o, script, *port, kCpprestTarget, rep);
  try {
    listener.close().wait();
  } catch (const std::exception&) {  // closing with clients still connected may throw; the run is over
  }
  return r;
}

Result<HttpRun> pipeline_run(const Options& o, const graph::KindRegistry& kinds, graph::GraphDef def, const std::string& target, const std::string& script,
                             const std::string& dir, int rep) {
  auto port = free_port();
  if (!port) return port.status();
  bool first = true;
  for (auto& n : def.nodes) {
    if (n.kind != "http_source") continue;
    if (!first) {  // only the first is driven; the others still need a port of their own
      auto other = free_port();
      if (!other) return other.status();
      n.params["listen"].text = "127.0.0.1:" + std::to_string(*other);
      continue;
    }
    n.params["listen"].text = "127.0.0.1:" + std::to_string(*port);
    first = false;
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  if (ec) return Status::io_error("cannot create " + dir + ": " + ec.message());
  Result<HttpRun> r = Status::internal("not run");
  {
    connectors::StoreSet stores(def, dir);
    BuildOptions bo;
    bo.threads = o.threads.front();
    bo.factories["http_source"] = [&stores](const graph::NodeDef& n, BuildContext& c) {
      connectors::HttpApiContext ctx;
      ctx.health = [&stores] { return stores.health(); };
      return connectors::make_http_source(n, c, ctx);
    };
    auto built = build_pipeline(def, kinds, stores, bo);
    if (!built) return built.status();
    if (auto s = built->pipeline->start(); !s) {
      built->pipeline->shutdown(std::chrono::seconds(5));
      return s;
    }
    r = drive(o, script, *port, target, rep);
    built->pipeline->shutdown(std::chrono::seconds(30));
  }
  fs::remove_all(dir, ec);
  return r;
}

struct HttpSummary {
  std::string target;
  double accepted_per_s = 0, p50_ms = 0, p99_ms = 0, cpu_us_per_request = 0, non_2xx_share = 0;
  uint64_t socket_errors = 0;
};

std::vector<HttpSummary> summarize_http(const std::vector<HttpRun>& runs, const std::vector<std::string>& targets) {
  std::vector<HttpSummary> out;
  for (const auto& t : targets) {
    std::vector<double> rate, p50, p99, cpu, refused;
    HttpSummary s;
    s.target = t;
    for (const auto& r : runs) {
      if (r.target != t) continue;
      rate.push_back(r.accepted_per_s);
      p50.push_back(r.p50_ms);
      p99.push_back(r.p99_ms);
      cpu.push_back(r.cpu_us_per_request);
      refused.push_back(r.requests ? static_cast<double>(r.non_2xx) / static_cast<double>(r.requests) : 0);
      s.socket_errors += r.socket_errors;
    }
    if (rate.empty()) continue;
    s.accepted_per_s = median(rate);
    s.p50_ms = median(p50);
    s.p99_ms = median(p99);
    s.cpu_us_per_request = median(cpu);
    s.non_2xx_share = median(refused);
    out.push_back(s);
  }
  return out;
}

Status write_http_json(const Options& o, const std::vector<HttpRun>& runs, const std::vector<HttpSummary>& summary,
                       const std::string& path) {
  JsonWriter w;
  w.begin_object().field("mode", "http");
  w.key("options").begin_object().field("graph", o.graph_file).field("runs", o.runs).field("duration_s", wrk_seconds(o));
  w.field("connections", o.connections).field("wrk_threads", o.wrk_threads).field("threads", o.threads.front());
  w.field("skus", static_cast<int64_t>(o.workload.skus)).end_object();
  w.key("runs").begin_array();
  for (const auto& r : runs) {
    w.begin_object().field("target", r.target).field("repetition", r.repetition).field("seconds", r.seconds);
    w.field("requests", r.requests).field("accepted", r.accepted).field("non_2xx", r.non_2xx);
    w.field("socket_errors", r.socket_errors).field("accepted_per_s", r.accepted_per_s);
    w.key("latency_ms").begin_object().field("p50", r.p50_ms).field("p99", r.p99_ms).field("max", r.max_ms).end_object();
    w.field("cpu_us_per_request", r.cpu_us_per_request).end_object();
  }
  w.end_array();
  const double base = summary.empty() || summary.front().target != kListenerTarget ? 0 : summary.front().accepted_per_s;
  w.key("summary").begin_array();
  for (const auto& s : summary) {
    w.begin_object().field("target", s.target).field("accepted_per_s", s.accepted_per_s);
    w.field("p50_ms", s.p50_ms).field("p99_ms", s.p99_ms).field("cpu_us_per_request", s.cpu_us_per_request);
    if (base > 0) w.field("ratio_to_listener", s.accepted_per_s / base);
    w.end_object();
  }
  w.end_array().end_object();
  std::ofstream f(path);
  f << w.str() << "\n";
  if (!f) return Status::io_error("cannot write " + path);
  return Status::ok();
}

}  // namespace

int run_http_bench(const Options& o, const graph::KindRegistry& kinds, const std::vector<graph::GraphDef>& graphs, const std::vector<std::string>& stores) {
  if (std::system("command -v wrk >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "orderflow bench --http: wrk is not installed (Debian package wrk; scripts/deps.sh)\n");
    return 1;
  }
  if (o.connections < o.wrk_threads) {
    std::fprintf(stderr, "orderflow bench --http: --connections must be at least --wrk-threads (wrk gives each thread its own)\n");
    return 2;
  }
  for (const auto& g : graphs) {
    if (std::none_of(g.nodes.begin(), g.nodes.end(), [](const auto& n) { return n.kind == "http_source"; })) {
      std::fprintf(stderr, "orderflow bench --http: %s has no http_source node\n", o.graph_file.c_str());
      return 2;
    }
  }
  // The http_source says at info level that authentication is off on loopback, every run.
  log::set_level(log::Level::kWarn);
  // cpprestsdk's thread pool is sized by run_bench, as `orderflow serve` sizes it.

  std::error_code ec;
  fs::create_directories(o.data_dir, ec);
  const std::string script = (fs::path(o.data_dir) / "wrk_commands.lua").string();
  {
    std::ofstream f(script);
    f << kWrkScript;
    if (!f) {
      std::fprintf(stderr, "orderflow bench --http: cannot write %s\n", script.c_str());
      return 1;
    }
  }

  std::vector<std::string> targets;
  if (o.baselines) targets = {kListenerTarget, kCpprestTarget};
  for (const auto& s : stores) targets.push_back("pipeline " + s + " t" + std::to_string(o.threads.front()));
  std::printf("HTTP ingest: %s\n", wrk_command(o, "bench/wrk_commands.lua", "PORT", "TAG").c_str());
  std::fflush(stdout);

  std::vector<HttpRun> runs;
  for (int rep = 0; rep < o.runs; ++rep) {
    for (size_t k = 0; k < targets.size(); ++k) {
      const size_t t = (k + static_cast<size_t>(rep)) % targets.size();  // rotated by repetition
      Result<HttpRun> r = Status::internal("no target");
      if (targets[t] == kListenerTarget) {
        r = listener_baseline(o, script, rep);
      } else if (targets[t] == kCpprestTarget) {
        r = cpprest_baseline(o, script, rep);
      } else {
        const size_t si = t - (o.baselines ? 2 : 0);
        r = pipeline_run(o, kinds, graphs[si], targets[t], script, (fs::path(o.data_dir) / "run").string(), rep);
      }
      if (!r) {
        std::fprintf(stderr, "orderflow bench --http: %s: %s\n", targets[t].c_str(), r.status().to_string().c_str());
        return 1;
      }
      if (o.progress)
        std::fprintf(stderr, "  %-24s #%d %10.0f 2xx/s\n", targets[t].c_str(), rep + 1, r->accepted_per_s);
      runs.push_back(*r);
    }
  }
  fs::remove(script, ec);

  const auto summary = summarize_http(runs, targets);
  std::printf("\n%-28s %12s %9s %9s %9s %11s %9s\n", ("median of " + std::to_string(o.runs) + " runs").c_str(),
              "accepted/s", "p50 ms", "p99 ms", "non-2xx", "CPU us/req", "ratio");
  const double base = o.baselines ? summary.front().accepted_per_s : 0;
  for (const auto& s : summary) {
    char ratio[32] = "";
    if (base > 0) std::snprintf(ratio, sizeof ratio, "%.2f", s.accepted_per_s / base);
    std::printf("%-28s %12.0f %9.2f %9.2f %8.1f%% %11.1f %9s\n", s.target.c_str(), s.accepted_per_s, s.p50_ms, s.p99_ms,
                100 * s.non_2xx_share, s.cpu_us_per_request, ratio);
  }
  if (base > 0) {
    const double cpprest = summary[1].accepted_per_s;
    for (size_t i = 2; i < summary.size(); ++i)
      std::printf("ratio %s / %s: %.2f (/ %s: %.2f; target >= 0.6)\n", summary[i].target.c_str(), kListenerTarget,
                  summary[i].accepted_per_s / base, kCpprestTarget, cpprest > 0 ? summary[i].accepted_per_s / cpprest : 0);
  }
  for (const auto& s : summary)
    if (s.socket_errors > 0)
      std::printf("note: %s: %lu connect/read/write errors or timeouts (wrk) over all runs\n", s.target.c_str(),
                  static_cast<unsigned long>(s.socket_errors));
  if (!o.json_file.empty()) {
    if (auto s = write_http_json(o, runs, summary, o.json_file); !s) {
      std::fprintf(stderr, "orderflow bench: --json: %s\n", s.to_string().c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace orderflow::bench
