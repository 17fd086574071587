#include "tests/bank/bank_domain.h"

#include "bank.pb.h"
#include "graph/json.h"

namespace orderflow::bank {
namespace {

using Cmd = v1::Command;
using Ev = v1::Event;
using State = v1::StreamState;

const Cmd& cmd(const Message& m) { return static_cast<const Cmd&>(m); }
const Ev& ev(const Message& m) { return static_cast<const Ev&>(m); }
const State& state(const Message& m) { return static_cast<const State&>(m); }

std::string account(const std::string& id) { return "acct-" + id; }
std::string transfer(const std::string& id) { return "xfer-" + id; }

Status bad(const std::string& m) { return Status::invalid_argument(m); }
Status no(const std::string& m) { return Status::rejected(m); }

Status check_id(const std::string& what, const std::string& id) {
  if (id.empty()) return bad(what + " is required");
  for (unsigned char c : id)
    if (c < 0x21 || c > 0x7e || c == '/' || c == '?' || c == '#') return bad(what + " has a character not allowed");
  return Status::ok();
}

Status check_amount(int64_t cents) {
  return cents > 0 && cents <= 100000000 ? Status::ok() : bad("amountCents must be from 1 to 100000000");
}

MessagePtr one(Ev e) { return std::make_unique<Ev>(std::move(e)); }

Status decide_account(const v1::Account& a, const Cmd& c, std::vector<MessagePtr>* out) {
  Ev e;
  switch (c.kind_case()) {
    case Cmd::kOpenAccount:
      if (a.open()) return no("account " + a.account_id() + " is already open");
      e.mutable_account_opened()->set_account_id(c.open_account().account_id());
      e.mutable_account_opened()->set_owner(c.open_account().owner());
      break;
    case Cmd::kDeposit:
      if (!a.open()) return no("account " + c.deposit().account_id() + " is not open");
      *e.mutable_deposited() = v1::Deposited();
      e.mutable_deposited()->set_account_id(c.deposit().account_id());
      e.mutable_deposited()->set_amount_cents(c.deposit().amount_cents());
      break;
    case Cmd::kDebit: {
      const auto& d = c.debit();
      if (!a.open() || a.balance_cents() < d.amount_cents()) {
        auto* r = e.mutable_debit_refused();
        r->set_account_id(d.account_id());
        r->set_transfer_id(d.transfer_id());
        r->set_reason(!a.open() ? "account " + d.account_id() + " is not open" : "insufficient funds");
      } else {
        auto* x = e.mutable_debited();
        x->set_account_id(d.account_id());
        x->set_transfer_id(d.transfer_id());
        x->set_to(d.to());
        x->set_amount_cents(d.amount_cents());
      }
      break;
    }
    case Cmd::kCredit: {
      const auto& d = c.credit();
      if (!a.open()) {
        auto* r = e.mutable_credit_refused();
        r->set_account_id(d.account_id());
        r->set_transfer_id(d.transfer_id());
        r->set_from(d.from());
        r->set_amount_cents(d.amount_cents());
        r->set_reason("account " + d.account_id() + " is not open");
      } else {
        auto* x = e.mutable_credited();
        x->set_account_id(d.account_id());
        x->set_transfer_id(d.transfer_id());
        x->set_amount_cents(d.amount_cents());
      }
      break;
    }
    case Cmd::kRefund: {
      auto* x = e.mutable_refunded();
      x->set_account_id(c.refund().account_id());
      x->set_transfer_id(c.refund().transfer_id());
      x->set_amount_cents(c.refund().amount_cents());
      x->set_reason(c.refund().reason());
      break;
    }
    default:
      return no("command does not apply to an account");
  }
  out->push_back(one(std::move(e)));
  return Status::ok();
}

Status decide_transfer(const v1::Transfer& t, bool exists, const Cmd& c, std::vector<MessagePtr>* out) {
  Ev e;
  switch (c.kind_case()) {
    case Cmd::kRequestTransfer: {
      if (exists) return no("transfer " + t.transfer_id() + " already exists");
      const auto& r = c.request_transfer();
      auto* x = e.mutable_transfer_requested();
      x->set_transfer_id(r.transfer_id());
      x->set_from(r.from());
      x->set_to(r.to());
      x->set_amount_cents(r.amount_cents());
      break;
    }
    case Cmd::kCompleteTransfer:
    case Cmd::kFailTransfer:
      if (!exists) return no("transfer does not exist");
      if (t.status() != "requested") return no("transfer " + t.transfer_id() + " is already " + t.status());
      if (c.kind_case() == Cmd::kCompleteTransfer) {
        e.mutable_transfer_completed()->set_transfer_id(t.transfer_id());
      } else {
        e.mutable_transfer_failed()->set_transfer_id(t.transfer_id());
        e.mutable_transfer_failed()->set_reason(c.fail_transfer().reason());
      }
      break;
    default:
      return no("command does not apply to a transfer");
  }
  out->push_back(one(std::move(e)));
  return Status::ok();
}

std::string stream_of_command(const Cmd& c) {
  switch (c.kind_case()) {
    case Cmd::kOpenAccount: return account(c.open_account().account_id());
    case Cmd::kDeposit: return account(c.deposit().account_id());
    case Cmd::kDebit: return account(c.debit().account_id());
    case Cmd::kCredit: return account(c.credit().account_id());
    case Cmd::kRefund: return account(c.refund().account_id());
    case Cmd::kRequestTransfer: return transfer(c.request_transfer().transfer_id());
    case Cmd::kCompleteTransfer: return transfer(c.complete_transfer().transfer_id());
    case Cmd::kFailTransfer: return transfer(c.fail_transfer().transfer_id());
    case Cmd::KIND_NOT_SET: return "";
  }
  return "";
}

class BankDomain final : public Domain {
 public:
  const std::string& name() const override { return name_; }
  const Message& command_prototype() const override { return Cmd::default_instance(); }
  const Message& event_prototype() const override { return Ev::default_instance(); }
  const Message& state_prototype() const override { return State::default_instance(); }

