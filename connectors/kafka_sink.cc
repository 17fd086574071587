// kafka_sink: publishes committed events to Kafka (see kafka.h).
//
// handle() runs on the change feed's thread for this subscriber: it queues every event of
// the batch with the idempotent producer and returns a ticket that completes when the last
// delivery report arrives; the feed moves the sink's checkpoint only past batches whose
// every event was delivered, so a crash re-publishes (at least once, in order per key)
// and never skips. A poll thread serves delivery reports.
#include <librdkafka/rdkafka.h>

#include <google/protobuf/util/json_util.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <thread>

#include "connectors/kafka.h"
#include "connectors/kafka_client.h"
#include "graph/build.h"
#include "graph/feed.h"
#include "graph/log.h"

namespace orderflow::connectors {
namespace {

std::string topic_for(const std::string& pattern, const std::string& category) {
  std::string t = pattern;
  const std::string token = "{category}";
  for (size_t at = t.find(token); at != std::string::npos; at = t.find(token, at + category.size()))
    t.replace(at, token.size(), category);
  return t;
}

class KafkaSinkNode final : public RuntimeNode, public FeedSubscriber {
 public:
  KafkaSinkNode(Pipeline& p, const std::string& id, const KafkaSinkOptions& o, const Domain& domain)
      : RuntimeNode(id, "kafka_sink", p.metrics().probe(id, "kafka_sink")),
        domain_(domain),
        brokers_(o.brokers),
        topic_pattern_(o.topic),
        binary_(o.format == "binary"),
        partitions_(o.partitions),
        properties_text_(o.properties) {}

  ~KafkaSinkNode() override { stop(); }

  const std::string& subscriber_id() const override { return id(); }
  NodeProbe& subscriber_probe() override { return probe(); }

  Status start() override {
    probe().set_gauge("queue_full", 0);  // present from the start, not from the first failure
    probe().set_gauge("delivery_errors", 0);
    auto user = kafka::parse_properties(properties_text_);
    if (!user) return user.status();
    auto bootstrap = kafka::resolve_brokers(brokers_);
    if (!bootstrap) return bootstrap.status();
    for (const char* category : {"orders", "inventory"})
      if (auto s = kafka::ensure_mock_topic(brokers_, topic_for(topic_pattern_, category), partitions_); !s) return s;
    kafka::Properties defaults = {
        {"client.id", "orderflow-" + id()},
        {"enable.idempotence", "true"},  // no duplicates or reordering from producer retries
        {"linger.ms", "5"},
        {"log_level", "4"},
    };
    auto conf = kafka::make_conf(*bootstrap, defaults, *user);
    if (!conf) return conf.status();
    rd_kafka_conf_set_opaque(*conf, this);
    rd_kafka_conf_set_dr_msg_cb(*conf, &KafkaSinkNode::delivery_cb);
    char err[512];
    producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, *conf, err, sizeof err);
    if (producer_ == nullptr) {
      rd_kafka_conf_destroy(*conf);
      return Status::invalid_argument("kafka_sink " + id() + ": cannot create producer: " + err);
    }
    running_ = true;
    poller_ = std::thread([this] {
      while (running_) rd_kafka_poll(producer_, 100);
    });
    log::info("kafka sink started", {{"node", id()}, {"brokers", *bootstrap}, {"topic", topic_pattern_}});
    return Status::ok();
  }

  Result<std::shared_ptr<BatchTicket>> handle(const std::vector<RecordedEvent>& batch) override {
    if (!running_ || producer_ == nullptr) return Status::unavailable("kafka_sink " + id() + " is stopped");
    BusyTimer busy(probe());
    probe().add_in(batch.size());
    auto ticket = std::make_shared<BatchTicket>();
    ticket->add(static_cast<int>(batch.size()));
    {
      std::lock_guard<std::mutex> lock(live_mu_);
      while (!live_.empty() && live_.front()->done()) live_.pop_front();
      live_.push_back(ticket);
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      Status s = produce(batch[i], ticket.get());
      if (!s) {
        // Not queued: this and the rest of the batch fail; the feed redelivers from its checkpoint.
        probe().add_error(s.to_string());
        for (size_t j = i; j < batch.size(); ++j) ticket->finish(s);
        break;
      }
    }
    return ticket;
  }

  void drain(std::chrono::steady_clock::time_point deadline) override {
    if (producer_ == nullptr) return;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    rd_kafka_flush(producer_, static_cast<int>(std::max<int64_t>(0, left.count())));
  }

