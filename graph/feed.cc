#include "graph/feed.h"

namespace orderflow {

void BatchTicket::add(int n) {
  std::lock_guard lock(mu_);
  pending_ += n;
}

void BatchTicket::finish(const Status& s) {
  std::lock_guard lock(mu_);
  if (!s.is_ok() && error_.is_ok()) error_ = s;
  if (--pending_ == 0) cv_.notify_all();
}

bool BatchTicket::done() const {
  std::lock_guard lock(mu_);
  return pending_ == 0;
}

bool BatchTicket::wait_for(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return pending_ == 0; });
}

Status BatchTicket::status() const {
  std::lock_guard lock(mu_);
  return error_;
}

}  // namespace orderflow
