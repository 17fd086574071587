#include "server/admin.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>

#include "graph/feed.h"
#include "graph/json.h"
#include "graph/log.h"
#include "server/dlq_core.h"
#include "server/repair.h"

namespace orderflow::server {
namespace {

using connectors::AdminReply;
using connectors::AdminRequest;
using google::protobuf::Struct;

// How long a reset waits for the subscriber's outstanding batches (a saga's commands commit
// within their deadline; a projection flushes at once).
constexpr auto kPauseTimeout = std::chrono::seconds(20);
constexpr int64_t kMaxListLimit = 10000;
constexpr int64_t kDefaultKafkaTimeoutS = 10;
constexpr int64_t kDefaultReplayTimeoutS = 10;  // per parked command

AdminReply fail(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument: return AdminReply::fail(400, s.message());
    case StatusCode::kNotFound: return AdminReply::fail(404, s.message());
    case StatusCode::kConflict: return AdminReply::fail(409, s.message());
    case StatusCode::kUnavailable: return AdminReply::fail(503, s.message());
    default: return AdminReply::fail(500, s.message());
  }
}

// A Kafka failure: 404 for what is not there, else 502 (the brokers did not answer or refused).
// A 409 for what a running server cannot do on Cosmos DB stores, pointing at the offline
// repair (which needs no coordination between instances: they are all stopped).
AdminReply cosmos_offline(const std::string& why, const std::string& repair_args) {
  return AdminReply::fail(409, why + "; with every instance stopped, 'orderflow repair " + repair_args +
                                   "' does it offline (it refuses while a change-feed lease is held)");
}

AdminReply kafka_fail(const Status& s) {
  if (s.code() == StatusCode::kNotFound) return AdminReply::fail(404, s.message());
  return AdminReply::fail(502, "Kafka: " + s.message());
}

// The request body as a JSON object; an empty body is {} when `allow_empty`.
Result<Struct> parse_body(const std::string& body, bool allow_empty) {
  Struct st;
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) {
    if (allow_empty) return st;
    return Status::invalid_argument("the body must be a JSON object");
  }
  if (auto s = google::protobuf::util::JsonStringToMessage(body, &st); !s.ok())
    return Status::invalid_argument("malformed JSON body (a JSON object is needed): " + std::string(s.message()));
  return st;
}

// A whole number >= 0 named `key`, nullopt when absent; an error for anything else.
Result<std::optional<int64_t>> count_field(const Struct& st, const char* key) {
  auto it = st.fields().find(key);
  if (it == st.fields().end() || it->second.has_null_value()) return std::optional<int64_t>();
  const double v = it->second.has_number_value() ? it->second.number_value() : -1;
  if (!it->second.has_number_value() || v < 0 || v > 9007199254740992.0 || std::floor(v) != v)
    return Status::invalid_argument(std::string("\"") + key + "\" must be a whole number >= 0");
  return std::optional<int64_t>(static_cast<int64_t>(v));
}

Result<std::optional<std::string>> text_field(const Struct& st, const char* key) {
  auto it = st.fields().find(key);
  if (it == st.fields().end() || it->second.has_null_value()) return std::optional<std::string>();
  if (!it->second.has_string_value()) return Status::invalid_argument(std::string("\"") + key + "\" must be a string");
  return std::optional<std::string>(it->second.string_value());
}

Result<bool> flag_field(const Struct& st, const char* key) {
  auto it = st.fields().find(key);
  if (it == st.fields().end() || it->second.has_null_value()) return false;
  if (!it->second.has_bool_value()) return Status::invalid_argument(std::string("\"") + key + "\" must be true or false");
  return it->second.bool_value();
}

// A query parameter that must be a whole number in [lo, hi]; nullopt when absent.
Result<std::optional<int64_t>> query_count(const AdminRequest& r, const char* key, int64_t lo, int64_t hi) {
  auto it = r.query.find(key);
  if (it == r.query.end()) return std::optional<int64_t>();
  const std::string& v = it->second;
  if (v.empty() || v.size() > 15 || v.find_first_not_of("0123456789") != std::string::npos || std::stoll(v) < lo ||
      std::stoll(v) > hi)
    return Status::invalid_argument(std::string(key) + " must be a whole number from " + std::to_string(lo) + " to " +
                                    std::to_string(hi));
  return std::optional<int64_t>(std::stoll(v));
}