  void stop() override {
    if (!running_.exchange(false)) return;
    if (poller_.joinable()) poller_.join();
    if (rd_kafka_flush(producer_, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
      log::warn("kafka sink: events still unsent at shutdown; they are re-published on restart",
                {{"node", id()}, {"queued", std::to_string(rd_kafka_outq_len(producer_))}});
    rd_kafka_destroy(producer_);  // fails the tickets of anything left, via delivery reports
    producer_ = nullptr;
  }

 private:
  Status produce(const RecordedEvent& e, BatchTicket* ticket) {
    MessagePtr parsed = domain_.new_event();
    const Message& event = *parsed;
    if (!parsed->ParseFromString(e.payload)) return Status::internal("event " + e.stream + "@" + std::to_string(e.version) + " does not parse");
    std::string value;
    if (binary_) {
      value = e.payload;
    } else {
      google::protobuf::util::JsonPrintOptions o;
      o.preserve_proto_field_names = false;
      if (!google::protobuf::util::MessageToJsonString(event, &value, o).ok())
        return Status::internal("event " + e.stream + "@" + std::to_string(e.version) + " has no JSON form");
    }
    const std::string topic = topic_for(topic_pattern_, domain_.category(e.stream));
    rd_kafka_headers_t* h = rd_kafka_headers_new(6);
    auto add = [&](const char* k, const std::string& v) {
      rd_kafka_header_add(h, k, -1, v.data(), static_cast<ssize_t>(v.size()));
    };
    add("content-type", binary_ ? "application/x-protobuf" : "application/json");
    add("orderflow-stream", e.stream);
    add("orderflow-version", std::to_string(e.version));
    add("orderflow-position", std::to_string(e.position));
    add("orderflow-command-id", e.command_id);
    add("orderflow-event", domain_.event_name(event));
    for (;;) {
      rd_kafka_resp_err_t err = rd_kafka_producev(
          producer_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_KEY(e.stream.data(), e.stream.size()), RD_KAFKA_V_VALUE(value.data(), value.size()),
          RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(ticket), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::ok();
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && running_) {
        // The local queue is full (brokers slow or away): wait for deliveries; the feed
        // thread blocking here is the backpressure.
        queue_full_.fetch_add(1, std::memory_order_relaxed);
        probe().set_gauge("queue_full", static_cast<double>(queue_full_.load()));
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      rd_kafka_headers_destroy(h);
      return kafka::to_status(err, "produce to " + topic);
    }
  }

  static void delivery_cb(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<KafkaSinkNode*>(opaque);
    auto* ticket = static_cast<BatchTicket*>(m->_private);
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      Status s = kafka::to_status(m->err, "delivery");
      self->probe().add_error(s.to_string());
      self->delivery_errors_.fetch_add(1, std::memory_order_relaxed);
      self->probe().set_gauge("delivery_errors", static_cast<double>(self->delivery_errors_.load()));
      ticket->finish(s);
      return;
    }
    self->probe().add_out();
    ticket->finish(Status::ok());
  }

  const Domain& domain_;
  const std::string brokers_, topic_pattern_;
  const bool binary_;
  const int partitions_;
  const std::string properties_text_;
  rd_kafka_t* producer_ = nullptr;
  std::atomic<bool> running_{false};
  std::thread poller_;
  std::atomic<uint64_t> queue_full_{0}, delivery_errors_{0};
  // Tickets librdkafka may still report on (its opaques are raw pointers); pruned when done.
  std::mutex live_mu_;
  std::deque<std::shared_ptr<BatchTicket>> live_;
};

}  // namespace

Result<std::unique_ptr<RuntimeNode>> make_kafka_source(const graph::NodeDef& def, Pipeline& p, CommandSink* sink);

const graph::Options<KafkaSinkOptions>& kafka_sink_options() {
  using O = KafkaSinkOptions;
  static const auto options =
      graph::Options<O>()
          .required(&O::brokers, "brokers", "host:port[,host:port], or mock:N for an in-process mock cluster")
          .text(&O::topic, "topic", "topic per event; {category} = the domain's category of the stream "
                                    "(orders or inventory for the order domain)")
          .choice(&O::format, "format", {"json", "binary"}, "value encoding of events")
          .integer(&O::partitions, "partitions", 1, 1024, "partitions of topics created on a mock cluster")
          .text(&O::properties, "properties", "librdkafka properties k=v,k=v; ${ENV} expands");
  return options;
}

Result<std::unique_ptr<RuntimeNode>> make_kafka_sink(const graph::NodeDef& def, BuildContext& context) {
  return std::unique_ptr<RuntimeNode>(
      new KafkaSinkNode(context.pipeline, def.id, kafka_sink_options().parse(def), context.domain));
}

}  // namespace orderflow::connectors
