// kafka_source: a consumer-group member feeding commands into the pipeline (see kafka.h).
//
// One thread owns the consumer and the dead-letter producer and does everything that
// touches them: poll, rebalance callbacks, decoding, submission, dead-lettering, offset
// commits, lag gauges. Command completions arrive on the commit writer's thread and are
// handed over through a mutex-guarded queue, so librdkafka handles are used by one thread.
//
// Offsets: each assigned partition keeps the offsets it handed out, in order, with a done
// flag; the committed offset is one past the longest done prefix, so it never passes an
// unfinished message. A message is done when its command's outcome is durable (written,
// duplicate or rejected by the domain) or when its dead-letter copy is delivered. Store
// failures resubmit the command after a backoff; the partition's offset waits meanwhile.
//
// Dead letters: the copy is shortened until the dead-letter producer accepts it (its
// message.max.bytes, by default max_message_bytes plus room for the key and headers, or a
// smaller limit the broker answers with); headers keep the reason, the original size and
// the source coordinates. A dead letter that cannot be delivered is retried with a backoff
// for as long as the partition is ours, since its offset must not be committed past it;
// meanwhile a warning line (at most one per 10 s) and the dead_letter_* gauges say so.
#include <google/protobuf/util/json_util.h>
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "connectors/command_codec.h"
#include "connectors/kafka.h"
#include "connectors/kafka_client.h"
#include "graph/log.h"
#include "graph/build.h"
#include "graph/envelope.h"

namespace orderflow::connectors {
namespace {

using TpKey = std::pair<std::string, int32_t>;

std::string tp_name(const TpKey& k) { return k.first + "[" + std::to_string(k.second) + "]"; }

// Room the dead-letter producer's message.max.bytes keeps above max_message_bytes for the
// key, the headers and the record framing, so a copy cut to max_message_bytes fits as is.
constexpr size_t kDeadLetterHeadroom = 64 * 1024;
// What librdkafka adds to key + value + headers when it checks message.max.bytes (a v2
// record's varints and attributes plus the batch header; 61 + 21 bytes at most), rounded up.
constexpr size_t kRecordOverhead = 256;
constexpr auto kDeadLetterWarnInterval = std::chrono::seconds(10);
constexpr auto kDeadLetterMaxBackoff = std::chrono::seconds(30);

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    std::string item = s.substr(start, end - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
    start = end + 1;
  }
  return out;
}

class KafkaSourceNode final : public RuntimeNode {
 public:
  KafkaSourceNode(Pipeline& p, const std::string& id, const KafkaSourceOptions& o, const Domain& domain)
      : RuntimeNode(id, "kafka_source", p.metrics().probe(id, "kafka_source")),
        domain_(domain),
        brokers_(o.brokers),
        topics_(split_list(kafka::with_domain(o.topics, domain.name()))),
        group_(o.group),
        dlq_topic_(kafka::with_domain(o.dead_letter_topic, domain.name())),
        max_message_bytes_(static_cast<size_t>(o.max_message_bytes)),
        max_in_flight_(o.max_in_flight),
        commit_interval_ms_(o.commit_interval_ms),
        park_after_(o.park_after),
        partitions_(o.partitions),
        properties_text_(o.properties) {}

  ~KafkaSourceNode() override { stop(); }

  Status connect_to(RuntimeNode& to) override {
    auto sink = command_sink_of(*this, to);
    if (!sink) return sink.status();
    sink_ = *sink;
    return Status::ok();
  }

  Status start() override {
    if (sink_ == nullptr) return Status::invalid_argument("kafka_source " + id() + " feeds no route");
    if (topics_.empty()) return Status::invalid_argument("kafka_source " + id() + ": topics is empty");
    auto user = kafka::parse_properties(properties_text_);
    if (!user) return user.status();
    auto bootstrap = kafka::resolve_brokers(brokers_);
    if (!bootstrap) return bootstrap.status();
    for (const auto& t : topics_)
      if (auto s = kafka::ensure_mock_topic(brokers_, t, partitions_); !s) return s;
    if (auto s = kafka::ensure_mock_topic(brokers_, dlq_topic_, 1); !s) return s;

    kafka::Properties consumer_defaults = {
        {"group.id", group_},
        {"client.id", "orderflow-" + id()},
        {"enable.auto.commit", "false"},        // we commit only finished prefixes
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},      // a new group reads what is already there
        {"enable.partition.eof", "false"},
        {"fetch.wait.max.ms", "100"},
        {"log_level", "4"},
    };
    // A killed member's partitions move after the session timeout (librdkafka's default is
    // 45 s): 6 s keeps takeover within 10 s. `properties` may set others.
    consumer_defaults.push_back({"session.timeout.ms", "6000"});
    consumer_defaults.push_back({"heartbeat.interval.ms", "1500"});
    auto cconf = kafka::make_conf(*bootstrap, consumer_defaults, *user);
    if (!cconf) return cconf.status();
    rd_kafka_conf_set_opaque(*cconf, this);
    rd_kafka_conf_set_rebalance_cb(*cconf, &KafkaSourceNode::rebalance_cb);
    rd_kafka_conf_set_offset_commit_cb(*cconf, &KafkaSourceNode::commit_cb);
    char err[512];
    consumer_ = rd_kafka_new(RD_KAFKA_CONSUMER, *cconf, err, sizeof err);
    if (consumer_ == nullptr) {
      rd_kafka_conf_destroy(*cconf);
      return Status::invalid_argument("kafka_source " + id() + ": cannot create consumer: " + err);
    }
    rd_kafka_poll_set_consumer(consumer_);