  const std::string& command_id(const Message& c) const override { return cmd(c).command_id(); }
  void set_command_id(Message& c, const std::string& id) const override { static_cast<Cmd&>(c).set_command_id(id); }
  std::string stream_of(const Message& c) const override { return stream_of_command(cmd(c)); }
  std::string command_name(const Message& c) const override {
    const Cmd& x = cmd(c);
    return x.kind_case() == Cmd::KIND_NOT_SET ? "" : x.GetDescriptor()->FindFieldByNumber(x.kind_case())->json_name();
  }
  bool is_public(const Message& c) const override {
    const auto k = cmd(c).kind_case();
    return k == Cmd::kOpenAccount || k == Cmd::kDeposit || k == Cmd::kRequestTransfer;
  }
  std::string public_commands() const override { return "openAccount, deposit, requestTransfer"; }
  Status validate(const Message& m) const override {
    const Cmd& c = cmd(m);
    if (c.command_id().empty()) return bad("commandId is required");
    switch (c.kind_case()) {
      case Cmd::kOpenAccount:
        if (auto s = check_id("openAccount.accountId", c.open_account().account_id()); !s) return s;
        return check_id("openAccount.owner", c.open_account().owner());
      case Cmd::kDeposit:
        if (auto s = check_id("deposit.accountId", c.deposit().account_id()); !s) return s;
        return check_amount(c.deposit().amount_cents());
      case Cmd::kRequestTransfer: {
        const auto& r = c.request_transfer();
        if (auto s = check_id("requestTransfer.transferId", r.transfer_id()); !s) return s;
        if (auto s = check_id("requestTransfer.from", r.from()); !s) return s;
        if (auto s = check_id("requestTransfer.to", r.to()); !s) return s;
        if (r.from() == r.to()) return bad("requestTransfer: from and to are the same account");
        return check_amount(r.amount_cents());
      }
      case Cmd::KIND_NOT_SET:
        return bad("command has no kind");
      default:
        return stream_of_command(c).size() > 5 ? Status::ok() : bad("command names no stream");
    }
  }

  Status decide(const Message& st, const Message& c, std::vector<MessagePtr>* events) const override {
    const State& s = state(st);
    const Cmd& x = cmd(c);
    if (stream_of_command(x).rfind("acct-", 0) == 0) {
      if (s.kind_case() == State::kTransfer) return Status::internal("state kind mismatch");
      return decide_account(s.account(), x, events);
    }
    if (s.kind_case() == State::kAccount) return Status::internal("state kind mismatch");
    return decide_transfer(s.transfer(), s.kind_case() == State::kTransfer, x, events);
  }

  void evolve(Message& st, const Message& e) const override {
    State& s = static_cast<State&>(st);
    const Ev& x = ev(e);
    s.set_version(s.version() + 1);
    switch (x.kind_case()) {
      case Ev::kAccountOpened:
        s.mutable_account()->set_account_id(x.account_opened().account_id());
        s.mutable_account()->set_owner(x.account_opened().owner());
        s.mutable_account()->set_open(true);
        break;
      case Ev::kDeposited:
        s.mutable_account()->set_balance_cents(s.account().balance_cents() + x.deposited().amount_cents());
        break;
      case Ev::kDebited:
        s.mutable_account()->set_balance_cents(s.account().balance_cents() - x.debited().amount_cents());
        break;
      case Ev::kCredited:
        s.mutable_account()->set_balance_cents(s.account().balance_cents() + x.credited().amount_cents());
        break;
      case Ev::kRefunded:
        s.mutable_account()->set_balance_cents(s.account().balance_cents() + x.refunded().amount_cents());
        break;
      case Ev::kDebitRefused:
      case Ev::kCreditRefused:
        s.mutable_account();  // the stream is an account's, open or not
        break;
      case Ev::kTransferRequested: {
        auto* t = s.mutable_transfer();
        t->set_transfer_id(x.transfer_requested().transfer_id());
        t->set_from(x.transfer_requested().from());
        t->set_to(x.transfer_requested().to());
        t->set_amount_cents(x.transfer_requested().amount_cents());
        t->set_status("requested");
        break;
      }
      case Ev::kTransferCompleted:
        s.mutable_transfer()->set_status("completed");
        break;
      case Ev::kTransferFailed:
        s.mutable_transfer()->set_status("failed");
        s.mutable_transfer()->set_reason(x.transfer_failed().reason());
        break;
      case Ev::KIND_NOT_SET:
        break;
    }
  }
  uint64_t version(const Message& st) const override { return state(st).version(); }
  std::string event_name(const Message& e) const override {
    const Ev& x = ev(e);
    return x.kind_case() == Ev::KIND_NOT_SET ? "" : x.GetDescriptor()->FindFieldByNumber(x.kind_case())->json_name();
  }

