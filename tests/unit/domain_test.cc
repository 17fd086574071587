// Tests for the order domain: decide/evolve for every transition and rejection,
// validate_command, stream_of/command_name, saga_react, and a simulated saga run.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "domain/orders/orders.h"

namespace orderflow::orders {
namespace {

using Lines = std::vector<std::pair<std::string, int32_t>>;

// Command ids are unique per built command, so an id never hides a bad field in a test.
int g_next_id = 0;
std::string next_id(const std::string& kind) { return kind + "-" + std::to_string(++g_next_id); }

// ---- command builders ---------------------------------------------------------------

v1::Command place(const std::string& order, const Lines& lines, const std::string& customer = "cust-1") {
  v1::Command c;
  c.set_command_id(next_id("place"));
  auto* p = c.mutable_place_order();
  p->set_order_id(order);
  p->set_customer_id(customer);
  for (const auto& [sku, q] : lines) {
    auto* l = p->add_lines();
    l->set_sku(sku);
    l->set_quantity(q);
    l->set_unit_price_cents(100);
  }
  return c;
}

v1::Command record(const std::string& order, const std::string& sku, bool reserved, int32_t q = 1) {
  v1::Command c;
  c.set_command_id(next_id("record"));
  auto* r = c.mutable_record_reservation();
  r->set_order_id(order);
  r->set_sku(sku);
  r->set_reserved(reserved);
  r->set_quantity(q);
  return c;
}

v1::Command confirm(const std::string& order) {
  v1::Command c;
  c.set_command_id(next_id("confirm"));
  c.mutable_confirm_order()->set_order_id(order);
  return c;
}

v1::Command reject(const std::string& order, const std::string& reason = "no stock") {
  v1::Command c;
  c.set_command_id(next_id("reject"));
  c.mutable_reject_order()->set_order_id(order);
  c.mutable_reject_order()->set_reason(reason);
  return c;
}

v1::Command cancel(const std::string& order, const std::string& reason = "changed mind") {
  v1::Command c;
  c.set_command_id(next_id("cancel"));
  c.mutable_cancel_order()->set_order_id(order);
  c.mutable_cancel_order()->set_reason(reason);
  return c;
}

v1::Command ship(const std::string& order) {
  v1::Command c;
  c.set_command_id(next_id("ship"));
  c.mutable_ship_order()->set_order_id(order);
  return c;
}

v1::Command add_stock(const std::string& sku, int32_t q) {
  v1::Command c;
  c.set_command_id(next_id("add"));
  c.mutable_add_stock()->set_sku(sku);
  c.mutable_add_stock()->set_quantity(q);
  return c;
}

v1::Command reserve(const std::string& sku, const std::string& order, int32_t q) {
  v1::Command c;
  c.set_command_id(next_id("reserve"));
  auto* r = c.mutable_reserve_stock();
  r->set_sku(sku);
  r->set_order_id(order);
  r->set_quantity(q);
  return c;
}

// quantity 0: a command of an earlier version, which named none.
v1::Command release(const std::string& sku, const std::string& order, int32_t quantity, bool shipped = false) {
  v1::Command c;
  c.set_command_id(next_id("release"));
  auto* r = c.mutable_release_stock();
  r->set_sku(sku);
  r->set_order_id(order);
  r->set_shipped(shipped);
  r->set_quantity(quantity);
  return c;
}

// ---- decide/evolve helpers ----------------------------------------------------------

// decide() must accept: returns its events (empty, with a test failure, when it rejects).
std::vector<v1::Event> accepted(const v1::StreamState& st, const v1::Command& c) {
  auto r = decide(st, c);
  if (!r) {
    ADD_FAILURE() << command_name(c) << " was refused: " << r.status().to_string();
    return {};
  }
  return std::move(r).value();
}

// decide() + evolve(): the command must be accepted with exactly one event, or two when
// the first is the record of an order's last line (then the second settles the order).
v1::Event apply(v1::StreamState& st, const v1::Command& c) {
  auto events = accepted(st, c);
  const bool settles = !events.empty() && events.front().reservation_recorded().settled();
  EXPECT_EQ(events.size(), settles ? 2u : 1u) << command_name(c);
  if (events.empty()) return v1::Event();
  for (const auto& e : events) evolve(st, e);
  return events.front();
}

// A record as logs before December 2026 hold it: its event alone, never settled (the saga
// then confirms or rejects the order with a command of its own).
v1::Event apply_legacy(v1::StreamState& st, const v1::Command& c) {
  auto events = accepted(st, c);
  if (events.empty()) return v1::Event();
  v1::Event e = events.front();
  e.mutable_reservation_recorded()->set_settled(false);
  evolve(st, e);
  return e;
}

// decide() must refuse with kRejected and a reason containing `why`.
void expect_rejected(const v1::StreamState& st, const v1::Command& c, const std::string& why) {
  auto r = decide(st, c);
  ASSERT_FALSE(r) << command_name(c) << " was accepted";
  EXPECT_EQ(r.status().code(), StatusCode::kRejected) << r.status().to_string();
  EXPECT_NE(r.status().message().find(why), std::string::npos)
      << "reason '" << r.status().message() << "' does not mention '" << why << "'";
}

v1::StreamState placed(const std::string& order, const Lines& lines) {
  v1::StreamState st;
  apply(st, place(order, lines));
  return st;
}

v1::StreamState confirmed(const std::string& order, const Lines& lines) {
  v1::StreamState st = placed(order, lines);
  for (const auto& [sku, q] : lines) apply(st, record(order, sku, true, q));  // the last one confirms
  EXPECT_EQ(st.order().status(), v1::ORDER_STATUS_CONFIRMED);
  return st;
}

v1::StreamState stock(const std::string& sku, int32_t on_hand) {
  v1::StreamState st;
  apply(st, add_stock(sku, on_hand));
  return st;
}

const v1::OrderLineState& line_of(const v1::StreamState& st, const std::string& sku) {
  for (const auto& l : st.order().lines())
    if (l.line().sku() == sku) return l;
  ADD_FAILURE() << "no line " << sku;
  return v1::OrderLineState::default_instance();
}

std::vector<std::string> strings(const google::protobuf::RepeatedPtrField<std::string>& r) {
  return {r.begin(), r.end()};
}

std::vector<int32_t> ints(const google::protobuf::RepeatedField<int32_t>& r) { return {r.begin(), r.end()}; }

// ---- PlaceOrder ---------------------------------------------------------------------

TEST(DomainPlaceOrder, NewOrderIsPlacedWithPendingLines) {
  v1::StreamState st;
  const v1::Event e = apply(st, place("o1", {{"A", 2}, {"B", 3}}, "alice"));
  ASSERT_TRUE(e.has_order_placed());
  EXPECT_EQ(e.order_placed().order_id(), "o1");
  EXPECT_EQ(e.order_placed().customer_id(), "alice");
  ASSERT_EQ(e.order_placed().lines_size(), 2);
  EXPECT_EQ(e.order_placed().lines(1).sku(), "B");
  EXPECT_EQ(e.order_placed().lines(1).quantity(), 3);

  EXPECT_EQ(st.version(), 1u);
  ASSERT_TRUE(st.has_order());
  EXPECT_EQ(st.order().order_id(), "o1");
  EXPECT_EQ(st.order().customer_id(), "alice");
  EXPECT_EQ(st.order().status(), v1::ORDER_STATUS_PLACED);
  ASSERT_EQ(st.order().lines_size(), 2);
  for (const auto& l : st.order().lines()) EXPECT_EQ(l.status(), v1::LINE_PENDING);
  EXPECT_EQ(line_of(st, "A").line().quantity(), 2);
  EXPECT_EQ(line_of(st, "B").line().unit_price_cents(), 100);
}

TEST(DomainPlaceOrder, DuplicateOrderIsRejected) {
  const v1::StreamState st = placed("o1", {{"A", 1}});
  expect_rejected(st, place("o1", {{"A", 1}}), "already exists");
}

TEST(DomainPlaceOrder, EveryOtherOrderCommandNeedsAnExistingOrder) {
  const v1::StreamState none;
  expect_rejected(none, record("o1", "A", true), "does not exist");
  expect_rejected(none, confirm("o1"), "does not exist");
  expect_rejected(none, reject("o1"), "does not exist");
  expect_rejected(none, cancel("o1"), "does not exist");
  expect_rejected(none, ship("o1"), "does not exist");
}

// ---- RecordReservation --------------------------------------------------------------

TEST(DomainRecordReservation, SingleLineReservedDecidesReservesAllAndConfirms) {
  v1::StreamState st = placed("o1", {{"A", 2}});
  auto events = accepted(st, record("o1", "A", true, 2));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].order_confirmed().order_id(), "o1");
  const v1::Event e = apply(st, record("o1", "A", true, 2));
  ASSERT_TRUE(e.has_reservation_recorded());
  const auto& r = e.reservation_recorded();
  EXPECT_EQ(r.order_id(), "o1");
  EXPECT_EQ(r.sku(), "A");
  EXPECT_TRUE(r.reserved());
  EXPECT_EQ(r.quantity(), 2);
  EXPECT_TRUE(r.all_decided());
  EXPECT_TRUE(r.all_reserved());
  EXPECT_FALSE(r.order_closed());
  EXPECT_TRUE(r.settled());
  EXPECT_EQ(st.version(), 3u);
  EXPECT_EQ(line_of(st, "A").status(), v1::LINE_RESERVED);
  EXPECT_EQ(st.order().status(), v1::ORDER_STATUS_CONFIRMED);
}

