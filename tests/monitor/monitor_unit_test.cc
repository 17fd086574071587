// Unit tests of the monitor's pure part: JSON parsing, layout, figures, dump, PNG, backoff.
#define _TURN_OFF_PLATFORM_STRING  // cpprest's U() macro breaks gtest templates
#include <utility>  // before cpprest (Boost.Asio with C++20)

#include <cpprest/json.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>
#include <set>

#include "layout.h"
#include "png.h"
#include "poller.h"
#include "snapshot.h"

namespace orderflow::monitor {
namespace {

// Shapes as served by graph/topology.cc and graph/metrics.cc for graphs/orders.yaml.
const char* kGraph = R"({"name":"orders","nodes":[
 {"id":"demo","kind":"demo_source","service":"","input":"none","output":"command","source":true,"params":{"rate":"200"}},
 {"id":"http","kind":"http_source","service":"","input":"none","output":"command","source":true,"params":{"listen":"127.0.0.1:1"}},
 {"id":"route","kind":"route","service":"","input":"command","output":"command","source":false,"params":{"lanes":"8"}},
 {"id":"lanes","kind":"command_lane","service":"","input":"command","output":"decision","source":false,"params":{}},
 {"id":"commit","kind":"commit","service":"","input":"decision","output":"committed","source":false,"params":{}},
 {"id":"feed","kind":"change_feed","service":"","input":"committed","output":"event","source":false,"params":{}},
 {"id":"projection","kind":"projection","service":"","input":"event","output":"none","source":false,"params":{}},
 {"id":"saga","kind":"saga","service":"","input":"event","output":"command","source":false,"params":{}}],
"edges":[
 {"from":"http","to":"route","type":"command","storeMediated":false},
 {"from":"route","to":"lanes","type":"command","storeMediated":false},
 {"from":"lanes","to":"commit","type":"decision","storeMediated":false},
 {"from":"commit","to":"feed","type":"committed","storeMediated":true},
 {"from":"feed","to":"projection","type":"event","storeMediated":false},
 {"from":"feed","to":"saga","type":"event","storeMediated":false},
 {"from":"saga","to":"route","type":"command","storeMediated":false},
 {"from":"demo","to":"route","type":"command","storeMediated":false}]})";

std::string node_json(const std::string& id, double rate_in, double rate_out, double busy, double queue,
                      const std::string& gauges = "{}") {
  const std::string kind = id == "projection" ? "projection" : "k";  // its other figures are totals
  return R"({"id":")" + id + R"(","kind":")" + kind + R"(","in":10,"out":9,"errors":1,"busySeconds":0.5,"queueDepth":)" +
         std::to_string(queue) + R"(,"rateIn":)" + std::to_string(rate_in) + R"(,"rateOut":)" +
         std::to_string(rate_out) + R"(,"busyShare":)" + std::to_string(busy) +
         R"(,"latencyUs":{"count":5,"mean":10,"p50":8,"p95":20,"p99":30,"p999":40,"max":50},"lastError":"boom","gauges":)" +
         gauges + "}";
}

std::string metrics_json() {
  return R"({"uptimeSeconds":12.5,"nodes":[)" + node_json("demo", 0, 200, 0, 0) + "," +
         node_json("http", 0, 5, 0, 0) + "," + node_json("route", 205, 205, 0.01, 0) + "," +
         node_json("lanes", 205, 205, 0.7, 3) + "," + node_json("commit", 205, 200, 0.95, 19) + "," +
         node_json("feed", 200, 400, 0, 0) + "," +
         node_json("projection", 200, 200, 0.3, 0, R"({"checkpoint":8502,"lag_events":13,"lag_seconds":0.024,"orders_confirmed":40,"orders_rejected":7})") +
         "," + node_json("saga", 200, 150, 0, 150) + "]}";
}

