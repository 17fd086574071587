// HTTP client helpers for the end-to-end suites that drive a real `orderflow serve` over
// loopback with cpprestsdk: a Reply, a per-thread client, JSON field helpers, command
// builders, stream folds (orders and inventory as the domain's evolve() sees them), metric
// look-ups and bounded polling. Header-only; include it from one e2e test file each.
#pragma once

#include <utility>  // before cpprestsdk: Boost.Asio's C++20 awaitable.hpp uses std::exchange
#define _TURN_OFF_PLATFORM_STRING  // no U() macro: it breaks gtest's templates (template <class U>)
#include <cpprest/http_client.h>
#include <cpprest/json.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/net.h"

namespace orderflow::testing::e2e {

using Clock = std::chrono::steady_clock;
using web::json::value;
using namespace std::chrono_literals;

// ---- processes and ports ----------------------------------------------------------

// A free TCP port on 127.0.0.1 (bound, read back, closed), or 0.
inline int free_port() { return orderflow::testing::free_loopback_port(); }

// ---- HTTP -------------------------------------------------------------------------

struct Reply {
  int status = 0;  // 0: no HTTP answer (connection refused or reset, timeout)
  std::string error;
  std::string content_type;
  std::string text;
  value json;  // null unless the body is JSON

  std::string describe() const {
    if (status == 0) return "no answer: " + error;
    return std::to_string(status) + " " + text.substr(0, 600);
  }
};

// How to reach a server that needs more than plain loopback HTTP.
struct HttpAccess {
  std::string token;    // sent as "Authorization: Bearer TOKEN" when not empty
  std::string ca_file;  // https:// with this PEM as the only trusted CA when not empty
};

// One cpprestsdk client (one connection pool) for one thread.
class Http {
 public:
  explicit Http(int port, std::chrono::seconds timeout = 10s, HttpAccess access = {})
      : token_(access.token), client_(base(port, access), config(timeout, access)) {}

  Reply get(const std::string& path) {
    web::http::http_request req(web::http::methods::GET);
    req.set_request_uri(web::uri(path));
    return send(std::move(req));
  }
  Reply request(const web::http::method& m, const std::string& path) {
    web::http::http_request req(m);
    req.set_request_uri(web::uri(path));
    return send(std::move(req));
  }
  Reply post(const std::string& path, const std::string& body, const std::string& content_type = "application/json") {
    return send(make_post(path, body, content_type));
  }
  Reply command(const std::string& body, bool wait = true) {
    return post(wait ? "/api/v1/commands?wait=committed" : "/api/v1/commands", body);
  }
  // Starts a POST without waiting for it (for racing requests).
  pplx::task<Reply> command_async(const std::string& body) {
    auto req = make_post("/api/v1/commands?wait=committed", body, "application/json");
    if (!token_.empty()) req.headers().add("Authorization", "Bearer " + token_);
    return client_.request(req)
        .then([](pplx::task<web::http::http_response> t) {
          Reply out;
          try {
            fill(t.get(), &out);
          } catch (const std::exception& ex) {
            out.status = 0;
            out.error = ex.what();
          }
          return out;
        });
  }

 private:
  static std::string base(int port, const HttpAccess& access) {
    return (access.ca_file.empty() ? "http://127.0.0.1:" : "https://127.0.0.1:") + std::to_string(port);
  }
  static web::http::client::http_client_config config(std::chrono::seconds timeout, const HttpAccess& access) {
    web::http::client::http_client_config c;
    c.set_timeout(timeout);
    if (!access.ca_file.empty()) {
      const std::string ca = access.ca_file;
      c.set_ssl_context_callback([ca](boost::asio::ssl::context& ctx) { ctx.load_verify_file(ca); });
    }
    return c;
  }
  web::http::http_request make_post(const std::string& path, const std::string& body,
                                    const std::string& content_type) const {
    web::http::http_request req(web::http::methods::POST);
    req.set_request_uri(web::uri(path));
    req.set_body(body, content_type);
    return req;
  }
  static void fill(web::http::http_response resp, Reply* out) {
    out->status = resp.status_code();
    out->content_type = resp.headers().content_type();
    out->text = resp.extract_utf8string(true).get();
    std::error_code ec;
    value v = value::parse(out->text, ec);
    if (!ec) out->json = std::move(v);
  }
  Reply send(web::http::http_request req) {
    if (!token_.empty()) req.headers().add("Authorization", "Bearer " + token_);
    Reply out;
    try {
      fill(client_.request(req).get(), &out);
    } catch (const std::exception& ex) {
      out.status = 0;
      out.error = ex.what();
    }
    return out;
  }

