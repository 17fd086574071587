// What an operator at the monitor needs to tell what is wrong (issue 14): client errors apart
// from node errors, lag in the node's colour and on the canvas, instances identified and not
// summed where a sum is wrong, the queue depth in the table, an unmeasured busy share said so.
#include <gtest/gtest.h>

#include <utility>  // before cpprest (Boost.Asio with C++20)

#include <cpprest/json.h>

#include <string>

#include "layout.h"
#include "snapshot.h"
#include "ui.h"

namespace orderflow::monitor {
namespace {

// A small orders graph: two sources, commit, the change feed and one subscriber.
const char* kGraph = R"({"name":"orders","service":"","instance":"%s","nodes":[
 {"id":"demo","kind":"demo_source","service":"","input":"none","output":"command","source":true,"params":{}},
 {"id":"http","kind":"http_source","service":"","input":"none","output":"command","source":true,"params":{}},
 {"id":"commit","kind":"commit","service":"","input":"command","output":"committed","source":false,"params":{}},
 {"id":"feed","kind":"change_feed","service":"","input":"committed","output":"event","source":false,"params":{}},
 {"id":"projection","kind":"projection","service":"","input":"event","output":"none","source":false,"params":{}}],
"edges":[
 {"from":"demo","to":"commit","type":"command","storeMediated":false},
 {"from":"http","to":"commit","type":"command","storeMediated":false},
 {"from":"commit","to":"feed","type":"committed","storeMediated":true},
 {"from":"feed","to":"projection","type":"event","storeMediated":false}]})";

std::string graph_json(const std::string& instance) {
  std::string g = kGraph;
  g.replace(g.find("%s"), 2, instance);
  return g;
}

std::string node(const std::string& id, double rate, double busy_seconds, double busy_share, double queue,
                 unsigned errors, const std::string& last_error, const std::string& gauges = "{}") {
  const std::string kind = id == "projection" ? "projection" : "k";  // its other figures are totals
  return R"({"id":")" + id + R"(","kind":")" + kind + R"(","in":100,"out":100,"errors":)" + std::to_string(errors) +
         R"(,"busySeconds":)" + std::to_string(busy_seconds) + R"(,"queueDepth":)" + std::to_string(queue) +
         R"(,"rateIn":)" + std::to_string(rate) + R"(,"rateOut":)" + std::to_string(rate) + R"(,"busyShare":)" +
         std::to_string(busy_share) + R"(,"latencyUs":{"count":0},"lastError":")" + last_error +
         R"(","gauges":)" + gauges + "}";
}

// One instance's metrics: `rate` commands/s from demo, http's 4xx count, the projection's lag.
std::string metrics_json(double rate, unsigned http_errors, const std::string& http_last_error, double checkpoint,
                         double lag_events, double lag_seconds) {
  char gauges[200];
  std::snprintf(gauges, sizeof gauges, R"({"checkpoint":%.0f,"lag_events":%.0f,"lag_seconds":%g,"orders_confirmed":10})",
                checkpoint, lag_events, lag_seconds);
  return R"({"uptimeSeconds":50,"nodes":[)" + node("demo", rate, 1, 0.1, 0, 0, "") + "," +
         node("http", 0, 0.5, 0.01, 0, http_errors, http_last_error) + "," + node("commit", rate, 2, 0.4, 7, 0, "") +
         "," + node("feed", rate, 0, 0, 0, 0, "") + "," + node("projection", rate, 1, 0.2, 0, 0, "", gauges) + "]}";
}

ServerState state(const std::string& url, const std::string& instance, const std::string& metrics) {
  ServerState s;
  s.url = url;
  std::string why;
  auto t = parse_topology(graph_json(instance), &why);
  EXPECT_TRUE(t) << why;
  auto m = parse_metrics(metrics, &why);
  EXPECT_TRUE(m) << why;
  if (t) s.topology = *t;
  if (m) s.metrics = *m;
  s.has_topology = s.has_metrics = s.reachable = s.ever_polled = true;
  return s;
}

const LayoutNode& laid(const Snapshot& s, const std::string& id) {
  const int i = s.layout.find(id);
  EXPECT_GE(i, 0) << id;
  return s.layout.nodes[static_cast<size_t>(i < 0 ? 0 : i)];
}

TEST(MonitorOps, ClientErrorTextsAreRecognised) {
  EXPECT_TRUE(is_client_error_text("400 invalid JSON at 1:2"));
  EXPECT_TRUE(is_client_error_text("413 body too large"));
  EXPECT_TRUE(is_client_error_text("415 content type 'text/plain'"));
  EXPECT_FALSE(is_client_error_text("504 deadline passed"));
  EXPECT_FALSE(is_client_error_text("unavailable: overloaded"));
  EXPECT_FALSE(is_client_error_text("4000 things"));
  EXPECT_FALSE(is_client_error_text(""));
}

