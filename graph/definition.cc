// The GraphDef model, the kind registry and the YAML loader.
//
// The loader only turns YAML into a GraphDef and reports structural problems (syntax,
// wrong shapes, unknown keys); everything that needs the KindRegistry lives in
// validate.cc. yaml-cpp stays inside this file: graph users never see its headers.
#include "graph/definition.h"

#include "graph/domain.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace orderflow::graph {

std::string escape_control_bytes(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b != 0x7f) {
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      out += "\\x";
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0xf]);
    }
  }
  return out;
}

std::string Diagnostic::to_string() const {
  std::string out = escape_control_bytes(file);
  // Mark 0 means "no position" (e.g. a file that cannot be opened): print it like a
  // compiler does for whole-file errors rather than a misleading ":0:0".
  if (mark.line > 0) {
    out += ":" + std::to_string(mark.line) + ":" + std::to_string(mark.column);
  }
  return out + ": error: " + message;
}

// ---- Scalar parsing ---------------------------------------------------------------

bool parse_int(const std::string& text, int64_t* out) {
  const char* begin = text.data();
  const char* end = begin + text.size();
  // YAML allows an explicit '+'; from_chars does not.
  if (begin != end && *begin == '+') ++begin;
  if (begin == end) return false;
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr != end) return false;
  *out = value;
  return true;
}

bool parse_bool(const std::string& text, bool* out) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "true" || lower == "yes" || lower == "on") {
    *out = true;
  } else if (lower == "false" || lower == "no" || lower == "off") {
    *out = false;
  } else {
    return false;
  }
  return true;
}

bool parse_double(const std::string& text, double* out) {
  const char* begin = text.data();
  const char* end = begin + text.size();
  if (begin != end && *begin == '+') ++begin;
  if (begin == end) return false;
  double value = 0;
  auto [ptr, ec] = std::from_chars(begin, end, value);
  // A NaN or infinite rate/ratio is always a typo, never an intent.
  if (ec != std::errc() || ptr != end || !std::isfinite(value)) return false;
  *out = value;
  return true;
}

// ---- NodeDef ----------------------------------------------------------------------

namespace {

// The getters are for code running after validate(): a missing or malformed value
// there is a programming error (unvalidated graph, or a name not in the kind spec).
const ParamValue& param_or_throw(const NodeDef& node, const std::string& name) {
  auto it = node.params.find(name);
  if (it == node.params.end()) {
    throw std::logic_error("node '" + node.id + "' has no parameter '" + name +
                           "' (is it in the kind spec, and was the graph validated?)");
  }
  return it->second;
}

[[noreturn]] void throw_bad_value(const NodeDef& node, const std::string& name, const char* type) {
  throw std::logic_error("parameter '" + name + "' of node '" + node.id + "' is not " + type +
                         ": '" + node.params.at(name).text + "'");
}

}  // namespace

std::string NodeDef::get_string(const std::string& name) const {
  return param_or_throw(*this, name).text;
}

int64_t NodeDef::get_int(const std::string& name) const {
  int64_t value = 0;
  if (!parse_int(param_or_throw(*this, name).text, &value)) {
    throw_bad_value(*this, name, "an integer");
  }
  return value;
}

bool NodeDef::get_bool(const std::string& name) const {
  bool value = false;
  if (!parse_bool(param_or_throw(*this, name).text, &value)) {
    throw_bad_value(*this, name, "a boolean");
  }
  return value;
}

double NodeDef::get_double(const std::string& name) const {
  double value = 0;
  if (!parse_double(param_or_throw(*this, name).text, &value)) {
    throw_bad_value(*this, name, "a number");
  }
  return value;
}

// ---- GraphDef ---------------------------------------------------------------------

const NodeDef* GraphDef::find_node(const std::string& id) const {
  // First match wins: with duplicate ids (a validation error) edges bind to the first.
  for (const NodeDef& node : nodes) {
    if (node.id == id) return &node;
  }
  return nullptr;
}

