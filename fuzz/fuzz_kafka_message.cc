// One consumed Kafka message as kafka_source reads it (connectors/kafka_client.h): headers
// built with librdkafka's own header API, the content type taken from them, the value
// decoded into a command. Input: a header count byte, then per header a name length byte,
// name, value length byte, value (a length of 255 means "no value"); the rest is the value.
// Checks beyond "no crash": every header comes back in order; a refusal has a reason.
#include <librdkafka/rdkafka.h>

#include <google/protobuf/stubs/logging.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "connectors/kafka_client.h"
#include "domain/orders/orders_domain.h"

namespace {

struct Reader {
  const uint8_t* p;
  size_t left;
  bool byte(uint8_t* out) {
    if (left == 0) return false;
    *out = *p++;
    --left;
    return true;
  }
  bool bytes(size_t n, std::string* out) {
    if (n > left) return false;
    out->assign(reinterpret_cast<const char*>(p), n);
    p += n;
    left -= n;
    return true;
  }
};

}  // namespace

// protobuf logs every string field with invalid UTF-8 it refuses; the refusal is what is
// checked here, the log line only slows the run.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in{data, size};
  uint8_t count = 0;
  if (!in.byte(&count)) return 0;
  rd_kafka_headers_t* hdrs = rd_kafka_headers_new(count % 16);
  std::vector<std::pair<std::string, std::string>> sent;
  for (int i = 0; i < count % 16; ++i) {
    uint8_t n = 0, m = 0;
    std::string name, value;
    if (!in.byte(&n) || !in.bytes(n, &name) || !in.byte(&m)) break;
    const bool has_value = m != 255;
    if (has_value && !in.bytes(m, &value)) break;
    // librdkafka takes a name up to its first NUL (length -1 means "NUL-terminated").
    name = name.substr(0, name.find('\0'));
    rd_kafka_header_add(hdrs, name.c_str(), -1, has_value ? value.data() : nullptr,
                        static_cast<ssize_t>(has_value ? value.size() : 0));
    sent.emplace_back(name, value);
  }
  if (orderflow::connectors::kafka::headers_of(hdrs) != sent) std::abort();
  const std::string content_type = orderflow::connectors::kafka::content_type_of(hdrs);
  rd_kafka_headers_destroy(hdrs);
  std::string value;
  in.bytes(in.left, &value);
  auto cmd = orderflow::connectors::kafka::decode_message(*orderflow::orders::orders_domain(), value.empty() ? nullptr : value.data(), value.size(),
                                                          content_type, 4096, "kafka:fuzz:0:1");
  if (!cmd && cmd.status().message().empty()) std::abort();
  if (cmd && orderflow::orders::orders_domain()->command_id(**cmd).empty()) std::abort();
  return 0;
}
