#include "connectors/http_api.h"

#include <cpprest/http_listener.h>
#include <google/protobuf/util/json_util.h>

#include "connectors/command_codec.h"

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "graph/json.h"
#include "graph/log.h"
#include "nodes/domain.h"
#include "nodes/nodes.h"

namespace orderflow::connectors {
namespace {

using web::http::http_request;
using web::http::http_response;
using web::http::methods;
using web::http::status_code;
using status_codes = web::http::status_codes;

const char* kJson = "application/json";

// `--log-level debug`: one line per answered request.
void log_request(const http_request& req, status_code code) {
  if (!log::enabled(log::Level::kDebug)) return;
  log::debug("http request", {{"method", req.method()},
                              {"path", req.relative_uri().path()},
                              {"status", std::to_string(code)},
                              {"remote", req.remote_address()}});
}

void reply_json(const http_request& req, status_code code, std::string body, int retry_after = 0) {
  log_request(req, code);
  http_response resp(code);
  if (retry_after > 0) resp.headers().add("Retry-After", std::to_string(retry_after));
  resp.set_body(std::move(body), kJson);
  req.reply(resp).then([](pplx::task<void> t) {
    try {
      t.get();
    } catch (...) {
      // The client went away; nothing to do.
    }
  });
}

std::string error_body(const std::string& code, const std::string& message) {
  JsonWriter w;
  w.begin_object().key("error").begin_object().field("code", code).field("message", message).end_object().end_object();
  return w.take();
}

void reply_error(const http_request& req, status_code code, const std::string& err, const std::string& message,
                 int retry_after = 0) {
  reply_json(req, code, error_body(err, message), retry_after);
}

// The one place pipeline statuses become HTTP statuses.
status_code http_status_of(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk: return status_codes::OK;
    case StatusCode::kInvalidArgument: return status_codes::BadRequest;
    case StatusCode::kNotFound: return status_codes::NotFound;
    case StatusCode::kConflict: return status_codes::Conflict;
    case StatusCode::kRejected: return status_codes::UnprocessableEntity;
    case StatusCode::kUnavailable:
    case StatusCode::kIoError: return status_codes::ServiceUnavailable;
    case StatusCode::kInternal: return status_codes::InternalError;
  }
  return status_codes::InternalError;
}

std::string event_json(const v1::Event& e) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(e, &out, o).ok()) return "null";
  return out;
}

void write_recorded(JsonWriter& w, const RecordedEvent& r) {
  v1::Event e;
  w.begin_object().field("stream", r.stream).field("version", r.version).field("position", r.position);
  w.field("commandId", r.command_id).field("committedAtUs", r.committed_at_us);
  if (e.ParseFromString(r.payload)) {
    w.field("type", domain::event_name(e)).key("data").raw(event_json(e));
  } else {
    w.field("type", "undecodable");
  }
  w.end_object();
}

const char* line_status_name(v1::LineStatus s) {
  switch (s) {
    case v1::LINE_RESERVED: return "reserved";
    case v1::LINE_SHORTFALL: return "shortfall";
    default: return "pending";
  }
}

class HttpSourceNode final : public RuntimeNode {
 public:
  HttpSourceNode(Pipeline& p, const graph::NodeDef& def, std::string uri, CommandSink* sink, HttpApiContext ctx)
      : RuntimeNode(def.id, def.kind, p.metrics().probe(def.id, def.kind)),
        pipeline_(p),
        uri_(std::move(uri)),
        sink_(sink),
        ctx_(std::move(ctx)),
        max_body_(static_cast<size_t>(def.get_int("max_body_bytes"))),
        command_timeout_ms_(def.get_int("command_timeout_ms")) {}

  ~HttpSourceNode() override {
    close();
    stop_deadlines();
  }

  Status start() override {
    try {
      listener_ = std::make_unique<web::http::experimental::listener::http_listener>(uri_);
      listener_->support([this](http_request req) { handle(std::move(req)); });
      listener_->open().wait();
    } catch (const std::exception& ex) {
      return Status::unavailable("cannot listen on " + uri_ + ": " + ex.what());
    }
    deadline_thread_ = std::thread([this] { answer_deadlines(); });
    ready_ = true;
    return Status::ok();
  }

