// `orderflow dlq` through the real binary: `orderflow serve` with a kafka_source on a
// librdkafka mock cluster owned by this test (TCP on 127.0.0.1), commands that the source
// dead-letters, then `orderflow dlq list / inspect / replay` as an operator runs them.
//
//   ListAndInspectShowWhatTheSourceDeadLettered
//                         a malformed and an unknown command: listed with their reasons and
//                         original coordinates; inspect shows every header and the value
//                         with its control bytes escaped
//   ReplayedDeadLetterIsExecutedOnceAndTruncatedOneRefused
//                         a fixed-up dead letter replayed (after a --dry-run that produces
//                         nothing) is executed by the running server; a second replay is
//                         harmless; a truncated one is refused with exit 1
//   HelpAndBadUsage       --help on each command; exit 2 naming what is wrong, exit 1 with
//                         one line when the brokers do not answer
#include "tests/support/e2e_http.h"
#include "tests/support/kafka.h"
#include "tests/support/server_process.h"
#include "tests/support/shell.h"
#include <gtest/gtest.h>

#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>
#include <string>

namespace {

namespace fs = std::filesystem;
using orderflow::testing::MockKafka;
using orderflow::testing::Ran;
using orderflow::testing::ServerProcess;
using namespace orderflow::testing::e2e;

const std::string kDlq = "orders.commands.dlq";
const std::string kCommands = "orders.commands";

Ran orderflow_cli(const std::string& args) {
  return orderflow::testing::run_shell(std::string(ORDERFLOW_BINARY) + " " + args);
}

int64_t total(const std::map<int32_t, int64_t>& ends) {
  return std::accumulate(ends.begin(), ends.end(), int64_t{0}, [](int64_t n, const auto& e) { return n + e.second; });
}

class DlqE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }

  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "orderflow-dlq-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << "mkdtemp: " << strerror(errno);
    dir_ = tmpl;
    log_ = dir_ / "server.log";
    port_ = free_port();
    ASSERT_GT(port_, 0) << "no free loopback port";
    kafka_ = std::make_unique<MockKafka>(1);
    kafka_->create_topic(kCommands, 2);
    kafka_->create_topic(kDlq, 1);
    graph_ = dir_ / "graph.yaml";
    std::ofstream(graph_) << "graph: dlq-e2e\n"
                             "stores:\n"
                             "  events: {kind: memory}\n"
                             "  snapshots: {kind: memory}\n"
                             "nodes:\n"
                             "  - {id: kin, kind: kafka_source, params: {brokers: \""
                          << kafka_->bootstrap()
                          << "\", group: dlq-e2e, commit_interval_ms: 50,"
                             " properties: \"fetch.wait.max.ms=50\"}}\n"
                             "  - {id: http, kind: http_source}\n"
                             "  - {id: route, kind: route, params: {lanes: 2}}\n"
                             "  - {id: lanes, kind: command_lane, params: {events: events, snapshots: snapshots}}\n"
                             "  - {id: commit, kind: commit, params: {events: events}}\n"
                             "  - {id: feed, kind: change_feed, params: {events: events, poll_ms: 5}}\n"
                             "  - {id: projection, kind: projection, params: {snapshots: snapshots}}\n"
                             "edges: [kin -> route, http -> route, route -> lanes, lanes -> commit, commit -> feed,"
                             " feed -> projection]\n";
    server_ = std::make_unique<ServerProcess>(dir_ / "data", log_, graph_.string());
    const std::string why = server_->start_ready(port_, 15s);
    ASSERT_TRUE(why.empty()) << why;
  }

  void TearDown() override {
    if (server_) server_->kill_now();
    if (HasFailure()) orderflow::testing::print_log_tail(log_, 80);
    server_.reset();
    kafka_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // `orderflow dlq ARGS` on this test's graph and cluster.
  Ran dlq(const std::string& sub, const std::string& args = "") {
    return orderflow_cli("dlq " + sub + " " + graph_.string() + " --brokers " + kafka_->bootstrap() + " " + args);
  }

  // Waits until the source has dead-lettered `n` messages in all.
  void wait_dead_letters(int64_t n) {
    ASSERT_TRUE(eventually([&] { return total(kafka_->end_offsets(kDlq)) >= n; }, 10s))
        << "dead letters: " << total(kafka_->end_offsets(kDlq)) << " of " << n;
  }

  // The cluster's topics, by a request that creates none (one naming a topic would).
  std::set<std::string> topics() {
    std::set<std::string> out;
    rd_kafka_t* rk = orderflow::testing::new_kafka_handle(
        RD_KAFKA_PRODUCER, {{"bootstrap.servers", kafka_->bootstrap()}, {"log_level", "2"}});
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(rk, 1, nullptr, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      for (int i = 0; i < md->topic_cnt; ++i) out.insert(md->topics[i].topic);
      rd_kafka_metadata_destroy(md);
    }
    rd_kafka_destroy(rk);
    return out;
  }

  int64_t on_hand(Http& h, const std::string& sku) { return num(h.get("/api/v1/inventory/" + sku).json, "onHand"); }

  fs::path dir_, log_, graph_;
  int port_ = 0;
  std::unique_ptr<MockKafka> kafka_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(DlqE2eTest, ListAndInspectShowWhatTheSourceDeadLettered) {
  // Cut JSON with a terminal escape, a carriage return, a right-to-left override and a byte
  // that is not UTF-8 in it, and a command the domain does not know; a good one between them.
  const std::string malformed = "{\"commandId\":\"bad-1\",\"addStock\":{\"sku\":\"\x1b[2J\r\u202e\xff";
  kafka_->produce(kCommands, "sku-BAD", malformed, {{"content-type", "application/json"}});
  kafka_->produce(kCommands, "sku-OK", add_stock("ok-1", "OK", 3).body);
  kafka_->produce(kCommands, "order-u1", "{\"commandId\":\"u-1\",\"launchRocket\":{\"orderId\":\"u1\"}}");
  ASSERT_TRUE(kafka_->flush());
  ASSERT_NO_FATAL_FAILURE(wait_dead_letters(2));
  Http h(port_);
  ASSERT_TRUE(eventually([&] { return on_hand(h, "OK") == 3; }, 10s)) << "the good command was not executed";

  // Where the originals were: the dead letters must point back at them.
  std::map<std::string, std::pair<int32_t, int64_t>> original;
  for (const auto& r : kafka_->read_all(kCommands)) original[r.key] = {r.partition, r.offset};
  ASSERT_EQ(original.size(), 3u);

  const Ran table = dlq("list");
  ASSERT_EQ(table.exit_code, 0) << table.output;
  EXPECT_NE(table.output.find("2 dead letters in orders.commands.dlq"), std::string::npos) << table.output;
  for (const std::string key : {"sku-BAD", "order-u1"}) {
    const std::string coords =
        "orders.commands/" + std::to_string(original[key].first) + "/" + std::to_string(original[key].second);
    EXPECT_NE(table.output.find(coords), std::string::npos) << coords << " not in\n" << table.output;
    EXPECT_NE(table.output.find(key), std::string::npos) << table.output;
  }
  EXPECT_NE(table.output.find("launchRocket"), std::string::npos) << "no reason for the unknown command\n"
                                                                  << table.output;

  const Ran listed = dlq("list", "--json");
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  const value json = value::parse(listed.output);
  ASSERT_TRUE(json.is_array()) << listed.output;
  ASSERT_EQ(json.as_array().size(), 2u) << listed.output;
  int64_t bad_offset = -1, unknown_offset = -1;
  for (const auto& d : json.as_array()) {
    const std::string key = str(d, "key");
    ASSERT_TRUE(original.count(key)) << key;
    EXPECT_EQ(str(d, "topic"), kDlq);
    EXPECT_EQ(num(d, "partition"), 0);
    EXPECT_FALSE(str(d, "reason").empty()) << d.serialize();
    EXPECT_EQ(str(d.at("source"), "topic"), kCommands);
    EXPECT_EQ(num(d.at("source"), "partition"), original[key].first);
    EXPECT_EQ(num(d.at("source"), "offset"), original[key].second);
    EXPECT_FALSE(flag(d, "truncated"));
    if (key == "sku-BAD") {
      bad_offset = num(d, "offset");
      EXPECT_EQ(num(d, "size"), static_cast<int64_t>(malformed.size()));
    } else {
      unknown_offset = num(d, "offset");
    }
  }
  ASSERT_GE(bad_offset, 0);
  ASSERT_GE(unknown_offset, 0);

  const Ran one = dlq("inspect", "--partition 0 --offset " + std::to_string(bad_offset));
  ASSERT_EQ(one.exit_code, 0) << one.output;
  for (const char* want :
       {"x-orderflow-error: ", "x-orderflow-original-size: ", "x-orderflow-source-topic: orders.commands",
        "x-orderflow-source-partition: ", "x-orderflow-source-offset: ", "content-type: application/json", "sku-BAD",
        "not UTF-8", "\\x1b[2J\\r\\u202e\\xff", "1b 5b 32 4a 0d e2 80 ae", "00000030  ff", "replay         possible"})
    EXPECT_NE(one.output.find(want), std::string::npos) << want << " not in\n" << one.output;
  EXPECT_EQ(one.output.find('\x1b'), std::string::npos) << "a raw escape byte reached the terminal";
  EXPECT_EQ(one.output.find('\r'), std::string::npos) << "a raw carriage return reached the terminal";
  EXPECT_EQ(one.output.find("\u202e"), std::string::npos) << "a raw bidirectional override reached the terminal";

  const Ran unknown = dlq("inspect", "--partition 0 --offset " + std::to_string(unknown_offset));
  ASSERT_EQ(unknown.exit_code, 0) << unknown.output;
  EXPECT_NE(unknown.output.find("bytes, JSON)\n  {\"commandId\":\"u-1\",\"launchRocket\""), std::string::npos)
      << unknown.output;

  const Ran hex = dlq("inspect", "--partition 0 --offset " + std::to_string(bad_offset) + " --hex");
  ASSERT_EQ(hex.exit_code, 0) << hex.output;
  EXPECT_NE(hex.output.find("1b 5b 32 4a 0d e2 80 ae"), std::string::npos) << hex.output;

  const Ran missing = dlq("inspect", "--partition 0 --offset 99");
  EXPECT_EQ(missing.exit_code, 1) << missing.output;
  EXPECT_NE(missing.output.find("no dead letter at orders.commands.dlq/0/99 (it holds offsets 0 to 1)"),
            std::string::npos)
      << missing.output;

  // A dead-letter topic that is not there is said so, and not created by asking.
  std::stringstream yaml;
  yaml << std::ifstream(graph_).rdbuf();
  std::string other = yaml.str();
  other.replace(other.find("group: dlq-e2e,"), 15, "group: dlq-e2e, dead_letter_topic: nope.dlq,");
  std::ofstream(dir_ / "other.yaml") << other;
  const Ran nope = orderflow_cli("dlq list " + (dir_ / "other.yaml").string() + " --brokers " + kafka_->bootstrap());
  EXPECT_EQ(nope.exit_code, 1) << nope.output;
  EXPECT_NE(nope.output.find("no topic nope.dlq on "), std::string::npos) << nope.output;
  EXPECT_EQ(topics().count("nope.dlq"), 0u) << "listing created the topic";

  // Reading changed nothing: the same two, and no offsets committed for the reader.
  EXPECT_EQ(total(kafka_->end_offsets(kDlq)), 2);
  for (const auto& [p, offset] : kafka_->committed("orderflow-dlq-reader", kDlq))
    EXPECT_LT(offset, 0) << "partition " << p << ": the reader committed " << offset;
  const Ran again = dlq("list", "--json");
  EXPECT_EQ(value::parse(again.output).as_array().size(), 2u) << again.output;
}

TEST_F(DlqE2eTest, ReplayedDeadLetterIsExecutedOnceAndTruncatedOneRefused) {
  // The operator's fix-up: a dead letter as the source writes it, whose value is a good
  // command (a refusal that no longer applies), and a truncated one.
  const std::string fixed = add_stock("fixed-1", "FIX", 7).body;
  auto source_headers = [](const std::string& value, int64_t offset) {
    return std::vector<std::pair<std::string, std::string>>{{"content-type", "application/json"},
                                                            {"x-orderflow-error", "refused: the pipeline was stopping"},
                                                            {"x-orderflow-original-size", std::to_string(value.size())},
                                                            {"x-orderflow-source-topic", kCommands},
                                                            {"x-orderflow-source-partition", "1"},
                                                            {"x-orderflow-source-offset", std::to_string(offset)}};
  };
  kafka_->produce(kDlq, "sku-FIX", fixed, source_headers(fixed, 41));
  auto cut = source_headers(add_stock("cut-1", "CUT", 5).body, 42);
  cut.push_back({"x-orderflow-truncated", cut[2].second});
  kafka_->produce(kDlq, "sku-CUT", fixed.substr(0, 20), cut);
  ASSERT_TRUE(kafka_->flush());
  const int64_t before = total(kafka_->end_offsets(kCommands));

  const Ran dry = dlq("replay", "--partition 0 --offset 0 --dry-run");
  ASSERT_EQ(dry.exit_code, 0) << dry.output;
  EXPECT_NE(dry.output.find("would replay orders.commands.dlq/0/0 -> orders.commands (key sku-FIX"), std::string::npos)
      << dry.output;
  EXPECT_EQ(total(kafka_->end_offsets(kCommands)), before) << "--dry-run produced something";

  const Ran refused = dlq("replay", "--partition 0 --offset 1");
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find("not replaying orders.commands.dlq/0/1: it is truncated"), std::string::npos)
      << refused.output;
  EXPECT_EQ(total(kafka_->end_offsets(kCommands)), before) << "a truncated dead letter was replayed";

  const Ran all_dry = dlq("replay", "--all --dry-run");
  EXPECT_EQ(all_dry.exit_code, 1) << "one of them is refused\n" << all_dry.output;
  EXPECT_NE(all_dry.output.find("would replay 1 of 2 dead letters (1 refused)"), std::string::npos) << all_dry.output;

  const Ran typo = dlq("replay", "--partition 0 --offset 0 --to orders.comands");
  EXPECT_EQ(typo.exit_code, 1) << typo.output;
  EXPECT_NE(typo.output.find("not replaying orders.commands.dlq/0/0: no topic orders.comands on "), std::string::npos)
      << typo.output;
  EXPECT_EQ(topics().count("orders.comands"), 0u) << "a mistyped --to created a topic";

  Http h(port_);
  const Ran replayed = dlq("replay", "--partition 0 --offset 0");
  ASSERT_EQ(replayed.exit_code, 0) << replayed.output;
  EXPECT_NE(replayed.output.find("replayed orders.commands.dlq/0/0 -> orders.commands/"), std::string::npos)
      << replayed.output;
  EXPECT_EQ(total(kafka_->end_offsets(kCommands)), before + 1);
  ASSERT_TRUE(eventually([&] { return on_hand(h, "FIX") == 7; }, 10s))
      << "the replayed command was not executed: " << h.get("/api/v1/inventory/FIX").describe();
  bool marked = false;
  for (auto& r : kafka_->read_all(kCommands)) {
    if (r.key != "sku-FIX") continue;
    EXPECT_EQ(r.value, fixed);
    EXPECT_EQ(r.headers["x-orderflow-replayed-from"], "orders.commands.dlq/0/0");
    EXPECT_EQ(r.headers["content-type"], "application/json");
    EXPECT_EQ(r.headers.count("x-orderflow-error"), 0u) << "the dead letter's own headers went along";
    marked = true;
  }
  EXPECT_TRUE(marked) << "no replayed record in " << kCommands;

  // Once more: its commandId makes the repeat harmless.
  const Ran twice = dlq("replay", "--partition 0 --offset 0");
  ASSERT_EQ(twice.exit_code, 0) << twice.output;
  ASSERT_TRUE(eventually([&] { return kafka_->caught_up("dlq-e2e", kCommands); }, 10s))
      << "the source did not consume it";
  EXPECT_EQ(on_hand(h, "FIX"), 7) << "the repeated replay was applied twice";
  EXPECT_EQ(total(kafka_->end_offsets(kDlq)), 2) << "the replayed command was dead-lettered";
}

