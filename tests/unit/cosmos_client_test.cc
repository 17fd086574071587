// Unit tests of the Cosmos DB REST client's pure parts: the master-key signature against
// the example of the Cosmos REST "Access control" documentation, the date format, the
// one status mapping and the retry policy.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <sys/syscall.h>
#include <unistd.h>

#include "connectors/cosmos_client.h"
#include "connectors/cosmos_store.h"
#include "connectors/url.h"
#include "connectors/stores.h"
#include "graph/definition.h"
#include "tests/support/kinds.h"

namespace orderflow::connectors {
namespace {

using namespace std::chrono_literals;

// The documented example: GET on database "ToDoList" with the documented key and date.
TEST(CosmosAuth, MatchesTheDocumentedExample) {
  const std::string key = "dsZQi3KtZmCv1ljt3VNWNm7sQUF1y5rJfC6kv5JiwvW0EndXdDku/dkKBp8/ufDToSxLzR4y+O/0H/t4bQtVNw==";
  auto sig = cosmos_signature("GET", "dbs", "dbs/ToDoList", "Thu, 27 Apr 2017 00:51:12 GMT", key);
  ASSERT_TRUE(sig) << sig.status().to_string();
  EXPECT_EQ(*sig, "c09PEVJrgp2uQRkr934kFbTqhByc7TVr3OHyqlu+c+c=");
  auto header = cosmos_auth_header("GET", "dbs", "dbs/ToDoList", "Thu, 27 Apr 2017 00:51:12 GMT", key);
  ASSERT_TRUE(header);
  EXPECT_EQ(*header, "type%3dmaster%26ver%3d1.0%26sig%3dc09PEVJrgp2uQRkr934kFbTqhByc7TVr3OHyqlu%2bc%2bc%3d");
}

TEST(CosmosAuth, VerbTypeAndDateAreCaseInsensitiveTheLinkIsNot) {
  const std::string key = "dsZQi3KtZmCv1ljt3VNWNm7sQUF1y5rJfC6kv5JiwvW0EndXdDku/dkKBp8/ufDToSxLzR4y+O/0H/t4bQtVNw==";
  auto a = cosmos_signature("get", "DBS", "dbs/ToDoList", "THU, 27 APR 2017 00:51:12 GMT", key);
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, "c09PEVJrgp2uQRkr934kFbTqhByc7TVr3OHyqlu+c+c=");
  auto b = cosmos_signature("GET", "dbs", "dbs/todolist", "Thu, 27 Apr 2017 00:51:12 GMT", key);
  ASSERT_TRUE(b);
  EXPECT_NE(*b, *a);
}

TEST(CosmosAuth, AKeyThatIsNotBase64IsRefusedWithoutEchoingIt) {
  auto sig = cosmos_signature("GET", "dbs", "", "Thu, 27 Apr 2017 00:51:12 GMT", "not*base64!");
  ASSERT_FALSE(sig);
  EXPECT_EQ(sig.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(sig.status().message().find("not*base64!"), std::string::npos);
}

TEST(CosmosAuth, Rfc1123Date) {
  // 2017-04-27T00:51:12Z
  const auto t = std::chrono::system_clock::time_point(std::chrono::seconds(1493254272));
  EXPECT_EQ(rfc1123_date(t), "Thu, 27 Apr 2017 00:51:12 GMT");
}

TEST(CosmosAuth, SegmentsArePercentEncoded) {
  EXPECT_EQ(cosmos_encode_segment("order-o-1:3"), "order-o-1:3");
  EXPECT_EQ(cosmos_encode_segment("a b/c?"), "a%20b%2fc%3f");
}

TEST(Url, PercentEncodingRoundTripsEveryByte) {
  EXPECT_EQ(percent_encode("order-o1_a.b~c"), "order-o1_a.b~c");
  EXPECT_EQ(percent_encode("a b/c?\"d"), "a%20b%2Fc%3F%22d");
  EXPECT_EQ(percent_encode("a:b", "-_.~:", HexCase::lower), "a:b");
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  const auto back = percent_decode(percent_encode(all), false);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, all);
  EXPECT_EQ(percent_decode("a+b%2f", true), std::optional<std::string>("a b/"));
  EXPECT_FALSE(percent_decode("a%2", false).has_value());
  EXPECT_FALSE(percent_decode("a%zz", false).has_value());
}

TEST(CosmosSession, TokensAreMergedPerRangeKeepingTheHighestLsn) {
  EXPECT_EQ(merge_session_tokens("", "0:-1#12"), "0:-1#12");
  EXPECT_EQ(merge_session_tokens("0:-1#12", "1:-1#5"), "0:-1#12,1:-1#5");
  EXPECT_EQ(merge_session_tokens("0:-1#12,1:-1#5", "0:-1#9"), "0:-1#12,1:-1#5");
  EXPECT_EQ(merge_session_tokens("0:-1#12,1:-1#5", "1:-1#7,2:-1#1"), "0:-1#12,1:-1#7,2:-1#1");
  EXPECT_EQ(merge_session_tokens("0:3", "0:4"), "0:4");
  EXPECT_EQ(merge_session_tokens("garbage", "0:-1#1"), "0:-1#1");
}

TEST(CosmosStatusMapping, EveryStatusHasOneClearCode) {
  struct Case {
    int http, sub;
    StatusCode code;
  };
  const Case cases[] = {
      {200, 0, StatusCode::kOk},           {201, 0, StatusCode::kOk},
      {204, 0, StatusCode::kOk},           {304, 0, StatusCode::kOk},
      {0, 0, StatusCode::kUnavailable},    {400, 0, StatusCode::kInvalidArgument},
      {401, 0, StatusCode::kInvalidArgument}, {403, 0, StatusCode::kInvalidArgument},
      {403, 3, StatusCode::kUnavailable},  {404, 0, StatusCode::kNotFound},
      {408, 0, StatusCode::kUnavailable},  {409, 0, StatusCode::kConflict},
      {410, 0, StatusCode::kUnavailable},  {412, 0, StatusCode::kConflict},
      {413, 0, StatusCode::kInvalidArgument}, {429, 0, StatusCode::kUnavailable},
      {449, 0, StatusCode::kUnavailable},  {500, 0, StatusCode::kIoError},
      {502, 0, StatusCode::kUnavailable},  {503, 0, StatusCode::kUnavailable},
      {504, 0, StatusCode::kUnavailable},  {507, 0, StatusCode::kIoError},
      {418, 0, StatusCode::kInternal},
  };
  for (const auto& c : cases) {
    Status s = cosmos_status(c.http, c.sub, "create doc");
    EXPECT_EQ(s.code(), c.code) << c.http << "." << c.sub << ": " << s.to_string();
    if (!s.is_ok()) {
      EXPECT_NE(s.message().find("create doc"), std::string::npos) << s.to_string();
    }
  }
  EXPECT_NE(cosmos_status(429, 3200, "x").message().find("3200"), std::string::npos);
}

TEST(CosmosRetryPolicy, RetriesOnlyRetriableStatuses) {
  CosmosOptions o;
  for (int http : {0, 408, 429, 449, 503})
    EXPECT_TRUE(cosmos_retry(http, 1, std::nullopt, 0ms, o).retry) << http;
  for (int http : {200, 201, 304, 400, 401, 404, 409, 412, 413, 500})
    EXPECT_FALSE(cosmos_retry(http, 1, std::nullopt, 0ms, o).retry) << http;
}

TEST(CosmosRetryPolicy, HonoursRetryAfterAndCapsBackoff) {
  CosmosOptions o;
  o.base_backoff = 10ms;
  o.max_backoff = 100ms;
  o.max_retries = 5;
  o.max_retry_wait = 1000ms;
  EXPECT_EQ(cosmos_retry(429, 1, 37ms, 0ms, o).delay, 37ms);
  EXPECT_EQ(cosmos_retry(429, 1, 5000ms, 0ms, o).delay, 100ms);  // capped
  EXPECT_EQ(cosmos_retry(503, 1, std::nullopt, 0ms, o).delay, 10ms);
  EXPECT_EQ(cosmos_retry(503, 2, std::nullopt, 0ms, o).delay, 20ms);
  EXPECT_EQ(cosmos_retry(503, 3, std::nullopt, 0ms, o).delay, 40ms);
  EXPECT_EQ(cosmos_retry(503, 5, std::nullopt, 0ms, o).delay, 100ms);
  EXPECT_FALSE(cosmos_retry(503, 6, std::nullopt, 0ms, o).retry);        // out of attempts
  EXPECT_FALSE(cosmos_retry(503, 2, std::nullopt, 990ms, o).retry);      // out of time
}

TEST(CosmosClientOptions, BadEndpointKeyOrCaFileAreClearErrors) {
  CosmosOptions o;
  o.key = "dsZQi3KtZmCv1ljt3VNWNm7sQUF1y5rJfC6kv5JiwvW0EndXdDku/dkKBp8/ufDToSxLzR4y+O/0H/t4bQtVNw==";
  o.endpoint = "ftp://x";
  EXPECT_EQ(CosmosClient::open(o).status().code(), StatusCode::kInvalidArgument);
  o.endpoint = "https://127.0.0.1:1";
  o.ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(CosmosClient::open(o).status().code(), StatusCode::kInvalidArgument);
  o.ca_file.clear();
  o.key.clear();
  EXPECT_EQ(CosmosClient::open(o).status().code(), StatusCode::kInvalidArgument);
  o.key = "dsZQi3KtZmCv1ljt3VNWNm7sQUF1y5rJfC6kv5JiwvW0EndXdDku/dkKBp8/ufDToSxLzR4y+O/0H/t4bQtVNw==";
  EXPECT_TRUE(CosmosClient::open(o));
  // Plain http:// only to this machine (the stand-in); anything else in clear is refused.
  for (const char* local : {"http://127.0.0.1:8081", "http://localhost:8081/", "http://[::1]:8081", "http://127.0.0.2",
                            "HTTP://LOCALHOST:8081"}) {
    o.endpoint = local;
    EXPECT_TRUE(CosmosClient::open(o)) << local;
  }
  for (const char* remote : {"http://example.com:80", "http://10.0.0.5:8081", "http://localhost.example.com", "http://127.0.0.1.example.com",
                             "http://[2001:db8::1]:8081"}) {
    o.endpoint = remote;
    auto c = CosmosClient::open(o);
    ASSERT_FALSE(c) << remote;
    EXPECT_NE(c.status().message().find("use https://"), std::string::npos) << c.status().message();
  }
  // User info would make the part before '@' look like the host.
  for (const char* tricky : {"http://127.0.0.1:1@example.com/", "http://localhost:x@example.com",
                             "https://user:pw@account.documents.azure.com"}) {
    o.endpoint = tricky;
    EXPECT_FALSE(CosmosClient::open(o)) << tricky;
  }
  o.endpoint = "HTTPS://account.documents.azure.com:443";
  EXPECT_TRUE(CosmosClient::open(o)) << "the scheme is case-insensitive";
}

// A refused connection is retried, then reported as unavailable and counted.
TEST(CosmosClientTransport, UnreachableEndpointIsUnavailableAfterRetries) {
  CosmosOptions o;
  o.key = "dsZQi3KtZmCv1ljt3VNWNm7sQUF1y5rJfC6kv5JiwvW0EndXdDku/dkKBp8/ufDToSxLzR4y+O/0H/t4bQtVNw==";
  o.endpoint = "http://127.0.0.1:1";
  o.max_retries = 2;
  o.base_backoff = 1ms;
  auto c = CosmosClient::open(o);
  ASSERT_TRUE(c);
  CosmosRequest r{"GET", "dbs", "", "dbs", "", {}, "probe", ""};
  auto resp = (*c)->send(r);
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ((*c)->metrics().op("probe").retries, 2u);
  EXPECT_EQ((*c)->metrics().op("probe").failures, 1u);
}

}  // namespace
}  // namespace orderflow::connectors

