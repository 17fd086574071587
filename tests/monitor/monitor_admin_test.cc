// The monitor's view of the admin API (issue 14): parsing the dead-letter list, the replay answer
// and the subscriber list (malformed documents are errors that name the field, never a crash),
// counts over instances, the dump, and the "Dead letters" panel driven headless (its Replay
// buttons clicked through ImGui's mouse input).
#define _TURN_OFF_PLATFORM_STRING  // cpprest's U() macro breaks gtest templates
#include <utility>  // before cpprest (Boost.Asio with C++20)

#include <cpprest/json.h>
#include <gtest/gtest.h>
#include <imgui.h>
#include <imgui_internal.h>  // FindWindowByName

#include <set>
#include <string>

#include "layout.h"
#include "snapshot.h"
#include "ui.h"

namespace orderflow::monitor {
namespace {

// The contract's shape (server helper, issue 14), with the nulls it allows.
const char* kDeadLetters = R"({"instance":"orders-a","sources":[{"node":"kafka","topic":"orders.commands.dlq","more":false,
 "dead_letters":[
  {"topic":"orders.commands.dlq","partition":0,"offset":3,"timestamp_ms":1764650000000,"key":"o-1",
   "reason":"invalid JSON\nat 1:1\u0001","source":{"topic":"orders.commands","partition":1,"offset":17},
   "size":123,"original_size":123,"truncated":false,"headers_dropped":0,"kind":"dead_letter","replayable":true},
  {"topic":"orders.commands.dlq","partition":0,"offset":4,"timestamp_ms":null,"key":null,
   "reason":"store unavailable after 5 attempts","source":null,
   "size":4096,"original_size":90000,"truncated":true,"headers_dropped":2,"kind":"parked","replayable":true},
  {"topic":"orders.commands.dlq","partition":1,"offset":9,"timestamp_ms":1764650001000,"key":"o-2",
   "reason":"decode","source":{"topic":"orders.commands","partition":0,"offset":2},
   "size":10,"original_size":10,"truncated":false,"headers_dropped":0,"kind":"dead_letter","replayable":false,
   "not_replayable_because":"it was truncated"}]}]})";

std::string with_instance(const std::string& id) {
  std::string d = kDeadLetters;
  d.replace(d.find("orders-a"), 8, id);
  return d;
}

TEST(MonitorAdmin, ParsesTheDeadLetterList) {
  std::string error;
  const auto list = parse_dead_letters(kDeadLetters, &error);
  ASSERT_TRUE(list) << error;
  EXPECT_EQ(list->instance, "orders-a");
  ASSERT_EQ(list->sources.size(), 1u);
  const DeadLetterSource& src = list->sources[0];
  EXPECT_EQ(src.node, "kafka");
  EXPECT_EQ(src.topic, "orders.commands.dlq");
  ASSERT_EQ(src.dead_letters.size(), 3u);
  EXPECT_EQ(src.count(false), 2u);
  EXPECT_EQ(src.count(true), 1u);
  const DeadLetter& a = src.dead_letters[0];
  EXPECT_EQ(a.partition, 0);
  EXPECT_EQ(a.offset, 3);
  ASSERT_TRUE(a.timestamp_ms);
  EXPECT_DOUBLE_EQ(*a.timestamp_ms, 1764650000000.0);
  ASSERT_TRUE(a.key);
  EXPECT_EQ(*a.key, "o-1");
  EXPECT_TRUE(a.has_source);
  EXPECT_EQ(a.source_topic, "orders.commands");
  EXPECT_EQ(a.source_partition, 1);
  EXPECT_EQ(a.source_offset, 17);
  EXPECT_FALSE(a.parked());
  EXPECT_TRUE(a.replayable);
  EXPECT_EQ(a.reason, "invalid JSON\nat 1:1\x01");
  const DeadLetter& b = src.dead_letters[1];
  EXPECT_FALSE(b.timestamp_ms) << "null timestamp";
  EXPECT_FALSE(b.key) << "null key";
  EXPECT_FALSE(b.has_source) << "null source";
  EXPECT_TRUE(b.parked());
  EXPECT_TRUE(b.truncated);
  EXPECT_EQ(b.original_size, 90000u);
  EXPECT_EQ(b.headers_dropped, 2u);
  const DeadLetter& c = src.dead_letters[2];
  EXPECT_FALSE(c.replayable);
  EXPECT_EQ(c.not_replayable_because, "it was truncated");

  const auto empty = parse_dead_letters(R"({"instance":"x","sources":[]})", &error);
  ASSERT_TRUE(empty) << error;
  EXPECT_TRUE(empty->sources.empty());
  // Fields added later are ignored; "not_replayable_because" absent on a false row is explained.
  const auto extra = parse_dead_letters(
      R"({"sources":[{"node":"k","dead_letters":[{"partition":0,"offset":1,"kind":"dead_letter","replayable":false,"new_field":[1]}],"future":1}]})",
      &error);
  ASSERT_TRUE(extra) << error;
  EXPECT_FALSE(extra->sources[0].dead_letters[0].not_replayable_because.empty());
}

