#include "nodes/kinds.h"

#include "graph/build.h"
#include "graph/options.h"
#include "nodes/nodes.h"

namespace orderflow {

using graph::KindSpec;
using graph::ParamSpec;
using graph::ParamType;
using graph::PortType;

namespace {

KindSpec kind(std::string name, PortType in, PortType out, bool source, std::vector<ParamSpec> params,
              std::string help, graph::DrainOrder drain, graph::NodeFactory factory) {
  KindSpec k;
  k.name = std::move(name);
  k.input = in;
  k.output = out;
  k.is_source = source;
  k.params = std::move(params);
  k.help = std::move(help);
  k.drain = drain;
  k.factory = std::move(factory);
  return k;
}

template <typename T>
Result<std::unique_ptr<RuntimeNode>> made(std::unique_ptr<T> node) {
  return std::unique_ptr<RuntimeNode>(std::move(node));
}

// The event store a node reads through its predecessor of a kind that names one (the
// projection fills gaps from its change feed's store); null when none does.
EventStore* predecessor_event_store(const graph::NodeDef& n, BuildContext& c) {
  for (const auto* pred : c.graph.predecessors(n.id)) {
    if (!pred->has("events")) continue;
    if (auto e = c.stores.event_store(pred->get_string("events")); e) return *e;
  }
  return nullptr;
}

}  // namespace

void register_node_kinds(graph::KindRegistry& r) {
  using graph::DrainOrder;
  using graph::Options;

  const auto demo = Options<DemoOptions>()
                        .integer(&DemoOptions::rate, "rate", 0, 10000000, "commands per second; 0 = off")
                        .integer(&DemoOptions::skus, "skus", 1, 1000000, "distinct entities of the synthetic load (SKUs)")
                        .integer(&DemoOptions::seed, "seed", INT64_MIN, INT64_MAX, "random seed");
  r.add_node_kind(kind("demo_source", PortType::kNone, PortType::kCommand, true, demo.params(),
                       "the domain's synthetic load (orders, restocks, cancels and shipments)", DrainOrder::kIngest,
                       [demo](const graph::NodeDef& n, BuildContext& c) {
                         const DemoOptions o = demo.parse(n);
                         return made(std::make_unique<DemoSourceNode>(c.pipeline, n.id, c.domain, o.rate, o.skus,
                                                                      static_cast<uint64_t>(o.seed)));
                       }));

  const auto route_options =
      Options<RouteOptions>()
          .integer(&RouteOptions::lanes, "lanes", 1, 256, "serial command lanes")
          .integer(&RouteOptions::max_in_flight, "max_in_flight", 1, 10000000, "admitted, unfinished commands");
  KindSpec route = kind("route", PortType::kCommand, PortType::kRouted, false, route_options.params(),
                        "admission limit and stream-hash routing onto lanes", DrainOrder::kAdmission,
                        [route_options](const graph::NodeDef& n, BuildContext& c) {
                          const RouteOptions o = route_options.parse(n);
                          return made(std::make_unique<RouteNode>(c.pipeline, n.id, c.domain, o.max_in_flight));
                        });
  route.output_required = true;
  r.add_node_kind(route);

  const auto lane_options =
      Options<LaneOptions>()
          .store(&LaneOptions::events, "events", "event store")
          .store(&LaneOptions::snapshots, "snapshots", "snapshot store")
          .integer(&LaneOptions::cache_streams, "cache_streams", 1, 100000000, "cached stream states per lane")
          .choice(&LaneOptions::run_on, "run_on", {"auto", "caller", "workers"},
                  "where commands are decided: on the submitting thread when the lane is idle (caller), as "
                  "oneTBB tasks (workers), or caller for a local event store unless a kafka_source feeds the route (auto)");
  KindSpec lanes = kind(
      "command_lane", PortType::kRouted, PortType::kDecision, false, lane_options.params(),
      "load state, decide, emit events; serial per lane", DrainOrder::kDecision,
      [lane_options, route_options](const graph::NodeDef& n, BuildContext& c) -> Result<std::unique_ptr<RuntimeNode>> {
        const LaneOptions o = lane_options.parse(n);
        auto ev = c.stores.event_store(o.events);
        if (!ev) return ev.status();
        auto sn = c.stores.snapshot_store(o.snapshots);
        if (!sn) return sn.status();
        // As many lanes as the route that feeds them asks for.
        int count = 1;
        bool fed_by_kafka = false;
        for (const auto* pred : c.graph.predecessors(n.id)) {
          if (pred->kind != "route") continue;
          count = route_options.parse(*pred).lanes;
          for (const auto* source : c.graph.predecessors(pred->id)) fed_by_kafka |= source->kind == "kafka_source";
        }
        return made(std::make_unique<LaneGroupNode>(
            c.pipeline, n.id, c.domain, count, *ev, *sn, static_cast<size_t>(o.cache_streams),
            LaneGroupNode::resolve_run_on(o.run_on, (*ev)->shared(), fed_by_kafka)));
      });
  lanes.output_required = true;
  r.add_node_kind(lanes);

  const auto commit = Options<CommitOptions>()
                          .store(&CommitOptions::events, "events", "event store")
                          .integer(&CommitOptions::max_batch, "max_batch", 1, 100000, "commands per durable write")
                          .integer(&CommitOptions::max_retries, "max_retries", 0, 1000,
                                   "re-decisions after a version conflict")
                          .integer(&CommitOptions::write_interval_us, "write_interval_us", -1, 1000000,
                                   "under load, start a durable write at most this often (µs; -1: 1000 on a "
                                   "store that syncs each append, else 0)");
  r.add_node_kind(kind("commit", PortType::kDecision, PortType::kCommitted, false, commit.params(),
                       "group commit with optimistic concurrency and idempotency", DrainOrder::kCommit,
                       [commit](const graph::NodeDef& n, BuildContext& c) -> Result<std::unique_ptr<RuntimeNode>> {
                         const CommitOptions o = commit.parse(n);
                         auto ev = c.stores.event_store(o.events);
                         if (!ev) return ev.status();
                         return made(std::make_unique<CommitNode>(
                             c.pipeline, n.id, *ev, static_cast<size_t>(o.max_batch), o.max_retries,
                             CommitNode::resolve_write_interval(o.write_interval_us, **ev)));
                       }));

  const auto feed = Options<ChangeFeedOptions>()
                        .store(&ChangeFeedOptions::events, "events", "event store")
                        .integer(&ChangeFeedOptions::batch, "batch", 1, 100000, "events per delivery")
                        .integer(&ChangeFeedOptions::poll_ms, "poll_ms", 1, 60000,
                                 "wait for new events at most this long")
                        .integer(&ChangeFeedOptions::unhealthy_after_ms, "unhealthy_after_ms", 1, 3600000,
                                 "a subscriber failing this long without progress makes readiness 503");
  r.add_node_kind(kind("change_feed", PortType::kCommitted, PortType::kEvent, false, feed.params(),
                       "committed events to each subscriber from its checkpoint", DrainOrder::kSubscriber,
                       [feed](const graph::NodeDef& n, BuildContext& c) -> Result<std::unique_ptr<RuntimeNode>> {
                         const ChangeFeedOptions o = feed.parse(n);
                         auto f = c.stores.change_feed(o.events);
                         if (!f) return f.status();
                         return made(std::make_unique<ChangeFeedNode>(
                             c.pipeline, n.id, *f, static_cast<size_t>(o.batch), o.poll_ms,
                             std::chrono::milliseconds(o.unhealthy_after_ms), &c.domain));
                       }));

  const auto projection =
      Options<ProjectionOptions>()
          .store(&ProjectionOptions::snapshots, "snapshots", "snapshot store")
          .integer(&ProjectionOptions::flush_ms, "flush_ms", 1, 60000,
                   "a state is written at most this long after its event arrives; more coalesces "
                   "writes of busy streams (fewer Cosmos DB requests), reads lag more")
          .integer(&ProjectionOptions::flush_batches, "flush_batches", 1, 4096,
                   "...or at the latest once this many feed batches wait (default 32); raise it with flush_ms "
                   "where the feed delivers many small batches (Cosmos DB: a page per range and poll)");
  r.add_node_kind(kind("projection", PortType::kEvent, PortType::kNone, false, projection.params(),
                       "current state into the snapshot store", DrainOrder::kSubscriber,
                       [projection](const graph::NodeDef& n, BuildContext& c) -> Result<std::unique_ptr<RuntimeNode>> {
                         const ProjectionOptions o = projection.parse(n);
                         auto sn = c.stores.snapshot_store(o.snapshots);
                         if (!sn) return sn.status();
                         return made(std::make_unique<ProjectionNode>(c.pipeline, n.id, c.domain, *sn,
                                                                      predecessor_event_store(n, c),
                                                                      std::chrono::milliseconds(o.flush_ms),
                                                                      static_cast<size_t>(o.flush_batches)));
                       }));

  const auto saga_options =
      Options<SagaOptions>()
          .optional_store(&SagaOptions::parked, "parked",
                          "snapshot store (rocksdb or memory) that keeps reactions parked after park_after "
                          "failures; absent = retry for ever")
          .integer(&SagaOptions::park_after, "park_after", 0, 1000000,
                   "failures of one reaction, while others succeed, before it is parked (with `parked`); 0 = never");
  KindSpec saga = kind("saga", PortType::kEvent, PortType::kCommand, false, saga_options.params(),
                       "process manager: the domain's reactions to events, as commands", DrainOrder::kSubscriber,
                       [saga_options](const graph::NodeDef& n, BuildContext& c) -> Result<std::unique_ptr<RuntimeNode>> {
                         const SagaOptions o = saga_options.parse(n);
                         ParkingStore* parking = nullptr;
                         if (!o.parked.empty()) {
                           auto ps = c.stores.parking_store(o.parked);
                           if (!ps) return ps.status();
                           parking = *ps;
                         }
                         return made(std::make_unique<SagaNode>(c.pipeline, n.id, c.domain, parking, o.park_after));
                       });
  saga.output_required = true;
  r.add_node_kind(saga);
}

}  // namespace orderflow