  void stop_intake() override { close(); }

 private:
  void close() {
    ready_ = false;
    if (!listener_) return;
    try {
      listener_->close().wait();
    } catch (...) {
    }
    listener_.reset();
  }

  // ---- deadlines: every command is answered by its deadline --------------------------
  // A command without an outcome at its deadline gets 504 from this thread; the outcome,
  // if one comes later, is then not sent (the flag decides who answers). The pipeline
  // drops the command if it is still undecided or unwritten by then (Envelope::deadline_ns).
  struct Waiting {
    http_request req;
    std::shared_ptr<std::atomic<bool>> answered;
    int64_t timeout_ms = 0;
  };
  using DeadlineKey = std::pair<uint64_t, uint64_t>;  // deadline (steady ns), sequence

  DeadlineKey watch(uint64_t deadline_ns, const http_request& req, std::shared_ptr<std::atomic<bool>> answered,
                    int64_t timeout_ms) {
    std::lock_guard lock(deadlines_mu_);
    DeadlineKey key{deadline_ns, ++deadline_seq_};
    const bool earliest = waiting_.empty() || key < waiting_.begin()->first;
    waiting_.emplace(key, Waiting{req, std::move(answered), timeout_ms});
    if (earliest) deadlines_cv_.notify_one();
    return key;
  }

  void unwatch(const DeadlineKey& key) {
    std::lock_guard lock(deadlines_mu_);
    waiting_.erase(key);
  }

  void answer_deadlines() {
    name_thread("of-deadlines");
    std::unique_lock lock(deadlines_mu_);
    while (!deadlines_stopping_) {
      if (waiting_.empty()) {
        deadlines_cv_.wait(lock);
        continue;
      }
      const uint64_t now = steady_ns();
      const uint64_t next = waiting_.begin()->first.first;
      if (next > now) {
        deadlines_cv_.wait_for(lock, std::chrono::nanoseconds(next - now));
        continue;
      }
      Waiting w = std::move(waiting_.begin()->second);
      waiting_.erase(waiting_.begin());
      lock.unlock();
      if (!w.answered->exchange(true)) {
        probe().add_error("504 deadline passed");
        probe().set_gauge("deadline_answers", static_cast<double>(deadline_answers_.fetch_add(1) + 1));
        reply_error(w.req, status_codes::GatewayTimeout, "deadline_exceeded",
                    "no outcome within " + std::to_string(w.timeout_ms) +
                        " ms; a command not decided by then is never executed. Send it again with the same "
                        "commandId to learn its outcome",
                    1);
      }
      lock.lock();
    }
  }

  void stop_deadlines() {
    {
      std::lock_guard lock(deadlines_mu_);
      deadlines_stopping_ = true;
    }
    deadlines_cv_.notify_all();
    if (deadline_thread_.joinable()) deadline_thread_.join();
  }

  // The command's timeout: the node's command_timeout_ms, or less if the client asks.
  Result<int64_t> timeout_of(const http_request& req) const {
    const auto& headers = req.headers();
    auto it = headers.find("X-Timeout-Ms");
    if (it == headers.end()) return command_timeout_ms_;
    int64_t ms = 0;
    if (!graph::parse_int(it->second, &ms) || ms < 1)
      return Status::invalid_argument("X-Timeout-Ms must be a positive number of milliseconds");
    return std::min(ms, command_timeout_ms_);
  }

  void handle(http_request req) {
    try {
      route(req);
    } catch (const std::exception& ex) {
      probe().add_error(ex.what());
      reply_error(req, status_codes::InternalError, "internal", ex.what());
    }
  }