// The same dead letters through a running server's admin API (GET /api/v1/admin/dead-letters,
// POST .../replay) and `orderflow dlq ... --server URL`, which calls it.
TEST_F(DlqE2eTest, AdminApiListsWithKindAndReplaysAFixedOne) {
  kafka_->produce(kCommands, "sku-BAD", "{\"commandId\":\"bad-1\",\"addStock\":", {{"content-type", "application/json"}});
  ASSERT_TRUE(kafka_->flush());
  ASSERT_NO_FATAL_FAILURE(wait_dead_letters(1));  // offset 0: the source's own
  const std::string fixed = add_stock("api-fixed-1", "APIFIX", 4).body;
  auto headers = [](const std::string& value, const std::string& reason, int64_t offset) {
    return std::vector<std::pair<std::string, std::string>>{{"content-type", "application/json"},
                                                            {"x-orderflow-error", reason},
                                                            {"x-orderflow-original-size", std::to_string(value.size())},
                                                            {"x-orderflow-source-topic", kCommands},
                                                            {"x-orderflow-source-partition", "0"},
                                                            {"x-orderflow-source-offset", std::to_string(offset)}};
  };
  // Offset 1: parked by the source (a write that kept failing); offset 2: truncated.
  kafka_->produce(kDlq, "sku-APIFIX", fixed,
                  headers(fixed, "parked after 10 failed attempts while other commands succeeded: io error: disk full",
                          51));
  auto cut = headers(fixed, "refused: too large", 52);
  cut.push_back({"x-orderflow-truncated", cut[2].second});
  kafka_->produce(kDlq, "sku-CUT", fixed.substr(0, 20), cut);
  ASSERT_TRUE(kafka_->flush());
  ASSERT_NO_FATAL_FAILURE(wait_dead_letters(3));

  Http h(port_);
  Reply r = h.get("/api/v1/admin/dead-letters");
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_FALSE(str(r.json, "instance").empty());
  const auto* sources = arr(r.json, "sources");
  ASSERT_TRUE(sources != nullptr && sources->size() == 1) << r.describe();
  const value& src = sources->at(0);
  EXPECT_EQ(str(src, "node"), "kin");
  EXPECT_EQ(str(src, "topic"), kDlq);
  EXPECT_FALSE(flag(src, "more"));
  const auto* letters = arr(src, "dead_letters");
  ASSERT_TRUE(letters != nullptr && letters->size() == 3) << r.describe();
  std::map<std::string, value> by_key;
  for (const auto& d : *letters) {
    for (const char* f : {"topic", "partition", "offset", "timestamp_ms", "key", "reason", "source", "size",
                          "original_size", "truncated", "headers_dropped", "kind", "replayable"})
      EXPECT_NE(field(d, f), nullptr) << f << " missing in " << d.serialize();
    by_key[str(d, "key")] = d;
  }
  EXPECT_EQ(str(by_key["sku-BAD"], "kind"), "dead_letter");
  EXPECT_FALSE(str(by_key["sku-BAD"], "reason").empty());
  EXPECT_EQ(num(by_key["sku-BAD"], "offset"), 0);
  EXPECT_EQ(str(by_key["sku-APIFIX"], "kind"), "parked");
  EXPECT_EQ(str(by_key["sku-APIFIX"], "reason").rfind("parked after 10 failed attempts", 0), 0u);
  EXPECT_TRUE(flag(by_key["sku-APIFIX"], "replayable"));
  EXPECT_EQ(num(by_key["sku-APIFIX"], "offset"), 1);
  EXPECT_FALSE(flag(by_key["sku-CUT"], "replayable"));
  EXPECT_NE(str(by_key["sku-CUT"], "not_replayable_because").find("truncated"), std::string::npos);

  r = h.get("/api/v1/admin/dead-letters?node=kin&limit=1");
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_TRUE(flag(arr(r.json, "sources")->at(0), "more")) << r.describe();
  EXPECT_EQ(arr(arr(r.json, "sources")->at(0), "dead_letters")->size(), 1u) << r.describe();
  EXPECT_EQ(h.get("/api/v1/admin/dead-letters?node=nope").status, 404);

  const int64_t before = total(kafka_->end_offsets(kCommands));
  r = h.post("/api/v1/admin/dead-letters/replay", R"({"node":"kin","partition":0,"offset":2})");
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(arr(r.json, "replayed")->size(), 0u) << r.describe();
  ASSERT_EQ(arr(r.json, "refused")->size(), 1u) << r.describe();
  EXPECT_NE(str(arr(r.json, "refused")->at(0), "reason").find("truncated"), std::string::npos) << r.describe();
  EXPECT_EQ(total(kafka_->end_offsets(kCommands)), before);

  r = h.post("/api/v1/admin/dead-letters/replay", R"({"partition":0,"offset":1})");  // one source: node optional
  ASSERT_EQ(r.status, 200) << r.describe();
  ASSERT_EQ(arr(r.json, "replayed")->size(), 1u) << r.describe();
  EXPECT_EQ(num(arr(r.json, "replayed")->at(0), "offset"), 1);
  EXPECT_EQ(str(arr(r.json, "replayed")->at(0), "to").rfind(kCommands + "/", 0), 0u) << r.describe();
  EXPECT_EQ(arr(r.json, "refused")->size(), 0u) << r.describe();
  ASSERT_TRUE(eventually([&] { return on_hand(h, "APIFIX") == 4; }, 10s))
      << "the replayed command was not executed: " << h.get("/api/v1/inventory/APIFIX").describe();

  r = h.post("/api/v1/admin/dead-letters/replay", R"({"partition":0,"offset":99})");
  EXPECT_EQ(r.status, 404) << r.describe();
  EXPECT_NE(error_message(r).find("no dead letter at orders.commands.dlq/0/99"), std::string::npos) << r.describe();
  r = h.post("/api/v1/admin/dead-letters/replay", R"({"node":"nope","all":true})");
  EXPECT_EQ(r.status, 404) << r.describe();
  r = h.post("/api/v1/admin/dead-letters/replay", R"({"partition":0,"offset":1,"all":true})");
  EXPECT_EQ(r.status, 400) << r.describe();
  r = h.post("/api/v1/admin/dead-letters/replay", "{not json");
  EXPECT_EQ(r.status, 400) << r.describe();

  // The command line through the server: the same output as with --brokers.
  const std::string server = " --server http://127.0.0.1:" + std::to_string(port_);
  Ran cli = orderflow_cli("dlq list" + server);
  ASSERT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_NE(cli.output.find("3 dead letters in orders.commands.dlq (kafka_source 'kin', brokers "), std::string::npos)
      << cli.output;
  EXPECT_NE(cli.output.find("parked after 10 failed attempts"), std::string::npos) << cli.output;
  EXPECT_NE(cli.output.find("orders.commands/0/51"), std::string::npos) << cli.output;
  const Ran direct = dlq("list");
  EXPECT_EQ(direct.output, cli.output) << "the table differs from the one read from Kafka directly";
  cli = orderflow_cli("dlq list --json" + server);
  ASSERT_EQ(cli.exit_code, 0) << cli.output;
  const value json = value::parse(cli.output);
  ASSERT_TRUE(json.is_array() && json.as_array().size() == 3) << cli.output;
  EXPECT_EQ(str(json.as_array().at(1), "kind"), "parked") << cli.output;
  EXPECT_EQ(dlq("list", "--json").output, cli.output);
  cli = orderflow_cli("dlq inspect --partition 0 --offset 0" + server);
  ASSERT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_EQ(dlq("inspect", "--partition 0 --offset 0").output, cli.output);
  cli = orderflow_cli("dlq replay --partition 0 --offset 1 --dry-run" + server);
  ASSERT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_NE(cli.output.find("would replay orders.commands.dlq/0/1 -> orders.commands (key sku-APIFIX"),
            std::string::npos)
      << cli.output;
  cli = orderflow_cli("dlq replay --partition 0 --offset 2" + server);
  EXPECT_EQ(cli.exit_code, 1) << cli.output;
  EXPECT_NE(cli.output.find("not replaying orders.commands.dlq/0/2: it is truncated"), std::string::npos)
      << cli.output;
  cli = orderflow_cli("dlq replay --partition 0 --offset 1" + server);
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_NE(cli.output.find("replayed orders.commands.dlq/0/1 -> orders.commands/"), std::string::npos) << cli.output;
  cli = orderflow_cli("dlq inspect --partition 0 --offset 99" + server);
  EXPECT_EQ(cli.exit_code, 1) << cli.output;
  cli = orderflow_cli("dlq list " + graph_.string() + server);
  EXPECT_EQ(cli.exit_code, 2) << cli.output;

  // Kafka gone: 502 with the reason, within the timeout asked for; the CLI exits 1.
  kafka_.reset();
  r = h.get("/api/v1/admin/dead-letters?timeout_s=1");
  EXPECT_EQ(r.status, 502) << r.describe();
  EXPECT_TRUE(is_error_body(r)) << r.describe();
  // Meanwhile GET subscribers is not queued behind such a slow request.
  Reply slow;
  std::thread waiting([&] {
    Http other(port_);
    slow = other.get("/api/v1/admin/dead-letters?timeout_s=3");
  });
  std::this_thread::sleep_for(300ms);
  const auto asked = Clock::now();
  EXPECT_EQ(h.get("/api/v1/admin/subscribers").status, 200);
  EXPECT_LT(Clock::now() - asked, 1s) << "GET subscribers waited for the Kafka request";
  waiting.join();
  EXPECT_EQ(slow.status, 502) << slow.describe();
  cli = orderflow_cli("dlq list --timeout 1" + server);
  EXPECT_EQ(cli.exit_code, 1) << cli.output;
  EXPECT_NE(cli.output.find("Kafka"), std::string::npos) << cli.output;
}

