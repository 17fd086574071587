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
#include <google/protobuf/util/json_util.h>
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "connectors/command_codec.h"
#include "connectors/kafka.h"
#include "connectors/kafka_client.h"
#include "graph/log.h"
#include "nodes/domain.h"
#include "nodes/nodes.h"

namespace orderflow::connectors {
namespace {

using TpKey = std::pair<std::string, int32_t>;

std::string tp_name(const TpKey& k) { return k.first + "[" + std::to_string(k.second) + "]"; }

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
  KafkaSourceNode(Pipeline& p, const graph::NodeDef& def, CommandSink* sink)
      : RuntimeNode(def.id, "kafka_source", p.metrics().probe(def.id, "kafka_source")),
        sink_(sink),
        brokers_(def.get_string("brokers")),
        topics_(split_list(def.get_string("topics"))),
        group_(def.get_string("group")),
        dlq_topic_(def.get_string("dead_letter_topic")),
        max_message_bytes_(static_cast<size_t>(def.get_int("max_message_bytes"))),
        max_in_flight_(def.get_int("max_in_flight")),
        commit_interval_ms_(static_cast<int>(def.get_int("commit_interval_ms"))),
        partitions_(static_cast<int>(def.get_int("partitions"))),
        properties_text_(def.get_string("properties")) {}

