#include "connectors/cosmos_store.h"

#include <cpprest/asyncrt_utils.h>
#include <cpprest/json.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <numeric>
#include <random>
#include <set>
#include <string_view>
#include <thread>
#include <unordered_set>

#include "connectors/append_plan.h"
#include "graph/log.h"

namespace orderflow::connectors {
namespace {

using web::json::value;
using Clock = std::chrono::steady_clock;

std::string b64(const std::string& bytes) {
  return utility::conversions::to_base64(std::vector<unsigned char>(bytes.begin(), bytes.end()));
}

bool unb64(const std::string& text, std::string* out) {
  try {
    auto v = utility::conversions::from_base64(text);
    out->assign(v.begin(), v.end());
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

std::string pk_header(const std::string& key) {
  value a = value::array(1);
  a[0] = value::string(key);
  return a.serialize();
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The message field of a Cosmos error body, if any (never the request, so never the key).
std::string error_message(const CosmosResponse& r) {
  try {
    value v = value::parse(r.body);
    if (v.is_object() && v.has_field("message") && v.at("message").is_string()) {
      std::string m = v.at("message").as_string();
      if (m.size() > 300) m.resize(300);
      return m;
    }
  } catch (const std::exception&) {
  }
  return std::string();
}

Status status_of(const CosmosResponse& r, const std::string& what) {
  std::string m = error_message(r);
  return cosmos_status(r.http_status, r.sub_status, m.empty() ? what : what + ": " + m);
}

Result<value> parse_json(const std::string& body, const std::string& what) {
  try {
    return value::parse(body);
  } catch (const std::exception& ex) {
    return Status::io_error("undecodable answer to " + what + ": " + ex.what());
  }
}

uint64_t u64(const value& v, const char* field) {
  if (!v.has_field(field)) return 0;
  const value& f = v.at(field);
  if (!f.is_number()) return 0;
  const auto& n = f.as_number();
  if (n.is_uint64()) return n.to_uint64();
  // Negative, too large or not a number: not a version or time this store wrote. (Casting
  // such a double to an integer is undefined; found by fuzz_cosmos_response.)
  const double d = n.to_double();
  return d >= 0 && d < 18446744073709551616.0 ? static_cast<uint64_t>(d) : 0;
}

std::string str(const value& v, const char* field) {
  if (!v.has_field(field) || !v.at(field).is_string()) return std::string();
  return v.at(field).as_string();
}

// ---- commit documents ---------------------------------------------------------------------
//
// Grouped layout: consecutive commands of one stream share a document, which lists them in
// `commands` ([{id, n}]: n events each, in version order) and puts each command id in the
// slot field its hash picks (k0..k7), every other slot holding a filler no command id has.
// Each slot is a unique key, so a command id repeated on the stream collides in its slot
// wherever the first copy was written. The legacy layout (a container made with the unique
// key /commandId) has one command per document, in `commandId`.

constexpr int kSlots = 8;  // unique keys per container: Cosmos DB allows 10
// Event bytes one document takes at most (base64 grows them by a third; an item may be 2 MB).
constexpr size_t kMaxDocumentPayload = 512 * 1024;

std::string slot_field(int slot) { return "k" + std::to_string(slot); }

std::vector<std::string> slot_paths() {
  std::vector<std::string> paths;
  for (int i = 0; i < kSlots; ++i) paths.push_back("/" + slot_field(i));
  return paths;
}

int slot_of(const std::string& command_id) { return cosmos_command_slot(command_id); }

// Starts with a control character no command id may start with (append refuses them).
constexpr char kFillerMark = '\x01';
std::string slot_filler(uint64_t first_version) { return kFillerMark + std::to_string(first_version); }

// The command id of each of commit document d's `n` events, in order. False when the
// document's command list does not add up to its events.
bool event_command_ids(const value& d, size_t n, std::vector<std::string>* out) {
  out->clear();
  if (!d.has_field("commands")) {
    out->assign(n, str(d, "commandId"));
    return true;
  }
  const value& cmds = d.at("commands");
  if (!cmds.is_array()) return false;
  for (const auto& c : cmds.as_array()) {
    const uint64_t count = u64(c, "n");
    if (!c.is_object() || count == 0 || count > n - out->size()) return false;
    out->insert(out->end(), count, str(c, "id"));
  }
  return out->size() == n;
}

// The versions `command_id` holds in commit document d (which starts at firstVersion).
bool command_range(const value& d, const std::string& command_id, uint64_t* first, uint64_t* last) {
  uint64_t v = u64(d, "firstVersion");
  if (!d.has_field("commands")) {
    if (str(d, "commandId") != command_id) return false;
    *first = v;
    *last = u64(d, "lastVersion");
    return true;
  }
  if (!d.at("commands").is_array()) return false;
  for (const auto& c : d.at("commands").as_array()) {
    const uint64_t count = u64(c, "n");
    if (str(c, "id") == command_id && count > 0) {
      *first = v;
      *last = v + count - 1;
      return true;
    }
    v += count;
  }
  return false;
}

// The LSN in a change-feed continuation ("\"123\"") or session token ("0:-1#123").
uint64_t lsn_of(const std::string& s) {
  size_t i = s.rfind('#');
  std::string digits;
  for (size_t k = (i == std::string::npos ? 0 : i + 1); k < s.size(); ++k)
    if (std::isdigit(static_cast<unsigned char>(s[k]))) digits.push_back(s[k]);
  return digits.empty() ? 0 : std::strtoull(digits.c_str(), nullptr, 10);
}

}  // namespace

// FNV-1a: the same slot for an id in every process and every version of orderflow.
int cosmos_command_slot(const std::string& command_id) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : command_id) h = (h ^ c) * 1099511628211ull;
  return static_cast<int>(h % kSlots);
}

Status parse_change_feed_page(const std::string& body, uint64_t first_position, std::vector<RecordedEvent>* out) {
  auto page = parse_json(body, "change feed");
  if (!page) return page.status();
  // Regression (found by fuzz_cosmos_response): "Documents" that was not an array threw out
  // of the feed view and ended the process (std::terminate on the subscriber's thread).
  if (!page->has_field("Documents") || !page->at("Documents").is_array())
    return Status::io_error("change feed answer without a Documents array");
  uint64_t position = first_position;
  std::vector<RecordedEvent> events;
  std::vector<std::string> ids;
  const auto& docs = page->at("Documents").as_array();
  // A transactional batch writes several documents of one stream at once. Whatever order a
  // page lists them in, each stream's documents go out in version order, in the places its
  // documents take among the other streams'.
  std::vector<size_t> order(docs.size());
  std::iota(order.begin(), order.end(), size_t{0});
  {
    std::unordered_map<std::string, std::vector<size_t>> places;
    for (size_t i = 0; i < docs.size(); ++i)
      if (docs.at(i).is_object()) places[str(docs.at(i), "streamId")].push_back(i);
    for (const auto& [stream, at] : places) {
      if (at.size() < 2) continue;
      std::vector<size_t> by_version = at;
      std::stable_sort(by_version.begin(), by_version.end(), [&](size_t a, size_t b) {
        return u64(docs.at(a), "firstVersion") < u64(docs.at(b), "firstVersion");
      });
      for (size_t k = 0; k < at.size(); ++k) order[at[k]] = by_version[k];
    }
  }
  for (const size_t i : order) {
    const auto& d = docs.at(i);
    if (!d.is_object() || !d.has_field("events") || !d.at("events").is_array()) continue;  // not a commit document
    uint64_t v = u64(d, "firstVersion");
    const auto& payloads = d.at("events").as_array();
    if (!event_command_ids(d, payloads.size(), &ids))
      return Status::io_error("commit document of " + str(d, "streamId") + " lists commands that do not match its events");
    size_t k = 0;
    for (const auto& e : payloads) {
      RecordedEvent ev;
      ev.stream = str(d, "streamId");
      ev.version = v++;
      ev.position = position++;
      ev.committed_at_us = static_cast<int64_t>(u64(d, "committedAtUs"));
      ev.command_id = ids[k++];
      if (!e.is_string() || !unb64(e.as_string(), &ev.payload))
        return Status::io_error("undecodable event in the change feed of " + ev.stream);
      events.push_back(std::move(ev));
    }
  }
  for (auto& ev : events) out->push_back(std::move(ev));
  return Status::ok();
}

namespace {

CosmosRequest make(const std::string& method, const std::string& type, const std::string& link,
                   const std::string& path, const std::string& op, const std::string& scope) {
  CosmosRequest r;
  r.method = method;
  r.resource_type = type;
  r.resource_link = link;
  r.path = path;
  r.op = op;
  r.session_scope = scope;
  return r;
}

// A query in one partition (or across partitions when key is null), every page.
Result<std::vector<value>> query_all(CosmosClient& c, const std::string& coll, const std::string& sql,
                                     const std::vector<std::pair<std::string, value>>& params,
                                     const std::string* partition_key, const std::string& op) {
  value body = value::object();
  body["query"] = value::string(sql);
  value ps = value::array(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    value p = value::object();
    p["name"] = value::string(params[i].first);
    p["value"] = params[i].second;
    ps[i] = p;
  }
  body["parameters"] = ps;
  std::vector<value> out;
  std::string continuation;
  for (int page = 0; page < 100000; ++page) {
    CosmosRequest r = make("POST", "docs", coll, coll + "/docs", op, coll);
    r.body = body.serialize();
    r.headers = {{"content-type", "application/query+json"}, {"x-ms-documentdb-isquery", "True"},
                 {"x-ms-max-item-count", "1000"}};
    if (partition_key) {
      r.headers.emplace_back("x-ms-documentdb-partitionkey", pk_header(*partition_key));
    } else {
      r.headers.emplace_back("x-ms-documentdb-query-enablecrosspartition", "True");
    }
    if (!continuation.empty()) r.headers.emplace_back("x-ms-continuation", continuation);
    auto resp = c.send(r);
    if (!resp) return resp.status();
    if (resp->http_status != 200) return status_of(*resp, "query " + coll);
    auto v = parse_json(resp->body, "query " + coll);
    if (!v) return v.status();
    if (!v->has_field("Documents") || !v->at("Documents").is_array())
      return Status::io_error("query " + coll + ": answer without Documents");
    for (const auto& d : v->at("Documents").as_array()) out.push_back(d);
    continuation = resp->header("x-ms-continuation");
    if (continuation.empty()) break;
  }
  return out;
}

std::string random_write_id() {
  thread_local std::mt19937_64 rng(std::random_device{}() ^ static_cast<uint64_t>(now_us()));
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

bool valid_id(const std::string& id) {
  if (id.empty() || id.size() > 255) return false;
  for (char c : id)
    if (c == '/' || c == '\\' || c == '?' || c == '#') return false;
  return true;
}

}  // namespace

namespace {

// The threads behind parallel_for, made once and kept: a thread per request of every group
// commit cost a clone() and a stack each time. The pool grows to the largest `workers` asked
// for; concurrent callers share it, and each caller also works on its own job, so a job
// progresses even while every pool thread serves another one.
class WorkPool {
 public:
  static WorkPool& shared() {
    static WorkPool* pool = new WorkPool();  // never destroyed: its threads may wait at exit
    return *pool;
  }