TEST(MonitorSnapshot, ParsesTopology) {
  std::string err;
  auto t = parse_topology(kGraph, &err);
  ASSERT_TRUE(t) << err;
  EXPECT_EQ(t->name, "orders");
  ASSERT_EQ(t->nodes.size(), 8u);
  EXPECT_EQ(t->nodes[0].id, "demo");
  EXPECT_TRUE(t->nodes[0].source);
  EXPECT_FALSE(t->nodes[2].source);
  EXPECT_EQ(t->nodes[2].kind, "route");
  ASSERT_EQ(t->nodes[0].params.size(), 1u);
  EXPECT_EQ(t->nodes[0].params[0], (std::pair<std::string, std::string>("rate", "200")));
  ASSERT_EQ(t->edges.size(), 8u);
  EXPECT_TRUE(t->edges[3].store_mediated);
  EXPECT_EQ(t->edges[3].from, "commit");
  EXPECT_EQ(t->edges[3].to, "feed");
  EXPECT_FALSE(t->edges[0].store_mediated);
}

TEST(MonitorSnapshot, ParsesMetrics) {
  std::string err;
  auto m = parse_metrics(metrics_json(), &err);
  ASSERT_TRUE(m) << err;
  EXPECT_DOUBLE_EQ(m->uptime_seconds, 12.5);
  ASSERT_EQ(m->nodes.size(), 8u);
  const NodeMetrics* p = m->find("projection");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->in, 10u);
  EXPECT_EQ(p->out, 9u);
  EXPECT_EQ(p->errors, 1u);
  EXPECT_DOUBLE_EQ(p->latency_us.p50, 8);
  EXPECT_DOUBLE_EQ(p->latency_us.p99, 30);
  EXPECT_DOUBLE_EQ(p->latency_us.p999, 40);
  EXPECT_EQ(p->last_error, "boom");
  EXPECT_DOUBLE_EQ(p->gauge("lag_events").value_or(-1), 13);
  EXPECT_DOUBLE_EQ(p->gauge("lag_seconds").value_or(-1), 0.024);
  EXPECT_FALSE(p->gauge("nope"));
  EXPECT_DOUBLE_EQ(m->find("feed")->rate(), 400);
  EXPECT_EQ(m->find("missing"), nullptr);
}

TEST(MonitorSnapshot, RejectsBadDocuments) {
  std::string err;
  EXPECT_FALSE(parse_topology("{not json", &err));
  EXPECT_FALSE(err.empty());
  EXPECT_FALSE(parse_topology("[1,2]", &err));
  EXPECT_FALSE(parse_metrics(R"({"uptimeSeconds":1})", &err));
  EXPECT_NE(err.find("nodes"), std::string::npos);
  // Missing optional fields default to zero rather than failing.
  auto m = parse_metrics(R"({"nodes":[{"id":"x"}]})", &err);
  ASSERT_TRUE(m);
  EXPECT_DOUBLE_EQ(m->nodes[0].rate(), 0);
}

TEST(MonitorSnapshot, HistoryKeepsWindow) {
  History h;
  MetricsSnapshot m = *parse_metrics(metrics_json());
  for (int t = 0; t <= 400; t += 10) append_history(h, m, 1000.0 + t, 300);
  ASSERT_EQ(h.size(), 8u);
  EXPECT_EQ(h["feed"].size(), 31u);  // 1100..1400
  EXPECT_DOUBLE_EQ(h["feed"].front().t, 1100);
  EXPECT_DOUBLE_EQ(h["feed"].back().rate, 400);
  EXPECT_DOUBLE_EQ(h["commit"].back().queue_depth, 19);
}

TEST(MonitorLayout, DepthIsLongestPathIgnoringBackEdges) {
  auto t = parse_topology(kGraph);
  auto m = parse_metrics(metrics_json());
  Layout L = compute_layout(*t, &*m);
  ASSERT_EQ(L.nodes.size(), 8u);
  auto depth = [&](const char* id) { return L.nodes[static_cast<size_t>(L.find(id))].depth; };
  EXPECT_EQ(depth("demo"), 0);
  EXPECT_EQ(depth("http"), 0);
  EXPECT_EQ(depth("route"), 1);
  EXPECT_EQ(depth("lanes"), 2);
  EXPECT_EQ(depth("commit"), 3);
  EXPECT_EQ(depth("feed"), 4);
  EXPECT_EQ(depth("projection"), 5);
  EXPECT_EQ(depth("saga"), 5);
  int back = 0;
  for (const auto& e : L.edges) {
    if (e.back_edge) {
      ++back;
      EXPECT_EQ(e.from, "saga");
      EXPECT_EQ(e.to, "route");
    }
  }
  EXPECT_EQ(back, 1);
  // Left to right by depth; same column stacked by declaration order.
  for (const auto& n : L.nodes)
    for (const auto& o : L.nodes) {
      if (n.depth < o.depth) {
        EXPECT_LT(n.x + n.w, o.x) << n.id << " " << o.id;
      }
      if (n.depth == o.depth && n.row < o.row) {
        EXPECT_LT(n.y + n.h, o.y);
      }
    }
  EXPECT_LT(L.nodes[static_cast<size_t>(L.find("demo"))].y, L.nodes[static_cast<size_t>(L.find("http"))].y);
  EXPECT_GT(L.width, 6 * 170.0f);
}