  ~KafkaSourceNode() override { stop(); }

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
    };
    // Consumer-only properties do not apply to the dead-letter producer.
    kafka::Properties producer_user;
    for (const auto& kv : *user)
      if (kv.first.rfind("security.", 0) == 0 || kv.first.rfind("sasl.", 0) == 0 || kv.first.rfind("ssl.", 0) == 0)
        producer_user.push_back(kv);
    auto pconf = kafka::make_conf(*bootstrap, producer_defaults, producer_user);
    if (!pconf) return pconf.status();
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
    bool skipping = false;                         // inside a run of skipped (rewound) offsets
  };
  // A command waiting to be submitted (the pipeline was full) or resubmitted (store error).
  struct Pending {
    TpKey tp;
    uint64_t generation = 0;
    int64_t offset = 0;
    std::shared_ptr<const v1::Command> command;
    std::string key;  // the message's, for a dead letter after a refusal
    std::chrono::steady_clock::time_point not_before;
  };
  // Handed from the commit writer's thread to ours.
  struct Finished {
    TpKey tp;
    uint64_t generation = 0;
    int64_t offset = 0;
    Status status;
    std::shared_ptr<const v1::Command> command;  // kept for a resubmission
    std::string key;
  };
  // Opaque of a dead-letter message until its delivery report.
  struct DeadLetter {
    TpKey tp;
    uint64_t generation = 0;
    int64_t offset = 0;
    std::string key, value, reason;
    std::vector<std::pair<std::string, std::string>> headers;
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
      handle(m);
      rd_kafka_message_destroy(m);
    }
    // Shutdown: what finished is committed; the rest is redelivered to the next owner.
    apply_finished();
    rd_kafka_flush(dlq_, 5000);
    rd_kafka_poll(dlq_, 0);
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

    std::string_view value(static_cast<const char*>(m->payload), m->payload ? m->len : 0);
    std::string content_type;
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const void* v = nullptr;
      size_t n = 0;
      if (rd_kafka_header_get_last(hdrs, "content-type", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR && v != nullptr)
        content_type.assign(static_cast<const char*>(v), n);
    }
    auto reject = [&](const std::string& reason) { dead_letter(tp, part.generation, m, reason); };
    if (m->payload == nullptr || m->len == 0) return reject("empty message");
    if (m->len > max_message_bytes_)
      return reject("message of " + std::to_string(m->len) + " bytes exceeds max_message_bytes " +
                    std::to_string(max_message_bytes_));
    auto format = command_format(content_type);
    if (!format) return reject(format.status().message());
    // A command without an id gets one from its place in the log: redeliveries keep it.
    auto cmd = decode_command(value, *format,
                              "kafka:" + tp.first + ":" + std::to_string(tp.second) + ":" + std::to_string(m->offset));
    if (!cmd) return reject(cmd.status().message());
    Pending p;
    p.tp = tp;
    p.generation = part.generation;
    p.offset = m->offset;
    p.command = std::make_shared<const v1::Command>(std::move(*cmd));
    if (m->key) p.key.assign(static_cast<const char*>(m->key), m->key_len);
    pending_.push_back(std::move(p));
    submit_pending();
  }

  // Submits waiting commands in arrival order until the pipeline says it is full.
  void submit_pending() {
    if (!intake_) {  // stopping: the pipeline takes nothing new; the next owner redelivers these
      for (const auto& p : pending_) abandon(p.tp, p.generation);
      pending_.clear();
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    while (!pending_.empty()) {
      Pending& p = pending_.front();
      if (!current(p.tp, p.generation)) {  // revoked meanwhile: already accounted for
        pending_.pop_front();
        continue;
      }
      if (p.not_before > now) return;
      const TpKey tp = p.tp;
      const uint64_t gen = p.generation;
      const int64_t offset = p.offset;
      auto env = make_envelope(*p.command, [this, tp, gen, offset, command = p.command, key = p.key](const Outcome& o) {
        std::lock_guard<std::mutex> lock(finished_mu_);
        finished_.push_back(Finished{tp, gen, offset, o.status, command, key});
      });
      Status s = sink_->submit(env);
      if (s.code() == StatusCode::kUnavailable) return;  // full: retry on the next turn
      if (!s) {
        // Malformed in a way only the route sees: dead-letter it like a decode failure.
        std::string value;
        p.command->SerializeToString(&value);
        const std::string key = p.key;
        pending_.pop_front();
        dead_letter_command(tp, gen, offset, key, std::move(value), "application/x-protobuf", s.message());
        continue;
      }
      pending_.pop_front();
    }
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
        mark_done(f.tp, f.generation, f.offset);
        continue;
      }
      // Not durable (store trouble, conflicts beyond retries, shutting down): try again
      // later; the partition's committed offset stays before it meanwhile.
      probe().add_error("command " + f.command->command_id() + " from " + tp_name(f.tp) + "@" +
                        std::to_string(f.offset) + ": " + f.status.to_string());
      if (!intake_) {  // stopping: leave it uncommitted, the next owner redelivers it
        abandon(f.tp, f.generation);
        continue;
      }
      ++resubmitted_;
      Pending p;
      p.tp = f.tp;
      p.generation = f.generation;
      p.offset = f.offset;
      p.command = std::move(f.command);
      p.key = std::move(f.key);
      p.not_before = now + std::chrono::milliseconds(100);
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
    auto* dl = new DeadLetter;
    dl->tp = tp;
    dl->generation = generation;
    dl->offset = m->offset;
    if (m->key) dl->key.assign(static_cast<const char*>(m->key), m->key_len);
    if (m->payload) dl->value.assign(static_cast<const char*>(m->payload), std::min(m->len, max_message_bytes_));
    dl->reason = reason;
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* name = nullptr;
      const void* v = nullptr;
      size_t n = 0;
      for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i)
        dl->headers.emplace_back(name, v ? std::string(static_cast<const char*>(v), n) : std::string());
    }
    if (m->len > max_message_bytes_) dl->headers.push_back({"x-orderflow-truncated", std::to_string(m->len)});
    produce_dead_letter(dl);
  }

  // A decoded command the pipeline refused, re-encoded as `value` (of `content_type`).
  void dead_letter_command(const TpKey& tp, uint64_t generation, int64_t offset, const std::string& key,
                           std::string value, const char* content_type, const std::string& reason) {
    auto* dl = new DeadLetter{tp, generation, offset, key, std::move(value), reason, {}};
    dl->headers.push_back({"content-type", content_type});
    produce_dead_letter(dl);
  }

  void produce_dead_letter(DeadLetter* dl) {
    probe().add_error("dead-lettered " + tp_name(dl->tp) + "@" + std::to_string(dl->offset) + ": " + dl->reason);
    rd_kafka_headers_t* h = rd_kafka_headers_new(dl->headers.size() + 4);
    for (const auto& [k, v] : dl->headers) rd_kafka_header_add(h, k.c_str(), -1, v.data(), static_cast<ssize_t>(v.size()));
    auto add = [&](const char* k, const std::string& v) {
      rd_kafka_header_add(h, k, -1, v.data(), static_cast<ssize_t>(v.size()));
    };
    add("x-orderflow-error", dl->reason);
    add("x-orderflow-source-topic", dl->tp.first);
    add("x-orderflow-source-partition", std::to_string(dl->tp.second));
    add("x-orderflow-source-offset", std::to_string(dl->offset));
    for (;;) {
      rd_kafka_resp_err_t e = rd_kafka_producev(
          dlq_, RD_KAFKA_V_TOPIC(dlq_topic_.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_KEY(dl->key.data(), dl->key.size()), RD_KAFKA_V_VALUE(dl->value.data(), dl->value.size()),
          RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(dl), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return;  // headers now owned by the message
      if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(dlq_, 50);
        continue;
      }
      rd_kafka_headers_destroy(h);
      // Cannot even queue it: keep the offset unfinished (never lost), count the error.
      probe().add_error(kafka::to_status(e, "dead-letter produce").to_string());
      abandon(dl->tp, dl->generation);
      delete dl;
      return;
    }
  }

  static void dlq_delivery_cb(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<KafkaSourceNode*>(opaque);
    std::unique_ptr<DeadLetter> dl(static_cast<DeadLetter*>(m->_private));
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      self->probe().add_error(kafka::to_status(m->err, "dead-letter delivery").to_string());
      if (self->running_) return self->produce_dead_letter(dl.release());  // try again
      self->abandon(dl->tp, dl->generation);
      return;
    }
    ++self->dead_lettered_;
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

  void update_gauges(bool paused) {
    int64_t total = 0;
    for (auto& [tp, part] : parts_) {
      int64_t lo = 0, hi = 0;
      if (rd_kafka_get_watermark_offsets(consumer_, tp.first.c_str(), tp.second, &lo, &hi) !=
          RD_KAFKA_RESP_ERR_NO_ERROR)
        continue;
      const int64_t from = part.done_until >= 0 ? part.done_until : (part.committed >= 0 ? part.committed : lo);
      const int64_t lag = std::max<int64_t>(0, hi - from);
      total += lag;
      probe().set_gauge("lag." + tp_name(tp), static_cast<double>(lag));
    }
    probe().set_gauge("consumer_lag", static_cast<double>(total));
    probe().set_gauge("partitions", static_cast<double>(parts_.size()));
    probe().set_gauge("paused", paused ? 1 : 0);
    probe().set_gauge("in_flight", static_cast<double>(in_flight_.load()));
    probe().set_gauge("dead_lettered", static_cast<double>(dead_lettered_));
    probe().set_gauge("rejected", static_cast<double>(rejected_));
    probe().set_gauge("resubmitted", static_cast<double>(resubmitted_));
    // Also the counters set where they change, so every gauge is there (at 0) from the start.
    probe().set_gauge("pauses", static_cast<double>(pauses_));
    probe().set_gauge("redelivered_skipped", static_cast<double>(redelivered_skipped_));
  }

  CommandSink* sink_;
  const std::string brokers_;
  const std::vector<std::string> topics_;
  const std::string group_, dlq_topic_;
  const size_t max_message_bytes_;
  const int64_t max_in_flight_;
  const int commit_interval_ms_;
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
  uint64_t dead_lettered_ = 0, rejected_ = 0, resubmitted_ = 0;

  std::mutex finished_mu_;
  std::vector<Finished> finished_;  // guarded by finished_mu_
};

}  // namespace

Result<std::unique_ptr<RuntimeNode>> make_kafka_source(const graph::NodeDef& def, Pipeline& p, CommandSink* sink) {
  return std::unique_ptr<RuntimeNode>(new KafkaSourceNode(p, def, sink));
}

}  // namespace orderflow::connectors