class Admin {
 public:
  explicit Admin(AdminContext c) : c_(std::move(c)) {}

  // ---- change feed subscribers ------------------------------------------------------

  AdminReply subscribers(const AdminRequest&) {
    Pipeline* p = pipeline();
    if (p == nullptr) return AdminReply::fail(503, "the pipeline is starting");
    JsonWriter w;
    w.begin_object().field("instance", c_.instance_id).key("subscribers").begin_array();
    for (FeedControl* feed : feeds(*p)) {
      const graph::NodeDef* feed_def = node_def(feed->feed_id());
      for (const auto& s : feed->positions()) {
        w.begin_object().field("feed", feed->feed_id());
        w.field("store", feed_def != nullptr ? feed_def->get_string("events") : std::string());
        w.field("subscriber", s.subscriber).field("kind", s.kind);
        w.field("checkpoint", s.checkpoint).field("head", s.head);
        w.field("behind", s.head > s.checkpoint ? s.head - s.checkpoint : uint64_t{0});
        w.field("resettable", s.resettable);
        if (!s.resettable) w.field("not_resettable_because", s.not_resettable_because);
        w.field("running", s.running);
        w.key("covered");
        auto covered = covered_of(s.subscriber);
        if (covered)
          w.value(*covered);
        else
          w.raw("null");
        w.end_object();
      }
    }
    w.end_array().end_object();
    return AdminReply::json(w.take());
  }

  AdminReply reset(const AdminRequest& r) {
    Pipeline* p = pipeline();
    if (p == nullptr) return AdminReply::fail(503, "the pipeline is starting");
    const std::string& id = r.params.at(0);
    auto body = parse_body(r.body, false);
    if (!body) return fail(body.status());
    auto position = count_field(*body, "position");
    if (!position) return fail(position.status());
    auto time = text_field(*body, "time");
    if (!time) return fail(time.status());
    if (position->has_value() == time->has_value())
      return AdminReply::fail(400, "give exactly one of \"position\" (a feed position) and \"time\" (ISO 8601)");
    FeedControl* feed = nullptr;
    SubscriberPosition where;
    if (!find_subscriber(*p, id, &feed, &where)) return AdminReply::fail(404, "no subscriber '" + id + "' " + known(*p));
    if (!feed->global_positions())
      return cosmos_offline(where.not_resettable_because,
                            "reset-checkpoint GRAPH.yaml --subscriber " + id + " (--position 0 | --time T)");
    const uint64_t head = feed->store_feed().head();
    uint64_t target = 0;
    if (time->has_value()) {
      auto at_us = parse_iso8601(**time);
      if (!at_us)
        return AdminReply::fail(400, "\"time\" '" + **time + "' is not ISO 8601 with a zone (e.g. 2026-12-01T10:00:00Z)");
      auto pos = position_before(feed->store_feed(), *at_us);
      if (!pos) return fail(pos.status());
      target = *pos;
    } else {
      target = static_cast<uint64_t>(**position);
      if (target > head)
        return AdminReply::fail(400, "position " + std::to_string(target) + " is beyond the head of change feed '" +
                                         feed->feed_id() + "' (" + std::to_string(head) + ")");
    }
    if (auto s = feed->pause(id, kPauseTimeout); !s) return fail(s);
    auto old = feed->resume(id, target, false);
    if (!old) return fail(old.status());
    log::info("admin: subscriber's checkpoint reset", {{"subscriber", id}, {"from", std::to_string(*old)},
                                                        {"to", std::to_string(target)}});
    JsonWriter w;
    w.begin_object().field("subscriber", id).field("feed", feed->feed_id()).field("kind", where.kind);
    w.field("from", *old).field("to", target).field("head", head).end_object();
    return AdminReply::json(w.take());
  }

