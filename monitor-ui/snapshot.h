// Plain data parsed from the server's /api/v1/graph and /api/v1/metrics documents.
// This header knows neither cpprestsdk nor ImGui: the monitor depends on the JSON schema only.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace orderflow::monitor {

struct TopoNode {
  std::string id;
  std::string kind;
  std::string service;
  std::string input;
  std::string output;
  bool source = false;
  std::vector<std::pair<std::string, std::string>> params;
};

struct TopoEdge {
  std::string from;
  std::string to;
  std::string type;
  bool store_mediated = false;
};

struct Topology {
  std::string name;
  std::string service;   // the serving process's --service ("" or "all" = the whole graph)
  std::string instance;  // the serving process's instance id; "" from servers that send none
  std::vector<TopoNode> nodes;
  std::vector<TopoEdge> edges;
};

struct LatencyUs {
  double count = 0, mean = 0, p50 = 0, p95 = 0, p99 = 0, p999 = 0, max = 0;
  // The server's histogram, (largest value in a bucket, count) ascending; empty from
  // servers that do not send it. With it, instances merge exactly; without, the merged
  // percentiles are the maximum over instances (exact == false).
  std::vector<std::pair<double, double>> buckets;
  bool exact = true;
};

struct NodeMetrics {
  std::string id;
  std::string kind;
  std::uint64_t in = 0;
  std::uint64_t out = 0;
  std::uint64_t errors = 0;  // the server's figure (today it includes 4xx answers, see below)
  // 4xx answers (the client's fault, not the node's). Exact when the server sends
  // "clientErrors" (then not included in `errors`); otherwise derived by split_errors() from
  // which errors arrived while "lastError" named a 4xx answer, and included in `errors`.
  std::uint64_t client_errors = 0;
  bool client_errors_exact = false;
  double busy_seconds = 0;
  double queue_depth = 0;
  double rate_in = 0;
  double rate_out = 0;
  double busy_share = 0;
  LatencyUs latency_us;
  std::string last_error;
  std::vector<std::pair<std::string, double>> gauges;  // in document order

  // The figure shown as "the node's rate": the larger of in and out.
  double rate() const { return rate_in > rate_out ? rate_in : rate_out; }
  std::optional<double> gauge(const std::string& name) const;
  // Errors that are the node's own (store failures, timeouts, internal errors).
  std::uint64_t node_errors() const;
  // Busy share is measured: some busy time was reported, or the node saw no traffic. A node that
  // passes messages with no busy time at all reports none (e.g. the change feed today).
  bool busy_measured() const { return busy_seconds > 0 || (in == 0 && out == 0); }
  // Lag from the gauges: lag_events (change-feed subscribers) or consumer_lag (Kafka sources),
  // lag_seconds (subscribers). has_lag false when the node reports neither.
  bool has_lag() const;
  double lag_events() const;
  std::optional<double> lag_seconds() const { return gauge("lag_seconds"); }
};

struct MetricsSnapshot {
  double uptime_seconds = 0;
  std::string instance;  // "instance" of the document, if the server sends one
  std::vector<NodeMetrics> nodes;
  const NodeMetrics* find(const std::string& id) const;
};

// True for an error text that starts with a 4xx HTTP status ("400 ...", "413 body too large").
bool is_client_error_text(const std::string& text);

// Per node: the server's error count and the client errors attributed so far (poller state).
struct ErrorSplit {
  struct Seen {
    std::uint64_t errors = 0, client = 0;
  };
  std::map<std::string, Seen> nodes;
};
// Fills client_errors of nodes whose server does not count 4xx answers apart: errors that
// arrived between two polls count as client errors if the newer "lastError" is a 4xx answer.
// Exact while one kind of error arrives per poll interval; an estimate otherwise. A count that
// went down (server restarted) starts over.
void split_errors(ErrorSplit& state, MetricsSnapshot& m);

// Parse errors come back as std::nullopt with a message in *error (if given).
std::optional<Topology> parse_topology(const std::string& json, std::string* error = nullptr);
std::optional<MetricsSnapshot> parse_metrics(const std::string& json, std::string* error = nullptr);

// ---- The admin API (GET /api/v1/admin/dead-letters, POST .../replay, GET .../subscribers) ----

