// StoreSet: opens the stores a graph names under `stores:` and hands them out by role.
// Owns them; must outlive every pipeline built with it. Opening happens lazily on first
// use by a role, so a store only used as snapshots never opens an event log.
// Thread-compatible: used by the builder on one thread, then read-only.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "graph/definition.h"
#include "graph/options.h"
#include "graph/store.h"

namespace orderflow::connectors {

// Adds the store connectors' own checks of parameter values to the registry, so `validate`
// refuses what opening the store would (a Cosmos DB endpoint in clear to another machine).
void add_store_param_checks(graph::KindRegistry& registry);

// The store kinds' parameters as a graph file sets them (`stores:`), with their defaults.
struct RocksStoreParams {
  std::string path;                        // directory, relative to --data-dir (required)
  bool sync = true;                        // fsync every group commit
};
const graph::Options<RocksStoreParams>& rocksdb_store_params();

struct CosmosStoreParams {
  std::string endpoint;                    // https://ACCOUNT.documents.azure.com:443 (required)
  std::string database;                    // database id (required)
  std::string container;                   // container id (required)
  std::string key_env = "COSMOS_KEY";      // environment variable holding the master key
  std::string ca_file;                     // PEM of a CA to trust (emulators); "" = the system's
  std::string leases_container = "leases"; // container of the change-feed lease documents
  bool create_if_missing = true;           // create the database and containers when missing
  int parallelism = 16;                    // concurrent requests of one group commit
  int64_t lease_expiry_ms = 6000;          // a lease not renewed this long is free
  int max_item_count = 100;                // change-feed page size
  int64_t checkpoint_interval_ms = 1000;   // checkpoints reach the lease documents at most this often
  int64_t max_idle_poll_ms = 1000;         // an idle partition key range is polled at least this often
};
const graph::Options<CosmosStoreParams>& cosmos_store_params();

class StoreSet final : public StoreProvider {
 public:
  // data_dir: where relative rocksdb paths live (created if missing).
  StoreSet(const graph::GraphDef& def, std::string data_dir);
  ~StoreSet() override;

  Result<EventStore*> event_store(const std::string& name) override;
  Result<ChangeFeed*> change_feed(const std::string& name) override;
  Result<SnapshotStore*> snapshot_store(const std::string& name) override;
  Result<ParkingStore*> parking_store(const std::string& name) override;
  void attach_metrics(MetricsRegistry& registry) override;
  // This process's stable name among the instances of its service (the Cosmos DB lease
  // owner), so a restarted instance reclaims its own leases at once. Call before the first
  // store opens; empty (the default) lets each store pick a random one.
  void set_instance_id(std::string id) { instance_id_ = std::move(id); }
  // The first unhealthy open store's health, named ("store 'events': ..."), or ok.
  Status health() const;

 private:
  struct Entry;
  struct Account;
  Result<Entry*> entry(const std::string& name, const char* role);
  Status open_cosmos(const graph::StoreDef& def, Entry& e);
  Status open_faulty(const graph::StoreDef& def, Entry& e);  // kind faulty: wraps its `inner` store
  std::map<std::string, std::unique_ptr<Account>> accounts_;  // one Cosmos client per account
  MetricsRegistry* registry_ = nullptr;
  std::map<std::string, graph::StoreDef> defs_;
  std::string data_dir_;
  std::string instance_id_;
  std::map<std::string, std::unique_ptr<Entry>> open_;
};

}  // namespace orderflow::connectors