  void route(http_request& req) {
    const std::string path = req.relative_uri().path();
    const auto method = req.method();
    auto segs = web::uri::split_path(path);
    if (path == "/api/v1/commands") {
      if (method != methods::POST) return reply_error(req, status_codes::MethodNotAllowed, "method_not_allowed", "use POST");
      return post_command(req);
    }
    if (method != methods::GET) {
      return reply_error(req, status_codes::MethodNotAllowed, "method_not_allowed", "use GET on " + path);
    }
    if (path == "/healthz") return reply_json(req, status_codes::OK, R"({"status":"ok"})");
    if (path == "/readyz") {
      if (!ready_) return reply_error(req, status_codes::ServiceUnavailable, "not_ready", "stopping or starting", 1);
      if (ctx_.health) {
        if (Status s = ctx_.health(); !s)
          return reply_error(req, status_codes::ServiceUnavailable, "not_ready", s.message(), 1);
      }
      return reply_json(req, status_codes::OK, R"({"status":"ready"})");
    }
    if (path == "/metrics") {
      http_response resp(status_codes::OK);
      resp.set_body(pipeline_.metrics().to_prometheus(), "text/plain; version=0.0.4");
      log_request(req, status_codes::OK);
      req.reply(resp);
      return;
    }
    if (path == "/api/v1/metrics") return reply_json(req, status_codes::OK, pipeline_.metrics().to_json());
    if (path == "/api/v1/graph") return reply_json(req, status_codes::OK, ctx_.graph_json);
    if (segs.size() == 4 && segs[0] == "api" && segs[1] == "v1" && segs[2] == "orders")
      return get_state(req, domain::order_stream(web::uri::decode(segs[3])), true);
    if (segs.size() == 4 && segs[0] == "api" && segs[1] == "v1" && segs[2] == "inventory")
      return get_state(req, domain::sku_stream(web::uri::decode(segs[3])), false);
    if (segs.size() == 5 && segs[0] == "api" && segs[1] == "v1" && segs[2] == "streams" && segs[4] == "events")
      return get_events(req, web::uri::decode(segs[3]));
    reply_error(req, status_codes::NotFound, "not_found", "no route for " + path);
  }

  void post_command(http_request& req) {
    probe().add_in();
    const auto& headers = req.headers();
    const std::string ctype = headers.content_type();
    if (ctype.rfind("application/json", 0) != 0) {
      probe().add_error("415 content type '" + ctype + "'");
      return reply_error(req, status_codes::UnsupportedMediaType, "unsupported_media_type",
                         "Content-Type must be application/json, got '" + ctype + "'");
    }
    if (headers.content_length() > max_body_) {
      probe().add_error("413 body too large");
      return reply_error(req, status_codes::RequestEntityTooLarge, "body_too_large",
                         "body of " + std::to_string(headers.content_length()) + " bytes exceeds the limit of " +
                             std::to_string(max_body_));
    }
    if (sink_ == nullptr) return reply_error(req, status_codes::ServiceUnavailable, "no_route", "this service takes no commands", 5);
    const auto query = web::uri::split_query(req.request_uri().query());
    bool wait = false;
    if (auto it = query.find("wait"); it != query.end()) {
      if (it->second != "committed")
        return reply_error(req, status_codes::BadRequest, "bad_request", "wait must be 'committed'");
      wait = true;
    }
    auto timeout = timeout_of(req);
    if (!timeout) return reply_error(req, status_codes::BadRequest, "bad_request", timeout.status().message());
    const uint64_t t0 = steady_ns();
    const int64_t timeout_ms = *timeout;
    req.extract_utf8string(true).then([this, req, wait, t0, timeout_ms](pplx::task<std::string> body_task) {
      std::string body;
      try {
        body = body_task.get();
      } catch (const std::exception& ex) {
        return reply_error(req, status_codes::BadRequest, "bad_request", std::string("cannot read body: ") + ex.what());
      }
      on_body(req, body, wait, t0, timeout_ms);
    });
  }

