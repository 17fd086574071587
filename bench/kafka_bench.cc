// Kafka ingest throughput: commands consumed from a topic through the whole default graph
// (kafka_source -> route -> lanes -> commit -> feed -> projection + saga), next to a raw
// librdkafka consumer reading the same messages from the same mock cluster, in the same run,
// and the same bare consumer writing each batch durably before it commits the batch's offsets
// (the ingest baseline: durable intake with no decisions, events or subscribers).
//
//   build/bench/kafka_bench [--commands N] [--partitions P] [--runs R] [--store rocksdb|memory]
//                           [--threads T]
//
// The topic is filled once (protobuf JSON place-order commands of about 200 bytes, after
// one restock per SKU); each run then reads it from the start with a fresh consumer group
// into fresh stores. Times start at the first consumed message (the mock's fixed 3 s group
// join is excluded) and end when the group's committed offsets reach the end of the topic,
// i.e. when every command is durably committed. Medians of the runs are reported.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include <google/protobuf/util/json_util.h>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "bench/bench.h"
#include "connectors/append_plan.h"
#include "connectors/kafka.h"
#include "connectors/stores.h"
#include "domain/orders/orders.h"
#include "graph/build.h"
#include "tests/support/kafka.h"

using namespace orderflow;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kTopic = "orders.commands";

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Fills the topic: one restock per SKU, then place-order commands; returns the message count.
size_t fill(testing::MockKafka& kafka, int commands, int skus, size_t* bytes) {
  std::mt19937_64 rng(11);
  size_t n = 0;
  auto send = [&](const v1::Command& c) {
    std::string json;
    google::protobuf::util::MessageToJsonString(c, &json);
    *bytes += json.size();
    kafka.produce(kTopic, orders::stream_of(c), json);
    ++n;
  };
  for (int s = 0; s < skus; ++s) {
    v1::Command c;
    c.set_command_id("stock-" + std::to_string(s));
    c.mutable_add_stock()->set_sku("SKU-" + std::to_string(s));
    c.mutable_add_stock()->set_quantity(100);
    send(c);
  }
  for (int i = skus; i < commands; ++i) {
    v1::Command c;
    c.set_command_id("place-" + std::to_string(i));
    auto* p = c.mutable_place_order();
    p->set_order_id("order-" + std::to_string(i));
    p->set_customer_id("customer-" + std::to_string(i % 5000));
    const int lines = 1 + static_cast<int>(rng() % 2);
    for (int l = 0; l < lines; ++l) {
      auto* line = p->add_lines();
      line->set_sku("SKU-" + std::to_string((rng() % static_cast<uint64_t>(skus))));
      line->set_quantity(1 + static_cast<int>(rng() % 3));
      line->set_unit_price_cents(1999);
    }
    send(c);
  }
  kafka.flush(120000);
  return n;
}

// A consumer assigned every partition from the beginning (no group join to wait for), with
// offsets committed only when asked.
rd_kafka_t* assigned_consumer(testing::MockKafka& kafka, const std::string& group, int partitions) {
  rd_kafka_t* c = testing::new_kafka_handle(RD_KAFKA_CONSUMER, {{"bootstrap.servers", kafka.bootstrap()},
                                                                {"group.id", group},
                                                                {"enable.auto.commit", "false"},
                                                                {"fetch.wait.max.ms", "100"},
                                                                {"log_level", "2"}});
  rd_kafka_poll_set_consumer(c);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p)
    rd_kafka_topic_partition_list_add(list, kTopic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(c, list);
  rd_kafka_topic_partition_list_destroy(list);
  return c;
}

// Baseline: a bare consumer reading every message.
double raw_consumer_msgs_per_s(testing::MockKafka& kafka, size_t expected, int partitions) {
  rd_kafka_t* c = assigned_consumer(kafka, "bench-raw", partitions);
  size_t got = 0;
  Clock::time_point t0;
  const auto deadline = Clock::now() + std::chrono::minutes(5);
  while (got < expected && Clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(c, 100);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (got++ == 0) t0 = Clock::now();
    }
    rd_kafka_message_destroy(m);
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  return got == expected ? static_cast<double>(expected - 1) / s : 0;
}

struct DurableRun {
  double msgs_per_s = 0;
  double mean_batch = 0;  // messages per synced write
};

