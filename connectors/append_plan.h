// The store-independent part of EventStore::append: deciding, for a batch, which
// requests are duplicates, which conflict, and which versions and positions the rest get.
// Used by every EventStore implementation so they agree exactly on the semantics.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "graph/store.h"

namespace orderflow::connectors {

struct PlannedAppend {
  size_t request = 0;          // index into the batch
  uint64_t first_version = 0;
  uint64_t first_position = 0;
};

struct AppendLookups {
  // The first result recorded for a command id, from the store (not the batch).
  std::function<Result<std::optional<AppendResult>>(const std::string&)> find_command;
  // The stream's current version in the store (not the batch).
  std::function<Result<uint64_t>(const std::string&)> stream_version;
};

// Fills `results` (one per request) and returns the appends to write, in order.
// Positions start after `head`. A lookup failure fails that request with its status.
std::vector<PlannedAppend> plan_append(const std::vector<AppendRequest>& batch, uint64_t head,
                                       const AppendLookups& lookups,
                                       std::vector<AppendResult>& results);

// Little helpers for the stores' binary encodings (big-endian keys sort numerically).
void put_u64_be(std::string& out, uint64_t v);
uint64_t get_u64_be(const char* p);
void put_bytes(std::string& out, const std::string& s);  // u32 length + bytes
bool get_bytes(const char*& p, const char* end, std::string* out);
bool get_u64(const char*& p, const char* end, uint64_t* out);

std::string encode_event(const RecordedEvent& e);   // without position (it is the key)
// The same encoding appended to `out` from its parts (the writer reuses one buffer for a
// group's events: no copy into a RecordedEvent, no allocation per event).
void append_event(std::string& out, const std::string& stream, uint64_t version, int64_t committed_at_us,
                  const std::string& command_id, const std::string& payload);
bool decode_event(std::string_view value, RecordedEvent* e);
std::string encode_result(const AppendResult& r);
bool decode_result(const std::string& value, AppendResult* r);

int64_t now_us();

}  // namespace orderflow::connectors
