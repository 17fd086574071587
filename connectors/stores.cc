#include "connectors/stores.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "graph/metrics.h"

#include "connectors/cosmos_store.h"
#include "connectors/faulty_store.h"
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
    const RocksStoreParams params = rocksdb_store_params().parse(def->second);
    RocksOptions o;
    std::filesystem::path path = params.path;
    if (path.is_relative()) path = std::filesystem::path(data_dir_) / path;
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) return Status::io_error("cannot create " + path.string() + ": " + ec.message());
    o.path = path.string();
    o.sync = params.sync;
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
  } else if (kind == "faulty") {
    if (auto s = open_faulty(def->second, *e); !s) return Status(s.code(), "store '" + name + "': " + s.message());
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
  registry.set_store_param_check("faulty", "fail_streams", [](const std::string& text) {
    std::string why;
    parse_fail_streams(text, &why);
    return why.empty() ? std::string() : "must be " + why;
  });
}

const graph::Options<RocksStoreParams>& rocksdb_store_params() {
  using P = RocksStoreParams;
  static const auto params = graph::Options<P>()
                                 .required(&P::path, "path", "directory, relative to --data-dir")
                                 .boolean(&P::sync, "sync", "fsync every group commit");
  return params;
}

const graph::Options<CosmosStoreParams>& cosmos_store_params() {
  using P = CosmosStoreParams;
  static const auto params =
      graph::Options<P>()
          .required(&P::endpoint, "endpoint",
                    "https://ACCOUNT.documents.azure.com:443 (http:// only for a local stand-in)")
          .required(&P::database, "database", "database id")
          .required(&P::container, "container", "container id (events: partitioned by /streamId; snapshots: by /id)")
          .text(&P::key_env, "key_env", "environment variable holding the account's master key")
          .text(&P::ca_file, "ca_file", "PEM file of a CA to trust (emulators); default: the system store")
          .text(&P::leases_container, "leases_container", "container of the change-feed lease documents")
          .boolean(&P::create_if_missing, "create_if_missing", "create the database and containers when missing")
          .integer(&P::parallelism, "parallelism", 1, 256, "concurrent requests of one group commit")
          .integer(&P::lease_expiry_ms, "lease_expiry_ms", 100, 3600000, "a lease not renewed this long is free")
          .integer(&P::max_item_count, "max_item_count", 1, 10000, "change-feed page size")
          .integer(&P::checkpoint_interval_ms, "checkpoint_interval_ms", 0, 600000,
                   "change-feed checkpoints reach the lease documents at most this often")
          .integer(&P::max_idle_poll_ms, "max_idle_poll_ms", 0, 60000,
                   "an idle partition key range is polled at least this often (backoff after 304)");
  return params;
}

Status StoreSet::open_cosmos(const graph::StoreDef& def, Entry& e) {
  const CosmosStoreParams params = cosmos_store_params().parse(def);
  CosmosOptions co;
  co.endpoint = params.endpoint;
  co.ca_file = params.ca_file;
  const std::string& key_env = params.key_env;
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
  so.database = params.database;
  so.container = params.container;
  so.leases_container = params.leases_container;
  so.create_if_missing = params.create_if_missing;
  so.parallelism = params.parallelism;
  so.instance = instance_id_;
  so.lease_expiry = std::chrono::milliseconds(params.lease_expiry_ms);
  // Lease cycles at most a second apart: a range released by a stopping instance is taken
  // within about a second, an expired one within lease_expiry plus a second.
  so.lease_renew = std::clamp(so.lease_expiry / 3, std::chrono::milliseconds(50), std::chrono::milliseconds(1000));
  so.max_item_count = params.max_item_count;
  so.checkpoint_interval = std::chrono::milliseconds(params.checkpoint_interval_ms);
  so.max_idle_poll = std::chrono::milliseconds(params.max_idle_poll_ms);
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

Status StoreSet::open_faulty(const graph::StoreDef& def, Entry& e) {
  if (e.role != "events") return Status::invalid_argument("a store of kind faulty wraps an event store; it cannot serve as " + e.role);
  const FaultyStoreParams params = faulty_store_params().parse(def);
  std::string why;
  std::set<std::string> streams = parse_fail_streams(params.fail_streams, &why);
  if (!why.empty()) return Status::invalid_argument("fail_streams must be " + why);
  // validate() refuses a store that wraps itself; a hand-built definition must not recurse for ever.
  std::string at = params.inner;
  for (size_t steps = 0; steps <= defs_.size(); ++steps) {
    auto d = defs_.find(at);
    if (d == defs_.end() || d->second.kind != "faulty") break;
    if (steps == defs_.size()) return Status::invalid_argument("its 'inner' stores wrap one another in a cycle");
    at = faulty_store_params().parse(d->second).inner;
  }
  auto inner = entry(params.inner, "events");
  if (!inner) return inner.status();
  std::string heal;
  if (!params.heal_file.empty()) {
    std::filesystem::path path = params.heal_file;
    if (path.is_relative()) path = std::filesystem::path(data_dir_) / path;
    heal = path.string();
  }
  auto store = std::make_unique<FaultyEventStore>(def.name, (*inner)->events.get(), (*inner)->feed, std::move(streams),
                                                  std::move(heal));
  e.feed = store.get();
  e.events = std::move(store);
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

Result<ParkingStore*> StoreSet::parking_store(const std::string& name) {
  auto e = entry(name, "snapshots");
  if (!e) return e.status();
  auto* parking = dynamic_cast<ParkingStore*>((*e)->snapshots.get());
  if (parking == nullptr)
    return Status::invalid_argument("store '" + name + "' (kind " + defs_.at(name).kind +
                                    ") cannot keep parked commands: use a rocksdb or memory store");
  return parking;
}

}  // namespace orderflow::connectors
