// The ImGui panels driven headless: an ImGui context without a window or GL backend, frames
// built from a Snapshot, mouse and keys fed through ImGuiIO. Checks that the panels draw
// without ImGui assertions and that selection, help and Esc behave.
#include <gtest/gtest.h>
#include <imgui.h>

#include <cmath>
#include <string>

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
    History history;
    for (const auto& n : t.nodes) {
      NodeMetrics m;
      m.id = n.id;
      m.kind = n.kind;
      m.rate_out = 100;
      m.busy_share = n.id == "commit" ? 0.95 : 0.1;
      m.gauges = {{"lag_events", 3}, {"lag_seconds", 0.5}};
      m.last_error = n.id == "feed" ? "store timeout" : "";
      st.metrics.nodes.push_back(m);
      history[n.id] = {{1, 50, 0}, {2, 100, 3}};
    }
    st.history = std::make_shared<const History>(std::move(history));
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

TEST_F(HeadlessUi, WheelZoomsAboutTheMouseAndDragPans) {
  const Snapshot s = live_snapshot();
  UiState ui;
  frame(s, ui);  // fits
  ImGuiIO& io = ImGui::GetIO();
  const LayoutNode& n = s.layout.nodes[static_cast<size_t>(s.layout.find("feed"))];
  const Point c = to_canvas(ui.view, n.x + n.w / 2, n.y + n.h / 2);
  io.MousePos = ImVec2(ui.canvas_x + c.x, ui.canvas_y + c.y);
  frame(s, ui);
  const CanvasView view0 = ui.view;
  io.MouseWheel = 2;
  frame(s, ui);
  io.MouseWheel = 0;
  EXPECT_NEAR(ui.view.zoom, view0.zoom * kWheelStep * kWheelStep, 1e-4);
  // ImGui floors the mouse position; the layout point under that position stays put.
  const float mx = io.MousePos.x - ui.canvas_x, my = io.MousePos.y - ui.canvas_y;
  EXPECT_NEAR(to_layout(ui.view, mx, my).x, to_layout(view0, mx, my).x, 1e-2) << "the point under the mouse";
  EXPECT_NEAR(to_layout(ui.view, mx, my).y, to_layout(view0, mx, my).y, 1e-2);
  EXPECT_EQ(hit_test(s.layout, ui.view, mx, my), s.layout.find("feed")) << "still over the node";

  const CanvasView before = ui.view;
  io.MouseDown[1] = true;  // drag with the right button
  frame(s, ui);
  for (int i = 0; i < 5; ++i) {
    io.MousePos.x += 10;
    io.MousePos.y -= 4;
    frame(s, ui);
  }
  io.MouseDown[1] = false;
  frame(s, ui);
  // ImGui starts reporting the drag once it passes its threshold, so the pan is the delta of
  // the frames after that: at most the whole movement, at least its last steps.
  EXPECT_GT(ui.view.pan_x - before.pan_x, 30);
  EXPECT_LE(ui.view.pan_x - before.pan_x, 50.01f);
  EXPECT_LT(ui.view.pan_y - before.pan_y, -12);
  EXPECT_FLOAT_EQ(ui.view.zoom, before.zoom) << "dragging does not zoom";
  EXPECT_EQ(ui.selected, "") << "a drag is not a click";
}

void record_fill(const ImDrawList*, const ImDrawCmd*) {}

// Shaded area of a frame's triangles, in screens.
double shaded_screens(const ImDrawData* dd) {
  double area = 0;
  for (int l = 0; l < dd->CmdListsCount; ++l) {
    const ImDrawList* dl = dd->CmdLists[l];
    for (int i = 0; i + 2 < dl->IdxBuffer.Size; i += 3) {
      const ImVec2 a = dl->VtxBuffer[dl->IdxBuffer[i]].pos, b = dl->VtxBuffer[dl->IdxBuffer[i + 1]].pos,
                   c = dl->VtxBuffer[dl->IdxBuffer[i + 2]].pos;
      area += std::abs((b.x - a.x) * (c.y - a.y) - (c.x - a.x) * (b.y - a.y)) / 2;
    }
  }
  return area / (dd->DisplaySize.x * dd->DisplaySize.y);
}

const ImDrawList* list_of(const ImDrawData* dd, const char* window) {
  for (int l = 0; l < dd->CmdListsCount; ++l)
    if (dd->CmdLists[l]->_OwnerName && std::string(dd->CmdLists[l]->_OwnerName) == window) return dd->CmdLists[l];
  return nullptr;
}

TEST_F(HeadlessUi, PanelBackgroundsAreNotShadedWhenMainClearsThem) {
  const Snapshot s = live_snapshot();
  UiState shaded;
  frame(s, shaded);
  frame(s, shaded);
  const double with_backgrounds = shaded_screens(ImGui::GetDrawData());
  EXPECT_GT(with_backgrounds, 0.9) << "ImGui's own backgrounds cover the screen";

  UiState ui;
  ui.solid_fill = record_fill;
  frame(s, ui);
  frame(s, ui);
  EXPECT_LT(shaded_screens(ImGui::GetDrawData()), 0.35) << "tiled panels: the glClear is their background";
  for (const char* w : {"Graph", "Details", "Nodes"}) {
    const ImDrawList* dl = list_of(ImGui::GetDrawData(), w);
    ASSERT_NE(dl, nullptr) << w;
    for (const ImDrawCmd& cmd : dl->CmdBuffer) EXPECT_EQ(cmd.UserCallback, nullptr) << w << ": nothing overlaps";
  }

  // Drag Details over the graph: it now repaints its own rectangle first, under its contents.
  ImGui::NewFrame();
  ImGui::SetWindowPos("Details", ImVec2(200, 150));
  draw_frame(s, ui);
  ImGui::Render();
  ImGui::NewFrame();
  draw_frame(s, ui);
  ImGui::Render();
  const ImDrawList* details = list_of(ImGui::GetDrawData(), "Details");
  ASSERT_NE(details, nullptr);
  ASSERT_GT(details->CmdBuffer.Size, 1);
  const ImDrawCmd& first = details->CmdBuffer[0];
  EXPECT_EQ(first.UserCallback, &record_fill);
  ASSERT_NE(first.UserCallbackData, nullptr);
  const auto* fill = static_cast<const SolidFill*>(first.UserCallbackData);
  EXPECT_FLOAT_EQ(fill->x0, 200);
  EXPECT_FLOAT_EQ(fill->y0, 150);
  EXPECT_EQ(fill->color >> 24, 0xFFu) << "opaque";
  EXPECT_GT(fill->x1, fill->x0);
  const ImDrawList* graph = list_of(ImGui::GetDrawData(), "Graph");
  ASSERT_NE(graph, nullptr);
  EXPECT_EQ(graph->CmdBuffer[0].UserCallback, &record_fill) << "the graph panel overlaps Details too";
}

}  // namespace
}  // namespace orderflow::monitor
