// The framework with a domain it was not written for: `orderflow-bank` (the orderflow
// command line with tests/bank's domain registered) serves tests/bank/bank.yaml through the
// generic node kinds, the HTTP API and RocksDB, and its process manager settles transfers.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>

#include "tests/support/e2e_http.h"
#include "tests/support/server_process.h"
#include "tests/support/shell.h"

namespace {

namespace fs = std::filesystem;
using orderflow::testing::describe_wait_status;
using orderflow::testing::ServerProcess;
using namespace orderflow::testing::e2e;

const std::string kBankGraph = std::string(ORDERFLOW_SOURCE_DIR) + "/tests/bank/bank.yaml";

std::string open_account(const std::string& id) {
  return R"({"commandId":"open-)" + id + R"(","openAccount":{"accountId":")" + id + R"(","owner":"owner-)" + id + R"("}})";
}
std::string deposit(const std::string& cmd, const std::string& id, int64_t cents) {
  return R"({"commandId":")" + cmd + R"(","deposit":{"accountId":")" + id + R"(","amountCents":)" +
         std::to_string(cents) + "}}";
}
std::string transfer(const std::string& id, const std::string& from, const std::string& to, int64_t cents) {
  return R"({"commandId":"req-)" + id + R"(","requestTransfer":{"transferId":")" + id + R"(","from":")" + from +
         R"(","to":")" + to + R"(","amountCents":)" + std::to_string(cents) + "}}";
}

