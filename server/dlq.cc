#include "server/dlq.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "connectors/kafka.h"
#include "connectors/kafka_client.h"
#include "connectors/url.h"
#include "graph/json.h"
#include "server/admin_client.h"
#include "server/data_dir.h"
#include "server/dlq_core.h"


namespace orderflow::server {
namespace {

namespace kafka = connectors::kafka;
using Clock = std::chrono::steady_clock;
using dlq::DeadLetter;
using dlq::Headers;
using dlq::Target;
using dlq::where;

// Room above max_message_bytes for a replayed message's key and headers (as the source's
// dead-letter producer keeps).
constexpr size_t kProducerHeadroom = 64 * 1024;

// ---- Showing bytes that came from anyone ------------------------------------------

// The code point of the UTF-8 sequence at s[i] and its length; 0 when the bytes there are
// not UTF-8 (overlong forms, surrogates and values past U+10FFFF included).
size_t next_utf8(std::string_view s, size_t i, uint32_t* cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  // The lead byte gives the length, the payload bits and the least value that needs it.
  const size_t n = (b0 & 0xe0) == 0xc0 ? 2 : (b0 & 0xf0) == 0xe0 ? 3 : (b0 & 0xf8) == 0xf0 ? 4 : 0;
  if (n == 0) return 0;
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  const uint32_t min = kMin[n];
  *cp = b0 & (0x7fu >> n);
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xc0) != 0x80) return 0;
    *cp = (*cp << 6) | (b & 0x3f);
  }
  if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff)) return 0;
  return n;
}

bool is_utf8(std::string_view s) {
  uint32_t cp = 0;
  for (size_t i = 0, n = 0; i < s.size(); i += n)
    if ((n = next_utf8(s, i, &cp)) == 0) return false;
  return true;
}

// Code points a terminal acts on instead of showing: C0 and C1 controls, DEL, and the marks
// that reorder or break lines (bidirectional marks, embeddings, overrides and isolates; the
// line and paragraph separators).
bool is_control(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

// `s` as one terminal line: controls as \n, \r, \t, \xNN or \uNNNN, bytes that are not
// UTF-8 as \xNN; everything else as it is.
std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  char buf[16];
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    const size_t n = next_utf8(s, i, &cp);
    if (n == 0) {
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(s[i]));
      out += buf;
      ++i;
      continue;
    }
    if (!is_control(cp)) {
      out.append(s.substr(i, n));
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else {
      std::snprintf(buf, sizeof buf, cp < 0x80 ? "\\x%02x" : "\\u%04x", static_cast<unsigned>(cp));
      out += buf;
    }
    i += n;
  }
  return out;
}

// `s` with each byte that is not UTF-8 replaced by U+FFFD: JSON strings hold text only
// (the JSON writer escapes the controls).
std::string as_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    const size_t n = next_utf8(s, i, &cp);
    if (n == 0) {
      out += "\xef\xbf\xbd";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string hex(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char c : s) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

// 16 bytes a line: offset, hex, the printable ASCII bytes (others as '.').
std::string hex_dump(std::string_view s) {
  std::string out;
  char buf[32];
  for (size_t at = 0; at < s.size(); at += 16) {
    std::snprintf(buf, sizeof buf, "  %08zx ", at);
    out += buf;
    std::string ascii;
    for (size_t i = at; i < at + 16; ++i) {
      if (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::snprintf(buf, sizeof buf, " %02x", c);
        out += buf;
        ascii.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '.');
      } else {
        out += "   ";
      }
    }
    out += "  |" + ascii + "|\n";
  }
  return out;
}

bool is_json(const std::string& s) {
  google::protobuf::Value v;
  return google::protobuf::util::JsonStringToMessage(s, &v).ok();
}

std::string utc_time(int64_t ms) {
  if (ms < 0) return "-";
  const time_t t = static_cast<time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int ms_until(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 1, INT32_MAX));
}

