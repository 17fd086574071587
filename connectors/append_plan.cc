#include "connectors/append_plan.h"

#include <chrono>

#include <absl/container/flat_hash_map.h>

#include "graph/domain.h"

namespace orderflow::connectors {

std::vector<PlannedAppend> plan_append(const std::vector<AppendRequest>& batch, uint64_t head,
                                       const AppendLookups& lookups,
                                       std::vector<AppendResult>& results) {
  results.assign(batch.size(), AppendResult{});
  std::vector<PlannedAppend> plan;
  // Keyed by views into `batch`, which outlives them: no string copied per request.
  absl::flat_hash_map<std::string_view, size_t> batch_commands;   // command id -> request index
  absl::flat_hash_map<std::string_view, uint64_t> batch_versions; // stream -> version after batch so far
  absl::flat_hash_map<std::string_view, uint64_t> failed_chains;  // stream -> highest failed chain
  batch_commands.reserve(batch.size());  // no rehash while a group of a thousand is planned
  batch_versions.reserve(batch.size());
  uint64_t position = head;
  // The first result of the request's command id: from earlier in this batch when it was
  // written there (nothing when it failed there), else from the store.
  auto first_result = [&](const AppendRequest& req) -> Result<std::optional<AppendResult>> {
    if (auto it = batch_commands.find(req.command_id); it != batch_commands.end()) {
      const AppendResult& first = results[it->second];
      if (!first.status.is_ok()) return std::optional<AppendResult>();
      return std::optional<AppendResult>(first);
    }
    return lookups.find_command(req.command_id);
  };
  auto answer_as_duplicate = [](AppendResult& res, const AppendResult& first) {
    res = first;
    res.status = Status::ok();
    res.duplicate = true;
  };
  for (size_t i = 0; i < batch.size(); ++i) {
    const AppendRequest& req = batch[i];
    AppendResult& res = results[i];
    res.stream = req.stream;
    struct MarkChain {  // records a failed or duplicate request of a chain on scope exit
      const AppendRequest& req;
      const AppendResult& res;
      absl::flat_hash_map<std::string_view, uint64_t>& failed;
      ~MarkChain() {
        if (req.chain == 0 || (res.status.is_ok() && !res.duplicate)) return;
        uint64_t& f = failed[req.stream];
        f = std::max(f, req.chain);
      }
    } mark{req, res, failed_chains};
    if (req.chain != 0 || req.chain_failed) {
      auto f = failed_chains.find(req.stream);
      if (req.chain_failed || (f != failed_chains.end() && f->second >= req.chain)) {
        // Decided on state that held the failed request's events: it must be decided again,
        // unless it is a repeat of a written command, whose answer is its first result
        // whatever it was decided on. A redelivered batch of repeats (a saga reaction read
        // again after a lease moved) then settles in this one round, not one per round.
        if (!req.command_id.empty()) {
          auto first = first_result(req);
          if (first && first->has_value() && (**first).stream == req.stream) {
            answer_as_duplicate(res, **first);
            continue;
          }
        }
        res.status = Status::conflict("stream " + req.stream + ": an earlier command of the same decision chain failed");
        continue;
      }
    }
    auto current_version = [&]() -> Result<uint64_t> {
      if (auto it = batch_versions.find(req.stream); it != batch_versions.end()) return it->second;
      return lookups.stream_version(req.stream);
    };
    auto conflict = [&](uint64_t current) {
      res.status = Status::conflict("stream " + req.stream + " is at version " + std::to_string(current) +
                                    ", expected " + std::to_string(req.expected_version));
      res.actual_version = current;
      batch_versions[req.stream] = current;
    };
    if (req.verify_only) {  // a check of the version a rejection was decided on: writes nothing
      if (req.stream.empty() || !req.events.empty()) {
        res.status = Status::invalid_argument("a version check needs a stream and no events");
        continue;
      }
      auto v = current_version();
      if (!v) {
        res.status = v.status();
      } else if (*v != req.expected_version) {
        conflict(*v);
      } else {
        res.actual_version = *v;
      }
      if (res.status.is_ok() && !req.command_id.empty() && !batch_commands.count(req.command_id)) {
        auto found = lookups.find_command(req.command_id);
        if (!found) {
          res.status = found.status();
        } else if (found->has_value() && (**found).stream != req.stream) {
          res.status = command_id_taken(req.command_id, (**found).stream);
        } else if (found->has_value()) {
          answer_as_duplicate(res, **found);
        }
      }
      continue;
    }
    if (req.events.empty() || req.stream.empty() || req.command_id.empty()) {
      res.status = Status::invalid_argument("append needs a stream, a command id and events");
      continue;
    }
    // Idempotency: the same id earlier in this batch, then the store.
    // An id already used on another stream names a different command: refused.
    auto first = first_result(req);
    if (!first) {
      res.status = first.status();
      continue;
    }
    if (first->has_value()) {
      if ((**first).stream != req.stream) {
        res.status = command_id_taken(req.command_id, (**first).stream);
      } else {
        answer_as_duplicate(res, **first);
      }
      continue;
    }
    auto v = current_version();
    if (!v) {
      res.status = v.status();
      continue;
    }
    const uint64_t current = *v;
    if (current != req.expected_version) {
      conflict(current);
      continue;
    }
    const uint64_t n = req.events.size();
    res.first_version = current + 1;
    res.last_version = current + n;
    res.first_position = position + 1;
    res.last_position = position + n;
    position += n;
    batch_versions[req.stream] = res.last_version;
    batch_commands.emplace(req.command_id, i);
    plan.push_back({i, res.first_version, res.first_position});
  }
  return plan;
}

void put_u64_be(std::string& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}

uint64_t get_u64_be(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

void put_bytes(std::string& out, const std::string& s) {
  const uint32_t n = static_cast<uint32_t>(s.size());
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>((n >> (i * 8)) & 0xff));
  out.append(s);
}

bool get_bytes(const char*& p, const char* end, std::string* out) {
  if (end - p < 4) return false;
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n = (n << 8) | static_cast<unsigned char>(p[i]);
  p += 4;
  if (static_cast<uint64_t>(end - p) < n) return false;
  out->assign(p, n);
  p += n;
  return true;
}

bool get_u64(const char*& p, const char* end, uint64_t* out) {
  if (end - p < 8) return false;
  *out = get_u64_be(p);
  p += 8;
  return true;
}

void append_event(std::string& out, const std::string& stream, uint64_t version, int64_t committed_at_us,
                  const std::string& command_id, const std::string& payload) {
  out.reserve(out.size() + stream.size() + command_id.size() + payload.size() + 28);
  put_bytes(out, stream);
  put_u64_be(out, version);
  put_u64_be(out, static_cast<uint64_t>(committed_at_us));
  put_bytes(out, command_id);
  put_bytes(out, payload);
}

std::string encode_event(const RecordedEvent& e) {
  std::string out;
  append_event(out, e.stream, e.version, e.committed_at_us, e.command_id, e.payload);
  return out;
}

bool decode_event(std::string_view value, RecordedEvent* e) {
  const char* p = value.data();
  const char* end = p + value.size();
  uint64_t at = 0;
  bool ok = get_bytes(p, end, &e->stream) && get_u64(p, end, &e->version) && get_u64(p, end, &at) &&
            get_bytes(p, end, &e->command_id) && get_bytes(p, end, &e->payload);
  e->committed_at_us = static_cast<int64_t>(at);
  return ok && p == end;
}

std::string encode_result(const AppendResult& r) {
  std::string out;
  put_bytes(out, r.stream);
  put_u64_be(out, r.first_version);
  put_u64_be(out, r.last_version);
  put_u64_be(out, r.first_position);
  put_u64_be(out, r.last_position);
  return out;
}

bool decode_result(const std::string& value, AppendResult* r) {
  const char* p = value.data();
  const char* end = p + value.size();
  return get_bytes(p, end, &r->stream) && get_u64(p, end, &r->first_version) &&
         get_u64(p, end, &r->last_version) && get_u64(p, end, &r->first_position) &&
         get_u64(p, end, &r->last_position) && p == end;
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace orderflow::connectors