  AdminReply rebuild(const AdminRequest& r) {
    Pipeline* p = pipeline();
    if (p == nullptr) return AdminReply::fail(503, "the pipeline is starting");
    const std::string& id = r.params.at(0);
    if (auto body = parse_body(r.body, true); !body) return fail(body.status());
    const graph::NodeDef* proj = node_def(id);
    if (proj == nullptr || proj->kind != "projection" || p->find(id) == nullptr) {
      std::string names;
      for (const auto& n : c_.def->nodes)
        if (n.kind == "projection" && p->find(n.id) != nullptr) names += (names.empty() ? "" : ", ") + n.id;
      return AdminReply::fail(404, "no projection '" + id + "' runs in this server" +
                                       (names.empty() ? std::string() : " (projections: " + names + ")"));
    }
    const std::string store = proj->get_string("snapshots");
    auto store_def = c_.def->stores.find(store);
    const std::string offline = "rebuild-projection GRAPH.yaml --projection " + id;
    if (store_def != c_.def->stores.end() && store_def->second.kind != "rocksdb" && store_def->second.kind != "memory")
      return cosmos_offline("snapshot store '" + store + "' is kind " + store_def->second.kind +
                                ": a running server clears only rocksdb and memory snapshot stores for a rebuild",
                            offline);
    // Every projection that writes this store loses its snapshots too: all of them pause,
    // the store is cleared, all restart from 0.
    struct Paused {
      FeedControl* feed;
      std::string id;
    };
    std::vector<Paused> affected;
    for (const auto& n : c_.def->nodes) {
      if (n.kind != "projection" || n.get_string("snapshots") != store || p->find(n.id) == nullptr) continue;
      FeedControl* feed = nullptr;
      SubscriberPosition where;
      if (!find_subscriber(*p, n.id, &feed, &where)) continue;  // reads no feed here
      if (!feed->global_positions()) return cosmos_offline(where.not_resettable_because, offline);
      affected.push_back({feed, n.id});
    }
    auto snaps = c_.stores->snapshot_store(store);
    if (!snaps) return fail(snaps.status());
    std::vector<Paused> paused;
    auto resume_unchanged = [&] {
      for (auto& x : paused) (void)x.feed->resume(x.id, std::nullopt, false);
    };
    for (auto& a : affected) {
      if (auto s = a.feed->pause(a.id, kPauseTimeout); !s) {
        resume_unchanged();
        return fail(s);
      }
      paused.push_back(a);
    }
    // Paused: none of them writes the store now (command lanes only read it, and fold a
    // stream from its events when its snapshot is gone).
    const Status cleared = (*snaps)->clear();
    if (!cleared)
      log::error("admin: the snapshots could not all be dropped; the projections re-fold from position 0 anyway",
                 {{"store", store}, {"error", cleared.to_string()}});
    uint64_t from = 0;
    Status resumed;
    for (auto& x : paused) {
      auto old = x.feed->resume(x.id, uint64_t{0}, true);
      if (!old && resumed) resumed = old.status();
      if (old && x.id == id) from = *old;
    }
    if (!cleared) return AdminReply::fail(500, "cannot drop the snapshots in '" + store + "': " + cleared.message());
    if (!resumed) return fail(resumed);
    log::info("admin: projection rebuilding from the event store", {{"projection", id}, {"store", store},
                                                                     {"from", std::to_string(from)}});
    JsonWriter w;
    w.begin_object().field("projection", id).field("store", store).field("from", from).field("to", uint64_t{0});
    w.field("head", affected.empty() ? uint64_t{0} : affected.front().feed->store_feed().head());
    w.key("also").begin_array();
    for (const auto& x : paused)
      if (x.id != id) w.value(x.id);
    w.end_array().end_object();
    return AdminReply::json(w.take());
  }

  // ---- dead letters -----------------------------------------------------------------

