// Status and Result<T>: the error currency of orderflow's connector and builder APIs.
//
// Modelled on leveldb::Status: a cheap value type, OK or a code plus a message.
// Foreign errors (RocksDB, HTTP, librdkafka) are mapped to these codes in one place
// per connector. Thread-safety: values; copy freely.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace orderflow {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // malformed input: never retried
  kNotFound,
  kConflict,           // optimistic concurrency: expected version did not match
  kRejected,           // the domain refused the command
  kUnavailable,        // overload or a peer is down: retriable
  kIoError,            // storage failure: sticky for stores
  kInternal,
};

const char* status_code_name(StatusCode code);

class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }
  static Status invalid_argument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status conflict(std::string m) { return {StatusCode::kConflict, std::move(m)}; }
  static Status rejected(std::string m) { return {StatusCode::kRejected, std::move(m)}; }
  static Status unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status io_error(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
  static Status internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // Worth trying again later (overload, a peer restarting, a lost race).
  bool is_retriable() const {
    return code_ == StatusCode::kUnavailable || code_ == StatusCode::kConflict;
  }
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// A value or the Status that explains why there is none.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT

  bool is_ok() const { return value_.has_value(); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace orderflow
