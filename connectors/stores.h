// StoreSet: opens the stores a graph names under `stores:` and hands them out by role.
// Owns them; must outlive every pipeline built with it. Opening happens lazily on first
// use by a role, so a store only used as snapshots never opens an event log.
// Thread-compatible: used by the builder on one thread, then read-only.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "graph/definition.h"
#include "graph/store.h"

namespace orderflow::connectors {

// Adds the store connectors' own checks of parameter values to the registry, so `validate`
// refuses what opening the store would (a Cosmos DB endpoint in clear to another machine).
void add_store_param_checks(graph::KindRegistry& registry);

class StoreSet final : public StoreProvider {
 public:
  // data_dir: where relative rocksdb paths live (created if missing).
  StoreSet(const graph::GraphDef& def, std::string data_dir);
  ~StoreSet() override;

  Result<EventStore*> event_store(const std::string& name) override;
  Result<ChangeFeed*> change_feed(const std::string& name) override;
  Result<SnapshotStore*> snapshot_store(const std::string& name) override;
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
  std::map<std::string, std::unique_ptr<Account>> accounts_;  // one Cosmos client per account
  MetricsRegistry* registry_ = nullptr;
  std::map<std::string, graph::StoreDef> defs_;
  std::string data_dir_;
  std::string instance_id_;
  std::map<std::string, std::unique_ptr<Entry>> open_;
};

}  // namespace orderflow::connectors