TEST(MonitorLayout, PositionsDeterministicAndIndependentOfMetrics) {
  auto t = parse_topology(kGraph);
  auto m = parse_metrics(metrics_json());
  Layout a = compute_layout(*t, &*m), b = compute_layout(*t, nullptr), c = compute_layout(*t, &*m);
  ASSERT_EQ(a.nodes.size(), b.nodes.size());
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    EXPECT_EQ(a.nodes[i].id, b.nodes[i].id);
    EXPECT_EQ(a.nodes[i].x, b.nodes[i].x);
    EXPECT_EQ(a.nodes[i].y, b.nodes[i].y);
    EXPECT_EQ(a.nodes[i].x, c.nodes[i].x);
  }
  EXPECT_EQ(dump_layout_json(make_snapshot({}, 1)), dump_layout_json(make_snapshot({}, 1)));
  EXPECT_FALSE(b.nodes[0].has_metrics);
  EXPECT_EQ(b.nodes[0].health, Health::kIdle);
}

TEST(MonitorLayout, CycleWithoutSourcesStillTerminates) {
  Topology t;
  t.nodes = {{"a", "k", "", "", "", false, {}}, {"b", "k", "", "", "", false, {}}};
  t.edges = {{"a", "b", "x", false}, {"b", "a", "x", false}, {"a", "ghost", "x", false}};
  Layout L = compute_layout(t, nullptr);
  ASSERT_EQ(L.nodes.size(), 2u);
  EXPECT_EQ(L.edges.size(), 2u);  // the edge to an unknown node is dropped
  EXPECT_EQ(L.nodes[0].id, "a");
  EXPECT_EQ(L.nodes[1].depth, 1);
}

TEST(MonitorLayout, ANodeWithoutMetricsNamesItsService) {
  Topology t;
  t.nodes = {{"feed", "change_feed", "", "", "", false, {}}, {"projection", "projection", "views", "", "", false, {}}};
  t.edges = {{"feed", "projection", "event", false}};
  MetricsSnapshot m;  // a process of another service: neither node reports
  Layout L = compute_layout(t, &m);
  ASSERT_EQ(L.nodes.size(), 2u);
  EXPECT_EQ(L.nodes[0].lines.back(), "no metrics");
  EXPECT_EQ(L.nodes[1].lines.back(), "no metrics (service views)");
}

TEST(MonitorLayout, HealthThresholds) {
  NodeMetrics n;
  EXPECT_EQ(node_health(n), Health::kGreen);
  n.busy_share = 0.6;
  EXPECT_EQ(node_health(n), Health::kYellow);
  n.busy_share = 0.9;
  EXPECT_EQ(node_health(n), Health::kRed);
  n.busy_share = 0;
  n.queue_depth = 100;
  EXPECT_EQ(node_health(n), Health::kYellow);
  n.queue_depth = 1000;
  EXPECT_EQ(node_health(n), Health::kRed);
  auto t = parse_topology(kGraph);
  auto m = parse_metrics(metrics_json());
  Layout L = compute_layout(*t, &*m);
  EXPECT_EQ(L.nodes[static_cast<size_t>(L.find("commit"))].health, Health::kRed);
  EXPECT_EQ(L.nodes[static_cast<size_t>(L.find("lanes"))].health, Health::kYellow);
  EXPECT_EQ(L.nodes[static_cast<size_t>(L.find("saga"))].health, Health::kYellow);
  EXPECT_EQ(L.nodes[static_cast<size_t>(L.find("route"))].health, Health::kGreen);
}

