// The ImGui panels driven headless: an ImGui context without a window or GL backend, frames
// built from a Snapshot, mouse and keys fed through ImGuiIO. Checks that the panels draw
// without ImGui assertions and that selection, help and Esc behave.
#include <gtest/gtest.h>
#include <imgui.h>

#include "layout.h"
#include "ui.h"

namespace orderflow::monitor {
namespace {

constexpr int kEscapeIndex = 256;

class HeadlessUi : public ::testing::Test {
 protected:
  void SetUp() override {
    ImGui::CreateContext();
    ImGuiIO& io = ImGui::GetIO();
    io.IniFilename = nullptr;
    io.DisplaySize = ImVec2(1280, 800);
    io.DeltaTime = 1.0f / 60;
    io.KeyMap[ImGuiKey_Escape] = kEscapeIndex;
    unsigned char* pixels = nullptr;
    int w = 0, h = 0;
    io.Fonts->GetTexDataAsRGBA32(&pixels, &w, &h);  // builds the atlas; no texture upload needed
    io.Fonts->SetTexID(nullptr);
  }
  void TearDown() override { ImGui::DestroyContext(); }

  void frame(const Snapshot& s, UiState& ui) {
    ImGui::NewFrame();
    draw_frame(s, ui);
    ImGui::Render();
  }

  static Snapshot live_snapshot() {
    ServerState st;
    st.url = "http://127.0.0.1:1";
    Topology t;
    t.name = "g";
    t.nodes = {{"src", "demo_source", "", "none", "command", true, {}},
               {"commit", "commit", "", "decision", "committed", false, {}},
               {"feed", "change_feed", "", "committed", "event", false, {}}};
    t.edges = {{"src", "commit", "command", false}, {"commit", "feed", "committed", true}};
    st.topology = t;
    st.has_topology = true;
    for (const auto& n : t.nodes) {
      NodeMetrics m;
      m.id = n.id;
      m.kind = n.kind;
      m.rate_out = 100;
      m.busy_share = n.id == "commit" ? 0.95 : 0.1;
      m.gauges = {{"lag_events", 3}, {"lag_seconds", 0.5}};
      m.last_error = n.id == "feed" ? "store timeout" : "";
      st.metrics.nodes.push_back(m);
      st.history[n.id] = {{1, 50, 0}, {2, 100, 3}};
    }
    st.has_metrics = st.reachable = st.ever_polled = true;
    ServerState down;
    down.url = "http://127.0.0.1:2";
    down.ever_polled = true;
    down.unreachable_since = 1;
    return make_snapshot({st, down}, 10);
  }
};

TEST_F(HeadlessUi, ClickSelectsNodeAndEscClears) {
  const Snapshot s = live_snapshot();
  UiState ui;
  frame(s, ui);  // fits the graph into the canvas
  ASSERT_FALSE(ui.fit_pending);
  ASSERT_GT(ui.canvas_w, 0);
  const LayoutNode& n = s.layout.nodes[static_cast<size_t>(s.layout.find("commit"))];
  ImGuiIO& io = ImGui::GetIO();
  const Point c = to_canvas(ui.view, n.x + n.w / 2, n.y + n.h / 2);
  io.MousePos = ImVec2(ui.canvas_x + c.x, ui.canvas_y + c.y);
  frame(s, ui);
  io.MouseDown[0] = true;
  frame(s, ui);
  io.MouseDown[0] = false;
  frame(s, ui);
  EXPECT_EQ(ui.selected, "commit");
  frame(s, ui);  // details panel with sparklines, per-instance lines, gauges

  io.KeysDown[kEscapeIndex] = true;
  frame(s, ui);
  io.KeysDown[kEscapeIndex] = false;
  frame(s, ui);
  EXPECT_EQ(ui.selected, "");
}

TEST_F(HeadlessUi, HelpTogglesWithF1AndEscClosesIt) {
  const Snapshot s = live_snapshot();
  UiState ui;
  ui.help_key_pressed = true;
  frame(s, ui);
  EXPECT_TRUE(ui.show_help);
  EXPECT_FALSE(ui.help_key_pressed);
  ui.selected = "feed";
  ImGuiIO& io = ImGui::GetIO();
  io.KeysDown[kEscapeIndex] = true;
  frame(s, ui);
  io.KeysDown[kEscapeIndex] = false;
  frame(s, ui);
  EXPECT_FALSE(ui.show_help);
  EXPECT_EQ(ui.selected, "feed") << "the first Esc closes the overlay only";
}

TEST_F(HeadlessUi, DrawsEmptyAndUnreachableStates) {
  UiState ui;
  frame(make_snapshot({}, 0), ui);
  ServerState down;
  down.url = "http://127.0.0.1:9";
  down.ever_polled = true;
  down.unreachable_since = 5;
  frame(make_snapshot({down}, 10), ui);
  EXPECT_TRUE(ui.fit_pending) << "nothing to fit yet";
  // A much larger graph, zoomed and panned far away, still draws.
  Topology t;
  for (int i = 0; i < 200; ++i) {
    t.nodes.push_back({"n" + std::to_string(i), "k", "", "", "", i < 5, {}});
    if (i >= 5) t.edges.push_back({"n" + std::to_string(i / 2), "n" + std::to_string(i), "x", i % 7 == 0});
  }
  ServerState big;
  big.url = "u";
  big.topology = t;
  big.has_topology = big.ever_polled = big.reachable = true;
  ui.view.zoom = 0.2f;
  frame(make_snapshot({big}, 1), ui);
  ui.view.pan_x = -1e5f;
  frame(make_snapshot({big}, 1), ui);
}

}  // namespace
}  // namespace orderflow::monitor
