#include "poller.h"

#include <utility>  // before cpprest (Boost.Asio with C++20)

#include <cpprest/http_client.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <stdexcept>

namespace orderflow::monitor {
namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// An HTTP answer other than 200, with its kind (classify_status) for the poller's state.
struct AnswerError : std::runtime_error {
  AnswerError(const std::string& what, AnswerKind k) : std::runtime_error(what), kind(k) {}
  AnswerKind kind;
};

std::string get_body(web::http::client::http_client& client, const std::string& path, const std::string& token) {
  web::http::http_request req(web::http::methods::GET);
  req.set_request_uri(web::uri(path));
  if (!token.empty()) req.headers().add(web::http::header_names::authorization, "Bearer " + token);
  web::http::http_response r = client.request(req).get();
  const AnswerKind kind = classify_status(r.status_code());
  if (kind != AnswerKind::kOk) {
    std::string what = "GET " + path + ": HTTP " + std::to_string(r.status_code());
    if (r.status_code() == web::http::status_codes::Unauthorized)
      what += token.empty() ? " (no token sent)" : " (token not accepted)";
    else if (r.status_code() == web::http::status_codes::Forbidden)
      what += " (token without the read role)";
    throw AnswerError(what, kind);
  }
  return r.extract_utf8string(true).get();
}

}  // namespace

AnswerKind classify_status(int http_status) {
  if (http_status == 200) return AnswerKind::kOk;
  if (http_status == 401 || http_status == 403) return AnswerKind::kUnauthorized;
  return AnswerKind::kFailed;
}

std::string describe_failure(const std::string& url, const std::string& what) {
  if (url.rfind("https://", 0) == 0 && what.find("SSL handshake") != std::string::npos)
    return what + " (is the server's certificate signed by a CA in --ca-file or the system's store?)";
  return what;
}

bool valid_token(const std::string& token, std::string* why) {
  if (token.empty()) {
    if (why) *why = "the token is empty";
    return false;
  }
  for (const char c : token) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      if (why)
        *why = u == ' ' || u == '\t'
                   ? "the token contains a blank (a server's \"ROLE TOKEN\" line? give the token alone)"
                   : "the token contains a control or non-ASCII character";
      return false;
    }
  }
  return true;
}

std::optional<std::string> read_token_file(const std::string& path, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (error) *error = "cannot open " + path;
    return std::nullopt;
  }
  std::string line;
  std::getline(in, line);  // an empty file leaves it empty: refused below
  if (in.bad()) {
    if (error) *error = "cannot read " + path;
    return std::nullopt;
  }
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!line.empty() && blank(line.back())) line.pop_back();
  size_t first = 0;
  while (first < line.size() && blank(line[first])) ++first;
  line.erase(0, first);
  std::string why;
  if (!valid_token(line, &why)) {
    if (error) *error = path + ": first line: " + why;
    return std::nullopt;
  }
  return line;
}

std::string check_ca_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "cannot open " + path;
  try {
    boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_client);
    ctx.load_verify_file(path);
  } catch (const std::exception& ex) {
    return path + " holds no PEM certificate (" + ex.what() + ")";
  }
  return "";
}

// One keep-alive client per poller thread, replaced after a failure.
struct Poller::Client {
  std::unique_ptr<web::http::client::http_client> http;
};

std::chrono::milliseconds backoff_delay(const PollerOptions& o, int failures) {
  if (failures <= 0) return o.interval;
  auto d = o.interval;
  for (int i = 1; i < failures && d < o.max_backoff; ++i) d *= 2;
  return std::min(d, o.max_backoff);
}

Poller::Poller(std::string url, PollerOptions options) : url_(std::move(url)), options_(options) {
  state_.url = url_;
}

Poller::~Poller() { stop(); }

void Poller::start() {
  if (thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lk(wake_mu_);
    stopping_ = false;
  }
  {
    std::lock_guard<std::mutex> lk(admin_mu_);
    admin_stopping_ = false;
    cancel_ = std::make_shared<pplx::cancellation_token_source>();
  }
  thread_ = std::thread([this] { run(); });
  admin_thread_ = std::thread([this] { run_admin(); });
}