TEST(MonitorLayout, EdgeLabelsAreSourceRateOut) {
  auto t = parse_topology(kGraph);
  auto m = parse_metrics(metrics_json());
  Layout L = compute_layout(*t, &*m);
  for (const auto& e : L.edges) {
    EXPECT_DOUBLE_EQ(e.rate, m->find(e.from)->rate_out) << e.from;
    EXPECT_EQ(e.label, format_rate_short(e.rate));
    EXPECT_EQ(e.store_mediated, e.from == "commit");
  }
  EXPECT_EQ(format_rate(200), "200 msg/s");
  EXPECT_EQ(format_rate(0), "0 msg/s");
  EXPECT_EQ(format_rate(2.5), "2.5 msg/s");
  EXPECT_EQ(format_rate(12345), "12.3k msg/s");
  EXPECT_EQ(format_rate_short(12345), "12.3k/s");
  EXPECT_LT(edge_thickness(10), edge_thickness(10000));
  EXPECT_FLOAT_EQ(edge_thickness(0), 1.0f);
}

TEST(MonitorLayout, MergeSumsInstancesAndTotals) {
  auto t = parse_topology(kGraph);
  auto m = parse_metrics(metrics_json());
  MetricsSnapshot two = merge_metrics({&*m, &*m});
  const NodeMetrics* c = two.find("commit");
  ASSERT_NE(c, nullptr);
  EXPECT_DOUBLE_EQ(c->rate_in, 410);
  EXPECT_DOUBLE_EQ(c->queue_depth, 38);
  EXPECT_DOUBLE_EQ(c->busy_share, 0.95);
  EXPECT_EQ(c->errors, 2u);
  // Lag is not summed over instances (issue 14: checkpoints and lag came out doubled).
  EXPECT_DOUBLE_EQ(two.find("projection")->gauge("lag_events").value_or(0), 13);
  Totals tot = compute_totals(*t, *m);
  EXPECT_DOUBLE_EQ(tot.commands_per_second, 205);  // demo + http
  EXPECT_DOUBLE_EQ(tot.events_per_second, 200);    // commit's rateOut
  EXPECT_EQ(tot.bottleneck, "commit");
  EXPECT_EQ(tot.errors, 8u);
  ASSERT_EQ(tot.domain_totals.size(), 2u) << "the projection's figures but its position";
  EXPECT_DOUBLE_EQ(tot.domain_total("orders_confirmed"), 40);  // the domain's running totals
  EXPECT_DOUBLE_EQ(tot.domain_total("orders_rejected"), 7);
  Totals both = compute_totals(*t, two);
  EXPECT_DOUBLE_EQ(both.domain_total("orders_confirmed"), 80);  // summed over instances
}

ServerState reachable_state(const std::string& url) {
  ServerState s;
  s.url = url;
  s.topology = *parse_topology(kGraph);
  s.has_topology = true;
  s.metrics = *parse_metrics(metrics_json());
  s.has_metrics = true;
  s.reachable = s.ever_polled = true;
  return s;
}

TEST(MonitorLayout, DumpListsNodesFiguresAndBanner) {
  ServerState down;
  down.url = "http://127.0.0.1:9";
  down.ever_polled = true;
  down.unreachable_since = 1000;
  down.last_error = "Connection refused";
  Snapshot s = make_snapshot({reachable_state("http://127.0.0.1:1"), down}, 1030);
  ASSERT_EQ(s.banners.size(), 1u);
  EXPECT_NE(s.banners[0].find("http://127.0.0.1:9 unreachable since 00:16:40 UTC (30 s ago)"), std::string::npos)
      << s.banners[0];
  std::error_code ec;
  auto doc = web::json::value::parse(dump_layout_json(s), ec);
  ASSERT_FALSE(ec) << dump_layout_json(s);
  EXPECT_EQ(doc.at("graph").as_string(), "orders");
  EXPECT_EQ(doc.at("banners").as_array().size(), 1u);
  EXPECT_FALSE(doc.at("servers").as_array().at(1).at("reachable").as_bool());
  std::set<std::string> ids;
  for (const auto& n : doc.at("nodes").as_array()) {
    ids.insert(n.at("id").as_string());
    EXPECT_GT(n.at("rate").as_double(), 0) << n.serialize();
    EXPECT_TRUE(n.at("x").is_number());
    EXPECT_EQ(n.at("label").as_string(), n.at("id").as_string());
  }
  EXPECT_EQ(ids.size(), 8u);
  EXPECT_EQ(doc.at("edges").as_array().size(), 8u);
  EXPECT_EQ(doc.at("totals").at("bottleneck").as_string(), "commit");
}