  std::string token_;
  web::http::client::http_client client_;
};

// ---- JSON helpers -----------------------------------------------------------------

inline const value* field(const value& v, const std::string& key) {
  if (!v.is_object() || !v.has_field(key)) return nullptr;
  return &v.at(key);
}
inline std::string str(const value& v, const std::string& key) {
  const value* f = field(v, key);
  return f != nullptr && f->is_string() ? f->as_string() : std::string();
}
inline int64_t num(const value& v, const std::string& key, int64_t missing = -1) {
  const value* f = field(v, key);
  return f != nullptr && f->is_number() ? f->as_number().to_int64() : missing;
}
inline double real(const value& v, const std::string& key, double missing = -1) {
  const value* f = field(v, key);
  return f != nullptr && f->is_number() ? f->as_double() : missing;
}
inline bool flag(const value& v, const std::string& key) {
  const value* f = field(v, key);
  return f != nullptr && f->is_boolean() && f->as_bool();
}
inline const web::json::array* arr(const value& v, const std::string& key) {
  const value* f = field(v, key);
  return f != nullptr && f->is_array() ? &f->as_array() : nullptr;
}

// True if the reply is the documented error shape {"error":{"code","message"}}.
inline bool is_error_body(const Reply& r, const std::string& code = "") {
  const value* e = field(r.json, "error");
  if (e == nullptr || str(*e, "code").empty() || str(*e, "message").empty()) return false;
  return code.empty() || str(*e, "code") == code;
}
inline std::string error_message(const Reply& r) {
  const value* e = field(r.json, "error");
  return e != nullptr ? str(*e, "message") : std::string();
}

// ---- commands ---------------------------------------------------------------------

struct Line {
  std::string sku;
  int quantity = 0;
  int price = 0;
};

struct Cmd {
  std::string id;
  std::string kind;    // placeOrder, cancelOrder, shipOrder, addStock
  std::string stream;  // the stream it targets
  std::string body;    // JSON
};

inline Cmd add_stock(const std::string& id, const std::string& sku, int quantity) {
  value a = value::object();
  a["sku"] = value::string(sku);
  a["quantity"] = value::number(quantity);
  value c = value::object();
  c["commandId"] = value::string(id);
  c["addStock"] = a;
  return {id, "addStock", "sku-" + sku, c.serialize()};
}

inline Cmd place_order(const std::string& id, const std::string& order, const std::string& customer,
                const std::vector<Line>& lines) {
  value ls = value::array(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    value l = value::object();
    l["sku"] = value::string(lines[i].sku);
    l["quantity"] = value::number(lines[i].quantity);
    l["unitPriceCents"] = value::number(lines[i].price);
    ls[i] = l;
  }
  value p = value::object();
  p["orderId"] = value::string(order);
  p["customerId"] = value::string(customer);
  p["lines"] = ls;
  value c = value::object();
  c["commandId"] = value::string(id);
  c["placeOrder"] = p;
  return {id, "placeOrder", "order-" + order, c.serialize()};
}

inline Cmd order_command(const std::string& kind, const std::string& id, const std::string& order) {
  value o = value::object();
  o["orderId"] = value::string(order);
  if (kind == "cancelOrder") o["reason"] = value::string("changed my mind");
  value c = value::object();
  c["commandId"] = value::string(id);
  c[kind] = o;
  return {id, kind, "order-" + order, c.serialize()};
}
inline Cmd cancel_order(const std::string& id, const std::string& order) { return order_command("cancelOrder", id, order); }
inline Cmd ship_order(const std::string& id, const std::string& order) { return order_command("shipOrder", id, order); }

// ---- streams, folds and metrics ---------------------------------------------------

struct Ev {
  int64_t version = 0;
  int64_t position = 0;
  std::string command_id;
  std::string type;
  value data;  // the event's own object, e.g. {"sku":"A","quantity":3} for stockAdded
};

inline bool append_events(const web::json::array& evs, const std::string& stream, std::vector<Ev>* out,
                          std::string* why);

// GET /api/v1/streams/{stream}/events, every page; nullopt (with *why) when it fails.
inline std::optional<std::vector<Ev>> fetch_events(Http& h, const std::string& stream, std::string* why) {
  std::vector<Ev> out;
  for (int64_t from = 1;;) {
    Reply r = h.get("/api/v1/streams/" + stream + "/events?fromVersion=" + std::to_string(from));
    const auto* evs = arr(r.json, "events");
    if (r.status != 200 || evs == nullptr || str(r.json, "stream") != stream) {
      *why = "GET events of " + stream + ": " + r.describe();
      return std::nullopt;
    }
    if (!append_events(*evs, stream, &out, why)) return std::nullopt;
    if (!flag(r.json, "more")) return out;
    const int64_t next = num(r.json, "nextVersion");
    if (next <= from) {
      *why = "paging of " + stream + " does not advance: " + r.describe();
      return std::nullopt;
    }
    from = next;
  }
}

// Decodes one page of events into *out; false (with *why) on an event of another stream.
inline bool append_events(const web::json::array& evs, const std::string& stream, std::vector<Ev>* out,
                          std::string* why) {
  for (const auto& e : evs) {
    Ev ev;
    ev.version = num(e, "version");
    ev.position = num(e, "position");
    ev.command_id = str(e, "commandId");
    ev.type = str(e, "type");
    if (const value* d = field(e, "data"); d != nullptr) {
      if (const value* inner = field(*d, ev.type); inner != nullptr) ev.data = *inner;
    }
    if (str(e, "stream") != stream) {
      *why = "event of another stream in " + stream + ": " + e.serialize();
      return false;
    }
    out->push_back(std::move(ev));
  }
  return true;
}

// An order folded from its events the way the domain's evolve() does.
struct FoldedOrder {
  std::string status;                       // "" if the stream is empty
  std::map<std::string, int> quantity;      // sku -> quantity
  std::map<std::string, std::string> line;  // sku -> pending | reserved | shortfall
};
inline FoldedOrder fold_order(const std::vector<Ev>& evs) {
  FoldedOrder o;
  for (const auto& e : evs) {
    if (e.type == "orderPlaced") {
      o.status = "placed";
      if (const auto* ls = arr(e.data, "lines"); ls != nullptr)
        for (const auto& l : *ls) {
          o.quantity[str(l, "sku")] = static_cast<int>(num(l, "quantity"));
          o.line[str(l, "sku")] = "pending";
        }
    } else if (e.type == "reservationRecorded") {
      const std::string sku = str(e.data, "sku");
      if (o.line.count(sku)) o.line[sku] = flag(e.data, "reserved") ? "reserved" : "shortfall";
    } else if (e.type == "orderConfirmed") {
      o.status = "confirmed";
    } else if (e.type == "orderRejected") {
      o.status = "rejected";
    } else if (e.type == "orderCancelled") {
      o.status = "cancelled";
    } else if (e.type == "orderShipped") {
      o.status = "shipped";
    } else {
      o.status = "unexpected event " + e.type;
    }
  }
  return o;
}

struct FoldedInventory {
  int64_t on_hand = 0;
  int64_t reserved = 0;
  std::map<std::string, int64_t> holds;  // order id -> quantity
  std::string problem;
};
inline FoldedInventory fold_inventory(const std::vector<Ev>& evs) {
  FoldedInventory s;
  for (const auto& e : evs) {
    if (e.type == "stockAdded") {
      s.on_hand += num(e.data, "quantity", 0);
    } else if (e.type == "stockReserved") {
      s.reserved += num(e.data, "quantity", 0);
      if (!s.holds.emplace(str(e.data, "orderId"), num(e.data, "quantity", 0)).second)
        s.problem = "a second hold of order " + str(e.data, "orderId");
    } else if (e.type == "stockReleased") {
      const auto q = num(e.data, "quantity", 0);
      s.reserved -= q;
      if (flag(e.data, "shipped")) s.on_hand -= q;
      auto h = s.holds.find(str(e.data, "orderId"));
      if (h == s.holds.end() || h->second != q)
        s.problem = "a release of " + std::to_string(q) + " for order " + str(e.data, "orderId") +
                    (h == s.holds.end() ? ", which holds nothing" : ", which holds " + std::to_string(h->second));
      else
        s.holds.erase(h);
    } else if (e.type != "stockShortfall") {
      s.problem = "unexpected event " + e.type;
    }
  }
  return s;
}

inline const value* metrics_node(const value& metrics, const std::string& id) {
  if (const auto* nodes = arr(metrics, "nodes"); nodes != nullptr)
    for (const auto& n : *nodes)
      if (str(n, "id") == id) return &n;
  return nullptr;
}
inline double gauge(const value* node, const std::string& name) {
  if (node == nullptr) return -1;
  const value* g = field(*node, "gauges");
  return g != nullptr ? real(*g, name) : -1;
}

// Polls `f` every `step` until it returns true or `timeout` passes.
inline bool eventually(const std::function<bool()>& f, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step = 25ms) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (f()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);
  }
}

// Runs fn(http, i) for i in [0, n) on `threads` threads, each with its own client.
inline void parallel_for(int port, size_t n, int threads, const std::function<void(Http&, size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      Http h(port);
      for (size_t i = next++; i < n; i = next++) fn(h, i);
    });
  for (auto& t : pool) t.join();
}

}  // namespace orderflow::testing::e2e