  void run(size_t n, size_t helpers, const std::function<void(size_t)>& fn) {
    auto job = std::make_shared<Job>();
    job->n = n;
    job->fn = &fn;
    {
      std::lock_guard lock(mu_);
      while (threads_ < helpers) {
        std::thread([this] {
          // Named, or it carries the name of whichever thread first needed it (the commit
          // writer's, say), and profiles count it there.
          pthread_setname_np(pthread_self(), "of-cosmos-req");
          loop();
        }).detach();
        ++threads_;
      }
      for (size_t k = 0; k < helpers; ++k) tickets_.push_back(job);  // one per helper wanted
    }
    cv_.notify_all();
    job->work();
    job->wait();  // every fn(i) has returned: fn may go out of scope
  }

 private:
  struct Job {
    size_t n = 0;
    const std::function<void(size_t)>* fn = nullptr;  // valid until done == n
    std::atomic<size_t> next{0};
    std::mutex mu;
    std::condition_variable cv;
    size_t done = 0;  // guarded by mu

    void work() {
      size_t mine = 0;
      for (size_t i = next++; i < n; i = next++, ++mine) (*fn)(i);
      if (mine == 0) return;  // a late ticket: nothing left, fn not touched
      std::lock_guard lock(mu);
      done += mine;
      if (done == n) cv.notify_all();
    }
    void wait() {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return done == n; });
    }
  };

  void loop() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !tickets_.empty(); });
        job = std::move(tickets_.front());
        tickets_.pop_front();
      }
      job->work();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> tickets_;  // guarded by mu_
  size_t threads_ = 0;                        // guarded by mu_
};

}  // namespace

