#include "server/repair.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "graph/json.h"

#include "connectors/cosmos_store.h"
#include "connectors/stores.h"
#include "connectors/url.h"
#include "graph/store.h"
#include "server/admin_client.h"
#include "server/data_dir.h"

namespace orderflow::server {
namespace {

namespace fs = std::filesystem;

struct RepairFlags {
  std::string file;
  std::string data_dir;
  ServerAccess server;
  std::string subscriber;
  std::string projection;
  std::optional<uint64_t> position;
  std::string time;
};

int fail(const std::string& msg) {
  std::fprintf(stderr, "orderflow repair: %s\n", msg.c_str());
  return 1;
}

int usage(const std::string& msg) {
  std::fprintf(stderr, "orderflow repair: %s\n", msg.c_str());
  return 2;
}

// A subscriber of a change feed, as the graph wires it.
struct Subscriber {
  const graph::NodeDef* node;
  const graph::NodeDef* feed;  // the change_feed node it reads
};

const graph::NodeDef* find_node(const graph::GraphDef& def, const std::string& id) {
  for (const auto& n : def.nodes)
    if (n.id == id) return &n;
  return nullptr;
}

std::vector<Subscriber> subscribers(const graph::GraphDef& def) {
  std::vector<Subscriber> out;
  for (const auto& e : def.edges) {
    const auto* from = find_node(def, e.from);
    const auto* to = find_node(def, e.to);
    if (from != nullptr && to != nullptr && from->kind == "change_feed") out.push_back({to, from});
  }
  return out;
}

// The graph, the lock and the stores of one repair; refuses what cannot be repaired offline.
class Session {
 public:
  Session(const RepairFlags& flags, const graph::KindRegistry& registry) : flags_(flags), registry_(registry) {}

  // 0 when the session is ready, else the exit code (the reason is printed).
  int open() {
    if (!load_graph(flags_.file, registry_, &def_)) return 2;
    for (auto& [name, store] : def_.stores) {
      // A mistyped database must not be created empty and then reported on or "repaired".
      if (store.kind == "cosmos") store.params["create_if_missing"].text = "false";
    }
    if (flags_.data_dir.empty()) {
      // Cosmos DB stores live in the account: no data directory, and no lock (instances run
      // on other hosts; the change-feed leases say whether one runs).
      for (const auto& [name, store] : def_.stores)
        if (store.kind != "cosmos")
          return usage("store '" + name + "' is kind " + store.kind +
                       ": give --data-dir (a stopped server's data directory), or --server URL (a running one)");
      stores_ = std::make_unique<connectors::StoreSet>(def_, std::string());
      return 0;
    }
    std::error_code ec;
    if (!fs::is_directory(flags_.data_dir, ec))
      return fail("no data directory " + flags_.data_dir + " (give the --data-dir the server ran with)");
    if (!lock_data_dir(flags_.data_dir))
      return fail("data directory " + flags_.data_dir +
                  " is in use by a running orderflow process; stop it (SIGTERM) and run the repair again");
    stores_ = std::make_unique<connectors::StoreSet>(def_, flags_.data_dir);
    return 0;
  }

  const graph::GraphDef& def() const { return def_; }

  // The store `name` after checking that it is on disk here (a mistyped --data-dir must
  // not create empty stores that the repair then reports on).
  Status check_on_disk(const std::string& name) const {
    auto it = def_.stores.find(name);
    if (it == def_.stores.end()) return Status::not_found("no store named '" + name + "'");
    if (it->second.kind == "cosmos") return Status::ok();  // in the account (opening checks the container)
    if (it->second.kind != "rocksdb")
      return Status::invalid_argument("store '" + name + "' is kind " + it->second.kind +
                                      ": only rocksdb stores (global positions on disk) are repaired offline");
    fs::path path = it->second.params.at("path").text;
    if (path.is_relative()) path = fs::path(flags_.data_dir) / path;
    std::error_code ec;
    if (!fs::is_directory(path, ec))
      return Status::not_found("no store '" + name + "' at " + path.string() + " (was this graph served with --data-dir " +
                               flags_.data_dir + "?)");
    return Status::ok();
  }