class BankE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }

  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "orderflow-bank-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    port_ = free_port();
    ASSERT_GT(port_, 0);
    server_ = std::make_unique<ServerProcess>(dir_ / "data", dir_ / "server.log", kBankGraph);
    server_->set_binary(ORDERFLOW_BANK_BINARY);
    ASSERT_TRUE(server_->start(port_));
    Http h(port_, 2s);
    ASSERT_TRUE(eventually([&] { return !server_->running() || h.get("/readyz").status == 200; }, 20s, 50ms));
    ASSERT_TRUE(server_->running()) << describe_wait_status(server_->last_status().value_or(0));
  }

  void TearDown() override {
    if (server_) server_->kill_now();
    if (HasFailure()) orderflow::testing::print_log_tail(dir_ / "server.log", 100);
    server_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  fs::path dir_;
  int port_ = 0;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(BankE2eTest, TransfersSettleAndMoneyIsConservedThroughTheGenericNodes) {
  Http h(port_);
  constexpr int kAccounts = 6;
  constexpr int64_t kDeposit = 1000;
  for (int i = 0; i < kAccounts; ++i) {
    const std::string id = "a" + std::to_string(i);
    Reply r = h.command(open_account(id));
    ASSERT_EQ(r.status, 200) << r.describe();
    EXPECT_EQ(str(r.json, "stream"), "acct-" + id);
    r = h.command(deposit("dep-" + id, id, kDeposit));
    ASSERT_EQ(r.status, 200) << r.describe();
  }
  // The domain's rules reach the client: a second open is 422, a process-manager step 400.
  Reply again = h.command(open_account("a0"));
  EXPECT_EQ(again.status, 200) << "same command id: the first result, " << again.describe();
  EXPECT_TRUE(flag(again.json, "duplicate")) << again.describe();
  Reply reopen = h.command(R"({"commandId":"open-a0-again","openAccount":{"accountId":"a0","owner":"x"}})");
  EXPECT_EQ(reopen.status, 422) << reopen.describe();
  Reply step = h.command(R"({"commandId":"d1","debit":{"accountId":"a0","transferId":"t","to":"a1","amountCents":1}})");
  EXPECT_EQ(step.status, 400) << step.describe();
  EXPECT_NE(step.text.find("clients may send openAccount, deposit, requestTransfer"), std::string::npos) << step.text;

  // Transfers: random ones among the accounts, one overdrawn, one to an account never opened.
  std::vector<std::string> ids;
  std::mt19937 rng(7);
  for (int i = 0; i < 40; ++i) {
    const int from = static_cast<int>(rng() % kAccounts);
    const int to = (from + 1 + static_cast<int>(rng() % (kAccounts - 1))) % kAccounts;
    ids.push_back("t" + std::to_string(i));
    Reply r = h.command(transfer(ids.back(), "a" + std::to_string(from), "a" + std::to_string(to), 1 + rng() % 400),
                        false);
    ASSERT_EQ(r.status, 202) << r.describe();
  }
  ASSERT_EQ(h.command(transfer("t-over", "a0", "a1", 50 * kDeposit), false).status, 202);
  ASSERT_EQ(h.command(transfer("t-ghost", "a2", "ghost", 100), false).status, 202);
  ids.push_back("t-over");
  ids.push_back("t-ghost");

  std::map<std::string, value> settled;
  const bool done = eventually(
      [&] {
        for (const auto& id : ids) {
          if (settled.count(id)) continue;
          Reply r = h.get("/api/v1/transfers/" + id);
          if (r.status == 200 && str(r.json, "status") != "requested") settled[id] = r.json;
        }
        return settled.size() == ids.size();
      },
      30s, 100ms);
  ASSERT_TRUE(done) << settled.size() << " of " << ids.size() << " transfers settled";
  EXPECT_EQ(str(settled["t-over"], "status"), "failed");
  EXPECT_EQ(str(settled["t-over"], "reason"), "insufficient funds");
  EXPECT_EQ(str(settled["t-ghost"], "status"), "failed");
  EXPECT_EQ(str(settled["t-ghost"], "reason"), "account ghost is not open") << "debited, then refunded";
  int completed = 0, failed = 0;
  for (const auto& [id, t] : settled) (str(t, "status") == "completed" ? completed : failed)++;
  EXPECT_GT(completed, 20);

  // Money is conserved and never negative, once the projection has every account's last event.
  int64_t total = 0;
  const bool balanced = eventually(
      [&] {
        total = 0;
        for (int i = 0; i < kAccounts; ++i) {
          Reply a = h.get("/api/v1/accounts/a" + std::to_string(i));
          if (a.status != 200 || num(a.json, "balanceCents") < 0) return false;
          total += num(a.json, "balanceCents");
        }
        return total == kAccounts * kDeposit;
      },
      20s, 100ms);
  EXPECT_TRUE(balanced) << "total " << total << ", deposited " << kAccounts * kDeposit;
  EXPECT_EQ(h.get("/api/v1/accounts/ghost").status, 404);
  EXPECT_EQ(h.get("/api/v1/orders/o1").status, 404) << "the order domain's queries are not this graph's";

  // The refund path as events, in the generic stream API.
  Reply evs = h.get("/api/v1/streams/acct-a2/events");
  ASSERT_EQ(evs.status, 200) << evs.describe();
  std::string types;
  for (const auto& e : *arr(evs.json, "events")) types += str(e, "type") + " ";
  EXPECT_NE(types.find("accountOpened deposited"), std::string::npos) << types;
  EXPECT_NE(types.find("refunded"), std::string::npos) << types;

  // The domain's running totals are the projection's counters.
  const bool counted = eventually(
      [&] {
        const std::string m = h.get("/metrics").text;
        return m.find("orderflow_transfers_completed_total{node=\"projection\",kind=\"projection\"} " +
                      std::to_string(completed) + "\n") != std::string::npos &&
               m.find("orderflow_transfers_failed_total{node=\"projection\",kind=\"projection\"} " +
                      std::to_string(failed) + "\n") != std::string::npos;
      },
      10s, 100ms);
  EXPECT_TRUE(counted) << h.get("/metrics").text.substr(0, 3000);
  EXPECT_EQ(h.get("/metrics").text.find("orders_confirmed"), std::string::npos);

  const auto status = server_->terminate(20s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << describe_wait_status(*status);
}

TEST(BankCli, OnlyABinaryWithTheDomainRunsItsGraph) {
  const auto standard = orderflow::testing::run_shell(std::string(ORDERFLOW_BINARY) + " validate " + kBankGraph);
  EXPECT_EQ(standard.exit_code, 2) << standard.output;
  EXPECT_NE(standard.output.find("bank.yaml:4:9: error: unknown domain 'bank' (known: orders)"), std::string::npos)
      << standard.output;
  const auto bank = orderflow::testing::run_shell(std::string(ORDERFLOW_BANK_BINARY) + " validate " + kBankGraph);
  EXPECT_EQ(bank.exit_code, 0) << bank.output;
  EXPECT_NE(bank.output.find(": ok (7 nodes, 7 edges)"), std::string::npos) << bank.output;
}

}  // namespace
