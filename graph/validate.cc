// validate(): checks a GraphDef against the KindRegistry.
//
// Every check runs even after earlier ones failed, so a user fixes a file in one pass.
// Checks that depend on something already reported broken (an unknown node or kind)
// are skipped rather than producing follow-on errors about the same mistake.
#include <algorithm>
#include <deque>
#include <set>
#include <utility>

#include "graph/definition.h"
#include "graph/domain.h"

namespace orderflow::graph {
namespace {

std::string join(const std::vector<std::string>& items, const std::string& separator = ", ") {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

std::string at(Mark m) { return std::to_string(m.line) + ":" + std::to_string(m.column); }

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// "; did you mean 'commit'?" for a near miss (typos, a dropped plural 's'), else "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& known) {
  const std::string* best = nullptr;
  size_t best_distance = std::min<size_t>(2, word.size() / 2) + 1;
  for (const std::string& candidate : known) {
    size_t d = edit_distance(word, candidate);
    if (d < best_distance) {
      best = &candidate;
      best_distance = d;
    }
  }
  return best ? "; did you mean '" + *best + "'?" : "";
}

class Validator {
 public:
  Validator(GraphDef& graph, const KindRegistry& registry, std::vector<Diagnostic>& out)
      : graph_(graph), registry_(registry), out_(out) {
    for (const auto& entry : graph_.stores) store_names_.push_back(entry.first);
    // Every look-up below goes through these maps (O(log n) each), so validation is
    // O((nodes + edges) log nodes); GraphDef::find_node/successors scan, which made it
    // quadratic (100k nodes: 44 s). The first node of an id wins, as in find_node.
    for (const NodeDef& node : graph_.nodes) by_id_.emplace(node.id, &node);
    for (const EdgeDef& edge : graph_.edges) {
      has_out_edge_.insert(edge.from);
      const NodeDef* from = find(edge.from);
      const NodeDef* to = find(edge.to);
      if (from == nullptr || to == nullptr) continue;
      successors_[from->id].push_back(to);
      has_predecessor_.insert(to->id);
    }
  }

  bool run() {
    check_domain();
    check_stores();
    check_nodes();
    check_edges();
    check_reachability();
    return errors_ == 0;
  }

 private:
  void error(Mark mark, const std::string& message) {
    out_.push_back({graph_.file, mark, escape_control_bytes(message)});
    ++errors_;
  }

  const NodeDef* find(const std::string& id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : it->second;
  }

  // A graph names the domain it runs (`domain: orders`); without one it runs the binary's
  // default. A registry without domains (a tool that only checks kinds) skips this.
  void check_domain() {
    const std::vector<std::string> known = registry_.domain_names();
    if (known.empty() || registry_.domain(graph_.domain) != nullptr) return;
    error(graph_.domain_mark.line > 0 ? graph_.domain_mark : Mark{1, 1},
          "unknown domain '" + graph_.domain + "' (known: " + join(known) + ")" + did_you_mean(graph_.domain, known));
  }

  void check_stores() {
    for (auto& [name, store] : graph_.stores) {
      if (store.kind.empty()) {
        error(store.mark, "store '" + name + "' has no 'kind'");
        continue;
      }
      const KindSpec* spec = registry_.store_kind(store.kind);
      if (spec == nullptr) {
        std::vector<std::string> known = registry_.store_kind_names();
        error(store.mark, "unknown store kind '" + store.kind + "' for store '" + name +
                              "' (known: " + join(known) + ")" + did_you_mean(store.kind, known));
        continue;
      }
      check_params(*spec, store.mark, "store '" + name + "'", store.params);
    }
    // A store may wrap another one it names (kind faulty's `inner`); one that leads back to
    // itself could never be opened.
    for (const auto& [name, store] : graph_.stores) {
      std::vector<std::string> path = {name};
      if (wraps_back(path)) error(store.mark, "store '" + name + "' wraps itself (" + join(path, " -> ") + ")");
    }
  }

  // The declared stores a store names in its parameters.
  std::vector<std::string> wrapped_stores(const StoreDef& store) const {
    std::vector<std::string> out;
    const KindSpec* spec = registry_.store_kind(store.kind);
    if (spec == nullptr) return out;
    for (const ParamSpec& p : spec->params) {
      auto v = store.params.find(p.name);
      if (p.type == ParamType::kStoreRef && v != store.params.end() && graph_.stores.count(v->second.text) > 0)
        out.push_back(v->second.text);
    }
    return out;
  }