TEST(MonitorAdmin, MalformedDeadLetterListsAreErrorsThatNameTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {"not json", "invalid JSON"},
      {"[1,2]", "not an object"},
      {R"({"instance":"x"})", "\"sources\""},
      {R"({"sources":{}})", "\"sources\" is not an array"},
      {R"({"sources":[5]})", "sources[0] is not an object"},
      {R"({"sources":[{"dead_letters":[]}]})", "sources[0]: no \"node\""},
      {R"({"sources":[{"node":"k"}]})", "sources[0]: no \"dead_letters\""},
      {R"({"sources":[{"node":"k","dead_letters":[{"partition":0,"kind":"parked"}]}]})",
       "sources[0].dead_letters[0]: no \"offset\""},
      {R"({"sources":[{"node":"k","dead_letters":[{"partition":0,"offset":"3","kind":"parked"}]}]})",
       "\"offset\" is not an integer"},
      {R"({"sources":[{"node":"k","dead_letters":[{"partition":0,"offset":3}]}]})", "no \"kind\""},
      {R"({"sources":[{"node":"k","dead_letters":[{"partition":0,"offset":3,"kind":"parked","source":{"topic":"t"}}]}]})",
       "dead_letters[0].source: no \"partition\""},
      {R"({"sources":[{"node":"k","dead_letters":[{"partition":0.5,"offset":3,"kind":"parked"}]}]})",
       "\"partition\" is not an integer"},
  };
  for (const auto& [doc, expected] : cases) {
    std::string error;
    EXPECT_FALSE(parse_dead_letters(doc, &error)) << doc;
    EXPECT_NE(error.find(expected), std::string::npos) << doc << " -> " << error;
  }
  EXPECT_FALSE(parse_dead_letters("{")) << "no error pointer: still no crash";
}

TEST(MonitorAdmin, ParsesReplayAnswersSubscribersAndErrorBodies) {
  std::string error;
  const auto a = parse_replay_answer(
      R"({"replayed":[{"partition":0,"offset":3,"to":"orders.commands/1/40"}],"refused":[{"partition":0,"offset":9,"reason":"truncated"}]})",
      &error);
  ASSERT_TRUE(a) << error;
  ASSERT_EQ(a->replayed.size(), 1u);
  EXPECT_EQ(a->replayed[0].to, "orders.commands/1/40");
  ASSERT_EQ(a->refused.size(), 1u);
  EXPECT_EQ(a->refused[0].reason, "truncated");
  // The server also sends "failed" (replayable, but the write failed) and more fields per row.
  const auto f = parse_replay_answer(
      R"({"node":"kafka","topic":"t","dry_run":false,"replayed":[],"refused":[],"failed":[{"partition":2,"offset":5,"key":null,"size":10,"reason":"Local: Message timed out"}]})",
      &error);
  ASSERT_TRUE(f) << error;
  ASSERT_EQ(f->failed.size(), 1u);
  EXPECT_EQ(f->failed[0].offset, 5);
  ReplayOutcome o;
  o.request = {0, "kafka", true, 0, 0};
  o.state = ReplayOutcome::State::kDone;
  o.answer = *f;
  EXPECT_EQ(o.summary(), "kafka all: replayed 0, failed 1 (2:5: Local: Message timed out)");
  EXPECT_FALSE(parse_replay_answer(R"({"ok":true})", &error));
  EXPECT_NE(error.find("none of \"replayed\", \"refused\", \"failed\""), std::string::npos) << error;
  EXPECT_FALSE(parse_replay_answer(R"({"replayed":[{"partition":0}]})", &error));
  EXPECT_NE(error.find("replayed[0]: no \"offset\""), std::string::npos) << error;
  EXPECT_FALSE(parse_replay_answer("", &error));

  const auto subs = parse_subscribers(
      R"({"instance":"i","subscribers":[{"feed":"feed","subscriber":"projection","kind":"projection","checkpoint":90,"head":100,"behind":10,"resettable":true}]})",
      &error);
  ASSERT_TRUE(subs) << error;
  ASSERT_EQ(subs->size(), 1u);
  EXPECT_EQ((*subs)[0].subscriber, "projection");
  EXPECT_DOUBLE_EQ((*subs)[0].behind, 10);
  EXPECT_FALSE(parse_subscribers(R"({"subscribers":[{"feed":"f"}]})", &error));
  EXPECT_NE(error.find("no \"subscriber\""), std::string::npos) << error;

  EXPECT_EQ(error_of_body(R"({"error":"offset 3 was replayed already"})"), "offset 3 was replayed already");
  EXPECT_EQ(error_of_body(R"({"error":{"code":"x","message":"nope"}})"), "nope");
  EXPECT_EQ(error_of_body("<html>"), "");
}