namespace orderflow::connectors {
namespace {

TEST(CosmosGraph, ShippedOrdersCosmosYamlIsValidAndHoldsNoKey) {
  graph::KindRegistry registry;
  register_standard_kinds(registry);
  const std::string path = std::string(ORDERFLOW_SOURCE_DIR) + "/graphs/orders-cosmos.yaml";
  graph::LoadResult r = graph::load_and_validate(path, registry);
  ASSERT_TRUE(r.ok()) << (r.diagnostics.empty() ? "" : r.diagnostics.front().to_string());
  ASSERT_EQ(r.graph.stores.at("events").kind, "cosmos");
  EXPECT_EQ(r.graph.stores.at("events").params.at("key_env").text, "COSMOS_KEY");
  EXPECT_EQ(r.graph.stores.at("events").params.count("key"), 0u);
}

TEST(CosmosGraph, MissingEndpointAndUnknownParametersAreReported) {
  graph::KindRegistry registry;
  register_standard_kinds(registry);
  auto loaded = graph::load_graph_string(
      "graph: g\nstores:\n  events: {kind: cosmos, database: d, container: c, key: secret}\nnodes:\n"
      "  - {id: route, kind: route}\nedges: []\n");
  ASSERT_TRUE(loaded.ok());
  std::vector<graph::Diagnostic> diags;
  EXPECT_FALSE(graph::validate(loaded.graph, registry, diags));
  std::string all;
  for (const auto& d : diags) all += d.to_string() + "\n";
  EXPECT_NE(all.find("endpoint"), std::string::npos) << all;
  EXPECT_NE(all.find("key"), std::string::npos) << all;
}

// Regression: the registry declared lease_expiry_ms 10000 while the store's own default was
// 6 s, so a graph without the parameter got 10 s. Defaults now live in one struct.
TEST(CosmosGraph, AStoreWithoutOptionalParametersGetsTheStoresOwnDefaults) {
  graph::KindRegistry registry;
  register_standard_kinds(registry);
  auto loaded = graph::load_graph_string(
      "graph: g\nstores:\n  events: {kind: cosmos, endpoint: 'http://127.0.0.1:1', database: d, container: c}\n"
      "nodes:\n  - {id: route, kind: route}\nedges: []\n");
  ASSERT_TRUE(loaded.ok());
  std::vector<graph::Diagnostic> diags;
  graph::validate(loaded.graph, registry, diags);  // fills the defaults (the route's edge is not the point)
  const CosmosStoreParams p = cosmos_store_params().parse(loaded.graph.stores.at("events"));
  const CosmosStoreOptions store_defaults;
  EXPECT_EQ(p.lease_expiry_ms, store_defaults.lease_expiry.count());
  EXPECT_EQ(p.parallelism, store_defaults.parallelism);
  EXPECT_EQ(p.max_item_count, store_defaults.max_item_count);
  EXPECT_EQ(p.checkpoint_interval_ms, store_defaults.checkpoint_interval.count());
  EXPECT_EQ(p.max_idle_poll_ms, store_defaults.max_idle_poll.count());
  EXPECT_EQ(p.leases_container, store_defaults.leases_container);
  EXPECT_TRUE(p.create_if_missing);
  EXPECT_EQ(p.key_env, "COSMOS_KEY");
  EXPECT_EQ(loaded.graph.stores.at("events").params.at("lease_expiry_ms").text, "6000") << "what validate filled in";
}

TEST(CosmosGraph, AMissingKeyVariableIsAClearErrorWhenTheStoreOpens) {
  graph::KindRegistry registry;
  register_standard_kinds(registry);
  auto loaded = graph::load_graph_string(
      "graph: g\nstores:\n  events: {kind: cosmos, endpoint: 'http://127.0.0.1:1', database: d, container: c, "
      "key_env: ORDERFLOW_TEST_NO_SUCH_KEY}\nnodes:\n  - {id: route, kind: route}\nedges: []\n");
  ASSERT_TRUE(loaded.ok());
  ::unsetenv("ORDERFLOW_TEST_NO_SUCH_KEY");
  StoreSet stores(loaded.graph, "");
  auto ev = stores.event_store("events");
  ASSERT_FALSE(ev);
  EXPECT_EQ(ev.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(ev.status().message().find("ORDERFLOW_TEST_NO_SUCH_KEY"), std::string::npos) << ev.status().to_string();
}

size_t thread_count() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// The group commit's fan-out of Cosmos requests (parallel_for): every index once, `workers`
// of them at once, from concurrent callers too, and no thread made per call (it made
// workers - 1 threads per group commit before).
TEST(CosmosParallelFor, RunsEachIndexOnceConcurrentlyOnThreadsItKeeps) {
  std::vector<std::atomic<int>> hits(1000);
  parallel_for(hits.size(), 8, [&](size_t i) { hits[i]++; });
  for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i].load(), 1) << i;

