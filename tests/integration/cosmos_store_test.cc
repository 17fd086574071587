// Cosmos DB stores against the stand-in (tests/cosmos/launcher.js over
// @vercel/cosmosdb-server): the shared store conformance suites, concurrent writers on
// one stream, retries under injected 429/503, the signature check, TLS with a CA file,
// etag-guarded snapshots and the change feed with leases.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "connectors/cosmos_store.h"
#include "tests/support/cosmos_standin.h"
#include "tests/unit/store_conformance.h"

namespace orderflow::connectors {
namespace {

using conformance::req;
using orderflow::testing::CosmosStandIn;
using namespace std::chrono_literals;

std::shared_ptr<CosmosClient> client_for(const CosmosStandIn& s, const std::string& key = "") {
  CosmosOptions o;
  o.endpoint = s.endpoint();
  o.key = key.empty() ? s.key() : key;
  o.base_backoff = 5ms;
  auto c = CosmosClient::open(o);
  if (!c) throw std::runtime_error(c.status().to_string());
  return *c;
}

CosmosStoreOptions store_options(const std::string& container) {
  CosmosStoreOptions o;
  o.database = "orderflow";
  o.container = container;
  return o;
}

std::unique_ptr<CosmosEventStore> open_events(std::shared_ptr<CosmosClient> c, CosmosStoreOptions o = store_options("events")) {
  auto s = CosmosEventStore::open(std::move(c), o);
  if (!s) throw std::runtime_error(s.status().to_string());
  return std::move(*s);
}

// ---- conformance --------------------------------------------------------------------------

class CosmosBackend {
 public:
  static constexpr bool kGlobalPositions = false;
  static constexpr bool kGlobalCommandIds = false;
  CosmosBackend() : store_(open_events(client_for(standin_))) {}
  EventStore& events() { return *store_; }
  ChangeFeed& feed() { return *store_; }

 private:
  CosmosStandIn standin_;
  std::unique_ptr<CosmosEventStore> store_;
};

class CosmosSnapshots {
 public:
  CosmosSnapshots() {
    auto s = CosmosSnapshotStore::open(client_for(standin_), store_options("snapshots"));
    if (!s) throw std::runtime_error(s.status().to_string());
    store_ = std::move(*s);
  }
  SnapshotStore& store() { return *store_; }

 private:
  CosmosStandIn standin_;
  std::unique_ptr<CosmosSnapshotStore> store_;
};

struct CosmosName {
  template <typename T>
  static std::string GetName(int) {
    return "Cosmos";
  }
};

using namespace conformance;  // the typed suites' names, for INSTANTIATE_TYPED_TEST_SUITE_P
INSTANTIATE_TYPED_TEST_SUITE_P(StandIn, EventStoreTest, ::testing::Types<CosmosBackend>, CosmosName);
INSTANTIATE_TYPED_TEST_SUITE_P(StandIn, SnapshotStoreTest, ::testing::Types<CosmosSnapshots>, CosmosName);

// ---- event store specifics ------------------------------------------------------------------

class CosmosEventStoreTest : public ::testing::Test {
 protected:
  CosmosStandIn standin_{CosmosStandIn::Options{4, "", ""}};
};

TEST_F(CosmosEventStoreTest, OneDocumentPerCommitWithADeterministicIdAndConflictOnTheSameVersion) {
  auto a = open_events(client_for(standin_));
  auto b = open_events(client_for(standin_));  // a second process on the same container
  auto ra = a->append({req("order-1", 0, "ca", {"x", "y"})}).at(0);
  ASSERT_TRUE(ra.status) << ra.status.to_string();
  // b decided on version 0 too: its create hits id order-1:1 and gets 409.
  auto rb = b->append({req("order-1", 0, "cb", {"z"})}).at(0);
  EXPECT_EQ(rb.status.code(), StatusCode::kConflict) << rb.status.to_string();
  EXPECT_EQ(rb.actual_version, 2u);
  // b re-decides on fresh state and commits after a.
  auto again = b->append({req("order-1", 2, "cb", {"z"})}).at(0);
  ASSERT_TRUE(again.status) << again.status.to_string();
  EXPECT_EQ(again.first_version, 3u);
  std::vector<RecordedEvent> events;
  ASSERT_TRUE(a->read_stream("order-1", 1, &events));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].payload, "z");
  EXPECT_EQ(events[2].command_id, "cb");
}

TEST_F(CosmosEventStoreTest, StaleCachedVersionCollidesInsteadOfWritingAGap) {
  auto a = open_events(client_for(standin_));
  auto b = open_events(client_for(standin_));
  ASSERT_TRUE(a->append({req("s", 0, "c1", {"1"})}).at(0).status);  // a saw s at 1
  ASSERT_TRUE(b->stream_version("s"));
  ASSERT_TRUE(b->append({req("s", 1, "c2", {"2"})}).at(0).status);  // b moved it to 2
  // a still believes s is at 1 and skips its version query: the create must collide.
  auto r = a->append({req("s", 1, "c3", {"3"})}).at(0);
  EXPECT_EQ(r.status.code(), StatusCode::kConflict);
  EXPECT_EQ(r.actual_version, 2u);
  EXPECT_EQ(*a->stream_version("s"), 2u);
}

// Two writers on one stream, each re-deciding on conflict: one wins each race, the other
// re-decides, and every command ends up exactly once with contiguous versions.
TEST_F(CosmosEventStoreTest, TwoWritersOnOneStreamNothingLostNothingDoubled) {
  constexpr int kPerWriter = 30;
  std::atomic<int> conflicts{0};
  auto writer = [&](const std::string& name) {
    auto store = open_events(client_for(standin_));
    for (int i = 0; i < kPerWriter; ++i) {
      const std::string id = name + "-" + std::to_string(i);
      for (int attempt = 0; attempt < 100; ++attempt) {
        auto v = store->stream_version("order-shared");  // "load state"
        ASSERT_TRUE(v) << v.status().to_string();
        auto r = store->append({req("order-shared", *v, id, {id})}).at(0);
        if (r.status) break;
        ASSERT_EQ(r.status.code(), StatusCode::kConflict) << r.status.to_string();
        conflicts++;
      }
    }
  };
  std::thread t1(writer, "w1"), t2(writer, "w2");
  t1.join();
  t2.join();
  auto check = open_events(client_for(standin_));
  std::vector<RecordedEvent> events;
  ASSERT_TRUE(check->read_stream("order-shared", 1, &events));
  ASSERT_EQ(events.size(), size_t{2 * kPerWriter});
  std::set<std::string> seen;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].version, i + 1);
    EXPECT_TRUE(seen.insert(events[i].payload).second) << "doubled: " << events[i].payload;
  }
  std::cout << "conflicts resolved by re-deciding: " << conflicts.load() << "\n";
}