void parallel_for(size_t n, int workers, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  const size_t threads = std::min<size_t>(n, static_cast<size_t>(std::max(1, workers)));
  if (threads == 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  WorkPool::shared().run(n, threads - 1, fn);
}

Status cosmos_ensure_container(CosmosClient& c, const std::string& db, const std::string& coll,
                               const std::string& partition_path, const std::vector<std::string>& unique_keys) {
  value d = value::object();
  d["id"] = value::string(db);
  CosmosRequest r = make("POST", "dbs", "", "dbs", "setup", "");
  r.body = d.serialize();
  auto resp = c.send(r);
  if (!resp) return resp.status();
  if (resp->http_status != 201 && resp->http_status != 409) return status_of(*resp, "create database " + db);
  value spec = value::object();
  spec["id"] = value::string(coll);
  value pk = value::object();
  value paths = value::array(1);
  paths[0] = value::string(partition_path);
  pk["paths"] = paths;
  pk["kind"] = value::string("Hash");
  spec["partitionKey"] = pk;
  if (!unique_keys.empty()) {
    value keys = value::array(unique_keys.size());
    for (size_t i = 0; i < unique_keys.size(); ++i) {
      value k = value::object();
      value p = value::array(1);
      p[0] = value::string(unique_keys[i]);
      k["paths"] = p;
      keys[i] = k;
    }
    value policy = value::object();
    policy["uniqueKeys"] = keys;
    spec["uniqueKeyPolicy"] = policy;
  }
  r = make("POST", "colls", "dbs/" + db, "dbs/" + db + "/colls", "setup", "");
  r.body = spec.serialize();
  resp = c.send(r);
  if (!resp) return resp.status();
  if (resp->http_status != 201 && resp->http_status != 409) return status_of(*resp, "create container " + coll);
  return Status::ok();
}

// ---- event store ------------------------------------------------------------------------

CosmosEventStore::CosmosEventStore(std::shared_ptr<CosmosClient> client, CosmosStoreOptions options)
    : client_(std::move(client)), options_(std::move(options)) {}

CosmosEventStore::~CosmosEventStore() = default;

Result<std::unique_ptr<CosmosEventStore>> CosmosEventStore::open(std::shared_ptr<CosmosClient> client,
                                                                 const CosmosStoreOptions& options) {
  if (!valid_id(options.database) || !valid_id(options.container) || !valid_id(options.leases_container))
    return Status::invalid_argument("cosmos database and container names must be 1-255 characters without / \\ ? #");
  std::unique_ptr<CosmosEventStore> s(new CosmosEventStore(std::move(client), options));
  if (options.create_if_missing) {
    if (auto st = cosmos_ensure_container(*s->client_, options.database, options.container, "/streamId", slot_paths());
        !st)
      return st;
    if (auto st = cosmos_ensure_container(*s->client_, options.database, options.leases_container, "/subscriber", {});
        !st)
      return st;
  }
  // The layout follows the container's unique keys (they cannot change): a container made
  // before the grouped layout keeps one command per document.
  const std::string link = s->coll_link();
  auto resp = s->client_->send(make("GET", "colls", link, link, "setup", ""));
  if (!resp) return resp.status();
  if (resp->http_status != 200) return status_of(*resp, "open container " + link);
  auto coll = parse_json(resp->body, "open container " + link);
  if (!coll) return coll.status();
  std::set<std::string> unique_paths;
  try {
    for (const auto& k : coll->at("uniqueKeyPolicy").at("uniqueKeys").as_array())
      for (const auto& path : k.at("paths").as_array()) unique_paths.insert(path.as_string());
  } catch (const std::exception&) {
  }
  const auto slots = slot_paths();
  s->grouped_ = std::all_of(slots.begin(), slots.end(), [&](const std::string& p) { return unique_paths.count(p) > 0; });
  if (!s->grouped_ && !unique_paths.count("/commandId"))
    return Status::invalid_argument("container " + link +
                                    " has neither the unique keys /k0../k7 nor /commandId: it was not made by orderflow");
  if (options.create_if_missing) {
    // The database deleted under a running instance (an emulator restarted empty): made
    // again, so the instance recovers without a restart.
    CosmosClient* c = s->client_.get();
    const std::vector<std::string> keys = s->grouped_ ? slot_paths() : std::vector<std::string>{"/commandId"};
    c->on_missing_resource([c, options, keys] {
      cosmos_ensure_container(*c, options.database, options.container, "/streamId", keys);
      cosmos_ensure_container(*c, options.database, options.leases_container, "/subscriber", {});
    });
  }
  return s;
}

std::string CosmosEventStore::coll_link() const { return "dbs/" + options_.database + "/colls/" + options_.container; }

uint64_t CosmosEventStore::commands_appended() const {
  std::lock_guard lock(mu_);
  return commands_;
}

void CosmosEventStore::remember_version(const std::string& stream, uint64_t version) {
  std::lock_guard lock(mu_);
  if (versions_.size() > 1000000) versions_.clear();
  uint64_t& v = versions_[stream];
  v = std::max(v, version);
}

Result<uint64_t> CosmosEventStore::query_version(const std::string& stream, const char* op) {
  auto docs = query_all(*client_, coll_link(),
                        "SELECT TOP 1 c.lastVersion FROM c WHERE c.streamId = @s ORDER BY c.lastVersion DESC",
                        {{"@s", value::string(stream)}}, &stream, op);
  if (!docs) return docs.status();
  uint64_t v = docs->empty() ? 0 : u64(docs->front(), "lastVersion");
  remember_version(stream, v);
  return v;
}

namespace {

// The fields of a commit document that name its commands, for the look-ups below.
constexpr const char* kCommandFields =
    "SELECT c.streamId, c.firstVersion, c.lastVersion, c.writeId, c.commandId, c.commands FROM c WHERE ";

// The first result of `command_id` when document `d` holds it.
bool command_result(const value& d, const std::string& command_id, AppendResult* r) {
  if (!command_range(d, command_id, &r->first_version, &r->last_version)) return false;
  r->stream = str(d, "streamId");
  return true;
}

}  // namespace

std::string CosmosEventStore::command_field(const std::string& command_id) const {
  return grouped_ ? slot_field(slot_of(command_id)) : std::string("commandId");
}

Result<std::optional<CosmosEventStore::Check>> CosmosEventStore::query_check(const std::string& stream,
                                                                             uint64_t expected,
                                                                             const std::string& command_id,
                                                                             const char* op) {
  const std::string sql =
      std::string(kCommandFields) + "c.streamId = @s AND (c.lastVersion >= @v OR c." + command_field(command_id) + " = @c)";
  auto docs = query_all(*client_, coll_link(), sql,
                        {{"@s", value::string(stream)},
                         {"@v", value::number(static_cast<double>(expected))},
                         {"@c", value::string(command_id)}},
                        &stream, op);
  if (!docs) return docs.status();
  Check check;
  bool held = false;  // a document holds version `expected`: the stream has reached it
  for (const auto& d : *docs) {
    const uint64_t first = u64(d, "firstVersion"), last = u64(d, "lastVersion");
    if (first <= expected && expected <= last) held = true;
    check.version = std::max(check.version, last);  // documents are contiguous: the highest end is the stream's
    AppendResult r;
    if (!check.found && command_result(d, command_id, &r)) check.found = r;
  }
  if (!held) return std::optional<Check>();
  remember_version(stream, check.version);
  return std::optional<Check>(std::move(check));
}

Result<uint64_t> CosmosEventStore::stream_version(const std::string& stream) {
  return query_version(stream, "read_stream");
}

Result<std::optional<AppendResult>> CosmosEventStore::query_command(const std::string* stream,
                                                                    const std::string& command_id, const char* op,
                                                                    std::string* write_id, uint64_t* doc_last) {
  std::string sql = std::string(kCommandFields) + "c." + command_field(command_id) + " = @c";
  std::vector<std::pair<std::string, value>> params{{"@c", value::string(command_id)}};
  if (stream) {
    sql += " AND c.streamId = @s";
    params.emplace_back("@s", value::string(*stream));
  }
  auto docs = query_all(*client_, coll_link(), sql, params, stream, op);
  if (!docs) return docs.status();
  for (const auto& d : *docs) {
    AppendResult r;
    if (!command_result(d, command_id, &r)) continue;
    if (write_id) *write_id = str(d, "writeId");
    if (doc_last) *doc_last = u64(d, "lastVersion");
    return std::optional<AppendResult>(r);
  }
  return std::optional<AppendResult>();
}

Result<std::optional<AppendResult>> CosmosEventStore::find_command(const std::string& command_id) {
  return query_command(nullptr, command_id, "find_command");
}

Result<std::optional<AppendResult>> CosmosEventStore::find_command_in(const std::string& stream,
                                                                      const std::string& command_id) {
  return query_command(&stream, command_id, "find_command");
}

Status CosmosEventStore::read_stream(const std::string& stream, uint64_t from_version,
                                     std::vector<RecordedEvent>* out) {
  auto docs = query_all(*client_, coll_link(),
                        "SELECT * FROM c WHERE c.streamId = @s AND c.lastVersion >= @v ORDER BY c.firstVersion",
                        {{"@s", value::string(stream)}, {"@v", value::number(static_cast<double>(from_version))}},
                        &stream, "read_stream");
  if (!docs) return docs.status();
  uint64_t last = 0;
  std::vector<std::string> ids;
  for (const auto& d : *docs) {
    const uint64_t first = u64(d, "firstVersion");
    if (!d.has_field("events") || !d.at("events").is_array()) return Status::io_error("corrupt commit in " + stream);
    const auto& events = d.at("events").as_array();
    if (!event_command_ids(d, events.size(), &ids)) return Status::io_error("corrupt command list in " + stream);
    uint64_t v = first;
    size_t k = 0;
    for (const auto& e : events) {
      const std::string& command_id = ids[k++];
      if (v >= from_version) {
        RecordedEvent r;
        r.stream = stream;
        r.version = v;
        r.committed_at_us = static_cast<int64_t>(u64(d, "committedAtUs"));
        r.command_id = command_id;
        if (!e.is_string() || !unb64(e.as_string(), &r.payload))
          return Status::io_error("undecodable event " + std::to_string(v) + " of " + stream);
        out->push_back(std::move(r));
      }
      ++v;
    }
    last = std::max(last, v - 1);
  }
  // The last version read is a commit boundary, and so is 0 for a stream without
  // documents: the commit then skips its version query (a stale one only collides).
  if (last > 0 || from_version <= 1) remember_version(stream, last);
  return Status::ok();
}

namespace {

// The commit document of batch[reqs[0..count)] (consecutive versions of one stream): id
// "{stream}:{first version}", its events, command ids (grouped: `commands` and the slots),
// `write_id`. *last: its last version.
value commit_document(const std::vector<AppendRequest>& batch, const size_t* reqs, size_t count, bool grouped,
                      const std::string& write_id, uint64_t* last_version) {
  const AppendRequest& head = batch[reqs[0]];
  const uint64_t first = head.expected_version + 1;
  value doc = value::object();
  doc["id"] = value::string(head.stream + ":" + std::to_string(first));
  doc["streamId"] = value::string(head.stream);
  doc["firstVersion"] = value::number(static_cast<double>(first));
  size_t total = 0;
  for (size_t k = 0; k < count; ++k) total += batch[reqs[k]].events.size();
  value events = value::array(total);
  value commands = value::array(count);
  uint64_t last = head.expected_version;
  size_t e = 0;
  for (size_t k = 0; k < count; ++k) {
    const AppendRequest& req = batch[reqs[k]];
    for (const auto& payload : req.events) events[e++] = value::string(b64(payload));
    last += req.events.size();
    if (!grouped) continue;
    value c = value::object();
    c["id"] = value::string(req.command_id);
    c["n"] = value::number(static_cast<uint64_t>(req.events.size()));
    commands[k] = c;
    doc[slot_field(slot_of(req.command_id))] = value::string(req.command_id);
  }
  doc["lastVersion"] = value::number(static_cast<double>(last));
  if (grouped) {
    doc["commands"] = commands;
    for (int slot = 0; slot < kSlots; ++slot)
      if (!doc.has_field(slot_field(slot))) doc[slot_field(slot)] = value::string(slot_filler(first));
  } else {
    doc["commandId"] = value::string(head.command_id);
  }
  // Tells this write from another writer's identical one when a lost answer is retried.
  doc["writeId"] = value::string(write_id);
  doc["committedAtUs"] = value::number(static_cast<double>(now_us()));
  doc["events"] = events;
  *last_version = last;
  return doc;
}

// The results of batch[reqs[0..count)] once their document is written: each command's
// versions, in order from the document's first.
void committed_document(const std::vector<AppendRequest>& batch, const size_t* reqs, size_t count,
                        std::vector<AppendResult>& results) {
  uint64_t v = batch[reqs[0]].expected_version;
  for (size_t k = 0; k < count; ++k) {
    AppendResult& rk = results[reqs[k]];
    rk.status = Status::ok();
    rk.stream = batch[reqs[k]].stream;
    rk.first_version = v + 1;
    v += batch[reqs[k]].events.size();
    rk.last_version = v;
    rk.first_position = rk.last_position = 0;
  }
}

// A transactional batch takes at most 100 operations and 2 MB of request body.
constexpr size_t kMaxBatchDocuments = 100;
constexpr size_t kMaxBatchBytes = 1536 * 1024;

}  // namespace

size_t CosmosEventStore::write_commits(const std::vector<AppendRequest>& batch, const size_t* reqs, size_t count,
                                       std::vector<AppendResult>& results, const std::string& our_earlier_write,
                                       const std::string& given_write_id) {
  const AppendRequest& head = batch[reqs[0]];
  const uint64_t first = head.expected_version + 1;
  const std::string write_id = given_write_id.empty() ? random_write_id() : given_write_id;
  uint64_t last = 0;
  const value doc = commit_document(batch, reqs, count, grouped_, write_id, &last);
  const std::string coll = coll_link();
  CosmosRequest r = make("POST", "docs", coll, coll + "/docs", "append", coll);
  r.body = doc.serialize();
  r.headers = {{"x-ms-documentdb-partitionkey", pk_header(head.stream)}};
  auto resp = client_->send(r);
  AppendResult& res = results[reqs[0]];
  res.stream = head.stream;
  res.first_position = res.last_position = 0;
  if (!resp) {
    res.status = resp.status();
    return 0;
  }
  if (resp->http_status == 201) {
    committed_document(batch, reqs, count, results);
    remember_version(head.stream, last);
    return count;
  }
  if (resp->http_status != 409) {
    res.status = status_of(*resp, "append to " + head.stream);
    return 0;
  }
  if (count > 1) {
    // 409 for several commands: a concurrent commit at this version, a repeat of one of
    // them (its slot), or this document itself (our create whose answer was lost). Each
    // written alone tells which: our own document answers each as committed.
    for (size_t k = 0; k < count; ++k)
      if (write_commits(batch, reqs + k, 1, results, write_id) == 0) return k;
    return count;
  }
  // 409: the version is taken (a concurrent commit at this version, or our own earlier try
  // whose answer was lost), or the command id is already in the stream (unique key).
  std::string found_write;
  uint64_t found_doc_last = 0;
  auto found = query_command(&head.stream, head.command_id, "append", &found_write, &found_doc_last);
  if (!found) {
    res.status = found.status();
    return 0;
  }
  if (found->has_value()) {
    const AppendResult& f = **found;
    res.status = Status::ok();
    res.first_version = f.first_version;
    res.last_version = f.last_version;
    // Our own write when its answer was lost (this try's, or the group document's).
    res.duplicate = found_write != write_id && (our_earlier_write.empty() || found_write != our_earlier_write);
    remember_version(head.stream, found_doc_last);  // a document boundary, unlike f's last version
    return res.duplicate ? 0 : 1;
  }
  auto actual = query_version(head.stream, "append");
  res.actual_version = actual ? *actual : 0;
  res.status = Status::conflict("stream " + head.stream + " already has version " + std::to_string(first) +
                                " (now at " + std::to_string(res.actual_version) + ")");
  return 0;
}

bool CosmosEventStore::write_commit_batch(const std::vector<AppendRequest>& batch, const std::vector<size_t>& reqs,
                                          const std::vector<std::pair<size_t, size_t>>& docs,
                                          std::vector<AppendResult>& results, std::vector<std::string>* write_ids) {
  const std::string& stream = batch[reqs[docs.front().first]].stream;
  value ops = value::array(docs.size());
  std::vector<uint64_t> lasts(docs.size());
  write_ids->clear();
  for (size_t d = 0; d < docs.size(); ++d) {
    write_ids->push_back(random_write_id());
    value op = value::object();
    op["operationType"] = value::string("Create");
    op["resourceBody"] = commit_document(batch, &reqs[docs[d].first], docs[d].second - docs[d].first, grouped_,
                                         write_ids->back(), &lasts[d]);
    ops[d] = op;
  }
  const std::string coll = coll_link();
  CosmosRequest r = make("POST", "docs", coll, coll + "/docs", "append", coll);
  r.body = ops.serialize();
  r.headers = {{"x-ms-documentdb-partitionkey", pk_header(stream)},
               {"x-ms-cosmos-is-batch-request", "True"},
               {"x-ms-cosmos-batch-atomic", "True"}};
  auto resp = client_->send(r);
  if (!resp) return false;  // unknown: write_commits finds out, document by document
  if (resp->http_status == 400 && batches_.exchange(false)) {
    // Nothing was written. Every later group writes one document per request.
    log::warn("cosmos db refused a transactional batch; writing one commit document per request from now on",
              {{"stream", stream}, {"answer", resp->body.substr(0, 300)}});
  }
  if (resp->http_status != 200) return false;  // 207: one failed, none written (409 ...)
  // Every operation must report its document created, or the answer is not understood.
  try {
    const value answer = value::parse(resp->body);
    if (!answer.is_array() || answer.as_array().size() != docs.size()) return false;
    for (const auto& a : answer.as_array())
      if (!a.is_object() || !a.has_field("statusCode") || a.at("statusCode").as_integer() != 201) return false;
  } catch (const std::exception&) {
    return false;
  }
  for (const auto& [first, end] : docs) committed_document(batch, &reqs[first], end - first, results);
  remember_version(stream, lasts.back());
  return true;
}

std::vector<AppendResult> CosmosEventStore::append(const std::vector<AppendRequest>& batch) {
  // 1. The store's version of every stream whose expected version is not the one we saw
  //    last (in parallel). A stream we saw at exactly the expected version skips this: if
  //    someone wrote since, the create below collides on the id (and so does a write at
  //    expected version 0).
  //    A version check (verify_only) always asks the store: it exists because a cached
  //    version may be behind, and a check that matches writes nothing that could collide.
  //    The check of a stream's first request, when it is one, also looks its command id up
  //    (query_check): one query instead of two (see the repeats below).
  std::vector<std::string> unknown;
  std::vector<size_t> checks;  // requests checked by query_check
  {
    std::set<std::string> asked;
    std::map<std::string, bool> seen;  // stream -> its first request in the batch is a write
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < batch.size(); ++i) {
      const AppendRequest& req = batch[i];
      if (req.stream.empty()) continue;
      const auto [at, first] = seen.emplace(req.stream, !req.verify_only);
      // A check after a write of its stream in this batch needs no question: the write's
      // create collides if the stream moved, and then the check fails with it (step 3).
      if (!first && at->second) continue;
      if (first && req.verify_only && req.expected_version > 0 && !req.command_id.empty() &&
          req.command_id[0] != kFillerMark) {
        checks.push_back(i);
        asked.insert(req.stream);
        continue;
      }
      if (!first && !req.verify_only) continue;
      auto it = versions_.find(req.stream);
      // A write that starts a stream this store has not seen needs no question either: every
      // stream's first document has the id "{stream}:1", so its create collides if the
      // stream has any event.
      const bool starts = !req.verify_only && req.expected_version == 0 && it == versions_.end();
      if ((req.verify_only || it == versions_.end() || it->second != req.expected_version) && !starts &&
          asked.insert(req.stream).second)
        unknown.push_back(req.stream);
    }
  }
  std::vector<Result<uint64_t>> fetched(unknown.size(), Status::internal("not queried"));
  std::vector<Result<std::optional<Check>>> checked(checks.size(), Status::internal("not queried"));
  parallel_for(unknown.size() + checks.size(), options_.parallelism, [&](size_t i) {
    if (i < unknown.size()) {
      fetched[i] = query_version(unknown[i], "append");
      return;
    }
    const AppendRequest& req = batch[checks[i - unknown.size()]];
    checked[i - unknown.size()] = query_check(req.stream, req.expected_version, req.command_id, "append");
  });
  std::unordered_map<std::string, Result<uint64_t>> known;
  for (size_t i = 0; i < unknown.size(); ++i) known.emplace(unknown[i], fetched[i]);
  // Requests whose command id query_check looked up: the first result when it was written.
  std::unordered_map<size_t, std::optional<AppendResult>> looked_up;
  for (size_t k = 0; k < checks.size(); ++k) {
    const std::string& stream = batch[checks[k]].stream;
    if (!checked[k]) {
      known.emplace(stream, checked[k].status());
    } else if (checked[k]->has_value()) {
      known.emplace(stream, (*checked[k])->version);
      looked_up.emplace(checks[k], std::move((*checked[k])->found));
    } else {
      // No document holds the version the check was decided at: ask the stream's version
      // alone (the check then conflicts), and the command id below as for any request.
      known.emplace(stream, query_version(stream, "append"));
    }
  }

  // 2. The shared append rules (chains, in-batch repeats, expected versions). Store-level
  //    repeats are found by the unique key on create, or below for requests that conflict.
  std::unordered_map<std::string, uint64_t> base;  // stream -> its version before the batch, as planned
  AppendLookups lookups{
      [](const std::string&) -> Result<std::optional<AppendResult>> { return std::optional<AppendResult>(); },
      [&](const std::string& stream) -> Result<uint64_t> {
        Result<uint64_t> v = Status::internal("no version");
        if (auto it = known.find(stream); it != known.end()) {
          v = it->second;
        } else {
          std::lock_guard lock(mu_);
          v = versions_[stream];
        }
        if (v) base.emplace(stream, *v);
        return v;
      }};
  std::vector<AppendResult> results;
  std::vector<PlannedAppend> plan = plan_append(batch, 0, lookups, results);
  for (size_t i = 0; i < batch.size(); ++i) {
    const bool filler = !batch[i].command_id.empty() && batch[i].command_id[0] == kFillerMark;
    if (batch[i].stream.empty() || (valid_id(batch[i].stream) && !filler)) continue;
    results[i] = AppendResult{};
    results[i].stream = batch[i].stream;
    results[i].status = filler ? Status::invalid_argument("a command id may not start with the control character U+0001")
                               : Status::invalid_argument("stream id '" + batch[i].stream + "' is not a valid Cosmos id");
    // The stream's later requests were planned on this one's versions: they fail with it.
    plan.erase(std::remove_if(plan.begin(), plan.end(),
                              [&](const PlannedAppend& p) {
                                if (p.request < i || batch[p.request].stream != batch[i].stream) return false;
                                if (p.request > i)
                                  results[p.request].status = Status::conflict(
                                      "an earlier command of stream " + batch[i].stream + " in the batch failed");
                                return true;
                              }),
               plan.end());
  }
  // A conflict may be a repeated command decided on older state, and a passed version check
  // the rejection of a repeat (lanes do not look command ids up first on this store):
  // report either as a duplicate. A check that passed on a stream that was empty before the
  // batch needs no look-up: a written command left events in its stream.
  std::vector<size_t> conflicts;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].command_id.empty()) continue;
    if (batch[i].verify_only) {
      auto b = base.find(batch[i].stream);
      if (results[i].status.is_ok() && !results[i].duplicate && (b == base.end() || b->second > 0))
        conflicts.push_back(i);
    } else if (results[i].status.code() == StatusCode::kConflict &&
               results[i].actual_version != batch[i].expected_version) {
      conflicts.push_back(i);
    }
  }
  parallel_for(conflicts.size(), options_.parallelism, [&](size_t k) {
    const size_t i = conflicts[k];
    auto it = looked_up.find(i);
    auto found = it != looked_up.end() ? Result<std::optional<AppendResult>>(it->second)
                                       : query_command(&batch[i].stream, batch[i].command_id, "append");
    if (found && found->has_value()) {
      AppendResult& r = results[i];
      r = **found;
      r.status = Status::ok();
      r.duplicate = true;
    }
  });
  for (auto& r : results) r.first_position = r.last_position = 0;

  // 3. Write: streams in parallel, each stream's requests in order; after a request of a
  //    stream fails, the later ones of that stream (decided on it) fail as conflicts.
  std::vector<std::vector<size_t>> by_stream;
  {
    std::unordered_map<std::string, size_t> index;
    for (const auto& p : plan) {
      auto [it, fresh] = index.try_emplace(batch[p.request].stream, by_stream.size());
      if (fresh) by_stream.emplace_back();
      by_stream[it->second].push_back(p.request);
    }
  }
  //    In the grouped layout a stream's consecutive commands share one document while
  //    their command ids take distinct slots.
  std::atomic<uint64_t> committed{0}, documents{0};
  // Per stream, the requests failed behind a repeat or a conflict: looked up below.
  std::vector<std::vector<size_t>> behind(by_stream.size());
  parallel_for(by_stream.size(), options_.parallelism, [&](size_t s) {
    const std::vector<size_t>& reqs = by_stream[s];
    auto fail_from = [&](size_t k) {
      const AppendResult& cause = results[reqs[k - 1]];
      const bool reachable = (cause.status.is_ok() && cause.duplicate) || cause.status.code() == StatusCode::kConflict;
      for (; k < reqs.size(); ++k) {
        const size_t i = reqs[k];
        results[i] = AppendResult{};
        results[i].stream = batch[i].stream;
        results[i].status = Status::conflict("an earlier command of stream " + batch[i].stream + " in the batch failed");
        if (reachable) behind[s].push_back(i);
      }
    };
    // The stream's documents: spans of reqs, each [first, second).
    std::vector<std::pair<size_t, size_t>> docs;
    std::vector<size_t> doc_bytes;
    for (size_t k = 0; k < reqs.size();) {
      size_t end = k;  // the document takes reqs[k, end)
      unsigned used = 0;
      size_t bytes = 0;
      do {
        const AppendRequest& next = batch[reqs[end]];
        const unsigned bit = 1u << slot_of(next.command_id);
        size_t more = 0;
        for (const auto& p : next.events) more += p.size();
        if (end > k && ((used & bit) != 0 || bytes + more > kMaxDocumentPayload)) break;
        used |= bit;
        bytes += more;
        ++end;
      } while (grouped_ && end < reqs.size());
      docs.emplace_back(k, end);
      doc_bytes.push_back(bytes * 4 / 3 + 512 * (end - k) + 1024);  // base64 and JSON around it
      k = end;
    }
    // Several documents of the stream go in transactional batches (all or nothing): one
    // request instead of one after another. A batch that fails or whose answer is lost
    // leaves its documents to write_commits, one at a time with the same writeIds, which
    // tells a conflict or a repeat from the batch's own documents written after all.
    std::vector<std::string> ids;  // writeIds of a batch that did not go through, from docs[retry_from]
    size_t retry_from = 0;
    for (size_t d = 0; d < docs.size();) {
      if (ids.empty() && docs.size() - d > 1 && batches_.load(std::memory_order_relaxed)) {
        size_t to = d, bytes = 0;
        while (to < docs.size() && to - d < kMaxBatchDocuments && (to == d || bytes + doc_bytes[to] <= kMaxBatchBytes))
          bytes += doc_bytes[to++];
        if (to - d >= 2) {  // else this document is too large to share a request: alone below
          const std::vector<std::pair<size_t, size_t>> part(docs.begin() + static_cast<std::ptrdiff_t>(d),
                                                            docs.begin() + static_cast<std::ptrdiff_t>(to));
          if (write_commit_batch(batch, reqs, part, results, &ids)) {
            committed.fetch_add(docs[to - 1].second - docs[d].first, std::memory_order_relaxed);
            documents.fetch_add(to - d, std::memory_order_relaxed);
            ids.clear();
            d = to;
            continue;
          }
          retry_from = d;  // from here on one document at a time
        }
      }
      const auto [k, end] = docs[d];
      const bool of_batch = d >= retry_from && d - retry_from < ids.size();
      const std::string id = of_batch ? ids[d - retry_from] : std::string();
      const size_t done = write_commits(batch, &reqs[k], end - k, results, id, id);
      committed.fetch_add(done, std::memory_order_relaxed);
      if (done == end - k) {
        documents.fetch_add(1, std::memory_order_relaxed);
        ++d;
        continue;
      }
      const AppendResult& cause = results[reqs[k + done]];
      if (of_batch && !cause.status.is_ok() && cause.status.code() != StatusCode::kConflict) {
        // Unknown whether the batch was written, and this retry did not tell: the batch's
        // later commands may be written too. Unknown for them as well, not a conflict (a
        // conflict is decided again, and would then meet its own events as a repeat).
        const size_t batch_end = docs[retry_from + ids.size() - 1].second;
        for (size_t j = k + done + 1; j < batch_end; ++j) {
          results[reqs[j]] = AppendResult{};
          results[reqs[j]].stream = batch[reqs[j]].stream;
          results[reqs[j]].status = cause.status;
        }
        if (batch_end < reqs.size()) fail_from(batch_end);
        return;
      }
      fail_from(k + done + 1);
      return;
    }
  });
  //    A request failed behind a repeat may be a repeat itself (a redelivered saga reaction
  //    decides every reservation again, in one chain): its first result answers it, so
  //    all the repeats settle in this round and only new commands are decided again.
  {
    std::vector<size_t> ask;
    for (const auto& b : behind) ask.insert(ask.end(), b.begin(), b.end());
    parallel_for(ask.size(), options_.parallelism, [&](size_t k) {
      const size_t i = ask[k];
      auto found = query_command(&batch[i].stream, batch[i].command_id, "append");
      if (found && found->has_value()) {
        AppendResult& r = results[i];
        r = **found;
        r.status = Status::ok();
        r.duplicate = true;
        r.first_position = r.last_position = 0;
      }
    });
  }
  //    A passed check that follows a write of its stream in the batch was decided on the
  //    state after that write: when the write failed or found a repeat, the check fails too.
  {
    std::unordered_set<std::string_view> broken;  // streams with a write that did not commit
    for (size_t i = 0; i < batch.size(); ++i) {
      const AppendRequest& req = batch[i];
      AppendResult& r = results[i];
      if (!req.verify_only) {
        if (!r.status.is_ok() || r.duplicate) broken.insert(req.stream);
      } else if (r.status.is_ok() && !r.duplicate && broken.count(req.stream)) {
        r = AppendResult{};
        r.stream = req.stream;
        r.status = Status::conflict("an earlier command of stream " + req.stream + " in the batch failed");
      }
    }
  }
  uint64_t commands;
  {
    std::lock_guard lock(mu_);
    commands_ += committed.load();
    documents_ += documents.load();
    commands = commands_;
    if (documents_ > 0)
      client_->metrics().set_gauge("commands_per_document", static_cast<double>(commands_) / static_cast<double>(documents_));
  }
  if (commands > 0)
    client_->metrics().set_gauge("ru_per_command", client_->metrics().totals().request_units / static_cast<double>(commands));
  return results;
}

