// The benchmark workload of `orderflow bench`: client commands over many SKUs with a
// Zipf popularity, scarce stock, and a fixed seed.
//
// ZipfSampler draws ranks 0..n-1 with P(k) proportional to 1/(k+1)^s. WorkloadGenerator
// first stocks every SKU (a small quantity, so popular SKUs run out), then draws a mix of
// PlaceOrder, AddStock (restocking), CancelOrder and ShipOrder; cancels and shipments
// name orders placed earlier in the same sequence. The sequence depends only on the
// options (same seed, same commands). Both are plain values, not thread-safe; one per thread.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "orderflow.pb.h"

namespace orderflow::bench {

class ZipfSampler {
 public:
  // n >= 1 ranks; s >= 0 (0 = uniform, 1 = classic Zipf).
  ZipfSampler(size_t n, double s);
  size_t sample(std::mt19937_64& rng) const;
  double probability(size_t rank) const;  // exact model probability of a rank

 private:
  std::vector<double> cdf_;  // cumulative, normalised to 1
};

struct WorkloadOptions {
  size_t skus = 2000;          // distinct SKUs (default 2000)
  double zipf_s = 1.0;         // popularity skew (default 1.0)
  uint64_t seed = 42;          // default 42
  int initial_stock = 20;      // units per SKU before the first order (default 20: scarce)
  // Mix of the commands after the initial stocking, in percent (default 70/10/10/10).
  int place_pct = 70, restock_pct = 10, cancel_pct = 10, ship_pct = 10;
  int max_lines = 3;           // lines per order, 1..max_lines (default 3)
  std::string id_prefix;       // prepended to command and order ids (default none)
};

enum class CommandKind { kPlace = 0, kRestock = 1, kCancel = 2, kShip = 3 };

class WorkloadGenerator {
 public:
  explicit WorkloadGenerator(WorkloadOptions options);
  // The next command. The first `skus` commands stock every SKU.
  v1::Command next();
  // What the last next() returned.
  CommandKind last_kind() const { return last_kind_; }
  uint64_t generated() const { return n_; }
  static std::string sku_name(size_t rank) { return "SKU-" + std::to_string(rank); }

 private:
  const WorkloadOptions o_;
  std::mt19937_64 rng_;
  ZipfSampler zipf_;
  uint64_t n_ = 0;
  uint64_t orders_ = 0;
  std::deque<std::string> recent_;  // recently placed order ids (cancel and ship targets)
  CommandKind last_kind_ = CommandKind::kRestock;
};

// Convenience: the first `count` commands of a generator with these options.
std::vector<v1::Command> generate_workload(const WorkloadOptions& options, size_t count);

}  // namespace orderflow::bench
