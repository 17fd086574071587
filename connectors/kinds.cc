#include "connectors/kinds.h"

#include "connectors/faulty_store.h"
#include "connectors/http_api.h"
#include "connectors/kafka.h"
#include "connectors/stores.h"

namespace orderflow::connectors {

using graph::KindSpec;
using graph::PortType;

namespace {

KindSpec node_kind(std::string name, PortType in, PortType out, bool source, std::vector<graph::ParamSpec> params,
                   std::string help, graph::NodeFactory factory) {
  KindSpec k;
  k.name = std::move(name);
  k.input = in;
  k.output = out;
  k.is_source = source;
  k.output_required = source;  // a source that feeds nothing would accept and drop
  k.params = std::move(params);
  k.help = std::move(help);
  k.drain = source ? graph::DrainOrder::kIngest : graph::DrainOrder::kSubscriber;
  k.factory = std::move(factory);
  return k;
}

KindSpec store_kind(std::string name, std::vector<graph::ParamSpec> params) {
  KindSpec k;
  k.name = std::move(name);
  k.params = std::move(params);
  return k;
}

}  // namespace

void register_connector_kinds(graph::KindRegistry& r) {
  KindSpec http = node_kind("http_source", PortType::kNone, PortType::kCommand, true, http_source_options().params(),
                            "HTTP API: POST /api/v1/commands and the query endpoints",
                            [](const graph::NodeDef& def, BuildContext& c) {
                              return make_http_source(def, c, HttpApiContext{});
                            });
  // An HTTP node of a read-only service (queries only) has no route to feed.
  http.output_required = false;
  r.add_node_kind(http);
  r.add_node_kind(node_kind("kafka_source", PortType::kNone, PortType::kCommand, true, kafka_source_options().params(),
                            "Kafka consumer group: commands in, offsets committed after durable commit",
                            make_kafka_source));
  r.add_node_kind(node_kind("kafka_sink", PortType::kEvent, PortType::kNone, false, kafka_sink_options().params(),
                            "publishes committed events, key = stream, idempotent producer", make_kafka_sink));

  r.add_store_kind(store_kind("rocksdb", rocksdb_store_params().params()));
  r.add_store_kind(store_kind("memory", {}));
  r.add_store_kind(store_kind("cosmos", cosmos_store_params().params()));
  // Tests and fault drills only: appends to some streams fail until a file exists.
  r.add_store_kind(store_kind("faulty", faulty_store_params().params()));
  add_store_param_checks(r);
}

}  // namespace orderflow::connectors