// Baseline: the bare consumer above, taking what has arrived (up to 1000 messages, as the
// commit node's max_batch) as one batch, writing it to RocksDB as one synced WriteBatch
// (key: partition and offset, value: the message) and then committing the batch's offsets
// (asynchronously, as kafka_source does; the last commit synchronously). Ends when the last
// message is durable and its offset committed.
DurableRun durable_consumer(testing::MockKafka& kafka, size_t expected, int partitions, int run) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("orderflow-kafka-bench-durable-" + std::to_string(run))).string();
  std::filesystem::remove_all(dir);
  rocksdb::Options dbo;
  dbo.create_if_missing = true;
  rocksdb::DB* raw_db = nullptr;
  if (auto st = rocksdb::DB::Open(dbo, dir, &raw_db); !st.ok()) {
    std::fprintf(stderr, "cannot open %s: %s\n", dir.c_str(), st.ToString().c_str());
    std::exit(1);
  }
  std::unique_ptr<rocksdb::DB> db(raw_db);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rd_kafka_t* c = assigned_consumer(kafka, "bench-durable-" + std::to_string(run), partitions);
  constexpr size_t kMaxBatch = 1000;
  std::vector<int64_t> next_offset(static_cast<size_t>(partitions), -1);  // per partition, of this batch
  size_t got = 0, batches = 0;
  Clock::time_point t0;
  const auto deadline = Clock::now() + std::chrono::minutes(5);
  while (got < expected && Clock::now() < deadline) {
    rocksdb::WriteBatch wb;
    size_t n = 0;
    // The first message of a batch may wait; the rest is what has already arrived.
    for (rd_kafka_message_t* m = rd_kafka_consumer_poll(c, 100); m != nullptr;
         m = n < kMaxBatch ? rd_kafka_consumer_poll(c, 0) : nullptr) {
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (got == 0 && n == 0) t0 = Clock::now();
        std::string key;
        connectors::put_u64_be(key, static_cast<uint64_t>(m->partition));
        connectors::put_u64_be(key, static_cast<uint64_t>(m->offset));
        wb.Put(key, rocksdb::Slice(static_cast<const char*>(m->payload), m->len));
        next_offset[static_cast<size_t>(m->partition)] = m->offset + 1;
        ++n;
      }
      rd_kafka_message_destroy(m);
    }
    if (n == 0) continue;
    if (auto st = db->Write(wo, &wb); !st.ok()) {
      std::fprintf(stderr, "durable consumer: %s\n", st.ToString().c_str());
      std::exit(1);
    }
    got += n;
    ++batches;
    rd_kafka_topic_partition_list_t* offsets = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p) {
      if (next_offset[static_cast<size_t>(p)] < 0) continue;
      rd_kafka_topic_partition_list_add(offsets, kTopic, p)->offset = next_offset[static_cast<size_t>(p)];
      next_offset[static_cast<size_t>(p)] = -1;
    }
    rd_kafka_commit(c, offsets, got < expected ? 1 : 0);
    rd_kafka_topic_partition_list_destroy(offsets);
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  db->Close();
  db.reset();
  std::filesystem::remove_all(dir);
  DurableRun out;
  out.msgs_per_s = got == expected ? static_cast<double>(expected - 1) / s : 0;
  out.mean_batch = batches > 0 ? static_cast<double>(got) / static_cast<double>(batches) : 0;
  return out;
}

struct PipelineRun {
  double commands_per_s = 0;
  uint64_t events = 0;
  double source_busy = 0;  // share of one core the kafka_source thread spent on messages
};