// A chain whose head collides with another writer's commit (found at create, not by a
// version query: this store's cached version was current when it planned) fails the rest of
// its stream; the repeats among them answer with their first results in the same call, the
// new ones conflict.
TEST_F(CosmosEventStoreTest, RepeatsBehindAConflictAtCreateAnswerAsDuplicates) {
  auto a = open_events(client_for(standin_));
  auto b = open_events(client_for(standin_));
  ASSERT_TRUE(a->append({req("s", 0, "c1", {"e1"})}).at(0).status);
  ASSERT_TRUE(a->append({req("s", 1, "c2", {"e2"})}).at(0).status);
  auto v = b->stream_version("s");
  ASSERT_TRUE(v && *v == 2u);
  ASSERT_TRUE(b->append({req("s", 2, "other", {"o"})}).at(0).status);  // a does not know
  std::vector<AppendRequest> chain = {req("s", 2, "new1", {"n1"}), req("s", 3, "c1", {"again"}),
                                      req("s", 4, "c2", {"again"}), req("s", 5, "new2", {"n2"})};
  for (auto& r : chain) r.chain = 11;
  const auto rs = a->append(chain);
  ASSERT_EQ(rs.size(), 4u);
  EXPECT_EQ(rs[0].status.code(), StatusCode::kConflict) << rs[0].status.to_string();
  for (int k = 1; k <= 2; ++k) {
    ASSERT_TRUE(rs[k].status) << k << ": " << rs[k].status.to_string();
    EXPECT_TRUE(rs[k].duplicate) << k;
    EXPECT_EQ(rs[k].first_version, static_cast<uint64_t>(k)) << k;
  }
  EXPECT_EQ(rs[3].status.code(), StatusCode::kConflict) << rs[3].status.to_string();
  std::vector<RecordedEvent> events;
  ASSERT_TRUE(a->read_stream("s", 1, &events));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].payload, "o");
}

TEST_F(CosmosEventStoreTest, RetriesThrottlingAndUnavailabilityThenSucceeds) {
  auto client = client_for(standin_);
  auto store = open_events(client);
  standin_.inject(429, 3, 20);
  auto r = store->append({req("s", 0, "c1", {"a"})}).at(0);
  ASSERT_TRUE(r.status) << r.status.to_string();
  EXPECT_GE(client->metrics().totals().throttles, 3u);
  standin_.inject(503, 2, 0, "POST");
  r = store->append({req("s", 1, "c2", {"b"})}).at(0);
  ASSERT_TRUE(r.status) << r.status.to_string();
  EXPECT_EQ(standin_.stat("faults"), 5);
  std::vector<RecordedEvent> events;
  ASSERT_TRUE(store->read_stream("s", 1, &events));
  EXPECT_EQ(events.size(), 2u);
}

// The create is carried out but its answer lost (503): the retry collides with our own
// document (409), which carries this write's id, so it is reported as the original. The
// same command written again by another process is a duplicate.
TEST_F(CosmosEventStoreTest, ALostAnswerIsRetriedAndReportedAsTheOriginal) {
  auto store = open_events(client_for(standin_));
  auto other = open_events(client_for(standin_));
  ASSERT_TRUE(store->stream_version("s"));  // warm: the next POST is the create itself
  ASSERT_TRUE(other->stream_version("s"));  // other also believes s is new
  standin_.inject(503, 1, 0, "POST", 1, /*after=*/true);
  auto r = store->append({req("s", 0, "c1", {"a"})}).at(0);
  ASSERT_TRUE(r.status) << r.status.to_string();
  EXPECT_FALSE(r.duplicate);
  EXPECT_EQ(r.first_version, 1u);
  EXPECT_EQ(standin_.stat("faults"), 1);
  auto again = other->append({req("s", 0, "c1", {"a"})}).at(0);
  ASSERT_TRUE(again.status) << again.status.to_string();
  EXPECT_TRUE(again.duplicate);
  std::vector<RecordedEvent> events;
  ASSERT_TRUE(store->read_stream("s", 1, &events));
  EXPECT_EQ(events.size(), 1u);
}

TEST_F(CosmosEventStoreTest, ThrottledBeyondTheRetryBudgetIsUnavailableAndWritesNothing) {
  CosmosOptions o;
  o.endpoint = standin_.endpoint();
  o.key = standin_.key();
  o.max_retries = 2;
  o.base_backoff = 1ms;
  auto client = CosmosClient::open(o);
  ASSERT_TRUE(client);
  auto store = open_events(*client);
  ASSERT_TRUE(store->stream_version("s"));  // warm: the append skips its version query
  standin_.inject(429, 50, 1, "POST");
  auto r = store->append({req("s", 0, "c1", {"a"})}).at(0);
  EXPECT_EQ(r.status.code(), StatusCode::kUnavailable) << r.status.to_string();
  EXPECT_NE(r.status.message().find("429"), std::string::npos) << r.status.to_string();
  standin_.clear_faults();
  EXPECT_EQ(*store->stream_version("s"), 0u);
}

TEST_F(CosmosEventStoreTest, AWrongKeyIsRefusedWithAClearErrorThatHidesTheKey) {
  const std::string wrong = CosmosStandIn::random_key();
  CosmosStoreOptions o = store_options("events");
  auto s = CosmosEventStore::open(client_for(standin_, wrong), o);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("unauthorized"), std::string::npos) << s.status().to_string();
  EXPECT_EQ(s.status().message().find(wrong), std::string::npos);
  EXPECT_EQ(s.status().message().find(standin_.key()), std::string::npos);
  EXPECT_GT(standin_.stat("unauthorized"), 0);
}