// One message on a kafka_source's dead-letter topic: a dead letter (could not be decoded) or a
// parked command (kept aside after park_after failed attempts).
struct DeadLetter {
  std::string topic;  // the DLQ topic
  int partition = 0;
  std::int64_t offset = 0;
  std::optional<double> timestamp_ms;  // when it was dead-lettered; absent or null = unknown
  std::optional<std::string> key;      // null = no key
  std::string reason;                  // as sent: may hold control characters (escape_text)
  bool has_source = false;             // where it came from (null = unknown)
  std::string source_topic;
  int source_partition = 0;
  std::int64_t source_offset = 0;
  std::uint64_t size = 0, original_size = 0;
  bool truncated = false;
  std::uint64_t headers_dropped = 0;
  std::string kind;  // "parked" or "dead_letter" (anything else is shown as sent)
  bool parked() const { return kind == "parked"; }
  bool replayable = false;
  std::string not_replayable_because;
};

struct DeadLetterSource {
  std::string node;   // the kafka_source's node id
  std::string topic;  // its DLQ topic
  bool more = false;  // the server listed only the first `limit`
  std::vector<DeadLetter> dead_letters;
  size_t count(bool parked) const;
};

struct DeadLetterList {
  std::string instance;
  std::vector<DeadLetterSource> sources;  // empty for a server without a kafka_source
};

// A command the saga parked (GET /api/v1/admin/parked): its reaction kept failing while other
// reactions went through, so the server keeps it aside, durably, until it is replayed.
struct ParkedCommand {
  std::string node;        // the saga's node id
  std::string command_id;  // the reaction's own id (a replay resubmits it with it)
  std::string command;     // its kind, e.g. "reserveStock"
  std::string stream;      // the stream it decides on
  std::string event_stream;  // the event it reacted to
  std::int64_t event_version = 0;
  std::string reason;      // the last error; may hold control characters (escape_text)
  std::int64_t attempts = 0;
  std::optional<double> parked_at_ms;
};

struct ParkedList {
  std::string instance;
  std::vector<ParkedCommand> parked;
};

// Answer of POST /api/v1/admin/dead-letters/replay or /api/v1/admin/parked/replay (200). A
// parked command's items carry its command_id (and `to` its outcome) instead of a partition
// and offset.
struct ReplayAnswer {
  struct Replayed {
    Replayed() = default;
    Replayed(int p, std::int64_t o, std::string t) : partition(p), offset(o), to(std::move(t)) {}
    int partition = 0;
    std::int64_t offset = 0;
    std::string to;  // "topic/partition/offset" it was written to; a parked command's outcome
    std::string command_id;
  };
  struct Refused {
    Refused() = default;
    Refused(int p, std::int64_t o, std::string r) : partition(p), offset(o), reason(std::move(r)) {}
    int partition = 0;
    std::int64_t offset = 0;
    std::string reason;
    std::string command_id;
  };
  std::vector<Replayed> replayed;
  std::vector<Refused> refused;  // not replayable (the server says why)
  std::vector<Refused> failed;   // replayable, but writing it failed (e.g. a Kafka delivery error)
};

struct SubscriberInfo {
  std::string feed, subscriber, kind;
  double checkpoint = 0, head = 0, behind = 0;
  bool resettable = false;
};

// Parse errors come back as std::nullopt with a message in *error: invalid JSON, a document that
// is not an object, or a required field missing or of the wrong type (named in the message).
std::optional<DeadLetterList> parse_dead_letters(const std::string& json, std::string* error = nullptr);
std::optional<ReplayAnswer> parse_replay_answer(const std::string& json, std::string* error = nullptr);
std::optional<std::vector<SubscriberInfo>> parse_subscribers(const std::string& json, std::string* error = nullptr);
std::optional<ParkedList> parse_parked(const std::string& json, std::string* error = nullptr);
// {"replayed":[{"command_id","outcome"}],"failed":[{"command_id","reason"}]} (and "refused").
std::optional<ReplayAnswer> parse_parked_replay_answer(const std::string& json, std::string* error = nullptr);
// The "error" of an error answer's body ({"error":"..."} or {"error":{"message":...}}), "" if none.
std::string error_of_body(const std::string& json);

// Text from a server, safe to draw on one line: control characters as \n, \t, \r, \xNN and a
// backslash doubled; at most max_bytes bytes of it (then "...").
std::string escape_text(const std::string& text, size_t max_bytes = 400);

// How an admin view of one server stands. 404 = the server has no admin API (an older server):
// shown quietly, never as an error; 401/403 = the token may not read it (that view only).
enum class AdminStatus { kNotPolled, kOk, kNoAdminApi, kUnauthorized, kFailed };
const char* admin_status_name(AdminStatus s);