std::shared_ptr<const CosmosEventStore::FeedPage> CosmosEventStore::cached_feed_page(const std::string& key) {
  std::lock_guard lock(pages_mu_);
  auto it = feed_pages_.find(key);
  if (it == feed_pages_.end() || std::chrono::steady_clock::now() - it->second.at > kFeedPageTtl) return nullptr;
  client_->metrics().set_gauge("feed_pages_shared", static_cast<double>(++feed_pages_shared_));
  return it->second.page;
}

void CosmosEventStore::cache_feed_page(const std::string& key, std::shared_ptr<const FeedPage> page) {
  std::lock_guard lock(pages_mu_);
  const auto now = std::chrono::steady_clock::now();
  auto [it, fresh] = feed_pages_.try_emplace(key, CachedPage{now, nullptr});
  if (!fresh) return;  // another view stored the same page first
  feed_page_bytes_ += page->body.size();
  it->second.page = std::move(page);
  feed_page_order_.push_back(key);
  // Oldest first, out while over the byte cap or past their time (keys and pages go together).
  while (!feed_page_order_.empty()) {
    auto old = feed_pages_.find(feed_page_order_.front());
    if (feed_page_bytes_ <= kFeedPageBytes && now - old->second.at <= kFeedPageTtl) break;
    feed_page_bytes_ -= old->second.page->body.size();
    feed_pages_.erase(old);
    feed_page_order_.pop_front();
  }
}