TEST_F(CosmosEventStoreTest, RequestChargesAreCountedPerOperation) {
  auto client = client_for(standin_);
  auto store = open_events(client);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store->append({req("s" + std::to_string(i), 0, "c" + std::to_string(i), {"e"})}).at(0).status);
  EXPECT_GE(client->metrics().op("append").request_units, 5 * 5.0);
  EXPECT_EQ(store->commands_appended(), 5u);
  auto gauges = client->metrics().gauges();
  ASSERT_TRUE(gauges.count("ru_per_command"));
  EXPECT_GT(gauges["ru_per_command"], 5.0);
}

// TLS: a fresh self-signed certificate for 127.0.0.1, trusted through the CA-file option;
// without it, verification (on by default) refuses the connection.
// ---- grouped commit documents ----------------------------------------------------------------

// Command ids whose slots (k0..k7) differ from each other: `n` of them, named prefix-i.
std::vector<std::string> ids_in_distinct_slots(const std::string& prefix, size_t n) {
  std::vector<std::string> out;
  std::set<int> used;
  for (int i = 0; out.size() < n; ++i) {
    const std::string id = prefix + "-" + std::to_string(i);
    if (used.insert(cosmos_command_slot(id)).second) out.push_back(id);
  }
  return out;
}

// Two command ids that take the same slot.
std::pair<std::string, std::string> ids_in_one_slot(const std::string& prefix) {
  std::map<int, std::string> first;
  for (int i = 0;; ++i) {
    const std::string id = prefix + "-" + std::to_string(i);
    auto [it, fresh] = first.emplace(cosmos_command_slot(id), id);
    if (!fresh) return {it->second, id};
  }
}

uint64_t append_requests(CosmosClient& c) { return c.metrics().op("append").requests; }

TEST_F(CosmosEventStoreTest, AStreamsCommandsOfOneGroupShareOneDocument) {
  auto client = client_for(standin_);
  auto store = open_events(client);
  const auto ids = ids_in_distinct_slots("g", 3);
  const uint64_t before = append_requests(*client);
  auto rs = store->append({req("s", 0, ids[0], {"1"}), req("t", 0, "other", {"t1"}), req("s", 1, ids[1], {"2", "3"}),
                           req("s", 3, ids[2], {"4"})});
  for (const auto& r : rs) ASSERT_TRUE(r.status) << r.status.to_string();
  EXPECT_EQ(append_requests(*client) - before, 2u) << "one document per stream";
  EXPECT_EQ(rs[0].first_version, 1u);
  EXPECT_EQ(rs[2].first_version, 2u);
  EXPECT_EQ(rs[2].last_version, 3u);
  EXPECT_EQ(rs[3].first_version, 4u);
  std::vector<RecordedEvent> events;
  ASSERT_TRUE(store->read_stream("s", 1, &events));
  ASSERT_EQ(events.size(), 4u);
  const std::vector<std::string> owners{ids[0], ids[1], ids[1], ids[2]};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(events[i].version, i + 1);
    EXPECT_EQ(events[i].payload, std::to_string(i + 1));
    EXPECT_EQ(events[i].command_id, owners[i]) << "event " << i + 1;
  }
  events.clear();
  ASSERT_TRUE(store->read_stream("s", 3, &events));  // from inside the document
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].command_id, ids[1]);
  // The change feed gives each event its own command.
  ChangeFeed* feed = *store->subscribe("reader");
  std::vector<RecordedEvent> fed;
  for (int i = 0; i < 200 && fed.size() < 5; ++i) {
    std::vector<RecordedEvent> batch;
    if (feed->read(fed.size(), 100, &batch) && !batch.empty()) {
      fed.insert(fed.end(), batch.begin(), batch.end());
    } else {
      std::this_thread::sleep_for(20ms);
    }
  }
  std::vector<std::string> fed_s;
  for (const auto& e : fed)
    if (e.stream == "s") fed_s.push_back(e.command_id);
  EXPECT_EQ(fed_s, owners);
  // A later repeat of the document's second command, on a fresh instance: its slot
  // collides, the first result comes back, nothing is written.
  auto other = open_events(client_for(standin_));
  auto again = other->append({req("s", 0, ids[1], {"2", "3"})}).at(0);
  ASSERT_TRUE(again.status) << again.status.to_string();
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.first_version, 2u);
  EXPECT_EQ(again.last_version, 3u);
  auto found = other->find_command(ids[2]);
  ASSERT_TRUE(found && found->has_value());
  EXPECT_EQ((**found).first_version, 4u);
  EXPECT_EQ(*other->stream_version("s"), 4u);
}

TEST_F(CosmosEventStoreTest, CommandsWhoseIdsShareASlotGoToSeparateDocuments) {
  auto client = client_for(standin_);
  auto store = open_events(client);
  const auto [a, b] = ids_in_one_slot("same");
  const uint64_t before = append_requests(*client);
  auto rs = store->append({req("s", 0, a, {"1"}), req("s", 1, b, {"2"})});
  ASSERT_TRUE(rs[0].status && rs[1].status);
  EXPECT_EQ(client->metrics().gauges().at("commands_per_document"), 1.0);
  // The two documents went in one transactional batch.
  EXPECT_EQ(append_requests(*client) - before, 1u);
  EXPECT_EQ(standin_.stat("batches"), 1);
  // Each is still caught as a repeat.
  auto other = open_events(client_for(standin_));
  EXPECT_TRUE(other->append({req("s", 2, b, {"2"})}).at(0).duplicate);
  EXPECT_TRUE(other->append({req("s", 2, a, {"1"})}).at(0).duplicate);
  EXPECT_EQ(*other->stream_version("s"), 2u);
}

// ---- transactional batches ------------------------------------------------------------------

// `n` command ids of which every second shares the previous one's slot: each pair needs two
// documents, so n commands of one stream in one group make about n/2 documents.
std::vector<std::string> ids_needing_many_documents(const std::string& prefix, size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; out.size() < n; ++i) {
    auto [a, b] = ids_in_one_slot(prefix + std::to_string(i));
    out.push_back(a);
    if (out.size() < n) out.push_back(b);
  }
  return out;
}