// The server counts 400/413/415 answers in the http source's "errors": the poller attributes the
// errors that arrive while "lastError" names a 4xx answer to the client.
TEST(MonitorOps, ClientErrorsAreSplitFromNodeErrorsAcrossPolls) {
  ErrorSplit split;
  auto poll = [&](unsigned errors, const std::string& last) {
    auto m = parse_metrics(metrics_json(100, errors, last, 0, 0, 0));
    EXPECT_TRUE(m);
    split_errors(split, *m);
    return *m->find("http");
  };
  NodeMetrics h = poll(8, "400 invalid JSON");
  EXPECT_EQ(h.client_errors, 8u);
  EXPECT_EQ(h.node_errors(), 0u) << "eight 400s are not the node's errors";
  EXPECT_FALSE(h.client_errors_exact);
  h = poll(10, "504 deadline passed");
  EXPECT_EQ(h.client_errors, 8u);
  EXPECT_EQ(h.node_errors(), 2u);
  h = poll(13, "413 body too large");
  EXPECT_EQ(h.client_errors, 11u);
  EXPECT_EQ(h.node_errors(), 2u);
  h = poll(13, "413 body too large");  // nothing new
  EXPECT_EQ(h.client_errors, 11u);
  h = poll(1, "internal: boom");  // the server restarted: its count started over
  EXPECT_EQ(h.client_errors, 0u);
  EXPECT_EQ(h.node_errors(), 1u);

  // Totals and the canvas show the two apart.
  ErrorSplit fresh;  // a newly started monitor
  ServerState st = state("http://a", "", metrics_json(100, 9, "400 bad", 0, 0, 0));
  split_errors(fresh, st.metrics);
  const Snapshot s = make_snapshot({st}, 10);
  EXPECT_EQ(s.totals.errors, 0u);
  EXPECT_EQ(s.totals.client_errors, 9u);
  EXPECT_EQ(laid(s, "http").errors, 0u);
  EXPECT_EQ(laid(s, "http").client_errors, 9u);
  bool line = false;
  for (const std::string& l : laid(s, "http").lines) line = line || l == "err 0  4xx 9";
  EXPECT_TRUE(line) << "the canvas box says which errors are whose";
}

TEST(MonitorOps, ClientErrorsFromTheServerAreTakenAsTheyAre) {
  std::string json = metrics_json(100, 2, "400 bad", 0, 0, 0);
  json.replace(json.find(R"("errors":2)"), 10, R"("errors":2,"clientErrors":5)");
  auto m = parse_metrics(json);
  ASSERT_TRUE(m);
  ErrorSplit split;
  split_errors(split, *m);
  const NodeMetrics* h = m->find("http");
  EXPECT_TRUE(h->client_errors_exact);
  EXPECT_EQ(h->client_errors, 5u);
  EXPECT_EQ(h->node_errors(), 2u) << "clientErrors are not part of errors";
}

TEST(MonitorOps, LagColoursTheNodeWithThresholds) {
  auto colour = [](double lag_seconds, const HealthThresholds& th = {}) {
    const Snapshot s = make_snapshot({state("http://a", "", metrics_json(100, 0, "", 5, 40, lag_seconds))}, 1, th);
    return laid(s, "projection").health;
  };
  EXPECT_EQ(colour(0.2), Health::kGreen);
  EXPECT_EQ(colour(2), Health::kYellow) << "default warn at 1 s";
  EXPECT_EQ(colour(12), Health::kRed) << "default bad at 10 s";
  HealthThresholds relaxed;
  relaxed.lag_seconds_yellow = 5;
  relaxed.lag_seconds_red = 30;
  EXPECT_EQ(colour(2, relaxed), Health::kGreen);
  EXPECT_EQ(colour(12, relaxed), Health::kYellow);

  // On the canvas: events and seconds in the box.
  const Snapshot s = make_snapshot({state("http://a", "", metrics_json(100, 0, "", 5, 1234, 2.5))}, 1);
  const LayoutNode& p = laid(s, "projection");
  EXPECT_TRUE(p.has_lag);
  EXPECT_DOUBLE_EQ(p.lag_events, 1234);
  EXPECT_DOUBLE_EQ(p.lag_seconds, 2.5);
  EXPECT_EQ(p.lines.back(), "lag 1234 ev 2.50 s");
  EXPECT_FALSE(laid(s, "commit").has_lag);

  // A Kafka source reports consumer_lag (messages) and no seconds: coloured by events.
  NodeMetrics k;
  k.id = "kafka";
  k.gauges = {{"consumer_lag", 5000}};
  EXPECT_TRUE(k.has_lag());
  EXPECT_EQ(node_health(k), Health::kYellow);
  k.gauges = {{"consumer_lag", 200000}};
  EXPECT_EQ(node_health(k), Health::kRed);
  k.gauges = {{"consumer_lag", 10}};
  EXPECT_EQ(node_health(k), Health::kGreen);
}

