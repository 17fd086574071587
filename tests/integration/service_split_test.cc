// `orderflow serve FILE --service NAME`: each service builds only its own nodes (and the
// nodes without a service), and two services on the same stores make one pipeline: the
// command side writes, the read side follows through the change feed. The stores here
// are in-memory ones shared by two pipelines of one process, standing in for two
// processes on a shared Cosmos DB.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <chrono>
#include <thread>

#include "connectors/stores.h"
#include "tests/support/kinds.h"
#include "domain/orders/orders.h"
#include "tests/support/invariants.h"

namespace orderflow {
namespace {

constexpr const char* kSplitGraph = R"(graph: split
stores:
  events: {kind: memory}
  snapshots: {kind: memory}
nodes:
  - {id: demo, kind: demo_source, service: api, params: {rate: 0}}
  - {id: route, kind: route, service: api}
  - {id: lanes, kind: command_lane, service: api, params: {events: events, snapshots: snapshots}}
  - {id: commit, kind: commit, service: api, params: {events: events}}
  - {id: saga_feed, kind: change_feed, service: api, params: {events: events, poll_ms: 5}}
  - {id: saga, kind: saga, service: api}
  - {id: view_feed, kind: change_feed, service: views, params: {events: events, poll_ms: 5}}
  - {id: projection, kind: projection, service: views, params: {snapshots: snapshots}}
edges:
  - demo -> route
  - route -> lanes
  - lanes -> commit
  - commit -> saga_feed
  - saga_feed -> saga
  - saga -> route
  - commit -> view_feed
  - view_feed -> projection
)";

v1::Command command(const std::string& id) {
  v1::Command c;
  c.set_command_id(id);
  return c;
}

// One line of one S1 at 1.00.
v1::Command place_order(const std::string& id, const std::string& order_id) {
  auto place = command(id);
  auto* po = place.mutable_place_order();
  po->set_order_id(order_id);
  po->set_customer_id("c");
  auto* line = po->add_lines();
  line->set_sku("S1");
  line->set_quantity(1);
  line->set_unit_price_cents(100);
  return place;
}

// kSplitGraph, loaded and validated (defaults filled in).
graph::GraphDef split_graph() {
  graph::KindRegistry registry;
  register_standard_kinds(registry);
  auto loaded = graph::load_graph_string(kSplitGraph);
  EXPECT_TRUE(loaded.ok());
  std::vector<graph::Diagnostic> diags;
  EXPECT_TRUE(graph::validate(loaded.graph, registry, diags)) << (diags.empty() ? "" : diags.front().to_string());
  return loaded.graph;
}

TEST(ServiceSplit, EachServiceBuildsItsNodesAndTheyMeetThroughTheStores) {
  graph::KindRegistry registry;
  register_standard_kinds(registry);
  auto loaded = graph::load_graph_string(kSplitGraph);
  ASSERT_TRUE(loaded.ok());
  std::vector<graph::Diagnostic> diags;
  ASSERT_TRUE(graph::validate(loaded.graph, registry, diags)) << diags.front().to_string();
  connectors::StoreSet stores(loaded.graph, "");

  BuildOptions api_options, views_options;
  api_options.threads = views_options.threads = 2;
  api_options.service = "api";
  views_options.service = "views";
  auto api = build_pipeline(loaded.graph, test_support::standard_kinds(), stores, api_options);
  ASSERT_TRUE(api) << api.status().to_string();
  auto views = build_pipeline(loaded.graph, test_support::standard_kinds(), stores, views_options);
  ASSERT_TRUE(views) << views.status().to_string();

  for (const char* id : {"route", "lanes", "commit", "saga_feed", "saga"}) {
    EXPECT_NE(api->pipeline->find(id), nullptr) << id;
    EXPECT_EQ(views->pipeline->find(id), nullptr) << id;
  }
  for (const char* id : {"view_feed", "projection"}) {
    EXPECT_EQ(api->pipeline->find(id), nullptr) << id;
    EXPECT_NE(views->pipeline->find(id), nullptr) << id;
  }
  EXPECT_NE(api->sink, nullptr);
  EXPECT_EQ(views->sink, nullptr) << "the read side takes no commands";

  // GET /api/v1/graph of each process: the whole graph, each node marked running exactly
  // when that process built it, and the process's own service named.
  for (const auto& [service, built] : {std::pair{"api", &*api}, std::pair{"views", &*views}}) {
    google::protobuf::Struct topo;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(graph::to_json(loaded.graph, registry, service), &topo).ok());
    EXPECT_EQ(topo.fields().at("service").string_value(), service);
    const auto& nodes = topo.fields().at("nodes").list_value().values();
    EXPECT_EQ(nodes.size(), loaded.graph.nodes.size()) << "every declared node is listed";
    for (const auto& n : nodes) {
      const std::string id = n.struct_value().fields().at("id").string_value();
      EXPECT_EQ(n.struct_value().fields().at("running").bool_value(), built->pipeline->find(id) != nullptr)
          << service << ": " << id;
    }
  }

  ASSERT_TRUE(api->pipeline->start());
  ASSERT_TRUE(views->pipeline->start());
  std::atomic<int> pending{0}, failed{0};
  auto submit = [&](v1::Command c) {
    ++pending;
    auto env = make_envelope(std::move(c), [&](const Outcome& o) {
      if (!o.status.is_ok() && o.status.code() != StatusCode::kRejected) ++failed;
      --pending;
    });
    ASSERT_TRUE(api->sink->submit(env));
  };
  auto stock = command("stock-1");
  stock.mutable_add_stock()->set_sku("S1");
  stock.mutable_add_stock()->set_quantity(5);
  submit(stock);
  for (int i = 0; i < 20; ++i) submit(place_order("place-" + std::to_string(i), "o" + std::to_string(i)));

