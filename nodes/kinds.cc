#include "nodes/kinds.h"

#include "graph/build.h"
#include "nodes/nodes.h"

namespace orderflow {

using graph::KindSpec;
using graph::ParamSpec;
using graph::ParamType;
using graph::PortType;

namespace {

using graph::p_int;
using graph::p_store;

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
  r.add_node_kind(kind("demo_source", PortType::kNone, PortType::kCommand, true,
                       {p_int("rate", "0", 0, 10000000, "commands per second; 0 = off"),
                        p_int("skus", "200", 1, 1000000, "distinct entities of the synthetic load (SKUs)"),
                        p_int("seed", "42", INT64_MIN, INT64_MAX, "random seed")},
                       "the domain's synthetic load (orders, restocks, cancels and shipments)", DrainOrder::kIngest,
                       [](const graph::NodeDef& n, BuildContext& c) {
                         return made(std::make_unique<DemoSourceNode>(
                             c.pipeline, n.id, c.domain, static_cast<int>(n.get_int("rate")),
                             static_cast<int>(n.get_int("skus")), static_cast<uint64_t>(n.get_int("seed"))));
                       }));
  KindSpec route = kind("route", PortType::kCommand, PortType::kRouted, false,
                        {p_int("lanes", "8", 1, 256, "serial command lanes"),
                         p_int("max_in_flight", "20000", 1, 10000000, "admitted, unfinished commands")},
                        "admission limit and stream-hash routing onto lanes", DrainOrder::kAdmission,
                        [](const graph::NodeDef& n, BuildContext& c) {
                          return made(std::make_unique<RouteNode>(c.pipeline, n.id, c.domain, n.get_int("max_in_flight")));
                        });
  route.output_required = true;
  r.add_node_kind(route);
  KindSpec lanes = kind(
      "command_lane", PortType::kRouted, PortType::kDecision, false,
      {p_store("events", "event store"), p_store("snapshots", "snapshot store"),
       p_int("cache_streams", "100000", 1, 100000000, "cached stream states per lane")},
      "load state, decide, emit events; serial per lane", DrainOrder::kDecision,
      [](const graph::NodeDef& n, BuildContext& c) -> Result<std::unique_ptr<RuntimeNode>> {
        auto ev = c.stores.event_store(n.get_string("events"));
        if (!ev) return ev.status();
        auto sn = c.stores.snapshot_store(n.get_string("snapshots"));
        if (!sn) return sn.status();
        // As many lanes as the route that feeds them asks for.
        int64_t count = 1;
        for (const auto* pred : c.graph.predecessors(n.id))
          if (pred->has("lanes")) count = pred->get_int("lanes");
        return made(std::make_unique<LaneGroupNode>(c.pipeline, n.id, c.domain, static_cast<int>(count), *ev, *sn,
                                                    static_cast<size_t>(n.get_int("cache_streams"))));
      });
  lanes.output_required = true;
  r.add_node_kind(lanes);
  r.add_node_kind(kind("commit", PortType::kDecision, PortType::kCommitted, false,
                       {p_store("events", "event store"),
                        p_int("max_batch", "1000", 1, 100000, "commands per durable write"),
                        p_int("max_retries", "8", 0, 1000, "re-decisions after a version conflict")},
                       "group commit with optimistic concurrency and idempotency", DrainOrder::kCommit,
                       [](const graph::NodeDef& n, BuildContext& c) -> Result<std::unique_ptr<RuntimeNode>> {
                         auto ev = c.stores.event_store(n.get_string("events"));
                         if (!ev) return ev.status();
                         return made(std::make_unique<CommitNode>(c.pipeline, n.id, *ev,
                                                                  static_cast<size_t>(n.get_int("max_batch")),
                                                                  static_cast<int>(n.get_int("max_retries"))));
                       }));
  r.add_node_kind(kind("change_feed", PortType::kCommitted, PortType::kEvent, false,
                       {p_store("events", "event store"),
                        p_int("batch", "512", 1, 100000, "events per delivery"),
                        p_int("poll_ms", "50", 1, 60000, "wait for new events at most this long")},
                       "committed events to each subscriber from its checkpoint", DrainOrder::kSubscriber,
                       [](const graph::NodeDef& n, BuildContext& c) -> Result<std::unique_ptr<RuntimeNode>> {
                         auto feed = c.stores.change_feed(n.get_string("events"));
                         if (!feed) return feed.status();
                         return made(std::make_unique<ChangeFeedNode>(c.pipeline, n.id, *feed,
                                                                      static_cast<size_t>(n.get_int("batch")),
                                                                      static_cast<int>(n.get_int("poll_ms"))));
                       }));
  r.add_node_kind(kind("projection", PortType::kEvent, PortType::kNone, false,
                       {p_store("snapshots", "snapshot store"),
                        p_int("flush_ms", "25", 1, 60000,
                              "a state is written at most this long after its event arrives; more coalesces "
                              "writes of busy streams (fewer Cosmos DB requests), reads lag more")},
                       "current state into the snapshot store", DrainOrder::kSubscriber,
                       [](const graph::NodeDef& n, BuildContext& c) -> Result<std::unique_ptr<RuntimeNode>> {
                         auto sn = c.stores.snapshot_store(n.get_string("snapshots"));
                         if (!sn) return sn.status();
                         return made(std::make_unique<ProjectionNode>(
                             c.pipeline, n.id, c.domain, *sn, predecessor_event_store(n, c),
                             std::chrono::milliseconds(n.get_int("flush_ms"))));
                       }));
  KindSpec saga = kind("saga", PortType::kEvent, PortType::kCommand, false, {},
                       "process manager: the domain's reactions to events, as commands", DrainOrder::kSubscriber,
                       [](const graph::NodeDef& n, BuildContext& c) {
                         return made(std::make_unique<SagaNode>(c.pipeline, n.id, c.domain));
                       });
  saga.output_required = true;
  r.add_node_kind(saga);
}

}  // namespace orderflow