std::vector<const NodeDef*> GraphDef::successors(const std::string& id) const {
  std::vector<const NodeDef*> out;
  for (const EdgeDef& edge : edges) {
    if (edge.from != id) continue;
    if (const NodeDef* node = find_node(edge.to)) out.push_back(node);
  }
  return out;
}

std::vector<const NodeDef*> GraphDef::predecessors(const std::string& id) const {
  std::vector<const NodeDef*> out;
  for (const EdgeDef& edge : edges) {
    if (edge.to != id) continue;
    if (const NodeDef* node = find_node(edge.from)) out.push_back(node);
  }
  return out;
}

const char* port_type_name(PortType t) {
  switch (t) {
    case PortType::kNone:
      return "none";
    case PortType::kCommand:
      return "command";
    case PortType::kRouted:
      return "routed";
    case PortType::kDecision:
      return "decision";
    case PortType::kCommitted:
      return "committed";
    case PortType::kEvent:
      return "event";
  }
  return "?";
}

// ---- Parameter declarations -------------------------------------------------------

ParamSpec p_int(std::string name, std::string def, int64_t min, int64_t max, std::string help) {
  ParamSpec p;
  p.name = std::move(name);
  p.type = ParamType::kInt;
  p.default_value = std::move(def);
  p.min = min;
  p.max = max;
  p.help = std::move(help);
  return p;
}

ParamSpec p_string(std::string name, std::string def, std::string help) {
  ParamSpec p;
  p.name = std::move(name);
  p.default_value = std::move(def);
  p.help = std::move(help);
  return p;
}

ParamSpec p_required(std::string name, std::string help) {
  ParamSpec p = p_string(std::move(name), "", std::move(help));
  p.required = true;
  return p;
}

ParamSpec p_store(std::string name, std::string help) {
  ParamSpec p = p_required(std::move(name), std::move(help));
  p.type = ParamType::kStoreRef;
  return p;
}

ParamSpec p_bool(std::string name, std::string def, std::string help) {
  ParamSpec p = p_string(std::move(name), std::move(def), std::move(help));
  p.type = ParamType::kBool;
  return p;
}

ParamSpec p_enum(std::string name, std::string def, std::vector<std::string> choices, std::string help) {
  ParamSpec p = p_string(std::move(name), std::move(def), std::move(help));
  p.type = ParamType::kEnum;
  p.choices = std::move(choices);
  return p;
}

// ---- KindRegistry -----------------------------------------------------------------

void KindRegistry::add_node_kind(KindSpec spec) {
  std::string name = spec.name;
  nodes_[name] = std::move(spec);
}

void KindRegistry::add_store_kind(KindSpec spec) {
  std::string name = spec.name;
  stores_[name] = std::move(spec);
}

void KindRegistry::set_store_param_check(const std::string& kind, const std::string& param,
                                         std::function<std::string(const std::string&)> check) {
  auto it = stores_.find(kind);
  if (it == stores_.end()) return;
  for (ParamSpec& p : it->second.params)
    if (p.name == param) p.check = check;
}

const KindSpec* KindRegistry::node_kind(const std::string& name) const {
  auto it = nodes_.find(name);
  return it == nodes_.end() ? nullptr : &it->second;
}

const KindSpec* KindRegistry::store_kind(const std::string& name) const {
  auto it = stores_.find(name);
  return it == stores_.end() ? nullptr : &it->second;
}

std::vector<std::string> KindRegistry::node_kind_names() const {
  std::vector<std::string> names;
  for (const auto& entry : nodes_) names.push_back(entry.first);
  return names;
}

void KindRegistry::add_domain(std::shared_ptr<const Domain> domain) {
  for (auto& d : domains_) {
    if (d->name() == domain->name()) {
      d = std::move(domain);
      return;
    }
  }
  domains_.push_back(std::move(domain));
}

const Domain* KindRegistry::domain(const std::string& name) const {
  if (name.empty()) return domains_.empty() ? nullptr : domains_.front().get();
  for (const auto& d : domains_)
    if (d->name() == name) return d.get();
  return nullptr;
}

std::vector<std::string> KindRegistry::domain_names() const {
  std::vector<std::string> names;
  for (const auto& d : domains_) names.push_back(d->name());
  return names;
}