std::vector<AppendRequest> chain(const std::string& stream, uint64_t from, const std::vector<std::string>& ids) {
  std::vector<AppendRequest> out;
  for (size_t i = 0; i < ids.size(); ++i) out.push_back(req(stream, from + i, ids[i], {stream + std::to_string(from + i + 1)}));
  return out;
}

// A stream's documents of one group commit go in one transactional batch, not one request
// after another; every command keeps its version, its event and its repeat check.
TEST_F(CosmosEventStoreTest, AStreamsDocumentsOfOneGroupGoInOneTransactionalBatch) {
  auto client = client_for(standin_);
  auto store = open_events(client);
  const auto ids = ids_needing_many_documents("hot", 30);
  std::vector<AppendRequest> group = chain("hot", 0, ids);
  group.push_back(req("cold", 0, "cold-1", {"c"}));
  const uint64_t before = append_requests(*client);
  auto rs = store->append(group);
  for (size_t i = 0; i < rs.size(); ++i) ASSERT_TRUE(rs[i].status) << i << ": " << rs[i].status.to_string();
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(rs[i].first_version, i + 1);
  EXPECT_LE(client->metrics().gauges().at("commands_per_document"), 31.0 / 16);  // at least 15 documents
  EXPECT_EQ(append_requests(*client) - before, 2u) << "one batch for the hot stream, one create for the other";
  EXPECT_EQ(standin_.stat("batches"), 1);
  std::vector<RecordedEvent> events;
  ASSERT_TRUE(store->read_stream("hot", 1, &events));
  ASSERT_EQ(events.size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(events[i].version, i + 1);
    EXPECT_EQ(events[i].command_id, ids[i]);
  }
  auto other = open_events(client_for(standin_));
  for (size_t i : {size_t{0}, size_t{17}, ids.size() - 1}) {
    auto again = other->append({req("hot", ids.size(), ids[i], {"x"})}).at(0);
    EXPECT_TRUE(again.duplicate) << i;
    EXPECT_EQ(again.first_version, i + 1);
  }
}

// The batch is written but its answer lost (and the retry collides with it): the documents
// are written again one by one with the batch's writeIds, so every command is reported as
// committed (not as a duplicate) and every event is there once.
TEST_F(CosmosEventStoreTest, ALostAnswerOfATransactionalBatchIsReportedAsCommitted) {
  auto client = client_for(standin_);
  auto store = open_events(client);
  ASSERT_TRUE(store->stream_version("hot"));
  const auto ids = ids_needing_many_documents("lost", 12);
  standin_.inject(503, 1, 0, "POST", 1, /*after=*/true);
  auto rs = store->append(chain("hot", 0, ids));
  for (size_t i = 0; i < rs.size(); ++i) {
    ASSERT_TRUE(rs[i].status) << i << ": " << rs[i].status.to_string();
    EXPECT_FALSE(rs[i].duplicate) << i;
    EXPECT_EQ(rs[i].first_version, i + 1);
  }
  EXPECT_EQ(standin_.stat("faults"), 1);
  EXPECT_GE(standin_.stat("batches"), 2) << "the retry of the batch collided";
  std::vector<RecordedEvent> events;
  ASSERT_TRUE(store->read_stream("hot", 1, &events));
  ASSERT_EQ(events.size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(events[i].command_id, ids[i]);
}

// Every request of the batch is carried out but answered 503 (and so is every retry): whether
// the batch was written stays unknown, so every command of it is answered unavailable, none as
// a conflict (a conflict is decided again and would meet its own events). A retry of the same
// commands finds each written once, by the batch.
TEST_F(CosmosEventStoreTest, ABatchWhoseOutcomeStaysUnknownLeavesEachOfItsCommandsUnknown) {
  auto store = open_events(client_for(standin_));
  ASSERT_TRUE(store->stream_version("hot"));
  const auto ids = ids_needing_many_documents("unk", 8);
  standin_.inject(503, 1000, 0, "POST", 1, /*after=*/true);
  auto rs = store->append(chain("hot", 0, ids));
  standin_.clear_faults();
  for (size_t i = 0; i < rs.size(); ++i)
    EXPECT_EQ(rs[i].status.code(), StatusCode::kUnavailable) << i << ": " << rs[i].status.to_string();
  auto again = store->append(chain("hot", 0, ids));
  for (size_t i = 0; i < again.size(); ++i) {
    ASSERT_TRUE(again[i].status) << i << ": " << again[i].status.to_string();
    EXPECT_TRUE(again[i].duplicate) << i;
    EXPECT_EQ(again[i].first_version, i + 1) << i;
  }
  std::vector<RecordedEvent> events;
  ASSERT_TRUE(store->read_stream("hot", 1, &events));
  EXPECT_EQ(events.size(), ids.size());
}

// A repeat in a later document fails the whole batch; written one by one, the documents
// before it commit, the repeat answers as the first copy and what follows conflicts.
TEST_F(CosmosEventStoreTest, ABatchWithARepeatCommitsWhatPrecedesItAndConflictsWhatFollows) {
  auto store = open_events(client_for(standin_));
  const auto ids = ids_needing_many_documents("rep", 8);
  ASSERT_TRUE(store->append({req("hot", 0, ids[5], {"first"})}).at(0).status);
  std::vector<std::string> group_ids(ids.begin(), ids.begin() + 5);
  group_ids.push_back(ids[5]);  // the repeat, in the third document
  group_ids.push_back(ids[6]);
  auto rs = store->append(chain("hot", 1, group_ids));
  for (size_t i = 0; i < 5; ++i) {
    ASSERT_TRUE(rs[i].status) << i << ": " << rs[i].status.to_string();
    EXPECT_FALSE(rs[i].duplicate) << i;
    EXPECT_EQ(rs[i].first_version, i + 2);
  }
  ASSERT_TRUE(rs[5].status) << rs[5].status.to_string();
  EXPECT_TRUE(rs[5].duplicate);
  EXPECT_EQ(rs[5].first_version, 1u);
  EXPECT_EQ(rs[6].status.code(), StatusCode::kConflict) << rs[6].status.to_string();
  EXPECT_GE(standin_.stat("batches"), 1);
  std::vector<RecordedEvent> events;
  ASSERT_TRUE(store->read_stream("hot", 1, &events));
  EXPECT_EQ(events.size(), 6u);
}

// A group holding a repeat of an earlier command collides; written one by one, the
// commands before the repeat commit, the repeat answers as the first copy, and the ones
// after it (decided on the repeat's new events) conflict.
TEST_F(CosmosEventStoreTest, ARepeatInsideAGroupCommitsWhatPrecedesItAndConflictsWhatFollows) {
  auto store = open_events(client_for(standin_));
  const auto ids = ids_in_distinct_slots("r", 3);
  ASSERT_TRUE(store->append({req("s", 0, ids[1], {"first"})}).at(0).status);
  auto rs = store->append({req("s", 1, ids[0], {"x"}), req("s", 2, ids[1], {"again"}), req("s", 3, ids[2], {"y"})});
  ASSERT_TRUE(rs[0].status) << rs[0].status.to_string();
  EXPECT_FALSE(rs[0].duplicate);
  EXPECT_EQ(rs[0].first_version, 2u);
  ASSERT_TRUE(rs[1].status) << rs[1].status.to_string();
  EXPECT_TRUE(rs[1].duplicate);
  EXPECT_EQ(rs[1].first_version, 1u);
  EXPECT_EQ(rs[2].status.code(), StatusCode::kConflict) << rs[2].status.to_string();
  std::vector<RecordedEvent> events;
  ASSERT_TRUE(store->read_stream("s", 1, &events));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].payload, "x");
}