  // Whether the stores that path.back() wraps lead back to path.front(); path is then the cycle.
  bool wraps_back(std::vector<std::string>& path) const {
    for (const std::string& next : wrapped_stores(graph_.stores.at(path.back()))) {
      if (next == path.front()) {
        path.push_back(next);
        return true;
      }
      if (std::find(path.begin(), path.end(), next) != path.end()) continue;
      path.push_back(next);
      if (wraps_back(path)) return true;
      path.pop_back();
    }
    return false;
  }

  void check_nodes() {
    std::vector<std::string> known = registry_.node_kind_names();
    for (NodeDef& node : graph_.nodes) {
      // Messages for missing id/kind match the loader's word for word (see
      // load_and_validate, which drops the repeats).
      if (node.id.empty()) {
        error(node.mark, "node has no 'id'");
      } else if (const NodeDef* first = find(node.id); first != &node) {
        error(node.mark, "duplicate node id '" + node.id + "' (first defined at " +
                             at(first->mark) + "); node ids must be unique");
      }
      if (node.kind.empty()) {
        error(node.mark,
              node.id.empty() ? "node has no 'kind'" : "node '" + node.id + "' has no 'kind'");
        continue;
      }
      const KindSpec* spec = registry_.node_kind(node.kind);
      if (spec == nullptr) {
        error(node.kind_mark, "unknown node kind '" + node.kind + "' (known: " + join(known) + ")" +
                                  did_you_mean(node.kind, known));
        continue;
      }
      check_params(*spec, node.mark, "node '" + node.id + "'", node.params);
    }
  }

  // Shared by nodes and stores. Also fills defaults, so the typed getters can rely on
  // every parameter of the kind being present.
  void check_params(const KindSpec& spec, Mark owner_mark, const std::string& owner,
                    std::map<std::string, ParamValue>& params) {
    std::vector<std::string> names;
    for (const ParamSpec& p : spec.params) names.push_back(p.name);
    std::sort(names.begin(), names.end());
    for (const auto& [name, value] : params) {
      // By name, not through the binding: clang before 16 cannot capture structured bindings.
      auto p = std::find_if(spec.params.begin(), spec.params.end(),
                            [&key = name](const ParamSpec& s) { return s.name == key; });
      if (p == spec.params.end()) {
        error(value.key_mark,
              "unknown parameter '" + name + "' for kind '" + spec.name + "' " +
                  (names.empty() ? "(it takes no parameters)"
                                 : "(known: " + join(names) + ")" + did_you_mean(name, names)));
      } else if (!value.is_scalar) {
        error(value.mark,
              "parameter '" + name + "' must be " + describe(*p) + ", not a list or map");
      } else if (!value_ok(*p, value.text)) {
        error(value.mark,
              "parameter '" + name + "' must be " + describe(*p) + ", got '" + value.text + "'");
      } else if (p->check) {
        if (std::string why = p->check(value.text); !why.empty()) error(value.mark, "parameter '" + name + "': " + why);
      }
    }
    for (const ParamSpec& p : spec.params) {
      if (params.count(p.name) > 0) continue;
      if (p.required) {
        error(owner_mark, owner + " is missing required parameter '" + p.name +
                              "', which must be " + describe(p));
      } else {
        params[p.name] = ParamValue{p.default_value, true, owner_mark, owner_mark};
      }
    }
  }

  // What a valid value looks like, phrased to follow "must be".
  std::string describe(const ParamSpec& p) const {
    switch (p.type) {
      case ParamType::kString:
        return "a string";
      case ParamType::kInt: {
        bool has_min = p.min != INT64_MIN, has_max = p.max != INT64_MAX;
        if (has_min && has_max) {
          return "an integer in [" + std::to_string(p.min) + ", " + std::to_string(p.max) + "]";
        }
        if (has_min) return "an integer >= " + std::to_string(p.min);
        if (has_max) return "an integer <= " + std::to_string(p.max);
        return "an integer";
      }
      case ParamType::kBool:
        return "a boolean (true/false, yes/no, on/off)";
      case ParamType::kDouble:
        return "a number";
      case ParamType::kEnum:
        return "one of " + join(p.choices);
      case ParamType::kStoreRef:
        return "the name of a store declared under 'stores:' (" +
               (store_names_.empty() ? std::string("none declared")
                                     : "declared: " + join(store_names_)) +
               ")";
    }
    return "valid";
  }