  void on_body(const http_request& req, const std::string& body, bool wait, uint64_t t0, int64_t timeout_ms) {
    if (body.size() > max_body_) {
      probe().add_error("413 body too large");
      return reply_error(req, status_codes::RequestEntityTooLarge, "body_too_large",
                         "body exceeds the limit of " + std::to_string(max_body_) + " bytes");
    }
    auto decoded = decode_command(body, CommandFormat::kJson);
    if (!decoded) {
      probe().add_error("400 " + decoded.status().message());
      return reply_error(req, status_codes::BadRequest, "bad_request", decoded.status().message());
    }
    v1::Command cmd = std::move(*decoded);
    const std::string command_id = cmd.command_id();
    const uint64_t deadline = t0 + static_cast<uint64_t>(timeout_ms) * 1000000;
    auto answered = std::make_shared<std::atomic<bool>>(false);
    auto key = std::make_shared<DeadlineKey>();
    auto env = make_envelope(std::move(cmd), [this, req, wait, command_id, t0, answered, key](const Outcome& o) {
      unwatch(*key);
      if (!answered->exchange(true)) on_outcome(req, wait, command_id, o);
      if (NodeProbe::enabled()) probe().record_latency_us((steady_ns() - t0) / 1000);
      probe().add_out();
    });
    env->ingest_ns = t0;
    env->deadline_ns = deadline;
    // Watched before the submit: the outcome may come before submit() returns, and then
    // unwatch() must find the entry (the key is set before anyone can complete it).
    *key = watch(deadline, req, answered, timeout_ms);
    Status s = sink_->submit(env);
    if (!s) {
      unwatch(*key);
      probe().add_error(s.to_string());
      if (s.code() == StatusCode::kUnavailable)
        return reply_error(req, status_codes::TooManyRequests, "overloaded", s.message(), 1);
      return reply_error(req, http_status_of(s), status_code_name(s.code()), s.message());
    }
  }

  void on_outcome(const http_request& req, bool wait, const std::string& command_id, const Outcome& o) {
    if (!o.status.is_ok() && o.status.code() != StatusCode::kRejected) {
      const auto code = http_status_of(o.status);
      return reply_error(req, code, status_code_name(o.status.code()), o.status.message(),
                         code == status_codes::ServiceUnavailable ? 1 : 0);
    }
    JsonWriter w;
    w.begin_object().field("commandId", command_id);
    if (o.status.code() == StatusCode::kRejected) {
      if (wait) return reply_error(req, status_codes::UnprocessableEntity, "rejected", o.status.message());
      w.field("status", "rejected").field("reason", o.status.message()).end_object();
      return reply_json(req, status_codes::Accepted, w.take());
    }
    w.field("status", "committed").field("stream", o.result.stream).field("version", o.result.last_version);
    w.field("duplicate", o.duplicate);
    if (!wait) {
      w.end_object();
      return reply_json(req, status_codes::Accepted, w.take());
    }
    w.field("firstVersion", o.result.first_version).field("position", o.result.last_position);
    w.key("events").begin_array();
    if (o.events != nullptr) {
      for (size_t i = 0; i < o.events->size(); ++i) {
        w.begin_object().field("version", o.result.first_version + i).field("position", o.result.first_position + i);
        w.field("type", domain::event_name((*o.events)[i])).key("data").raw(event_json((*o.events)[i]));
        w.end_object();
      }
    } else if (ctx_.events != nullptr) {  // a duplicate: the first result's events, from the store
      std::vector<RecordedEvent> evs;
      if (ctx_.events->read_stream(o.result.stream, o.result.first_version, &evs))
        for (const auto& r : evs)
          if (r.version <= o.result.last_version) write_recorded(w, r);
    }
    w.end_array().end_object();
    reply_json(req, status_codes::OK, w.take());
  }