  AdminReply dead_letters(const AdminRequest& r) {
    Pipeline* p = pipeline();
    if (p == nullptr) return AdminReply::fail(503, "the pipeline is starting");
    auto limit = query_count(r, "limit", 1, kMaxListLimit);
    if (!limit) return fail(limit.status());
    auto partition = query_count(r, "partition", 0, INT32_MAX);
    if (!partition) return fail(partition.status());
    auto from = query_count(r, "from_offset", 0, INT64_MAX / 2);
    if (!from) return fail(from.status());
    auto timeout = query_count(r, "timeout_s", 1, 120);
    if (!timeout) return fail(timeout.status());
    std::string node;
    if (auto it = r.query.find("node"); it != r.query.end()) node = it->second;
    auto sources = sources_of(*p, node);
    if (!sources) return fail(sources.status());
    dlq::Selection sel;
    sel.partition = partition->has_value() ? std::optional<int32_t>(static_cast<int32_t>(**partition)) : std::nullopt;
    sel.from_offset = from->value_or(0);
    sel.limit = static_cast<size_t>(limit->value_or(dlq::kDefaultListLimit));
    JsonWriter w;
    w.begin_object().field("instance", c_.instance_id).key("sources").begin_array();
    for (const auto& t : *sources) {
      std::vector<dlq::DeadLetter> found;
      bool more = false;
      Status s = dlq::read_dead_letters(t, sel, std::chrono::seconds(timeout->value_or(kDefaultKafkaTimeoutS)), &found,
                                        &more);
      // A dead-letter topic not made yet holds nothing; a partition asked for that is not there is a 404.
      if (!s && !(s.code() == StatusCode::kNotFound && !sel.partition)) return kafka_fail(s);
      w.begin_object().field("node", t.node_id).field("topic", t.topic).field("brokers", t.brokers);
      w.field("more", more).key("dead_letters").begin_array();
      for (const auto& d : found) {
        w.begin_object();
        dlq::describe(w, t.topic, d);
        w.end_object();
      }
      w.end_array().end_object();
    }
    w.end_array().end_object();
    return AdminReply::json(w.take());
  }

  AdminReply dead_letter(const AdminRequest& r) {
    Pipeline* p = pipeline();
    if (p == nullptr) return AdminReply::fail(503, "the pipeline is starting");
    auto number = [](const std::string& v, int64_t* out) {
      if (v.empty() || v.size() > 15 || v.find_first_not_of("0123456789") != std::string::npos) return false;
      *out = std::stoll(v);
      return true;
    };
    int64_t partition = 0, offset = 0;
    if (!number(r.params.at(0), &partition) || partition > INT32_MAX || !number(r.params.at(1), &offset))
      return AdminReply::fail(400, "the path needs /dead-letters/PARTITION/OFFSET with whole numbers");
    auto timeout = query_count(r, "timeout_s", 1, 120);
    if (!timeout) return fail(timeout.status());
    auto t = one_source(*p, r.query.count("node") > 0 ? r.query.at("node") : "");
    if (!t) return fail(t.status());
    auto d = dlq::read_dead_letter(*t, static_cast<int32_t>(partition), offset,
                                   std::chrono::seconds(timeout->value_or(kDefaultKafkaTimeoutS)));
    if (!d) return kafka_fail(d.status());
    JsonWriter w;
    w.begin_object().field("node", t->node_id);
    dlq::describe_in_full(w, t->topic, *d, false);
    w.end_object();
    return AdminReply::json(w.take());
  }