  // The saga (api) settles every order; the projection (views) catches up with the log.
  ChangeFeed& feed = **stores.change_feed("events");
  SnapshotStore& snapshots = **stores.snapshot_store("snapshots");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  auto settled = [&] {
    if (pending.load() != 0 || api->sink->in_flight() != 0) return false;
    const uint64_t head = feed.head();
    if (*feed.load_checkpoint("saga") != head || *feed.load_checkpoint("projection") != head) return false;
    for (int i = 0; i < 20; ++i) {
      auto snap = snapshots.get(orders::order_stream("o" + std::to_string(i)));
      v1::StreamState st;
      if (!snap || snap->version == 0 || !st.ParseFromString(snap->state)) return false;
      const auto status = st.order().status();
      if (status != v1::ORDER_STATUS_CONFIRMED && status != v1::ORDER_STATUS_REJECTED) return false;
    }
    return true;
  };
  while (!settled() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(settled()) << "head " << feed.head();
  EXPECT_EQ(failed.load(), 0);

  // The projection written by the views service agrees with the log the api service wrote:
  // 5 units of stock, 20 orders of one unit, so exactly 5 confirmed.
  testing::StoreFold fold;
  ASSERT_NO_FATAL_FAILURE(testing::check_store_invariants(feed, snapshots, &fold));
  EXPECT_EQ(fold.confirmed, 5u);
  EXPECT_EQ(fold.rejected, 15u);

  views->pipeline->shutdown(std::chrono::seconds(10));
  api->pipeline->shutdown(std::chrono::seconds(10));
}

TEST(ServiceSplit, AServiceCutThroughAnInProcessEdgeIsRefused) {
  graph::KindRegistry registry;
  register_standard_kinds(registry);
  std::string text = kSplitGraph;
  // The saga moves to the read side, but it hands its commands to the api's route in-process.
  const std::string from = "{id: saga, kind: saga, service: api}";
  text.replace(text.find(from), from.size(), "{id: saga, kind: saga, service: views}");
  auto loaded = graph::load_graph_string(text);
  ASSERT_TRUE(loaded.ok());
  std::vector<graph::Diagnostic> diags;
  EXPECT_FALSE(graph::validate(loaded.graph, registry, diags));
  ASSERT_FALSE(diags.empty());
  bool named = false;
  for (const auto& d : diags)
    named = named || d.message.find("edge saga -> route joins service 'views' to service 'api'") != std::string::npos ||
            d.message.find("edge saga_feed -> saga joins service 'api' to service 'views'") != std::string::npos;
  EXPECT_TRUE(named) << diags.front().to_string();
}

}  // namespace
}  // namespace orderflow

namespace orderflow {
namespace {

// A refused saga command (its id taken by another stream's command, which a client can no
// longer send but an in-process caller or an old store can hold) is final for the saga: its
// feed moves on and later orders are still settled, instead of the batch being retried for ever.
TEST(SagaRefusals, ARefusedSagaCommandDoesNotStallTheSaga) {
  const graph::GraphDef def = split_graph();
  connectors::StoreSet stores(def, "");
  BuildOptions options;
  options.threads = 2;
  auto built = build_pipeline(def, test_support::standard_kinds(), stores, options);
  ASSERT_TRUE(built) << built.status().to_string();
  ASSERT_TRUE(built->pipeline->start());
  auto run = [&](v1::Command c) {
    std::promise<Status> done;
    auto f = done.get_future();
    ASSERT_TRUE(built->sink->submit(make_envelope(std::move(c), [&](const Outcome& o) { done.set_value(o.status); })));
    ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
    EXPECT_TRUE(f.get());
  };
  auto stock = command("stock-1");
  stock.mutable_add_stock()->set_sku("S1");
  stock.mutable_add_stock()->set_quantity(5);
  run(stock);
  // Takes the id of the saga's ReserveStock for order o1's line S1, on another stream.
  auto squat = command("saga/order-o1/1/reserve/S1");
  squat.mutable_add_stock()->set_sku("S2");
  squat.mutable_add_stock()->set_quantity(1);
  run(squat);
  for (const char* order : {"o1", "o2"}) run(place_order(std::string("place-") + order, order));
  // o2 is confirmed (so the saga got past o1's refused reservation) and the saga's
  // checkpoint reaches the head.
  ChangeFeed& feed = **stores.change_feed("events");
  EventStore& events = **stores.event_store("events");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  bool confirmed = false;
  while (!confirmed && std::chrono::steady_clock::now() < deadline) {
    std::vector<RecordedEvent> o2;
    ASSERT_TRUE(events.read_stream(orders::order_stream("o2"), 1, &o2));
    for (const auto& r : o2) {
      v1::Event e;
      confirmed = confirmed || (e.ParseFromString(r.payload) && e.kind_case() == v1::Event::kOrderConfirmed);
    }
    if (!confirmed) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(confirmed) << "the saga stalled on o1's refused ReserveStock";
  while (*feed.load_checkpoint("saga") != feed.head() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(*feed.load_checkpoint("saga"), feed.head());
  EXPECT_GE(built->pipeline->find("saga")->probe().errors(), 1u) << "the refusal is counted";
  built->pipeline->shutdown();
}

}  // namespace
}  // namespace orderflow