TEST(DomainRecordReservation, SingleLineShortfallDecidesButDoesNotReserve) {
  v1::StreamState st = placed("o1", {{"A", 2}});
  const v1::Event e = apply(st, record("o1", "A", false, 2));
  const auto& r = e.reservation_recorded();
  EXPECT_FALSE(r.reserved());
  EXPECT_TRUE(r.all_decided());
  EXPECT_FALSE(r.all_reserved());
  EXPECT_FALSE(r.order_closed());
  EXPECT_TRUE(r.settled());
  EXPECT_EQ(line_of(st, "A").status(), v1::LINE_SHORTFALL);
  EXPECT_EQ(st.order().status(), v1::ORDER_STATUS_REJECTED);
  EXPECT_EQ(st.order().reason(), "insufficient stock");
}

TEST(DomainRecordReservation, MultipleLinesAllReserved) {
  v1::StreamState st = placed("o1", {{"A", 1}, {"B", 1}, {"C", 1}});
  auto r1 = apply(st, record("o1", "B", true)).reservation_recorded();
  EXPECT_FALSE(r1.all_decided());
  EXPECT_FALSE(r1.all_reserved());
  auto r2 = apply(st, record("o1", "A", true)).reservation_recorded();
  EXPECT_FALSE(r2.all_decided());
  EXPECT_FALSE(r2.all_reserved());
  EXPECT_EQ(line_of(st, "C").status(), v1::LINE_PENDING);
  auto r3 = apply(st, record("o1", "C", true)).reservation_recorded();
  EXPECT_TRUE(r3.all_decided());
  EXPECT_TRUE(r3.all_reserved());
  EXPECT_FALSE(r1.settled() || r2.settled());
  EXPECT_TRUE(r3.settled());
  EXPECT_EQ(st.version(), 5u);
  EXPECT_EQ(st.order().status(), v1::ORDER_STATUS_CONFIRMED);
  for (const auto& l : st.order().lines()) EXPECT_EQ(l.status(), v1::LINE_RESERVED);
}

TEST(DomainRecordReservation, MultipleLinesWithAShortfall) {
  v1::StreamState st = placed("o1", {{"A", 1}, {"B", 1}});
  auto r1 = apply(st, record("o1", "A", false)).reservation_recorded();
  EXPECT_FALSE(r1.all_decided());
  EXPECT_FALSE(r1.all_reserved());
  auto r2 = apply(st, record("o1", "B", true)).reservation_recorded();
  EXPECT_TRUE(r2.all_decided());
  EXPECT_FALSE(r2.all_reserved());
  EXPECT_EQ(line_of(st, "A").status(), v1::LINE_SHORTFALL);
  EXPECT_EQ(line_of(st, "B").status(), v1::LINE_RESERVED);
}

TEST(DomainRecordReservation, ReservedOnCancelledOrderIsRecordedAsClosed) {
  v1::StreamState st = placed("o1", {{"A", 1}, {"B", 2}});
  apply(st, cancel("o1"));
  const v1::StreamState before = st;
  const v1::Event e = apply(st, record("o1", "B", true, 2));
  const auto& r = e.reservation_recorded();
  EXPECT_TRUE(r.order_closed());
  EXPECT_TRUE(r.reserved());
  EXPECT_EQ(r.sku(), "B");
  EXPECT_EQ(r.quantity(), 2);
  // The order stays cancelled; the line is marked so a repeated outcome is refused.
  EXPECT_EQ(st.version(), before.version() + 1);
  EXPECT_EQ(st.order().status(), v1::ORDER_STATUS_CANCELLED);
  EXPECT_EQ(line_of(st, "B").status(), v1::LINE_RESERVED);
  expect_rejected(st, record("o1", "B", true, 2), "already has an outcome");
}

TEST(DomainRecordReservation, ReservedOnRejectedOrderWithPendingLineIsRecordedAsClosed) {
  v1::StreamState st = placed("o1", {{"A", 1}, {"B", 1}});
  apply(st, reject("o1"));
  const v1::Event e = apply(st, record("o1", "B", true));
  EXPECT_TRUE(e.reservation_recorded().order_closed());
  EXPECT_EQ(st.order().status(), v1::ORDER_STATUS_REJECTED);
}

TEST(DomainRecordReservation, ShortfallOnClosedOrderIsRejected) {
  v1::StreamState st = placed("o1", {{"A", 1}});
  apply(st, cancel("o1"));
  expect_rejected(st, record("o1", "A", false), "ignored");
}

TEST(DomainRecordReservation, LineWithAnOutcomeIsRejected) {
  v1::StreamState st = placed("o1", {{"A", 1}, {"B", 1}});
  apply(st, record("o1", "A", true));
  expect_rejected(st, record("o1", "A", true), "already has an outcome");
  expect_rejected(st, record("o1", "A", false), "already has an outcome");
  apply(st, record("o1", "B", false));
  expect_rejected(st, record("o1", "B", true), "already has an outcome");
}

