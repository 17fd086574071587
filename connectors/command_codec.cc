#include "connectors/command_codec.h"

#include <algorithm>
#include <cctype>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include <cstdint>
#include <limits>

namespace orderflow::connectors {

namespace {

using google::protobuf::FieldDescriptor;

// The common shape of a client's JSON command, parsed straight into the message by
// reflection: objects, arrays, plain strings (printable ASCII, no escapes), integers without
// fraction or exponent, true/false, into string, integer, bool and message fields named by
// their JSON or proto name. Anything else -- an escape, a non-ASCII byte, null, a float, an
// enum, a repeated key, a second member of a oneof, an unknown name, bad JSON -- makes it
// answer false, and protobuf's own parser (JsonStringToMessage, 5-10x the CPU: most of the
// Kafka source thread's time) decides from scratch, with its error messages. So it accepts
// a subset of what protobuf accepts, into the same message (fuzz_command_decode checks both).
class FastJson {
 public:
  explicit FastJson(std::string_view in) : p_(in.data()), end_(in.data() + in.size()) {}

  bool parse(google::protobuf::Message* m) {
    if (!object(m, 0)) return false;
    ws();
    return p_ == end_;
  }

 private:
  static constexpr int kMaxDepth = 8;

  void ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool eat(char c) {
    ws();
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }
  bool peek(char c) {
    ws();
    return p_ < end_ && *p_ == c;
  }
  // A string of printable ASCII without escapes, as a view into the input.
  bool plain_string(std::string_view* out) {
    if (!eat('"')) return false;
    const char* start = p_;
    while (p_ < end_ && *p_ != '"') {
      const unsigned char c = static_cast<unsigned char>(*p_);
      if (c < 0x20 || c >= 0x7f || c == '\\') return false;
      ++p_;
    }
    if (p_ == end_) return false;
    *out = std::string_view(start, static_cast<size_t>(p_ - start));
    ++p_;
    return true;
  }
  // -?(0|[1-9][0-9]*), at most 19 digits, not followed by a fraction or exponent; not "-0".
  bool integer(int64_t* out) {
    ws();
    bool neg = false;
    if (p_ < end_ && *p_ == '-') {
      neg = true;
      ++p_;
    }
    const char* start = p_;
    uint64_t v = 0;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
      v = v * 10 + static_cast<uint64_t>(*p_ - '0');
      ++p_;
      if (p_ - start > 18) return false;
    }
    const auto digits = p_ - start;
    if (digits == 0 || (digits > 1 && *start == '0') || (neg && v == 0)) return false;
    if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return false;
    *out = neg ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
    return true;
  }
  bool literal(std::string_view word) {
    ws();
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }

  // One value of `f` (an element, when f is repeated).
  bool value(google::protobuf::Message* m, const FieldDescriptor* f, int depth) {
    const auto* r = m->GetReflection();
    const bool rep = f->is_repeated();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING: {
        if (f->type() != FieldDescriptor::TYPE_STRING) return false;  // bytes: base64
        std::string_view sv;
        if (!plain_string(&sv)) return false;
        if (rep) r->AddString(m, f, std::string(sv));
        else r->SetString(m, f, std::string(sv));
        return true;
      }
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64:
      case FieldDescriptor::CPPTYPE_UINT32: {
        int64_t v = 0;
        if (!integer(&v)) return false;
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_INT32) {
          if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) return false;
          if (rep) r->AddInt32(m, f, static_cast<int32_t>(v));
          else r->SetInt32(m, f, static_cast<int32_t>(v));
        } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_UINT32) {
          if (v < 0 || v > std::numeric_limits<uint32_t>::max()) return false;
          if (rep) r->AddUInt32(m, f, static_cast<uint32_t>(v));
          else r->SetUInt32(m, f, static_cast<uint32_t>(v));
        } else {
          if (rep) r->AddInt64(m, f, v);
          else r->SetInt64(m, f, v);
        }
        return true;
      }
      case FieldDescriptor::CPPTYPE_BOOL: {
        bool b = false;
        if (literal("true")) b = true;
        else if (!literal("false")) return false;
        if (rep) r->AddBool(m, f, b);
        else r->SetBool(m, f, b);
        return true;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE: {
        if (f->is_map() || f->message_type()->well_known_type() != google::protobuf::Descriptor::WELLKNOWNTYPE_UNSPECIFIED)
          return false;
        if (!peek('{')) return false;
        return object(rep ? r->AddMessage(m, f) : r->MutableMessage(m, f), depth + 1);
      }
      default:
        return false;  // enums, floats, uint64: protobuf's parser
    }
  }

  // By JSON name, then by proto name (protobuf's parser takes either); a command's
  // messages have a handful of fields, so a scan beats building a key.
  static const FieldDescriptor* field(const google::protobuf::Descriptor* d, std::string_view key) {
    for (int i = 0; i < d->field_count(); ++i)
      if (d->field(i)->json_name() == key) return d->field(i);
    for (int i = 0; i < d->field_count(); ++i)
      if (d->field(i)->name() == key) return d->field(i);
    return nullptr;
  }

  bool object(google::protobuf::Message* m, int depth) {
    if (depth > kMaxDepth || !eat('{')) return false;
    const auto* d = m->GetDescriptor();
    uint64_t seen = 0;  // by field index; a message of more than 64 fields is left to protobuf
    if (d->field_count() > 64) return false;
    if (eat('}')) return true;
    for (;;) {
      std::string_view key;
      if (!plain_string(&key) || !eat(':')) return false;
      const FieldDescriptor* f = field(d, key);
      if (f == nullptr) return false;
      const uint64_t bit = uint64_t{1} << f->index();
      if ((seen & bit) != 0) return false;
      seen |= bit;
      if (const auto* o = f->containing_oneof(); o != nullptr) {
        for (int i = 0; i < o->field_count(); ++i)
          if (o->field(i) != f && (seen & (uint64_t{1} << o->field(i)->index())) != 0) return false;
      }
      if (f->is_repeated()) {
        if (!eat('[')) return false;
        if (!eat(']')) {
          do {
            if (!value(m, f, depth)) return false;
          } while (eat(','));
          if (!eat(']')) return false;
        }
      } else if (!value(m, f, depth)) {
        return false;
      }
      if (eat('}')) return true;
      if (!eat(',')) return false;
    }
  }

  const char* p_;
  const char* end_;
};

}  // namespace