  Result<ChangeFeed*> feed(const graph::NodeDef& feed_node) {
    const std::string name = feed_node.get_string("events");
    if (auto s = check_on_disk(name); !s) return s;
    return stores_->change_feed(name);
  }

  Result<SnapshotStore*> snapshots(const std::string& name) {
    if (auto s = check_on_disk(name); !s) return s;
    return stores_->snapshot_store(name);
  }

  // Whether a change feed node reads a Cosmos DB store (from the definition; opens nothing).
  bool reads_cosmos(const graph::NodeDef& feed_node) const {
    auto it = def_.stores.find(feed_node.get_string("events"));
    return it != def_.stores.end() && it->second.kind == "cosmos";
  }

  // The Cosmos DB event store a change feed node reads, or nullptr when it reads another kind.
  Result<connectors::CosmosEventStore*> cosmos_feed(const graph::NodeDef& feed_node) {
    if (!reads_cosmos(feed_node)) return static_cast<connectors::CosmosEventStore*>(nullptr);
    auto events = stores_->event_store(feed_node.get_string("events"));
    if (!events) return events.status();
    return dynamic_cast<connectors::CosmosEventStore*>(*events);
  }

 private:
  const RepairFlags& flags_;
  const graph::KindRegistry& registry_;
  graph::GraphDef def_;
  std::unique_ptr<connectors::StoreSet> stores_;
};

std::string covered_text(Session& session, const graph::NodeDef& node) {
  if (node.kind != "projection") return "-";
  auto snaps = session.snapshots(node.get_string("snapshots"));
  if (!snaps) return "? (" + snaps.status().message() + ")";
  auto covered = (*snaps)->covered_position(node.id);
  if (!covered) return "? (" + covered.status().message() + ")";
  return covered->has_value() ? std::to_string(**covered) : "-";
}

// ---- Cosmos DB: no global positions; checkpoints are per-range lease documents ----------

std::string iso8601_ms(int64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

// A refused lease reset: exit 1, and with a live lease, what to do about it.
int cosmos_failure(const Status& s) {
  if (s.code() != StatusCode::kConflict) return fail(s.message());
  return fail(s.message() +
              ". Stop every instance serving this graph (SIGTERM hands the leases back at once; a killed one's expire "
              "after lease_expiry_ms) and run the repair again; on a running server the admin API cannot move Cosmos DB "
              "checkpoints");
}

void list_leases(connectors::CosmosEventStore& events, const graph::NodeDef& feed, const std::vector<Subscriber>& subs) {
  std::printf("change feed '%s' (Cosmos DB store '%s'): no global positions; one lease per partition key range\n",
              feed.id.c_str(), feed.get_string("events").c_str());
  std::printf("  %-24s %6s %-32s %s\n", "subscriber", "range", "owner", "reads from");
  for (const auto& s : subs) {
    if (s.feed != &feed) continue;
    auto leases = events.leases(s.node->id);
    if (!leases) {
      std::printf("  %-24s ? (%s)\n", s.node->id.c_str(), leases.status().message().c_str());
      continue;
    }
    if (leases->empty()) std::printf("  %-24s %6s %-32s %s\n", s.node->id.c_str(), "-", "-", "the start (no lease yet)");
    for (const auto& l : *leases) {
      const std::string owner =
          l.owner.empty() ? "-" : l.owner + (events.lease_alive(l) ? " (running)" : " (expired)");
      const std::string from = !l.continuation.empty() ? "its checkpoint (continuation " + l.continuation + ")"
                               : l.start_time_ms > 0   ? "changes after " + iso8601_ms(l.start_time_ms)
                                                       : "the start";
      std::printf("  %-24s %6s %-32s %s\n", s.node->id.c_str(), l.range.c_str(), owner.c_str(), from.c_str());
    }
  }
}

int list_checkpoints(const RepairFlags& flags, const graph::KindRegistry& registry) {
  Session session(flags, registry);
  if (int rc = session.open(); rc != 0) return rc;
  const auto subs = subscribers(session.def());
  bool any = false;
  for (const auto& n : session.def().nodes) {
    if (n.kind != "change_feed") continue;
    any = true;
    auto cosmos = session.cosmos_feed(n);
    if (!cosmos) return fail("change feed '" + n.id + "': " + cosmos.status().message());
    if (*cosmos != nullptr) {
      list_leases(**cosmos, n, subs);
      continue;
    }
    auto feed = session.feed(n);
    if (!feed) return fail("change feed '" + n.id + "': " + feed.status().message());
    const uint64_t head = (*feed)->head();
    std::printf("change feed '%s' (store '%s'): head %" PRIu64 "\n", n.id.c_str(), n.get_string("events").c_str(), head);
    std::printf("  %-24s %12s %10s %12s\n", "subscriber", "checkpoint", "behind", "covered");
    for (const auto& s : subs) {
      if (s.feed != &n) continue;
      auto cp = (*feed)->load_checkpoint(s.node->id);
      if (!cp) return fail("subscriber '" + s.node->id + "': " + cp.status().message());
      std::printf("  %-24s %12" PRIu64 " %10" PRIu64 " %12s\n", s.node->id.c_str(), *cp, head > *cp ? head - *cp : 0,
                  covered_text(session, *s.node).c_str());
    }
  }
  if (!any) std::printf("no change feed in %s\n", flags.file.c_str());
  return 0;
}

}  // namespace

std::optional<int64_t> parse_iso8601(const std::string& text) {
  int y, mo, d, h, mi, consumed = 0;
  double sec;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &sec, &consumed) != 6)
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec < 0 || sec >= 61) return std::nullopt;
  const std::string zone = text.substr(static_cast<size_t>(consumed));
  int offset_s = 0;
  if (zone == "Z" || zone == "z") {
    offset_s = 0;
  } else {
    int zh, zm, n = 0;
    char sign;
    if (std::sscanf(zone.c_str(), "%c%2d:%2d%n", &sign, &zh, &zm, &n) != 3 || static_cast<size_t>(n) != zone.size() ||
        (sign != '+' && sign != '-') || zh > 23 || zm > 59)
      return std::nullopt;
    offset_s = (sign == '+' ? 1 : -1) * (zh * 3600 + zm * 60);
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  const int whole = static_cast<int>(sec);
  tm.tm_sec = whole;
  const int64_t t = static_cast<int64_t>(timegm(&tm)) - offset_s;
  return t * 1000000 + static_cast<int64_t>((sec - whole) * 1e6 + 0.5);
}