TEST(MonitorAdmin, ReasonsAreEscapedForOneLine) {
  EXPECT_EQ(escape_text("a\nb\tc\r\x01\x7f\\"), "a\\nb\\tc\\r\\x01\\x7f\\\\");
  EXPECT_EQ(escape_text("caf\xc3\xa9"), "caf\xc3\xa9") << "UTF-8 passes";
  EXPECT_EQ(escape_text(std::string(50, 'x'), 10), std::string(10, 'x') + "...");
}

TEST(MonitorAdmin, ReplayOutcomesSayWhatHappened) {
  ReplayOutcome o;
  o.request = {0, "kafka", false, 0, 3};
  EXPECT_EQ(o.request.describe(), "kafka 0:3");
  EXPECT_NE(o.summary().find("replaying kafka 0:3"), std::string::npos);
  o.state = ReplayOutcome::State::kDone;
  o.answer.replayed.push_back({0, 3, "t/0/1"});
  o.answer.refused.push_back({0, 9, "truncated\n"});
  EXPECT_EQ(o.summary(), "kafka 0:3: replayed 1, refused 1 (0:9: truncated\\n)");
  o.state = ReplayOutcome::State::kFailed;
  o.http_status = 409;
  o.error = "already replayed";
  EXPECT_EQ(o.summary(), "kafka 0:3: HTTP 409: already replayed");
  o.request.all = true;
  EXPECT_EQ(o.request.describe(), "kafka all");
}

ServerState admin_server(const std::string& url, const std::string& instance, const std::string& list_json) {
  ServerState st;
  st.url = url;
  st.topology.instance = instance;
  st.topology.nodes = {{"kafka", "kafka_source", "", "none", "command", true, {}},
                       {"commit", "commit", "", "command", "committed", false, {}}};
  st.topology.edges = {{"kafka", "commit", "command", false}};
  st.has_topology = true;
  st.metrics.instance = instance;
  st.metrics.nodes = {NodeMetrics{}, NodeMetrics{}};
  st.metrics.nodes[0].id = "kafka";
  st.metrics.nodes[1].id = "commit";
  st.has_metrics = st.reachable = st.ever_polled = true;
  if (!list_json.empty()) {
    auto list = parse_dead_letters(list_json);
    EXPECT_TRUE(list);
    st.dead_letters = std::make_shared<const DeadLetterList>(std::move(*list));
    st.dead_letters_view.status = AdminStatus::kOk;
    st.dead_letters_view.http_status = 200;
  }
  return st;
}