bool parse_plain_json(std::string_view body, google::protobuf::Message* m) {
  if (FastJson(body).parse(m)) return true;
  m->Clear();
  return false;
}

Result<CommandFormat> command_format(std::string_view content_type) {
  std::string t(content_type.substr(0, content_type.find(';')));
  t.erase(std::remove_if(t.begin(), t.end(), [](unsigned char c) { return std::isspace(c); }), t.end());
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t.empty() || t == "application/json") return CommandFormat::kJson;
  if (t == "application/x-protobuf" || t == "application/protobuf" || t == "application/vnd.google.protobuf")
    return CommandFormat::kBinary;
  return Status::invalid_argument("unsupported content type '" + std::string(content_type) +
                                  "' (use application/json or application/x-protobuf)");
}

Result<MessagePtr> decode_command(const Domain& domain, std::string_view body, CommandFormat format,
                                  const std::string& default_id) {
  MessagePtr cmd = domain.new_command();
  if (format == CommandFormat::kJson && parse_plain_json(body, cmd.get())) {
    // the common shape, parsed without protobuf's converter
  } else if (format == CommandFormat::kJson) {
    google::protobuf::util::JsonParseOptions opts;
    opts.ignore_unknown_fields = false;
    auto parsed = google::protobuf::util::JsonStringToMessage(
        google::protobuf::StringPiece(body.data(), body.size()), cmd.get(), opts);
    if (!parsed.ok()) {
      // protobuf appends the input's context and a caret on further lines: keep the sentence.
      std::string why(parsed.message());
      why = why.substr(0, why.find('\n'));
      return Status::invalid_argument("not a valid command: " + why);
    }
  } else if (!cmd->ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return Status::invalid_argument("not a valid command: cannot parse the binary protobuf " +
                                    cmd->GetDescriptor()->name());
  }
  if (domain.command_id(*cmd).empty() && !default_id.empty()) domain.set_command_id(*cmd, default_id);
  // The process manager's commands carry ids derived from their triggering event
  // ("saga/..."); a client's command holding one would make the saga's own command a
  // refused reuse.
  const std::string& id = domain.command_id(*cmd);
  if (id.rfind("saga/", 0) == 0)
    return Status::invalid_argument("commandId '" + id + "': ids starting with 'saga/' are the saga's");
  const std::string name = domain.command_name(*cmd);
  if (name.empty())
    return Status::invalid_argument("command has no kind (or one this server does not know): clients send one of " +
                                    domain.public_commands());
  if (!domain.is_public(*cmd))
    return Status::invalid_argument(name + " is issued by the saga only; clients may send " + domain.public_commands());
  if (auto s = domain.validate(*cmd); !s) return s;
  return cmd;
}

}  // namespace orderflow::connectors