std::vector<std::string> KindRegistry::store_kind_names() const {
  std::vector<std::string> names;
  for (const auto& entry : stores_) names.push_back(entry.first);
  return names;
}

// ---- Loader -----------------------------------------------------------------------

namespace {

Mark to_mark(const YAML::Mark& m) {
  if (m.is_null()) return {};
  return {m.line + 1, m.column + 1};
}

const char* shape_name(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Null:
      return "nothing";
    default:
      return "a scalar";
  }
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// Walks one YAML document into result.graph. Keeps going after a problem so that one
// run reports everything; `usable()` says whether the result is worth validating.
class Loader {
 public:
  explicit Loader(LoadResult& result) : result_(result) {}

  bool usable() const { return usable_; }

  void load(const std::string& text) {
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      error(to_mark(e.mark), "YAML syntax error: " + e.msg);
      return;
    }
    if (!root.IsMap()) {
      error(root.IsNull() ? Mark{1, 1} : to_mark(root.Mark()),
            "a graph definition must be a map with keys 'graph', 'stores', 'nodes' and "
            "'edges'");
      return;
    }
    bool has_nodes = false;
    try {
      walk_root(root, &has_nodes);
    } catch (const YAML::Exception& e) {
      // Not expected from the accessors used here; a diagnostic beats a crash.
      error(to_mark(e.mark), "cannot read graph definition: " + e.msg);
      return;
    }
    if (!has_nodes) {
      error(to_mark(root.Mark()), "missing top-level key 'nodes'");
      return;
    }
    usable_ = true;
  }

 private:
  void walk_root(const YAML::Node& root, bool* has_nodes) {
    for_each_entry(
        root, "", [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
          if (key == "graph") {
            scalar(value, "'graph'", &result_.graph.name);
          } else if (key == "domain") {
            result_.graph.domain_mark = to_mark(value.Mark());
            scalar(value, "'domain'", &result_.graph.domain);
          } else if (key == "description") {
            // Free text for humans; nothing to check.
          } else if (key == "stores") {
            load_stores(value, key_node);
          } else if (key == "nodes") {
            *has_nodes = true;
            result_.graph.nodes_mark = to_mark(key_node.Mark());
            for_each_item(value, key_node, "'nodes'", [&](const YAML::Node& n) { load_node(n); });
          } else if (key == "edges") {
            for_each_item(value, key_node, "'edges'", [&](const YAML::Node& e) { load_edge(e); });
          } else {
            error(to_mark(key_node.Mark()), "unknown top-level key '" + key +
                                                "' (allowed: description, domain, edges, "
                                                "graph, nodes, stores)");
          }
        });
  }

  void error(Mark mark, const std::string& message) {
    result_.diagnostics.push_back({result_.graph.file, mark, escape_control_bytes(message)});
  }