// A consumer over the dead-letter topic that assigns partitions itself, joins no group and
// never commits, so reading changes nothing. Owned by one command; not thread-safe.
class Reader {
 public:
  explicit Reader(const Target& target) : target_(target) {}
  ~Reader() {
    if (rk_ == nullptr) return;
    rd_kafka_consumer_close(rk_);
    rd_kafka_destroy(rk_);
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  Status open() {
    // Nothing of the source's group applies, and nothing may commit: a group id with
    // auto-commit would store the offsets this reader was assigned.
    kafka::Properties user;
    for (const auto& kv : target_.properties)
      if (kv.first != "group.id" && kv.first != "group.instance.id" && kv.first != "enable.auto.commit" &&
          kv.first != "enable.auto.offset.store" && kv.first != "auto.offset.reset")
        user.push_back(kv);
    const kafka::Properties defaults = {
        {"client.id", "orderflow-dlq"},
        // librdkafka's consumer wants a group id even for assign() (_UNKNOWN_GROUP without
        // one); this one never joins (no subscribe) and never commits.
        {"group.id", "orderflow-dlq-reader"},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "true"},  // the end of a partition, also past a gap
        {"auto.offset.reset", "error"},    // an offset gone meanwhile is an error, not a jump
        {"allow.auto.create.topics", "false"},
        {"fetch.wait.max.ms", "100"},
        {"log_level", "2"},  // failures come back as one line, not a log
    };
    auto conf = kafka::make_conf(target_.brokers, defaults, user);
    if (!conf) return conf.status();
    char err[512];
    rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, *conf, err, sizeof err);
    if (rk_ == nullptr) {
      rd_kafka_conf_destroy(*conf);
      return Status::invalid_argument(std::string("cannot create a Kafka consumer: ") + err);
    }
    rd_kafka_poll_set_consumer(rk_);
    return Status::ok();
  }

  // The dead-letter topic's partition ids, ascending; kNotFound when the brokers do not
  // know the topic.
  Result<std::vector<int32_t>> partitions(Clock::time_point deadline) { return partitions_of(target_.topic, deadline); }

  // The same for any topic. Asks for every topic's metadata: a request naming the topic
  // makes brokers that auto-create topics (and librdkafka's mock cluster) create it.
  Result<std::vector<int32_t>> partitions_of(const std::string& topic, Clock::time_point deadline) {
    Status last;
    do {
      const rd_kafka_metadata_t* md = nullptr;
      rd_kafka_resp_err_t e = rd_kafka_metadata(rk_, 1, nullptr, &md, ms_until(deadline));
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        e = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        std::vector<int32_t> ids;
        for (int i = 0; i < md->topic_cnt; ++i) {
          if (topic != md->topics[i].topic) continue;
          e = md->topics[i].err;
          for (int p = 0; p < md->topics[i].partition_cnt; ++p) ids.push_back(md->topics[i].partitions[p].id);
        }
        rd_kafka_metadata_destroy(md);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
          std::sort(ids.begin(), ids.end());
          return ids;
        }
      }
      if (e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        return Status::not_found("no topic " + topic + " on " + target_.brokers);  // they answered
      last = kafka::to_status(e, "topic " + topic + " on " + target_.brokers);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    } while (Clock::now() < deadline);
    return last;
  }

  // Reads `partition` from `from` (or its first offset) up to its end as of the call, at
  // most `max` records (0: all), onto *out. *low / *high: the offsets it holds, [low, high).
  Status read(int32_t partition, int64_t from, size_t max, Clock::time_point deadline, std::vector<DeadLetter>* out,
              int64_t* low = nullptr, int64_t* high = nullptr) {
    const std::string name = target_.topic + "/" + std::to_string(partition);
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(rk_, target_.topic.c_str(), partition, &lo, &hi, ms_until(deadline));
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka::to_status(e, "offsets of " + name + " on " + target_.brokers);
    if (low != nullptr) *low = lo;
    if (high != nullptr) *high = hi;
    int64_t at = std::max(from, lo);
    if (at >= hi) return Status::ok();
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, target_.topic.c_str(), partition)->offset = at;
    e = rd_kafka_assign(rk_, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka::to_status(e, "assign " + name);
    Status result;
    std::string trouble;  // the client's own errors (a broker down): it retries them
    size_t got = 0;
    for (bool done = false; !done;) {
      if (Clock::now() >= deadline) {
        result = Status::unavailable("timed out reading " + name + " at offset " + std::to_string(at) + " on " +
                                     target_.brokers + (trouble.empty() ? "" : ": " + trouble));
        break;
      }
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, 100);
      if (m == nullptr) continue;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        done = m->partition == partition;
      } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        Status s = kafka::to_status(m->err, "reading " + name);
        if (m->rkt != nullptr) {  // about this partition: no retry helps
          result = s;
          done = true;
        } else {
          trouble = s.message();
        }
      } else if (m->partition == partition) {
        if (m->offset >= hi) {
          done = true;
        } else {
          out->push_back(dead_letter_of(m));
          at = m->offset + 1;
          done = (max > 0 && ++got >= max) || at >= hi;
        }
      }
      rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(rk_, nullptr);
    return result;
  }

 private:
  static DeadLetter dead_letter_of(const rd_kafka_message_t* m) {
    DeadLetter d;
    d.partition = m->partition;
    d.offset = m->offset;
    rd_kafka_timestamp_type_t type;
    const int64_t ts = rd_kafka_message_timestamp(m, &type);
    d.timestamp_ms = type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts;
    d.has_key = m->key != nullptr;
    if (m->key != nullptr) d.key.assign(static_cast<const char*>(m->key), m->key_len);
    if (m->payload != nullptr) d.value.assign(static_cast<const char*>(m->payload), m->len);
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) d.headers = kafka::headers_of(hdrs);
    d.about = kafka::read_dead_letter_headers(d.headers, d.value.size());
    return d;
  }

  const Target& target_;
  rd_kafka_t* rk_ = nullptr;
};

// An idempotent producer for replayed messages. Owned by one command; not thread-safe.
class Replayer {
 public:
  struct Sent {
    Status status = Status::unavailable("delivery not confirmed");
    int32_t partition = -1;
    int64_t offset = -1;
  };

  Replayer(const Target& target, int64_t timeout_s) : target_(target), timeout_s_(timeout_s) {}
  ~Replayer() {
    if (rk_ == nullptr) return;
    // Whatever is still queued (a flush timed out) is dropped rather than waited for.
    rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(rk_, 0);
    rd_kafka_destroy(rk_);
  }
  Replayer(const Replayer&) = delete;
  Replayer& operator=(const Replayer&) = delete;

  Status open() {
    const kafka::Properties defaults = {
        {"client.id", "orderflow-dlq-replay"},
        {"enable.idempotence", "true"},
        {"linger.ms", "5"},
        {"log_level", "2"},
        {"message.timeout.ms", std::to_string(timeout_s_ * 1000)},
        {"message.max.bytes",
         std::to_string(std::clamp<size_t>(target_.max_message_bytes + kProducerHeadroom, 1000000, 1000000000))},
    };
    auto conf = kafka::make_conf(target_.brokers, defaults, kafka::producer_properties(target_.properties));
    if (!conf) return conf.status();
    rd_kafka_conf_set_dr_msg_cb(*conf, &Replayer::delivered);
    char err[512];
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, *conf, err, sizeof err);
    if (rk_ == nullptr) {
      rd_kafka_conf_destroy(*conf);
      return Status::invalid_argument(std::string("cannot create a Kafka producer: ") + err);
    }
    return Status::ok();
  }

  // Queues one message; *sent (which must stay put until flush()) gets its outcome.
  Status send(const std::string& topic, const DeadLetter& d, const Headers& headers, Sent* sent) {
    rd_kafka_headers_t* h = rd_kafka_headers_new(headers.size());
    for (const auto& [k, v] : headers) rd_kafka_header_add(h, k.c_str(), -1, v.data(), static_cast<ssize_t>(v.size()));
    // An empty key goes back as no key: the source writes a keyless message's copy with an
    // empty one.
    const void* key = d.has_key && !d.key.empty() ? d.key.data() : nullptr;
    const size_t key_size = key != nullptr ? d.key.size() : 0;
    for (;;) {
      rd_kafka_resp_err_t e = rd_kafka_producev(rk_, RD_KAFKA_V_TOPIC(topic.c_str()),
                                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_size),
                                                RD_KAFKA_V_VALUE(const_cast<char*>(d.value.data()), d.value.size()),
                                                RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(sent), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::ok();  // the message owns the headers
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_headers_destroy(h);
        return kafka::to_status(e, "produce to " + topic);
      }
      rd_kafka_poll(rk_, 50);
    }
  }

  // Waits for every delivery report (the messages time out after the --timeout).
  void flush() { rd_kafka_flush(rk_, static_cast<int>(timeout_s_ * 1000 + 2000)); }

 private:
  static void delivered(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
    auto* sent = static_cast<Sent*>(m->_private);
    sent->status = kafka::to_status(m->err, "delivery to " + std::string(rd_kafka_topic_name(m->rkt)));
    sent->partition = m->partition;
    sent->offset = m->offset;
  }

  const Target& target_;
  const int64_t timeout_s_;
  rd_kafka_t* rk_ = nullptr;
};