// The group document is written but its answer lost: the retry collides with it, and
// every command in it is reported as committed, none as a duplicate.
TEST_F(CosmosEventStoreTest, ALostAnswerOfAGroupDocumentIsReportedAsCommitted) {
  auto store = open_events(client_for(standin_));
  ASSERT_TRUE(store->stream_version("s"));
  const auto ids = ids_in_distinct_slots("l", 3);
  standin_.inject(503, 1, 0, "POST", 1, /*after=*/true);
  auto rs = store->append({req("s", 0, ids[0], {"a"}), req("s", 1, ids[1], {"b"}), req("s", 2, ids[2], {"c"})});
  for (size_t i = 0; i < rs.size(); ++i) {
    ASSERT_TRUE(rs[i].status) << i << ": " << rs[i].status.to_string();
    EXPECT_FALSE(rs[i].duplicate) << i;
    EXPECT_EQ(rs[i].first_version, i + 1);
  }
  EXPECT_EQ(standin_.stat("faults"), 1);
  std::vector<RecordedEvent> events;
  ASSERT_TRUE(store->read_stream("s", 1, &events));
  EXPECT_EQ(events.size(), 3u);
}

// A writer whose state ends inside a document (versions 1..3 in one) never writes at 3:
// the version it expects is checked first, whichever instance it is.
TEST_F(CosmosEventStoreTest, AnExpectedVersionInsideADocumentConflicts) {
  auto a = open_events(client_for(standin_));
  const auto ids = ids_in_distinct_slots("m", 3);
  auto rs = a->append({req("s", 0, ids[0], {"1"}), req("s", 1, ids[1], {"2"}), req("s", 2, ids[2], {"3"})});
  ASSERT_TRUE(rs[2].status);
  auto b = open_events(client_for(standin_));
  for (CosmosEventStore* store : {a.get(), b.get()}) {
    auto r = store->append({req("s", 2, "late", {"x"})}).at(0);
    EXPECT_EQ(r.status.code(), StatusCode::kConflict) << r.status.to_string();
    EXPECT_EQ(r.actual_version, 3u);
  }
  EXPECT_EQ(*a->stream_version("s"), 3u);
  std::vector<RecordedEvent> events;
  ASSERT_TRUE(a->read_stream("s", 1, &events));
  EXPECT_EQ(events.size(), 3u);
}

// A rejection's version check also looks its command id up: one query answers whether the
// stream moved and whether the command was written already, in either layout.
TEST_F(CosmosEventStoreTest, ARejectionsCheckIsOneQueryThatAlsoFindsARepeat) {
  auto client = client_for(standin_);
  ASSERT_TRUE(cosmos_ensure_container(*client, "orderflow", "legacy", "/streamId", {"/commandId"}));
  for (const std::string container : {"events", "legacy"}) {
    SCOPED_TRACE(container);
    auto a = open_events(client, store_options(container));
    const auto ids = ids_in_distinct_slots("v", 3);
    auto rs = a->append({req("s", 0, ids[0], {"1"}), req("s", 1, ids[1], {"2", "3"})});
    ASSERT_TRUE(rs[0].status && rs[1].status);
    auto check = [](uint64_t expected, const std::string& id) {
      AppendRequest r = req("s", expected, id, {});
      r.verify_only = true;
      return r;
    };
    auto one = [&](CosmosEventStore& store, const AppendRequest& r) {
      const uint64_t before = append_requests(*client);
      AppendResult res = store.append({r}).at(0);
      EXPECT_EQ(append_requests(*client) - before, 1u) << "one query for " << r.command_id << " at " << r.expected_version;
      return res;
    };
    // Current: the rejection stands.
    AppendResult ok = one(*a, check(3, "rejected"));
    EXPECT_TRUE(ok.status) << ok.status.to_string();
    EXPECT_FALSE(ok.duplicate);
    // A rejected repeat of the written second command: its first result.
    AppendResult dup = one(*a, check(3, ids[1]));
    ASSERT_TRUE(dup.status) << dup.status.to_string();
    EXPECT_TRUE(dup.duplicate);
    EXPECT_EQ(dup.first_version, 2u);
    EXPECT_EQ(dup.last_version, 3u);
    // Another instance writes: a check at the old version conflicts, with the new version.
    auto b = open_events(client_for(standin_), store_options(container));
    ASSERT_TRUE(b->append({req("s", 3, ids[2], {"4"})}).at(0).status);
    AppendResult stale = one(*a, check(3, "rejected"));
    EXPECT_EQ(stale.status.code(), StatusCode::kConflict) << stale.status.to_string();
    EXPECT_EQ(stale.actual_version, 4u);
    // From inside a document (version 2 of 2..3): stale as well.
    AppendResult inside = one(*a, check(2, "rejected"));
    EXPECT_EQ(inside.status.code(), StatusCode::kConflict);
    EXPECT_EQ(inside.actual_version, 4u);
    // A version the stream never reached (no lane decides there): asked apart, conflicts.
    AppendResult ahead = a->append({check(9, "rejected")}).at(0);
    EXPECT_EQ(ahead.status.code(), StatusCode::kConflict);
    EXPECT_EQ(ahead.actual_version, 4u);
    EXPECT_EQ(*a->stream_version("s"), 4u);
    auto found = a->find_command_in("s", "rejected");
    ASSERT_TRUE(found);
    EXPECT_FALSE(found->has_value()) << "a check writes nothing";
  }
}