// Two instances: rates and counters add up; a checkpoint or a lag of two views of one log does not.
TEST(MonitorOps, InstancesAreSummedOnlyWhereASumMeansSomething) {
  const ServerState a = state("http://a", "orders-a", metrics_json(100, 0, "", 8000, 13, 0.5));
  const ServerState b = state("http://b", "orders-b", metrics_json(300, 0, "", 8200, 40, 3));
  const Snapshot s = make_snapshot({a, b}, 10);
  EXPECT_DOUBLE_EQ(s.totals.commands_per_second, 400);
  EXPECT_DOUBLE_EQ(s.totals.domain_total("orders_confirmed"), 20) << "a counter: summed";
  const NodeMetrics* p = s.metrics.find("projection");
  ASSERT_NE(p, nullptr);
  EXPECT_DOUBLE_EQ(p->gauge("checkpoint").value_or(0), 8200) << "not 16200, which is no position";
  EXPECT_DOUBLE_EQ(p->lag_events(), 40);
  EXPECT_DOUBLE_EQ(p->lag_seconds().value_or(0), 3);
  EXPECT_EQ(laid(s, "projection").health, Health::kYellow) << "the lagging instance colours the node";
  EXPECT_DOUBLE_EQ(laid(s, "commit").queue_depth, 14) << "queued messages of both: summed";
  EXPECT_EQ(merge_rule("checkpoint"), MergeRule::kMax);
  EXPECT_EQ(merge_rule("consumer_lag"), MergeRule::kMax);
  EXPECT_EQ(merge_rule("in_flight"), MergeRule::kSum);
  EXPECT_EQ(merge_rule("request_units_total"), MergeRule::kSum);

  std::error_code ec;
  const auto doc = web::json::value::parse(dump_layout_json(s), ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(doc.at("servers").at(0).at("instance").as_string(), "orders-a");
  EXPECT_EQ(doc.at("servers").at(1).at("label").as_string(), "orders-b");
  for (const auto& n : doc.at("nodes").as_array()) {
    if (n.at("id").as_string() != "projection") continue;
    EXPECT_DOUBLE_EQ(n.at("instances").at(0).at("checkpoint").as_double(), 8000);
    EXPECT_DOUBLE_EQ(n.at("instances").at(1).at("checkpoint").as_double(), 8200);
    EXPECT_DOUBLE_EQ(n.at("instances").at(0).at("lagSeconds").as_double(), 0.5);
    EXPECT_DOUBLE_EQ(n.at("lagSeconds").as_double(), 3);
  }
}

// Two URLs of one process (the issue's "400 commands/s" from 200): one instance id, counted once.
TEST(MonitorOps, TwoUrlsOfOneInstanceAreCountedOnce) {
  const std::string m = metrics_json(200, 0, "", 8000, 13, 0.5);
  const Snapshot s = make_snapshot(
      {state("http://127.0.0.1:1", "orders-a", m), state("http://localhost:1", "orders-a", m)}, 10);
  ASSERT_EQ(s.duplicate_of.size(), 2u);
  EXPECT_EQ(s.duplicate_of[0], -1);
  EXPECT_EQ(s.duplicate_of[1], 0);
  EXPECT_DOUBLE_EQ(s.totals.commands_per_second, 200);
  EXPECT_DOUBLE_EQ(s.totals.domain_total("orders_confirmed"), 10);
  EXPECT_DOUBLE_EQ(laid(s, "commit").queue_depth, 7);

  // Without instance ids URLs are all the monitor has: two servers.
  const Snapshot anon = make_snapshot({state("http://127.0.0.1:1", "", m), state("http://127.0.0.1:2", "", m)}, 10);
  EXPECT_EQ(anon.duplicate_of[1], -1);
  EXPECT_DOUBLE_EQ(anon.totals.commands_per_second, 400);
  EXPECT_EQ(anon.servers[0].label(), "http://127.0.0.1:1");

  // The instance id of the metrics document wins over the graph's (a server that sends both).
  ServerState st = state("http://x", "from-graph", m);
  st.metrics.instance = "from-metrics";
  EXPECT_EQ(st.instance_id(), "from-metrics");
}

TEST(MonitorOps, BusyShareWithoutBusyTimeIsNotMeasured) {
  const Snapshot s = make_snapshot({state("http://a", "", metrics_json(100, 0, "", 0, 0, 0))}, 1);
  EXPECT_FALSE(laid(s, "feed").busy_measured) << "messages passed, no busy time reported";
  EXPECT_TRUE(laid(s, "commit").busy_measured);
  EXPECT_EQ(laid(s, "feed").lines.at(2), "busy n/m q 0");
  NodeMetrics idle;
  EXPECT_TRUE(idle.busy_measured()) << "no traffic: 0 % is the truth";
}

// The table's depth column is the queue depth (it was the layout column before).
TEST(MonitorOps, TableSortsByQueueDepthAndLag) {
  std::string json = metrics_json(100, 0, "", 5, 40, 2);
  const Snapshot s = make_snapshot({state("http://a", "", json)}, 1);
  UiState ui;
  ui.sort_column = 5;
  ui.sort_descending = true;
  auto order = table_order(s, ui);
  ASSERT_FALSE(order.empty());
  EXPECT_EQ(s.layout.nodes[order[0]].id, "commit") << "queue depth 7, the only queue";
  ui.sort_column = 7;
  order = table_order(s, ui);
  EXPECT_EQ(s.layout.nodes[order[0]].id, "projection") << "the only lag";
}

}  // namespace
}  // namespace orderflow::monitor