PipelineRun pipeline_run(testing::MockKafka& kafka, size_t expected, int run, const std::string& store, int threads) {
  const std::string dir = (std::filesystem::temp_directory_path() / ("orderflow-kafka-bench-" + std::to_string(run))).string();
  std::filesystem::remove_all(dir);
  const std::string st = store == "memory" ? "{kind: memory}" : "{kind: rocksdb, path: events}";
  const std::string ss = store == "memory" ? "{kind: memory}" : "{kind: rocksdb, path: snapshots}";
  const std::string group = "bench-" + std::to_string(run);
  // graphs/orders.yaml with the HTTP source replaced by a Kafka source.
  const std::string yaml =
      "graph: kafka-bench\n"
      "stores: {events: " + st + ", snapshots: " + ss + "}\n"
      "nodes:\n"
      "  - {id: kin, kind: kafka_source, params: {brokers: \"" + kafka.bootstrap() + "\", group: " + group +
      ", max_in_flight: 10000, properties: \"fetch.wait.max.ms=100\"}}\n"
      "  - {id: route, kind: route, params: {lanes: 8, max_in_flight: 20000}}\n"
      "  - {id: lanes, kind: command_lane, params: {events: events, snapshots: snapshots, cache_streams: 100000}}\n"
      "  - {id: commit, kind: commit, params: {events: events, max_batch: 1000}}\n"
      "  - {id: feed, kind: change_feed, params: {events: events, batch: 512}}\n"
      "  - {id: projection, kind: projection, params: {snapshots: snapshots}}\n"
      "  - {id: saga, kind: saga}\n"
      "edges: [kin -> route, route -> lanes, lanes -> commit, commit -> feed, feed -> projection, feed -> saga,"
      " saga -> route]\n";
  graph::KindRegistry registry;
  bench::register_bench_kinds(registry);
  auto loaded = graph::load_graph_string(yaml);
  std::vector<graph::Diagnostic> diags;
  if (!loaded.ok() || !graph::validate(loaded.graph, registry, diags)) {
    std::fprintf(stderr, "bench graph invalid\n");
    std::exit(1);
  }
  PipelineRun out;
  {
    connectors::StoreSet stores(loaded.graph, dir);
    BuildOptions o;
    o.threads = threads;
    auto built = build_pipeline(loaded.graph, registry, stores, o);
    if (!built || !built->pipeline->start()) {
      std::fprintf(stderr, "cannot start the pipeline\n");
      std::exit(1);
    }
    auto& probe = built->pipeline->find("kin")->probe();
    const auto deadline = Clock::now() + std::chrono::minutes(10);
    while (probe.in() == 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const auto t0 = Clock::now();
    // Done when every message is finished (durably committed); offsets follow within 200 ms.
    while (probe.out() < expected && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    out.commands_per_s = probe.out() >= expected ? static_cast<double>(expected) / s : 0;
    out.source_busy = static_cast<double>(probe.busy_ns()) / 1e9 / s;
    out.events = (*stores.change_feed("events"))->head();
    built->pipeline->shutdown();
  }
  std::filesystem::remove_all(dir);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int commands = 200000, partitions = 64, runs = 3, threads = 0;
  std::string store = "rocksdb";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--commands") commands = std::stoi(next());
    else if (a == "--partitions") partitions = std::stoi(next());
    else if (a == "--runs") runs = std::stoi(next());
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--store") store = next();
    else {
      std::fprintf(stderr, "usage: kafka_bench [--commands N] [--partitions P] [--runs R] [--store rocksdb|memory] [--threads T]\n");
      return 2;
    }
  }
  testing::MockKafka kafka(3);
  kafka.create_topic(kTopic, partitions);
  kafka.create_topic("orders.commands.dlq", 1);
  size_t bytes = 0;
  const size_t n = fill(kafka, commands, 1000, &bytes);
  std::printf("topic %s: %zu commands, %d partitions, mean %zu bytes; mock cluster of 3 brokers; store %s\n", kTopic,
              n, partitions, bytes / n, store.c_str());
  std::vector<double> raw, durable, piped;
  uint64_t events = 0;
  for (int r = 0; r < runs; ++r) {  // alternate, so drift hits all alike
    raw.push_back(raw_consumer_msgs_per_s(kafka, n, partitions));
    const auto d = durable_consumer(kafka, n, partitions, r);
    durable.push_back(d.msgs_per_s);
    auto p = pipeline_run(kafka, n, r, store, threads);
    piped.push_back(p.commands_per_s);
    events = p.events;
    std::printf("  run %d: raw consumer %.0f msg/s, durable consumer %.0f msg/s (%.0f per synced batch), pipeline %.0f "
                "commands/s (%lu events, kafka_source busy %.0f%%)\n",
                r + 1, raw.back(), durable.back(), d.mean_batch, piped.back(), static_cast<unsigned long>(p.events),
                100 * p.source_busy);
  }
  const double rm = median(raw), dm = median(durable), pm = median(piped);
  std::printf("\n%-48s %14s %8s %11s\n", ("median of " + std::to_string(runs) + " runs").c_str(), "per second",
              "vs raw", "vs durable");
  std::printf("%-48s %14.0f %8s %11s\n", "raw librdkafka consumer (msgs)", rm, "1.00", "");
  std::printf("%-48s %14.0f %8.2f %11s\n", "consumer + synced RocksDB batch + commit (msgs)", dm, dm / rm, "1.00");
  std::printf("%-48s %14.0f %8.2f %11.2f\n", ("kafka_source -> default graph (" + store + ")").c_str(), pm, pm / rm,
              dm > 0 ? pm / dm : 0);
  std::printf("ratio pipeline / durable consumer: %.2f (target >= 0.5)\n", dm > 0 ? pm / dm : 0);
  std::printf("%-40s %14.0f\n", "  events committed per second", pm * static_cast<double>(events) / static_cast<double>(n));
  return 0;
}
