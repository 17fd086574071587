#include "domain/orders/orders_domain.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <random>

#include "domain/orders/orders.h"
#include "graph/json.h"

namespace orderflow::orders {
namespace {

const v1::Command& as_command(const Message& m) { return static_cast<const v1::Command&>(m); }
const v1::Event& as_event(const Message& m) { return static_cast<const v1::Event&>(m); }
const v1::StreamState& as_state(const Message& m) { return static_cast<const v1::StreamState&>(m); }

const char* line_status_name(v1::LineStatus s) {
  switch (s) {
    case v1::LINE_RESERVED: return "reserved";
    case v1::LINE_SHORTFALL: return "shortfall";
    default: return "pending";
  }
}

Result<std::string> render_order(const Message& m, uint64_t version) {
  const auto& st = as_state(m);
  if (st.kind_case() != v1::StreamState::kOrder) return Status::not_found("not an order");
  const auto& o = st.order();
  JsonWriter w;
  w.begin_object();
  int64_t total = 0;
  w.field("orderId", o.order_id()).field("customerId", o.customer_id()).field("status", order_status_name(o.status()));
  w.key("lines").begin_array();
  for (const auto& l : o.lines()) {
    total += int64_t{l.line().quantity()} * l.line().unit_price_cents();
    w.begin_object().field("sku", l.line().sku()).field("quantity", l.line().quantity());
    w.field("unitPriceCents", l.line().unit_price_cents()).field("reservation", line_status_name(l.status()));
    w.end_object();
  }
  w.end_array().field("totalCents", total);
  if (!o.reason().empty()) w.field("reason", o.reason());
  w.field("version", version).end_object();
  return w.take();
}

Result<std::string> render_inventory(const Message& m, uint64_t version) {
  const auto& st = as_state(m);
  if (st.kind_case() != v1::StreamState::kInventory) return Status::not_found("not an inventory item");
  const auto& s = st.inventory();
  JsonWriter w;
  w.begin_object();
  w.field("sku", s.sku()).field("onHand", s.on_hand()).field("reserved", s.reserved());
  w.field("available", s.on_hand() - s.reserved()).field("holds", s.open_holds() + s.holds_size());
  w.field("version", version).end_object();
  return w.take();
}

// Restocks every SKU once, then orders over Zipf-popular SKUs (a few are hot and run out
// of stock), restocks, cancels and shipments.
class DemoLoad final : public CommandGenerator {
 public:
  DemoLoad(int skus, uint64_t seed) : skus_(skus), rng_(seed), cdf_(static_cast<size_t>(skus)) {
    for (int i = 0; i < skus_; ++i) cdf_[static_cast<size_t>(i)] = sum_ += 1.0 / (i + 1);
  }

  MessagePtr next() override {
    auto c = std::make_unique<v1::Command>();
    ++n_;
    if (restocked_ < skus_) {
      c->mutable_add_stock()->set_sku("SKU-" + std::to_string(restocked_));
      c->mutable_add_stock()->set_quantity(20 + restocked_ % 50);
      ++restocked_;
      return c;
    }
    const int roll = static_cast<int>(rng_() % 100);
    if (roll < 70 || recent_.empty()) {
      const std::string order = "d" + run_id_ + "-" + std::to_string(n_);
      auto* p = c->mutable_place_order();
      p->set_order_id(order);
      p->set_customer_id("cust-" + std::to_string(rng_() % 1000));
      const int lines = 1 + static_cast<int>(rng_() % 3);
      std::vector<std::string> used;
      for (int l = 0; l < lines; ++l) {
        std::string s = sku();
        if (std::find(used.begin(), used.end(), s) != used.end()) continue;
        used.push_back(s);
        auto* line = p->add_lines();
        line->set_sku(s);
        line->set_quantity(1 + static_cast<int>(rng_() % 3));
        line->set_unit_price_cents(100 + static_cast<int>(rng_() % 10000));
      }
      recent_.push_back(order);
      if (recent_.size() > 1000) recent_.pop_front();
    } else if (roll < 80) {
      c->mutable_add_stock()->set_sku(sku());
      c->mutable_add_stock()->set_quantity(5 + static_cast<int>(rng_() % 20));
    } else if (roll < 88) {
      c->mutable_cancel_order()->set_order_id(recent_[rng_() % recent_.size()]);
      c->mutable_cancel_order()->set_reason("customer request");
    } else {
      c->mutable_ship_order()->set_order_id(recent_[rng_() % recent_.size()]);
    }
    return c;
  }