// order_closed means "the order was already cancelled: this hold must be released"
// (orderflow.proto). A confirmed order's lines all have an outcome already, so a repeated
// reservation record must be refused; recording it as order_closed makes the saga release
// the confirmed order's stock (and the later ShipOrder then finds no hold to take).
TEST(DomainRecordReservation, RepeatedOutcomeOnConfirmedOrderIsRejectedNotClosed) {
  const v1::StreamState st = confirmed("o1", {{"A", 2}});
  auto r = decide(st, record("o1", "A", true, 2));
  if (r) {
    ASSERT_EQ(r->size(), 1u);
    EXPECT_FALSE(r->front().reservation_recorded().order_closed())
        << "a repeated outcome on a confirmed order releases the order's held stock";
  }
  EXPECT_FALSE(r) << "a line of a confirmed order already has an outcome";
}

TEST(DomainRecordReservation, UnknownSkuIsRejected) {
  const v1::StreamState st = placed("o1", {{"A", 1}});
  expect_rejected(st, record("o1", "Z", true), "has no line for sku Z");
}

// The record of an order's last line settles it in the same command: rejected when a line
// fell short, releasing every held line, the one just recorded included.
TEST(DomainRecordReservation, TheLastLineRejectsAShortOrderReleasingWhatItHolds) {
  v1::StreamState st = placed("o1", {{"A", 1}, {"B", 2}, {"C", 3}});
  apply(st, record("o1", "A", false));
  apply(st, record("o1", "C", true));
  auto events = accepted(st, record("o1", "B", true));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_TRUE(events[0].reservation_recorded().settled());
  ASSERT_TRUE(events[1].has_order_rejected());
  EXPECT_EQ(events[1].order_rejected().reason(), "insufficient stock");
  EXPECT_EQ(strings(events[1].order_rejected().release_skus()), (std::vector<std::string>{"B", "C"}));
  EXPECT_EQ(ints(events[1].order_rejected().release_quantities()), (std::vector<int32_t>{2, 3}));
  // The saga releases those holds and sends no rejectOrder of its own.
  const auto after_record = saga_react("order-o1", 4, events[0]);
  EXPECT_TRUE(after_record.empty());
  std::vector<std::string> released;
  std::vector<int32_t> quantities;
  for (const auto& c : saga_react("order-o1", 5, events[1])) {
    released.push_back(c.release_stock().sku());
    quantities.push_back(c.release_stock().quantity());
  }
  EXPECT_EQ(released, (std::vector<std::string>{"B", "C"}));
  EXPECT_EQ(quantities, (std::vector<int32_t>{2, 3}));
}

// ---- ConfirmOrder -------------------------------------------------------------------

// The saga's confirmOrder settles orders whose records were logged before they settled
// the order themselves.
TEST(DomainConfirmOrder, PlacedWithAllLinesReservedIsConfirmed) {
  v1::StreamState st = placed("o1", {{"A", 1}, {"B", 1}});
  apply_legacy(st, record("o1", "A", true));
  apply_legacy(st, record("o1", "B", true));
  const v1::Event e = apply(st, confirm("o1"));
  ASSERT_TRUE(e.has_order_confirmed());
  EXPECT_EQ(e.order_confirmed().order_id(), "o1");
  EXPECT_EQ(st.order().status(), v1::ORDER_STATUS_CONFIRMED);
  EXPECT_EQ(st.version(), 4u);
}

TEST(DomainConfirmOrder, PendingOrShortLinesAreRejected) {
  v1::StreamState st = placed("o1", {{"A", 1}, {"B", 1}});
  expect_rejected(st, confirm("o1"), "is not reserved");
  apply(st, record("o1", "A", true));
  expect_rejected(st, confirm("o1"), "line B is not reserved");
  apply_legacy(st, record("o1", "B", false));
  expect_rejected(st, confirm("o1"), "line B is not reserved");
}

TEST(DomainConfirmOrder, OnlyAPlacedOrderCanBeConfirmed) {
  v1::StreamState st = confirmed("o1", {{"A", 1}});
  expect_rejected(st, confirm("o1"), "order is confirmed");
  v1::StreamState cancelled = placed("o2", {{"A", 1}});
  apply(cancelled, record("o2", "A", true));
  apply(cancelled, cancel("o2"));
  expect_rejected(cancelled, confirm("o2"), "order is cancelled");
}

// ---- RejectOrder --------------------------------------------------------------------

TEST(DomainRejectOrder, ListsTheReservedLinesToRelease) {
  v1::StreamState st = placed("o1", {{"A", 1}, {"B", 1}, {"C", 1}, {"D", 4}});
  apply(st, record("o1", "A", true));
  apply(st, record("o1", "B", false));
  apply(st, record("o1", "D", true));
  const v1::Event e = apply(st, reject("o1", "insufficient stock"));
  ASSERT_TRUE(e.has_order_rejected());
  EXPECT_EQ(e.order_rejected().order_id(), "o1");
  EXPECT_EQ(e.order_rejected().reason(), "insufficient stock");
  EXPECT_EQ(strings(e.order_rejected().release_skus()), (std::vector<std::string>{"A", "D"}));
  EXPECT_EQ(ints(e.order_rejected().release_quantities()), (std::vector<int32_t>{1, 4}));
  EXPECT_EQ(st.order().status(), v1::ORDER_STATUS_REJECTED);
  EXPECT_EQ(st.order().reason(), "insufficient stock");
}

TEST(DomainRejectOrder, NothingHeldNothingToRelease) {
  v1::StreamState st = placed("o1", {{"A", 1}});
  const v1::Event e = apply(st, reject("o1"));
  EXPECT_EQ(e.order_rejected().release_skus_size(), 0);
}

TEST(DomainRejectOrder, OnlyAPlacedOrderCanBeRejected) {
  v1::StreamState st = placed("o1", {{"A", 1}});
  apply(st, reject("o1"));
  expect_rejected(st, reject("o1"), "order is rejected");
  expect_rejected(confirmed("o2", {{"A", 1}}), reject("o2"), "order is confirmed");
}

// ---- CancelOrder --------------------------------------------------------------------

TEST(DomainCancelOrder, PlacedOrderIsCancelledReleasingReservedLines) {
  v1::StreamState st = placed("o1", {{"A", 1}, {"B", 1}});
  apply(st, record("o1", "B", true));
  const v1::Event e = apply(st, cancel("o1", "too slow"));
  ASSERT_TRUE(e.has_order_cancelled());
  EXPECT_EQ(e.order_cancelled().reason(), "too slow");
  EXPECT_EQ(strings(e.order_cancelled().release_skus()), (std::vector<std::string>{"B"}));
  EXPECT_EQ(st.order().status(), v1::ORDER_STATUS_CANCELLED);
  EXPECT_EQ(st.order().reason(), "too slow");
}

