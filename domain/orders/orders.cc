#include "domain/orders/orders.h"

#include <set>

namespace orderflow::orders {
namespace {

Status bad(std::string m) { return Status::invalid_argument(std::move(m)); }
Status no(std::string m) { return Status::rejected(std::move(m)); }

// Ids become parts of stream names and keys: keep them printable and bounded.
// Entity ids become parts of stream names, URLs and saga command ids: printable ASCII
// without / ? #. Command ids may contain '/' (the saga's do) and may be longer.
Status check_id(const std::string& what, const std::string& id, bool command_id = false) {
  if (id.empty()) return bad(what + " is required");
  const size_t max = command_id ? 512 : 128;
  if (id.size() > max) return bad(what + " is longer than " + std::to_string(max) + " characters");
  for (unsigned char c : id) {
    if (c < 0x21 || c > 0x7e || (c == '/' && !command_id) || c == '?' || c == '#')
      return bad(what + " '" + id + "' has a character outside printable ASCII or one of " +
                 (command_id ? "? #" : "/ ? #"));
  }
  return Status::ok();
}

Status check_quantity(int32_t q) {
  if (q <= 0) return bad("quantity must be positive, got " + std::to_string(q));
  if (q > 1000000) return bad("quantity must be at most 1000000, got " + std::to_string(q));
  return Status::ok();
}

}  // namespace

const char* order_status_name(v1::OrderStatus s) {
  switch (s) {
    case v1::ORDER_STATUS_PLACED: return "placed";
    case v1::ORDER_STATUS_CONFIRMED: return "confirmed";
    case v1::ORDER_STATUS_REJECTED: return "rejected";
    case v1::ORDER_STATUS_CANCELLED: return "cancelled";
    case v1::ORDER_STATUS_SHIPPED: return "shipped";
    default: return "absent";
  }
}

namespace {

// The lines holding stock, as (sku, quantity) into an event's two parallel fields.
template <typename Event>
void add_held_lines(const v1::OrderState& o, Event* ev) {
  for (const auto& l : o.lines())
    if (l.status() == v1::LINE_RESERVED) {
      ev->add_release_skus(l.line().sku());
      ev->add_release_quantities(l.line().quantity());
    }
}

// Each decision of this domain is one event, written into `e`.
Status decide_order(const v1::OrderState& o, bool exists, const v1::Command& c, v1::Event& e) {
  switch (c.kind_case()) {
    case v1::Command::kPlaceOrder: {
      if (exists) return no("order " + c.place_order().order_id() + " already exists");
      auto* ev = e.mutable_order_placed();
      ev->set_order_id(c.place_order().order_id());
      ev->set_customer_id(c.place_order().customer_id());
      *ev->mutable_lines() = c.place_order().lines();
      return Status::ok();
    }
    default:
      break;
  }
  if (!exists) return no("order does not exist");
  const auto st = o.status();
  switch (c.kind_case()) {
    case v1::Command::kRecordReservation: {
      const auto& r = c.record_reservation();
      const v1::OrderLineState* line = nullptr;
      for (const auto& l : o.lines())
        if (l.line().sku() == r.sku()) line = &l;
      if (line == nullptr) return no("order " + o.order_id() + " has no line for sku " + r.sku());
      auto* ev = e.mutable_reservation_recorded();
      ev->set_order_id(o.order_id());
      ev->set_sku(r.sku());
      ev->set_reserved(r.reserved());
      ev->set_quantity(r.quantity());
      if (line->status() != v1::LINE_PENDING) return no("line " + r.sku() + " already has an outcome");
      if (st != v1::ORDER_STATUS_PLACED) {
        // A late outcome: the order was cancelled while this line was pending. Record it
        // so the saga releases the hold.
        if ((st != v1::ORDER_STATUS_CANCELLED && st != v1::ORDER_STATUS_REJECTED) || !r.reserved())
          return no("order is " + std::string(order_status_name(st)) + "; outcome for " + r.sku() + " ignored");
        ev->set_order_closed(true);
        return Status::ok();
      }
      bool all_decided = true, all_reserved = true;
      for (const auto& l : o.lines()) {
        auto s = l.line().sku() == r.sku() ? (r.reserved() ? v1::LINE_RESERVED : v1::LINE_SHORTFALL)
                                           : l.status();
        all_decided = all_decided && s != v1::LINE_PENDING;
        all_reserved = all_reserved && s == v1::LINE_RESERVED;
      }
      ev->set_all_decided(all_decided);
      ev->set_all_reserved(all_reserved);
      ev->set_settled(all_decided);  // settle_event adds the confirmation or rejection
      return Status::ok();
    }
    case v1::Command::kConfirmOrder: {
      if (st != v1::ORDER_STATUS_PLACED)
        return no("only a placed order can be confirmed; order is " + std::string(order_status_name(st)));
      for (const auto& l : o.lines())
        if (l.status() != v1::LINE_RESERVED) return no("line " + l.line().sku() + " is not reserved");
      e.mutable_order_confirmed()->set_order_id(o.order_id());
      return Status::ok();
    }
    case v1::Command::kRejectOrder: {
      if (st != v1::ORDER_STATUS_PLACED)
        return no("only a placed order can be rejected; order is " + std::string(order_status_name(st)));
      auto* ev = e.mutable_order_rejected();
      ev->set_order_id(o.order_id());
      ev->set_reason(c.reject_order().reason());
      add_held_lines(o, ev);
      return Status::ok();
    }
    case v1::Command::kCancelOrder: {
      if (st != v1::ORDER_STATUS_PLACED && st != v1::ORDER_STATUS_CONFIRMED)
        return no("only a placed or confirmed order can be cancelled; order is " +
                  std::string(order_status_name(st)));
      auto* ev = e.mutable_order_cancelled();
      ev->set_order_id(o.order_id());
      ev->set_reason(c.cancel_order().reason());
      add_held_lines(o, ev);
      return Status::ok();
    }
    case v1::Command::kShipOrder: {
      if (st != v1::ORDER_STATUS_CONFIRMED)
        return no("only a confirmed order can be shipped; order is " + std::string(order_status_name(st)));
      auto* ev = e.mutable_order_shipped();
      ev->set_order_id(o.order_id());
      for (const auto& l : o.lines()) {
        ev->add_skus(l.line().sku());
        ev->add_quantities(l.line().quantity());
      }
      return Status::ok();
    }
    default:
      return no("command does not apply to an order stream");
  }
}

Status decide_inventory(const v1::InventoryState& s, const v1::Command& c, v1::Event& e) {
  switch (c.kind_case()) {
    case v1::Command::kAddStock: {
      if (s.on_hand() + c.add_stock().quantity() > int64_t{1} << 40)
        return no("stock on hand would exceed 2^40");
      auto* ev = e.mutable_stock_added();
      ev->set_sku(c.add_stock().sku());
      ev->set_quantity(c.add_stock().quantity());
      return Status::ok();
    }
    case v1::Command::kReserveStock: {
      const auto& r = c.reserve_stock();
      // A repeat of the saga's reservation is caught by its command id (derived from the
      // order's OrderPlaced); a state of an earlier version also knows its holds.
      if (s.holds().count(r.order_id()))
        return no("order " + r.order_id() + " already holds stock of " + r.sku());
      const int64_t available = s.on_hand() - s.reserved();
      if (available < r.quantity()) {
        auto* ev = e.mutable_stock_shortfall();
        ev->set_sku(r.sku());
        ev->set_order_id(r.order_id());
        ev->set_requested(r.quantity());
        ev->set_available(static_cast<int32_t>(std::max<int64_t>(0, available)));
        return Status::ok();
      }
      auto* ev = e.mutable_stock_reserved();
      ev->set_sku(r.sku());
      ev->set_order_id(r.order_id());
      ev->set_quantity(r.quantity());
      return Status::ok();
    }
    case v1::Command::kReleaseStock: {
      const auto& r = c.release_stock();
      // The saga releases each hold once (its command ids derive from the order's events)
      // with the quantity the order's events name; a hold taken by an earlier version is
      // also in the state's legacy map, whose quantity then counts.
      int32_t quantity = r.quantity();
      if (auto it = s.holds().find(r.order_id()); it != s.holds().end()) {
        quantity = it->second;
      } else if (quantity == 0) {
        return no("order " + r.order_id() + " holds no stock of " + r.sku());
      }
      if (quantity > s.reserved() || s.open_holds() + s.holds_size() == 0)
        return no("release of " + std::to_string(quantity) + " for order " + r.order_id() + " exceeds what " + r.sku() +
                  " has reserved (" + std::to_string(s.reserved()) + ")");
      auto* ev = e.mutable_stock_released();
      ev->set_sku(r.sku());
      ev->set_order_id(r.order_id());
      ev->set_quantity(quantity);
      ev->set_shipped(r.shipped());
      return Status::ok();
    }
    default:
      return no("command does not apply to an inventory stream");
  }
}

std::unique_ptr<v1::Command> new_command(const std::string& id) {
  auto c = std::make_unique<v1::Command>();
  c->set_command_id(id);
  return c;
}

}  // namespace

std::string order_stream(const std::string& order_id) { return kOrderPrefix + order_id; }
std::string sku_stream(const std::string& sku) { return kSkuPrefix + sku; }

std::string stream_of(const v1::Command& c) {
  switch (c.kind_case()) {
    case v1::Command::kPlaceOrder: return order_stream(c.place_order().order_id());
    case v1::Command::kConfirmOrder: return order_stream(c.confirm_order().order_id());
    case v1::Command::kRejectOrder: return order_stream(c.reject_order().order_id());
    case v1::Command::kCancelOrder: return order_stream(c.cancel_order().order_id());
    case v1::Command::kShipOrder: return order_stream(c.ship_order().order_id());
    case v1::Command::kRecordReservation: return order_stream(c.record_reservation().order_id());
    case v1::Command::kAddStock: return sku_stream(c.add_stock().sku());
    case v1::Command::kReserveStock: return sku_stream(c.reserve_stock().sku());
    case v1::Command::kReleaseStock: return sku_stream(c.release_stock().sku());
    case v1::Command::KIND_NOT_SET: return "";
  }
  return "";
}

bool is_public_command(const v1::Command& c) {
  switch (c.kind_case()) {
    case v1::Command::kPlaceOrder:
    case v1::Command::kCancelOrder:
    case v1::Command::kShipOrder:
    case v1::Command::kAddStock:
      return true;
    default:
      return false;
  }
}

std::string command_name(const v1::Command& c) {
  if (c.kind_case() == v1::Command::KIND_NOT_SET) return "";
  return c.GetDescriptor()->FindFieldByNumber(c.kind_case())->json_name();
}

std::string event_name(const v1::Event& e) {
  if (e.kind_case() == v1::Event::KIND_NOT_SET) return "";
  return e.GetDescriptor()->FindFieldByNumber(e.kind_case())->json_name();
}

Status validate_command(const v1::Command& c) {
  if (auto s = check_id("commandId", c.command_id(), true); !s) return s;
  switch (c.kind_case()) {
    case v1::Command::KIND_NOT_SET:
      return bad("command has no kind: expected one of placeOrder, confirmOrder, rejectOrder, "
                 "cancelOrder, shipOrder, addStock, reserveStock, releaseStock");
    case v1::Command::kPlaceOrder: {
      const auto& p = c.place_order();
      if (auto s = check_id("placeOrder.orderId", p.order_id()); !s) return s;
      if (auto s = check_id("placeOrder.customerId", p.customer_id()); !s) return s;
      if (p.lines().empty()) return bad("placeOrder.lines must not be empty");
      if (p.lines_size() > 100) return bad("placeOrder.lines has more than 100 lines");
      std::set<std::string> skus;
      for (const auto& l : p.lines()) {
        if (auto s = check_id("placeOrder.lines.sku", l.sku()); !s) return s;
        if (auto s = check_quantity(l.quantity()); !s) return s;
        if (l.unit_price_cents() < 0) return bad("placeOrder.lines.unitPriceCents must not be negative");
        if (!skus.insert(l.sku()).second) return bad("placeOrder.lines lists sku " + l.sku() + " twice");
      }
      return Status::ok();
    }
    case v1::Command::kConfirmOrder: return check_id("confirmOrder.orderId", c.confirm_order().order_id());
    case v1::Command::kRejectOrder: return check_id("rejectOrder.orderId", c.reject_order().order_id());
    case v1::Command::kCancelOrder: return check_id("cancelOrder.orderId", c.cancel_order().order_id());
    case v1::Command::kShipOrder: return check_id("shipOrder.orderId", c.ship_order().order_id());
    case v1::Command::kRecordReservation: {
      const auto& r = c.record_reservation();
      if (auto s = check_id("recordReservation.orderId", r.order_id()); !s) return s;
      return check_id("recordReservation.sku", r.sku());
    }
    case v1::Command::kAddStock:
      if (auto s = check_id("addStock.sku", c.add_stock().sku()); !s) return s;
      return check_quantity(c.add_stock().quantity());
    case v1::Command::kReserveStock:
      if (auto s = check_id("reserveStock.sku", c.reserve_stock().sku()); !s) return s;
      if (auto s = check_id("reserveStock.orderId", c.reserve_stock().order_id()); !s) return s;
      return check_quantity(c.reserve_stock().quantity());
    case v1::Command::kReleaseStock:
      if (auto s = check_id("releaseStock.sku", c.release_stock().sku()); !s) return s;
      if (auto s = check_id("releaseStock.orderId", c.release_stock().order_id()); !s) return s;
      // 0: a command of an earlier version, which named no quantity (the SKU's hold does).
      return c.release_stock().quantity() == 0 ? Status::ok() : check_quantity(c.release_stock().quantity());
  }
  return bad("unknown command kind");
}

Status decide_event(const v1::StreamState& state, const v1::Command& c, v1::Event* event) {
  const std::string stream = stream_of(c);
  if (stream.rfind(kOrderPrefix, 0) == 0) {
    if (state.kind_case() == v1::StreamState::kInventory) return Status::internal("state kind mismatch");
    return decide_order(state.order(), state.kind_case() == v1::StreamState::kOrder, c, *event);
  }
  if (state.kind_case() == v1::StreamState::kOrder) return Status::internal("state kind mismatch");
  return decide_inventory(state.inventory(), c, *event);
}

Result<std::vector<v1::Event>> decide(const v1::StreamState& state, const v1::Command& c) {
  v1::Event e;
  if (Status s = decide_event(state, c, &e); !s) return s;
  std::vector<v1::Event> events;
  events.push_back(std::move(e));
  v1::Event settle;
  if (settle_event(state, &events.front(), &settle)) events.push_back(std::move(settle));
  return events;
}

bool settle_event(const v1::StreamState& state, v1::Event* recorded, v1::Event* out) {
  if (!recorded->has_reservation_recorded() || !recorded->reservation_recorded().settled()) return false;
  const auto& r = recorded->reservation_recorded();
  // Decided as the saga's confirmOrder / rejectOrder would be, on the state after the record.
  v1::StreamState next = state;
  evolve(next, *recorded);
  v1::Command settle;
  if (r.all_reserved()) {
    settle.mutable_confirm_order()->set_order_id(r.order_id());
  } else {
    settle.mutable_reject_order()->set_order_id(r.order_id());
    settle.mutable_reject_order()->set_reason("insufficient stock");
  }
  if (decide_event(next, settle, out).is_ok()) return true;
  recorded->mutable_reservation_recorded()->set_settled(false);
  return false;
}

void evolve(v1::StreamState& state, const v1::Event& e) {
  state.set_version(state.version() + 1);
  switch (e.kind_case()) {
    case v1::Event::kOrderPlaced: {
      auto* o = state.mutable_order();
      o->set_order_id(e.order_placed().order_id());
      o->set_customer_id(e.order_placed().customer_id());
      o->set_status(v1::ORDER_STATUS_PLACED);
      for (const auto& l : e.order_placed().lines()) {
        auto* ls = o->add_lines();
        *ls->mutable_line() = l;
        ls->set_status(v1::LINE_PENDING);
      }
      break;
    }
    case v1::Event::kReservationRecorded: {
      const auto& r = e.reservation_recorded();
      // On a closed order the line is marked too (the saga releases the hold), so a
      // repeated outcome for it is refused.
      for (auto& l : *state.mutable_order()->mutable_lines())
        if (l.line().sku() == r.sku()) l.set_status(r.reserved() ? v1::LINE_RESERVED : v1::LINE_SHORTFALL);
      break;
    }
    case v1::Event::kOrderConfirmed:
      state.mutable_order()->set_status(v1::ORDER_STATUS_CONFIRMED);
      break;
    case v1::Event::kOrderRejected:
      state.mutable_order()->set_status(v1::ORDER_STATUS_REJECTED);
      state.mutable_order()->set_reason(e.order_rejected().reason());
      break;
    case v1::Event::kOrderCancelled:
      state.mutable_order()->set_status(v1::ORDER_STATUS_CANCELLED);
      state.mutable_order()->set_reason(e.order_cancelled().reason());
      break;
    case v1::Event::kOrderShipped:
      state.mutable_order()->set_status(v1::ORDER_STATUS_SHIPPED);
      break;
    case v1::Event::kStockAdded: {
      auto* s = state.mutable_inventory();
      s->set_sku(e.stock_added().sku());
      s->set_on_hand(s->on_hand() + e.stock_added().quantity());
      break;
    }
    case v1::Event::kStockReserved: {
      auto* s = state.mutable_inventory();
      s->set_sku(e.stock_reserved().sku());
      s->set_reserved(s->reserved() + e.stock_reserved().quantity());
      s->set_open_holds(s->open_holds() + 1);
      break;
    }
    case v1::Event::kStockShortfall:
      state.mutable_inventory()->set_sku(e.stock_shortfall().sku());
      break;
    case v1::Event::kStockReleased: {
      auto* s = state.mutable_inventory();
      const auto& r = e.stock_released();
      s->set_reserved(s->reserved() - r.quantity());
      if (r.shipped()) s->set_on_hand(s->on_hand() - r.quantity());
      if (s->mutable_holds()->erase(r.order_id()) == 0) s->set_open_holds(s->open_holds() - 1);
      break;
    }
    case v1::Event::KIND_NOT_SET:
      break;
  }
}

std::vector<std::unique_ptr<v1::Command>> saga_commands(const std::string& stream, uint64_t version,
                                                        const v1::Event& e) {
  // '/' cannot occur in order ids or SKUs, so these ids cannot collide.
  const std::string base = "saga/" + stream + "/" + std::to_string(version) + "/";
  std::vector<std::unique_ptr<v1::Command>> out;
  // quantity 0: an event of an earlier version, which named no quantities (the SKU's
  // legacy holds know them).
  auto release = [&](const std::string& order_id, const std::string& sku, int32_t quantity, bool shipped) {
    auto c = new_command(base + "release/" + sku);
    auto* r = c->mutable_release_stock();
    r->set_sku(sku);
    r->set_order_id(order_id);
    r->set_shipped(shipped);
    r->set_quantity(quantity);
    out.push_back(std::move(c));
  };
  auto release_all = [&](const std::string& order_id, const auto& skus, const auto& quantities, bool shipped) {
    for (int i = 0; i < skus.size(); ++i) release(order_id, skus[i], i < quantities.size() ? quantities[i] : 0, shipped);
  };
  switch (e.kind_case()) {
    case v1::Event::kOrderPlaced:
      for (const auto& l : e.order_placed().lines()) {
        auto c = new_command(base + "reserve/" + l.sku());
        auto* r = c->mutable_reserve_stock();
        r->set_sku(l.sku());
        r->set_order_id(e.order_placed().order_id());
        r->set_quantity(l.quantity());
        out.push_back(std::move(c));
      }
      break;
    case v1::Event::kStockReserved:
    case v1::Event::kStockShortfall: {
      const bool ok = e.kind_case() == v1::Event::kStockReserved;
      auto c = new_command(base + "record");
      auto* r = c->mutable_record_reservation();
      r->set_order_id(ok ? e.stock_reserved().order_id() : e.stock_shortfall().order_id());
      r->set_sku(ok ? e.stock_reserved().sku() : e.stock_shortfall().sku());
      r->set_reserved(ok);
      r->set_quantity(ok ? e.stock_reserved().quantity() : e.stock_shortfall().requested());
      out.push_back(std::move(c));
      break;
    }
    case v1::Event::kReservationRecorded: {
      const auto& r = e.reservation_recorded();
      if (r.order_closed()) {
        release(r.order_id(), r.sku(), r.quantity(), false);
      } else if (r.settled()) {
        // Its confirmation or rejection was committed with it (and reacted to on its own).
      } else if (r.all_decided() && r.all_reserved()) {
        auto c = new_command(base + "confirm");
        c->mutable_confirm_order()->set_order_id(r.order_id());
        out.push_back(std::move(c));
      } else if (r.all_decided()) {
        auto c = new_command(base + "reject");
        c->mutable_reject_order()->set_order_id(r.order_id());
        c->mutable_reject_order()->set_reason("insufficient stock");
        out.push_back(std::move(c));
      }
      break;
    }
    case v1::Event::kOrderRejected: {
      const auto& r = e.order_rejected();
      release_all(r.order_id(), r.release_skus(), r.release_quantities(), false);
      break;
    }
    case v1::Event::kOrderCancelled: {
      const auto& c = e.order_cancelled();
      release_all(c.order_id(), c.release_skus(), c.release_quantities(), false);
      break;
    }
    case v1::Event::kOrderShipped: {
      const auto& sh = e.order_shipped();
      release_all(sh.order_id(), sh.skus(), sh.quantities(), true);
      break;
    }
    default:
      break;
  }
  return out;
}

std::vector<v1::Command> saga_react(const std::string& stream, uint64_t version, const v1::Event& e) {
  std::vector<v1::Command> out;
  for (auto& c : saga_commands(stream, version, e)) out.push_back(std::move(*c));
  return out;
}

}  // namespace orderflow::orders