struct AdminView {
  AdminStatus status = AdminStatus::kNotPolled;
  int http_status = 0;   // of the last answer, 0 = no answer
  std::string error;     // for kUnauthorized / kFailed
  double polled_at = 0;  // unix seconds of the last answer or failure
};

// A replay asked for from the monitor: one dead letter (all == false) or all of a source's;
// with `parked`, one command the saga parked (by command_id) or all of them.
struct ReplayRequest {
  ReplayRequest() = default;
  ReplayRequest(size_t server_index, std::string node_id, bool all_of_source, int p, std::int64_t o)
      : server(server_index), node(std::move(node_id)), all(all_of_source), partition(p), offset(o) {}
  size_t server = 0;  // index into the pollers / Snapshot::servers
  std::string node;
  bool all = false;
  int partition = 0;
  std::int64_t offset = 0;
  bool parked = false;
  std::string command_id;
  // "orders-kafka 0:3" / "orders-kafka all" / "saga parked saga/order-o1/1/reserve/A" / "saga all parked"
  std::string describe() const;
};

// What became of a replay, kept by the poller (the last few) and shown in the panel.
struct ReplayOutcome {
  std::uint64_t id = 0;  // increasing per poller
  ReplayRequest request;
  enum class State { kPending, kDone, kFailed } state = State::kPending;
  int http_status = 0;
  ReplayAnswer answer;  // kDone
  std::string error;    // kFailed: the server's {"error"} or why no answer came
  double at = 0;        // unix seconds it was asked for
  std::string summary() const;  // "replayed 2, refused 1 (0:4: reason)", "HTTP 409: ...", "failed 1 (...)"
};

// One point of a node's sparkline.
struct Sample {
  double t = 0;  // unix seconds
  double rate = 0;
  double queue_depth = 0;
};

using History = std::map<std::string, std::deque<Sample>>;

// What one poller knows about one server, copied out to the UI thread each frame.
struct ServerState {
  std::string url;
  // The server's instance id (from /api/v1/metrics or /api/v1/graph), "" if it sends none.
  std::string instance_id() const;
  // How the UI names this instance: its id, else its URL.
  std::string label() const;
  bool has_topology = false;
  Topology topology;
  bool has_metrics = false;
  MetricsSnapshot metrics;
  bool reachable = false;
  // The last failure was a 401/403 answer: the server is up but refuses the monitor's token
  // (none, a wrong one, or one without the read role). Only meaningful while !reachable.
  bool unauthorized = false;
  bool ever_polled = false;          // at least one attempt has completed
  double last_success = 0;           // unix seconds, 0 = never
  double unreachable_since = 0;      // unix seconds of the first failure in a row; 0 while reachable
  int consecutive_failures = 0;
  double next_attempt_in = 0;        // seconds until the next try (backoff), informational
  std::string last_error;
  // Node id -> samples, oldest first. Immutable once published: the poller replaces the whole
  // map after each poll (4 Hz), so the UI thread's copy of a ServerState every frame (60 Hz)
  // shares it instead of copying 5 minutes of samples per node. Null until the first poll.
  std::shared_ptr<const History> history;
  const std::deque<Sample>* history_of(const std::string& node_id) const;
  // The admin API: dead letters and parked commands (polled every PollerOptions::admin_interval,
  // and again after a replay), subscribers, and the outcomes of replays asked for (newest last).
  // Lists are immutable once published (shared, like `history`): the UI copies this state every
  // frame. Null until the first 200 answer; cleared on 404 and 401/403, kept (stale, with the
  // view's error) when a poll fails otherwise.
  AdminView dead_letters_view;
  std::shared_ptr<const DeadLetterList> dead_letters;
  AdminView subscribers_view;
  std::shared_ptr<const std::vector<SubscriberInfo>> subscribers;
  AdminView parked_view;  // GET /api/v1/admin/parked (404: the server parks nothing this way)
  std::shared_ptr<const ParkedList> parked;
  std::vector<ReplayOutcome> replays;  // the last kKeptReplays, oldest first
  static constexpr size_t kKeptReplays = 8;
};

// Append samples of `m` at time t to `history` and drop those older than t - keep_seconds.
void append_history(History& history, const MetricsSnapshot& m,
                    double t, double keep_seconds);

}  // namespace orderflow::monitor
