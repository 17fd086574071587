// The domain invariants of docs/architecture.md, checked against an event store's change feed and a
// snapshot store after the pipeline went quiet. Shared by the pipeline, Kafka and server
// suites. GoogleTest assertions; call from a test body (ASSERT_NO_FATAL_FAILURE).
#pragma once

#include <gtest/gtest.h>
#include <google/protobuf/util/message_differencer.h>

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "graph/store.h"
#include "domain/orders/orders.h"

namespace orderflow::testing {

struct StoreFold {
  std::vector<RecordedEvent> all;                     // the whole log, position order
  std::map<std::string, v1::StreamState> states;      // fold of the log per stream
  std::map<std::string, uint64_t> events_per_command; // command id -> events written
  size_t confirmed = 0, rejected = 0;                 // orders in those states
  std::map<std::string, std::map<std::string, int32_t>> holds;  // sku -> order -> quantity held
};

// Every committed event, in commit order per stream, read by a subscriber of its own. A
// feed without global positions (Cosmos DB) hands each subscriber a view whose reads
// return a pass of pages at a time, so this reads until a read comes back empty.
inline std::vector<RecordedEvent> read_whole_log(ChangeFeed& base) {
  static std::atomic<int> audits{0};
  auto view = base.subscribe("audit-" + std::to_string(audits++));
  EXPECT_TRUE(view) << view.status().to_string();
  ChangeFeed* feed = view ? *view : &base;
  std::vector<RecordedEvent> all;
  for (;;) {
    std::vector<RecordedEvent> batch;
    EXPECT_TRUE(feed->read(all.empty() ? 0 : all.back().position, 100000000, &batch));
    if (batch.empty()) break;
    all.insert(all.end(), batch.begin(), batch.end());
  }
  return all;
}

// Reads the whole log, checks positions and versions are dense, stock is never negative,
// reservations match holds, no order is left placed, confirmed orders hold every line,
// closed orders hold nothing, and the snapshot store equals the fold of the log.
inline void check_store_invariants(ChangeFeed& feed, SnapshotStore& snapshots, StoreFold* out) {
  StoreFold& f = *out;
  f.all = read_whole_log(feed);
  ASSERT_FALSE(f.all.empty());
  ASSERT_EQ(f.all.size(), f.all.back().position);
  for (size_t i = 0; i < f.all.size(); ++i) {
    const auto& r = f.all[i];
    ASSERT_EQ(r.position, i + 1) << "positions are dense and in commit order";
    auto& st = f.states[r.stream];
    ASSERT_EQ(r.version, st.version() + 1) << "versions of " << r.stream << " are dense";
    v1::Event e;
    ASSERT_TRUE(e.ParseFromString(r.payload));
    orders::evolve(st, e);
    f.events_per_command[r.command_id]++;
    // The holds, from the SKUs' events (their states keep only a count): each order
    // reserves a SKU at most once and releases exactly what it holds, once.
    if (e.has_stock_reserved()) {
      const auto& s = e.stock_reserved();
      EXPECT_TRUE(f.holds[s.sku()].emplace(s.order_id(), s.quantity()).second)
          << "order " << s.order_id() << " reserved " << s.sku() << " twice (position " << r.position << ")";
    } else if (e.has_stock_released()) {
      const auto& s = e.stock_released();
      auto& held = f.holds[s.sku()];
      auto h = held.find(s.order_id());
      if (h == held.end()) {
        ADD_FAILURE() << "order " << s.order_id() << " released " << s.sku() << " without a hold (position "
                      << r.position << ")";
      } else {
        EXPECT_EQ(h->second, s.quantity()) << "a release of another quantity than held: " << r.stream;
        held.erase(h);
      }
    }
  }

  std::map<std::string, std::map<std::string, int32_t>> holds_by_order;  // order -> sku -> qty
  for (const auto& [stream, st] : f.states) {
    if (st.kind_case() != v1::StreamState::kInventory) continue;
    const auto& inv = st.inventory();
    EXPECT_GE(inv.on_hand(), 0) << stream;
    EXPECT_GE(inv.reserved(), 0) << stream;
    EXPECT_LE(inv.reserved(), inv.on_hand()) << "stock never negative: " << stream;
    int64_t sum = 0;
    const auto& held = f.holds[inv.sku()];
    for (const auto& [order, q] : held) {
      sum += q;
      holds_by_order[order][inv.sku()] = q;
    }
    EXPECT_EQ(inv.reserved(), sum) << "reserved = sum of holds: " << stream;
    EXPECT_EQ(inv.open_holds() + inv.holds_size(), static_cast<int64_t>(held.size())) << "open holds: " << stream;
  }
  for (const auto& [stream, st] : f.states) {
    if (st.kind_case() != v1::StreamState::kOrder) continue;
    const auto& o = st.order();
    const auto& holds = holds_by_order[o.order_id()];
    switch (o.status()) {
      case v1::ORDER_STATUS_CONFIRMED:
        ++f.confirmed;
        for (const auto& l : o.lines()) {
          EXPECT_EQ(l.status(), v1::LINE_RESERVED) << "confirmed only if every line was reserved: " << stream;
          auto h = holds.find(l.line().sku());
          ASSERT_NE(h, holds.end()) << stream << " confirmed without a hold on " << l.line().sku();
          EXPECT_EQ(h->second, l.line().quantity());
        }
        EXPECT_EQ(holds.size(), static_cast<size_t>(o.lines_size()));
        break;
      case v1::ORDER_STATUS_PLACED: {
        std::string trail;  // what happened to it, for the failure message
        for (const auto& r : f.all) {
          v1::Event e;
          e.ParseFromString(r.payload);
          if (r.stream == stream || e.ShortDebugString().find("\"" + o.order_id() + "\"") != std::string::npos)
            trail += "\n  " + std::to_string(r.position) + " " + r.stream + " v" + std::to_string(r.version) + " [" +
                     r.command_id + "] " + e.ShortDebugString();
        }
        ADD_FAILURE() << stream << " is still placed after quiescence:" << trail;
        break;
      }
      default:
        if (o.status() == v1::ORDER_STATUS_REJECTED) ++f.rejected;
        EXPECT_TRUE(holds.empty()) << stream << " is closed but holds stock";
    }
  }
  for (const auto& [order, h] : holds_by_order) {
    auto st = f.states.find(orders::order_stream(order));
    ASSERT_NE(st, f.states.end());
    if (!h.empty()) {
      EXPECT_EQ(st->second.order().status(), v1::ORDER_STATUS_CONFIRMED) << order;
    }
  }
  // The projection equals a fold of the event store.
  for (const auto& [stream, st] : f.states) {
    auto snap = snapshots.get(stream);
    ASSERT_TRUE(snap);
    v1::StreamState projected;
    ASSERT_TRUE(projected.ParseFromString(snap->state));
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(projected, st)) << stream;
  }
}

}  // namespace orderflow::testing