// Two instances of one graph read one DLQ topic: they list the same messages, which count once.
// Rows an instance alone lists add up. A second URL of one instance is not counted at all.
TEST(MonitorAdmin, CountsEachDeadLetterOnceOverInstances) {
  const ServerState a = admin_server("http://127.0.0.1:1", "orders-a", with_instance("orders-a"));
  const ServerState a2 = admin_server("http://localhost:1", "orders-a", with_instance("orders-a"));
  std::string other = with_instance("orders-b");
  other.replace(other.find(R"("offset":9)"), 10, R"("offset":11)");  // b lists one more dead letter
  const ServerState b = admin_server("http://127.0.0.1:2", "orders-b", other);
  const Snapshot s = make_snapshot({a, a2, b}, 100);
  EXPECT_EQ(s.duplicate_of[1], 0);
  EXPECT_EQ(s.admin_servers, 2);
  EXPECT_EQ(s.dead_letter_total.dead_letters, 3u) << "0:3 and 1:9 of a, 0:3 again and 1:11 of b";
  EXPECT_EQ(s.dead_letter_total.parked, 1u) << "0:4 listed by both";
  ASSERT_EQ(s.dead_letter_counts.count("kafka"), 1u);
  EXPECT_EQ(s.dead_letter_counts.at("kafka").dead_letters, 3u);
  EXPECT_EQ(format_dead_letter_counts(s.dead_letter_total), "3 dead letters, 1 parked");
  const LayoutNode& kafka = s.layout.nodes[static_cast<size_t>(s.layout.find("kafka"))];
  ASSERT_GE(kafka.lines.size(), 2u);
  EXPECT_EQ(kafka.lines[1], "dead 3  parked 1") << "on the source node in the canvas";
  EXPECT_TRUE(s.banners.empty());

  // The dump keeps each instance's own rows, and the counts.
  std::error_code ec;
  const auto dump = web::json::value::parse(dump_layout_json(s), ec);
  ASSERT_FALSE(ec) << dump_layout_json(s);
  const auto& dl = dump.at("deadLetters");
  EXPECT_EQ(dl.at("total").at("deadLetters").as_integer(), 3);
  EXPECT_EQ(dl.at("total").at("parked").as_integer(), 1);
  EXPECT_EQ(dl.at("perNode").at("kafka").at("deadLetters").as_integer(), 3);
  const auto& servers = dl.at("servers").as_array();
  ASSERT_EQ(servers.size(), 3u);
  EXPECT_EQ(servers.at(0).at("instance").as_string(), "orders-a");
  EXPECT_FALSE(servers.at(1).at("counted").as_bool());
  EXPECT_EQ(servers.at(2).at("instance").as_string(), "orders-b");
  const auto& rows_b = servers.at(2).at("sources").as_array().at(0).at("rows").as_array();
  ASSERT_EQ(rows_b.size(), 3u);
  EXPECT_EQ(rows_b.at(2).at("offset").as_integer(), 11);
  const auto& rows_a = servers.at(0).at("sources").as_array().at(0).at("rows").as_array();
  EXPECT_EQ(rows_a.at(0).at("shownReason").as_string(), "invalid JSON\\nat 1:1\\x01");
  EXPECT_EQ(rows_a.at(0).at("reason").as_string(), "invalid JSON\nat 1:1\x01");
  EXPECT_TRUE(rows_a.at(1).at("key").is_null());
  EXPECT_TRUE(rows_a.at(1).at("source").is_null());
  EXPECT_EQ(rows_a.at(1).at("kind").as_string(), "parked");
  EXPECT_FALSE(rows_a.at(2).at("replayable").as_bool());
  EXPECT_EQ(rows_a.at(2).at("notReplayableBecause").as_string(), "it was truncated");
}

// 404 (no admin API) and 403 are states of the view: no banner, no counts, nothing summed.
TEST(MonitorAdmin, NoAdminApiAndNotAuthorizedAreQuietViews) {
  ServerState old = admin_server("http://127.0.0.1:1", "old", "");
  old.dead_letters_view = {AdminStatus::kNoAdminApi, 404, "", 1};
  ServerState locked = admin_server("http://127.0.0.1:2", "locked", "");
  locked.dead_letters_view = {AdminStatus::kUnauthorized, 403, "GET /api/v1/admin/dead-letters: HTTP 403", 1};
  const Snapshot s = make_snapshot({old, locked}, 10);
  EXPECT_TRUE(s.banners.empty()) << "neither is an outage";
  EXPECT_EQ(s.admin_servers, 0);
  EXPECT_EQ(s.dead_letter_total.total(), 0u);
  const LayoutNode& kafka = s.layout.nodes[static_cast<size_t>(s.layout.find("kafka"))];
  for (const std::string& line : kafka.lines) EXPECT_EQ(line.find("dead"), std::string::npos) << line;
  std::error_code ec;
  const auto dump = web::json::value::parse(dump_layout_json(s), ec);
  ASSERT_FALSE(ec);
  const auto& servers = dump.at("deadLetters").at("servers").as_array();
  EXPECT_EQ(servers.at(0).at("status").as_string(), "no admin API");
  EXPECT_EQ(servers.at(0).at("httpStatus").as_integer(), 404);
  EXPECT_EQ(servers.at(1).at("status").as_string(), "not authorized");
}