TEST(DomainCancelOrder, ConfirmedOrderIsCancelledReleasingEveryLine) {
  v1::StreamState st = confirmed("o1", {{"A", 1}, {"B", 2}});
  const v1::Event e = apply(st, cancel("o1"));
  EXPECT_EQ(strings(e.order_cancelled().release_skus()), (std::vector<std::string>{"A", "B"}));
  EXPECT_EQ(ints(e.order_cancelled().release_quantities()), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(st.order().status(), v1::ORDER_STATUS_CANCELLED);
}

TEST(DomainCancelOrder, RejectedCancelledAndShippedOrdersCannotBeCancelled) {
  v1::StreamState rejected = placed("o1", {{"A", 1}});
  apply(rejected, reject("o1"));
  expect_rejected(rejected, cancel("o1"), "order is rejected");

  v1::StreamState cancelled = placed("o2", {{"A", 1}});
  apply(cancelled, cancel("o2"));
  expect_rejected(cancelled, cancel("o2"), "order is cancelled");

  v1::StreamState shipped = confirmed("o3", {{"A", 1}});
  apply(shipped, ship("o3"));
  expect_rejected(shipped, cancel("o3"), "order is shipped");
}

// ---- ShipOrder ----------------------------------------------------------------------

TEST(DomainShipOrder, ConfirmedOrderShipsEveryLine) {
  v1::StreamState st = confirmed("o1", {{"A", 1}, {"B", 2}});
  const v1::Event e = apply(st, ship("o1"));
  ASSERT_TRUE(e.has_order_shipped());
  EXPECT_EQ(e.order_shipped().order_id(), "o1");
  EXPECT_EQ(strings(e.order_shipped().skus()), (std::vector<std::string>{"A", "B"}));
  EXPECT_EQ(ints(e.order_shipped().quantities()), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(st.order().status(), v1::ORDER_STATUS_SHIPPED);
}

TEST(DomainShipOrder, OnlyAConfirmedOrderShips) {
  v1::StreamState st = placed("o1", {{"A", 1}});
  expect_rejected(st, ship("o1"), "order is placed");
  apply_legacy(st, record("o1", "A", true));
  expect_rejected(st, ship("o1"), "order is placed");
  apply(st, confirm("o1"));
  apply(st, ship("o1"));
  expect_rejected(st, ship("o1"), "order is shipped");
  v1::StreamState cancelled = placed("o2", {{"A", 1}});
  apply(cancelled, cancel("o2"));
  expect_rejected(cancelled, ship("o2"), "order is cancelled");
}

// ---- inventory ----------------------------------------------------------------------

TEST(DomainAddStock, AddsToOnHand) {
  v1::StreamState st;
  const v1::Event e = apply(st, add_stock("A", 5));
  ASSERT_TRUE(e.has_stock_added());
  EXPECT_EQ(e.stock_added().sku(), "A");
  EXPECT_EQ(e.stock_added().quantity(), 5);
  EXPECT_EQ(st.version(), 1u);
  ASSERT_TRUE(st.has_inventory());
  EXPECT_EQ(st.inventory().sku(), "A");
  EXPECT_EQ(st.inventory().on_hand(), 5);
  apply(st, add_stock("A", 7));
  EXPECT_EQ(st.inventory().on_hand(), 12);
  EXPECT_EQ(st.inventory().reserved(), 0);
  EXPECT_EQ(st.version(), 2u);
}

TEST(DomainAddStock, OnHandIsBoundedBy2Pow40) {
  v1::StreamState st;
  st.set_version(3);
  st.mutable_inventory()->set_sku("A");
  st.mutable_inventory()->set_on_hand((int64_t{1} << 40) - 10);
  apply(st, add_stock("A", 10));  // exactly 2^40 is allowed
  EXPECT_EQ(st.inventory().on_hand(), int64_t{1} << 40);
  expect_rejected(st, add_stock("A", 1), "2^40");
}

TEST(DomainReserveStock, EnoughStockIsReserved) {
  v1::StreamState st = stock("A", 5);
  const v1::Event e = apply(st, reserve("A", "o1", 3));
  ASSERT_TRUE(e.has_stock_reserved());
  EXPECT_EQ(e.stock_reserved().sku(), "A");
  EXPECT_EQ(e.stock_reserved().order_id(), "o1");
  EXPECT_EQ(e.stock_reserved().quantity(), 3);
  EXPECT_EQ(st.version(), 2u);
  EXPECT_EQ(st.inventory().on_hand(), 5);
  EXPECT_EQ(st.inventory().reserved(), 3);
  EXPECT_EQ(st.inventory().open_holds(), 1);
  EXPECT_TRUE(st.inventory().holds().empty()) << "the state keeps no entry per order";
  // Exactly the remaining two are still available.
  EXPECT_TRUE(apply(st, reserve("A", "o2", 2)).has_stock_reserved());
  EXPECT_EQ(st.inventory().reserved(), 5);
}

TEST(DomainReserveStock, NotEnoughStockIsAShortfallWithWhatIsAvailable) {
  v1::StreamState st = stock("A", 5);
  apply(st, reserve("A", "o1", 4));
  const v1::StreamState before = st;
  const v1::Event e = apply(st, reserve("A", "o2", 2));
  ASSERT_TRUE(e.has_stock_shortfall());
  EXPECT_EQ(e.stock_shortfall().sku(), "A");
  EXPECT_EQ(e.stock_shortfall().order_id(), "o2");
  EXPECT_EQ(e.stock_shortfall().requested(), 2);
  EXPECT_EQ(e.stock_shortfall().available(), 1);
  // A shortfall holds nothing.
  EXPECT_EQ(st.version(), before.version() + 1);
  EXPECT_EQ(st.inventory().reserved(), 4);
  EXPECT_EQ(st.inventory().open_holds(), 1);
}

TEST(DomainReserveStock, UnknownSkuIsAShortfallOfZero) {
  v1::StreamState st;
  const v1::Event e = apply(st, reserve("Q", "o1", 1));
  ASSERT_TRUE(e.has_stock_shortfall());
  EXPECT_EQ(e.stock_shortfall().available(), 0);
  EXPECT_EQ(st.inventory().sku(), "Q");
  EXPECT_EQ(st.version(), 1u);
}

// A state written by an earlier version, holding o1's 3 in its map of holds.
v1::StreamState legacy_stock(const std::string& sku, int32_t on_hand) {
  v1::StreamState st = stock(sku, on_hand);
  st.mutable_inventory()->set_reserved(3);
  (*st.mutable_inventory()->mutable_holds())["o1"] = 3;
  return st;
}

TEST(DomainReserveStock, AnEarlierVersionsHoldOfTheSameOrderIsRejected) {
  v1::StreamState st = legacy_stock("A", 10);
  expect_rejected(st, reserve("A", "o1", 1), "already holds stock");
  EXPECT_TRUE(apply(st, reserve("A", "o2", 1)).has_stock_reserved());
}

TEST(DomainReleaseStock, WithNothingReservedIsRejected) {
  v1::StreamState st = stock("A", 10);
  expect_rejected(st, release("A", "o2", 1), "exceeds what A has reserved (0)");
  apply(st, reserve("A", "o1", 1));
  expect_rejected(st, release("A", "o1", 2), "exceeds what A has reserved (1)");
  // An earlier version's command names no quantity: only a legacy hold can answer it.
  expect_rejected(st, release("A", "o1", 0), "holds no stock");
}

TEST(DomainReleaseStock, ReleasesTheHeldQuantity) {
  v1::StreamState st = stock("A", 10);
  apply(st, reserve("A", "o1", 3));
  apply(st, reserve("A", "o2", 4));
  const v1::Event e = apply(st, release("A", "o1", 3));
  ASSERT_TRUE(e.has_stock_released());
  EXPECT_EQ(e.stock_released().order_id(), "o1");
  EXPECT_EQ(e.stock_released().quantity(), 3);
  EXPECT_FALSE(e.stock_released().shipped());
  EXPECT_EQ(st.inventory().on_hand(), 10);
  EXPECT_EQ(st.inventory().reserved(), 4);
  EXPECT_EQ(st.inventory().open_holds(), 1);
  EXPECT_EQ(st.version(), 4u);
  apply(st, release("A", "o2", 4));
  EXPECT_EQ(st.inventory().open_holds(), 0);
  expect_rejected(st, release("A", "o1", 3), "exceeds what A has reserved");
}

// Holds taken by an earlier version are released by their entry, whatever the command says,
// and new holds only by count: the entries drain.
TEST(DomainReleaseStock, AnEarlierVersionsHoldIsReleasedWithItsQuantity) {
  v1::StreamState st = legacy_stock("A", 10);
  apply(st, reserve("A", "o2", 2));
  const v1::Event e = apply(st, release("A", "o1", 0, /*shipped=*/true));
  EXPECT_EQ(e.stock_released().quantity(), 3);
  EXPECT_TRUE(st.inventory().holds().empty());
  EXPECT_EQ(st.inventory().open_holds(), 1);
  EXPECT_EQ(st.inventory().reserved(), 2);
  EXPECT_EQ(st.inventory().on_hand(), 7);
  EXPECT_EQ(apply(st, release("A", "o2", 2)).stock_released().quantity(), 2);
  EXPECT_EQ(st.inventory().open_holds(), 0);
  EXPECT_EQ(st.inventory().reserved(), 0);
}

TEST(DomainReleaseStock, ShippedReleaseAlsoTakesStockOffHand) {
  v1::StreamState st = stock("A", 10);
  apply(st, reserve("A", "o1", 3));
  const v1::Event e = apply(st, release("A", "o1", 3, /*shipped=*/true));
  EXPECT_TRUE(e.stock_released().shipped());
  EXPECT_EQ(e.stock_released().quantity(), 3);
  EXPECT_EQ(st.inventory().on_hand(), 7);
  EXPECT_EQ(st.inventory().reserved(), 0);
  EXPECT_EQ(st.inventory().open_holds(), 0);
}

TEST(DomainEvolve, ReservedIsTheSumOfHolds) {
  v1::StreamState st = stock("A", 100);
  int64_t sum = 0;
  for (int i = 1; i <= 6; ++i) {
    apply(st, reserve("A", "o" + std::to_string(i), i));
    sum += i;
    EXPECT_EQ(st.inventory().reserved(), sum);
  }
  apply(st, release("A", "o2", 2));
  apply(st, release("A", "o5", 5, true));
  EXPECT_EQ(st.inventory().reserved(), sum - 2 - 5);
  EXPECT_EQ(st.inventory().on_hand(), 95);
  EXPECT_EQ(st.inventory().open_holds(), 4);
  EXPECT_EQ(st.version(), 9u);
}

TEST(DomainEvolve, EveryEventBumpsTheVersionByOne) {
  v1::StreamState st;
  evolve(st, v1::Event());
  EXPECT_EQ(st.version(), 1u);
  v1::Event e;
  e.mutable_stock_shortfall()->set_sku("A");
  evolve(st, e);
  EXPECT_EQ(st.version(), 2u);
}

TEST(DomainDecide, CommandsOnTheWrongKindOfStateAreInternalErrors) {
  const v1::StreamState order = placed("o1", {{"A", 1}});
  const v1::StreamState inv = stock("A", 1);
  auto r1 = decide(order, add_stock("A", 1));
  ASSERT_FALSE(r1);
  EXPECT_EQ(r1.status().code(), StatusCode::kInternal);
  auto r2 = decide(inv, confirm("o1"));
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.status().code(), StatusCode::kInternal);
}

TEST(DomainDecide, CommandWithoutKindIsRejected) {
  v1::Command c;
  c.set_command_id("c1");
  expect_rejected(v1::StreamState(), c, "does not apply");
}

// ---- validate_command ---------------------------------------------------------------

TEST(DomainValidate, WellFormedCommandsOfEveryKindPass) {
  for (const auto& c : {place("o1", {{"A", 1}, {"B", 1000000}}), record("o1", "A", true), confirm("o1"),
                        reject("o1"), cancel("o1"), ship("o1"), add_stock("A", 1), reserve("A", "o1", 1),
                        release("A", "o1", 1), release("A", "o1", 0)}) {
    auto s = validate_command(c);
    EXPECT_TRUE(s) << command_name(c) << ": " << s.to_string();
  }
}

void expect_invalid(const v1::Command& c, const std::string& why) {
  auto s = validate_command(c);
  ASSERT_FALSE(s) << c.ShortDebugString();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(why), std::string::npos) << "'" << s.message() << "' lacks '" << why << "'";
}