    kafka::Properties producer_defaults = {
        {"client.id", "orderflow-" + id() + "-dlq"},
        {"enable.idempotence", "true"},
        {"linger.ms", "5"},
        {"log_level", "4"},
        // A copy cut to max_message_bytes must fit with its key and headers (librdkafka's
        // default of 1,000,000 refused every copy of a message above it).
        {"message.max.bytes", std::to_string(std::min<size_t>(max_message_bytes_ + kDeadLetterHeadroom, 1000000000))},
    };
    // Everything the user set for this connection (security, timeouts, acks, limits) applies
    // to the dead-letter producer too, except what only a consumer understands.
    auto pconf = kafka::make_conf(*bootstrap, producer_defaults, kafka::producer_properties(*user));
    if (!pconf) return pconf.status();
    {
      // The user may have lowered it: copies are cut to what the producer really takes.
      char value[32];
      size_t size = sizeof value;
      int64_t limit = 0;
      if (rd_kafka_conf_get(*pconf, "message.max.bytes", value, &size) == RD_KAFKA_CONF_OK &&
          graph::parse_int(value, &limit) && limit > 0)
        dlq_max_bytes_ = static_cast<size_t>(limit);
    }
    rd_kafka_conf_set_opaque(*pconf, this);
    rd_kafka_conf_set_dr_msg_cb(*pconf, &KafkaSourceNode::dlq_delivery_cb);
    dlq_ = rd_kafka_new(RD_KAFKA_PRODUCER, *pconf, err, sizeof err);
    if (dlq_ == nullptr) {
      rd_kafka_conf_destroy(*pconf);
      return Status::invalid_argument("kafka_source " + id() + ": cannot create dead-letter producer: " + err);
    }

