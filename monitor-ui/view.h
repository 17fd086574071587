// The graph canvas's view: pan, zoom, fit, hit-testing, edge curves and what is on screen.
// Pure functions of a Layout and a CanvasView (no ImGui, no GLFW), so pan and zoom are
// unit-tested without a window; ui.cc turns their results into draw calls.
//
// Coordinates: "layout" units are those of Layout (before pan and zoom); "canvas" pixels are
// relative to the canvas's top-left corner on screen: canvas = pan + layout * zoom.
#pragma once

#include "layout.h"

namespace orderflow::monitor {

struct CanvasView {
  float pan_x = 0, pan_y = 0;  // canvas pixels of the layout origin
  float zoom = 1;              // canvas pixels per layout unit
};

inline constexpr float kMinZoom = 0.2f;      // wheel zoom limits
inline constexpr float kMaxZoom = 4.0f;
inline constexpr float kMinFitZoom = 0.25f;  // fit never shrinks below this (text unreadable)
inline constexpr float kMaxFitZoom = 2.0f;   // nor blows a tiny graph up past this
inline constexpr float kWheelStep = 1.1f;    // zoom factor per wheel notch

struct Point {
  float x = 0, y = 0;
};

Point to_canvas(const CanvasView& v, float layout_x, float layout_y);
Point to_layout(const CanvasView& v, float canvas_x, float canvas_y);

// The view that centres the whole layout in a canvas of w x h pixels, zoom clamped to
// [kMinFitZoom, kMaxFitZoom]. An empty layout or canvas leaves `current` unchanged.
CanvasView fit_view(const Layout& layout, float w, float h, const CanvasView& current);

// Dragging by (dx, dy) canvas pixels moves the drawing by exactly that much.
CanvasView pan_by(const CanvasView& v, float dx, float dy);

// Zoom by kWheelStep^wheel (clamped to [kMinZoom, kMaxZoom]) about the canvas point (cx, cy):
// the layout point under it stays under it.
CanvasView zoom_at(const CanvasView& v, float wheel, float cx, float cy);

// Index into layout.nodes of the node under canvas point (cx, cy), -1 for none. Nodes drawn later
// are on top, so the last hit wins.
int hit_test(const Layout& layout, const CanvasView& v, float cx, float cy);

// A node's box intersects the w x h canvas (with `margin` pixels of slack for outlines).
bool node_visible(const LayoutNode& n, const CanvasView& v, float w, float h, float margin = 4);

// An edge as a cubic Bezier in canvas pixels: forward edges leave the right side of the source
// and enter the left side of the target; back edges (and edges to a column not to the right)
// loop underneath, bottom to bottom.
struct EdgeCurve {
  Point p1, p2, p3, p4;
  Point at(float t) const;
};
EdgeCurve edge_curve(const Layout& layout, const LayoutEdge& e, const CanvasView& v);

// The curve lies inside its control points' bounding box; true if that box, grown by `margin`
// pixels (line width, arrow head, label), meets the w x h canvas.
bool curve_visible(const EdgeCurve& c, float w, float h, float margin);

// Line segments to draw the curve with: about one per `pixels_per_segment` of its control
// polygon's length, within [min_segments, max_segments]. Short or zoomed-out edges get few
// vertices, which is what a software rasterizer pays for.
int curve_segments(const EdgeCurve& c, float pixels_per_segment = 24, int min_segments = 4, int max_segments = 24);

// Level of detail: what the canvas draws at a zoom. Text below a readable size costs vertices
// (which a software rasterizer pays per triangle) and shows nothing.
struct DetailLevel {
  bool node_text = true;    // figures inside the boxes
  bool edge_labels = true;  // msgs/s on the edges
  float edge_thickness(float layout_thickness, float zoom) const;
};
inline constexpr float kNodeTextMinZoom = 0.35f;   // the 13 px font is not shrunk below 0.8
inline constexpr float kEdgeLabelMinZoom = 0.45f;  // below, neighbouring labels overlap
DetailLevel detail_for_zoom(float zoom);

}  // namespace orderflow::monitor