// A check after a write of its stream in the same batch asks nothing: the write's create
// collides when the stream moved, and then the check fails with it.
TEST_F(CosmosEventStoreTest, ACheckAfterAWriteOfItsStreamAsksNothingAndFailsWithTheWrite) {
  auto client = client_for(standin_);
  auto a = open_events(client);
  auto pair = [](const std::string& stream, const std::string& id) {
    AppendRequest w = req(stream, 0, id, {"placed"});
    w.chain = 3;
    AppendRequest c = req(stream, 1, "rejected-" + id, {});
    c.verify_only = true;
    c.chain = 3;
    return std::vector<AppendRequest>{w, c};
  };
  // A new stream: one create, no query; the check stands and looks nothing up.
  uint64_t before = append_requests(*client);
  auto fresh = a->append(pair("new", "w1"));
  ASSERT_TRUE(fresh[0].status) << fresh[0].status.to_string();
  EXPECT_TRUE(fresh[1].status) << fresh[1].status.to_string();
  EXPECT_FALSE(fresh[1].duplicate);
  EXPECT_EQ(append_requests(*client) - before, 1u);
  // Another instance created the stream first: the write collides, the check fails with it.
  auto b = open_events(client_for(standin_));
  ASSERT_TRUE(b->append({req("taken", 0, "theirs", {"x"})}).at(0).status);
  auto lost = a->append(pair("taken", "w2"));
  EXPECT_EQ(lost[0].status.code(), StatusCode::kConflict) << lost[0].status.to_string();
  EXPECT_EQ(lost[1].status.code(), StatusCode::kConflict) << lost[1].status.to_string();
  std::vector<RecordedEvent> events;
  ASSERT_TRUE(a->read_stream("taken", 1, &events));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].command_id, "theirs");
}

// A container made before the grouped layout (unique key /commandId) keeps working with
// one command per document.
TEST_F(CosmosEventStoreTest, AContainerWithTheCommandIdUniqueKeyKeepsOneCommandPerDocument) {
  auto client = client_for(standin_);
  ASSERT_TRUE(cosmos_ensure_container(*client, "orderflow", "legacy", "/streamId", {"/commandId"}));
  auto store = open_events(client, store_options("legacy"));
  const auto ids = ids_in_distinct_slots("o", 2);
  const uint64_t before = append_requests(*client);
  auto rs = store->append({req("s", 0, ids[0], {"1"}), req("s", 1, ids[1], {"2"})});
  ASSERT_TRUE(rs[0].status && rs[1].status);
  EXPECT_EQ(client->metrics().gauges().at("commands_per_document"), 1.0);
  EXPECT_EQ(append_requests(*client) - before, 1u) << "two documents in one transactional batch";
  auto other = open_events(client_for(standin_), store_options("legacy"));
  auto again = other->append({req("s", 2, ids[1], {"2"})}).at(0);
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.first_version, 2u);
  std::vector<RecordedEvent> events;
  ASSERT_TRUE(other->read_stream("s", 1, &events));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].command_id, ids[1]);
  // A container with neither layout's keys was not made by orderflow: refused.
  ASSERT_TRUE(cosmos_ensure_container(*client, "orderflow", "foreign", "/streamId", {}));
  auto foreign = CosmosEventStore::open(client, store_options("foreign"));
  ASSERT_FALSE(foreign);
  EXPECT_NE(foreign.status().message().find("unique keys"), std::string::npos) << foreign.status().to_string();
}

TEST_F(CosmosEventStoreTest, ACommandIdStartingWithTheFillerCharacterIsRefused) {
  auto store = open_events(client_for(standin_));
  auto rs = store->append({req("s", 0, std::string("\x01") + "5", {"a"}), req("s", 1, "after", {"b"})});
  EXPECT_EQ(rs[0].status.code(), StatusCode::kInvalidArgument) << rs[0].status.to_string();
  EXPECT_EQ(rs[1].status.code(), StatusCode::kConflict) << rs[1].status.to_string();
  EXPECT_EQ(*store->stream_version("s"), 0u);
}

TEST(CosmosTls, VerifiesCertificatesAndTrustsAGivenCaFile) {
  char tmpl[] = "/tmp/orderflow-cosmos-tls-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
                          "-addext subjectAltName=IP:127.0.0.1 -keyout " + dir + "/key.pem -out " + dir +
                          "/cert.pem >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl failed";
  {
    CosmosStandIn standin(CosmosStandIn::Options{1, dir + "/cert.pem", dir + "/key.pem"});
    CosmosOptions o;
    o.endpoint = standin.endpoint();
    o.key = standin.key();
    o.max_retries = 0;
    auto untrusted = CosmosClient::open(o);
    ASSERT_TRUE(untrusted);
    EXPECT_FALSE(CosmosEventStore::open(*untrusted, store_options("events"))) << "an unknown CA must be refused";
    o.ca_file = dir + "/cert.pem";
    auto trusted = CosmosClient::open(o);
    ASSERT_TRUE(trusted);
    auto store = CosmosEventStore::open(*trusted, store_options("events"));
    ASSERT_TRUE(store) << store.status().to_string();
    EXPECT_TRUE((*store)->append({req("s", 0, "c1", {"a"})}).at(0).status);
  }
  std::filesystem::remove_all(dir);
}