// ---- The panel, headless (as monitor_ui_test.cc) ----

class HeadlessPanel : public ::testing::Test {
 protected:
  void SetUp() override {
    ImGui::CreateContext();
    ImGuiIO& io = ImGui::GetIO();
    io.IniFilename = nullptr;
    io.DisplaySize = ImVec2(1280, 800);
    io.DeltaTime = 1.0f / 60;
    unsigned char* pixels = nullptr;
    int w = 0, h = 0;
    io.Fonts->GetTexDataAsRGBA32(&pixels, &w, &h);
    io.Fonts->SetTexID(nullptr);
  }
  void TearDown() override { ImGui::DestroyContext(); }
  void frame(const Snapshot& s, UiState& ui) {
    ImGui::NewFrame();
    draw_frame(s, ui);
    ImGui::Render();
  }
  // Presses and releases the left button over the centre of the button named `name`.
  void click(const Snapshot& s, UiState& ui, const std::string& name) {
    const WindowRect* r = nullptr;
    for (const auto& [req, rect] : ui.replay_buttons)
      if (rect.name == name) r = &rect;
    ASSERT_NE(r, nullptr) << "no button " << name;
    ImGuiIO& io = ImGui::GetIO();
    io.MousePos = ImVec2((r->x0 + r->x1) / 2, (r->y0 + r->y1) / 2);
    frame(s, ui);
    io.MouseDown[0] = true;
    frame(s, ui);
    io.MouseDown[0] = false;
    frame(s, ui);
  }
};

TEST_F(HeadlessPanel, ReplayButtonsQueueRequestsThroughTheMouse) {
  const Snapshot s = make_snapshot({admin_server("http://127.0.0.1:1", "orders-a", kDeadLetters)}, 100);
  UiState ui;
  frame(s, ui);
  EXPECT_TRUE(ui.replay_buttons.empty()) << "the node table is shown until the panel is asked for";

  // The toolbar's "Dead letters: ..." button opens the panel in the bottom strip.
  const WindowRect t = ui.dead_letters_toggle;
  EXPECT_EQ(t.name, "Dead letters: 2 dead letters, 1 parked");
  ImGuiIO& io = ImGui::GetIO();
  io.MousePos = ImVec2((t.x0 + t.x1) / 2, (t.y0 + t.y1) / 2);
  frame(s, ui);
  io.MouseDown[0] = true;
  frame(s, ui);
  io.MouseDown[0] = false;
  frame(s, ui);
  ASSERT_TRUE(ui.show_dead_letters);
  frame(s, ui);
  ImGuiWindow* panel = ImGui::FindWindowByName("Dead letters");
  ASSERT_NE(panel, nullptr);
  EXPECT_TRUE(panel->Active);
  ImGuiWindow* nodes = ImGui::FindWindowByName("Nodes");
  ASSERT_NE(nodes, nullptr);
  EXPECT_FALSE(nodes->Active) << "the panel takes the node table's place";
  std::set<std::string> names;
  for (const auto& [req, rect] : ui.replay_buttons) names.insert(rect.name);
  EXPECT_EQ(names, (std::set<std::string>{"kafka 0:3", "kafka 0:4", "kafka all"}))
      << "1:9 is not replayable: no button";

  click(s, ui, "kafka 0:3");
  ASSERT_EQ(ui.replay_requests.size(), 1u);
  EXPECT_EQ(ui.replay_requests[0].server, 0u);
  EXPECT_EQ(ui.replay_requests[0].node, "kafka");
  EXPECT_FALSE(ui.replay_requests[0].all);
  EXPECT_EQ(ui.replay_requests[0].partition, 0);
  EXPECT_EQ(ui.replay_requests[0].offset, 3);
  ui.replay_requests.clear();  // main.cc hands them to the pollers

  click(s, ui, "kafka all");
  ASSERT_EQ(ui.replay_requests.size(), 1u);
  EXPECT_TRUE(ui.replay_requests[0].all);
  ui.replay_requests.clear();

  // While a replay of 0:4 is pending its button is gone (no double replay), and so is Replay all's.
  ServerState pending = admin_server("http://127.0.0.1:1", "orders-a", kDeadLetters);
  ReplayOutcome o;
  o.request = {0, "kafka", false, 0, 4};
  pending.replays.push_back(o);
  const Snapshot s2 = make_snapshot({pending}, 100);
  frame(s2, ui);
  names.clear();
  for (const auto& [req, rect] : ui.replay_buttons) names.insert(rect.name);
  EXPECT_EQ(names.count("kafka 0:4"), 0u);
  EXPECT_EQ(names.count("kafka 0:3"), 1u);
  EXPECT_EQ(names.count("kafka all"), 0u) << "Replay all waits for the pending replay";
}