    rd_kafka_topic_partition_list_t* subs = rd_kafka_topic_partition_list_new(static_cast<int>(topics_.size()));
    for (const auto& t : topics_) rd_kafka_topic_partition_list_add(subs, t.c_str(), RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(consumer_, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka::to_status(e, "kafka_source " + id() + ": subscribe");

    intake_ = true;
    running_ = true;
    thread_ = std::thread([this] {
      name_thread("kafka-source");
      run();
    });
    log::info("kafka source started", {{"node", id()}, {"brokers", *bootstrap}, {"group", group_},
                                       {"topics", join(topics_)}});
    return Status::ok();
  }

  void stop_intake() override { intake_ = false; }

  void drain(std::chrono::steady_clock::time_point deadline) override {
    intake_ = false;
    while (in_flight_.load() > 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }

  void stop() override {
    if (!running_.exchange(false)) return;
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Partition {
    uint64_t generation = 0;
    std::deque<std::pair<int64_t, bool>> offsets;  // handed out, oldest first: (offset, done)
    int64_t committed = -1;                        // last offset committed (next to read)
    int64_t done_until = -1;                       // next offset after the done prefix
    int64_t in_flight = 0;
    int64_t next = -1;                             // one past the highest offset handed out
    // The group's committed offset when the partition was assigned (-1: none), the start of
    // its lag until something is done here; known once fetched from the coordinator.
    int64_t group_committed = -1;
    bool group_committed_known = false;
    bool skipping = false;                         // inside a run of skipped (rewound) offsets
  };
  // A command waiting to be submitted (the pipeline was full) or resubmitted (store error).
  static constexpr size_t kPollBatch = 1000;  // messages taken from one poll at most
  struct Pending {
    TpKey tp;
    uint64_t generation = 0;
    int64_t offset = 0;
    std::shared_ptr<const Message> command;
    std::string key;  // the message's, for a dead letter after a refusal
    std::chrono::steady_clock::time_point not_before;
    bool dead_lettered = false;  // refused before submission (malformed)
    int failures = 0;            // attempts that failed (not durable) so far
    uint64_t ok_mark = 0;        // finished_ok_ at its first failure
  };
  // Handed from the commit writer's thread to ours.
  struct Finished {
    TpKey tp;
    uint64_t generation = 0;
    int64_t offset = 0;
    Status status;
    std::shared_ptr<const Message> command;  // kept for a resubmission
    std::string key;
    int failures = 0;
    uint64_t ok_mark = 0;
  };
  // Opaque of a dead-letter message until its delivery report (then owned again by us,
  // while it waits for a retry).
  struct DeadLetter {
    TpKey tp;
    uint64_t generation = 0;
    int64_t offset = 0;
    std::string key, value, reason;
    std::vector<std::pair<std::string, std::string>> headers;  // the original message's
    size_t original_size = 0;  // bytes of the original value
    size_t limit = 0;          // what the copy (key + value + headers) must fit in; 0 = the producer's
    int failures = 0;
    bool shortened_counted = false;
    std::chrono::steady_clock::time_point not_before;
  };

  static std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
    return s;
  }

  void run() {
    auto last_commit = std::chrono::steady_clock::now();
    auto last_gauges = last_commit;
    update_gauges(false);
    while (running_) {
      apply_finished();
      submit_pending();
      rd_kafka_poll(dlq_, 0);  // dead-letter delivery reports
      retry_dead_letters(false);
      const bool full = !pending_.empty() || in_flight_.load() >= max_in_flight_;
      if ((full || !intake_) != paused_) {
        paused_ = !paused_;
        set_paused(paused_);
        if (paused_) probe().set_gauge("pauses", static_cast<double>(++pauses_));
      }
      const auto now = std::chrono::steady_clock::now();
      if (now - last_commit >= std::chrono::milliseconds(commit_interval_ms_)) {
        commit_offsets(false);
        last_commit = now;
      }
      if (now - last_gauges >= std::chrono::seconds(1)) {
        update_gauges(paused_);
        last_gauges = now;
      }
      // Paused partitions deliver nothing, but polling still serves rebalances.
      rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_, paused_ ? 10 : 50);
      if (m == nullptr) continue;
      BusyTimer busy(probe());
      // What librdkafka already fetched is taken at once and submitted as one batch.
      for (size_t n = 1; m != nullptr; ++n) {
        handle(m);
        rd_kafka_message_destroy(m);
        m = n < kPollBatch ? rd_kafka_consumer_poll(consumer_, 0) : nullptr;
      }
      submit_pending();
    }
    // Shutdown: what finished is committed; the rest is redelivered to the next owner.
    apply_finished();
    rd_kafka_flush(dlq_, 5000);
    rd_kafka_poll(dlq_, 0);
    retry_dead_letters(true);  // not delivered by now: left uncommitted for the next owner
    apply_finished();
    commit_offsets(true);
    rd_kafka_consumer_close(consumer_);  // revokes (rebalance_cb) and leaves the group
    rd_kafka_destroy(consumer_);
    rd_kafka_destroy(dlq_);
    consumer_ = nullptr;
    dlq_ = nullptr;
  }

  void handle(rd_kafka_message_t* m) {
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
      probe().add_error(kafka::to_status(m->err, "consume").to_string());
      return;
    }
    const TpKey tp{rd_kafka_topic_name(m->rkt), m->partition};
    auto it = parts_.find(tp);
    if (it == parts_.end()) return;  // not (any more) ours: the next owner reads it
    Partition& part = it->second;
    // librdkafka 2.0 can rewind a partition on resume (its fetch position races the
    // pause/resume ops; confluentinc/librdkafka#4637, fixed in 2.4) and hand out messages
    // already handed out. Those are in flight or done under their first delivery: skip
    // them, so the offset list stays ascending and nothing is submitted twice.
    if (part.next >= 0 && m->offset < part.next) {
      probe().set_gauge("redelivered_skipped", static_cast<double>(++redelivered_skipped_));
      if (!part.skipping)  // once per rewind: a topic recreated under us would show here too
        log::warn("kafka partition rewound; skipping offsets already handed out",
                  {{"node", id()}, {"topic", tp.first}, {"partition", std::to_string(tp.second)},
                   {"offset", std::to_string(m->offset)}, {"next", std::to_string(part.next)}});
      part.skipping = true;
      return;
    }
    part.skipping = false;
    part.next = m->offset + 1;
    part.offsets.emplace_back(m->offset, false);
    ++part.in_flight;
    in_flight_.fetch_add(1);
    probe().add_in();

    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) hdrs = nullptr;
    // A command without an id gets one from its place in the log: redeliveries keep it.
    auto cmd = kafka::decode_message(domain_, m->payload, m->len, kafka::content_type_of(hdrs), max_message_bytes_,
                                     "kafka:" + tp.first + ":" + std::to_string(tp.second) + ":" + std::to_string(m->offset));
    if (!cmd) return dead_letter(tp, part.generation, m, cmd.status().message());
    Pending p;
    p.tp = tp;
    p.generation = part.generation;
    p.offset = m->offset;
    p.command = std::shared_ptr<const Message>(std::move(*cmd));
    if (m->key) p.key.assign(static_cast<const char*>(m->key), m->key_len);
    pending_.push_back(std::move(p));  // submitted by run() with the rest of the poll
  }

  // Submits waiting commands in arrival order until the pipeline says it is full.
  void submit_pending() {
    if (!intake_) {  // stopping: the pipeline takes nothing new; the next owner redelivers these
      for (const auto& p : pending_) abandon(p.tp, p.generation);
      pending_.clear();
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    // One batch of what is due, in arrival order, as much as the pipeline has room for.
    const int64_t room = std::max<int64_t>(1, sink_->max_in_flight() - sink_->in_flight());
    EnvelopeBatch batch;
    size_t taken = 0;  // entries of pending_ the batch covers (revoked ones included)
    for (; taken < pending_.size() && static_cast<int64_t>(batch.size()) < room; ++taken) {
      Pending& p = pending_[taken];
      if (p.dead_lettered || !current(p.tp, p.generation)) continue;  // revoked meanwhile: already accounted for
      if (p.not_before > now) break;
      if (Status valid = domain_.validate(*p.command); !valid) {
        // Malformed in a way only the domain sees: dead-letter it like a decode failure.
        std::string value;
        p.command->SerializeToString(&value);
        dead_letter_command(p.tp, p.generation, p.offset, p.key, std::move(value), "application/x-protobuf",
                            valid.message());
        p.dead_lettered = true;  // not submitted, and not again if this batch is refused
        continue;
      }
      const TpKey tp = p.tp;
      const uint64_t gen = p.generation;
      const int64_t offset = p.offset;
      batch.push_back(make_envelope(domain_.copy(*p.command), [this, tp, gen, offset, command = p.command, key = p.key,
                                                               failures = p.failures, mark = p.ok_mark](const Outcome& o) {
        std::lock_guard<std::mutex> lock(finished_mu_);
        finished_.push_back(Finished{tp, gen, offset, o.status, command, key, failures, mark});
      }));
    }
    if (!batch.empty()) {
      Status s = sink_->submit_batch(batch);
      if (s.code() == StatusCode::kUnavailable) return;  // full: the same batch on the next turn
      if (!s) probe().add_error("commands refused: " + s.to_string());  // not expected: submit_batch takes or refuses
    }
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(taken));
  }