  bool value_ok(const ParamSpec& p, const std::string& text) const {
    switch (p.type) {
      case ParamType::kString:
        return true;
      case ParamType::kInt: {
        int64_t v = 0;
        return parse_int(text, &v) && v >= p.min && v <= p.max;
      }
      case ParamType::kBool: {
        bool v = false;
        return parse_bool(text, &v);
      }
      case ParamType::kDouble: {
        double v = 0;
        return parse_double(text, &v);
      }
      case ParamType::kEnum:
        return std::find(p.choices.begin(), p.choices.end(), text) != p.choices.end();
      case ParamType::kStoreRef:
        // An optional store reference (Options::optional_store) defaults to "": none. A graph
        // validated again (with its defaults applied) carries that value.
        return (text.empty() && !p.required) || graph_.stores.count(text) > 0;
    }
    return false;
  }

  // Names of node kinds whose output carries `type`, to suggest a fix for a mismatch.
  std::string kinds_with_output(PortType type) const {
    std::vector<std::string> out;
    for (const std::string& name : registry_.node_kind_names()) {
      if (registry_.node_kind(name)->output == type) out.push_back(name);
    }
    return join(out);
  }

  std::string kinds_with_input(PortType type) const {
    std::vector<std::string> out;
    for (const std::string& name : registry_.node_kind_names()) {
      if (registry_.node_kind(name)->input == type) out.push_back(name);
    }
    return join(out);
  }

  void check_edges() {
    std::vector<std::string> ids;
    for (const NodeDef& node : graph_.nodes) ids.push_back(node.id);
    std::map<std::pair<std::string, std::string>, Mark> seen;
    for (const EdgeDef& edge : graph_.edges) {
      const std::string name = edge.from + " -> " + edge.to;
      if (edge.from.empty() || edge.to.empty()) {
        error(edge.mark, "edge '" + name + "' must name both 'from' and 'to'");
        continue;
      }
      auto [first, fresh] = seen.emplace(std::pair(edge.from, edge.to), edge.mark);
      if (!fresh) {
        error(edge.mark, "duplicate edge " + name + " (first at " + at(first->second) + ")");
        continue;
      }
      const NodeDef* from = find(edge.from);
      const NodeDef* to = find(edge.to);
      if (from == nullptr) {
        error(edge.mark, "edge " + name + " starts at unknown node '" + edge.from + "'" +
                             did_you_mean(edge.from, ids));
      }
      if (to == nullptr) {
        error(edge.mark, "edge " + name + " ends at unknown node '" + edge.to + "'" +
                             did_you_mean(edge.to, ids));
      }
      if (from == nullptr || to == nullptr) continue;
      const KindSpec* out_kind = registry_.node_kind(from->kind);
      const KindSpec* in_kind = registry_.node_kind(to->kind);
      if (out_kind == nullptr || in_kind == nullptr) continue;
      if (out_kind->output == PortType::kNone) {
        error(edge.mark, "edge " + name + ": node '" + from->id + "' (kind '" + from->kind +
                             "') has no output port");
      }
      if (in_kind->input == PortType::kNone) {
        error(edge.mark, "edge " + name + ": node '" + to->id + "' (kind '" + to->kind +
                             "') has no input port");
      }
      if (out_kind->output != PortType::kNone && in_kind->input != PortType::kNone &&
          out_kind->output != in_kind->input) {
        error(edge.mark, "edge " + name + " connects port type '" +
                             port_type_name(out_kind->output) + "' to '" +
                             port_type_name(in_kind->input) + "' ('" + to->id + "' takes '" +
                             port_type_name(in_kind->input) +
                             "' from kinds: " + kinds_with_output(in_kind->input) + ")");
      }
      // Services run as separate processes, joined only through the stores: every other
      // edge is an in-process call, so both of its nodes must be built together. A node
      // without a service is built in every service, so its in-process neighbours must have
      // none either (else it is built somewhere without them, e.g. a route with no lanes).
      if (from->service != to->service && !store_mediated(out_kind->output)) {
        auto side = [](const NodeDef& n) {
          return n.service.empty() ? std::string("no service") : "service '" + n.service + "'";
        };
        error(edge.mark, "edge " + name + " joins " + side(*from) + " to " + side(*to) +
                             ": only an edge through a store (port type '" + port_type_name(PortType::kCommitted) +
                             "', e.g. commit -> change_feed) may cross services; put both nodes in one service");
      }
    }
    // A kind that cannot run without a successor (a route without lanes accepts commands
    // and never decides them) must have one, in the same service.
    for (const NodeDef& node : graph_.nodes) {
      const KindSpec* spec = registry_.node_kind(node.kind);
      if (spec == nullptr || !spec->output_required || node.id.empty() || find(node.id) != &node) continue;
      // Any edge out of it counts (one to an unknown node is reported as that already).
      if (has_out_edge_.count(node.id) > 0) continue;
      error(node.mark, "node '" + node.id + "' (kind '" + node.kind + "') sends its '" +
                           port_type_name(spec->output) + "' output nowhere: add an edge to a node of kind: " +
                           kinds_with_input(spec->output));
    }
  }

