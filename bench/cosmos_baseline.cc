// The raw-creates baseline of a Cosmos DB account: what a plain client gets from the same
// account at the same concurrency, the ceiling of a store that writes one document per
// command. Used by `orderflow bench` (Cosmos DB graphs) and by cosmos_bench.
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench.h"
#include "connectors/cosmos_store.h"

namespace orderflow::bench {

Status drop_cosmos_database(connectors::CosmosClient& client, const std::string& database) {
  connectors::CosmosRequest r;
  r.method = "DELETE";
  r.resource_type = "dbs";
  r.resource_link = "dbs/" + database;
  r.path = r.resource_link;
  r.op = "bench";
  auto resp = client.send(r);
  if (!resp) return resp.status();
  if (resp->http_status == 404 || resp->http_status / 100 == 2) return Status::ok();
  return connectors::cosmos_status(resp->http_status, resp->sub_status, "deleting database " + database);
}

Result<BaselineResult> raw_cosmos_creates_baseline(const connectors::CosmosOptions& account,
                                                   const std::string& database, uint64_t docs, int concurrency) {
  auto client = connectors::CosmosClient::open(account);
  if (!client) return client.status();
  if (auto st = connectors::cosmos_ensure_container(**client, database, "events", "/streamId", {"/commandId"}); !st)
    return st;
  const std::string link = "dbs/" + database + "/colls/events";
  const std::string payload(200, 'A');  // base64 of 150 bytes
  std::atomic<uint64_t> next{0}, failed{0};
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < concurrency; ++t)
    pool.emplace_back([&] {
      for (uint64_t i = next++; i < docs; i = next++) {
        const std::string stream = "s" + std::to_string(i % 200);
        connectors::CosmosRequest r;
        r.method = "POST";
        r.resource_type = "docs";
        r.resource_link = link;
        r.path = link + "/docs";
        r.op = "raw";
        r.body = "{\"id\":\"" + stream + ":" + std::to_string(i) + "\",\"streamId\":\"" + stream +
                 "\",\"firstVersion\":" + std::to_string(i) + ",\"lastVersion\":" + std::to_string(i) +
                 ",\"commandId\":\"c" + std::to_string(i) + "\",\"writeId\":\"w\",\"committedAtUs\":1,"
                 "\"events\":[\"" + payload + "\",\"" + payload + "\"]}";
        r.headers = {{"x-ms-documentdb-partitionkey", "[\"" + stream + "\"]"}};
        auto resp = (*client)->send(r);
        if (!resp || resp->http_status != 201) failed.fetch_add(1);
      }
    });
  for (auto& t : pool) t.join();
  BaselineResult b;
  b.name = "raw-cosmos-creates";
  b.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  b.events = docs;
  b.events_per_s = static_cast<double>(docs) / b.seconds;
  b.concurrency = concurrency;
  b.failed = failed.load();
  if (auto st = drop_cosmos_database(**client, database); !st) return st;
  return b;
}

}  // namespace orderflow::bench