  void apply_finished() {
    std::vector<Finished> batch;
    {
      std::lock_guard<std::mutex> lock(finished_mu_);
      batch.swap(finished_);
    }
    const auto now = std::chrono::steady_clock::now();
    for (auto& f : batch) {
      if (!current(f.tp, f.generation)) continue;  // revoked: abandoned, the next owner redelivers
      const StatusCode c = f.status.code();
      if (c == StatusCode::kInvalidArgument) {
        // Refused by the pipeline after decoding (a command id already used on another
        // stream): to the dead-letter topic with the reason, the command as JSON; the offset
        // advances once it is delivered, as for a message refused on arrival.
        std::string json;
        (void)google::protobuf::util::MessageToJsonString(*f.command, &json);
        dead_letter_command(f.tp, f.generation, f.offset, f.key, std::move(json), "application/json", f.status.message());
        continue;
      }
      if (c == StatusCode::kOk || c == StatusCode::kRejected) {
        if (c == StatusCode::kRejected) ++rejected_;
        ++finished_ok_;
        mark_done(f.tp, f.generation, f.offset);
        continue;
      }
      // Not durable (store trouble, conflicts beyond retries, shutting down): try again
      // later; the partition's committed offset stays before it meanwhile.
      probe().add_error("command " + domain_.command_id(*f.command) + " from " + tp_name(f.tp) + "@" +
                        std::to_string(f.offset) + ": " + f.status.to_string());
      if (!intake_) {  // stopping: leave it uncommitted, the next owner redelivers it
        abandon(f.tp, f.generation);
        continue;
      }
      const int failures = f.failures + 1;
      const uint64_t mark = f.failures == 0 ? finished_ok_ : f.ok_mark;
      if (park_after_ > 0 && failures >= park_after_ && finished_ok_ > mark) {
        // Poison, not an outage: other commands went through while this one kept failing.
        // Parked on the dead-letter topic (list, inspect and replay it with `orderflow dlq`);
        // its offset advances once the dead letter is delivered.
        ++parked_;
        log::warn("kafka source: a command keeps failing while others succeed; parked on the dead-letter topic",
                  {{"node", id()}, {"command", domain_.command_id(*f.command)}, {"source", tp_name(f.tp)},
                   {"offset", std::to_string(f.offset)}, {"attempts", std::to_string(failures)},
                   {"error", f.status.to_string()}});
        std::string json;
        (void)google::protobuf::util::MessageToJsonString(*f.command, &json);
        dead_letter_command(f.tp, f.generation, f.offset, f.key, std::move(json), "application/json",
                            kafka::kParkedReasonPrefix + std::to_string(failures) + " failed attempts while other commands "
                            "succeeded: " + f.status.to_string());
        continue;
      }
      ++resubmitted_;
      Pending p;
      p.tp = f.tp;
      p.generation = f.generation;
      p.offset = f.offset;
      p.command = std::move(f.command);
      p.key = std::move(f.key);
      p.failures = failures;
      p.ok_mark = mark;
      // 0.1 s, doubling up to 5 s: a store outage is not hammered, a poison command parks.
      p.not_before = now + std::min<std::chrono::milliseconds>(
                               std::chrono::milliseconds(100LL << std::min(failures - 1, 6)), std::chrono::seconds(5));
      pending_.push_back(std::move(p));
    }
  }

  // True while the partition is still assigned with the generation the message came in.
  bool current(const TpKey& tp, uint64_t generation) const {
    auto it = parts_.find(tp);
    return it != parts_.end() && it->second.generation == generation;
  }

  // Gives up on a message without finishing it: its offset is never committed past.
  void abandon(const TpKey& tp, uint64_t generation) {
    auto it = parts_.find(tp);
    if (it == parts_.end() || it->second.generation != generation) return;
    --it->second.in_flight;
    in_flight_.fetch_sub(1);
  }

  void mark_done(const TpKey& tp, uint64_t generation, int64_t offset) {
    auto it = parts_.find(tp);
    if (it == parts_.end() || it->second.generation != generation) return;  // revoked: not ours to commit
    Partition& part = it->second;
    --part.in_flight;
    in_flight_.fetch_sub(1);
    probe().add_out();
    auto pos = std::lower_bound(part.offsets.begin(), part.offsets.end(), std::make_pair(offset, false),
                                [](const auto& a, const auto& b) { return a.first < b.first; });
    if (pos != part.offsets.end() && pos->first == offset) pos->second = true;
    while (!part.offsets.empty() && part.offsets.front().second) {
      part.done_until = part.offsets.front().first + 1;
      part.offsets.pop_front();
    }
  }

