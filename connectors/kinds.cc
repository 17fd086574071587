#include "connectors/kinds.h"

#include "connectors/http_api.h"
#include "connectors/kafka.h"
#include "connectors/stores.h"

namespace orderflow::connectors {

using graph::KindSpec;
using graph::p_bool;
using graph::p_enum;
using graph::p_int;
using graph::p_required;
using graph::p_string;
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

  r.add_store_kind(store_kind("rocksdb", {p_required("path", "directory, relative to --data-dir"),
                                          p_bool("sync", "true", "fsync every group commit")}));
  r.add_store_kind(store_kind("memory", {}));
  r.add_store_kind(store_kind(
      "cosmos",
      {p_required("endpoint", "https://ACCOUNT.documents.azure.com:443 (http:// only for a local stand-in)"),
       p_required("database", "database id"),
       p_required("container", "container id (events: partitioned by /streamId; snapshots: by /id)"),
       p_string("key_env", "COSMOS_KEY", "environment variable holding the account's master key"),
       p_string("ca_file", "", "PEM file of a CA to trust (emulators); default: the system store"),
       p_string("leases_container", "leases", "container of the change-feed lease documents"),
       p_bool("create_if_missing", "true", "create the database and containers when missing"),
       p_int("parallelism", "16", 1, 256, "concurrent requests of one group commit"),
       p_int("lease_expiry_ms", "10000", 100, 3600000, "a lease not renewed this long is free"),
       p_int("max_item_count", "100", 1, 10000, "change-feed page size"),
       p_int("checkpoint_interval_ms", "1000", 0, 600000,
             "change-feed checkpoints reach the lease documents at most this often"),
       p_int("max_idle_poll_ms", "1000", 0, 60000,
             "an idle partition key range is polled at least this often (backoff after 304)")}));
  add_store_param_checks(r);
}

}  // namespace orderflow::connectors