// 16 hex digits a byte pair back to bytes; false on anything else.
bool unhex(const std::string& h, std::string* out) {
  if (h.size() % 2 != 0) return false;
  out->clear();
  for (size_t i = 0; i < h.size(); i += 2) {
    auto v = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
    const int hi = v(h[i]), lo = v(h[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

}  // namespace

// ---- Shared with the admin API (server/dlq_core.h) --------------------------------

namespace dlq {

std::string where(const std::string& topic, int32_t partition, int64_t offset) {
  return topic + "/" + std::to_string(partition) + "/" + std::to_string(offset);
}

Result<Target> target_of(const graph::GraphDef& def, const graph::KindRegistry& registry, const graph::NodeDef& node,
                         const std::string& brokers_flag, bool in_server) {
  Target out;
  const connectors::KafkaSourceOptions o = connectors::kafka_source_options().parse(node);
  const Domain* domain = registry.domain(def.domain);
  out.node_id = node.id;
  out.topic = kafka::with_domain(o.dead_letter_topic, domain != nullptr ? domain->name() : def.domain);
  out.max_message_bytes = static_cast<size_t>(o.max_message_bytes);
  const std::string brokers = brokers_flag.empty() ? o.brokers : brokers_flag;
  if (kafka::is_mock(brokers) && !in_server) {
    if (brokers_flag.empty())
      return Status::invalid_argument(
          "kafka_source '" + node.id + "' has brokers '" + brokers +
          "', a mock cluster inside the server process: give --brokers with the address the server logged "
          "('kafka source started ... brokers=...'), or --server with the server's URL");
    return Status::invalid_argument("--brokers " + brokers +
                                    " would start an empty mock cluster here: give the address of the running one");
  }
  auto bootstrap = kafka::resolve_brokers(brokers);
  if (!bootstrap) return Status::invalid_argument(bootstrap.status().message());
  out.brokers = *bootstrap;
  auto props = kafka::parse_properties(o.properties);
  if (!props) return Status::invalid_argument("kafka_source '" + node.id + "' properties: " + props.status().message());
  out.properties = std::move(*props);
  return out;
}

Status read_dead_letters(const Target& target, const Selection& sel, std::chrono::seconds timeout,
                         std::vector<DeadLetter>* out, bool* more) {
  const auto deadline = Clock::now() + timeout;
  Reader reader(target);
  if (auto s = reader.open(); !s) return s;
  auto parts = reader.partitions(deadline);
  if (!parts) return parts.status();
  std::vector<int32_t> chosen = *parts;
  if (sel.partition) {
    if (std::find(parts->begin(), parts->end(), *sel.partition) == parts->end())
      return Status::not_found("topic " + target.topic + " has no partition " + std::to_string(*sel.partition) +
                               " (it has " + std::to_string(parts->size()) + ")");
    chosen = {*sel.partition};
  }
  const size_t limit = sel.limit;
  for (int32_t p : chosen) {
    if (limit > 0 && out->size() > limit) break;
    // One more than the limit tells whether there are more.
    const size_t want = limit > 0 ? limit + 1 - out->size() : 0;
    if (auto s = reader.read(p, sel.from_offset, want, deadline, out); !s) return s;
  }
  *more = limit > 0 && out->size() > limit;
  if (*more) out->resize(limit);
  return Status::ok();
}

Result<DeadLetter> read_dead_letter(const Target& target, int32_t partition, int64_t offset,
                                    std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  Reader reader(target);
  if (auto s = reader.open(); !s) return s;
  auto parts = reader.partitions(deadline);
  if (!parts) return parts.status();
  if (std::find(parts->begin(), parts->end(), partition) == parts->end())
    return Status::not_found("topic " + target.topic + " has no partition " + std::to_string(partition) + " (it has " +
                             std::to_string(parts->size()) + ")");
  std::vector<DeadLetter> found;
  int64_t lo = 0, hi = 0;
  if (auto s = reader.read(partition, offset, 1, deadline, &found, &lo, &hi); !s) return s;
  if (!found.empty() && found.front().offset == offset) return std::move(found.front());
  const std::string holds =
      lo >= hi ? "it is empty" : "it holds offsets " + std::to_string(lo) + " to " + std::to_string(hi - 1);
  return Status::not_found("no dead letter at " + where(target.topic, partition, offset) + " (" + holds + ")");
}

std::string as_text(const std::string& bytes) { return as_utf8(bytes); }

bool is_parked(const DeadLetter& d) {
  return d.about.from_source && d.about.reason.rfind(kafka::kParkedReasonPrefix, 0) == 0;
}

// Empty when the dead letter can be replayed to `to` (its source topic when empty), else
// why not: only the original message, whole, goes back.
std::string why_not_replayable(const DeadLetter& d, const std::string& to, const std::string& dlq_topic) {
  const auto& a = d.about;
  if (!a.from_source)
    return std::string("it was not written by a kafka_source (no ") + kafka::kDeadLetterError + " header)";
  if (a.truncated)
    return "it is truncated (" + std::to_string(d.value.size()) + " of the original's " +
           (a.original_size >= 0 ? std::to_string(a.original_size) : std::string("?")) +
           " bytes): it is not the original message";
  if (a.headers_dropped)
    return "the original message's headers did not fit in it (its content-type among them): it is not the "
           "original message";
  if (d.value.empty()) return "the original message was empty: nothing to replay";
  const std::string& topic = to.empty() ? a.source_topic : to;
  if (topic.empty())
    return std::string("it names no source topic (no ") + kafka::kDeadLetterSourceTopic + "): give --to";
  if (topic == dlq_topic) return "its target " + topic + " is the dead-letter topic itself";
  return std::string();
}

void describe(JsonWriter& w, const std::string& topic, const DeadLetter& d) {
  const auto& a = d.about;
  w.field("topic", topic).field("partition", static_cast<int64_t>(d.partition)).field("offset", d.offset);
  w.key("timestamp_ms");
  if (d.timestamp_ms >= 0)
    w.value(d.timestamp_ms);
  else
    w.raw("null");
  w.key("key");
  if (d.has_key)
    w.value(as_utf8(d.key));
  else
    w.raw("null");
  w.field("reason", as_utf8(a.reason));
  w.key("source");
  if (a.source_topic.empty()) {
    w.raw("null");
  } else {
    w.begin_object()
        .field("topic", as_utf8(a.source_topic))
        .field("partition", static_cast<int64_t>(a.source_partition))
        .field("offset", a.source_offset)
        .end_object();
  }
  w.field("size", static_cast<uint64_t>(d.value.size())).field("original_size", a.original_size);
  w.field("truncated", a.truncated).field("headers_dropped", a.headers_dropped);
  w.field("from_source", a.from_source);
  w.field("kind", is_parked(d) ? "parked" : "dead_letter");
  const std::string why_not = why_not_replayable(d, "", topic);
  w.field("replayable", why_not.empty());
  if (!why_not.empty()) w.field("not_replayable_because", why_not);
}

void describe_in_full(JsonWriter& w, const std::string& topic, const DeadLetter& d, bool force_hex) {
  describe(w, topic, d);
  w.key("headers").begin_array();
  for (const auto& [k, v] : d.headers) w.begin_object().field("name", as_utf8(k)).field("value", as_utf8(v)).end_object();
  w.end_array();
  if (is_utf8(d.value) && !force_hex)
    w.field("value", d.value);
  else
    w.field("value_hex", hex(d.value));
}

bool parse_described(const std::string& json, DeadLetter* out) {
  google::protobuf::Struct st;
  if (!google::protobuf::util::JsonStringToMessage(json, &st).ok()) return false;
  return parse_described(st, out);
}

bool parse_described(const google::protobuf::Struct& st, DeadLetter* out) {
  const auto& f = st.fields();
  auto num = [&](const char* k, int64_t missing) -> int64_t {
    auto it = f.find(k);
    return it != f.end() && it->second.has_number_value() ? static_cast<int64_t>(it->second.number_value()) : missing;
  };
  auto text = [&](const google::protobuf::Map<std::string, google::protobuf::Value>& m, const char* k,
                  bool* present = nullptr) -> std::string {
    auto it = m.find(k);
    const bool has = it != m.end() && it->second.has_string_value();
    if (present != nullptr) *present = has;
    return has ? it->second.string_value() : std::string();
  };
  auto flag = [&](const char* k) {
    auto it = f.find(k);
    return it != f.end() && it->second.bool_value();
  };
  if (f.find("partition") == f.end() || f.find("offset") == f.end()) return false;
  DeadLetter d;
  d.partition = static_cast<int32_t>(num("partition", 0));
  d.offset = num("offset", 0);
  d.timestamp_ms = num("timestamp_ms", -1);
  d.key = text(f, "key", &d.has_key);
  auto& a = d.about;
  a.reason = text(f, "reason");
  a.from_source = f.find("from_source") == f.end() ? !a.reason.empty() : flag("from_source");
  if (auto it = f.find("source"); it != f.end() && it->second.has_struct_value()) {
    const auto& s = it->second.struct_value().fields();
    a.source_topic = text(s, "topic");
    if (auto p = s.find("partition"); p != s.end()) a.source_partition = static_cast<int32_t>(p->second.number_value());
    if (auto o = s.find("offset"); o != s.end()) a.source_offset = static_cast<int64_t>(o->second.number_value());
  }
  a.original_size = num("original_size", -1);
  a.truncated = flag("truncated");
  a.headers_dropped = flag("headers_dropped");
  if (auto it = f.find("headers"); it != f.end() && it->second.has_list_value()) {
    for (const auto& h : it->second.list_value().values()) {
      if (!h.has_struct_value()) continue;
      const auto& hf = h.struct_value().fields();
      d.headers.push_back({text(hf, "name"), text(hf, "value")});
    }
  }
  bool has_value = false;
  d.value = text(f, "value", &has_value);
  if (!has_value) {
    const std::string hx = text(f, "value_hex", &has_value);
    if (has_value && !unhex(hx, &d.value)) return false;
    if (!has_value) d.value.assign(static_cast<size_t>(std::max<int64_t>(0, num("size", 0))), '\0');  // size only
  }
  *out = std::move(d);
  return true;
}

Status replay(const Target& target, const std::vector<DeadLetter>& found, const std::string& to, bool dry_run,
              std::chrono::seconds timeout, std::vector<Replayed>* out) {
  const auto deadline = Clock::now() + timeout;
  Reader reader(target);
  if (auto s = reader.open(); !s) return s;
  // Only to topics that exist: a producer would have brokers that auto-create topics make
  // one of a mistyped --to.
  std::map<std::string, std::string> absent;  // topic -> why it takes nothing ("" when it does)
  for (const auto& d : found) {
    const std::string topic = to.empty() ? d.about.source_topic : to;
    if (topic.empty() || absent.count(topic) > 0) continue;
    auto parts = reader.partitions_of(topic, deadline);
    if (parts)
      absent[topic] = "";
    else if (parts.status().code() == StatusCode::kNotFound)
      absent[topic] = parts.status().message();
    else
      return parts.status();
  }
  std::vector<size_t> go;
  out->clear();
  for (const auto& d : found) {
    Replayed r;
    r.partition = d.partition;
    r.offset = d.offset;
    r.topic = to.empty() ? d.about.source_topic : to;
    r.refused = why_not_replayable(d, to, target.topic);
    if (r.refused.empty()) r.refused = absent[r.topic];
    if (r.refused.empty()) go.push_back(out->size());
    out->push_back(std::move(r));
  }
  if (dry_run || go.empty()) return Status::ok();
  Replayer producer(target, timeout.count());
  if (auto s = producer.open(); !s) return s;
  std::deque<Replayer::Sent> sent;  // stable addresses for the delivery reports
  for (size_t i : go) {
    const DeadLetter& d = found[i];
    Headers headers;
    for (const auto& h : d.about.original)
      if (h.first != kafka::kReplayedFrom) headers.push_back(h);
    headers.push_back({kafka::kReplayedFrom, where(target.topic, d.partition, d.offset)});
    sent.emplace_back();
    if (auto s = producer.send((*out)[i].topic, d, headers, &sent.back()); !s) sent.back().status = s;
  }
  producer.flush();
  for (size_t k = 0; k < go.size(); ++k) {
    Replayed& r = (*out)[go[k]];
    r.delivery = sent[k].status;
    r.to_partition = sent[k].partition;
    r.to_offset = sent[k].offset;
  }
  return Status::ok();
}

}  // namespace dlq

namespace {

struct DlqFlags {
  std::string file, brokers, source, to;
  int64_t timeout_s = 10;
  std::optional<int32_t> partition;
  std::optional<int64_t> offset, limit;
  int64_t from_offset = 0;
  bool json = false, hex = false, all = false, dry_run = false;
  ServerAccess server;
};

int fail(const std::string& msg) {
  std::fprintf(stderr, "orderflow dlq: %s\n", msg.c_str());
  return 1;
}

int usage(const std::string& msg) {
  std::fprintf(stderr, "orderflow dlq: %s\n", msg.c_str());
  return 2;
}

// 0 with *out filled, or the exit code (the reason printed).
int resolve_target(const DlqFlags& flags, const graph::KindRegistry& registry, Target* out) {
  graph::GraphDef def;
  if (!load_graph(flags.file, registry, &def)) return 2;
  std::vector<const graph::NodeDef*> sources;
  std::string ids;
  for (const auto& n : def.nodes) {
    if (n.kind != "kafka_source") continue;
    ids += (ids.empty() ? "" : ", ") + n.id;
    if (flags.source.empty() || n.id == flags.source) sources.push_back(&n);
  }
  if (sources.empty())
    return usage(ids.empty() ? "no kafka_source in " + flags.file
                             : "no kafka_source '" + flags.source + "' in " + flags.file + " (it has " + ids + ")");
  if (sources.size() > 1)
    return usage("several kafka_sources in " + flags.file + " (" + ids + "): name one with --source");
  auto t = dlq::target_of(def, registry, *sources.front(), flags.brokers, false);
  if (!t) return usage(t.status().message());
  *out = std::move(*t);
  return 0;
}

// With --server: 0 when the flags suit it (the token read), else the exit code.
int check_server(DlqFlags& flags) {
  if (!flags.file.empty() || !flags.brokers.empty())
    return usage("--server asks the running server: give no GRAPH and no --brokers with it");
  if (std::string why = resolve_access(&flags.server); !why.empty()) return usage(why);
  flags.server.timeout_s = flags.timeout_s + 20;
  return 0;
}

std::string node_query(const DlqFlags& flags) {
  return flags.source.empty() ? std::string() : "node=" + connectors::percent_encode(flags.source);
}

std::string key_text(const DeadLetter& d) { return d.has_key && !d.key.empty() ? printable(d.key) : "-"; }

std::string source_text(const DeadLetter& d) {
  const auto& a = d.about;
  if (a.source_topic.empty()) return "-";
  return printable(a.source_topic) + "/" + (a.source_partition >= 0 ? std::to_string(a.source_partition) : "?") + "/" +
         (a.source_offset >= 0 ? std::to_string(a.source_offset) : "?");
}

void print_list(const DlqFlags& flags, const Target& target, const std::vector<DeadLetter>& found, bool more) {
  if (flags.json) {
    JsonWriter w;
    w.begin_array();
    for (const auto& d : found) {
      w.begin_object();
      dlq::describe(w, target.topic, d);
      w.end_object();
    }
    w.end_array();
    std::printf("%s\n", w.str().c_str());
  } else {
    std::printf("%zu dead letter%s in %s (kafka_source '%s', brokers %s)\n", found.size(), found.size() == 1 ? "" : "s",
                target.topic.c_str(), target.node_id.c_str(), target.brokers.c_str());
    if (!found.empty())
      std::printf("%-12s %-20s %-28s %-16s %8s %-9s %s\n", "PART/OFFSET", "DEAD-LETTERED", "SOURCE TOPIC/PART/OFFSET",
                  "KEY", "BYTES", "TRUNCATED", "REASON");
    for (const auto& d : found) {
      const std::string at = std::to_string(d.partition) + "/" + std::to_string(d.offset);
      std::printf("%-12s %-20s %-28s %-16s %8zu %-9s %s\n", at.c_str(), utc_time(d.timestamp_ms).c_str(),
                  source_text(d).c_str(), key_text(d).c_str(), d.value.size(), d.about.truncated ? "yes" : "no",
                  d.about.from_source ? printable(d.about.reason).c_str() : "(not from a kafka_source)");
    }
  }
  if (more) {
    const DeadLetter& last = found.back();
    std::fprintf(stderr,
                 "orderflow dlq: the first %zu shown; more after %s (--partition %d --from-offset %" PRId64
                 ", or a larger --limit)\n",
                 found.size(), where(target.topic, last.partition, last.offset).c_str(), last.partition,
                 last.offset + 1);
  }
}

// GET /api/v1/admin/dead-letters: the one source asked for (or the only one).
int list_remote(DlqFlags& flags) {
  if (int rc = check_server(flags); rc != 0) return rc;
  std::string q = node_query(flags);
  auto add = [&](const std::string& kv) { q += (q.empty() ? "" : "&") + kv; };
  add("limit=" + std::to_string(flags.limit.value_or(dlq::kDefaultListLimit)));
  if (flags.partition) add("partition=" + std::to_string(*flags.partition));
  if (flags.from_offset > 0) add("from_offset=" + std::to_string(flags.from_offset));
  add("timeout_s=" + std::to_string(flags.timeout_s));
  const AdminAnswer a = admin_call(flags.server, "GET", "/api/v1/admin/dead-letters?" + q);
  if (a.status != 200) return admin_failure("dlq", a, 2);
  google::protobuf::Struct st;
  if (!google::protobuf::util::JsonStringToMessage(a.body, &st).ok()) return fail("the server's answer is not JSON");
  auto sources = st.fields().find("sources");
  if (sources == st.fields().end() || !sources->second.has_list_value()) return fail("the server's answer has no sources");
  const auto& list = sources->second.list_value().values();
  std::string ids;
  for (const auto& s : list) ids += (ids.empty() ? "" : ", ") + s.struct_value().fields().at("node").string_value();
  if (list.empty()) return usage("the server at " + flags.server.url + " runs no kafka_source");
  if (list.size() > 1) return usage("the server runs several kafka_sources (" + ids + "): name one with --source");
  const auto& src = list[0].struct_value().fields();
  Target target;
  target.node_id = src.at("node").string_value();
  target.topic = src.at("topic").string_value();
  if (auto b = src.find("brokers"); b != src.end()) target.brokers = b->second.string_value();
  std::vector<DeadLetter> found;
  if (auto dl = src.find("dead_letters"); dl != src.end())
    for (const auto& v : dl->second.list_value().values()) {
      DeadLetter d;
      if (!dlq::parse_described(v.struct_value(), &d)) return fail("the server's answer has a malformed dead letter");
      found.push_back(std::move(d));
    }
  const bool more = src.count("more") > 0 && src.at("more").bool_value();
  print_list(flags, target, found, more);
  return 0;
}

int list(DlqFlags& flags, const graph::KindRegistry& registry) {
  if (!flags.server.url.empty()) return list_remote(flags);
  if (flags.file.empty()) return usage("list needs GRAPH (or --server URL)");
  Target target;
  if (int rc = resolve_target(flags, registry, &target); rc != 0) return rc;
  std::vector<DeadLetter> found;
  bool more = false;
  dlq::Selection sel;
  sel.partition = flags.partition;
  sel.from_offset = flags.from_offset;
  sel.limit = static_cast<size_t>(flags.limit.value_or(dlq::kDefaultListLimit));
  if (auto s = dlq::read_dead_letters(target, sel, std::chrono::seconds(flags.timeout_s), &found, &more); !s)
    return fail(s.message());
  print_list(flags, target, found, more);
  return 0;
}

void print_inspect(const DlqFlags& flags, const Target& target, const DeadLetter& d) {
  const std::string why_not = dlq::why_not_replayable(d, "", target.topic);
  const bool utf8 = is_utf8(d.value);
  if (flags.json) {
    JsonWriter w;
    w.begin_object();
    dlq::describe_in_full(w, target.topic, d, flags.hex);
    w.end_object();
    std::printf("%s\n", w.str().c_str());
    return;
  }
  const auto& a = d.about;
  std::printf("dead letter %s\n", where(target.topic, d.partition, d.offset).c_str());
  std::printf("  dead-lettered  %s\n", utc_time(d.timestamp_ms).c_str());
  std::printf("  source         %s\n", source_text(d).c_str());
  std::printf("  key            %s\n", key_text(d).c_str());
  std::printf("  reason         %s\n", a.from_source ? printable(a.reason).c_str() : "(not from a kafka_source)");
  std::printf("  kind           %s\n", dlq::is_parked(d) ? "parked" : "dead letter");
  if (a.truncated)
    std::printf("  size           %zu bytes, truncated (the original had %s)\n", d.value.size(),
                a.original_size >= 0 ? std::to_string(a.original_size).c_str() : "more");
  else
    std::printf("  size           %zu bytes, whole\n", d.value.size());
  std::printf("  replay         %s\n", why_not.empty() ? "possible" : ("refused: " + why_not).c_str());
  std::printf("headers (%zu)\n", d.headers.size());
  for (const auto& [k, v] : d.headers) std::printf("  %s: %s\n", printable(k).c_str(), printable(v).c_str());
  if (flags.hex) {
    std::printf("value (%zu bytes, hex)\n%s", d.value.size(), hex_dump(d.value).c_str());
  } else if (utf8) {
    std::printf("value (%zu bytes, %s)\n  %s\n", d.value.size(), is_json(d.value) ? "JSON" : "text, not JSON",
                printable(d.value).c_str());
  } else {
    std::printf("value (%zu bytes, not UTF-8: escaped, then in hex)\n  %s\n%s", d.value.size(),
                printable(d.value).c_str(), hex_dump(d.value).c_str());
  }
}

int inspect(DlqFlags& flags, const graph::KindRegistry& registry) {
  if (!flags.server.url.empty()) {
    if (int rc = check_server(flags); rc != 0) return rc;
    std::string q = node_query(flags);
    q += (q.empty() ? "" : "&") + std::string("timeout_s=") + std::to_string(flags.timeout_s);
    const AdminAnswer a = admin_call(flags.server, "GET",
                                     "/api/v1/admin/dead-letters/" + std::to_string(*flags.partition) + "/" +
                                         std::to_string(*flags.offset) + "?" + q);
    if (a.status != 200) return admin_failure("dlq", a, 1);
    google::protobuf::Struct st;
    DeadLetter d;
    if (!google::protobuf::util::JsonStringToMessage(a.body, &st).ok() || !dlq::parse_described(st, &d))
      return fail("the server's answer is not a dead letter");
    Target target;
    target.topic = st.fields().count("topic") > 0 ? st.fields().at("topic").string_value() : "";
    print_inspect(flags, target, d);
    return 0;
  }
  if (flags.file.empty()) return usage("inspect needs GRAPH (or --server URL)");
  Target target;
  if (int rc = resolve_target(flags, registry, &target); rc != 0) return rc;
  auto found = dlq::read_dead_letter(target, *flags.partition, *flags.offset, std::chrono::seconds(flags.timeout_s));
  if (!found) return fail(found.status().message());
  print_inspect(flags, target, *found);
  return 0;
}

// One line of replay's report.
struct ReplayLine {
  dlq::Replayed r;
  std::string key;  // as printed
  size_t bytes = 0;
};

int print_replay(const DlqFlags& flags, const std::string& dlq_topic, const std::vector<ReplayLine>& lines) {
  size_t refused = 0, go = 0;
  for (const auto& l : lines) {
    if (l.r.refused.empty()) {
      ++go;
      continue;
    }
    ++refused;
    std::fprintf(stderr, "orderflow dlq: not replaying %s: %s\n", where(dlq_topic, l.r.partition, l.r.offset).c_str(),
                 l.r.refused.c_str());
  }
  auto summary = [&](const char* verb, size_t done) {
    if (flags.all)
      std::printf("%s %zu of %zu dead letter%s%s\n", verb, done, lines.size(), lines.size() == 1 ? "" : "s",
                  refused > 0 ? (" (" + std::to_string(refused) + " refused)").c_str() : "");
  };
  if (flags.dry_run) {
    for (const auto& l : lines)
      if (l.r.refused.empty())
        std::printf("would replay %s -> %s (key %s, %zu bytes)\n", where(dlq_topic, l.r.partition, l.r.offset).c_str(),
                    printable(l.r.topic).c_str(), l.key.c_str(), l.bytes);
    summary("would replay", go);
    return refused > 0 ? 1 : 0;
  }
  if (go == 0) return 1;  // each refusal was named above
  size_t failed = 0;
  for (const auto& l : lines) {
    if (!l.r.refused.empty()) continue;
    const std::string from = where(dlq_topic, l.r.partition, l.r.offset);
    if (!l.r.delivery) {
      ++failed;
      std::fprintf(stderr, "orderflow dlq: replay of %s failed: %s\n", from.c_str(), l.r.delivery.message().c_str());
      continue;
    }
    std::printf("replayed %s -> %s (key %s, %zu bytes)\n", from.c_str(),
                printable(where(l.r.topic, l.r.to_partition, l.r.to_offset)).c_str(), l.key.c_str(), l.bytes);
  }
  summary("replayed", go - failed);
  return refused > 0 || failed > 0 ? 1 : 0;
}

// POST /api/v1/admin/dead-letters/replay.
int replay_remote(DlqFlags& flags) {
  if (int rc = check_server(flags); rc != 0) return rc;
  JsonWriter w;
  w.begin_object();
  if (!flags.source.empty()) w.field("node", flags.source);
  if (flags.all) {
    w.field("all", true);
    if (flags.partition) w.field("partition", static_cast<int64_t>(*flags.partition));
    if (flags.from_offset > 0) w.field("from_offset", flags.from_offset);
    if (flags.limit) w.field("limit", *flags.limit);
  } else {
    w.field("partition", static_cast<int64_t>(*flags.partition)).field("offset", *flags.offset);
  }
  if (!flags.to.empty()) w.field("to", flags.to);
  if (flags.dry_run) w.field("dry_run", true);
  w.field("timeout_s", flags.timeout_s);
  w.end_object();
  const AdminAnswer a = admin_call(flags.server, "POST", "/api/v1/admin/dead-letters/replay", w.take());
  if (a.status != 200) return admin_failure("dlq", a, 1);
  google::protobuf::Struct st;
  if (!google::protobuf::util::JsonStringToMessage(a.body, &st).ok()) return fail("the server's answer is not JSON");
  const auto& f = st.fields();
  const std::string topic = f.count("topic") > 0 ? f.at("topic").string_value() : "";
  std::vector<ReplayLine> lines;
  auto items = [&](const char* name) -> const google::protobuf::ListValue* {
    auto it = f.find(name);
    return it != f.end() && it->second.has_list_value() ? &it->second.list_value() : nullptr;
  };
  auto num = [](const google::protobuf::Struct& s, const char* k, int64_t missing) {
    auto it = s.fields().find(k);
    return it != s.fields().end() && it->second.has_number_value() ? static_cast<int64_t>(it->second.number_value())
                                                                    : missing;
  };
  auto text = [](const google::protobuf::Struct& s, const char* k) {
    auto it = s.fields().find(k);
    return it != s.fields().end() ? it->second.string_value() : std::string();
  };
  for (const char* list : {"replayed", "failed", "refused"}) {
    const auto* l = items(list);
    if (l == nullptr) continue;
    for (const auto& v : l->values()) {
      const auto& s = v.struct_value();
      ReplayLine line;
      line.r.partition = static_cast<int32_t>(num(s, "partition", 0));
      line.r.offset = num(s, "offset", 0);
      line.key = s.fields().count("key") > 0 && !text(s, "key").empty() ? printable(text(s, "key")) : "-";
      line.bytes = static_cast<size_t>(num(s, "size", 0));
      if (std::string(list) == "refused") {
        line.r.refused = text(s, "reason");
        if (line.r.refused.empty()) line.r.refused = "refused";
      } else if (std::string(list) == "failed") {
        line.r.delivery = Status::unavailable(text(s, "reason"));
      } else {
        // "to": TOPIC/PARTITION/OFFSET (a dry run: the topic alone)
        const std::string to = text(s, "to");
        line.r.topic = to;
        if (!flags.dry_run) {
          const auto b = to.rfind('/'), a2 = b == std::string::npos ? b : to.rfind('/', b - 1);
          if (a2 != std::string::npos) {
            line.r.topic = to.substr(0, a2);
            line.r.to_partition = std::atoi(to.substr(a2 + 1, b - a2 - 1).c_str());
            line.r.to_offset = std::atoll(to.substr(b + 1).c_str());
          }
        }
      }
      lines.push_back(std::move(line));
    }
  }
  std::sort(lines.begin(), lines.end(), [](const ReplayLine& x, const ReplayLine& y) {
    return std::pair(x.r.partition, x.r.offset) < std::pair(y.r.partition, y.r.offset);
  });
  return print_replay(flags, topic, lines);
}

int replay(DlqFlags& flags, const graph::KindRegistry& registry) {
  if (flags.all == flags.offset.has_value())
    return usage("replay needs --partition P --offset O (one dead letter) or --all");
  if (!flags.all && (flags.limit || flags.from_offset != 0))
    return usage("--limit and --from-offset select dead letters for --all");
  if (!flags.server.url.empty()) return replay_remote(flags);
  if (flags.file.empty()) return usage("replay needs GRAPH (or --server URL)");
  Target target;
  if (int rc = resolve_target(flags, registry, &target); rc != 0) return rc;
  if (!flags.to.empty() && flags.to == target.topic)
    return usage("--to " + flags.to + " is the dead-letter topic itself");
  const auto timeout = std::chrono::seconds(flags.timeout_s);
  std::vector<DeadLetter> found;
  if (flags.all) {
    bool more = false;
    dlq::Selection sel;
    sel.partition = flags.partition;
    sel.from_offset = flags.from_offset;
    sel.limit = static_cast<size_t>(flags.limit.value_or(0));
    if (auto s = dlq::read_dead_letters(target, sel, timeout, &found, &more); !s) return fail(s.message());
    if (found.empty())
      return fail("no dead letters in " + target.topic +
                  (flags.from_offset > 0 ? " from offset " + std::to_string(flags.from_offset) : ""));
  } else {
    auto one = dlq::read_dead_letter(target, *flags.partition, *flags.offset, timeout);
    if (!one) return fail(one.status().message());
    found.push_back(std::move(*one));
  }
  std::vector<dlq::Replayed> done;
  if (auto s = dlq::replay(target, found, flags.to, flags.dry_run, timeout, &done); !s) return fail(s.message());
  std::vector<ReplayLine> lines;
  for (size_t i = 0; i < done.size(); ++i) lines.push_back({done[i], key_text(found[i]), found[i].value.size()});
  return print_replay(flags, target.topic, lines);
}

}  // namespace

void add_dlq_command(CLI::App& app, const graph::KindRegistry& registry, int* exit_code) {
  // Owned by the parser's lifetime: the flags live as long as the callbacks that read them.
  auto flags = std::make_shared<DlqFlags>();
  CLI::App* dlq = app.add_subcommand(
      "dlq", "list, inspect and replay the Kafka dead letters of a graph's kafka_source (reading changes nothing)");
  dlq->require_subcommand(1);
  auto common = [&](CLI::App* cmd) {
    cmd->add_option("GRAPH", flags->file, "graph definition (YAML) with the kafka_source (not with --server)");
    add_server_options(cmd, &flags->server, "its kafka_sources' dead letters");
    cmd->add_option("--brokers", flags->brokers,
                    "host:port[,host:port] (default: the kafka_source's; needed when the graph says mock:N)");
    cmd->add_option("--source", flags->source, "the kafka_source's node id (needed when there are several)");
    cmd->add_option("--timeout", flags->timeout_s, "seconds to wait for Kafka")
        ->capture_default_str()
        ->check(CLI::Range(int64_t{1}, int64_t{3600}));
  };
  auto selection = [&](CLI::App* cmd) {
    cmd->add_option("--from-offset", flags->from_offset, "start at this offset in each partition")
        ->check(CLI::NonNegativeNumber);
    return cmd->add_option("--limit", flags->limit, "at most this many dead letters")->check(CLI::PositiveNumber);
  };

  CLI::App* list_cmd = dlq->add_subcommand(
      "list",
      "one line per dead letter: DLQ partition/offset, time, original topic/partition/offset, key, size, "
      "truncated, reason");
  common(list_cmd);
  list_cmd->add_option("--partition", flags->partition, "only this partition of the dead-letter topic")
      ->check(CLI::NonNegativeNumber);
  selection(list_cmd)->description("at most this many dead letters (default " + std::to_string(dlq::kDefaultListLimit) +
                                   ")");
  list_cmd->add_flag("--json", flags->json, "a JSON array instead of the table");
  list_cmd->callback([flags, &registry, exit_code] { *exit_code = list(*flags, registry); });

  CLI::App* inspect_cmd =
      dlq->add_subcommand("inspect", "one dead letter in full: every header and the value (control bytes escaped)");
  common(inspect_cmd);
  inspect_cmd->add_option("--partition", flags->partition, "partition in the dead-letter topic")
      ->required()
      ->check(CLI::NonNegativeNumber);
  inspect_cmd->add_option("--offset", flags->offset, "offset in that partition")
      ->required()
      ->check(CLI::NonNegativeNumber);
  inspect_cmd->add_flag("--json", flags->json, "one JSON object (the value as text, or value_hex)");
  inspect_cmd->add_flag("--hex", flags->hex, "the value as a hex dump even when it is text");
  inspect_cmd->callback([flags, &registry, exit_code] { *exit_code = inspect(*flags, registry); });

  CLI::App* replay_cmd =
      dlq->add_subcommand("replay",
                          "produce dead letters' original messages (value, key, headers) back to their topic, with "
                          "x-orderflow-replayed-from; a truncated one is refused");
  common(replay_cmd);
  auto* partition = replay_cmd
                        ->add_option("--partition", flags->partition,
                                     "partition in the dead-letter topic (with --offset; with --all: only it)")
                        ->check(CLI::NonNegativeNumber);
  auto* offset = replay_cmd->add_option("--offset", flags->offset, "offset of the one dead letter to replay")
                     ->check(CLI::NonNegativeNumber);
  offset->needs(partition);
  auto* all = replay_cmd->add_flag("--all", flags->all,
                                   "every dead letter (of --partition, from --from-offset, up to --limit)");
  all->excludes(offset);
  selection(replay_cmd);
  replay_cmd->add_option("--to", flags->to, "produce to this topic instead of each one's source topic");
  replay_cmd->add_flag("--dry-run", flags->dry_run, "print what would be replayed; produce nothing");
  replay_cmd->callback([flags, &registry, exit_code] { *exit_code = replay(*flags, registry); });
}

}  // namespace orderflow::server