Result<ChangeFeed*> CosmosEventStore::subscribe(const std::string& subscriber) {
  if (!valid_id(subscriber) || subscriber.find("..") != std::string::npos)
    return Status::invalid_argument("subscriber name '" + subscriber + "' is not usable in a lease id");
  std::lock_guard lock(mu_);
  auto& view = views_[subscriber];
  if (!view) view = std::make_unique<CosmosFeedView>(*this, subscriber);
  return static_cast<ChangeFeed*>(view.get());
}

Status CosmosEventStore::read(uint64_t, size_t, std::vector<RecordedEvent>*) {
  return Status::invalid_argument("the Cosmos change feed is read through subscribe(subscriber)");
}
void CosmosEventStore::wait(uint64_t, std::chrono::milliseconds timeout) { std::this_thread::sleep_for(timeout); }
Result<uint64_t> CosmosEventStore::load_checkpoint(const std::string&) {
  return Status::invalid_argument("the Cosmos change feed keeps checkpoints per subscribe(subscriber) view");
}
Status CosmosEventStore::save_checkpoint(const std::string&, uint64_t) {
  return Status::invalid_argument("the Cosmos change feed keeps checkpoints per subscribe(subscriber) view");
}

// ---- change feed view ----------------------------------------------------------------------

namespace {
std::string default_owner() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "host");
  std::random_device rd;
  return std::string(host) + "-" + std::to_string(getpid()) + "-" + std::to_string(rd() % 1000000);
}
}  // namespace

