// Test helpers for the Kafka suites: a librdkafka mock cluster owned by the test (real
// Kafka protocol over TCP on 127.0.0.1), a producer, a reader of whole topics and the
// committed offsets of a consumer group. Not thread-safe; one per test.
#pragma once

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace orderflow::testing {

struct KafkaRecord {
  std::string topic, key, value;
  int32_t partition = 0;
  int64_t offset = 0;
  std::map<std::string, std::string> headers;  // last value per name
};

inline rd_kafka_t* new_kafka_handle(rd_kafka_type_t type, const std::vector<std::pair<std::string, std::string>>& props) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [k, v] : props)
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
      throw std::runtime_error(k + ": " + err);
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (rk == nullptr) throw std::runtime_error(err);
  return rk;
}

class MockKafka {
 public:
  explicit MockKafka(int brokers) {
    owner_ = new_kafka_handle(RD_KAFKA_PRODUCER, {{"log_level", "2"}});
    cluster_ = rd_kafka_mock_cluster_new(owner_, brokers);
    if (cluster_ == nullptr) throw std::runtime_error("cannot start mock cluster");
    bootstrap_ = rd_kafka_mock_cluster_bootstraps(cluster_);
    producer_ = new_kafka_handle(RD_KAFKA_PRODUCER, {{"bootstrap.servers", bootstrap_},
                                                     {"enable.idempotence", "true"},
                                                     {"linger.ms", "2"},
                                                     // Tests send commands above a source's max_message_bytes.
                                                     {"message.max.bytes", "8000000"},
                                                     {"log_level", "2"}});
  }
  ~MockKafka() {
    rd_kafka_flush(producer_, 5000);
    rd_kafka_destroy(producer_);
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(owner_);
  }
  MockKafka(const MockKafka&) = delete;
  MockKafka& operator=(const MockKafka&) = delete;

  const std::string& bootstrap() const { return bootstrap_; }
  rd_kafka_mock_cluster_t* cluster() { return cluster_; }

  void create_topic(const std::string& topic, int partitions) {
    rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, 1);
  }
  // Moves a partition's leadership (brokers are numbered from 1).
  void set_leader(const std::string& topic, int32_t partition, int32_t broker) {
    rd_kafka_mock_partition_set_leader(cluster_, topic.c_str(), partition, broker);
  }
  void set_group_coordinator(const std::string& group, int32_t broker) {
    rd_kafka_mock_coordinator_set(cluster_, "group", group.c_str(), broker);
  }
  void set_broker_down(int32_t broker, bool down) {
    if (down) rd_kafka_mock_broker_set_down(cluster_, broker);
    else rd_kafka_mock_broker_set_up(cluster_, broker);
  }

  // Queues one message (flush() waits for delivery).
  void produce(const std::string& topic, const std::string& key, const std::string& value,
               const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    rd_kafka_headers_t* h = rd_kafka_headers_new(headers.size() + 1);
    for (const auto& [k, v] : headers) rd_kafka_header_add(h, k.c_str(), -1, v.data(), static_cast<ssize_t>(v.size()));
    for (;;) {
      rd_kafka_resp_err_t e = rd_kafka_producev(
          producer_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_KEY(key.data(), key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
          RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return;
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_headers_destroy(h);
        throw std::runtime_error(std::string("produce: ") + rd_kafka_err2str(e));
      }
      rd_kafka_poll(producer_, 10);
    }
  }
  bool flush(int timeout_ms = 30000) { return rd_kafka_flush(producer_, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR; }

  // Partition ids of a topic (empty if unknown).
  std::vector<int32_t> partitions(const std::string& topic) {
    std::vector<int32_t> out;
    rd_kafka_topic_t* t = rd_kafka_topic_new(producer_, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(producer_, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      for (int i = 0; i < md->topic_cnt; ++i)
        for (int p = 0; p < md->topics[i].partition_cnt; ++p) out.push_back(md->topics[i].partitions[p].id);
      rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(t);
    return out;
  }

  // High watermark per partition.
  std::map<int32_t, int64_t> end_offsets(const std::string& topic) {
    std::map<int32_t, int64_t> out;
    for (int32_t p : partitions(topic)) {
      int64_t lo = 0, hi = 0;
      if (rd_kafka_query_watermark_offsets(producer_, topic.c_str(), p, &lo, &hi, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR)
        out[p] = hi;
    }
    return out;
  }

  // Offsets committed by `group` for the topic's partitions (-1001 = none).
  std::map<int32_t, int64_t> committed(const std::string& group, const std::string& topic) {
    std::map<int32_t, int64_t> out;
    rd_kafka_t* c = new_kafka_handle(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap_}, {"group.id", group}, {"log_level", "2"}});
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(8);
    for (int32_t p : partitions(topic)) rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
    if (rd_kafka_committed(c, list, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR)
      for (int i = 0; i < list->cnt; ++i) out[list->elems[i].partition] = list->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(c);
    return out;
  }

  // True when `group` committed every partition of `topic` up to its end.
  bool caught_up(const std::string& group, const std::string& topic) {
    auto ends = end_offsets(topic);
    auto done = committed(group, topic);
    for (const auto& [p, hi] : ends)
      if (hi > 0 && done[p] != hi) return false;
    return !ends.empty();
  }

  // Every message of a topic from the beginning up to its end offsets at the call.
  std::vector<KafkaRecord> read_all(const std::string& topic) {
    std::vector<KafkaRecord> out;
    auto ends = end_offsets(topic);
    rd_kafka_t* c = new_kafka_handle(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap_},
                                                         {"group.id", "orderflow-test-reader"},
                                                         {"enable.auto.commit", "false"},
                                                         {"fetch.wait.max.ms", "50"},
                                                         {"log_level", "2"}});
    rd_kafka_poll_set_consumer(c);
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(8);
    size_t expected = 0;
    for (const auto& [p, hi] : ends) {
      if (hi == 0) continue;
      rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
      expected += static_cast<size_t>(hi);  // mock partitions start at 0 and keep everything tests write
    }
    rd_kafka_assign(c, list);
    rd_kafka_topic_partition_list_destroy(list);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (out.size() < expected && std::chrono::steady_clock::now() < deadline) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(c, 100);
      if (m == nullptr) continue;
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->offset < ends[m->partition]) {
        KafkaRecord r;
        r.topic = topic;
        r.partition = m->partition;
        r.offset = m->offset;
        if (m->key) r.key.assign(static_cast<const char*>(m->key), m->key_len);
        if (m->payload) r.value.assign(static_cast<const char*>(m->payload), m->len);
        rd_kafka_headers_t* hdrs = nullptr;
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
          const char* name = nullptr;
          const void* v = nullptr;
          size_t n = 0;
          for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i)
            r.headers[name] = v ? std::string(static_cast<const char*>(v), n) : "";
        }
        out.push_back(std::move(r));
      }
      rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return out;
  }

 private:
  rd_kafka_t* owner_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  rd_kafka_t* producer_ = nullptr;
  std::string bootstrap_;
};

// Waits until `done()` or the timeout; true when done.
template <typename F>
bool eventually(F done, std::chrono::milliseconds timeout, std::chrono::milliseconds step = std::chrono::milliseconds(100)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(step);
  }
  return done();
}

}  // namespace orderflow::testing