 private:
  std::string sku() {
    double x = std::uniform_real_distribution<double>(0, sum_)(rng_);
    return "SKU-" + std::to_string(std::lower_bound(cdf_.begin(), cdf_.end(), x) - cdf_.begin());
  }

  const int skus_;
  std::mt19937_64 rng_;
  std::vector<double> cdf_;
  double sum_ = 0;
  int restocked_ = 0;
  uint64_t n_ = 0;
  std::deque<std::string> recent_;
  // Order ids unique across restarts, so a restarted demo never collides with old orders.
  const std::string run_id_ =
      std::to_string(std::chrono::system_clock::now().time_since_epoch().count() / 1000);
};

class OrdersDomain final : public Domain {
 public:
  const std::string& name() const override { return name_; }
  const Message& command_prototype() const override { return v1::Command::default_instance(); }
  const Message& event_prototype() const override { return v1::Event::default_instance(); }
  const Message& state_prototype() const override { return v1::StreamState::default_instance(); }

  const std::string& command_id(const Message& c) const override { return as_command(c).command_id(); }
  void set_command_id(Message& c, const std::string& id) const override {
    static_cast<v1::Command&>(c).set_command_id(id);
  }
  std::string stream_of(const Message& c) const override { return orders::stream_of(as_command(c)); }
  std::string command_name(const Message& c) const override { return orders::command_name(as_command(c)); }
  bool is_public(const Message& c) const override { return is_public_command(as_command(c)); }
  std::string public_commands() const override { return "placeOrder, cancelOrder, shipOrder, addStock"; }
  Status validate(const Message& c) const override { return validate_command(as_command(c)); }
  // An order id is placed once; every other command meets an existing stream.
  bool starts_stream(const Message& c) const override { return as_command(c).has_place_order(); }

  Status decide(const Message& state, const Message& command, std::vector<MessagePtr>* events) const override {
    auto event = std::make_unique<v1::Event>();
    if (Status s = decide_event(as_state(state), as_command(command), event.get()); !s) return s;
    auto settle = std::make_unique<v1::Event>();
    const bool settles = settle_event(as_state(state), event.get(), settle.get());
    events->push_back(std::move(event));
    if (settles) events->push_back(std::move(settle));
    return Status::ok();
  }
  void evolve(Message& state, const Message& event) const override {
    orders::evolve(static_cast<v1::StreamState&>(state), as_event(event));
  }
  uint64_t version(const Message& state) const override { return as_state(state).version(); }
  std::string event_name(const Message& e) const override { return orders::event_name(as_event(e)); }

  std::vector<MessagePtr> react(const std::string& stream, uint64_t version, const Message& event) const override {
    std::vector<MessagePtr> out;
    for (auto& c : saga_commands(stream, version, as_event(event))) out.push_back(std::move(c));
    return out;
  }

  std::string category(const std::string& stream) const override {
    if (stream.rfind(kOrderPrefix, 0) == 0) return "orders";
    if (stream.rfind(kSkuPrefix, 0) == 0) return "inventory";
    return "other";
  }

  std::vector<QueryHandler> queries() const override {
    return {QueryHandler{"orders", [](const std::string& id) -> Result<std::string> { return order_stream(id); },
                         render_order},
            QueryHandler{"inventory", [](const std::string& id) -> Result<std::string> { return sku_stream(id); },
                         render_inventory}};
  }

  std::vector<CounterSpec> counters() const override {
    return {{"orders_confirmed", "Orders the projection saw confirmed since this process started."},
            {"orders_rejected", "Orders the projection saw rejected since this process started."}};
  }
  int counter_of(const Message& event) const override {
    switch (as_event(event).kind_case()) {
      case v1::Event::kOrderConfirmed: return 0;
      case v1::Event::kOrderRejected: return 1;
      default: return -1;
    }
  }

  std::unique_ptr<CommandGenerator> demo(int keys, uint64_t seed) const override {
    return std::make_unique<DemoLoad>(keys, seed);
  }

 private:
  const std::string name_ = "orders";
};

}  // namespace

std::shared_ptr<const Domain> orders_domain() {
  static const auto instance = std::make_shared<const OrdersDomain>();
  return instance;
}

}  // namespace orderflow::orders