// ---- snapshot store specifics -------------------------------------------------------------

TEST(CosmosSnapshotStoreTest, AnOlderProjectionNeverOverwritesANewerOne) {
  CosmosStandIn standin;
  auto open = [&] {
    auto s = CosmosSnapshotStore::open(client_for(standin), store_options("snapshots"));
    if (!s) throw std::runtime_error(s.status().to_string());
    return std::move(*s);
  };
  auto slow = open();
  auto fast = open();
  ASSERT_TRUE(slow->put({{"order-1", Snapshot{1, "v1"}}}));  // slow caches version 1 and its etag
  ASSERT_TRUE(fast->put({{"order-1", Snapshot{3, "v3"}}}));  // fast overtakes it
  // slow's If-Match fails (412): it re-reads, sees 3 and skips its older version 2.
  ASSERT_TRUE(slow->put({{"order-1", Snapshot{2, "v2"}}}));
  auto got = open()->get("order-1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->version, 3u);
  EXPECT_EQ(got->state, "v3");
  // Racing writers of increasing versions: the highest always ends up stored.
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w)
    writers.emplace_back([&, w] {
      auto s = open();
      for (uint64_t v = 4 + static_cast<uint64_t>(w); v < 40; v += 4) EXPECT_TRUE(s->put({{"order-1", Snapshot{v, std::to_string(v)}}}));
    });
  for (auto& t : writers) t.join();
  got = open()->get("order-1");
  EXPECT_EQ(got->version, 39u);
  EXPECT_EQ(got->state, "39");
}

// ---- change feed with leases -----------------------------------------------------------------

class CosmosFeedTest : public ::testing::Test {
 protected:
  CosmosStoreOptions feed_options(const std::string& instance, bool release = true) {
    CosmosStoreOptions o = store_options("events");
    o.instance = instance;
    o.lease_expiry = 1500ms;
    o.lease_renew = 200ms;
    o.max_item_count = 7;
    o.checkpoint_interval = 0ms;  // every checkpoint reaches the lease: takeover is exact
    o.release_leases_on_close = release;
    return o;
  }
  // Appends `commands` commands over `streams` streams, two events each.
  void write(CosmosEventStore& store, int streams, int commands, const std::string& tag) {
    for (int i = 0; i < commands; ++i) {
      const std::string s = "order-" + std::to_string(i % streams);
      auto v = store.stream_version(s);
      ASSERT_TRUE(v);
      auto r = store.append({req(s, *v, tag + std::to_string(i), {tag + std::to_string(i) + "a", tag + std::to_string(i) + "b"})}).at(0);
      ASSERT_TRUE(r.status) << r.status.to_string();
    }
  }
  // Reads until `want` events arrived or the time is up; checkpoints after each batch when asked.
  static std::vector<RecordedEvent> drain(ChangeFeed& view, const std::string& sub, size_t want, bool checkpoint,
                                          std::chrono::milliseconds budget = 8000ms) {
    std::vector<RecordedEvent> got;
    uint64_t pos = *view.load_checkpoint(sub);
    const auto deadline = std::chrono::steady_clock::now() + budget;
    while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
      std::vector<RecordedEvent> batch;
      Status s = view.read(pos, 5, &batch);
      if (!s || batch.empty()) {
        view.wait(pos, 20ms);
        continue;
      }
      for (auto& e : batch) {
        EXPECT_EQ(e.position, pos + 1);
        pos = e.position;
        got.push_back(e);
      }
      if (checkpoint) { EXPECT_TRUE(view.save_checkpoint(sub, pos)); }
    }
    return got;
  }
  static void expect_stream_order(const std::vector<RecordedEvent>& events) {
    std::map<std::string, uint64_t> last;
    for (const auto& e : events) {
      EXPECT_GT(e.version, last[e.stream]) << e.stream << " out of order";
      last[e.stream] = e.version;
    }
  }
  CosmosStandIn standin_{CosmosStandIn::Options{4, "", ""}};
};

TEST_F(CosmosFeedTest, OneInstanceReadsEveryRangeInStreamOrderAndResumesFromItsCheckpoint) {
  auto writer = open_events(client_for(standin_));
  write(*writer, 12, 60, "c");
  std::set<std::string> first_ids;
  {
    auto store = open_events(client_for(standin_), feed_options("a"));
    auto view = store->subscribe("projection");
    ASSERT_TRUE(view);
    auto got = drain(**view, "projection", 120, true);
    ASSERT_EQ(got.size(), 120u);
    expect_stream_order(got);
    for (const auto& e : got) EXPECT_TRUE(first_ids.insert(e.payload).second) << "twice: " << e.payload;
    EXPECT_EQ(static_cast<CosmosFeedView*>(*view)->owned_ranges().size(), 4u);
    auto gauges = store->client().metrics().gauges();
    EXPECT_TRUE(gauges.count("lag_lsn_projection_range_0"));
  }  // closed: leases released at the checkpoint
  write(*writer, 12, 10, "d");
  auto store = open_events(client_for(standin_), feed_options("b"));
  auto view = store->subscribe("projection");
  ASSERT_TRUE(view);
  auto got = drain(**view, "projection", 20, true, 3000ms);
  ASSERT_EQ(got.size(), 20u);
  for (const auto& e : got) EXPECT_EQ(e.payload[0], 'd') << "redelivered after a full checkpoint: " << e.payload;
  // Another subscriber has its own leases and reads everything from the start.
  auto saga = store->subscribe("saga");
  ASSERT_TRUE(saga);
  EXPECT_EQ(drain(**saga, "saga", 140, false).size(), 140u);
}