  // yaml-cpp keeps repeated keys; we report them and let the first one win, matching
  // what YAML::Node::operator[] would have returned.
  template <typename Fn>
  void for_each_entry(const YAML::Node& map, const std::string& where, Fn fn) {
    std::map<std::string, Mark> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      // A copy (a cheap handle): yaml-cpp's it-> is a temporary proxy, gone after this
      // statement, so a reference to its `first` dangled (AddressSanitizer:
      // stack-use-after-scope on every graph load).
      const YAML::Node key = it->first;
      Mark key_mark = to_mark(key.Mark());
      if (!key.IsScalar()) {
        error(key_mark, "keys must be plain names, got " + std::string(shape_name(key)));
        continue;
      }
      auto [first, fresh] = seen.emplace(key.Scalar(), key_mark);
      if (!fresh) {
        error(key_mark, "duplicate key '" + key.Scalar() + "'" + where + " (first at line " +
                            std::to_string(first->second.line) + ")");
        continue;
      }
      fn(key.Scalar(), key, it->second);
    }
  }

  // A list-valued section; an empty value (`edges:`) is an empty list.
  template <typename Fn>
  void for_each_item(const YAML::Node& value, const YAML::Node& key, const std::string& what,
                     Fn fn) {
    if (value.IsNull()) return;
    if (!value.IsSequence()) {
      error(value_mark(value, key), what + " must be a list, got " + shape_name(value));
      return;
    }
    for (const YAML::Node& item : value) fn(item);
  }

  // yaml-cpp places an empty value at the next token (often the next line), so point
  // at its key instead.
  static Mark value_mark(const YAML::Node& value, const YAML::Node& key) {
    return to_mark(value.IsNull() ? key.Mark() : value.Mark());
  }

  bool scalar(const YAML::Node& value, const std::string& what, std::string* out) {
    if (value.IsNull()) {
      out->clear();
      return true;
    }
    if (!value.IsScalar()) {
      error(to_mark(value.Mark()), what + " must be a single value, got " + shape_name(value));
      return false;
    }
    *out = value.Scalar();
    return true;
  }

  static ParamValue param_value(const YAML::Node& value, const YAML::Node& key) {
    ParamValue p;
    p.is_scalar = value.IsScalar() || value.IsNull();
    if (value.IsScalar()) p.text = value.Scalar();
    p.mark = value_mark(value, key);
    p.key_mark = to_mark(key.Mark());
    return p;
  }

  void load_stores(const YAML::Node& value, const YAML::Node& key) {
    if (value.IsNull()) return;
    if (!value.IsMap()) {
      error(value_mark(value, key), "'stores' must be a map of name: {kind: ..., params...}, got " +
                                        std::string(shape_name(value)));
      return;
    }
    for_each_entry(
        value, " in 'stores'",
        [&](const std::string& name, const YAML::Node& name_node, const YAML::Node& body) {
          StoreDef store;
          store.name = name;
          store.mark = value_mark(body, name_node);
          if (body.IsMap()) {
            for_each_entry(
                body, " in store '" + name + "'",
                [&](const std::string& k, const YAML::Node& k_node, const YAML::Node& v) {
                  if (k == "kind") {
                    scalar(v, "the kind of store '" + name + "'", &store.kind);
                  } else {
                    store.params[k] = param_value(v, k_node);  // every other key is a parameter
                  }
                });
          }
          // Same message as validate(), so load_and_validate() can drop the repeat.
          if (store.kind.empty()) error(store.mark, "store '" + name + "' has no 'kind'");
          // Kept even when broken, so nodes referring to it do not get follow-on errors.
          result_.graph.stores[name] = std::move(store);
        });
  }

  void load_node(const YAML::Node& item) {
    if (!item.IsMap()) {
      error(to_mark(item.Mark()),
            "a node must be a map with 'id' and 'kind', e.g. {id: route, kind: route}");
      return;
    }
    NodeDef node;
    node.mark = to_mark(item.Mark());
    node.kind_mark = node.mark;
    // Read the id up front so that messages about other keys can name the node.
    const YAML::Node id = item["id"];
    std::string where =
        id.IsDefined() && id.IsScalar() ? " in node '" + id.Scalar() + "'" : " in node";
    for_each_entry(
        item, where,
        [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
          if (key == "id") {
            scalar(value, "node 'id'", &node.id);
          } else if (key == "kind") {
            scalar(value, "node 'kind'", &node.kind);
            node.kind_mark = value_mark(value, key_node);
          } else if (key == "service") {
            scalar(value, "node 'service'", &node.service);
          } else if (key == "description") {
            // Free text for humans.
          } else if (key == "params") {
            load_params(value, key_node, where, &node.params);
          } else {
            error(to_mark(key_node.Mark()), "unknown key '" + key + "'" + where +
                                                " (allowed: description, id, kind, params, "
                                                "service)");
          }
        });
    // Same messages as validate(); a node is kept even without id/kind so that edges
    // to it do not also turn into "unknown node" errors.
    if (node.id.empty()) error(node.mark, "node has no 'id'");
    if (node.kind.empty()) {
      error(node.mark,
            node.id.empty() ? "node has no 'kind'" : "node '" + node.id + "' has no 'kind'");
    }
    result_.graph.nodes.push_back(std::move(node));
  }

  void load_params(const YAML::Node& value, const YAML::Node& key, const std::string& where,
                   std::map<std::string, ParamValue>* out) {
    if (value.IsNull()) return;
    if (!value.IsMap()) {
      error(value_mark(value, key),
            "'params'" + where + " must be a map of name: value, got " + shape_name(value));
      return;
    }
    for_each_entry(value, " in 'params'" + where,
                   [&](const std::string& name, const YAML::Node& name_node, const YAML::Node& v) {
                     (*out)[name] = param_value(v, name_node);
                   });
  }

  void load_edge(const YAML::Node& item) {
    static const char* kForms = "expected 'from -> to' or {from: a, to: b}";
    EdgeDef edge;
    edge.mark = to_mark(item.Mark());
    if (item.IsScalar()) {
      const std::string& text = item.Scalar();
      size_t arrow = text.find("->");
      if (arrow != std::string::npos) {
        edge.from = trim(text.substr(0, arrow));
        edge.to = trim(text.substr(arrow + 2));
      }
      if (edge.from.empty() || edge.to.empty() || edge.to.find("->") != std::string::npos) {
        error(edge.mark, "malformed edge '" + text + "' (" + kForms + ")");
        return;
      }
    } else if (item.IsMap()) {
      for_each_entry(
          item, " in edge",
          [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
            if (key == "from") {
              scalar(value, "edge 'from'", &edge.from);
            } else if (key == "to") {
              scalar(value, "edge 'to'", &edge.to);
            } else {
              error(to_mark(key_node.Mark()),
                    "unknown key '" + key + "' in edge (allowed: from, to)");
            }
          });
      if (edge.from.empty() || edge.to.empty()) {
        error(edge.mark, std::string("edge needs both 'from' and 'to' (") + kForms + ")");
        return;
      }
    } else {
      error(edge.mark, std::string("malformed edge (") + kForms + ")");
      return;
    }
    edge.from = trim(edge.from);
    edge.to = trim(edge.to);
    result_.graph.edges.push_back(std::move(edge));
  }

  LoadResult& result_;
  bool usable_ = false;
};