void Poller::stop() {
  {
    std::lock_guard<std::mutex> lk(wake_mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  {
    std::lock_guard<std::mutex> lk(admin_mu_);
    admin_stopping_ = true;
    // A replay POST may wait up to replay_timeout: cancel it rather than wait.
    if (cancel_) std::static_pointer_cast<pplx::cancellation_token_source>(cancel_)->cancel();
  }
  admin_wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (admin_thread_.joinable()) admin_thread_.join();
}

ServerState Poller::state() const {
  std::lock_guard<std::mutex> lk(mu_);
  return state_;
}

bool Poller::poll_once(Client& c, bool want_graph) {
  std::string error;
  bool unauthorized = false;
  try {
    if (!c.http) {
      web::http::client::http_client_config cfg;
      cfg.set_timeout(options_.timeout);
      if (!options_.ca_file.empty()) {
        // Called for each new https connection, after cpprestsdk loaded the system's CAs.
        const std::string ca = options_.ca_file;
        cfg.set_ssl_context_callback([ca](boost::asio::ssl::context& ctx) { ctx.load_verify_file(ca); });
      }
      c.http = std::make_unique<web::http::client::http_client>(url_, cfg);
    }
    web::http::client::http_client& client = *c.http;
    std::optional<Topology> topo;
    if (want_graph) {
      topo = parse_topology(get_body(client, "/api/v1/graph", options_.token), &error);
      if (!topo) throw std::runtime_error("/api/v1/graph: " + error);
    }
    auto metrics = parse_metrics(get_body(client, "/api/v1/metrics", options_.token), &error);
    if (!metrics) throw std::runtime_error("/api/v1/metrics: " + error);
    split_errors(error_split_, *metrics);
    const double now = unix_now();
    std::lock_guard<std::mutex> lk(mu_);
    if (topo) {
      state_.topology = std::move(*topo);
      state_.has_topology = true;
    }
    // Copy-on-write (see ServerState::history): UI copies taken earlier keep the old map.
    auto history = state_.history ? std::make_shared<History>(*state_.history) : std::make_shared<History>();
    append_history(*history, *metrics, now, options_.history_seconds);
    state_.history = std::move(history);
    state_.metrics = std::move(*metrics);
    state_.has_metrics = true;
    if (!state_.reachable) {
      // First success, or back after an outage: list the dead letters now, not at the next tick.
      std::lock_guard<std::mutex> alk(admin_mu_);
      admin_kick_ = true;
      admin_wake_.notify_all();
    }
    state_.reachable = true;
    state_.unauthorized = false;
    state_.ever_polled = true;
    state_.last_success = now;
    state_.unreachable_since = 0;
    state_.consecutive_failures = 0;
    state_.last_error.clear();
    return true;
  } catch (const AnswerError& ex) {
    error = ex.what();
    unauthorized = ex.kind == AnswerKind::kUnauthorized;
  } catch (const std::exception& ex) {
    error = describe_failure(url_, ex.what());
  }
  c.http.reset();  // a fresh connection on the next attempt
  const double now = unix_now();
  std::lock_guard<std::mutex> lk(mu_);
  if (state_.reachable || !state_.ever_polled || state_.unreachable_since == 0)
    state_.unreachable_since = now;
  state_.reachable = false;
  state_.unauthorized = unauthorized;
  state_.ever_polled = true;
  state_.consecutive_failures++;
  state_.last_error = error;
  return false;
}

void Poller::run() {
  int polls = 0;
  bool need_graph = true;
  Client client;
  for (;;) {
    {
      std::lock_guard<std::mutex> lk(wake_mu_);
      if (stopping_) return;
    }
    const bool ok = poll_once(client, need_graph || polls % std::max(1, options_.graph_refresh_polls) == 0);
    attempts_.fetch_add(1, std::memory_order_relaxed);
    ++polls;
    std::chrono::milliseconds delay = options_.interval;
    {
      std::lock_guard<std::mutex> lk(mu_);
      // Re-read the topology after any outage: the server may have restarted with a new graph.
      need_graph = !ok || !state_.has_topology;
      if (!ok) delay = backoff_delay(options_, state_.consecutive_failures);
      state_.next_attempt_in = std::chrono::duration<double>(delay).count();
    }
    std::unique_lock<std::mutex> lk(wake_mu_);
    wake_.wait_for(lk, delay, [this] { return stopping_; });
    if (stopping_) return;
  }
}

// ---- The admin thread -------------------------------------------------------------------

namespace {

web::http::client::http_client_config admin_config(std::chrono::milliseconds timeout, const std::string& ca_file) {
  web::http::client::http_client_config cfg;
  cfg.set_timeout(timeout);
  if (!ca_file.empty())
    cfg.set_ssl_context_callback([ca_file](boost::asio::ssl::context& ctx) { ctx.load_verify_file(ca_file); });
  return cfg;
}

struct Answer {
  int status = 0;  // 0 = no answer (error says why)
  std::string body;
  std::string error;
};

Answer send(web::http::client::http_client& client, const web::http::method& method, const std::string& path,
            const std::string& token, const pplx::cancellation_token& cancel, const std::string& body = "") {
  Answer a;
  try {
    web::http::http_request req(method);
    req.set_request_uri(web::uri(path));
    if (!token.empty()) req.headers().add(web::http::header_names::authorization, "Bearer " + token);
    if (!body.empty()) req.set_body(body, "application/json");
    web::http::http_response r = client.request(req, cancel).get();
    a.status = r.status_code();
    a.body = r.extract_utf8string(true).get();
  } catch (const std::exception& ex) {
    a.status = 0;
    a.error = ex.what();
  }
  return a;
}

// An admin GET's answer as the view's status (the caller parses the body of a 200).
AdminView classify_admin(const Answer& a, const std::string& path, const std::string& url, const std::string& token,
                         double now) {
  AdminView v;
  v.polled_at = now;
  v.http_status = a.status;
  if (a.status == 0) {
    v.status = AdminStatus::kFailed;
    v.error = "GET " + path + ": " + describe_failure(url, a.error);
  } else if (a.status == 200) {
    v.status = AdminStatus::kOk;
  } else if (a.status == 404) {
    v.status = AdminStatus::kNoAdminApi;  // an older server: nothing to show, nothing wrong
  } else if (a.status == 401 || a.status == 403) {
    v.status = AdminStatus::kUnauthorized;
    v.error = "GET " + path + ": HTTP " + std::to_string(a.status) +
              (a.status == 403 ? " (token without the read role)"
                               : token.empty() ? " (no token sent)" : " (token not accepted)");
  } else {
    v.status = AdminStatus::kFailed;
    const std::string why = error_of_body(a.body);
    v.error = "GET " + path + ": HTTP " + std::to_string(a.status) + (why.empty() ? "" : ": " + why);
  }
  return v;
}

}  // namespace

struct Poller::AdminClients {
  std::unique_ptr<web::http::client::http_client> list;    // admin GETs, admin_timeout
  std::unique_ptr<web::http::client::http_client> replay;  // replay POSTs, replay_timeout
  pplx::cancellation_token cancel = pplx::cancellation_token::none();
};

std::uint64_t Poller::request_replay(ReplayRequest request) {
  ReplayOutcome o;
  o.request = std::move(request);
  o.at = unix_now();
  {
    std::lock_guard<std::mutex> lk(admin_mu_);
    o.id = next_replay_id_++;
  }
  set_outcome(o);  // pending, before the admin thread can see it (its answer must come after)
  {
    std::lock_guard<std::mutex> lk(admin_mu_);
    replay_queue_.push_back(o);
  }
  admin_wake_.notify_all();
  return o.id;
}

void Poller::set_outcome(const ReplayOutcome& o) {
  std::lock_guard<std::mutex> lk(mu_);
  auto& list = state_.replays;
  for (ReplayOutcome& r : list)
    if (r.id == o.id) {
      r = o;
      return;
    }
  list.push_back(o);
  // Keep the newest few; a pending one is never dropped (its answer is still to come).
  while (list.size() > ServerState::kKeptReplays) {
    auto it = std::find_if(list.begin(), list.end(),
                           [](const ReplayOutcome& r) { return r.state != ReplayOutcome::State::kPending; });
    if (it == list.end()) break;
    list.erase(it);
  }
}

void Poller::poll_admin(AdminClients& c) {
  if (!c.list) c.list = std::make_unique<web::http::client::http_client>(url_, admin_config(options_.admin_timeout, options_.ca_file));
  const std::string dl_path = "/api/v1/admin/dead-letters";
  const Answer a = send(*c.list, web::http::methods::GET, dl_path, options_.token, c.cancel);
  AdminView view = classify_admin(a, dl_path, url_, options_.token, unix_now());
  std::shared_ptr<const DeadLetterList> list;
  if (view.status == AdminStatus::kOk) {
    std::string error;
    auto parsed = parse_dead_letters(a.body, &error);
    if (parsed) {
      list = std::make_shared<const DeadLetterList>(std::move(*parsed));
    } else {
      view.status = AdminStatus::kFailed;
      view.error = "GET " + dl_path + ": " + error;
    }
  }
  if (a.status == 0) c.list.reset();
  // Subscribers only where the server has the admin API and lets this token read it.
  AdminView sub_view;
  std::shared_ptr<const std::vector<SubscriberInfo>> subs;
  const bool want_subs = options_.poll_subscribers && view.status != AdminStatus::kNoAdminApi &&
                         view.status != AdminStatus::kUnauthorized && a.status != 0;
  if (want_subs) {
    const std::string sub_path = "/api/v1/admin/subscribers";
    const Answer b = send(*c.list, web::http::methods::GET, sub_path, options_.token, c.cancel);
    sub_view = classify_admin(b, sub_path, url_, options_.token, unix_now());
    if (sub_view.status == AdminStatus::kOk) {
      std::string error;
      auto parsed = parse_subscribers(b.body, &error);
      if (parsed) {
        subs = std::make_shared<const std::vector<SubscriberInfo>>(std::move(*parsed));
      } else {
        sub_view.status = AdminStatus::kFailed;
        sub_view.error = "GET " + sub_path + ": " + error;
      }
    }
    if (b.status == 0) c.list.reset();
  }
  // Commands the saga parked: asked wherever the admin API answers (404 = none parked this way).
  AdminView parked_view;
  std::shared_ptr<const ParkedList> parked;
  const bool want_parked = view.status != AdminStatus::kNoAdminApi && view.status != AdminStatus::kUnauthorized &&
                           a.status != 0 && c.list;
  if (want_parked) {
    const std::string parked_path = "/api/v1/admin/parked";
    const Answer p = send(*c.list, web::http::methods::GET, parked_path, options_.token, c.cancel);
    parked_view = classify_admin(p, parked_path, url_, options_.token, unix_now());
    if (parked_view.status == AdminStatus::kOk) {
      std::string error;
      if (auto parsed = parse_parked(p.body, &error)) {
        parked = std::make_shared<const ParkedList>(std::move(*parsed));
      } else {
        parked_view.status = AdminStatus::kFailed;
        parked_view.error = "GET " + parked_path + ": " + error;
      }
    }
    if (p.status == 0) c.list.reset();
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (want_parked) {
      state_.parked_view = parked_view;
      if (parked || parked_view.status != AdminStatus::kFailed) state_.parked = parked;
    } else if (view.status != AdminStatus::kFailed) {
      state_.parked_view = AdminView{view.status, view.http_status, "", view.polled_at};
      state_.parked.reset();
    }
    state_.dead_letters_view = view;
    if (list || view.status != AdminStatus::kFailed) state_.dead_letters = list;  // a failure keeps the last list
    if (want_subs) {
      state_.subscribers_view = sub_view;
      if (subs || sub_view.status != AdminStatus::kFailed) state_.subscribers = subs;
    } else {
      state_.subscribers_view = AdminView{view.status == AdminStatus::kFailed ? AdminStatus::kNotPolled : view.status,
                                          view.http_status, "", view.polled_at};
      if (view.status != AdminStatus::kFailed) state_.subscribers.reset();
    }
  }
  admin_attempts_.fetch_add(1, std::memory_order_relaxed);
}

void Poller::replay(AdminClients& c, const ReplayOutcome& job) {
  if (!c.replay)
    c.replay = std::make_unique<web::http::client::http_client>(url_, admin_config(options_.replay_timeout, options_.ca_file));
  web::json::value body = web::json::value::object();
  if (job.request.parked) {
    if (job.request.all)
      body["all"] = web::json::value::boolean(true);
    else
      body["command_id"] = web::json::value::string(job.request.command_id);
  } else {
    body["node"] = web::json::value::string(job.request.node);
    if (job.request.all) {
      body["all"] = web::json::value::boolean(true);
    } else {
      body["partition"] = web::json::value::number(job.request.partition);
      body["offset"] = web::json::value::number(job.request.offset);
    }
  }
  const std::string path = job.request.parked ? "/api/v1/admin/parked/replay" : "/api/v1/admin/dead-letters/replay";
  const Answer a = send(*c.replay, web::http::methods::POST, path, options_.token, c.cancel, body.serialize());
  ReplayOutcome o = job;
  o.http_status = a.status;
  if (a.status == 200) {
    std::string error;
    auto answer = job.request.parked ? parse_parked_replay_answer(a.body, &error) : parse_replay_answer(a.body, &error);
    if (answer) {
      o.state = ReplayOutcome::State::kDone;
      o.answer = std::move(*answer);
    } else {
      o.state = ReplayOutcome::State::kFailed;
      o.error = error;
    }
  } else {
    o.state = ReplayOutcome::State::kFailed;
    if (a.status == 0) {
      o.error = describe_failure(url_, a.error);
      c.replay.reset();
    } else {
      o.error = error_of_body(a.body);
      if (o.error.empty()) {  // the server said nothing: say what the status usually means
        if (a.status == 401) o.error = options_.token.empty() ? "no token sent" : "token not accepted";
        if (a.status == 403) o.error = "the token has no write role";
        if (a.status == 404) o.error = "the server has no admin API";
      }
    }
  }
  set_outcome(o);
  replays_finished_.fetch_add(1, std::memory_order_relaxed);
}

void Poller::run_admin() {
  AdminClients c;
  {
    std::lock_guard<std::mutex> lk(admin_mu_);
    if (cancel_) c.cancel = std::static_pointer_cast<pplx::cancellation_token_source>(cancel_)->get_token();
  }
  const bool polling = options_.admin_interval.count() > 0;
  auto next_poll = std::chrono::steady_clock::now();
  for (;;) {
    std::optional<ReplayOutcome> job;
    bool poll = false;
    {
      std::unique_lock<std::mutex> lk(admin_mu_);
      const auto ready = [this] { return admin_stopping_ || admin_kick_ || !replay_queue_.empty(); };
      if (polling)
        admin_wake_.wait_until(lk, next_poll, ready);
      else
        admin_wake_.wait(lk, ready);
      if (admin_stopping_) return;
      if (!replay_queue_.empty()) {
        job = replay_queue_.front();
        replay_queue_.erase(replay_queue_.begin());
      } else {
        poll = polling && (admin_kick_ || std::chrono::steady_clock::now() >= next_poll);
        admin_kick_ = false;
      }
    }
    if (job) {
      replay(c, *job);
      if (polling) poll = true;  // show the list as it is after the replay
    }
    if (!poll) continue;
    next_poll = std::chrono::steady_clock::now() + options_.admin_interval;
    bool reachable = false;
    {
      std::lock_guard<std::mutex> lk(mu_);
      reachable = state_.reachable;
    }
    // An unreachable server has its banner already; the poll thread kicks this one on recovery.
    if (reachable) poll_admin(c);
  }
}

}  // namespace orderflow::monitor