  void dead_letter(const TpKey& tp, uint64_t generation, rd_kafka_message_t* m, const std::string& reason) {
    auto dl = std::make_unique<DeadLetter>();
    dl->tp = tp;
    dl->generation = generation;
    dl->offset = m->offset;
    if (m->key) dl->key.assign(static_cast<const char*>(m->key), m->key_len);
    if (m->payload) dl->value.assign(static_cast<const char*>(m->payload), std::min(m->len, max_message_bytes_));
    dl->original_size = m->payload ? m->len : 0;
    dl->reason = reason;
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) dl->headers = kafka::headers_of(hdrs);
    probe().add_error("dead-lettered " + tp_name(tp) + "@" + std::to_string(m->offset) + ": " + reason);
    produce_dead_letter(std::move(dl));
  }

  // A decoded command the pipeline refused, re-encoded as `value` (of `content_type`).
  void dead_letter_command(const TpKey& tp, uint64_t generation, int64_t offset, const std::string& key,
                           std::string value, const char* content_type, const std::string& reason) {
    auto dl = std::make_unique<DeadLetter>();
    dl->tp = tp;
    dl->generation = generation;
    dl->offset = offset;
    dl->key = key;
    dl->original_size = value.size();
    dl->value = std::move(value);
    dl->reason = reason;
    dl->headers.push_back({"content-type", content_type});
    probe().add_error("dead-lettered " + tp_name(tp) + "@" + std::to_string(offset) + ": " + reason);
    produce_dead_letter(std::move(dl));
  }

  // Bytes librdkafka counts against message.max.bytes for these headers (name, value and
  // their varint lengths), rounded up.
  static size_t headers_size(const std::vector<std::pair<std::string, std::string>>& headers) {
    size_t n = 0;
    for (const auto& [k, v] : headers) n += k.size() + v.size() + 12;
    return n;
  }

  // Cuts the copy until key + value + headers fit in `limit` bytes: the value (that is what
  // makes a message too large), and the original headers when they would leave less than
  // 1 KiB of it, then the key. Our own headers (reason, original size, coordinates) always
  // stay; room is kept for the x-orderflow-truncated and -headers-dropped headers.
  static void fit(DeadLetter& dl, std::vector<std::pair<std::string, std::string>>& ours, size_t limit) {
    const size_t fixed = headers_size(ours) + kRecordOverhead + 128;
    auto room = [&](size_t used) { return used < limit ? limit - used : 0; };
    if (fixed + dl.key.size() + dl.value.size() + headers_size(dl.headers) <= limit) return;
    const size_t want = std::min<size_t>(dl.value.size(), 1024);
    if (!dl.headers.empty() && room(fixed + dl.key.size() + headers_size(dl.headers)) < want) {
      ours.push_back({kafka::kDeadLetterHeadersDropped, std::to_string(dl.headers.size())});
      dl.headers.clear();
    }
    dl.value.resize(std::min(dl.value.size(), room(fixed + dl.key.size() + headers_size(dl.headers))));
    dl.key.resize(std::min(dl.key.size(), room(fixed + dl.value.size() + headers_size(dl.headers))));
  }

  void produce_dead_letter(std::unique_ptr<DeadLetter> dl) {
    for (;;) {
      // Our headers are rebuilt each attempt: a shorter copy says how it was cut.
      std::vector<std::pair<std::string, std::string>> ours = {
          {kafka::kDeadLetterError, dl->reason},
          {kafka::kDeadLetterOriginalSize, std::to_string(dl->original_size)},
          {kafka::kDeadLetterSourceTopic, dl->tp.first},
          {kafka::kDeadLetterSourcePartition, std::to_string(dl->tp.second)},
          {kafka::kDeadLetterSourceOffset, std::to_string(dl->offset)},
      };
      fit(*dl, ours, dl->limit > 0 ? std::min(dl->limit, dlq_max_bytes_) : dlq_max_bytes_);
      if (dl->value.size() < dl->original_size) {
        ours.push_back({kafka::kDeadLetterTruncated, std::to_string(dl->original_size)});
        if (!dl->shortened_counted) {
          dl->shortened_counted = true;
          probe().set_gauge("dead_letters_shortened", static_cast<double>(++dead_letters_shortened_));
        }
      }
      rd_kafka_headers_t* h = rd_kafka_headers_new(dl->headers.size() + ours.size());
      for (const auto* list : {&dl->headers, &ours})
        for (const auto& [k, v] : *list)
          rd_kafka_header_add(h, k.c_str(), -1, v.data(), static_cast<ssize_t>(v.size()));
      DeadLetter* raw = dl.get();
      rd_kafka_resp_err_t e = rd_kafka_producev(
          dlq_, RD_KAFKA_V_TOPIC(dlq_topic_.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_KEY(raw->key.data(), raw->key.size()), RD_KAFKA_V_VALUE(raw->value.data(), raw->value.size()),
          RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(raw), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {  // the message owns the headers, librdkafka the opaque
        dl.release();
        return;
      }
      rd_kafka_headers_destroy(h);
      if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(dlq_, 50);
        continue;
      }
      if (too_large(e) && shrink(*dl)) continue;
      // Cannot even queue it (an unknown topic, a fatal producer error): try again later; the
      // partition's offset waits for it.
      return dead_letter_failed(std::move(dl), kafka::to_status(e, "dead-letter produce"));
    }
  }

  static bool too_large(rd_kafka_resp_err_t e) {
    return e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || e == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE ||
           e == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
  }

  // Halves what the copy may take, after the producer or the broker (a topic with a smaller
  // max.message.bytes) refused it as too large. False when there is nothing left to cut.
  static bool shrink(DeadLetter& dl) {
    const size_t now = dl.key.size() + dl.value.size() + headers_size(dl.headers);
    if (now == 0) return false;
    dl.limit = kRecordOverhead + 1024 + now / 2;  // our headers stay whole
    return true;
  }

  // A dead letter that did not get through: retried after a backoff, logged (one line per
  // kDeadLetterWarnInterval) and counted. Its partition's offset stays before it, so this
  // is never silent.
  void dead_letter_failed(std::unique_ptr<DeadLetter> dl, const Status& why) {
    ++dead_letter_failures_;
    ++dl->failures;
    probe().add_error(why.to_string());
    probe().set_gauge("dead_letter_failures", static_cast<double>(dead_letter_failures_));
    const auto now = std::chrono::steady_clock::now();
    if (now - last_dlq_warn_ >= kDeadLetterWarnInterval) {
      log::warn("dead letter not delivered; its partition's offset waits for it, retrying",
                {{"node", id()}, {"dead_letter_topic", dlq_topic_}, {"source", tp_name(dl->tp)},
                 {"offset", std::to_string(dl->offset)}, {"attempts", std::to_string(dl->failures)},
                 {"failures_since_last_line", std::to_string(dead_letter_failures_ - failures_at_last_warn_)},
                 {"error", why.to_string()}});
      last_dlq_warn_ = now;
      failures_at_last_warn_ = dead_letter_failures_;
    }
    auto backoff = std::chrono::milliseconds(500) * (1 << std::min(dl->failures, 6));
    dl->not_before = now + std::min<std::chrono::steady_clock::duration>(backoff, kDeadLetterMaxBackoff);
    dlq_retry_.push_back(std::move(dl));
    probe().set_gauge("dead_letters_waiting", static_cast<double>(dlq_retry_.size()));
  }

  // Produces again the dead letters whose backoff ended; `give_up` (shutdown) abandons them all.
  void retry_dead_letters(bool give_up) {
    if (dlq_retry_.empty()) return;
    const auto now = std::chrono::steady_clock::now();
    std::deque<std::unique_ptr<DeadLetter>> due;
    for (auto it = dlq_retry_.begin(); it != dlq_retry_.end();) {
      if (!current((*it)->tp, (*it)->generation)) {  // revoked: accounted for, the next owner redelivers
        it = dlq_retry_.erase(it);
      } else if (give_up) {
        abandon((*it)->tp, (*it)->generation);
        it = dlq_retry_.erase(it);
      } else if ((*it)->not_before <= now) {
        due.push_back(std::move(*it));
        it = dlq_retry_.erase(it);
      } else {
        ++it;
      }
    }
    probe().set_gauge("dead_letters_waiting", static_cast<double>(dlq_retry_.size()));
    for (auto& dl : due) produce_dead_letter(std::move(dl));
  }

  // Served by rd_kafka_poll/flush on the dead-letter producer, always on our thread.
  static void dlq_delivery_cb(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<KafkaSourceNode*>(opaque);
    std::unique_ptr<DeadLetter> dl(static_cast<DeadLetter*>(m->_private));
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (!self->running_) return self->abandon(dl->tp, dl->generation);
      if (too_large(m->err) && shrink(*dl)) return self->produce_dead_letter(std::move(dl));
      return self->dead_letter_failed(std::move(dl), kafka::to_status(m->err, "dead-letter delivery"));
    }
    if (dl->failures > 0)
      log::info("dead letter delivered after failures", {{"node", self->id()}, {"source", tp_name(dl->tp)},
                                                         {"offset", std::to_string(dl->offset)},
                                                         {"attempts", std::to_string(dl->failures + 1)}});
    // Published here, not only with the periodic gauges: a reader that saw the offset move
    // past the dead letter sees it counted (a test once read 0 in between).
    self->probe().set_gauge("dead_lettered", static_cast<double>(++self->dead_lettered_));
    self->mark_done(dl->tp, dl->generation, dl->offset);
  }

  // Commits every partition whose done prefix moved. `sync` for shutdown and revocation.
  void commit_offsets(bool sync, const rd_kafka_topic_partition_list_t* only = nullptr) {
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(parts_.size()));
    for (auto& [tp, part] : parts_) {
      if (part.done_until <= part.committed) continue;
      if (only && !rd_kafka_topic_partition_list_find(only, tp.first.c_str(), tp.second)) continue;
      rd_kafka_topic_partition_list_add(list, tp.first.c_str(), tp.second)->offset = part.done_until;
      part.committed = part.done_until;
    }
    if (list->cnt > 0) {
      rd_kafka_resp_err_t e = rd_kafka_commit(consumer_, list, sync ? 0 : 1);
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        probe().add_error(kafka::to_status(e, "offset commit").to_string());
        for (int i = 0; i < list->cnt; ++i)  // try again next time
          if (auto it = parts_.find({list->elems[i].topic, list->elems[i].partition}); it != parts_.end())
            it->second.committed = -1;
      }
    }
    rd_kafka_topic_partition_list_destroy(list);
  }

  // Result of an asynchronous commit (served by our poll): a partition whose commit failed
  // (e.g. during a rebalance) is committed again on the next turn.
  static void commit_cb(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* list, void* opaque) {
    auto* self = static_cast<KafkaSourceNode*>(opaque);
    if (list == nullptr) return;
    for (int i = 0; i < list->cnt; ++i) {
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR && list->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) continue;
      auto it = self->parts_.find({list->elems[i].topic, list->elems[i].partition});
      if (it != self->parts_.end() && it->second.committed <= list->elems[i].offset) it->second.committed = -1;
    }
  }

  void set_paused(bool pause) {
    rd_kafka_topic_partition_list_t* list = nullptr;
    if (rd_kafka_assignment(consumer_, &list) != RD_KAFKA_RESP_ERR_NO_ERROR || list == nullptr) return;
    if (list->cnt > 0) {
      if (pause) rd_kafka_pause_partitions(consumer_, list);
      else rd_kafka_resume_partitions(consumer_, list);
    }
    rd_kafka_topic_partition_list_destroy(list);
  }

  static void rebalance_cb(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* list,
                           void* opaque) {
    auto* self = static_cast<KafkaSourceNode*>(opaque);
    const bool cooperative = std::string(rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      for (int i = 0; i < list->cnt; ++i) {
        Partition& part = self->parts_[{list->elems[i].topic, list->elems[i].partition}];
        part = Partition{};
        part.generation = ++self->generation_;
      }
      if (cooperative) rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, list));
      else rd_kafka_assign(rk, list);
      if (self->paused_) rd_kafka_pause_partitions(rk, list);  // the pipeline is still full
      log::info("kafka partitions assigned", {{"node", self->id()}, {"count", std::to_string(list->cnt)}});
      return;
    }
    // Revoked: let what is in flight for these partitions finish (bounded), commit the
    // finished prefix, then forget them. Anything unfinished is redelivered to the next owner.
    self->finish_revoked(list);
    if (cooperative) rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, list));
    else rd_kafka_assign(rk, nullptr);
  }

  void finish_revoked(const rd_kafka_topic_partition_list_t* list) {
    auto in_flight_of_revoked = [&] {
      int64_t n = 0;
      for (int i = 0; i < list->cnt; ++i)
        if (auto it = parts_.find({list->elems[i].topic, list->elems[i].partition}); it != parts_.end())
          n += it->second.in_flight;
      return n;
    };
    // Waiting commands of revoked partitions are never submitted.
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (rd_kafka_topic_partition_list_find(list, it->tp.first.c_str(), it->tp.second)) {
        abandon(it->tp, it->generation);
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (in_flight_of_revoked() > 0 && std::chrono::steady_clock::now() < deadline) {
      apply_finished();
      rd_kafka_poll(dlq_, 0);
      retry_dead_letters(false);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    commit_offsets(true, list);
    for (int i = 0; i < list->cnt; ++i) {
      auto it = parts_.find({list->elems[i].topic, list->elems[i].partition});
      if (it == parts_.end()) continue;
      in_flight_.fetch_sub(it->second.in_flight);  // abandoned: their completions are ignored
      parts_.erase(it);
    }
    log::info("kafka partitions revoked", {{"node", id()}, {"count", std::to_string(list->cnt)}});
  }

  // Asks the coordinator for the group's committed offsets of partitions assigned since the
  // last call (blocks this thread for at most a second, and is retried at most every 5 s):
  // without them, a partition already committed to its end would count from its low
  // watermark after a restart.
  void fetch_group_committed() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_committed_fetch_ < std::chrono::seconds(5) && last_committed_fetch_generation_ == generation_)
      return;
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(parts_.size()));
    for (const auto& [tp, part] : parts_)
      if (!part.group_committed_known) rd_kafka_topic_partition_list_add(list, tp.first.c_str(), tp.second);
    if (list->cnt > 0) {
      last_committed_fetch_ = now;
      last_committed_fetch_generation_ = generation_;
      if (rd_kafka_committed(consumer_, list, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < list->cnt; ++i) {
          const auto& e = list->elems[i];
          auto it = parts_.find({e.topic, e.partition});
          if (it == parts_.end() || e.err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
          it->second.group_committed = e.offset >= 0 ? e.offset : -1;
          it->second.group_committed_known = true;
        }
      }
    }
    rd_kafka_topic_partition_list_destroy(list);
  }

  void update_gauges(bool paused) {
    fetch_group_committed();
    int64_t total = 0;
    for (auto& [tp, part] : parts_) {
      int64_t lo = 0, hi = 0;
      if (rd_kafka_get_watermark_offsets(consumer_, tp.first.c_str(), tp.second, &lo, &hi) !=
          RD_KAFKA_RESP_ERR_NO_ERROR || hi < 0)
        continue;
      // Where this member's progress starts: its done prefix, what it committed, what the
      // group had committed when it got the partition; only a partition the group never
      // committed counts from the low watermark (auto.offset.reset=earliest reads it all).
      int64_t from = lo;
      if (part.done_until >= 0) from = part.done_until;
      else if (part.committed >= 0) from = part.committed;
      else if (part.group_committed >= 0) from = part.group_committed;
      else if (!part.group_committed_known) continue;  // not known yet: no figure beats a wrong one
      const int64_t lag = std::max<int64_t>(0, hi - std::max(from, lo));
      total += lag;
      probe().set_gauge("lag." + tp_name(tp), static_cast<double>(lag));
    }
    probe().set_gauge("consumer_lag", static_cast<double>(total));
    probe().set_gauge("partitions", static_cast<double>(parts_.size()));
    probe().set_gauge("paused", paused ? 1 : 0);
    probe().set_gauge("in_flight", static_cast<double>(in_flight_.load()));
    probe().set_gauge("dead_lettered", static_cast<double>(dead_lettered_));
    probe().set_gauge("dead_letter_failures", static_cast<double>(dead_letter_failures_));
    probe().set_gauge("dead_letters_waiting", static_cast<double>(dlq_retry_.size()));
    probe().set_gauge("dead_letters_shortened", static_cast<double>(dead_letters_shortened_));
    probe().set_gauge("rejected", static_cast<double>(rejected_));
    probe().set_gauge("resubmitted", static_cast<double>(resubmitted_));
    probe().set_gauge("parked", static_cast<double>(parked_));
    // Also the counters set where they change, so every gauge is there (at 0) from the start.
    probe().set_gauge("pauses", static_cast<double>(pauses_));
    probe().set_gauge("redelivered_skipped", static_cast<double>(redelivered_skipped_));
  }

  const Domain& domain_;
  CommandSink* sink_ = nullptr;
  const std::string brokers_;
  const std::vector<std::string> topics_;
  const std::string group_, dlq_topic_;
  const size_t max_message_bytes_;
  const int64_t max_in_flight_;
  const int commit_interval_ms_;
  const int park_after_;
  const int partitions_;
  const std::string properties_text_;

  rd_kafka_t* consumer_ = nullptr;  // consumer thread only (after start)
  rd_kafka_t* dlq_ = nullptr;
  std::atomic<bool> running_{false}, intake_{false};
  // Messages received and not finished (or abandoned): drain waits for zero.
  std::atomic<int64_t> in_flight_{0};
  std::thread thread_;

  // Consumer thread only.
  std::map<TpKey, Partition> parts_;
  uint64_t generation_ = 0;
  bool paused_ = false;  // every assigned partition is paused
  uint64_t pauses_ = 0;
  uint64_t redelivered_skipped_ = 0;  // messages below a partition's next offset (see handle)
  std::deque<Pending> pending_;
  uint64_t dead_lettered_ = 0, rejected_ = 0, resubmitted_ = 0, parked_ = 0;
  uint64_t finished_ok_ = 0;  // commands finished durable or rejected (poison vs outage, see park_after)
  size_t dlq_max_bytes_ = 1000000;  // the dead-letter producer's message.max.bytes (set in start)
  std::deque<std::unique_ptr<DeadLetter>> dlq_retry_;  // failed dead letters waiting for a retry
  uint64_t dead_letter_failures_ = 0, failures_at_last_warn_ = 0, dead_letters_shortened_ = 0;
  std::chrono::steady_clock::time_point last_dlq_warn_{};
  std::chrono::steady_clock::time_point last_committed_fetch_{};
  uint64_t last_committed_fetch_generation_ = 0;

  std::mutex finished_mu_;
  std::vector<Finished> finished_;  // guarded by finished_mu_
};

}  // namespace