  std::vector<MessagePtr> react(const std::string& stream, uint64_t version, const Message& e) const override {
    const std::string base = "saga/" + stream + "/" + std::to_string(version) + "/";
    std::vector<MessagePtr> out;
    auto make = [&](const std::string& step) {
      auto c = std::make_unique<Cmd>();
      c->set_command_id(base + step);
      return c;
    };
    const Ev& x = ev(e);
    switch (x.kind_case()) {
      case Ev::kTransferRequested: {
        auto c = make("debit");
        auto* d = c->mutable_debit();
        d->set_account_id(x.transfer_requested().from());
        d->set_transfer_id(x.transfer_requested().transfer_id());
        d->set_to(x.transfer_requested().to());
        d->set_amount_cents(x.transfer_requested().amount_cents());
        out.push_back(std::move(c));
        break;
      }
      case Ev::kDebited: {
        auto c = make("credit");
        auto* d = c->mutable_credit();
        d->set_account_id(x.debited().to());
        d->set_transfer_id(x.debited().transfer_id());
        d->set_from(x.debited().account_id());
        d->set_amount_cents(x.debited().amount_cents());
        out.push_back(std::move(c));
        break;
      }
      case Ev::kDebitRefused: {
        auto c = make("fail");
        c->mutable_fail_transfer()->set_transfer_id(x.debit_refused().transfer_id());
        c->mutable_fail_transfer()->set_reason(x.debit_refused().reason());
        out.push_back(std::move(c));
        break;
      }
      case Ev::kCredited: {
        auto c = make("complete");
        c->mutable_complete_transfer()->set_transfer_id(x.credited().transfer_id());
        out.push_back(std::move(c));
        break;
      }
      case Ev::kCreditRefused: {
        auto c = make("refund");
        auto* r = c->mutable_refund();
        r->set_account_id(x.credit_refused().from());
        r->set_transfer_id(x.credit_refused().transfer_id());
        r->set_amount_cents(x.credit_refused().amount_cents());
        r->set_reason(x.credit_refused().reason());
        out.push_back(std::move(c));
        break;
      }
      case Ev::kRefunded: {
        auto c = make("fail");
        c->mutable_fail_transfer()->set_transfer_id(x.refunded().transfer_id());
        c->mutable_fail_transfer()->set_reason(x.refunded().reason());
        out.push_back(std::move(c));
        break;
      }
      default:
        break;
    }
    return out;
  }

  std::string category(const std::string& stream) const override {
    return stream.rfind("acct-", 0) == 0 ? "accounts" : "transfers";
  }

  std::vector<QueryHandler> queries() const override {
    auto accounts = [](const Message& m, uint64_t version) -> Result<std::string> {
      const State& s = state(m);
      if (s.kind_case() != State::kAccount || !s.account().open()) return Status::not_found("not an account");
      JsonWriter w;
      w.begin_object().field("accountId", s.account().account_id()).field("owner", s.account().owner());
      w.field("balanceCents", s.account().balance_cents()).field("version", version).end_object();
      return w.take();
    };
    auto transfers = [](const Message& m, uint64_t version) -> Result<std::string> {
      const State& s = state(m);
      if (s.kind_case() != State::kTransfer) return Status::not_found("not a transfer");
      const auto& t = s.transfer();
      JsonWriter w;
      w.begin_object().field("transferId", t.transfer_id()).field("from", t.from()).field("to", t.to());
      w.field("amountCents", t.amount_cents()).field("status", t.status());
      if (!t.reason().empty()) w.field("reason", t.reason());
      w.field("version", version).end_object();
      return w.take();
    };
    return {QueryHandler{"accounts", [](const std::string& id) -> Result<std::string> { return account(id); },
                         accounts},
            QueryHandler{"transfers", [](const std::string& id) -> Result<std::string> { return transfer(id); },
                         transfers}};
  }

  std::vector<CounterSpec> counters() const override {
    return {{"transfers_completed", "Transfers the projection saw completed since this process started."},
            {"transfers_failed", "Transfers the projection saw failed since this process started."}};
  }
  int counter_of(const Message& e) const override {
    switch (ev(e).kind_case()) {
      case Ev::kTransferCompleted: return 0;
      case Ev::kTransferFailed: return 1;
      default: return -1;
    }
  }

 private:
  const std::string name_ = "bank";
};

}  // namespace

std::shared_ptr<const Domain> bank_domain() {
  static const auto instance = std::make_shared<const BankDomain>();
  return instance;
}

}  // namespace orderflow::bank