  AdminReply replay(const AdminRequest& r) {
    Pipeline* p = pipeline();
    if (p == nullptr) return AdminReply::fail(503, "the pipeline is starting");
    auto body = parse_body(r.body, false);
    if (!body) return fail(body.status());
    auto node = text_field(*body, "node");
    auto all = flag_field(*body, "all");
    auto dry_run = flag_field(*body, "dry_run");
    auto partition = count_field(*body, "partition");
    auto offset = count_field(*body, "offset");
    auto from = count_field(*body, "from_offset");
    auto limit = count_field(*body, "limit");
    auto to = text_field(*body, "to");
    auto timeout_s = count_field(*body, "timeout_s");
    for (const Status& s : {node.status(), all.status(), dry_run.status(), partition.status(), offset.status(),
                            from.status(), limit.status(), to.status(), timeout_s.status()})
      if (!s) return fail(s);
    if (*all == offset->has_value())
      return AdminReply::fail(400, "give {\"partition\":P,\"offset\":O} (one dead letter) or {\"all\":true}");
    if (offset->has_value() && !partition->has_value())
      return AdminReply::fail(400, "\"offset\" needs \"partition\"");
    if (!*all && (from->has_value() || limit->has_value()))
      return AdminReply::fail(400, "\"from_offset\" and \"limit\" select dead letters for \"all\"");
    if (partition->has_value() && **partition > INT32_MAX) return AdminReply::fail(400, "\"partition\" is too large");
    const auto timeout = std::chrono::seconds(std::clamp<int64_t>(timeout_s->value_or(kDefaultKafkaTimeoutS), 1, 120));
    auto t = one_source(*p, node->value_or(""));
    if (!t) return fail(t.status());
    const std::string target_topic = to->value_or("");
    if (!target_topic.empty() && target_topic == t->topic)
      return AdminReply::fail(400, "\"to\" " + target_topic + " is the dead-letter topic itself");
    std::vector<dlq::DeadLetter> found;
    if (*all) {
      dlq::Selection sel;
      if (partition->has_value()) sel.partition = static_cast<int32_t>(**partition);
      sel.from_offset = from->value_or(0);
      sel.limit = static_cast<size_t>(limit->value_or(0));
      bool more = false;
      if (auto s = dlq::read_dead_letters(*t, sel, timeout, &found, &more); !s) return kafka_fail(s);
      if (found.empty())
        return AdminReply::fail(404, "no dead letters in " + t->topic +
                                         (sel.from_offset > 0 ? " from offset " + std::to_string(sel.from_offset) : ""));
    } else {
      auto one = dlq::read_dead_letter(*t, static_cast<int32_t>(**partition), **offset, timeout);
      if (!one) return kafka_fail(one.status());
      found.push_back(std::move(*one));
    }
    std::vector<dlq::Replayed> done;
    if (auto s = dlq::replay(*t, found, target_topic, *dry_run, timeout, &done); !s) return kafka_fail(s);
    JsonWriter w;
    w.begin_object().field("node", t->node_id).field("topic", t->topic).field("dry_run", *dry_run);
    auto item = [&](size_t i) {
      const auto& d = found[i];
      w.begin_object().field("partition", static_cast<int64_t>(d.partition)).field("offset", d.offset);
      w.key("key");
      if (d.has_key)
        w.value(dlq::as_text(d.key));
      else
        w.raw("null");
      w.field("size", static_cast<uint64_t>(d.value.size()));
    };
    w.key("replayed").begin_array();
    for (size_t i = 0; i < done.size(); ++i) {
      if (!done[i].refused.empty() || !done[i].delivery) continue;
      item(i);
      w.field("to", dlq::as_text(*dry_run ? done[i].topic
                                          : dlq::where(done[i].topic, done[i].to_partition, done[i].to_offset)));
      w.end_object();
    }
    w.end_array().key("refused").begin_array();
    for (size_t i = 0; i < done.size(); ++i) {
      if (done[i].refused.empty()) continue;
      item(i);
      w.field("reason", dlq::as_text(done[i].refused)).end_object();
    }
    w.end_array().key("failed").begin_array();
    for (size_t i = 0; i < done.size(); ++i) {
      if (!done[i].refused.empty() || done[i].delivery) continue;
      item(i);
      w.field("reason", done[i].delivery.message()).end_object();
    }
    w.end_array().end_object();
    for (const auto& d : done)
      if (d.refused.empty() && d.delivery && !*dry_run)
        log::info("admin: dead letter replayed", {{"dead_letter", dlq::where(t->topic, d.partition, d.offset)},
                                                  {"to", dlq::where(d.topic, d.to_partition, d.to_offset)}});
    return AdminReply::json(w.take());
  }

  // ---- parked saga reactions ---------------------------------------------------------

