// Typed options of a kind: a plain struct whose fields carry their defaults (as leveldb's
// Options do), bound once to the kind's YAML parameters. The binding gives validate() the
// parameter specs (type, range, default read from the struct) and fills a struct from a
// validated NodeDef, so a node kind never reads a parameter by name twice.
//
//   struct CommitOptions {
//     std::string events;      // event store (required)
//     int64_t max_batch = 1000;  // commands per durable write
//   };
//   const auto bind = graph::Options<CommitOptions>()
//       .store(&CommitOptions::events, "events", "event store")
//       .integer(&CommitOptions::max_batch, "max_batch", 1, 100000, "commands per durable write");
//   spec.params = bind.params();               // for validate()
//   CommitOptions o = bind.parse(node_def);    // after validate()
//
// Immutable once built; copyable and safe to share between threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "graph/definition.h"

namespace orderflow::graph {

template <typename T>
class Options {
 public:
  // An integer field (int, int64_t, size_t, ...) in [min, max].
  template <typename I>
  Options&& integer(I T::*field, std::string name, int64_t min, int64_t max, std::string help) && {
    static_assert(std::is_integral_v<I>, "an integer field");
    specs_.push_back(p_int(name, std::to_string(defaults_.*field), min, max, std::move(help)));
    fill_.push_back([field, name](T& t, const NodeDef& d) {
      if (!d.has(name)) return;  // not validated (a hand-built definition): the default
      t.*field = static_cast<I>(d.get_int(name));
    });
    return std::move(*this);
  }
  Options&& text(std::string T::*field, std::string name, std::string help) && {
    specs_.push_back(p_string(name, defaults_.*field, std::move(help)));
    fill_.push_back([field, name](T& t, const NodeDef& d) {
      if (!d.has(name)) return;  // not validated (a hand-built definition): the default
      t.*field = d.get_string(name);
    });
    return std::move(*this);
  }
  // A string without a default that the graph must give.
  Options&& required(std::string T::*field, std::string name, std::string help) && {
    specs_.push_back(p_required(name, std::move(help)));
    fill_.push_back([field, name](T& t, const NodeDef& d) {
      if (!d.has(name)) return;  // not validated (a hand-built definition): the default
      t.*field = d.get_string(name);
    });
    return std::move(*this);
  }
  // The name of a store under `stores:` (required).
  Options&& store(std::string T::*field, std::string name, std::string help) && {
    specs_.push_back(p_store(name, std::move(help)));
    fill_.push_back([field, name](T& t, const NodeDef& d) {
      if (!d.has(name)) return;  // not validated (a hand-built definition): the default
      t.*field = d.get_string(name);
    });
    return std::move(*this);
  }
  // The name of a store under `stores:`, or absent ("", the field's default).
  Options&& optional_store(std::string T::*field, std::string name, std::string help) && {
    ParamSpec p = p_store(name, std::move(help));
    p.required = false;
    specs_.push_back(std::move(p));
    fill_.push_back([field, name](T& t, const NodeDef& d) {
      if (!d.has(name)) return;
      t.*field = d.get_string(name);
    });
    return std::move(*this);
  }
  Options&& boolean(bool T::*field, std::string name, std::string help) && {
    specs_.push_back(p_bool(name, defaults_.*field ? "true" : "false", std::move(help)));
    fill_.push_back([field, name](T& t, const NodeDef& d) {
      if (!d.has(name)) return;  // not validated (a hand-built definition): the default
      t.*field = d.get_bool(name);
    });
    return std::move(*this);
  }
  Options&& choice(std::string T::*field, std::string name, std::vector<std::string> choices, std::string help) && {
    specs_.push_back(p_enum(name, defaults_.*field, std::move(choices), std::move(help)));
    fill_.push_back([field, name](T& t, const NodeDef& d) {
      if (!d.has(name)) return;  // not validated (a hand-built definition): the default
      t.*field = d.get_string(name);
    });
    return std::move(*this);
  }

  const std::vector<ParamSpec>& params() const { return specs_; }

  // The options of a node that validate() accepted (every parameter present or defaulted);
  // a parameter a hand-built definition lacks keeps the struct's default.
  T parse(const NodeDef& def) const {
    T t = defaults_;
    for (const auto& f : fill_) f(t, def);
    return t;
  }
  // The same for a store (validate() fills a store's defaults alike).
  T parse(const StoreDef& def) const {
    NodeDef as_node;
    as_node.id = def.name;
    as_node.kind = def.kind;
    as_node.params = def.params;
    return parse(as_node);
  }

 private:
  const T defaults_{};
  std::vector<ParamSpec> specs_;
  std::vector<std::function<void(T&, const NodeDef&)>> fill_;
};

}  // namespace orderflow::graph
