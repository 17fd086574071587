// A Cosmos DB change-feed answer body (connectors/cosmos_store.h parse_change_feed_page),
// as the feed view reads it from the service or a proxy in between. Checks beyond "no
// crash": a page is taken whole or not at all, with consecutive positions.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "connectors/cosmos_store.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  std::vector<orderflow::RecordedEvent> out;
  const orderflow::Status s = orderflow::connectors::parse_change_feed_page(body, 7, &out);
  if (!s) {
    if (!out.empty()) std::abort();
    return 0;
  }
  for (size_t i = 0; i < out.size(); ++i)
    if (out[i].position != 7 + i) std::abort();
  return 0;
}