  AdminReply parked(const AdminRequest& r) {
    Pipeline* p = pipeline();
    if (p == nullptr) return AdminReply::fail(503, "the pipeline is starting");
    std::string node;
    if (auto it = r.query.find("node"); it != r.query.end()) node = it->second;
    JsonWriter w;
    w.begin_object().field("instance", c_.instance_id).key("parked").begin_array();
    for (ParkingControl* pc : parking_nodes(*p)) {
      if (!node.empty() && pc->parking_node_id() != node) continue;
      std::vector<ParkedCommand> records;
      if (Status s = pc->parked(&records); !s) return fail(s);
      for (const auto& rec : records) {
        w.begin_object().field("node", rec.node).field("command_id", rec.command_id);
        w.field("command", rec.command_name).field("stream", rec.stream);
        w.field("event_stream", rec.event_stream).field("event_version", rec.event_version);
        w.field("event_position", rec.event_position).field("reason", rec.reason);
        w.field("attempts", rec.attempts).field("parked_at_ms", rec.parked_at_ms);
        w.end_object();
      }
    }
    w.end_array().end_object();
    return AdminReply::json(w.take());
  }

  AdminReply replay_parked(const AdminRequest& r) {
    Pipeline* p = pipeline();
    if (p == nullptr) return AdminReply::fail(503, "the pipeline is starting");
    auto body = parse_body(r.body, false);
    if (!body) return fail(body.status());
    auto id = text_field(*body, "command_id");
    if (!id) return fail(id.status());
    auto all = flag_field(*body, "all");
    if (!all) return fail(all.status());
    auto node = text_field(*body, "node");
    if (!node) return fail(node.status());
    auto timeout_s = count_field(*body, "timeout_s");
    if (!timeout_s) return fail(timeout_s.status());
    if (id->has_value() == *all)
      return AdminReply::fail(400, "give exactly one of \"command_id\" and \"all\": true");
    const auto timeout = std::chrono::seconds(timeout_s->value_or(kDefaultReplayTimeoutS));
    // (node, command id) pairs to replay, found before any is resubmitted.
    std::vector<std::pair<ParkingControl*, std::string>> todo;
    for (ParkingControl* pc : parking_nodes(*p)) {
      if (node->has_value() && pc->parking_node_id() != **node) continue;
      std::vector<ParkedCommand> records;
      if (Status s = pc->parked(&records); !s) return fail(s);
      for (const auto& rec : records)
        if (*all || rec.command_id == **id) todo.emplace_back(pc, rec.command_id);
    }
    if (todo.empty() && id->has_value()) return AdminReply::fail(404, "no parked command '" + **id + "'");
    JsonWriter w;
    w.begin_object().key("replayed").begin_array();
    std::vector<ReplayOutcome> failed;
    for (const auto& [pc, command_id] : todo) {
      ReplayOutcome o = pc->replay(command_id, timeout);
      if (!o.removed) {
        failed.push_back(std::move(o));
        continue;
      }
      w.begin_object().field("node", pc->parking_node_id()).field("command_id", o.command_id);
      w.field("outcome", o.outcome).end_object();
    }
    w.end_array().key("failed").begin_array();
    for (const auto& o : failed)
      w.begin_object().field("command_id", o.command_id).field("reason", o.status.to_string()).end_object();
    w.end_array().end_object();
    return AdminReply::json(w.take());
  }

 private:
  Pipeline* pipeline() const { return c_.pipeline != nullptr ? c_.pipeline->load() : nullptr; }

  static std::vector<ParkingControl*> parking_nodes(Pipeline& p) {
    std::vector<ParkingControl*> out;
    for (const auto& n : p.nodes())
      if (auto* pc = dynamic_cast<ParkingControl*>(n.get()); pc != nullptr) out.push_back(pc);
    return out;
  }

  const graph::NodeDef* node_def(const std::string& id) const {
    for (const auto& n : c_.def->nodes)
      if (n.id == id) return &n;
    return nullptr;
  }

