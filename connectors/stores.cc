#include "connectors/stores.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "graph/metrics.h"

#include "connectors/cosmos_store.h"
#include "connectors/memory_store.h"
#include "connectors/rocksdb_store.h"

namespace orderflow::connectors {

struct StoreSet::Entry {
  std::string role;  // "events" or "snapshots": a store serves one role
  std::unique_ptr<EventStore> events;
  ChangeFeed* feed = nullptr;
  std::unique_ptr<SnapshotStore> snapshots;
};

struct StoreSet::Account {
  std::shared_ptr<CosmosClient> client;
  std::string probe_id;
};

StoreSet::StoreSet(const graph::GraphDef& def, std::string data_dir)
    : defs_(def.stores), data_dir_(std::move(data_dir)) {}

StoreSet::~StoreSet() = default;

Result<StoreSet::Entry*> StoreSet::entry(const std::string& name, const char* role) {
  if (auto it = open_.find(name); it != open_.end()) {
    if (it->second->role != role)
      return Status::invalid_argument("store '" + name + "' is used both as " + it->second->role + " and as " +
                                      role + "; declare one store per role");
    return it->second.get();
  }
  auto def = defs_.find(name);
  if (def == defs_.end()) return Status::not_found("no store named '" + name + "'");
  auto e = std::make_unique<Entry>();
  e->role = role;
  const std::string& kind = def->second.kind;
  if (kind == "memory") {
    if (e->role == "events") {
      auto m = std::make_unique<MemoryEventStore>();
      e->feed = m.get();
      e->events = std::move(m);
    } else {
      e->snapshots = std::make_unique<MemorySnapshotStore>();
    }
  } else if (kind == "rocksdb") {
    RocksOptions o;
    std::filesystem::path path = def->second.params.at("path").text;
    if (path.is_relative()) path = std::filesystem::path(data_dir_) / path;
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) return Status::io_error("cannot create " + path.string() + ": " + ec.message());
    o.path = path.string();
    auto sync = def->second.params.find("sync");
    o.sync = true;
    if (sync != def->second.params.end()) graph::parse_bool(sync->second.text, &o.sync);
    if (e->role == "events") {
      auto r = RocksEventStore::open(o);
      if (!r) return r.status();
      e->feed = r->get();
      e->events = std::move(*r);
    } else {
      auto r = RocksSnapshotStore::open(o);
      if (!r) return r.status();
      e->snapshots = std::move(*r);
    }
  } else if (kind == "cosmos") {
    if (auto s = open_cosmos(def->second, *e); !s) return Status(s.code(), "store '" + name + "': " + s.message());
  } else {
    return Status::invalid_argument("store '" + name + "' has unknown kind '" + kind + "'");
  }
  Entry* raw = e.get();
  open_[name] = std::move(e);
  return raw;
}

void add_store_param_checks(graph::KindRegistry& registry) {
  registry.set_store_param_check("cosmos", "endpoint", [](const std::string& endpoint) {
    auto s = CosmosClient::check_endpoint(endpoint);
    return s.is_ok() ? std::string() : s.message();
  });
}

Status StoreSet::open_cosmos(const graph::StoreDef& def, Entry& e) {
  auto param = [&](const char* key, const std::string& fallback) {
    auto it = def.params.find(key);
    return it == def.params.end() ? fallback : it->second.text;
  };
  CosmosOptions co;
  co.endpoint = param("endpoint", "");
  co.ca_file = param("ca_file", "");
  const std::string key_env = param("key_env", "COSMOS_KEY");
  const char* key = std::getenv(key_env.c_str());
  if (key == nullptr || *key == '\0')
    return Status::invalid_argument("environment variable " + key_env + " (key_env) holds no Cosmos DB key");
  co.key = key;
  const std::string account_id = co.endpoint + "|" + key_env + "|" + co.ca_file;
  auto& account = accounts_[account_id];
  if (!account) {
    auto client = CosmosClient::open(co);
    if (!client) {
      accounts_.erase(account_id);
      return client.status();
    }
    account = std::make_unique<Account>();
    account->client = *client;
    account->probe_id = accounts_.size() == 1 ? "cosmos" : "cosmos-" + std::to_string(accounts_.size());
    if (registry_ != nullptr) account->client->metrics().attach(registry_->probe(account->probe_id, "cosmos"));
  }
  CosmosStoreOptions so;
  so.database = param("database", "");
  so.container = param("container", "");
  so.leases_container = param("leases_container", "leases");
  so.create_if_missing = true;
  graph::parse_bool(param("create_if_missing", "true"), &so.create_if_missing);
  so.parallelism = std::atoi(param("parallelism", "16").c_str());
  so.instance = instance_id_;
  so.lease_expiry = std::chrono::milliseconds(std::atoll(param("lease_expiry_ms", "6000").c_str()));
  // Lease cycles at most a second apart: a range released by a stopping instance is taken
  // within about a second, an expired one within lease_expiry plus a second.
  so.lease_renew = std::clamp(so.lease_expiry / 3, std::chrono::milliseconds(50), std::chrono::milliseconds(1000));
  so.max_item_count = std::atoi(param("max_item_count", "100").c_str());
  so.checkpoint_interval = std::chrono::milliseconds(std::atoll(param("checkpoint_interval_ms", "1000").c_str()));
  so.max_idle_poll = std::chrono::milliseconds(std::atoll(param("max_idle_poll_ms", "1000").c_str()));
  if (e.role == "events") {
    auto r = CosmosEventStore::open(account->client, so);
    if (!r) return r.status();
    e.feed = r->get();
    e.events = std::move(*r);
  } else {
    auto r = CosmosSnapshotStore::open(account->client, so);
    if (!r) return r.status();
    e.snapshots = std::move(*r);
  }
  return Status::ok();
}

Status StoreSet::health() const {
  for (const auto& [name, e] : open_) {
    Status s = e->events ? e->events->health() : e->snapshots ? e->snapshots->health() : Status::ok();
    if (!s) return Status(s.code(), "store '" + name + "': " + s.message());
  }
  return Status::ok();
}

void StoreSet::attach_metrics(MetricsRegistry& registry) {
  registry_ = &registry;
  for (auto& [id, account] : accounts_) account->client->metrics().attach(registry.probe(account->probe_id, "cosmos"));
}

Result<EventStore*> StoreSet::event_store(const std::string& name) {
  auto e = entry(name, "events");
  if (!e) return e.status();
  return (*e)->events.get();
}

Result<ChangeFeed*> StoreSet::change_feed(const std::string& name) {
  auto e = entry(name, "events");
  if (!e) return e.status();
  return (*e)->feed;
}

Result<SnapshotStore*> StoreSet::snapshot_store(const std::string& name) {
  auto e = entry(name, "snapshots");
  if (!e) return e.status();
  return (*e)->snapshots.get();
}

}  // namespace orderflow::connectors