TEST(DomainValidate, MissingCommandId) {
  v1::Command c = confirm("o1");
  c.clear_command_id();
  expect_invalid(c, "commandId is required");
}

TEST(DomainValidate, NoKind) {
  v1::Command c;
  c.set_command_id("c1");
  expect_invalid(c, "no kind");
}

TEST(DomainValidate, PlaceOrderShape) {
  expect_invalid(place("o1", {}), "lines must not be empty");
  expect_invalid(place("o1", {{"A", 1}, {"B", 1}, {"A", 2}}), "sku A twice");
  expect_invalid(place("o1", {{"A", 0}}), "quantity must be positive");
  expect_invalid(place("o1", {{"A", -3}}), "quantity must be positive");
  expect_invalid(place("o1", {{"A", 1000001}}), "at most 1000000");
  expect_invalid(place("o1", {{"A", 1}}, ""), "customerId is required");
  expect_invalid(place("", {{"A", 1}}), "orderId is required");
  expect_invalid(place("o1", {{"", 1}}), "sku is required");
  v1::Command price = place("o1", {{"A", 1}});
  price.mutable_place_order()->mutable_lines(0)->set_unit_price_cents(-1);
  expect_invalid(price, "unitPriceCents");
  Lines many;
  for (int i = 0; i < 101; ++i) many.emplace_back("S" + std::to_string(i), 1);
  expect_invalid(place("o1", many), "more than 100 lines");
  many.pop_back();
  EXPECT_TRUE(validate_command(place("o1", many)));
}