  void get_state(const http_request& req, const std::string& stream, bool order) {
    if (ctx_.snapshots == nullptr) return reply_error(req, status_codes::NotFound, "not_found", "no snapshot store here");
    auto snap = ctx_.snapshots->get(stream);
    if (!snap) return reply_error(req, http_status_of(snap.status()), "store_error", snap.status().message(), 1);
    v1::StreamState st;
    if (snap->version == 0 || !st.ParseFromString(snap->state) ||
        st.kind_case() != (order ? v1::StreamState::kOrder : v1::StreamState::kInventory))
      return reply_error(req, status_codes::NotFound, "not_found", stream + " has no state (yet)");
    JsonWriter w;
    w.begin_object();
    if (order) {
      const auto& o = st.order();
      int64_t total = 0;
      w.field("orderId", o.order_id()).field("customerId", o.customer_id()).field("status", domain::order_status_name(o.status()));
      w.key("lines").begin_array();
      for (const auto& l : o.lines()) {
        total += int64_t{l.line().quantity()} * l.line().unit_price_cents();
        w.begin_object().field("sku", l.line().sku()).field("quantity", l.line().quantity());
        w.field("unitPriceCents", l.line().unit_price_cents()).field("reservation", line_status_name(l.status()));
        w.end_object();
      }
      w.end_array().field("totalCents", total);
      if (!o.reason().empty()) w.field("reason", o.reason());
    } else {
      const auto& s = st.inventory();
      w.field("sku", s.sku()).field("onHand", s.on_hand()).field("reserved", s.reserved());
      w.field("available", s.on_hand() - s.reserved()).field("holds", static_cast<int64_t>(s.holds_size()));
    }
    w.field("version", st.version()).end_object();
    reply_json(req, status_codes::OK, w.take());
  }

  void get_events(const http_request& req, const std::string& stream) {
    if (ctx_.events == nullptr) return reply_error(req, status_codes::NotFound, "not_found", "no event store here");
    uint64_t from = 1;
    const auto query = web::uri::split_query(req.request_uri().query());
    if (auto it = query.find("fromVersion"); it != query.end()) {
      try {
        from = std::stoull(it->second);
      } catch (...) {
        return reply_error(req, status_codes::BadRequest, "bad_request", "fromVersion must be a number");
      }
    }
    std::vector<RecordedEvent> evs;
    if (auto s = ctx_.events->read_stream(stream, from, &evs); !s)
      return reply_error(req, http_status_of(s), "store_error", s.message(), 1);
    JsonWriter w;
    w.begin_object().field("stream", stream).key("events").begin_array();
    for (const auto& r : evs) write_recorded(w, r);
    w.end_array().end_object();
    reply_json(req, status_codes::OK, w.take());
  }

  Pipeline& pipeline_;
  const std::string uri_;
  CommandSink* sink_;
  HttpApiContext ctx_;
  const size_t max_body_;
  const int64_t command_timeout_ms_;
  std::mutex deadlines_mu_;
  std::condition_variable deadlines_cv_;
  std::map<DeadlineKey, Waiting> waiting_;  // guarded by deadlines_mu_
  uint64_t deadline_seq_ = 0;               // guarded by deadlines_mu_
  bool deadlines_stopping_ = false;         // guarded by deadlines_mu_
  std::atomic<uint64_t> deadline_answers_{0};
  std::thread deadline_thread_;
  std::unique_ptr<web::http::experimental::listener::http_listener> listener_;
  std::atomic<bool> ready_{false};
};

}  // namespace

Result<std::string> listen_uri(const std::string& listen) {
  std::string uri = listen.rfind("http://", 0) == 0 ? listen : "http://" + listen;
  const auto colon = uri.rfind(':');
  if (colon == std::string::npos || colon < 7) return Status::invalid_argument("listen address needs host:port, got '" + listen + "'");
  const std::string port = uri.substr(colon + 1);
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) > 65535)
    return Status::invalid_argument("listen port must be a number up to 65535, got '" + port + "'");
  if (!web::uri::validate(uri)) return Status::invalid_argument("not a valid listen address: '" + listen + "'");
  return uri;
}

Result<std::unique_ptr<RuntimeNode>> make_http_source(const graph::NodeDef& def, Pipeline& pipeline,
                                                      CommandSink* sink, HttpApiContext context) {
  auto uri = listen_uri(def.get_string("listen"));
  if (!uri) return uri.status();
  return std::unique_ptr<RuntimeNode>(new HttpSourceNode(pipeline, def, *uri, sink, std::move(context)));
}

}  // namespace orderflow::connectors