const graph::Options<KafkaSourceOptions>& kafka_source_options() {
  using O = KafkaSourceOptions;
  static const auto options =
      graph::Options<O>()
          .required(&O::brokers, "brokers", "host:port[,host:port], or mock:N for an in-process mock cluster")
          .text(&O::topics, "topics", "command topics, comma-separated; {domain} = the graph's domain")
          .text(&O::group, "group", "consumer group id")
          .text(&O::dead_letter_topic, "dead_letter_topic",
                "undecodable or malformed messages; {domain} = the graph's domain")
          .integer(&O::max_message_bytes, "max_message_bytes", 64, 104857600, "larger messages are dead-lettered")
          .integer(&O::max_in_flight, "max_in_flight", 1, 10000000, "commands submitted, not yet finished; more pauses")
          .integer(&O::commit_interval_ms, "commit_interval_ms", 1, 60000, "how often finished offsets are committed")
          .integer(&O::partitions, "partitions", 1, 1024, "partitions of topics created on a mock cluster")
          .integer(&O::park_after, "park_after", 0, 1000,
                   "failures of one command, while others succeed, before it is parked on the dead-letter "
                   "topic (0 = retry for ever)")
          .text(&O::properties, "properties", "librdkafka properties k=v,k=v; ${ENV} expands");
  return options;
}

