#include "view.h"

#include <algorithm>
#include <cmath>

namespace orderflow::monitor {

Point to_canvas(const CanvasView& v, float layout_x, float layout_y) {
  return {v.pan_x + layout_x * v.zoom, v.pan_y + layout_y * v.zoom};
}

Point to_layout(const CanvasView& v, float canvas_x, float canvas_y) {
  return {(canvas_x - v.pan_x) / v.zoom, (canvas_y - v.pan_y) / v.zoom};
}

CanvasView fit_view(const Layout& layout, float w, float h, const CanvasView& current) {
  if (layout.nodes.empty() || layout.width <= 0 || layout.height <= 0 || w <= 0 || h <= 0) return current;
  CanvasView v;
  v.zoom = std::clamp(std::min(w / layout.width, h / layout.height), kMinFitZoom, kMaxFitZoom);
  v.pan_x = (w - layout.width * v.zoom) / 2;
  v.pan_y = (h - layout.height * v.zoom) / 2;
  return v;
}

CanvasView pan_by(const CanvasView& v, float dx, float dy) {
  CanvasView out = v;
  out.pan_x += dx;
  out.pan_y += dy;
  return out;
}

CanvasView zoom_at(const CanvasView& v, float wheel, float cx, float cy) {
  CanvasView out = v;
  out.zoom = std::clamp(v.zoom * std::pow(kWheelStep, wheel), kMinZoom, kMaxZoom);
  // Keep the layout point under (cx, cy) in place: cx = pan + p * zoom before and after.
  out.pan_x = cx - (cx - v.pan_x) * out.zoom / v.zoom;
  out.pan_y = cy - (cy - v.pan_y) * out.zoom / v.zoom;
  return out;
}

int hit_test(const Layout& layout, const CanvasView& v, float cx, float cy) {
  const Point p = to_layout(v, cx, cy);
  int hit = -1;
  for (size_t i = 0; i < layout.nodes.size(); ++i) {
    const LayoutNode& n = layout.nodes[i];
    if (p.x >= n.x && p.x <= n.x + n.w && p.y >= n.y && p.y <= n.y + n.h) hit = static_cast<int>(i);
  }
  return hit;
}

bool node_visible(const LayoutNode& n, const CanvasView& v, float w, float h, float margin) {
  const Point a = to_canvas(v, n.x, n.y);
  const Point b = to_canvas(v, n.x + n.w, n.y + n.h);
  return b.x >= -margin && a.x <= w + margin && b.y >= -margin && a.y <= h + margin;
}

Point EdgeCurve::at(float t) const {
  const float u = 1 - t;
  const float a = u * u * u, b = 3 * u * u * t, c = 3 * u * t * t, d = t * t * t;
  return {a * p1.x + b * p2.x + c * p3.x + d * p4.x, a * p1.y + b * p2.y + c * p3.y + d * p4.y};
}

EdgeCurve edge_curve(const Layout& layout, const LayoutEdge& e, const CanvasView& v) {
  const LayoutNode& a = layout.nodes[static_cast<size_t>(e.from_index)];
  const LayoutNode& b = layout.nodes[static_cast<size_t>(e.to_index)];
  EdgeCurve c;
  if (e.back_edge || b.x <= a.x) {
    c.p1 = to_canvas(v, a.x + a.w / 2, a.y + a.h);
    c.p4 = to_canvas(v, b.x + b.w / 2, b.y + b.h);
    const float drop = (40 + 0.15f * std::fabs(a.x - b.x)) * v.zoom;
    c.p2 = {c.p1.x, c.p1.y + drop};
    c.p3 = {c.p4.x, c.p4.y + drop};
  } else {
    c.p1 = to_canvas(v, a.x + a.w, a.y + a.h / 2);
    c.p4 = to_canvas(v, b.x, b.y + b.h / 2);
    const float dx = (c.p4.x - c.p1.x) * 0.5f;
    c.p2 = {c.p1.x + dx, c.p1.y};
    c.p3 = {c.p4.x - dx, c.p4.y};
  }
  return c;
}

bool curve_visible(const EdgeCurve& c, float w, float h, float margin) {
  const float x0 = std::min({c.p1.x, c.p2.x, c.p3.x, c.p4.x}), x1 = std::max({c.p1.x, c.p2.x, c.p3.x, c.p4.x});
  const float y0 = std::min({c.p1.y, c.p2.y, c.p3.y, c.p4.y}), y1 = std::max({c.p1.y, c.p2.y, c.p3.y, c.p4.y});
  return x1 >= -margin && x0 <= w + margin && y1 >= -margin && y0 <= h + margin;
}

int curve_segments(const EdgeCurve& c, float pixels_per_segment, int min_segments, int max_segments) {
  auto dist = [](const Point& a, const Point& b) { return std::hypot(b.x - a.x, b.y - a.y); };
  const float len = dist(c.p1, c.p2) + dist(c.p2, c.p3) + dist(c.p3, c.p4);
  const float n = std::ceil(len / std::max(1.0f, pixels_per_segment));
  if (!(n >= static_cast<float>(min_segments))) return min_segments;  // also NaN
  return std::min(max_segments, static_cast<int>(n));
}

DetailLevel detail_for_zoom(float zoom) {
  DetailLevel d;
  d.node_text = zoom >= kNodeTextMinZoom;
  d.edge_labels = zoom >= kEdgeLabelMinZoom;
  return d;
}

float DetailLevel::edge_thickness(float layout_thickness, float zoom) const {
  // Whole pixels: ImGui draws anti-aliased lines of integer width from its font texture with two
  // triangles per segment, fractional widths with six.
  const float t = std::round(layout_thickness * zoom);
  return std::isfinite(t) ? std::clamp(t, 1.0f, 32.0f) : 1.0f;
}

}  // namespace orderflow::monitor