Result<uint64_t> position_before(ChangeFeed& feed, int64_t at_us) {
  uint64_t lo = 1, hi = feed.head() + 1;  // answer in [lo, hi]; hi = no such event
  std::vector<RecordedEvent> one;
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    one.clear();
    if (auto s = feed.read(mid - 1, 1, &one); !s) return s;
    if (one.empty()) return Status::io_error("no event at position " + std::to_string(mid));
    if (one.front().committed_at_us >= at_us)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo - 1;
}

namespace {

// Offline: every lease of the subscriber rewritten free, from the start or from a time.
int reset_checkpoint_cosmos(const RepairFlags& flags, Session& session, const Subscriber& sub,
                            std::optional<int64_t> at_us) {
  if (flags.position && *flags.position != 0)
    return usage("--position " + std::to_string(*flags.position) + ": change feed '" + sub.feed->id +
                 "' reads Cosmos DB store '" + sub.feed->get_string("events") +
                 "', which has no global positions (each instance numbers the events it reads itself, per partition "
                 "key range), so no position but 0 (from the start) names a point in the feed; give --position 0 or "
                 "--time");
  auto events = session.cosmos_feed(*sub.feed);
  if (!events) return fail("change feed '" + sub.feed->id + "': " + events.status().message());
  // Rounded down to the millisecond: the lease keeps milliseconds, the feed reads whole seconds.
  const int64_t start_ms = at_us ? *at_us / 1000 : 0;
  auto ranges = (*events)->reset_leases(flags.subscriber, start_ms);
  if (!ranges) return cosmos_failure(ranges.status());
  std::printf("subscriber '%s': leases of %zu partition key ranges reset (free, no continuation) to %s; the next serve "
              "delivers it again every event %s\n",
              flags.subscriber.c_str(), ranges->size(), at_us ? iso8601_ms(start_ms).c_str() : "the start of the feed",
              at_us ? ("committed from " + flags.time + " on (to the second: up to a second earlier too)").c_str()
                    : "in the change feed");
  if (sub.node->kind == "projection")
    std::printf(
        "note: a projection skips events its snapshots already hold; to rebuild its read model use 'orderflow repair "
        "rebuild-projection'\n");
  return 0;
}

int reset_checkpoint(const RepairFlags& flags, const graph::KindRegistry& registry) {
  if (flags.position.has_value() == !flags.time.empty())
    return usage("reset-checkpoint needs exactly one of --position and --time");
  std::optional<int64_t> at_us;
  if (!flags.time.empty()) {
    at_us = parse_iso8601(flags.time);
    if (!at_us) return usage("--time '" + flags.time + "' is not ISO 8601 with a zone (e.g. 2026-12-01T10:00:00Z)");
  }
  Session session(flags, registry);
  if (int rc = session.open(); rc != 0) return rc;
  const auto subs = subscribers(session.def());
  auto it = std::find_if(subs.begin(), subs.end(), [&](const Subscriber& s) { return s.node->id == flags.subscriber; });
  if (it == subs.end()) {
    std::string known;
    for (const auto& s : subs) known += (known.empty() ? "" : ", ") + s.node->id;
    return usage("no subscriber '" + flags.subscriber + "' of a change feed in " + flags.file +
                 (known.empty() ? "" : " (subscribers: " + known + ")"));
  }
  if (session.reads_cosmos(*it->feed)) return reset_checkpoint_cosmos(flags, session, *it, at_us);
  auto feed = session.feed(*it->feed);
  if (!feed) return fail("change feed '" + it->feed->id + "': " + feed.status().message());
  const uint64_t head = (*feed)->head();
  uint64_t target = 0;
  if (at_us) {
    auto p = position_before(**feed, *at_us);
    if (!p) return fail(p.status().message());
    target = *p;
  } else {
    target = *flags.position;
    if (target > head)
      return fail("--position " + std::to_string(target) + " is beyond the head of change feed '" + it->feed->id +
                  "' (" + std::to_string(head) + ")");
  }
  auto old = (*feed)->load_checkpoint(flags.subscriber);
  if (!old) return fail(old.status().message());
  if (auto s = (*feed)->save_checkpoint(flags.subscriber, target); !s) return fail(s.message());
  std::printf("subscriber '%s': checkpoint %" PRIu64 " -> %" PRIu64 " (head %" PRIu64
              "); the next serve delivers it the %" PRIu64 " events after %" PRIu64 "\n",
              flags.subscriber.c_str(), *old, target, head, head - target, target);
  if (it->node->kind == "projection")
    std::printf(
        "note: a projection skips events its snapshots already hold, and a checkpoint beyond what they cover is moved "
        "back at start; to rebuild its read model use 'orderflow repair rebuild-projection'\n");
  return 0;
}

int rebuild_projection(const RepairFlags& flags, const graph::KindRegistry& registry) {
  Session session(flags, registry);
  if (int rc = session.open(); rc != 0) return rc;
  std::vector<const graph::NodeDef*> projections;
  for (const auto& n : session.def().nodes)
    if (n.kind == "projection" && (flags.projection.empty() || n.id == flags.projection)) projections.push_back(&n);
  if (projections.empty())
    return usage(flags.projection.empty() ? "no projection in " + flags.file
                                          : "no projection '" + flags.projection + "' in " + flags.file);
  if (projections.size() > 1) return usage("several projections in " + flags.file + ": name one with --projection");
  const graph::NodeDef& proj = *projections.front();
  const std::string store = proj.get_string("snapshots");
  // Every projection that writes this store loses its snapshots too: reset them all.
  std::vector<Subscriber> affected;
  for (const auto& s : subscribers(session.def()))
    if (s.node->kind == "projection" && s.node->get_string("snapshots") == store) affected.push_back(s);
  // Cosmos DB feeds: refuse while an instance holds a lease, before anything is dropped.
  std::vector<connectors::CosmosEventStore*> cosmos(affected.size(), nullptr);
  for (size_t i = 0; i < affected.size(); ++i) {
    auto c = session.cosmos_feed(*affected[i].feed);
    if (!c) return fail("change feed '" + affected[i].feed->id + "': " + c.status().message());
    cosmos[i] = *c;
    if (cosmos[i] != nullptr)
      if (auto st = cosmos[i]->check_leases_free(affected[i].node->id); !st) return cosmos_failure(st);
  }
  auto snaps = session.snapshots(store);
  if (!snaps) return fail("snapshot store '" + store + "': " + snaps.status().message());
  // Snapshots first: should the checkpoint reset not happen, the start finds a checkpoint
  // ahead of what the (now empty) store covers and replays anyway. (A Cosmos DB snapshot
  // store keeps no such mark: rerun the repair when it stopped half way.)
  if (auto s = (*snaps)->clear(); !s) return fail("cannot drop the snapshots in '" + store + "': " + s.message());
  for (size_t i = 0; i < affected.size(); ++i) {
    const Subscriber& s = affected[i];
    if (cosmos[i] != nullptr) {
      auto ranges = cosmos[i]->reset_leases(s.node->id, 0);
      if (!ranges) return cosmos_failure(ranges.status());
      std::printf("projection '%s': dropped the snapshots in store '%s', leases of %zu partition key ranges -> the "
                  "start of the change feed; the next serve rebuilds it from the event store\n",
                  s.node->id.c_str(), store.c_str(), ranges->size());
      continue;
    }
    auto feed = session.feed(*s.feed);
    if (!feed) return fail("change feed '" + s.feed->id + "': " + feed.status().message());
    auto old = (*feed)->load_checkpoint(s.node->id);
    if (!old) return fail(old.status().message());
    if (auto st = (*feed)->save_checkpoint(s.node->id, 0); !st) return fail(st.message());
    std::printf("projection '%s': dropped the snapshots in store '%s', checkpoint %" PRIu64
                " -> 0 (head %" PRIu64 "); the next serve rebuilds it from the event store\n",
                s.node->id.c_str(), store.c_str(), *old, (*feed)->head());
  }
  if (affected.empty())
    std::printf("projection '%s': dropped the snapshots in store '%s' (it reads no change feed)\n", proj.id.c_str(),
                store.c_str());
  return 0;
}


// ---- against a running server (--server URL): its admin API ------------------------

// 0 when the flags suit --server (the token read), else the exit code.
int check_server(RepairFlags& flags) {
  if (!flags.file.empty() || !flags.data_dir.empty())
    return usage("--server repairs the running server: give no FILE and no --data-dir with it");
  if (std::string why = resolve_access(&flags.server); !why.empty()) return usage(why);
  return 0;
}

int64_t num(const google::protobuf::Struct& s, const char* k, int64_t missing = -1) {
  auto it = s.fields().find(k);
  return it != s.fields().end() && it->second.has_number_value() ? static_cast<int64_t>(it->second.number_value())
                                                                  : missing;
}

std::string text(const google::protobuf::Struct& s, const char* k) {
  auto it = s.fields().find(k);
  return it != s.fields().end() ? it->second.string_value() : std::string();
}

// GET /api/v1/admin/subscribers, parsed; the exit code when it failed.
int get_subscribers(const RepairFlags& flags, std::vector<google::protobuf::Struct>* out) {
  const AdminAnswer a = admin_call(flags.server, "GET", "/api/v1/admin/subscribers");
  if (a.status != 200) return admin_failure("repair", a, 1);
  google::protobuf::Struct st;
  if (!google::protobuf::util::JsonStringToMessage(a.body, &st).ok()) return fail("the server's answer is not JSON");
  auto subs = st.fields().find("subscribers");
  if (subs == st.fields().end() || !subs->second.has_list_value()) return fail("the server's answer has no subscribers");
  for (const auto& v : subs->second.list_value().values()) out->push_back(v.struct_value());
  return 0;
}

int list_checkpoints_remote(RepairFlags& flags) {
  if (int rc = check_server(flags); rc != 0) return rc;
  std::vector<google::protobuf::Struct> subs;
  if (int rc = get_subscribers(flags, &subs); rc != 0) return rc;
  std::vector<std::string> feeds;
  for (const auto& s : subs)
    if (std::find(feeds.begin(), feeds.end(), text(s, "feed")) == feeds.end()) feeds.push_back(text(s, "feed"));
  for (const auto& f : feeds) {
    const google::protobuf::Struct* first = nullptr;
    for (const auto& s : subs)
      if (text(s, "feed") == f && first == nullptr) first = &s;
    std::printf("change feed '%s' (store '%s'): head %" PRId64 "\n", f.c_str(), text(*first, "store").c_str(),
                num(*first, "head", 0));
    std::printf("  %-24s %12s %10s %12s\n", "subscriber", "checkpoint", "behind", "covered");
    for (const auto& s : subs) {
      if (text(s, "feed") != f) continue;
      const int64_t covered = num(s, "covered");
      std::printf("  %-24s %12" PRId64 " %10" PRId64 " %12s\n", text(s, "subscriber").c_str(), num(s, "checkpoint", 0),
                  num(s, "behind", 0), covered >= 0 ? std::to_string(covered).c_str() : "-");
    }
  }
  if (feeds.empty()) std::printf("no change feed in the server at %s\n", flags.server.url.c_str());
  return 0;
}

int reset_checkpoint_remote(RepairFlags& flags) {
  if (flags.position.has_value() == !flags.time.empty())
    return usage("reset-checkpoint needs exactly one of --position and --time");
  if (int rc = check_server(flags); rc != 0) return rc;
  JsonWriter w;
  w.begin_object();
  if (flags.position) w.field("position", *flags.position);
  else w.field("time", flags.time);
  w.end_object();
  const AdminAnswer a = admin_call(flags.server, "POST",
                                   "/api/v1/admin/subscribers/" + connectors::percent_encode(flags.subscriber) + "/reset", w.take());
  if (a.status != 200) return admin_failure("repair", a, 2);
  google::protobuf::Struct st;
  if (!google::protobuf::util::JsonStringToMessage(a.body, &st).ok()) return fail("the server's answer is not JSON");
  const int64_t from = num(st, "from", 0), to = num(st, "to", 0), head = num(st, "head", to);
  std::printf("subscriber '%s': checkpoint %" PRId64 " -> %" PRId64 " (head %" PRId64
              "); the running server delivers it the %" PRId64 " events after %" PRId64 " now\n",
              flags.subscriber.c_str(), from, to, head, head > to ? head - to : 0, to);
  if (text(st, "kind") == "projection")
    std::printf(
        "note: a projection skips events its snapshots already hold; to rebuild its read model use 'orderflow repair "
        "rebuild-projection'\n");
  return 0;
}

int rebuild_projection_remote(RepairFlags& flags) {
  if (int rc = check_server(flags); rc != 0) return rc;
  std::string projection = flags.projection;
  if (projection.empty()) {
    std::vector<google::protobuf::Struct> subs;
    if (int rc = get_subscribers(flags, &subs); rc != 0) return rc;
    std::vector<std::string> found;
    for (const auto& s : subs)
      if (text(s, "kind") == "projection") found.push_back(text(s, "subscriber"));
    if (found.empty()) return usage("the server at " + flags.server.url + " runs no projection");
    if (found.size() > 1) return usage("the server runs several projections: name one with --projection");
    projection = found.front();
  }
  const AdminAnswer a =
      admin_call(flags.server, "POST", "/api/v1/admin/projections/" + connectors::percent_encode(projection) + "/rebuild");
  if (a.status != 200) return admin_failure("repair", a, 2);
  google::protobuf::Struct st;
  if (!google::protobuf::util::JsonStringToMessage(a.body, &st).ok()) return fail("the server's answer is not JSON");
  std::printf("projection '%s': dropped the snapshots in store '%s', checkpoint %" PRId64 " -> 0 (head %" PRId64
              "); the running server rebuilds it from the event store now\n",
              text(st, "projection").c_str(), text(st, "store").c_str(), num(st, "from", 0), num(st, "head", 0));
  auto also = st.fields().find("also");
  if (also != st.fields().end() && also->second.has_list_value())
    for (const auto& v : also->second.list_value().values())
      std::printf("projection '%s' writes the same store: rebuilt too\n", v.string_value().c_str());
  return 0;
}

// Either --server, or FILE and --data-dir.
int local_or_remote(RepairFlags& flags, int (*local)(const RepairFlags&, const graph::KindRegistry&),
                    int (*remote)(RepairFlags&), const graph::KindRegistry& registry) {
  if (!flags.server.url.empty()) return remote(flags);
  if (flags.file.empty())
    return usage("give FILE and --data-dir (a stopped server's data directory; none for Cosmos DB stores), or --server "
                 "URL (a running one)");
  return local(flags, registry);
}

}  // namespace

