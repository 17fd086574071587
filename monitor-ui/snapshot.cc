#include "snapshot.h"

#include <cctype>
#include <cstdio>
#include <stdexcept>
#include <utility>  // before cpprest (Boost.Asio with C++20)

#include <cpprest/json.h>

namespace orderflow::monitor {
namespace {

using web::json::value;

std::string str_field(const value& obj, const char* name) {
  if (!obj.has_field(name)) return {};
  const value& v = obj.at(name);
  if (v.is_string()) return v.as_string();
  if (v.is_null()) return {};
  return v.serialize();
}

double num_field(const value& obj, const char* name) {
  if (!obj.has_field(name)) return 0;
  const value& v = obj.at(name);
  if (v.is_number()) return v.as_double();
  return 0;
}

std::uint64_t count_field(const value& obj, const char* name) {
  double d = num_field(obj, name);
  return d > 0 ? static_cast<std::uint64_t>(d) : 0;
}

bool bool_field(const value& obj, const char* name) {
  if (!obj.has_field(name)) return false;
  const value& v = obj.at(name);
  return v.is_boolean() && v.as_bool();
}

std::optional<value> parse_object(const std::string& json, std::string* error) {
  std::error_code ec;
  value v = value::parse(json, ec);
  if (ec) {
    if (error) *error = "invalid JSON: " + ec.message();
    return std::nullopt;
  }
  if (!v.is_object()) {
    if (error) *error = "JSON document is not an object";
    return std::nullopt;
  }
  return v;
}

}  // namespace

std::optional<double> NodeMetrics::gauge(const std::string& name) const {
  for (const auto& [k, v] : gauges)
    if (k == name) return v;
  return std::nullopt;
}

std::uint64_t NodeMetrics::node_errors() const {
  if (client_errors_exact) return errors;
  return errors > client_errors ? errors - client_errors : 0;
}

bool NodeMetrics::has_lag() const { return gauge("lag_events") || gauge("consumer_lag") || gauge("lag_seconds"); }

double NodeMetrics::lag_events() const {
  if (auto v = gauge("lag_events")) return *v;
  return gauge("consumer_lag").value_or(0);
}

bool is_client_error_text(const std::string& text) {
  if (text.size() < 3 || text[0] != '4' || !std::isdigit(static_cast<unsigned char>(text[1])) ||
      !std::isdigit(static_cast<unsigned char>(text[2])))
    return false;
  return text.size() == 3 || text[3] == ' ' || text[3] == ':';
}

void split_errors(ErrorSplit& state, MetricsSnapshot& m) {
  for (NodeMetrics& n : m.nodes) {
    if (n.client_errors_exact) continue;
    const bool client = is_client_error_text(n.last_error);
    auto it = state.nodes.find(n.id);
    ErrorSplit::Seen seen;
    if (it == state.nodes.end() || n.errors < it->second.errors) {
      // First sight (or a restarted server): the errors so far are attributed to the kind of
      // the last one, the best the document allows.
      seen = {n.errors, client ? n.errors : 0};
    } else {
      seen = it->second;
      if (client) seen.client += n.errors - seen.errors;
      seen.errors = n.errors;
    }
    state.nodes[n.id] = seen;
    n.client_errors = seen.client;
  }
}

std::string ServerState::instance_id() const {
  if (has_metrics && !metrics.instance.empty()) return metrics.instance;
  return has_topology ? topology.instance : std::string();
}

std::string ServerState::label() const {
  const std::string id = instance_id();
  return id.empty() ? url : id;
}

const NodeMetrics* MetricsSnapshot::find(const std::string& id) const {
  for (const auto& n : nodes)
    if (n.id == id) return &n;
  return nullptr;
}

std::optional<Topology> parse_topology(const std::string& json, std::string* error) {
  auto doc = parse_object(json, error);
  if (!doc) return std::nullopt;
  try {
    Topology t;
    t.name = str_field(*doc, "name");
    t.service = str_field(*doc, "service");
    t.instance = str_field(*doc, "instance");
    if (!doc->has_field("nodes") || !doc->at("nodes").is_array()) {
      if (error) *error = "graph document has no \"nodes\" array";
      return std::nullopt;
    }
    for (const value& n : doc->at("nodes").as_array()) {
      if (!n.is_object()) continue;
      TopoNode node;
      node.id = str_field(n, "id");
      if (node.id.empty()) continue;
      node.kind = str_field(n, "kind");
      node.service = str_field(n, "service");
      node.input = str_field(n, "input");
      node.output = str_field(n, "output");
      node.source = bool_field(n, "source");
      if (n.has_field("params") && n.at("params").is_object())
        for (const auto& [k, v] : n.at("params").as_object())
          node.params.emplace_back(k, v.is_string() ? v.as_string() : v.serialize());
      t.nodes.push_back(std::move(node));
    }
    if (doc->has_field("edges") && doc->at("edges").is_array()) {
      for (const value& e : doc->at("edges").as_array()) {
        if (!e.is_object()) continue;
        TopoEdge edge;
        edge.from = str_field(e, "from");
        edge.to = str_field(e, "to");
        edge.type = str_field(e, "type");
        edge.store_mediated = bool_field(e, "storeMediated");
        if (edge.from.empty() || edge.to.empty()) continue;
        t.edges.push_back(std::move(edge));
      }
    }
    return t;
  } catch (const std::exception& ex) {
    if (error) *error = std::string("bad graph document: ") + ex.what();
    return std::nullopt;
  }
}

std::optional<MetricsSnapshot> parse_metrics(const std::string& json, std::string* error) {
  auto doc = parse_object(json, error);
  if (!doc) return std::nullopt;
  try {
    MetricsSnapshot m;
    m.uptime_seconds = num_field(*doc, "uptimeSeconds");
    m.instance = str_field(*doc, "instance");
    if (!doc->has_field("nodes") || !doc->at("nodes").is_array()) {
      if (error) *error = "metrics document has no \"nodes\" array";
      return std::nullopt;
    }
    for (const value& n : doc->at("nodes").as_array()) {
      if (!n.is_object()) continue;
      NodeMetrics nm;
      nm.id = str_field(n, "id");
      if (nm.id.empty()) continue;
      nm.kind = str_field(n, "kind");
      nm.in = count_field(n, "in");
      nm.out = count_field(n, "out");
      nm.errors = count_field(n, "errors");
      if (n.has_field("clientErrors") && n.at("clientErrors").is_number()) {
        nm.client_errors = count_field(n, "clientErrors");
        nm.client_errors_exact = true;
      }
      nm.busy_seconds = num_field(n, "busySeconds");
      nm.queue_depth = num_field(n, "queueDepth");
      nm.rate_in = num_field(n, "rateIn");
      nm.rate_out = num_field(n, "rateOut");
      nm.busy_share = num_field(n, "busyShare");
      if (n.has_field("latencyUs") && n.at("latencyUs").is_object()) {
        const value& l = n.at("latencyUs");
        nm.latency_us = {num_field(l, "count"), num_field(l, "mean"), num_field(l, "p50"),
                         num_field(l, "p95"),   num_field(l, "p99"),  num_field(l, "p999"),
                         num_field(l, "max"),   {},                   true};
        if (l.has_field("buckets") && l.at("buckets").is_array())
          for (const auto& b : l.at("buckets").as_array())
            if (b.is_array() && b.size() == 2 && b.at(0).is_number() && b.at(1).is_number())
              nm.latency_us.buckets.emplace_back(b.at(0).as_double(), b.at(1).as_double());
      }
      nm.last_error = str_field(n, "lastError");
      if (n.has_field("gauges") && n.at("gauges").is_object())
        for (const auto& [k, v] : n.at("gauges").as_object())
          if (v.is_number()) nm.gauges.emplace_back(k, v.as_double());
      m.nodes.push_back(std::move(nm));
    }
    return m;
  } catch (const std::exception& ex) {
    if (error) *error = std::string("bad metrics document: ") + ex.what();
    return std::nullopt;
  }
}

// ---- Admin API documents ----

namespace {

// A field that must be there with the right type; throws a message naming it (caught below).
struct Missing : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const value& need(const value& obj, const char* name, const std::string& where) {
  if (!obj.is_object() || !obj.has_field(name)) throw Missing(where + ": no \"" + name + "\"");
  return obj.at(name);
}

std::int64_t need_int(const value& obj, const char* name, const std::string& where) {
  const value& v = need(obj, name, where);
  if (!v.is_number() || !v.as_number().is_int64()) throw Missing(where + ": \"" + name + "\" is not an integer");
  return v.as_number().to_int64();
}

std::string need_string(const value& obj, const char* name, const std::string& where) {
  const value& v = need(obj, name, where);
  if (!v.is_string()) throw Missing(where + ": \"" + name + "\" is not a string");
  return v.as_string();
}

void need_array(const value& obj, const char* name, const std::string& where) {
  const value& v = need(obj, name, where);
  if (!v.is_array()) throw Missing(where + ": \"" + name + "\" is not an array");
}

template <typename T, typename F>
std::optional<T> parse_admin(const std::string& json, std::string* error, const char* what, F&& body) {
  auto doc = parse_object(json, error);
  if (!doc) return std::nullopt;
  try {
    return body(*doc);
  } catch (const std::exception& ex) {
    if (error) *error = std::string(what) + ": " + ex.what();
    return std::nullopt;
  }
}

}  // namespace

size_t DeadLetterSource::count(bool parked) const {
  size_t n = 0;
  for (const DeadLetter& d : dead_letters) n += d.parked() == parked ? 1 : 0;
  return n;
}

std::optional<DeadLetterList> parse_dead_letters(const std::string& json, std::string* error) {
  return parse_admin<DeadLetterList>(json, error, "dead-letter list", [](const value& doc) {
    DeadLetterList list;
    list.instance = str_field(doc, "instance");
    need_array(doc, "sources", "document");
    size_t si = 0;
    for (const value& src : doc.at("sources").as_array()) {
      const std::string where = "sources[" + std::to_string(si++) + "]";
      if (!src.is_object()) throw Missing(where + " is not an object");
      DeadLetterSource out;
      out.node = need_string(src, "node", where);
      out.topic = str_field(src, "topic");
      out.more = bool_field(src, "more");
      need_array(src, "dead_letters", where);
      size_t di = 0;
      for (const value& d : src.at("dead_letters").as_array()) {
        const std::string at = where + ".dead_letters[" + std::to_string(di++) + "]";
        if (!d.is_object()) throw Missing(at + " is not an object");
        DeadLetter dl;
        dl.topic = d.has_field("topic") ? str_field(d, "topic") : out.topic;
        dl.partition = static_cast<int>(need_int(d, "partition", at));
        dl.offset = need_int(d, "offset", at);
        if (d.has_field("timestamp_ms") && d.at("timestamp_ms").is_number())
          dl.timestamp_ms = d.at("timestamp_ms").as_double();
        if (d.has_field("key") && d.at("key").is_string()) dl.key = d.at("key").as_string();
        dl.reason = str_field(d, "reason");
        if (d.has_field("source") && d.at("source").is_object()) {
          const value& s = d.at("source");
          dl.has_source = true;
          dl.source_topic = str_field(s, "topic");
          dl.source_partition = static_cast<int>(need_int(s, "partition", at + ".source"));
          dl.source_offset = need_int(s, "offset", at + ".source");
        }
        dl.size = count_field(d, "size");
        dl.original_size = d.has_field("original_size") ? count_field(d, "original_size") : dl.size;
        dl.truncated = bool_field(d, "truncated");
        dl.headers_dropped = count_field(d, "headers_dropped");
        dl.kind = need_string(d, "kind", at);
        dl.replayable = bool_field(d, "replayable");
        if (!dl.replayable)
          dl.not_replayable_because = d.has_field("not_replayable_because")
                                          ? str_field(d, "not_replayable_because")
                                          : std::string("the server did not say it is replayable");
        out.dead_letters.push_back(std::move(dl));
      }
      list.sources.push_back(std::move(out));
    }
    return list;
  });
}

namespace {

// A replay answer: items named by DLQ partition and offset, or (by_command: the saga's parked
// commands) by command id, with the outcome in "outcome" instead of "to".
ReplayAnswer read_replay_answer(const value& doc, bool by_command) {
  ReplayAnswer a;
  if (!doc.has_field("replayed") && !doc.has_field("refused") && !doc.has_field("failed"))
    throw Missing("document: none of \"replayed\", \"refused\", \"failed\"");
  auto each = [&](const char* name, auto&& add) {
    if (!doc.has_field(name)) return;  // "failed": servers that send it (a field added later)
    need_array(doc, name, "document");
    size_t i = 0;
    for (const value& r : doc.at(name).as_array()) add(r, std::string(name) + "[" + std::to_string(i++) + "]");
  };
  each("replayed", [&](const value& r, const std::string& at) {
    ReplayAnswer::Replayed out;
    if (by_command) {
      out.command_id = need_string(r, "command_id", at);
      out.to = str_field(r, "outcome");
    } else {
      out = {static_cast<int>(need_int(r, "partition", at)), need_int(r, "offset", at), str_field(r, "to")};
    }
    a.replayed.push_back(std::move(out));
  });
  for (auto [name, list] : {std::pair{"refused", &a.refused}, std::pair{"failed", &a.failed}}) {
    each(name, [&, list = list](const value& r, const std::string& at) {
      ReplayAnswer::Refused out;
      if (by_command)
        out.command_id = need_string(r, "command_id", at);
      else
        out = {static_cast<int>(need_int(r, "partition", at)), need_int(r, "offset", at), ""};
      out.reason = str_field(r, "reason");
      list->push_back(std::move(out));
    });
  }
  return a;
}

}  // namespace

std::optional<ReplayAnswer> parse_replay_answer(const std::string& json, std::string* error) {
  return parse_admin<ReplayAnswer>(json, error, "replay answer",
                                   [](const value& doc) { return read_replay_answer(doc, false); });
}

std::optional<ReplayAnswer> parse_parked_replay_answer(const std::string& json, std::string* error) {
  return parse_admin<ReplayAnswer>(json, error, "parked replay answer",
                                   [](const value& doc) { return read_replay_answer(doc, true); });
}

std::optional<ParkedList> parse_parked(const std::string& json, std::string* error) {
  return parse_admin<ParkedList>(json, error, "parked list", [](const value& doc) {
    ParkedList list;
    list.instance = str_field(doc, "instance");
    need_array(doc, "parked", "document");
    size_t i = 0;
    for (const value& v : doc.at("parked").as_array()) {
      const std::string at = "parked[" + std::to_string(i++) + "]";
      if (!v.is_object()) throw Missing(at + " is not an object");
      ParkedCommand p;
      p.command_id = need_string(v, "command_id", at);
      p.node = str_field(v, "node");
      p.command = str_field(v, "command");
      p.stream = str_field(v, "stream");
      p.event_stream = str_field(v, "event_stream");
      p.event_version = v.has_field("event_version") ? need_int(v, "event_version", at) : 0;
      p.reason = str_field(v, "reason");
      p.attempts = v.has_field("attempts") ? need_int(v, "attempts", at) : 0;
      if (v.has_field("parked_at_ms") && v.at("parked_at_ms").is_number()) p.parked_at_ms = v.at("parked_at_ms").as_double();
      list.parked.push_back(std::move(p));
    }
    return list;
  });
}

std::optional<std::vector<SubscriberInfo>> parse_subscribers(const std::string& json, std::string* error) {
  return parse_admin<std::vector<SubscriberInfo>>(json, error, "subscriber list", [](const value& doc) {
    std::vector<SubscriberInfo> out;
    need_array(doc, "subscribers", "document");
    size_t i = 0;
    for (const value& v : doc.at("subscribers").as_array()) {
      const std::string at = "subscribers[" + std::to_string(i++) + "]";
      SubscriberInfo s;
      s.subscriber = need_string(v, "subscriber", at);
      s.feed = str_field(v, "feed");
      s.kind = str_field(v, "kind");
      s.checkpoint = num_field(v, "checkpoint");
      s.head = num_field(v, "head");
      s.behind = num_field(v, "behind");
      s.resettable = bool_field(v, "resettable");
      out.push_back(std::move(s));
    }
    return out;
  });
}

std::string error_of_body(const std::string& json) {
  std::error_code ec;
  const value v = value::parse(json, ec);
  if (ec || !v.is_object() || !v.has_field("error")) return {};
  const value& e = v.at("error");
  if (e.is_string()) return e.as_string();
  if (e.is_object()) return str_field(e, "message");
  return e.serialize();
}

std::string escape_text(const std::string& text, size_t max_bytes) {
  std::string out;
  for (const char ch : text) {
    if (out.size() >= max_bytes) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += ch;  // UTF-8 passes through (ImGui draws it, or '?' without the glyph)
        }
    }
  }
  return out;
}

