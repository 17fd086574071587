#include "connectors/kafka_client.h"

// rdkafka_mock.h must follow rdkafka.h.
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>

#include "graph/definition.h"
#include "graph/log.h"

namespace orderflow::connectors::kafka {

namespace {

constexpr const char* kMockPrefix = "mock:";

struct MockCluster {
  rd_kafka_t* owner = nullptr;  // the handle the mock cluster lives in
  rd_kafka_mock_cluster_t* cluster = nullptr;
  std::string bootstraps;
};

std::mutex& mock_mu() {
  static std::mutex mu;
  return mu;
}
// Never destroyed: nodes in other threads may use the clusters until the process exits.
std::map<int, MockCluster>& mocks() {
  static auto* m = new std::map<int, MockCluster>();
  return *m;
}

Result<int> mock_brokers(const std::string& brokers) {
  int64_t n = 0;
  if (!graph::parse_int(brokers.substr(std::string(kMockPrefix).size()), &n) || n < 1 || n > 16)
    return Status::invalid_argument("brokers '" + brokers + "': a mock cluster is 'mock:N' with 1 <= N <= 16");
  return static_cast<int>(n);
}

Result<MockCluster*> mock_cluster(const std::string& brokers) {
  auto n = mock_brokers(brokers);
  if (!n) return n.status();
  std::lock_guard<std::mutex> lock(mock_mu());
  auto& m = mocks()[*n];
  if (m.cluster == nullptr) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk == nullptr) return Status::internal(std::string("cannot create the mock cluster's handle: ") + err);
    rd_kafka_mock_cluster_t* mc = rd_kafka_mock_cluster_new(rk, *n);
    if (mc == nullptr) {
      rd_kafka_destroy(rk);
      return Status::internal("cannot start a mock Kafka cluster of " + std::to_string(*n) + " brokers");
    }
    m.owner = rk;
    m.cluster = mc;
    m.bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
  }
  return &m;
}

}  // namespace

bool is_mock(const std::string& brokers) { return brokers.rfind(kMockPrefix, 0) == 0; }

Result<std::string> resolve_brokers(const std::string& brokers) {
  if (brokers.empty()) return Status::invalid_argument("brokers is empty: give host:port[,host:port] or mock:N");
  if (brokers.size() > 3 && brokers.rfind("${", 0) == 0 && brokers.back() == '}') {
    // One deployment file for every environment: the broker list from a variable.
    const std::string name = brokers.substr(2, brokers.size() - 3);
    const char* env = std::getenv(name.c_str());
    if (env == nullptr || *env == '\0' || std::string(env).rfind("${", 0) == 0)
      return Status::invalid_argument("brokers '" + brokers + "' needs the environment variable " + name +
                                      " (host:port[,host:port]), which is not set");
    return std::string(env);
  }
  if (!is_mock(brokers)) return brokers;
  auto m = mock_cluster(brokers);
  if (!m) return m.status();
  return (*m)->bootstraps;
}

Status ensure_mock_topic(const std::string& brokers, const std::string& topic, int partitions) {
  if (!is_mock(brokers)) return Status::ok();
  auto m = mock_cluster(brokers);
  if (!m) return m.status();
  auto n = mock_brokers(brokers);
  const int replication = std::min(*n, 3);
  rd_kafka_resp_err_t err = rd_kafka_mock_topic_create((*m)->cluster, topic.c_str(), partitions, replication);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
    return to_status(err, "cannot create mock topic " + topic);
  return Status::ok();
}

Result<Properties> parse_properties(const std::string& text) {
  Properties out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(start, end - start);
    start = end + 1;
    auto trim = [](std::string s) {
      while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
      size_t i = 0;
      while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
      return s.substr(i);
    };
    item = trim(item);
    if (item.empty()) {
      if (end == text.size()) break;
      continue;
    }
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      return Status::invalid_argument("property '" + item + "' is not key=value");
    std::string key = trim(item.substr(0, eq));
    std::string raw = trim(item.substr(eq + 1));
    std::string value;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '$' && i + 1 < raw.size() && raw[i + 1] == '{') {
        const size_t close = raw.find('}', i + 2);
        if (close == std::string::npos)
          return Status::invalid_argument("property " + key + ": unterminated ${ in its value");
        const std::string name = raw.substr(i + 2, close - i - 2);
        const char* env = std::getenv(name.c_str());
        if (env == nullptr)
          return Status::invalid_argument("property " + key + " needs the environment variable " + name +
                                          ", which is not set");
        value += env;
        i = close;
      } else {
        value += raw[i];
      }
    }
    out.emplace_back(std::move(key), std::move(value));
    if (end == text.size()) break;
  }
  return out;
}

bool is_secret_key(const std::string& key) {
  std::string k = key;
  std::transform(k.begin(), k.end(), k.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* word : {"password", "secret", "key", "token", "jaas"})
    if (k.find(word) != std::string::npos) return true;
  return false;
}