TEST(DomainValidate, IdsMustBePrintableWithoutSeparators) {
  const std::vector<std::string> bads = {"a/b", "a b", "a?b", "a#b", "tab\t", "caf\xc3\xa9", std::string("a\0b", 3)};
  for (const auto& bad : bads) {
    expect_invalid(confirm(bad), "confirmOrder.orderId");
    if (bad == "a/b") continue;  // command ids may contain '/' (saga ids use it as separator)
    v1::Command c = add_stock("A", 1);
    c.set_command_id(bad);
    expect_invalid(c, "commandId");
  }
  v1::Command saga_like = add_stock("A", 1);
  saga_like.set_command_id("saga/order-o1/3/confirm");
  EXPECT_TRUE(validate_command(saga_like));
  expect_invalid(add_stock("A B", 1), "addStock.sku");
  expect_invalid(place("o1", {{"x/y", 1}}), "placeOrder.lines.sku");
  expect_invalid(confirm(std::string(129, 'x')), "longer than 128");
  EXPECT_TRUE(validate_command(confirm(std::string(128, 'x'))));
  EXPECT_TRUE(validate_command(confirm("a-b_c.d:e~!")));
}

TEST(DomainValidate, InventoryAndSagaCommandShape) {
  expect_invalid(add_stock("A", 0), "quantity must be positive");
  expect_invalid(add_stock("", 1), "addStock.sku is required");
  expect_invalid(reserve("A", "o1", -1), "quantity must be positive");
  expect_invalid(reserve("A", "", 1), "reserveStock.orderId is required");
  expect_invalid(release("A", "", 1), "releaseStock.orderId is required");
  expect_invalid(release("", "o1", 1), "releaseStock.sku is required");
  expect_invalid(release("A", "o1", -1), "quantity must be positive");
  expect_invalid(record("o1", "", true), "recordReservation.sku is required");
  expect_invalid(record("", "A", true), "recordReservation.orderId is required");
  expect_invalid(reject(""), "rejectOrder.orderId");
  expect_invalid(cancel(""), "cancelOrder.orderId");
  expect_invalid(ship(""), "shipOrder.orderId");
}

// ---- stream_of / command_name -------------------------------------------------------

TEST(DomainNames, StreamOfEveryCommand) {
  EXPECT_EQ(stream_of(place("o1", {{"A", 1}})), "order-o1");
  EXPECT_EQ(stream_of(record("o2", "A", true)), "order-o2");
  EXPECT_EQ(stream_of(confirm("o3")), "order-o3");
  EXPECT_EQ(stream_of(reject("o4")), "order-o4");
  EXPECT_EQ(stream_of(cancel("o5")), "order-o5");
  EXPECT_EQ(stream_of(ship("o6")), "order-o6");
  EXPECT_EQ(stream_of(add_stock("A", 1)), "sku-A");
  EXPECT_EQ(stream_of(reserve("B", "o1", 1)), "sku-B");
  EXPECT_EQ(stream_of(release("C", "o1", 1)), "sku-C");
  EXPECT_EQ(stream_of(v1::Command()), "");
  EXPECT_EQ(order_stream("x"), "order-x");
  EXPECT_EQ(sku_stream("x"), "sku-x");
}

TEST(DomainNames, CommandAndEventNamesFollowTheJsonMapping) {
  EXPECT_EQ(command_name(place("o1", {{"A", 1}})), "placeOrder");
  EXPECT_EQ(command_name(record("o1", "A", true)), "recordReservation");
  EXPECT_EQ(command_name(confirm("o1")), "confirmOrder");
  EXPECT_EQ(command_name(reject("o1")), "rejectOrder");
  EXPECT_EQ(command_name(cancel("o1")), "cancelOrder");
  EXPECT_EQ(command_name(ship("o1")), "shipOrder");
  EXPECT_EQ(command_name(add_stock("A", 1)), "addStock");
  EXPECT_EQ(command_name(reserve("A", "o1", 1)), "reserveStock");
  EXPECT_EQ(command_name(release("A", "o1", 1)), "releaseStock");
  EXPECT_EQ(command_name(v1::Command()), "");

  v1::Event e;
  EXPECT_EQ(event_name(e), "");
  e.mutable_reservation_recorded();
  EXPECT_EQ(event_name(e), "reservationRecorded");
  e.mutable_stock_released();
  EXPECT_EQ(event_name(e), "stockReleased");
}

// ---- saga_react ---------------------------------------------------------------------

v1::Event order_placed_event(const std::string& order, const Lines& lines) {
  return accepted(v1::StreamState(), place(order, lines)).at(0);
}

std::vector<std::string> ids(const std::vector<v1::Command>& cs) {
  std::vector<std::string> out;
  for (const auto& c : cs) out.push_back(c.command_id());
  return out;
}

TEST(DomainSaga, OrderPlacedReservesEveryLine) {
  const auto out = saga_react("order-o1", 1, order_placed_event("o1", {{"A", 2}, {"B", 5}}));
  ASSERT_EQ(out.size(), 2u);
  for (const auto& c : out) {
    ASSERT_TRUE(c.has_reserve_stock());
    EXPECT_EQ(c.reserve_stock().order_id(), "o1");
    EXPECT_TRUE(validate_command(c)) << c.command_id();
  }
  EXPECT_EQ(out[0].reserve_stock().sku(), "A");
  EXPECT_EQ(out[0].reserve_stock().quantity(), 2);
  EXPECT_EQ(out[1].reserve_stock().sku(), "B");
  EXPECT_EQ(out[1].reserve_stock().quantity(), 5);
  EXPECT_NE(out[0].command_id(), out[1].command_id());
}

TEST(DomainSaga, IdsAreDeterministicPerTriggeringEvent) {
  const v1::Event e = order_placed_event("o1", {{"A", 2}, {"B", 5}});
  const auto first = ids(saga_react("order-o1", 1, e));
  EXPECT_EQ(ids(saga_react("order-o1", 1, e)), first);
  const auto later = ids(saga_react("order-o1", 2, e));
  const auto other = ids(saga_react("order-o9", 1, e));
  ASSERT_EQ(later.size(), first.size());
  ASSERT_EQ(other.size(), first.size());
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_NE(later[i], first[i]);
    EXPECT_NE(other[i], first[i]);
  }
}

TEST(DomainSaga, StockOutcomesAreRecordedOnTheOrder) {
  v1::Event reserved;
  auto* r = reserved.mutable_stock_reserved();
  r->set_sku("A");
  r->set_order_id("o1");
  r->set_quantity(3);
  auto out = saga_react("sku-A", 7, reserved);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(out[0].has_record_reservation());
  EXPECT_EQ(out[0].record_reservation().order_id(), "o1");
  EXPECT_EQ(out[0].record_reservation().sku(), "A");
  EXPECT_TRUE(out[0].record_reservation().reserved());
  EXPECT_EQ(out[0].record_reservation().quantity(), 3);
  EXPECT_EQ(stream_of(out[0]), "order-o1");
  EXPECT_TRUE(validate_command(out[0]));

  v1::Event shortfall;
  auto* s = shortfall.mutable_stock_shortfall();
  s->set_sku("A");
  s->set_order_id("o2");
  s->set_requested(4);
  s->set_available(1);
  out = saga_react("sku-A", 8, shortfall);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(out[0].has_record_reservation());
  EXPECT_EQ(out[0].record_reservation().order_id(), "o2");
  EXPECT_FALSE(out[0].record_reservation().reserved());
  EXPECT_EQ(out[0].record_reservation().quantity(), 4);
}