// Two subscribers of one store (a projection and a saga in one process) read the same
// pages: the one behind reads what the other fetched from memory, not from the account, and
// gets the same events in the same order.
TEST_F(CosmosFeedTest, SubscribersOfOneStoreShareTheChangeFeedPagesTheyBothRead) {
  auto writer = open_events(client_for(standin_));
  write(*writer, 12, 60, "c");
  auto client = client_for(standin_);
  auto store = open_events(client, feed_options("a"));
  auto first = store->subscribe("projection");
  auto second = store->subscribe("saga");
  ASSERT_TRUE(first && second);
  const uint64_t before = client->metrics().op("change_feed").requests;
  auto got_first = drain(**first, "projection", 120, true);
  const uint64_t first_requests = client->metrics().op("change_feed").requests - before;
  auto got_second = drain(**second, "saga", 120, true);
  const uint64_t second_requests = client->metrics().op("change_feed").requests - before - first_requests;
  ASSERT_EQ(got_first.size(), 120u);
  ASSERT_EQ(got_second.size(), 120u);
  for (size_t i = 0; i < got_first.size(); ++i) {
    EXPECT_EQ(got_second[i].payload, got_first[i].payload) << i;
    EXPECT_EQ(got_second[i].stream, got_first[i].stream) << i;
    EXPECT_EQ(got_second[i].version, got_first[i].version) << i;
  }
  // 120 events of 60 documents, 7 documents a page, over 4 ranges: at least 9 pages.
  EXPECT_GE(first_requests, 9u);
  EXPECT_LE(second_requests, 4u) << "only the polls past the end (one per range) reach the account";
  EXPECT_GE(client->metrics().gauges()["feed_pages_shared"], 9.0);
}

TEST_F(CosmosFeedTest, TwoInstancesShareTheRangesAndTogetherDeliverEverything) {
  auto writer = open_events(client_for(standin_));
  auto sa = open_events(client_for(standin_), feed_options("a"));
  auto sb = open_events(client_for(standin_), feed_options("b"));
  auto* a = static_cast<CosmosFeedView*>(*sa->subscribe("projection"));
  auto* b = static_cast<CosmosFeedView*>(*sb->subscribe("projection"));
  ASSERT_TRUE(a->load_checkpoint("projection"));
  ASSERT_TRUE(b->load_checkpoint("projection"));
  // A few lease cycles: b steals from a until each holds its fair share.
  for (int i = 0; i < 10 && (a->owned_ranges().size() != 2 || b->owned_ranges().size() != 2); ++i) {
    ASSERT_TRUE(a->balance());
    ASSERT_TRUE(b->balance());
  }
  auto ra = a->owned_ranges(), rb = b->owned_ranges();
  EXPECT_EQ(ra.size(), 2u);
  EXPECT_EQ(rb.size(), 2u);
  for (const auto& r : ra) EXPECT_EQ(std::count(rb.begin(), rb.end(), r), 0) << "range " << r << " owned twice";
  write(*writer, 16, 48, "c");
  std::vector<RecordedEvent> got_a, got_b;
  std::thread ta([&] { got_a = drain(*a, "projection", 1000, true, 2500ms); });
  std::thread tb([&] { got_b = drain(*b, "projection", 1000, true, 2500ms); });
  ta.join();
  tb.join();
  EXPECT_FALSE(got_a.empty());
  EXPECT_FALSE(got_b.empty());
  std::multiset<std::string> all;
  for (const auto* g : {&got_a, &got_b}) {
    for (const auto& e : *g) all.insert(e.payload);
  }
  EXPECT_EQ(all.size(), 96u);
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), 96u) << "no event twice while both live";
}

// Killing an instance (its leases stay as a crash leaves them): after they expire, the
// other takes its ranges over from its last checkpoint; nothing is lost.
TEST_F(CosmosFeedTest, WhenOneInstanceDiesTheOtherTakesOverFromItsLastCheckpoint) {
  auto writer = open_events(client_for(standin_));
  write(*writer, 16, 40, "c");
  auto sb = open_events(client_for(standin_), feed_options("b"));
  auto* b = static_cast<CosmosFeedView*>(*sb->subscribe("projection"));
  std::set<std::string> checkpointed_by_a, delivered_by_a;
  {
    auto sa = open_events(client_for(standin_), feed_options("a", /*release=*/false));
    auto* a = static_cast<CosmosFeedView*>(*sa->subscribe("projection"));
    ASSERT_TRUE(a->load_checkpoint("projection"));
    ASSERT_TRUE(b->load_checkpoint("projection"));
    for (int i = 0; i < 10 && (a->owned_ranges().size() != 2 || b->owned_ranges().size() != 2); ++i) {
      ASSERT_TRUE(a->balance());
      ASSERT_TRUE(b->balance());
    }
    ASSERT_EQ(a->owned_ranges().size(), 2u);
    // a handles and checkpoints some events, then reads more without checkpointing and dies.
    auto done = drain(*a, "projection", 14, true, 3000ms);
    ASSERT_GE(done.size(), 14u);
    for (const auto& e : done) checkpointed_by_a.insert(e.payload);
    std::vector<RecordedEvent> more;
    ASSERT_TRUE(a->read(done.back().position, 5, &more));
    for (const auto& e : more) delivered_by_a.insert(e.payload);
  }  // "kill -9": no release, no further renewals
  // b alone: after the expiry it owns all four ranges and delivers the rest.
  std::vector<RecordedEvent> got_b = drain(*b, "projection", 1000, true, 5000ms);
  EXPECT_EQ(b->owned_ranges().size(), 4u);
  std::set<std::string> all(checkpointed_by_a);
  for (const auto& e : got_b) all.insert(e.payload);
  EXPECT_EQ(all.size(), 80u) << "every event handled by a (checkpointed) or by b";
  // What a checkpointed is not redelivered, except events of a page it had only partly
  // checkpointed (the continuation is per page): at most one page per range.
  size_t redelivered = 0;
  for (const auto& e : got_b) redelivered += checkpointed_by_a.count(e.payload);
  EXPECT_LE(redelivered, 2u * 2 * 7) << "more than one page per taken-over range redelivered";
  // What a read but never checkpointed is delivered again by b.
  for (const auto& p : delivered_by_a) {
    if (checkpointed_by_a.count(p)) continue;
    EXPECT_TRUE(std::any_of(got_b.begin(), got_b.end(), [&](const RecordedEvent& e) { return e.payload == p; })) << p;
  }
}

}  // namespace
}  // namespace orderflow::connectors