CosmosFeedView::CosmosFeedView(CosmosEventStore& store, std::string subscriber)
    : store_(store),
      subscriber_(std::move(subscriber)),
      owner_(store.options().instance.empty() ? default_owner() : store.options().instance) {}

CosmosFeedView::~CosmosFeedView() {
  if (!store_.options().release_leases_on_close) return;
  // An unreachable account is not waited for: the leases then expire (lease_expiry), so a
  // stop stays within the drain timeout.
  if (!store_.client().health()) return;
  std::lock_guard lock(mu_);
  for (auto& [range, o] : owned_) {
    // Hand the range back at the last checkpoint so another instance takes it at once.
    std::string etag;
    write_lease(range, o.lease_etag, "", o.saved, o.start_time_ms, &etag, /*max_attempts=*/1);
  }
}

std::vector<std::string> CosmosFeedView::owned_ranges() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [r, o] : owned_) out.push_back(r);
  return out;
}

Status CosmosFeedView::write_lease(const std::string& range, const std::string& etag, const std::string& owner,
                                   const std::string& continuation, int64_t start_time_ms, std::string* new_etag,
                                   int max_attempts) {
  CosmosLease l;
  l.range = range;
  l.owner = owner;
  l.continuation = continuation;
  l.etag = etag;
  l.start_time_ms = start_time_ms;
  return store_.write_lease(subscriber_, l, new_etag, max_attempts);
}

Status CosmosEventStore::write_lease(const std::string& subscriber, const CosmosLease& lease, std::string* new_etag,
                                     int max_attempts) {
  const std::string coll = "dbs/" + options_.database + "/colls/" + options_.leases_container;
  const std::string id = subscriber + ".." + lease.range;
  value doc = value::object();
  doc["id"] = value::string(id);
  doc["subscriber"] = value::string(subscriber);
  doc["range"] = value::string(lease.range);
  doc["owner"] = value::string(lease.owner);
  doc["continuation"] = value::string(lease.continuation);
  doc["timestamp"] = value::number(static_cast<double>(wall_ms()));
  if (lease.start_time_ms > 0) doc["start_time"] = value::number(static_cast<double>(lease.start_time_ms));
  CosmosRequest r;
  if (lease.etag.empty()) {
    r = make("POST", "docs", coll, coll + "/docs", "leases", coll);
  } else {
    r = make("PUT", "docs", coll + "/docs/" + id, coll + "/docs/" + id, "leases", coll);
    r.headers.emplace_back("If-Match", lease.etag);
  }
  r.body = doc.serialize();
  r.max_attempts = max_attempts;
  r.headers.emplace_back("x-ms-documentdb-partitionkey", pk_header(subscriber));
  auto resp = client_->send(r);
  if (!resp) return resp.status();
  if (resp->http_status != 200 && resp->http_status != 201) return status_of(*resp, "lease " + id);
  *new_etag = resp->header("etag");
  return Status::ok();
}

Result<std::vector<std::string>> CosmosEventStore::partition_key_ranges() {
  const std::string events = coll_link();
  auto resp = client_->send(make("GET", "pkranges", events, events + "/pkranges", "leases", ""));
  if (!resp) return resp.status();
  if (resp->http_status != 200) return status_of(*resp, "list partition key ranges");
  auto listed = parse_json(resp->body, "pkranges");
  if (!listed) return listed.status();
  if (!listed->has_field("PartitionKeyRanges") || !listed->at("PartitionKeyRanges").is_array())
    return Status::io_error("pkranges answer without a PartitionKeyRanges array");
  std::vector<std::string> out;
  for (const auto& r : listed->at("PartitionKeyRanges").as_array()) out.push_back(str(r, "id"));
  return out;
}

Result<std::vector<CosmosLease>> CosmosEventStore::leases(const std::string& subscriber) {
  const std::string coll = "dbs/" + options_.database + "/colls/" + options_.leases_container;
  auto docs = query_all(*client_, coll, "SELECT * FROM c WHERE c.subscriber = @s", {{"@s", value::string(subscriber)}},
                        &subscriber, "leases");
  if (!docs) return docs.status();
  std::vector<CosmosLease> out;
  for (const auto& d : *docs) {
    CosmosLease l;
    l.range = str(d, "range");
    l.owner = str(d, "owner");
    l.continuation = str(d, "continuation");
    l.etag = str(d, "_etag");
    l.timestamp_ms = static_cast<int64_t>(u64(d, "timestamp"));
    l.start_time_ms = static_cast<int64_t>(u64(d, "start_time"));
    out.push_back(std::move(l));
  }
  std::sort(out.begin(), out.end(), [](const CosmosLease& a, const CosmosLease& b) { return a.range < b.range; });
  return out;
}

bool CosmosEventStore::lease_alive(const CosmosLease& l) const {
  return !l.owner.empty() && wall_ms() - l.timestamp_ms < options_.lease_expiry.count();
}

Status CosmosEventStore::check_leases_free(const std::string& subscriber) {
  auto current = leases(subscriber);
  if (!current) return current.status();
  std::string held;
  for (const auto& l : *current)
    if (lease_alive(l))
      held += (held.empty() ? "" : ", ") + std::string("range ") + l.range + " by " + l.owner + " (renewed " +
              std::to_string(wall_ms() - l.timestamp_ms) + " ms ago)";
  if (held.empty()) return Status::ok();
  return Status::conflict("subscriber " + subscriber + "'s change-feed leases are held: " + held +
                          "; an instance is running (a lease expires " + std::to_string(options_.lease_expiry.count()) +
                          " ms after its last renewal)");
}

Result<std::vector<std::string>> CosmosEventStore::reset_leases(const std::string& subscriber, int64_t start_time_ms) {
  auto ranges = partition_key_ranges();
  if (!ranges) return ranges.status();
  if (Status s = check_leases_free(subscriber); !s) return s;
  auto current = leases(subscriber);
  if (!current) return current.status();
  for (const auto& range : *ranges) {
    CosmosLease l;
    l.range = range;
    l.start_time_ms = start_time_ms;
    for (const auto& c : *current)
      if (c.range == range) l.etag = c.etag;
    std::string etag;
    if (Status s = write_lease(subscriber, l, &etag); !s) {
      if (s.code() == StatusCode::kConflict || s.code() == StatusCode::kRejected)
        return Status::conflict("lease of range " + range + " of subscriber " + subscriber +
                                " changed meanwhile (an instance started?): " + s.message());
      return s;
    }
  }
  return *ranges;
}