  static std::vector<FeedControl*> feeds(Pipeline& p) {
    std::vector<FeedControl*> out;
    for (const auto& n : p.nodes())
      if (auto* f = dynamic_cast<FeedControl*>(n.get()); f != nullptr) out.push_back(f);
    return out;
  }

  static bool find_subscriber(Pipeline& p, const std::string& id, FeedControl** feed, SubscriberPosition* where) {
    for (FeedControl* f : feeds(p))
      for (auto& s : f->positions())
        if (s.subscriber == id) {
          *feed = f;
          *where = std::move(s);
          return true;
        }
    return false;
  }

  static std::string known(Pipeline& p) {
    std::string names;
    for (FeedControl* f : feeds(p))
      for (const auto& s : f->positions()) names += (names.empty() ? "" : ", ") + s.subscriber;
    return names.empty() ? "(this server runs no change feed)" : "of a change feed in this server (subscribers: " + names + ")";
  }

  // A projection's mark of what its snapshots cover, when its store keeps one.
  std::optional<uint64_t> covered_of(const std::string& subscriber) {
    const graph::NodeDef* n = node_def(subscriber);
    if (n == nullptr || n->kind != "projection") return std::nullopt;
    auto snaps = c_.stores->snapshot_store(n->get_string("snapshots"));
    if (!snaps) return std::nullopt;
    auto covered = (*snaps)->covered_position(subscriber);
    if (!covered || !covered->has_value()) return std::nullopt;
    return **covered;
  }

  // The kafka_sources this server runs (only `node` when given: 404 when it is not one).
  Result<std::vector<dlq::Target>> sources_of(Pipeline& p, const std::string& node) {
    std::vector<dlq::Target> out;
    std::string names;
    for (const auto& n : c_.def->nodes) {
      if (n.kind != "kafka_source" || p.find(n.id) == nullptr) continue;
      names += (names.empty() ? "" : ", ") + n.id;
      if (!node.empty() && n.id != node) continue;
      auto t = dlq::target_of(*c_.def, *c_.registry, n, "", true);
      if (!t) return Status::internal("kafka_source '" + n.id + "': " + t.status().message());
      out.push_back(std::move(*t));
    }
    if (!node.empty() && out.empty())
      return Status::not_found("no kafka_source '" + node + "' runs in this server" +
                               (names.empty() ? std::string() : " (it runs " + names + ")"));
    return out;
  }

  // The one source a request means: `node`, or the only one.
  Result<dlq::Target> one_source(Pipeline& p, const std::string& node) {
    auto sources = sources_of(p, node);
    if (!sources) return sources.status();
    if (sources->empty()) return Status::not_found("this server runs no kafka_source");
    if (sources->size() > 1) {
      std::string names;
      for (const auto& t : *sources) names += (names.empty() ? "" : ", ") + t.node_id;
      return Status::invalid_argument("this server runs several kafka_sources (" + names + "): name one with \"node\"");
    }
    return std::move(sources->front());
  }

  AdminContext c_;
};

}  // namespace

std::vector<connectors::AdminRoute> admin_routes(const AdminContext& context) {
  auto admin = std::make_shared<Admin>(context);
  auto bind = [admin](AdminReply (Admin::*f)(const AdminRequest&)) {
    return [admin, f](const AdminRequest& r) { return ((*admin).*f)(r); };
  };
  return {
      {"GET", {"subscribers"}, bind(&Admin::subscribers), false},  // answers at once: not behind a slow one
      {"POST", {"subscribers", "*", "reset"}, bind(&Admin::reset)},
      {"POST", {"projections", "*", "rebuild"}, bind(&Admin::rebuild)},
      {"GET", {"dead-letters"}, bind(&Admin::dead_letters)},
      {"GET", {"dead-letters", "*", "*"}, bind(&Admin::dead_letter)},
      {"POST", {"dead-letters", "replay"}, bind(&Admin::replay)},
      {"GET", {"parked"}, bind(&Admin::parked), false},  // a store read: answers at once
      {"POST", {"parked", "replay"}, bind(&Admin::replay_parked)},
  };
}

}  // namespace orderflow::server