const char* admin_status_name(AdminStatus s) {
  switch (s) {
    case AdminStatus::kNotPolled: return "not polled";
    case AdminStatus::kOk: return "ok";
    case AdminStatus::kNoAdminApi: return "no admin API";
    case AdminStatus::kUnauthorized: return "not authorized";
    case AdminStatus::kFailed: return "failed";
  }
  return "failed";
}

std::string ReplayRequest::describe() const {
  if (parked) return node + (all ? std::string(" all parked") : " parked " + command_id);
  return node + (all ? std::string(" all") : " " + std::to_string(partition) + ":" + std::to_string(offset));
}

std::string ReplayOutcome::summary() const {
  switch (state) {
    case State::kPending: return "replaying " + request.describe() + " ...";
    case State::kFailed:
      return request.describe() + ": " + (http_status ? "HTTP " + std::to_string(http_status) + ": " : "") +
             escape_text(error, 200);
    case State::kDone: break;
  }
  std::string text = request.describe() + ": replayed " + std::to_string(answer.replayed.size());
  for (auto [name, list] : {std::pair{", refused ", &answer.refused}, std::pair{", failed ", &answer.failed}}) {
    if (list->empty()) continue;
    text += name + std::to_string(list->size()) + " (";
    for (size_t i = 0; i < list->size() && i < 3; ++i) {
      const auto& r = (*list)[i];
      const std::string which =
          r.command_id.empty() ? std::to_string(r.partition) + ":" + std::to_string(r.offset) : escape_text(r.command_id, 80);
      text += (i ? "; " : "") + which + ": " + escape_text(r.reason, 120);
    }
    text += list->size() > 3 ? "; ...)" : ")";
  }
  return text;
}

const std::deque<Sample>* ServerState::history_of(const std::string& node_id) const {
  if (!history) return nullptr;
  auto it = history->find(node_id);
  return it == history->end() ? nullptr : &it->second;
}

void append_history(History& history, const MetricsSnapshot& m,
                    double t, double keep_seconds) {
  for (const auto& n : m.nodes) history[n.id].push_back(Sample{t, n.rate(), n.queue_depth});
  for (auto it = history.begin(); it != history.end();) {
    auto& q = it->second;
    while (!q.empty() && q.front().t < t - keep_seconds) q.pop_front();
    if (q.empty())
      it = history.erase(it);
    else
      ++it;
  }
}

}  // namespace orderflow::monitor
