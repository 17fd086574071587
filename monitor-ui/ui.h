// ImGui panels. Each panel is draw_x(const Snapshot&, UiState&): a function of the snapshot
// plus UI state, no function-local statics, no GLFW/OpenGL (main.cc owns those).
#pragma once

#include <string>

#include "layout.h"
#include "view.h"

namespace orderflow::monitor {

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
  // table sort
  int sort_column = 0;
  bool sort_descending = false;
};

void draw_banner(const Snapshot& s, UiState& ui);   // unreachable servers
void draw_summary(const Snapshot& s, UiState& ui);  // totals, uptime, bottleneck, per instance
void draw_canvas(const Snapshot& s, UiState& ui);   // the graph
void draw_table(const Snapshot& s, UiState& ui);    // sortable node table
void draw_details(const Snapshot& s, UiState& ui);  // selected node
void draw_help(const Snapshot& s, UiState& ui);     // F1 overlay
void handle_shortcuts(const Snapshot& s, UiState& ui);

// The whole frame: lays the panels out in the main viewport.
void draw_frame(const Snapshot& s, UiState& ui);

}  // namespace orderflow::monitor