TEST_F(HeadlessPanel, ToolbarButtonOpensThePanelAndEveryStateDraws) {
  ServerState old = admin_server("http://127.0.0.1:1", "old", "");
  old.dead_letters_view = {AdminStatus::kNoAdminApi, 404, "", 1};
  ServerState locked = admin_server("http://127.0.0.1:2", "locked", "");
  locked.dead_letters_view = {AdminStatus::kUnauthorized, 403, "HTTP 403", 1};
  ServerState failed = admin_server("http://127.0.0.1:3", "failed", kDeadLetters);
  failed.dead_letters_view = {AdminStatus::kFailed, 500, "HTTP 500: \x01 boom", 1};
  ReplayOutcome done;
  done.request = {2, "kafka", true, 0, 0};
  done.state = ReplayOutcome::State::kDone;
  done.answer.replayed.push_back({0, 3, "t/0/1"});
  failed.replays.push_back(done);
  ReplayOutcome gone = done;
  gone.request.node = "no-longer-listed";
  gone.state = ReplayOutcome::State::kFailed;
  failed.replays.push_back(gone);
  ServerState subs = admin_server("http://127.0.0.1:4", "subs", R"({"sources":[]})");
  subs.subscribers = std::make_shared<const std::vector<SubscriberInfo>>(
      std::vector<SubscriberInfo>{{"feed", "projection", "projection", 90, 100, 10, true}});
  ServerState down;
  down.url = "http://127.0.0.1:5";
  down.ever_polled = true;
  const Snapshot s = make_snapshot({old, locked, failed, subs, down}, 100);
  UiState ui;
  frame(s, ui);
  EXPECT_EQ(ui.dead_letters_toggle.name, "Dead letters: 2 dead letters, 1 parked")
      << "the failed poll's last list still counts";
  ui.selected = "kafka";  // the details panel shows the source's counts with a button to the panel
  frame(s, ui);
  ui.show_dead_letters = true;
  frame(s, ui);
  frame(s, ui);
  EXPECT_NE(ImGui::FindWindowByName("Dead letters"), nullptr);
  EXPECT_EQ(ui.replay_buttons.size(), 3u) << "rows of the failed poll's last list are still shown";
}

// ---- commands the saga parked (GET /api/v1/admin/parked, POST .../parked/replay) ----

const char* kParked = R"({"instance":"orders-a","parked":[
 {"node":"saga","command_id":"saga/order-o7/1/reserve/A","command":"reserveStock","stream":"sku-A",
  "event_stream":"order-o7","event_version":1,"reason":"boom\u0007","attempts":10,"parked_at_ms":1764650000000},
 {"node":"saga","command_id":"saga/order-o8/1/reserve/A","command":"reserveStock","stream":"sku-A",
  "event_stream":"order-o8","event_version":2,"reason":"boom","attempts":11,"parked_at_ms":null}]})";

