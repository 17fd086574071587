// A minimal JSON writer for metrics and API responses (no parsing; commands are parsed
// with protobuf's JSON mapping). Not thread-safe; one writer per document.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace orderflow {

std::string json_escape(std::string_view s);  // with the surrounding quotes

class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);
  JsonWriter& value(std::string_view v);
  JsonWriter& value(const char* v) { return value(std::string_view(v)); }
  JsonWriter& value(const std::string& v) { return value(std::string_view(v)); }
  JsonWriter& value(int64_t v);
  JsonWriter& value(uint64_t v);
  JsonWriter& value(int v) { return value(static_cast<int64_t>(v)); }
  JsonWriter& value(double v);
  JsonWriter& value(bool v);
  JsonWriter& raw(std::string_view json);  // an already-encoded JSON value
  template <typename T>
  JsonWriter& field(std::string_view k, const T& v) { return key(k).value(v); }
  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void comma();
  std::string out_;
  bool need_comma_ = false;
};

}  // namespace orderflow