  void check_reachability() {
    if (graph_.nodes.empty()) {
      // At the `nodes:` key; the loader already reported a missing one (at the document).
      error(graph_.nodes_mark.line > 0 ? graph_.nodes_mark : Mark{1, 1}, "graph has no nodes");
      return;
    }
    // A node of unknown kind might be the intended source, or lie on the path to a
    // node: judging reachability then would only repeat the unknown-kind error.
    bool kinds_known = true;
    std::vector<std::string> sources;
    for (const NodeDef& node : graph_.nodes) {
      const KindSpec* spec = registry_.node_kind(node.kind);
      if (spec == nullptr) kinds_known = false;
      if (spec != nullptr && spec->is_source && !node.id.empty()) sources.push_back(node.id);
    }
    if (sources.empty()) {
      if (kinds_known) {
        std::vector<std::string> source_kinds;
        for (const std::string& name : registry_.node_kind_names()) {
          if (registry_.node_kind(name)->is_source) source_kinds.push_back(name);
        }
        error(graph_.nodes.front().mark,
              "graph has no source node, so nothing ever enters it (add a node of kind: " +
                  join(source_kinds) + ")");
      }
      return;
    }
    // Every edge between existing nodes counts, even one with a port error (already
    // reported), so that one bad edge does not also make everything behind it
    // "unreachable".
    std::set<std::string> reached(sources.begin(), sources.end());
    std::deque<std::string> queue(sources.begin(), sources.end());
    while (!queue.empty()) {
      std::string id = queue.front();
      queue.pop_front();
      auto it = successors_.find(id);
      if (it == successors_.end()) continue;
      for (const NodeDef* next : it->second) {
        if (reached.insert(next->id).second) queue.push_back(next->id);
      }
    }
    for (const NodeDef& node : graph_.nodes) {
      if (node.id.empty() || reached.count(node.id) > 0) continue;
      if (find(node.id) != &node) continue;  // duplicate id: reported already
      if (registry_.node_kind(node.kind) == nullptr) continue;
      std::string why = has_predecessor_.count(node.id) == 0 ? "it has no incoming edge"
                                                             : "no path leads to it from a source";
      error(node.mark,
            "node '" + node.id + "' is unreachable: " + why + " (sources: " + join(sources) + ")");
    }
  }

  GraphDef& graph_;
  const KindRegistry& registry_;
  std::vector<Diagnostic>& out_;
  std::vector<std::string> store_names_;
  std::map<std::string, const NodeDef*> by_id_;
  std::map<std::string, std::vector<const NodeDef*>> successors_;
  std::set<std::string> has_predecessor_;
  std::set<std::string> has_out_edge_;  // ids with an edge out, even to an unknown node
  size_t errors_ = 0;
};

}  // namespace

bool validate(GraphDef& graph, const KindRegistry& registry, std::vector<Diagnostic>& out) {
  return Validator(graph, registry, out).run();
}

}  // namespace orderflow::graph