v1::Event recorded(bool all_decided, bool all_reserved, bool closed = false) {
  v1::Event e;
  auto* r = e.mutable_reservation_recorded();
  r->set_order_id("o1");
  r->set_sku("A");
  r->set_reserved(true);
  r->set_quantity(1);
  r->set_all_decided(all_decided);
  r->set_all_reserved(all_reserved);
  r->set_order_closed(closed);
  return e;
}

// A record that settled its order (the confirmation or rejection in the same command)
// needs nothing from the saga; older records (not settled) get the saga's command.
TEST(DomainSaga, ASettledRecordNeedsNoConfirmationOrRejection) {
  for (bool all_reserved : {true, false}) {
    v1::Event e = recorded(true, all_reserved);
    e.mutable_reservation_recorded()->set_settled(true);
    EXPECT_TRUE(saga_react("order-o1", 3, e).empty()) << all_reserved;
  }
}

TEST(DomainSaga, AllReservedConfirmsTheOrder) {
  const auto out = saga_react("order-o1", 3, recorded(true, true));
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(out[0].has_confirm_order());
  EXPECT_EQ(out[0].confirm_order().order_id(), "o1");
}

TEST(DomainSaga, DecidedWithShortfallRejectsTheOrder) {
  const auto out = saga_react("order-o1", 3, recorded(true, false));
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(out[0].has_reject_order());
  EXPECT_EQ(out[0].reject_order().order_id(), "o1");
  EXPECT_FALSE(out[0].reject_order().reason().empty());
}

TEST(DomainSaga, UndecidedOrderWaits) {
  EXPECT_TRUE(saga_react("order-o1", 2, recorded(false, false)).empty());
}

TEST(DomainSaga, OutcomeOnClosedOrderReleasesTheHold) {
  const auto out = saga_react("order-o1", 4, recorded(false, false, /*closed=*/true));
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(out[0].has_release_stock());
  EXPECT_EQ(out[0].release_stock().sku(), "A");
  EXPECT_EQ(out[0].release_stock().order_id(), "o1");
  EXPECT_EQ(out[0].release_stock().quantity(), 1);
  EXPECT_FALSE(out[0].release_stock().shipped());
}

TEST(DomainSaga, RejectedAndCancelledOrdersReleaseEveryListedSku) {
  v1::Event rejected;
  rejected.mutable_order_rejected()->set_order_id("o1");
  rejected.mutable_order_rejected()->add_release_skus("A");
  rejected.mutable_order_rejected()->add_release_skus("C");
  rejected.mutable_order_rejected()->add_release_quantities(2);
  rejected.mutable_order_rejected()->add_release_quantities(7);
  v1::Event cancelled;
  cancelled.mutable_order_cancelled()->set_order_id("o1");
  cancelled.mutable_order_cancelled()->add_release_skus("A");
  cancelled.mutable_order_cancelled()->add_release_skus("C");
  cancelled.mutable_order_cancelled()->add_release_quantities(2);
  cancelled.mutable_order_cancelled()->add_release_quantities(7);
  for (const auto& e : {rejected, cancelled}) {
    const auto out = saga_react("order-o1", 5, e);
    ASSERT_EQ(out.size(), 2u) << event_name(e);
    EXPECT_EQ(out[0].release_stock().sku(), "A");
    EXPECT_EQ(out[1].release_stock().sku(), "C");
    EXPECT_EQ(out[0].release_stock().quantity(), 2);
    EXPECT_EQ(out[1].release_stock().quantity(), 7);
    for (const auto& c : out) {
      ASSERT_TRUE(c.has_release_stock());
      EXPECT_EQ(c.release_stock().order_id(), "o1");
      EXPECT_FALSE(c.release_stock().shipped());
      EXPECT_TRUE(validate_command(c));
    }
    EXPECT_NE(out[0].command_id(), out[1].command_id());
  }
  // An event of an earlier version names no quantities: its releases carry none, and the
  // SKU's legacy holds answer them.
  cancelled.mutable_order_cancelled()->clear_release_quantities();
  for (const auto& c : saga_react("order-o1", 5, cancelled)) EXPECT_EQ(c.release_stock().quantity(), 0);
  rejected.mutable_order_rejected()->clear_release_skus();
  EXPECT_TRUE(saga_react("order-o1", 5, rejected).empty());
}

TEST(DomainSaga, ShippedOrderReleasesWithShipped) {
  v1::Event e;
  e.mutable_order_shipped()->set_order_id("o1");
  e.mutable_order_shipped()->add_skus("A");
  e.mutable_order_shipped()->add_skus("B");
  e.mutable_order_shipped()->add_quantities(3);
  e.mutable_order_shipped()->add_quantities(1);
  const auto out = saga_react("order-o1", 6, e);
  ASSERT_EQ(out.size(), 2u);
  for (const auto& c : out) {
    ASSERT_TRUE(c.has_release_stock());
    EXPECT_TRUE(c.release_stock().shipped());
    EXPECT_EQ(c.release_stock().order_id(), "o1");
  }
  EXPECT_EQ(out[1].release_stock().sku(), "B");
  EXPECT_EQ(out[0].release_stock().quantity(), 3);
  EXPECT_EQ(out[1].release_stock().quantity(), 1);
}

TEST(DomainSaga, OtherEventsIssueNothing) {
  v1::Event e;
  e.mutable_order_confirmed()->set_order_id("o1");
  EXPECT_TRUE(saga_react("order-o1", 4, e).empty());
  e.mutable_stock_added()->set_sku("A");
  EXPECT_TRUE(saga_react("sku-A", 1, e).empty());
  e.mutable_stock_released()->set_sku("A");
  EXPECT_TRUE(saga_react("sku-A", 2, e).empty());
  EXPECT_TRUE(saga_react("sku-A", 3, v1::Event()).empty());
}

// ---- the whole saga, simulated ------------------------------------------------------

// Streams folded in memory, commands taken from a pool in random order (the pipeline's
// lanes reorder across streams), each saga reaction sometimes delivered twice (a change
// feed redelivers after a restart); command ids deduplicate as the event store does.
class SagaSim {
 public:
  explicit SagaSim(uint32_t seed) : rng_(seed) {}

  void submit(v1::Command c) { pool_.push_back(std::move(c)); }

  void run() {
    while (!pool_.empty()) {
      std::uniform_int_distribution<size_t> pick(0, pool_.size() - 1);
      const size_t i = pick(rng_);
      v1::Command c = std::move(pool_[i]);
      pool_[i] = std::move(pool_.back());
      pool_.pop_back();
      step(c);
      check_stock();
      if (::testing::Test::HasFatalFailure()) return;
    }
  }

  const std::map<std::string, v1::StreamState>& streams() const { return streams_; }
  const std::map<std::string, int>& event_counts() const { return event_counts_; }
  std::mt19937& rng() { return rng_; }
  // The holds of `sku` (order -> quantity), folded from its events.
  const std::map<std::string, int32_t>& holds(const std::string& sku) { return holds_[sku]; }