void add_repair_command(CLI::App& app, const graph::KindRegistry& registry, int* exit_code) {
  // Owned by the parser's lifetime: the flags live as long as the callbacks that read them.
  auto flags = std::make_shared<RepairFlags>();
  CLI::App* repair = app.add_subcommand(
      "repair",
      "replay and repair (checkpoints, projections): a stopped server's data directory, or a running server with "
      "--server URL");
  repair->require_subcommand(1);
  auto common = [&](CLI::App* cmd) {
    cmd->add_option("FILE", flags->file, "graph definition (YAML) the server ran (not with --server)");
    cmd->add_option("--data-dir", flags->data_dir,
                    "the data directory of the stopped server (not with --server; not needed when every store is "
                    "Cosmos DB: stop every instance instead)");
    add_server_options(cmd, &flags->server, "repair it while it runs");
  };
  CLI::App* list = repair->add_subcommand("checkpoints", "list each change feed's head and its subscribers' checkpoints");
  common(list);
  list->callback([flags, &registry, exit_code] { *exit_code = local_or_remote(*flags, list_checkpoints, list_checkpoints_remote, registry); });

  CLI::App* reset = repair->add_subcommand(
      "reset-checkpoint", "move a subscriber's checkpoint: the next serve redelivers the events after it");
  common(reset);
  reset->add_option("--subscriber", flags->subscriber, "node id of the change feed's subscriber (e.g. saga)")->required();
  auto* pos = reset->add_option("--position", flags->position, "the new checkpoint: a feed position (0 = from the start)");
  auto* time = reset->add_option("--time", flags->time,
                                 "redeliver every event committed at or after this ISO 8601 time (with a zone)");
  pos->excludes(time);
  reset->callback([flags, &registry, exit_code] { *exit_code = local_or_remote(*flags, reset_checkpoint, reset_checkpoint_remote, registry); });

  CLI::App* rebuild = repair->add_subcommand(
      "rebuild-projection", "drop a projection's snapshots and reset its checkpoint: the next serve rebuilds it");
  common(rebuild);
  rebuild->add_option("--projection", flags->projection, "the projection's node id (needed when there are several)");
  rebuild->callback([flags, &registry, exit_code] { *exit_code = local_or_remote(*flags, rebuild_projection, rebuild_projection_remote, registry); });
}

}  // namespace orderflow::server
