#include "bench/workload.h"

#include <algorithm>
#include <cmath>

namespace orderflow::bench {

ZipfSampler::ZipfSampler(size_t n, double s) : cdf_(std::max<size_t>(n, 1)) {
  double sum = 0;
  for (size_t k = 0; k < cdf_.size(); ++k) cdf_[k] = sum += 1.0 / std::pow(static_cast<double>(k + 1), s);
  for (auto& c : cdf_) c /= sum;
  cdf_.back() = 1.0;
}

size_t ZipfSampler::sample(std::mt19937_64& rng) const {
  const double x = std::uniform_real_distribution<double>(0, 1)(rng);
  return static_cast<size_t>(std::upper_bound(cdf_.begin(), cdf_.end(), x) - cdf_.begin()) % cdf_.size();
}

double ZipfSampler::probability(size_t rank) const {
  if (rank >= cdf_.size()) return 0;
  return rank == 0 ? cdf_[0] : cdf_[rank] - cdf_[rank - 1];
}

WorkloadGenerator::WorkloadGenerator(WorkloadOptions options)
    : o_(std::move(options)), rng_(o_.seed), zipf_(o_.skus, o_.zipf_s) {}

v1::Command WorkloadGenerator::next() {
  v1::Command c;
  c.set_command_id(o_.id_prefix + "c" + std::to_string(n_));
  if (n_ < o_.skus) {
    auto* a = c.mutable_add_stock();
    a->set_sku(sku_name(n_));
    a->set_quantity(o_.initial_stock);
    last_kind_ = CommandKind::kRestock;
    ++n_;
    return c;
  }
  ++n_;
  const int total = o_.place_pct + o_.restock_pct + o_.cancel_pct + o_.ship_pct;
  int roll = static_cast<int>(rng_() % static_cast<uint64_t>(std::max(total, 1)));
  CommandKind kind = CommandKind::kPlace;
  if ((roll -= o_.place_pct) >= 0) kind = CommandKind::kRestock;
  if (kind == CommandKind::kRestock && (roll -= o_.restock_pct) >= 0) kind = CommandKind::kCancel;
  if (kind == CommandKind::kCancel && (roll -= o_.cancel_pct) >= 0) kind = CommandKind::kShip;
  // Nothing to cancel or ship yet: place an order instead.
  if ((kind == CommandKind::kCancel || kind == CommandKind::kShip) && recent_.empty()) kind = CommandKind::kPlace;
  last_kind_ = kind;
  switch (kind) {
    case CommandKind::kPlace: {
      const std::string order = o_.id_prefix + "o" + std::to_string(orders_++);
      auto* p = c.mutable_place_order();
      p->set_order_id(order);
      p->set_customer_id("cust-" + std::to_string(rng_() % 1000));
      const int lines = 1 + static_cast<int>(rng_() % static_cast<uint64_t>(std::max(o_.max_lines, 1)));
      std::vector<size_t> used;
      for (int l = 0; l < lines; ++l) {
        const size_t s = zipf_.sample(rng_);
        if (std::find(used.begin(), used.end(), s) != used.end()) continue;  // lines are unique per SKU
        used.push_back(s);
        auto* line = p->add_lines();
        line->set_sku(sku_name(s));
        line->set_quantity(1 + static_cast<int>(rng_() % 3));
        line->set_unit_price_cents(100 + static_cast<int>(rng_() % 10000));
      }
      recent_.push_back(order);
      if (recent_.size() > 1000) recent_.pop_front();
      break;
    }
    case CommandKind::kRestock: {
      auto* a = c.mutable_add_stock();
      a->set_sku(sku_name(zipf_.sample(rng_)));
      a->set_quantity(5 + static_cast<int>(rng_() % 20));
      break;
    }
    case CommandKind::kCancel:
      c.mutable_cancel_order()->set_order_id(recent_[rng_() % recent_.size()]);
      c.mutable_cancel_order()->set_reason("customer request");
      break;
    case CommandKind::kShip:
      c.mutable_ship_order()->set_order_id(recent_[rng_() % recent_.size()]);
      break;
  }
  return c;
}

std::vector<v1::Command> generate_workload(const WorkloadOptions& options, size_t count) {
  WorkloadGenerator g(options);
  std::vector<v1::Command> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) out.push_back(g.next());
  return out;
}

}  // namespace orderflow::bench