LoadResult load_text(const std::string& text, const std::string& file, bool* usable) {
  LoadResult result;
  result.graph.file = file;
  Loader loader(result);
  loader.load(text);
  *usable = loader.usable();
  return result;
}

LoadResult load_file(const std::string& path, bool* usable) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadResult result;
    result.graph.file = path;
    result.diagnostics.push_back(
        {path, {}, std::string("cannot open graph file: ") + std::strerror(errno)});
    *usable = false;
    return result;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return load_text(text.str(), path, usable);
}

}  // namespace

LoadResult load_graph_string(const std::string& text, const std::string& file) {
  bool usable = false;
  return load_text(text, file, &usable);
}

LoadResult load_graph_file(const std::string& path) {
  bool usable = false;
  return load_file(path, &usable);
}

LoadResult load_and_validate(const std::string& path, const KindRegistry& registry) {
  bool usable = false;
  LoadResult result = load_file(path, &usable);
  // Without a parsable document every validator finding would be noise.
  if (!usable) return result;
  std::vector<Diagnostic> found;
  validate(result.graph, registry, found);
  // Loader and validator both check id/kind presence (validate() also serves
  // hand-built graphs); keep one copy of each.
  for (Diagnostic& d : found) {
    bool repeat =
        std::any_of(result.diagnostics.begin(), result.diagnostics.end(), [&](const Diagnostic& o) {
          return o.mark.line == d.mark.line && o.mark.column == d.mark.column &&
                 o.message == d.message;
        });
    if (!repeat) result.diagnostics.push_back(std::move(d));
  }
  // File order reads best; position-less diagnostics go last.
  auto key = [](const Diagnostic& d) {
    return std::pair(d.mark.line == 0 ? INT_MAX : d.mark.line, d.mark.column);
  };
  std::stable_sort(result.diagnostics.begin(), result.diagnostics.end(),
                   [&](const Diagnostic& a, const Diagnostic& b) { return key(a) < key(b); });
  return result;
}

}  // namespace orderflow::graph