Status CosmosFeedView::balance() {
  std::lock_guard lock(mu_);
  return lease_cycle();
}

Status CosmosFeedView::lease_cycle() {
  last_cycle_ = Clock::now();
  CosmosClient& c = store_.client();
  // 1. The partition key ranges of the events container.
  auto listed = store_.partition_key_ranges();
  if (!listed) return listed.status();
  ranges_ = std::move(*listed);

  // 2. The leases of this subscriber; missing ones are created free.
  auto docs = store_.leases(subscriber_);
  if (!docs) return docs.status();
  std::map<std::string, CosmosLease> current;
  for (auto& d : *docs) current[d.range] = std::move(d);
  for (const auto& range : ranges_) {
    if (current.count(range)) continue;
    std::string etag;
    Status s = write_lease(range, "", "", "", 0, &etag);
    if (s) {
      CosmosLease l;
      l.range = range;
      l.etag = etag;
      current[range] = l;
    } else if (s.code() != StatusCode::kConflict) {
      return s;
    }
  }
  const int64_t now = wall_ms();
  auto alive = [&](const CosmosLease& l) { return store_.lease_alive(l); };

  // 3. Renew what is ours; notice what was taken.
  for (auto it = owned_.begin(); it != owned_.end();) {
    auto l = current.find(it->first);
    if (l == current.end() || l->second.owner != owner_) {
      it = owned_.erase(it);  // stolen (or its lease vanished): the new owner goes on from its checkpoint
      continue;
    }
    std::string etag;
    Status s = write_lease(it->first, l->second.etag, owner_, it->second.saved, it->second.start_time_ms, &etag);
    if (!s) {
      if (s.code() == StatusCode::kConflict) {
        it = owned_.erase(it);
        continue;
      }
      return s;
    }
    it->second.lease_etag = etag;
    it->second.dirty = false;
    l->second.etag = etag;
    l->second.timestamp_ms = now;
    ++it;
  }

  // 4. Fair share: ranges / live owners (this one included).
  std::map<std::string, int> held;
  held[owner_] = static_cast<int>(owned_.size());
  for (const auto& [range, l] : current)
    if (alive(l) && l.owner != owner_) held[l.owner]++;
  const int fair = static_cast<int>((ranges_.size() + held.size() - 1) / held.size());
  auto take = [&](const std::string& range, CosmosLease& l) {
    std::string etag;
    if (!write_lease(range, l.etag, owner_, l.continuation, l.start_time_ms, &etag)) return;  // lost the race: fine
    Owned mine;
    mine.lease_etag = etag;
    mine.start_time_ms = l.start_time_ms;
    mine.saved = mine.fetched = l.continuation;
    mine.epoch = ++epoch_;
    owned_[range] = mine;
  };
  for (const auto& range : ranges_) {
    if (static_cast<int>(owned_.size()) >= fair) break;
    auto& l = current[range];
    if (owned_.count(range) || (alive(l) && l.owner != owner_)) continue;
    take(range, l);  // free, expired, or ours from an earlier holding
  }
  // 5. Steal one range from an owner above its fair share.
  if (static_cast<int>(owned_.size()) < fair) {
    for (auto& [range, l] : current) {
      if (!alive(l) || l.owner == owner_ || held[l.owner] <= fair) continue;
      take(range, l);
      break;
    }
  }
  c.metrics().set_gauge("leases_" + subscriber_ + "_" + owner_, static_cast<double>(owned_.size()));
  return Status::ok();
}

void CosmosFeedView::publish_lag(const std::string& range, const Owned& o) {
  const uint64_t saved = lsn_of(o.saved);
  store_.client().metrics().set_gauge("lag_lsn_" + subscriber_ + "_range_" + range,
                                      o.head_lsn > saved ? static_cast<double>(o.head_lsn - saved) : 0.0);
}

Status CosmosFeedView::fetch(uint64_t after, size_t want) {
  const auto& opts = store_.options();
  const std::string coll = "dbs/" + opts.database + "/colls/" + opts.container;
  std::vector<std::string> order;
  for (const auto& [r, o] : owned_) order.push_back(r);
  if (order.empty()) return Status::ok();
  Status last_error;
  for (size_t k = 0; k < order.size() && next_pos_ - 1 < after + want; ++k) {
    const std::string& range = order[(round_robin_ + k) % order.size()];
    Owned& o = owned_[range];
    const auto now = Clock::now();
    if (now < o.next_poll) continue;
    CosmosRequest r = make("GET", "docs", coll, coll + "/docs", "change_feed", "");
    r.headers = {{"A-IM", "Incremental feed"},
                 {"x-ms-documentdb-partitionkeyrangeid", range},
                 {"x-ms-max-item-count", std::to_string(opts.max_item_count)}};
    if (!o.fetched.empty()) {
      r.headers.emplace_back("If-None-Match", o.fetched);
    } else if (o.start_time_ms > 0) {
      // Changes after a time (the REST API's If-Modified-Since, RFC 1123, whole seconds,
      // exclusive): the second before the one holding the start time, so nothing committed
      // at or after it is missed (up to a second earlier is redelivered: at least once).
      const auto at = std::chrono::system_clock::time_point(std::chrono::milliseconds(o.start_time_ms));
      r.headers.emplace_back("If-Modified-Since",
                             rfc1123_date(std::chrono::floor<std::chrono::seconds>(at) - std::chrono::seconds(1)));
    }
    // A page another subscriber read lately from the same continuation costs no request.
    // Not for a start by time (If-Modified-Since): that answer depends on the time.
    const bool shareable = !o.fetched.empty() || o.start_time_ms <= 0;
    const std::string key = range + '\n' + o.fetched + '\n' + std::to_string(opts.max_item_count);
    std::shared_ptr<const CosmosEventStore::FeedPage> got = shareable ? store_.cached_feed_page(key) : nullptr;
    int status = 200;  // a shared page is a page of changes
    if (!got) {
      auto resp = store_.client().send(r);
      if (!resp) {
        last_error = resp.status();
        continue;
      }
      status = resp->http_status;
      auto fresh = std::make_shared<CosmosEventStore::FeedPage>();
      fresh->etag = resp->header("etag");
      fresh->session_token = resp->header("x-ms-session-token");
      fresh->body = std::move(resp->body);
      if (status == 200 && shareable) store_.cache_feed_page(key, fresh);
      if (status != 200 && status != 304) last_error = status_of(*resp, "change feed of range " + range);
      got = std::move(fresh);
    }
    if (const auto& t = got->session_token; !t.empty()) o.head_lsn = std::max(o.head_lsn, lsn_of(t));
    if (status == 304) {
      if (const auto& e = got->etag; !e.empty()) o.fetched = e;
      o.idle_backoff = std::min(opts.max_idle_poll, std::max(std::chrono::milliseconds(10), o.idle_backoff * 2));
      o.next_poll = now + o.idle_backoff;
      publish_lag(range, o);
      continue;
    }
    o.idle_backoff = std::chrono::milliseconds(0);
    o.next_poll = now;
    if (status != 200) continue;  // last_error says why
    std::vector<RecordedEvent> page;
    if (Status parsed = parse_change_feed_page(got->body, next_pos_, &page); !parsed) return parsed;
    next_pos_ += page.size();
    for (auto& ev : page) buffer_.push_back(std::move(ev));
    o.fetched = got->etag;
    pages_.push_back(Page{range, o.epoch, next_pos_ - 1, o.fetched});
    publish_lag(range, o);
  }
  round_robin_ = (round_robin_ + 1) % std::max<size_t>(1, order.size());
  return last_error;
}

Status CosmosFeedView::read(uint64_t after, size_t max, std::vector<RecordedEvent>* out) {
  std::lock_guard lock(mu_);
  if (Clock::now() - last_cycle_ >= store_.options().lease_renew) {
    if (Status s = lease_cycle(); !s && owned_.empty()) return s;
  }
  const uint64_t from = std::max(after, checkpoint_);
  if (next_pos_ - 1 <= from && max > 0) {
    Status s = fetch(from, max);
    if (!s && next_pos_ - 1 <= from) return s;
  }
  for (uint64_t p = from + 1; p < next_pos_ && out->size() < max; ++p) out->push_back(buffer_[p - checkpoint_ - 1]);
  return Status::ok();
}

uint64_t CosmosFeedView::head() {
  std::lock_guard lock(mu_);
  return next_pos_ - 1;
}

void CosmosFeedView::wait(uint64_t after, std::chrono::milliseconds timeout) {
  {
    std::lock_guard lock(mu_);
    if (next_pos_ - 1 > after) return;
  }
  std::this_thread::sleep_for(timeout);
}