TEST(MonitorLayout, DumpBreaksFiguresDownPerInstance) {
  ServerState a = reachable_state("http://127.0.0.1:1"), b = reachable_state("http://127.0.0.1:2");
  for (NodeMetrics& n : b.metrics.nodes) {  // b runs at three times a's rates
    n.rate_in *= 3;
    n.rate_out *= 3;
  }
  b.metrics.nodes[4].latency_us.p99 = 900;  // commit: a slower tail on b
  ServerState down;
  down.url = "http://127.0.0.1:3";
  down.ever_polled = true;
  down.unreachable_since = 1;
  Snapshot s = make_snapshot({a, b, down}, 10);
  ASSERT_EQ(s.server_totals.size(), 3u);
  EXPECT_DOUBLE_EQ(s.server_totals[0].commands_per_second, 205);
  EXPECT_DOUBLE_EQ(s.server_totals[1].commands_per_second, 615);
  EXPECT_DOUBLE_EQ(s.server_totals[2].commands_per_second, 0) << "unreachable";
  EXPECT_DOUBLE_EQ(s.totals.commands_per_second, 820) << "summed";

  std::error_code ec;
  auto doc = web::json::value::parse(dump_layout_json(s), ec);
  ASSERT_FALSE(ec) << dump_layout_json(s);
  EXPECT_DOUBLE_EQ(doc.at("servers").as_array().at(1).at("commandsPerSecond").as_double(), 615);
  const web::json::value* commit = nullptr;
  for (const auto& n : doc.at("nodes").as_array())
    if (n.at("id").as_string() == "commit") commit = &n;
  ASSERT_NE(commit, nullptr);
  EXPECT_DOUBLE_EQ(commit->at("rateIn").as_double(), 205 + 615);
  EXPECT_DOUBLE_EQ(commit->at("p99Us").as_double(), 900) << "latency percentiles: max over instances";
  const auto& inst = commit->at("instances").as_array();
  ASSERT_EQ(inst.size(), 3u);
  EXPECT_EQ(inst.at(0).at("url").as_string(), "http://127.0.0.1:1");
  EXPECT_DOUBLE_EQ(inst.at(0).at("rateIn").as_double(), 205);
  EXPECT_DOUBLE_EQ(inst.at(1).at("rateIn").as_double(), 615);
  EXPECT_DOUBLE_EQ(inst.at(0).at("p99Us").as_double(), 30);
  EXPECT_DOUBLE_EQ(inst.at(1).at("p99Us").as_double(), 900);
  EXPECT_FALSE(inst.at(2).at("hasMetrics").as_bool());
  EXPECT_FALSE(inst.at(2).has_field("rateIn"));
}

TEST(MonitorLayout, NoBannerBeforeFirstAttempt) {
  ServerState pending;
  pending.url = "http://x";
  Snapshot s = make_snapshot({pending}, 5);
  EXPECT_TRUE(s.banners.empty());
  EXPECT_FALSE(s.has_topology);
  EXPECT_TRUE(s.layout.nodes.empty());
}

TEST(MonitorPng, EncodesDecodableRgba) {
  const int w = 3, h = 2;
  std::vector<std::uint8_t> px(w * h * 4);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<std::uint8_t>(i * 7);
  auto png = encode_png(px.data(), w, h);
  ASSERT_GT(png.size(), 8u + 25 + 12);
  EXPECT_EQ(std::string(png.begin() + 1, png.begin() + 4), "PNG");
  EXPECT_EQ(std::string(png.begin() + 12, png.begin() + 16), "IHDR");
  EXPECT_EQ(png[19], w);
  EXPECT_EQ(png[23], h);
  // IDAT follows IHDR (8 + 25 bytes).
  const size_t idat = 33;
  const size_t len = (size_t{png[idat]} << 24) | (size_t{png[idat + 1]} << 16) | (size_t{png[idat + 2]} << 8) | png[idat + 3];
  EXPECT_EQ(std::string(png.begin() + idat + 4, png.begin() + idat + 8), "IDAT");
  std::vector<std::uint8_t> raw((w * 4 + 1) * h);
  uLongf raw_len = raw.size();
  ASSERT_EQ(uncompress(raw.data(), &raw_len, png.data() + idat + 8, static_cast<uLong>(len)), Z_OK);
  ASSERT_EQ(raw_len, raw.size());
  EXPECT_EQ(raw[0], 0);
  EXPECT_EQ(raw[1], px[0]);
  EXPECT_EQ(raw[w * 4 + 1 + 1], px[w * 4]);
  EXPECT_TRUE(encode_png(nullptr, 1, 1).empty());
}

