// ImGui panels. Each panel is draw_x(const Snapshot&, UiState&): a function of the snapshot
// plus UI state, no function-local statics, no GLFW/OpenGL (main.cc owns those).
#pragma once

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "layout.h"
#include "view.h"

struct ImDrawList;
struct ImDrawCmd;

namespace orderflow::monitor {

// A solid, opaque rectangle in screen pixels (colour as ImU32, 0xAABBGGRR).
struct SolidFill {
  float x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  unsigned int color = 0;
};

// Panel-sized solid rectangles (the panels' backgrounds) are what a software rasterizer such as
// Mesa's llvmpipe under Xvfb pays most for: ImGui's shader samples a texture and blends for
// every pixel, about 10 ms per screenful on the 2-core dev machine. main.cc (which knows
// OpenGL) clears the framebuffer to the background colour, which is a memset, and installs
// this callback; the panels then draw no background of their own, except where one overlaps
// another window: there the callback fills the SolidFill passed as the command's
// UserCallbackData with a scissored glClear. Without a callback (headless tests) ImGui draws
// the backgrounds as usual.
using SolidFillCallback = void (*)(const ImDrawList* list, const ImDrawCmd* cmd);

// A window's rectangle on screen, recorded each frame (panels and the help overlay).
struct WindowRect {
  std::string name;
  float x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};
// True if `r` shares pixels with a rectangle of another name in `others`.
bool overlaps_other_window(const WindowRect& r, const std::vector<WindowRect>& others);

struct UiState {
  // canvas view
  CanvasView view;          // pan and zoom (view.h)
  bool fit_pending = true;  // fit the graph into the canvas on the next frame
  std::string selected;     // node id, "" = none
  // overlays and toggles
  bool show_help = false;
  bool show_table = true;
  bool show_details = true;
  // input forwarded by main.cc (platform keys ImGui 1.86 has no named key for)
  bool help_key_pressed = false;  // F1
  // where the canvas was last drawn (screen coordinates), written by draw_canvas
  float canvas_x = 0, canvas_y = 0, canvas_w = 0, canvas_h = 0;
  // node colours: busy, queue and lag thresholds (layout.h), edited in the details panel
  HealthThresholds thresholds;
  // table sort
  int sort_column = 0;
  bool sort_descending = false;
  // rendering (see SolidFillCallback): set once by main.cc; `fills` holds this frame's rectangles
  // (a deque, so addresses handed to ImGui stay valid until the frame is rendered)
  SolidFillCallback solid_fill = nullptr;
  std::deque<SolidFill> fills;
  std::vector<WindowRect> window_rects, window_rects_prev;  // this frame's and the last
  // The bottom strip shows the "Dead letters" panel instead of the node table (the toolbar's
  // "Dead letters" button, its close box, --show-dead-letters).
  bool show_dead_letters = false;
  // Replays asked for with the panel's buttons this frame; main.cc hands them to the pollers
  // (Poller::request_replay, which never blocks) and clears the list.
  std::vector<ReplayRequest> replay_requests;
  // Where this frame drew the panel's Replay / Replay all buttons (screen rectangles; `name` is
  // ReplayRequest::describe()), so tests can click them through ImGui's mouse input.
  std::vector<std::pair<ReplayRequest, WindowRect>> replay_buttons;
  WindowRect dead_letters_toggle;  // the toolbar's "Dead letters" button; name = its label
};

void draw_banner(const Snapshot& s, UiState& ui);   // unreachable servers
void draw_summary(const Snapshot& s, UiState& ui);  // totals, uptime, bottleneck, per instance
void draw_canvas(const Snapshot& s, UiState& ui);   // the graph
void draw_table(const Snapshot& s, UiState& ui);    // sortable node table
void draw_details(const Snapshot& s, UiState& ui);  // selected node
void draw_thresholds(const Snapshot& s, UiState& ui);  // lag colour thresholds (editable)
void draw_help(const Snapshot& s, UiState& ui);     // F1 overlay
// Per server and source node: dead letters and parked commands, Replay / Replay all buttons
// (queued in ui.replay_requests), the outcomes of replays; then the subscribers, if listed.
void draw_dead_letters(const Snapshot& s, UiState& ui);
void handle_shortcuts(const Snapshot& s, UiState& ui);

// Row order of the node table (indices into s.layout.nodes) for ui's sort column:
// 0 node, 1 kind, 2 in/s, 3 out/s, 4 busy, 5 queue depth, 6 lag events, 7 lag seconds,
// 8 errors, 9 client errors (4xx), 10 p99.
std::vector<size_t> table_order(const Snapshot& s, const UiState& ui);

// The whole frame: lays the panels out in the main viewport.
void draw_frame(const Snapshot& s, UiState& ui);

}  // namespace orderflow::monitor
