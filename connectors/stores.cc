#include "connectors/stores.h"

#include <filesystem>

#include "connectors/memory_store.h"
#include "connectors/rocksdb_store.h"

namespace orderflow::connectors {

struct StoreSet::Entry {
  std::string role;  // "events" or "snapshots": a store serves one role
  std::unique_ptr<EventStore> events;
  ChangeFeed* feed = nullptr;
  std::unique_ptr<SnapshotStore> snapshots;
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
  } else {
    return Status::invalid_argument("store '" + name + "' has unknown kind '" + kind + "'");
  }
  Entry* raw = e.get();
  open_[name] = std::move(e);
  return raw;
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