TEST(MonitorAdmin, ParsesParkedCommandsAndTheirReplayAnswer) {
  std::string error;
  auto list = parse_parked(kParked, &error);
  ASSERT_TRUE(list) << error;
  EXPECT_EQ(list->instance, "orders-a");
  ASSERT_EQ(list->parked.size(), 2u);
  EXPECT_EQ(list->parked[0].command_id, "saga/order-o7/1/reserve/A");
  EXPECT_EQ(list->parked[0].command, "reserveStock");
  EXPECT_EQ(list->parked[0].event_version, 1);
  EXPECT_EQ(list->parked[0].attempts, 10);
  ASSERT_TRUE(list->parked[0].parked_at_ms);
  EXPECT_FALSE(list->parked[1].parked_at_ms);
  EXPECT_FALSE(parse_parked(R"({"parked":[{"node":"saga"}]})", &error));
  EXPECT_NE(error.find("command_id"), std::string::npos) << error;
  EXPECT_FALSE(parse_parked(R"({"instance":"x"})", &error));
  EXPECT_NE(error.find("parked"), std::string::npos) << error;
  EXPECT_FALSE(parse_parked("not json", &error));

  auto answer = parse_parked_replay_answer(
      R"({"replayed":[{"command_id":"a","outcome":"committed"}],"failed":[{"command_id":"b","reason":"store down"}]})",
      &error);
  ASSERT_TRUE(answer) << error;
  ASSERT_EQ(answer->replayed.size(), 1u);
  EXPECT_EQ(answer->replayed[0].command_id, "a");
  EXPECT_EQ(answer->replayed[0].to, "committed");
  ASSERT_EQ(answer->failed.size(), 1u);
  ReplayOutcome o;
  o.request.node = "saga";
  o.request.parked = true;
  o.request.command_id = "a";
  o.state = ReplayOutcome::State::kDone;
  o.answer = *answer;
  EXPECT_EQ(o.summary(), "saga parked a: replayed 1, failed 1 (b: store down)");
  EXPECT_FALSE(parse_parked_replay_answer(R"({"replayed":[{"outcome":"x"}]})", &error));
  EXPECT_NE(error.find("command_id"), std::string::npos) << error;
}

ServerState with_parked(ServerState st) {
  st.parked = std::make_shared<const ParkedList>(*parse_parked(kParked));
  st.parked_view.status = AdminStatus::kOk;
  return st;
}

TEST(MonitorAdmin, ParkedCommandsAreCountedOnceOverInstances) {
  const Snapshot s = make_snapshot({with_parked(admin_server("http://127.0.0.1:1", "orders-a", kDeadLetters)),
                                    with_parked(admin_server("http://127.0.0.1:2", "orders-b", kDeadLetters))},
                                   100);
  EXPECT_EQ(s.dead_letter_counts.at("saga").parked, 2u);
  EXPECT_EQ(s.dead_letter_counts.at("saga").dead_letters, 0u);
  EXPECT_EQ(s.dead_letter_total.parked, 3u) << "one parked dead letter and two parked commands";
  EXPECT_EQ(format_dead_letter_line(s.dead_letter_counts.at("saga")), "parked 2");
}

TEST_F(HeadlessPanel, ParkedCommandsHaveReplayButtons) {
  const Snapshot s = make_snapshot({with_parked(admin_server("http://127.0.0.1:1", "orders-a", kDeadLetters))}, 100);
  UiState ui;
  ui.show_dead_letters = true;
  frame(s, ui);
  frame(s, ui);
  std::set<std::string> names;
  for (const auto& [req, rect] : ui.replay_buttons) names.insert(rect.name);
  EXPECT_EQ(names.count("saga parked saga/order-o7/1/reserve/A"), 1u);
  EXPECT_EQ(names.count("saga all parked"), 1u);
  click(s, ui, "saga parked saga/order-o8/1/reserve/A");
  ASSERT_EQ(ui.replay_requests.size(), 1u);
  EXPECT_TRUE(ui.replay_requests[0].parked);
  EXPECT_FALSE(ui.replay_requests[0].all);
  EXPECT_EQ(ui.replay_requests[0].command_id, "saga/order-o8/1/reserve/A");
  EXPECT_EQ(ui.replay_requests[0].node, "saga");
}

}  // namespace
}  // namespace orderflow::monitor