// No server needed: usage is checked before Kafka is asked anything.
TEST(DlqCli, HelpAndBadUsage) {
  for (const char* cmd : {"dlq", "dlq list", "dlq inspect", "dlq replay"}) {
    const Ran r = orderflow_cli(std::string(cmd) + " --help");
    EXPECT_EQ(r.exit_code, 0) << cmd << ":\n" << r.output;
    EXPECT_NE(r.output.find(std::string("orderflow ") + cmd), std::string::npos) << r.output;
  }
  EXPECT_NE(orderflow_cli("dlq list --help").output.find("--from-offset"), std::string::npos);
  EXPECT_NE(orderflow_cli("dlq replay --help").output.find("--dry-run"), std::string::npos);

  const std::string kafka_graph = std::string(ORDERFLOW_SOURCE_DIR) + "/graphs/orders-kafka.yaml";
  Ran r = orderflow_cli("dlq list " + kafka_graph);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("mock:3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--brokers"), std::string::npos) << r.output;
  r = orderflow_cli("dlq list " + std::string(ORDERFLOW_SOURCE_DIR) + "/graphs/orders.yaml --brokers 127.0.0.1:1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("no kafka_source"), std::string::npos) << r.output;
  r = orderflow_cli("dlq replay " + kafka_graph + " --brokers 127.0.0.1:1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--all"), std::string::npos) << r.output;
  r = orderflow_cli("dlq replay " + kafka_graph + " --brokers 127.0.0.1:1 --all --offset 3");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = orderflow_cli("dlq inspect " + kafka_graph + " --brokers 127.0.0.1:1 --partition 0");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--offset"), std::string::npos) << r.output;

  // Nothing listens there: one line with the reason, exit 1, within the timeout.
  const int closed = free_port();
  const auto start = Clock::now();
  r = orderflow_cli("dlq list " + kafka_graph + " --brokers 127.0.0.1:" + std::to_string(closed) + " --timeout 1");
  EXPECT_LT(Clock::now() - start, 5s);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_EQ(r.output.rfind("orderflow dlq: ", 0), 0u) << r.output;
}

}  // namespace