TEST(MonitorPoller, BackoffDoublesUpToCeiling) {
  PollerOptions o;
  o.interval = std::chrono::milliseconds(1000);
  o.max_backoff = std::chrono::milliseconds(10000);
  EXPECT_EQ(backoff_delay(o, 0).count(), 1000);
  EXPECT_EQ(backoff_delay(o, 1).count(), 1000);
  EXPECT_EQ(backoff_delay(o, 2).count(), 2000);
  EXPECT_EQ(backoff_delay(o, 4).count(), 8000);
  EXPECT_EQ(backoff_delay(o, 5).count(), 10000);
  EXPECT_EQ(backoff_delay(o, 50).count(), 10000);
}

TEST(MonitorPoller, ClosedPortBecomesUnreachableWithoutBlockingState) {
  PollerOptions o;
  o.interval = std::chrono::milliseconds(100);
  o.timeout = std::chrono::milliseconds(300);
  Poller p("http://127.0.0.1:9", o);  // discard port: nothing listens on loopback
  p.start();
  for (int i = 0; i < 100 && p.attempts() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ServerState s = p.state();
  p.stop();
  EXPECT_TRUE(s.ever_polled);
  EXPECT_FALSE(s.reachable);
  EXPECT_GT(s.unreachable_since, 0);
  EXPECT_GE(s.consecutive_failures, 1);
  EXPECT_FALSE(s.last_error.empty());
}

// ---- reaching a server: token, CA file, 401/403 ----

std::string temp_file(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/orderflow-monitor-unit-" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(MonitorAccess, TokenFileIsItsFirstLineAlone) {
  std::string error;
  auto t = read_token_file(temp_file("tok1", "abc-DEF_123.~+/=\nsecond line ignored\n"), &error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(*t, "abc-DEF_123.~+/=");
  t = read_token_file(temp_file("tok2", "  tok-with-crlf\r\n"), &error);  // edited on Windows
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(*t, "tok-with-crlf");
  t = read_token_file(temp_file("tok3", "no-newline-at-end"), &error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(*t, "no-newline-at-end");
}

TEST(MonitorAccess, BadTokenFilesAreRefusedWithTheReason) {
  std::string error;
  EXPECT_FALSE(read_token_file("/nonexistent/orderflow-token", &error));
  EXPECT_NE(error.find("cannot open /nonexistent/orderflow-token"), std::string::npos) << error;
  EXPECT_FALSE(read_token_file(temp_file("empty", ""), &error));
  EXPECT_NE(error.find("the token is empty"), std::string::npos) << error;
  EXPECT_FALSE(read_token_file(temp_file("blankline", "\nsecret-on-line-two\n"), &error));
  EXPECT_NE(error.find("the token is empty"), std::string::npos) << error;
  // The server's own token file: "ROLE TOKEN" must not be sent as a token.
  EXPECT_FALSE(read_token_file(temp_file("server", "read 0123456789abcdef\n"), &error));
  EXPECT_NE(error.find("blank"), std::string::npos) << error;
  // A control character would split the Authorization header.
  EXPECT_FALSE(valid_token(std::string("abc\x01" "def"), &error));
  EXPECT_NE(error.find("control"), std::string::npos) << error;
  EXPECT_FALSE(valid_token("caf\xc3\xa9", &error));
  EXPECT_TRUE(valid_token("read-token-0123456789abcdef", &error));
}

TEST(MonitorAccess, CaFileMustHoldAPemCertificate) {
  EXPECT_NE(check_ca_file("/nonexistent/ca.pem").find("cannot open"), std::string::npos);
  const std::string junk = check_ca_file(temp_file("junk.pem", "not a certificate\n"));
  EXPECT_NE(junk.find("holds no PEM certificate"), std::string::npos) << junk;
}

// The one place HTTP answers are mapped: 401/403 are "unauthorized", other codes failures.
TEST(MonitorAccess, StatusMapping) {
  EXPECT_EQ(classify_status(200), AnswerKind::kOk);
  EXPECT_EQ(classify_status(401), AnswerKind::kUnauthorized);
  EXPECT_EQ(classify_status(403), AnswerKind::kUnauthorized);
  EXPECT_EQ(classify_status(404), AnswerKind::kFailed);
  EXPECT_EQ(classify_status(503), AnswerKind::kFailed);
  EXPECT_EQ(classify_status(204), AnswerKind::kFailed);
}

TEST(MonitorAccess, FailedHandshakeHintsAtTheCaFile) {
  EXPECT_EQ(describe_failure("https://h:1", "Error in SSL handshake"),
            "Error in SSL handshake (is the server's certificate signed by a CA in --ca-file or the system's store?)");
  EXPECT_EQ(describe_failure("http://h:1", "Connection refused"), "Connection refused");
}

TEST(MonitorAccess, UnauthorizedServerGetsItsOwnBanner) {
  ServerState refused;
  refused.url = "https://127.0.0.1:9";
  refused.ever_polled = true;
  refused.unauthorized = true;
  refused.unreachable_since = 1000;
  refused.last_error = "GET /api/v1/graph: HTTP 401 (no token sent)";
  Snapshot s = make_snapshot({refused}, 1005);
  ASSERT_EQ(s.banners.size(), 1u);
  EXPECT_NE(s.banners[0].find("https://127.0.0.1:9 unauthorized: check --token-file or ORDERFLOW_MONITOR_TOKEN "
                              "(since 00:16:40 UTC, 5 s ago): GET /api/v1/graph: HTTP 401"),
            std::string::npos)
      << s.banners[0];
  EXPECT_EQ(s.banners[0].find("unreachable"), std::string::npos) << s.banners[0];
  std::error_code ec;
  auto doc = web::json::value::parse(dump_layout_json(s), ec);
  ASSERT_FALSE(ec);
  EXPECT_TRUE(doc.at("servers").as_array().at(0).at("unauthorized").as_bool());
  EXPECT_FALSE(doc.at("servers").as_array().at(0).at("reachable").as_bool());
}

}  // namespace
}  // namespace orderflow::monitor

namespace orderflow::monitor {
namespace {

// Two instances' histograms merge exactly: 90 fast samples on one and 10 slow on the other
// give a merged p99 from the slow bucket and a p50 from the fast one, which neither
// instance's own percentiles (nor their maximum) would give.
TEST(MonitorMerge, HistogramsMergeExactlyAndFallBackToMaxWithoutThem) {
  MetricsSnapshot a, b;
  NodeMetrics n;
  n.id = "commit";
  n.latency_us.count = 90;
  n.latency_us.mean = 10;
  n.latency_us.p50 = n.latency_us.p99 = n.latency_us.max = 10;
  n.latency_us.buckets = {{10, 90}};
  a.nodes.push_back(n);
  n.latency_us.count = 10;
  n.latency_us.mean = 1000;
  n.latency_us.p50 = n.latency_us.p99 = n.latency_us.max = 1000;
  n.latency_us.buckets = {{1000, 10}};
  b.nodes.push_back(n);
  MetricsSnapshot m = merge_metrics({&a, &b});
  ASSERT_EQ(m.nodes.size(), 1u);
  const LatencyUs& l = m.nodes[0].latency_us;
  EXPECT_TRUE(l.exact);
  EXPECT_DOUBLE_EQ(l.count, 100);
  EXPECT_DOUBLE_EQ(l.mean, (90 * 10 + 10 * 1000) / 100.0);
  EXPECT_DOUBLE_EQ(l.p50, 10) << "the max over instances would say 1000";
  EXPECT_DOUBLE_EQ(l.p99, 1000);
  ASSERT_EQ(l.buckets.size(), 2u);

  b.nodes[0].latency_us.buckets.clear();  // an older server: percentiles only
  MetricsSnapshot old = merge_metrics({&a, &b});
  EXPECT_FALSE(old.nodes[0].latency_us.exact);
  EXPECT_DOUBLE_EQ(old.nodes[0].latency_us.p50, 1000) << "upper bound: max over instances";
}

}  // namespace
}  // namespace orderflow::monitor
