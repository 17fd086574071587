#include "nodes/builder.h"

#include "nodes/nodes.h"

namespace orderflow {

using graph::KindSpec;
using graph::ParamSpec;
using graph::ParamType;
using graph::PortType;

namespace {

ParamSpec p_int(std::string name, std::string def, int64_t min, int64_t max, std::string help) {
  ParamSpec p;
  p.name = std::move(name);
  p.type = ParamType::kInt;
  p.default_value = std::move(def);
  p.min = min;
  p.max = max;
  p.help = std::move(help);
  return p;
}
ParamSpec p_store(std::string name, std::string help) {
  ParamSpec p;
  p.name = std::move(name);
  p.type = ParamType::kStoreRef;
  p.required = true;
  p.help = std::move(help);
  return p;
}
ParamSpec p_string(std::string name, std::string def, std::string help) {
  ParamSpec p;
  p.name = std::move(name);
  p.default_value = std::move(def);
  p.help = std::move(help);
  return p;
}

ParamSpec p_enum(std::string name, std::string def, std::vector<std::string> choices, std::string help) {
  ParamSpec p;
  p.name = std::move(name);
  p.type = ParamType::kEnum;
  p.default_value = std::move(def);
  p.choices = std::move(choices);
  p.help = std::move(help);
  return p;
}

KindSpec kind(std::string name, PortType in, PortType out, bool source, std::vector<ParamSpec> params,
              std::string help) {
  KindSpec k;
  k.name = std::move(name);
  k.input = in;
  k.output = out;
  k.is_source = source;
  k.params = std::move(params);
  k.help = std::move(help);
  return k;
}

}  // namespace

void register_node_kinds(graph::KindRegistry& r) {
  r.add_node_kind(kind("http_source", PortType::kNone, PortType::kCommand, true,
                       {p_string("listen", "127.0.0.1:8080", "host:port of the HTTP API"),
                        p_int("max_body_bytes", "65536", 256, 16777216, "larger bodies get 413"),
                        p_int("command_timeout_ms", "30000", 10, 3600000,
                              "a command's deadline (a client may ask for less with X-Timeout-Ms)")},
                       "HTTP API: POST /api/v1/commands and the query endpoints"));
  ParamSpec brokers = p_string("brokers", "", "host:port[,host:port], or mock:N for an in-process mock cluster");
  brokers.required = true;
  r.add_node_kind(kind("kafka_source", PortType::kNone, PortType::kCommand, true,
                       {brokers, p_string("topics", "orders.commands", "command topics, comma-separated"),
                        p_string("group", "orderflow", "consumer group id"),
                        p_string("dead_letter_topic", "orders.commands.dlq", "undecodable or malformed messages"),
                        p_int("max_message_bytes", "1048576", 64, 104857600, "larger messages are dead-lettered"),
                        p_int("max_in_flight", "5000", 1, 10000000, "commands submitted, not yet finished; more pauses"),
                        p_int("commit_interval_ms", "200", 1, 60000, "how often finished offsets are committed"),
                        p_int("partitions", "8", 1, 1024, "partitions of topics created on a mock cluster"),
                        p_string("properties", "", "librdkafka properties k=v,k=v; ${ENV} expands")},
                       "Kafka consumer group: commands in, offsets committed after durable commit"));
  r.add_node_kind(kind("kafka_sink", PortType::kEvent, PortType::kNone, false,
                       {brokers, p_string("topic", "{category}.events",
                                          "topic per event; {category} = orders or inventory"),
                        p_enum("format", "json", {"json", "binary"}, "value encoding of events"),
                        p_int("partitions", "8", 1, 1024, "partitions of topics created on a mock cluster"),
                        p_string("properties", "", "librdkafka properties k=v,k=v; ${ENV} expands")},
                       "publishes committed events, key = stream, idempotent producer"));
  r.add_node_kind(kind("demo_source", PortType::kNone, PortType::kCommand, true,
                       {p_int("rate", "0", 0, 10000000, "commands per second; 0 = off"),
                        p_int("skus", "200", 1, 1000000, "distinct SKUs"),
                        p_int("seed", "42", INT64_MIN, INT64_MAX, "random seed")},
                       "synthetic orders, restocks, cancels and shipments"));
  r.add_node_kind(kind("route", PortType::kCommand, PortType::kRouted, false,
                       {p_int("lanes", "8", 1, 256, "serial command lanes"),
                        p_int("max_in_flight", "20000", 1, 10000000, "admitted, unfinished commands")},
                       "admission limit and stream-hash routing onto lanes"));
  r.add_node_kind(kind("command_lane", PortType::kRouted, PortType::kDecision, false,
                       {p_store("events", "event store"), p_store("snapshots", "snapshot store"),
                        p_int("cache_streams", "100000", 1, 100000000, "cached stream states per lane")},
                       "load state, decide, emit events; serial per lane"));
  r.add_node_kind(kind("commit", PortType::kDecision, PortType::kCommitted, false,
                       {p_store("events", "event store"),
                        p_int("max_batch", "1000", 1, 100000, "commands per durable write"),
                        p_int("max_retries", "8", 0, 1000, "re-decisions after a version conflict")},
                       "group commit with optimistic concurrency and idempotency"));
  r.add_node_kind(kind("change_feed", PortType::kCommitted, PortType::kEvent, false,
                       {p_store("events", "event store"),
                        p_int("batch", "512", 1, 100000, "events per delivery"),
                        p_int("poll_ms", "50", 1, 60000, "wait for new events at most this long")},
                       "committed events to each subscriber from its checkpoint"));
  r.add_node_kind(kind("projection", PortType::kEvent, PortType::kNone, false,
                       {p_store("snapshots", "snapshot store"),
                        p_int("flush_ms", "25", 1, 60000,
                              "a state is written at most this long after its event arrives; more coalesces "
                              "writes of busy streams (fewer Cosmos DB requests), reads lag more")},
                       "current state into the snapshot store"));
  r.add_node_kind(kind("saga", PortType::kEvent, PortType::kCommand, false, {},
                       "reservation process manager"));

  KindSpec rocks;
  rocks.name = "rocksdb";
  ParamSpec path = p_string("path", "", "directory, relative to --data-dir");
  path.required = true;
  ParamSpec sync;
  sync.name = "sync";
  sync.type = ParamType::kBool;
  sync.default_value = "true";
  sync.help = "fsync every group commit";
  rocks.params = {path, sync};
  r.add_store_kind(rocks);
  KindSpec mem;
  mem.name = "memory";
  r.add_store_kind(mem);

  KindSpec cosmos;
  cosmos.name = "cosmos";
  ParamSpec endpoint = p_string("endpoint", "", "https://ACCOUNT.documents.azure.com:443 (http:// only for a local stand-in)");
  endpoint.required = true;
  ParamSpec database = p_string("database", "", "database id");
  database.required = true;
  ParamSpec container = p_string("container", "", "container id (events: partitioned by /streamId; snapshots: by /id)");
  container.required = true;
  ParamSpec create;
  create.name = "create_if_missing";
  create.type = ParamType::kBool;
  create.default_value = "true";
  create.help = "create the database and containers when missing";
  cosmos.params = {endpoint, database, container,
                   p_string("key_env", "COSMOS_KEY", "environment variable holding the account's master key"),
                   p_string("ca_file", "", "PEM file of a CA to trust (emulators); default: the system store"),
                   p_string("leases_container", "leases", "container of the change-feed lease documents"),
                   create,
                   p_int("parallelism", "16", 1, 256, "concurrent requests of one group commit"),
                   p_int("lease_expiry_ms", "10000", 100, 3600000, "a lease not renewed this long is free"),
                   p_int("max_item_count", "100", 1, 10000, "change-feed page size"),
                   p_int("checkpoint_interval_ms", "1000", 0, 600000,
                         "change-feed checkpoints reach the lease documents at most this often"),
                   p_int("max_idle_poll_ms", "1000", 0, 60000,
                         "an idle partition key range is polled at least this often (backoff after 304)")};
  r.add_store_kind(cosmos);
}

Result<BuiltPipeline> build_pipeline(const graph::GraphDef& def, StoreProvider& stores,
                                     const BuildOptions& options) {
  BuiltPipeline built;
  built.pipeline = std::make_unique<Pipeline>(options.threads);
  Pipeline& p = *built.pipeline;
  p.metrics().set_graph_name(def.name);
  stores.attach_metrics(p.metrics());

  auto wanted = [&](const graph::NodeDef& n) { return n.runs_in(options.service); };
  // Created first, added to the pipeline in drain order: sources, feed side, route, lanes, commit.
  std::map<std::string, RouteNode*> routes;
  std::map<std::string, LaneGroupNode*> lanes;
  std::map<std::string, CommitNode*> commits;
  std::map<std::string, ChangeFeedNode*> feeds;
  std::map<std::string, FeedSubscriber*> subscribers;
  std::map<std::string, SagaNode*> sagas;
  std::map<std::string, DemoSourceNode*> demos;
  std::vector<std::unique_ptr<RuntimeNode>> sources, feed_side, route_side, lane_side, commit_side;

  auto lanes_for = [&](const std::string& route_id) -> int64_t {
    return def.find_node(route_id)->get_int("lanes");
  };

  for (const auto& n : def.nodes) {
    if (!wanted(n)) continue;
    if (n.kind == "route") {
      auto node = std::make_unique<RouteNode>(p, n.id, n.get_int("max_in_flight"));
      routes[n.id] = node.get();
      route_side.push_back(std::move(node));
    } else if (n.kind == "command_lane") {
      auto ev = stores.event_store(n.get_string("events"));
      if (!ev) return ev.status();
      auto sn = stores.snapshot_store(n.get_string("snapshots"));
      if (!sn) return sn.status();
      int64_t count = 1;
      for (const auto* pred : def.predecessors(n.id))
        if (pred->kind == "route") count = lanes_for(pred->id);
      auto node = std::make_unique<LaneGroupNode>(p, n.id, static_cast<int>(count), *ev, *sn,
                                                  static_cast<size_t>(n.get_int("cache_streams")));
      lanes[n.id] = node.get();
      lane_side.push_back(std::move(node));
    } else if (n.kind == "commit") {
      auto ev = stores.event_store(n.get_string("events"));
      if (!ev) return ev.status();
      auto node = std::make_unique<CommitNode>(p, n.id, *ev, static_cast<size_t>(n.get_int("max_batch")),
                                               static_cast<int>(n.get_int("max_retries")));
      commits[n.id] = node.get();
      commit_side.push_back(std::move(node));
    } else if (n.kind == "change_feed") {
      auto feed = stores.change_feed(n.get_string("events"));
      if (!feed) return feed.status();
      auto node = std::make_unique<ChangeFeedNode>(p, n.id, *feed, static_cast<size_t>(n.get_int("batch")),
                                                   static_cast<int>(n.get_int("poll_ms")));
      feeds[n.id] = node.get();
      feed_side.push_back(std::move(node));
    } else if (n.kind == "projection") {
      auto sn = stores.snapshot_store(n.get_string("snapshots"));
      if (!sn) return sn.status();
      EventStore* ev = nullptr;
      for (const auto* pred : def.predecessors(n.id)) {
        if (pred->kind != "change_feed") continue;
        auto e = stores.event_store(pred->get_string("events"));
        if (e) ev = *e;
      }
      auto node = std::make_unique<ProjectionNode>(p, n.id, *sn, ev, std::chrono::milliseconds(n.get_int("flush_ms")));
      subscribers[n.id] = node.get();
      feed_side.push_back(std::move(node));
    } else if (n.kind == "saga") {
      auto node = std::make_unique<SagaNode>(p, n.id);
      subscribers[n.id] = node.get();
      sagas[n.id] = node.get();
      feed_side.push_back(std::move(node));
    } else if (auto f = options.subscriber_factories.find(n.kind); f != options.subscriber_factories.end()) {
      auto made = f->second(n, p);
      if (!made) return Status(made.status().code(), "node " + n.id + ": " + made.status().message());
      subscribers[n.id] = made->subscriber;
      feed_side.push_back(std::move(made->node));
    } else if (n.kind == "demo_source") {
      auto node = std::make_unique<DemoSourceNode>(p, n.id, static_cast<int>(n.get_int("rate")),
                                                   static_cast<int>(n.get_int("skus")),
                                                   static_cast<uint64_t>(n.get_int("seed")));
      demos[n.id] = node.get();
      sources.push_back(std::move(node));
    }
  }

  // Wire by edges. Store-mediated edges (commit -> change_feed) need nothing here.
  for (const auto& e : def.edges) {
    const auto* from = def.find_node(e.from);
    const auto* to = def.find_node(e.to);
    if (from == nullptr || to == nullptr || !wanted(*from) || !wanted(*to)) continue;
    if (routes.count(e.from) && lanes.count(e.to)) {
      routes[e.from]->set_lanes(lanes[e.to]);
    } else if (lanes.count(e.from) && commits.count(e.to)) {
      for (auto* out : lanes[e.from]->outputs()) tbb::flow::make_edge(*out, commits[e.to]->input());
      commits[e.to]->set_lanes(lanes[e.from]);
    } else if (feeds.count(e.from) && subscribers.count(e.to)) {
      feeds[e.from]->add_subscriber(subscribers[e.to]);
    } else if (sagas.count(e.from) && routes.count(e.to)) {
      sagas[e.from]->set_sink(routes[e.to]);
    } else if (demos.count(e.from) && routes.count(e.to)) {
      demos[e.from]->set_sink(routes[e.to]);
    }
  }
  for (const auto& [id, r] : routes)
    if (!built.sink) built.sink = r;

  // External source kinds (HTTP, ...) get the route they feed.
  for (const auto& n : def.nodes) {
    if (!wanted(n)) continue;
    auto f = options.factories.find(n.kind);
    if (f == options.factories.end()) continue;
    CommandSink* sink = nullptr;
    for (const auto* succ : def.successors(n.id))
      if (routes.count(succ->id)) sink = routes[succ->id];
    auto node = f->second(n, p, sink);
    if (!node) return Status(node.status().code(), "node " + n.id + ": " + node.status().message());
    sources.push_back(std::move(*node));
  }

  for (auto* group : {&sources, &feed_side, &route_side, &lane_side, &commit_side})
    for (auto& node : *group) p.add(std::move(node));
  return built;
}

}  // namespace orderflow
