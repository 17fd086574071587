// Encoding of a ParkedCommand (graph/store.h): fields in a fixed order, each string as a
// varint length and its bytes, each number as a varint. Not a wire format shared with
// anything else; a record written by a newer version with more fields decodes its prefix.
#include "graph/store.h"

namespace orderflow {
namespace {

void put_varint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void put_text(std::string* out, const std::string& s) {
  put_varint(out, s.size());
  out->append(s);
}

bool get_varint(const std::string& in, size_t* at, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && *at < in.size(); shift += 7) {
    const auto b = static_cast<unsigned char>(in[(*at)++]);
    *v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

bool get_text(const std::string& in, size_t* at, std::string* s) {
  uint64_t n = 0;
  if (!get_varint(in, at, &n) || n > in.size() - *at) return false;
  s->assign(in, *at, n);
  *at += n;
  return true;
}

}  // namespace

std::string encode_parked(const ParkedCommand& p) {
  std::string out;
  out.reserve(64 + p.command.size() + p.reason.size());
  put_varint(&out, 1);  // format version
  for (const std::string* s : {&p.node, &p.command_id, &p.command_name, &p.stream, &p.command, &p.event_stream, &p.reason})
    put_text(&out, *s);
  put_varint(&out, p.event_version);
  put_varint(&out, p.event_position);
  put_varint(&out, p.attempts);
  put_varint(&out, static_cast<uint64_t>(p.parked_at_ms));
  return out;
}

bool decode_parked(const std::string& bytes, ParkedCommand* out) {
  size_t at = 0;
  uint64_t format = 0, at_ms = 0;
  if (!get_varint(bytes, &at, &format) || format != 1) return false;
  for (std::string* s : {&out->node, &out->command_id, &out->command_name, &out->stream, &out->command,
                         &out->event_stream, &out->reason})
    if (!get_text(bytes, &at, s)) return false;
  if (!get_varint(bytes, &at, &out->event_version) || !get_varint(bytes, &at, &out->event_position) ||
      !get_varint(bytes, &at, &out->attempts) || !get_varint(bytes, &at, &at_ms))
    return false;
  out->parked_at_ms = static_cast<int64_t>(at_ms);
  return true;
}

}  // namespace orderflow
