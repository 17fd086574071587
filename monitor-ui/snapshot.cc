#include "snapshot.h"

#include <cctype>
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