namespace {

// Names librdkafka marks "C" (consumer only) in the table rd_kafka_conf_properties_show()
// prints: `name | C/P | range | default | importance | description`. librdkafka has no other
// public way to ask a property's scope.
std::set<std::string> load_consumer_only() {
  std::set<std::string> out;
  char* text = nullptr;
  size_t size = 0;
  FILE* f = open_memstream(&text, &size);
  if (f == nullptr) return out;
  rd_kafka_conf_properties_show(f);
  std::fclose(f);
  const std::string all(text, size);
  std::free(text);
  auto trim = [](std::string s) {
    s.erase(0, s.find_first_not_of(' '));
    s.erase(s.find_last_not_of(' ') + 1);
    return s;
  };
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find('\n', start);
    if (end == std::string::npos) end = all.size();
    const std::string line = all.substr(start, end - start);
    start = end + 1;
    const size_t bar1 = line.find('|');
    if (bar1 == std::string::npos) continue;
    const size_t bar2 = line.find('|', bar1 + 1);
    if (bar2 == std::string::npos) continue;
    if (trim(line.substr(bar1 + 1, bar2 - bar1 - 1)) == "C") out.insert(trim(line.substr(0, bar1)));
  }
  return out;
}

}  // namespace

bool is_consumer_only(const std::string& key) {
  static const std::set<std::string>* names = new std::set<std::string>(load_consumer_only());
  return names->count(key) > 0;
}

Properties producer_properties(const Properties& user) {
  Properties out;
  for (const auto& kv : user)
    if (!is_consumer_only(kv.first)) out.push_back(kv);
  return out;
}

namespace {

// librdkafka's own log lines (syslog levels) as our structured lines.
void log_line(const rd_kafka_t* rk, int level, const char* facility, const char* buf) {
  const log::Level lv = level <= 3 ? log::Level::kError : level <= 5 ? log::Level::kWarn : level == 6 ? log::Level::kInfo
                                                                                                   : log::Level::kDebug;
  log::write(lv, "librdkafka", {{"client", rd_kafka_name(rk)}, {"facility", facility}, {"detail", buf}});
}

}  // namespace

Result<rd_kafka_conf_t*> make_conf(const std::string& bootstrap, const Properties& defaults,
                                   const Properties& user) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set_log_cb(conf, &log_line);
  char err[512];
  auto set = [&](const std::string& k, const std::string& v) -> Status {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
      return Status::invalid_argument("Kafka property " + k + "=" + (is_secret_key(k) ? "<redacted>" : v) + ": " +
                                      err);
    return Status::ok();
  };
  Status s = set("bootstrap.servers", bootstrap);
  for (const auto& [k, v] : defaults)
    if (s) s = set(k, v);
  for (const auto& [k, v] : user)
    if (s) s = set(k, v);
  if (!s) {
    rd_kafka_conf_destroy(conf);
    return s;
  }
  return conf;
}

std::string with_domain(std::string pattern, const std::string& domain) {
  const std::string token = "{domain}";
  for (size_t at = pattern.find(token); at != std::string::npos; at = pattern.find(token, at + domain.size()))
    pattern.replace(at, token.size(), domain);
  return pattern;
}

DeadLetterHeaders read_dead_letter_headers(const std::vector<std::pair<std::string, std::string>>& headers,
                                           size_t value_size) {
  DeadLetterHeaders out;
  size_t ours = headers.size();
  for (size_t i = headers.size(); i-- > 0;)
    if (headers[i].first == kDeadLetterError) {
      ours = i;
      break;
    }
  out.original.assign(headers.begin(), headers.begin() + static_cast<std::ptrdiff_t>(ours));
  if (ours == headers.size()) return out;
  out.from_source = true;
  auto number = [](const std::string& text, int64_t fallback) {
    int64_t n = 0;
    return graph::parse_int(text, &n) && n >= 0 ? n : fallback;
  };
  for (size_t i = ours; i < headers.size(); ++i) {
    const auto& [name, value] = headers[i];
    if (name == kDeadLetterError) {
      out.reason = value;
    } else if (name == kDeadLetterOriginalSize) {
      out.original_size = number(value, -1);
    } else if (name == kDeadLetterSourceTopic) {
      out.source_topic = value;
    } else if (name == kDeadLetterSourcePartition) {
      const int64_t p = number(value, -1);
      out.source_partition = p <= INT32_MAX ? static_cast<int32_t>(p) : -1;
    } else if (name == kDeadLetterSourceOffset) {
      out.source_offset = number(value, -1);
    } else if (name == kDeadLetterTruncated) {
      out.truncated = true;
      if (out.original_size < 0) out.original_size = number(value, -1);
    } else if (name == kDeadLetterHeadersDropped) {
      out.headers_dropped = true;
    }
  }
  if (out.original_size > static_cast<int64_t>(value_size)) out.truncated = true;
  return out;
}

Status to_status(rd_kafka_resp_err_t err, const std::string& context) {
  std::string msg = context + ": " + rd_kafka_err2str(err) + " (" + rd_kafka_err2name(err) + ")";
  switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
      return Status::ok();
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
      return Status::invalid_argument(msg);
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      return Status::not_found(msg);
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
      return Status::unavailable(msg);
    default:
      return Status::io_error(msg);
  }
}

}  // namespace orderflow::connectors::kafka