Result<uint64_t> CosmosFeedView::load_checkpoint(const std::string& subscriber) {
  if (subscriber != subscriber_) return Status::invalid_argument("this view belongs to subscriber " + subscriber_);
  std::lock_guard lock(mu_);
  if (Status s = lease_cycle(); !s) return s;
  return checkpoint_;
}

Status CosmosFeedView::save_checkpoint(const std::string& subscriber, uint64_t position) {
  if (subscriber != subscriber_) return Status::invalid_argument("this view belongs to subscriber " + subscriber_);
  std::lock_guard lock(mu_);
  if (position >= next_pos_) return Status::invalid_argument("checkpoint beyond the events read");
  while (checkpoint_ < position && !buffer_.empty()) {
    buffer_.pop_front();
    ++checkpoint_;
  }
  checkpoint_ = std::max(checkpoint_, position);
  while (!pages_.empty() && pages_.front().last_pos <= position) {
    const Page& p = pages_.front();
    auto it = owned_.find(p.range);
    if (it != owned_.end() && it->second.epoch == p.epoch) {
      it->second.saved = p.continuation;
      it->second.dirty = true;
    }
    pages_.pop_front();
  }
  // Lease writes cost request units: batch checkpoints, renewals write what is pending.
  if (Clock::now() - last_lease_write_ < store_.options().checkpoint_interval) return Status::ok();
  last_lease_write_ = Clock::now();
  Status result;
  for (auto it = owned_.begin(); it != owned_.end();) {
    if (!it->second.dirty) {
      ++it;
      continue;
    }
    std::string etag;
    Status s = write_lease(it->first, it->second.lease_etag, owner_, it->second.saved, it->second.start_time_ms, &etag);
    if (s) {
      it->second.lease_etag = etag;
      it->second.dirty = false;
      publish_lag(it->first, it->second);
    } else if (s.code() == StatusCode::kConflict) {
      it = owned_.erase(it);  // taken by another instance: it redelivers from its checkpoint
      continue;
    } else {
      result = s;  // stays dirty: written by the next checkpoint or lease renewal
    }
    ++it;
  }
  return result;
}

// ---- snapshot store -------------------------------------------------------------------------

CosmosSnapshotStore::CosmosSnapshotStore(std::shared_ptr<CosmosClient> client, CosmosStoreOptions options)
    : client_(std::move(client)), options_(std::move(options)) {}

Result<std::unique_ptr<CosmosSnapshotStore>> CosmosSnapshotStore::open(std::shared_ptr<CosmosClient> client,
                                                                       const CosmosStoreOptions& options) {
  if (!valid_id(options.database) || !valid_id(options.container))
    return Status::invalid_argument("cosmos database and container names must be 1-255 characters without / \\ ? #");
  std::unique_ptr<CosmosSnapshotStore> s(new CosmosSnapshotStore(std::move(client), options));
  if (options.create_if_missing) {
    if (auto st = cosmos_ensure_container(*s->client_, options.database, options.container, "/id", {}); !st) return st;
    CosmosClient* c = s->client_.get();
    c->on_missing_resource([c, options] { cosmos_ensure_container(*c, options.database, options.container, "/id", {}); });
  }
  return s;
}

Result<CosmosSnapshotStore::Stored> CosmosSnapshotStore::read_stored(const std::string& stream, Snapshot* out,
                                                                     const char* op) {
  if (!valid_id(stream)) return Status::invalid_argument("stream id '" + stream + "' is not a valid Cosmos id");
  const std::string coll = "dbs/" + options_.database + "/colls/" + options_.container;
  CosmosRequest r = make("GET", "docs", coll + "/docs/" + stream, coll + "/docs/" + stream, op, coll);
  r.headers = {{"x-ms-documentdb-partitionkey", pk_header(stream)}};
  auto resp = client_->send(r);
  if (!resp) return resp.status();
  Stored st;
  if (resp->http_status == 404) return st;
  if (resp->http_status != 200) return status_of(*resp, "read snapshot " + stream);
  auto doc = parse_json(resp->body, "snapshot " + stream);
  if (!doc) return doc.status();
  st.version = u64(*doc, "version");
  st.etag = resp->header("etag");
  if (st.etag.empty()) st.etag = str(*doc, "_etag");
  if (out) {
    out->version = st.version;
    if (!unb64(str(*doc, "state"), &out->state)) return Status::io_error("undecodable snapshot of " + stream);
  }
  return st;
}

Result<Snapshot> CosmosSnapshotStore::get(const std::string& stream) {
  Snapshot snap;
  auto st = read_stored(stream, &snap, "snapshot_get");
  if (!st) return st.status();
  {
    std::lock_guard lock(mu_);
    if (stored_.size() > 1000000) stored_.clear();
    stored_[stream] = *st;
  }
  return snap;
}

Status CosmosSnapshotStore::put_one(const std::string& stream, const Snapshot& snap) {
  const std::string coll = "dbs/" + options_.database + "/colls/" + options_.container;
  Stored known;
  bool cached;
  {
    std::lock_guard lock(mu_);
    auto it = stored_.find(stream);
    cached = it != stored_.end();
    if (cached) known = it->second;
  }
  for (int attempt = 0; attempt < 20; ++attempt) {
    // A stream this store has not seen is most likely new (a projection reads the snapshot
    // of any stream it meets past its first event, which remembers it here): create it
    // without reading first; a 409 says it exists, and the next attempt reads.
    if (!cached && attempt > 0) {
      auto st = read_stored(stream, nullptr, "snapshot_put");
      if (!st) return st.status();
      known = *st;
    }
    if (known.version >= snap.version && !known.etag.empty()) return Status::ok();  // not newer: a no-op
    value doc = value::object();
    doc["id"] = value::string(stream);
    doc["version"] = value::number(static_cast<double>(snap.version));
    doc["state"] = value::string(b64(snap.state));
    CosmosRequest r;
    if (known.etag.empty()) {
      r = make("POST", "docs", coll, coll + "/docs", "snapshot_put", coll);
    } else {
      r = make("PUT", "docs", coll + "/docs/" + stream, coll + "/docs/" + stream, "snapshot_put", coll);
      r.headers.emplace_back("If-Match", known.etag);
    }
    r.body = doc.serialize();
    r.headers.emplace_back("x-ms-documentdb-partitionkey", pk_header(stream));
    auto resp = client_->send(r);
    if (!resp) return resp.status();
    if (resp->http_status == 200 || resp->http_status == 201) {
      std::lock_guard lock(mu_);
      stored_[stream] = Stored{snap.version, resp->header("etag")};
      return Status::ok();
    }
    // 409 (created meanwhile), 412 (changed meanwhile), 404 (deleted): read again, decide again.
    if (resp->http_status != 409 && resp->http_status != 412 && resp->http_status != 404)
      return status_of(*resp, "write snapshot " + stream);
    cached = false;
  }
  return Status::unavailable("snapshot of " + stream + " kept changing under concurrent writers");
}

Status CosmosSnapshotStore::put(const std::vector<std::pair<std::string, Snapshot>>& entries) {
  // Entries of one stream in order (a later, older one must not win); streams in parallel.
  std::vector<std::vector<size_t>> by_stream;
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (!valid_id(entries[i].first))
      return Status::invalid_argument("stream id '" + entries[i].first + "' is not a valid Cosmos id");
    auto [it, fresh] = index.try_emplace(entries[i].first, by_stream.size());
    if (fresh) by_stream.emplace_back();
    by_stream[it->second].push_back(i);
  }
  std::vector<Status> status(by_stream.size());
  parallel_for(by_stream.size(), options_.parallelism, [&](size_t s) {
    for (size_t i : by_stream[s]) {
      status[s] = put_one(entries[i].first, entries[i].second);
      if (!status[s]) return;
    }
  });
  for (const auto& s : status)
    if (!s) return s;
  return Status::ok();
}

Status CosmosSnapshotStore::clear() {
  const std::string coll = "dbs/" + options_.database + "/colls/" + options_.container;
  auto docs = query_all(*client_, coll, "SELECT c.id FROM c", {}, nullptr, "snapshot_clear");
  if (!docs) return docs.status();
  std::vector<std::string> ids;
  for (const auto& d : *docs)
    if (auto id = str(d, "id"); valid_id(id)) ids.push_back(id);
  std::vector<Status> status(ids.size());
  parallel_for(ids.size(), options_.parallelism, [&](size_t i) {
    const std::string link = coll + "/docs/" + ids[i];
    CosmosRequest r = make("DELETE", "docs", link, link, "snapshot_clear", coll);
    r.headers = {{"x-ms-documentdb-partitionkey", pk_header(ids[i])}};
    auto resp = client_->send(r);
    if (!resp) {
      status[i] = resp.status();
    } else if (resp->http_status != 204 && resp->http_status != 200 && resp->http_status != 404) {
      status[i] = status_of(*resp, "delete snapshot " + ids[i]);
    }
  });
  {
    std::lock_guard lock(mu_);
    stored_.clear();
  }
  for (const auto& s : status)
    if (!s) return s;
  return Status::ok();
}

}  // namespace orderflow::connectors
