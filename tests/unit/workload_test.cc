// The `orderflow bench` workload: Zipf sampling and the command mix, deterministic per seed.
#include <gtest/gtest.h>
#include <google/protobuf/util/message_differencer.h>

#include <map>
#include <set>

#include "bench/workload.h"
#include "domain/orders/orders.h"

namespace orderflow::bench {
namespace {

TEST(ZipfSampler, SameSeedSameSequence) {
  ZipfSampler z(1000, 1.0);
  std::mt19937_64 a(7), b(7), c(8);
  std::vector<size_t> sa, sb, sc;
  for (int i = 0; i < 1000; ++i) {
    sa.push_back(z.sample(a));
    sb.push_back(z.sample(b));
    sc.push_back(z.sample(c));
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
}

TEST(ZipfSampler, FrequenciesFollowTheModel) {
  const size_t n = 2000;
  ZipfSampler z(n, 1.0);
  // P(rank 0) = 1 / H(2000) = 1 / 8.178 = 0.1223; P(k) = P(0) / (k + 1).
  EXPECT_NEAR(z.probability(0), 0.1223, 0.0005);
  EXPECT_NEAR(z.probability(9), z.probability(0) / 10, 1e-9);
  std::mt19937_64 rng(1);
  std::vector<int> counts(n);
  const int draws = 200000;
  for (int i = 0; i < draws; ++i) {
    const size_t k = z.sample(rng);
    ASSERT_LT(k, n);
    ++counts[k];
  }
  for (size_t k : {0, 1, 4, 9}) EXPECT_NEAR(counts[k] / double(draws), z.probability(k), 0.01) << "rank " << k;
  EXPECT_GT(counts[0], counts[1]);
  EXPECT_GT(counts[1], counts[4]);
  // The top 1% of SKUs takes far more than 1% of the draws: H(20) / H(2000) = 0.44.
  int top = 0;
  for (size_t k = 0; k < n / 100; ++k) top += counts[k];
  EXPECT_NEAR(top / double(draws), 0.44, 0.01);
}

TEST(ZipfSampler, ExponentZeroIsUniform) {
  ZipfSampler z(10, 0.0);
  std::mt19937_64 rng(3);
  std::vector<int> counts(10);
  for (int i = 0; i < 100000; ++i) ++counts[z.sample(rng)];
  for (int c : counts) EXPECT_NEAR(c / 100000.0, 0.1, 0.01);
}

TEST(Workload, DeterministicForASeed) {
  WorkloadOptions o;
  o.skus = 50;
  const auto a = generate_workload(o, 3000);
  const auto b = generate_workload(o, 3000);
  ASSERT_EQ(a.size(), 3000u);
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_TRUE(google::protobuf::util::MessageDifferencer::Equals(a[i], b[i])) << "command " << i;
  o.seed = 43;
  const auto c = generate_workload(o, 3000);
  size_t same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += google::protobuf::util::MessageDifferencer::Equals(a[i], c[i]);
  EXPECT_LT(same, 100u) << "another seed gives another workload (the stocking commands match)";
}

TEST(Workload, StocksEverySkuFirstThenMixesAsConfigured) {
  WorkloadOptions o;
  o.skus = 100;
  o.initial_stock = 7;
  WorkloadGenerator g(o);
  for (size_t i = 0; i < o.skus; ++i) {
    const auto c = g.next();
    ASSERT_TRUE(c.has_add_stock());
    EXPECT_EQ(c.add_stock().sku(), WorkloadGenerator::sku_name(i));
    EXPECT_EQ(c.add_stock().quantity(), 7);
  }
  std::map<CommandKind, int> kinds;
  std::set<std::string> ids, placed;
  const int n = 40000;
  for (int i = 0; i < n; ++i) {
    const auto c = g.next();
    ASSERT_TRUE(orders::validate_command(c)) << c.ShortDebugString();
    ASSERT_TRUE(orders::is_public_command(c));
    ASSERT_TRUE(ids.insert(c.command_id()).second) << "command ids are unique";
    ++kinds[g.last_kind()];
    switch (g.last_kind()) {
      case CommandKind::kPlace:
        ASSERT_TRUE(c.has_place_order());
        placed.insert(c.place_order().order_id());
        break;
      case CommandKind::kRestock:
        ASSERT_TRUE(c.has_add_stock());
        break;
      case CommandKind::kCancel:
        ASSERT_TRUE(c.has_cancel_order());
        EXPECT_TRUE(placed.count(c.cancel_order().order_id())) << "cancels name an order placed before";
        break;
      case CommandKind::kShip:
        ASSERT_TRUE(c.has_ship_order());
        EXPECT_TRUE(placed.count(c.ship_order().order_id())) << "shipments name an order placed before";
        break;
    }
  }
  EXPECT_NEAR(kinds[CommandKind::kPlace] / double(n), 0.70, 0.02);
  EXPECT_NEAR(kinds[CommandKind::kRestock] / double(n), 0.10, 0.02);
  EXPECT_NEAR(kinds[CommandKind::kCancel] / double(n), 0.10, 0.02);
  EXPECT_NEAR(kinds[CommandKind::kShip] / double(n), 0.10, 0.02);
}

TEST(Workload, OrdersConcentrateOnPopularSkus) {
  WorkloadOptions o;
  o.skus = 1000;
  std::map<std::string, int> line_count;
  int lines = 0;
  for (const auto& c : generate_workload(o, 30000)) {
    if (!c.has_place_order()) continue;
    for (const auto& l : c.place_order().lines()) {
      ++line_count[l.sku()];
      ++lines;
    }
  }
  // SKU-0 is the most popular: about 1/H(1000) ~ 13% of lines (a little less, since an
  // order lists a SKU once).
  EXPECT_GT(line_count["SKU-0"] / double(lines), 0.10);
  EXPECT_GT(line_count["SKU-0"], 5 * line_count["SKU-9"] / 2);
  // And demand on it far exceeds its initial stock: stock is scarce.
  EXPECT_GT(line_count["SKU-0"], 10 * o.initial_stock);
}

}  // namespace
}  // namespace orderflow::bench