Result<std::unique_ptr<RuntimeNode>> make_kafka_source(const graph::NodeDef& def, BuildContext& context) {
  return std::unique_ptr<RuntimeNode>(
      new KafkaSourceNode(context.pipeline, def.id, kafka_source_options().parse(def), context.domain));
}

}  // namespace orderflow::connectors

namespace orderflow::connectors::kafka {

std::string content_type_of(const rd_kafka_headers_t* hdrs) {
  const void* v = nullptr;
  size_t n = 0;
  if (hdrs != nullptr && rd_kafka_header_get_last(hdrs, "content-type", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR &&
      v != nullptr)
    return std::string(static_cast<const char*>(v), n);
  return std::string();
}

std::vector<std::pair<std::string, std::string>> headers_of(const rd_kafka_headers_t* hdrs) {
  std::vector<std::pair<std::string, std::string>> out;
  if (hdrs == nullptr) return out;
  const char* name = nullptr;
  const void* v = nullptr;
  size_t n = 0;
  for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i)
    out.emplace_back(name, v ? std::string(static_cast<const char*>(v), n) : std::string());
  return out;
}

Result<MessagePtr> decode_message(const Domain& domain, const void* payload, size_t len,
                                  std::string_view content_type, size_t max_message_bytes,
                                  const std::string& default_id) {
  if (payload == nullptr || len == 0) return Status::invalid_argument("empty message");
  if (len > max_message_bytes)
    return Status::invalid_argument("message of " + std::to_string(len) + " bytes exceeds max_message_bytes " +
                                    std::to_string(max_message_bytes));
  auto format = command_format(content_type);
  if (!format) return format.status();
  return decode_command(domain, std::string_view(static_cast<const char*>(payload), len), *format, default_id);
}

}  // namespace orderflow::connectors::kafka