 private:
  void step(const v1::Command& c) {
    ASSERT_TRUE(validate_command(c)) << c.ShortDebugString();
    if (!seen_.insert(c.command_id()).second) return;  // a repeat: the first result stands
    const std::string stream = stream_of(c);
    v1::StreamState& st = streams_[stream];
    auto r = decide(st, c);
    if (!r) {
      ASSERT_EQ(r.status().code(), StatusCode::kRejected) << r.status().to_string();
      return;
    }
    for (const auto& e : *r) {
      ++event_counts_[event_name(e)];
      if (e.has_stock_reserved()) {
        const auto& h = e.stock_reserved();
        ASSERT_TRUE(holds_[h.sku()].emplace(h.order_id(), h.quantity()).second) << "a second hold: " << e.ShortDebugString();
      } else if (e.has_stock_released()) {
        auto& held = holds_[e.stock_released().sku()];
        auto h = held.find(e.stock_released().order_id());
        ASSERT_NE(h, held.end()) << "a release without a hold: " << e.ShortDebugString();
        ASSERT_EQ(h->second, e.stock_released().quantity()) << e.ShortDebugString();
        held.erase(h);
      }
      if (e.has_reservation_recorded() && e.reservation_recorded().order_closed()) ++event_counts_["orderClosed"];
      evolve(st, e);
      const int deliveries = std::bernoulli_distribution(0.3)(rng_) ? 2 : 1;
      for (int d = 0; d < deliveries; ++d)
        for (auto& next : saga_react(stream, st.version(), e)) pool_.push_back(std::move(next));
    }
  }

  void check_stock() {
    for (const auto& [name, st] : streams_) {
      if (!st.has_inventory()) continue;
      const auto& inv = st.inventory();
      int64_t held = 0;
      for (const auto& [order, q] : holds_[inv.sku()]) {
        ASSERT_GT(q, 0) << name << " hold of " << order;
        held += q;
      }
      ASSERT_EQ(inv.open_holds(), static_cast<int64_t>(holds_[inv.sku()].size())) << name;
      ASSERT_GE(inv.on_hand(), 0) << name;
      ASSERT_GE(inv.reserved(), 0) << name;
      ASSERT_LE(inv.reserved(), inv.on_hand()) << name;
      ASSERT_EQ(inv.reserved(), held) << name;
    }
  }

  std::mt19937 rng_;
  std::vector<v1::Command> pool_;
  std::set<std::string> seen_;
  std::map<std::string, v1::StreamState> streams_;
  std::map<std::string, int> event_counts_;
  std::map<std::string, std::map<std::string, int32_t>> holds_;  // sku -> order -> quantity, from the events
};

TEST(DomainSagaProperty, ScarceStockNeverGoesNegativeAndConfirmedOrdersHoldEveryLine) {
  const std::vector<std::string> skus = {"A", "B", "C"};
  std::map<v1::OrderStatus, int> outcomes;
  std::map<std::string, int> events;
  for (uint32_t seed = 1; seed <= 60; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    SagaSim sim(seed);
    std::map<std::string, int64_t> added = {{"A", 4}, {"B", 3}, {"C", 2}};
    for (const auto& [sku, q] : added) sim.submit(add_stock(sku, static_cast<int32_t>(q)));
    std::map<std::string, Lines> orders;
    for (int o = 1; o <= 8; ++o) {
      const std::string id = "o" + std::to_string(o);
      Lines lines;
      for (const auto& sku : skus)
        if (std::bernoulli_distribution(0.6)(sim.rng()))
          lines.emplace_back(sku, std::uniform_int_distribution<int32_t>(1, 3)(sim.rng()));
      if (lines.empty()) lines.emplace_back("A", 1);
      orders[id] = lines;
      sim.submit(place(id, lines));
      if (std::bernoulli_distribution(0.25)(sim.rng())) sim.submit(cancel(id));  // races the saga
      if (std::bernoulli_distribution(0.2)(sim.rng())) sim.submit(ship(id));     // usually too early
    }
    sim.run();
    ASSERT_FALSE(HasFatalFailure());

    // Second round, on the settled state: ship or cancel some orders, restock.
    for (const auto& [id, lines] : orders) {
      const int dice = std::uniform_int_distribution<int>(0, 3)(sim.rng());
      if (dice == 0) sim.submit(ship(id));
      if (dice == 1) sim.submit(cancel(id));
    }
    sim.submit(add_stock("C", 1));
    added["C"] += 1;
    sim.run();
    ASSERT_FALSE(HasFatalFailure());
    for (const auto& [name, n] : sim.event_counts()) events[name] += n;

    const auto& streams = sim.streams();
    auto inventory = [&](const std::string& sku) -> const v1::InventoryState& {
      auto it = streams.find(sku_stream(sku));
      return it == streams.end() ? v1::InventoryState::default_instance() : it->second.inventory();
    };
    std::map<std::string, int64_t> shipped;
    for (const auto& [id, lines] : orders) {
      const auto& st = streams.at(order_stream(id));
      const auto status = st.order().status();
      ++outcomes[status];
      EXPECT_NE(status, v1::ORDER_STATUS_PLACED) << id << " never settled";
      if (status == v1::ORDER_STATUS_CONFIRMED) {
        for (const auto& l : st.order().lines()) {
          EXPECT_EQ(l.status(), v1::LINE_RESERVED) << id << " " << l.line().sku();
          const auto& holds = sim.holds(l.line().sku());
          auto h = holds.find(id);
          ASSERT_NE(h, holds.end()) << "confirmed " << id << " holds no " << l.line().sku();
          EXPECT_EQ(h->second, l.line().quantity());
        }
        continue;
      }
      if (status == v1::ORDER_STATUS_SHIPPED)
        for (const auto& l : st.order().lines()) shipped[l.line().sku()] += l.line().quantity();
      for (const auto& sku : skus)
        EXPECT_EQ(sim.holds(sku).count(id), 0u) << id << " is settled but holds " << sku;
    }
    for (const auto& sku : skus) {
      const auto& inv = inventory(sku);
      EXPECT_EQ(inv.on_hand(), added[sku] - shipped[sku]) << sku;
      for (const auto& [order, q] : sim.holds(sku))
        EXPECT_EQ(streams.at(order_stream(order)).order().status(), v1::ORDER_STATUS_CONFIRMED)
            << sku << " held for " << order;
    }
  }
  // The runs really covered every ending (else the setup is not scarce or not racy enough).
  EXPECT_GT(outcomes[v1::ORDER_STATUS_CONFIRMED], 0);
  EXPECT_GT(outcomes[v1::ORDER_STATUS_SHIPPED], 0);
  EXPECT_GT(outcomes[v1::ORDER_STATUS_REJECTED], 0);
  EXPECT_GT(outcomes[v1::ORDER_STATUS_CANCELLED], 0);
  EXPECT_GT(events["stockShortfall"], 0);
  EXPECT_GT(events["orderClosed"], 0) << "no reservation ever arrived after a cancellation";
  EXPECT_GT(events["stockReleased"], 0);
}

}  // namespace
}  // namespace orderflow::orders