  // Four at once: each call waits until all four have arrived (bounded, so a failure ends).
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0, together = 0;
  parallel_for(4, 4, [&](size_t) {
    std::unique_lock lock(mu);
    ++arrived;
    cv.notify_all();
    if (cv.wait_for(lock, 10s, [&] { return arrived >= 4; })) ++together;
  });
  EXPECT_EQ(together, 4) << "the four calls did not run at the same time";

  // Kernel thread ids are not reused soon: a thread made per call would show a new one.
  std::mutex seen_mu;
  std::set<pid_t> seen;
  const size_t threads = thread_count();
  for (int k = 0; k < 50; ++k)
    parallel_for(16, 8, [&](size_t) {
      std::this_thread::sleep_for(100us);
      std::lock_guard lock(seen_mu);
      seen.insert(static_cast<pid_t>(::syscall(SYS_gettid)));
    });
  EXPECT_LE(seen.size(), 8u) << "threads were made per call";
  EXPECT_EQ(thread_count(), threads);

  // Two callers at once, each with calls that block until the other's have started: the
  // shared threads serve both, and each caller works on its own job.
  std::atomic<int> started{0};
  auto caller = [&] {
    parallel_for(3, 3, [&](size_t) {
      started++;
      for (int i = 0; i < 2000 && started.load() < 2; ++i) std::this_thread::sleep_for(1ms);
    });
  };
  std::thread a(caller), b(caller);
  a.join();
  b.join();
  EXPECT_EQ(started.load(), 6);
}

}  // namespace
}  // namespace orderflow::connectors
