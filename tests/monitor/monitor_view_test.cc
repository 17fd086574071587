// Unit tests of the canvas view (monitor-ui/view.h): pan, zoom about the cursor, fit,
// hit-testing, and the culling and tessellation decisions the canvas makes before drawing.
#include <gtest/gtest.h>

#include <cmath>

#include "layout.h"
#include "view.h"

namespace orderflow::monitor {
namespace {

// src -> a -> b -> sink, b -> a (a back edge), src -> sink.
Layout chain_layout() {
  Topology t;
  t.name = "chain";
  t.nodes = {{"src", "source", "", "none", "command", true, {}},
             {"a", "stage", "", "command", "command", false, {}},
             {"b", "stage", "", "command", "command", false, {}},
             {"sink", "stage", "", "command", "none", false, {}}};
  t.edges = {{"src", "a", "command", false},
             {"a", "b", "command", true},
             {"b", "sink", "command", false},
             {"b", "a", "command", false},
             {"src", "sink", "command", false}};
  return compute_layout(t, nullptr);
}

const LayoutNode& node(const Layout& L, const std::string& id) { return L.nodes[static_cast<size_t>(L.find(id))]; }

TEST(MonitorView, PanMovesEveryNodeByTheDragDelta) {
  const Layout L = chain_layout();
  const CanvasView v{10, 20, 1.5f};
  const CanvasView p = pan_by(v, 33, -7);
  EXPECT_FLOAT_EQ(p.zoom, v.zoom);
  for (const LayoutNode& n : L.nodes) {
    const Point before = to_canvas(v, n.x, n.y), after = to_canvas(p, n.x, n.y);
    EXPECT_FLOAT_EQ(after.x - before.x, 33) << n.id;
    EXPECT_FLOAT_EQ(after.y - before.y, -7) << n.id;
  }
  // What was under the cursor before the drag is under the dragged cursor after it.
  const LayoutNode& b = node(L, "b");
  const Point centre = to_canvas(v, b.x + b.w / 2, b.y + b.h / 2);
  EXPECT_EQ(hit_test(L, p, centre.x + 33, centre.y - 7), L.find("b"));
  EXPECT_NE(hit_test(L, p, centre.x + 33 + b.w * 2, centre.y - 7), L.find("b"));
}

TEST(MonitorView, ZoomKeepsTheLayoutPointUnderTheCursor) {
  const CanvasView v{-40, 15, 0.8f};
  for (float wheel : {1.0f, -1.0f, 3.0f, -2.5f}) {
    const float cx = 321, cy = 123;
    const Point before = to_layout(v, cx, cy);
    const CanvasView z = zoom_at(v, wheel, cx, cy);
    const Point after = to_layout(z, cx, cy);
    EXPECT_NEAR(after.x, before.x, 1e-3) << wheel;
    EXPECT_NEAR(after.y, before.y, 1e-3) << wheel;
    EXPECT_NEAR(z.zoom, v.zoom * std::pow(kWheelStep, wheel), 1e-5) << wheel;
  }
  EXPECT_GT(zoom_at(v, 1, 0, 0).zoom, v.zoom) << "wheel up zooms in";
  EXPECT_LT(zoom_at(v, -1, 0, 0).zoom, v.zoom) << "wheel down zooms out";
}

TEST(MonitorView, ZoomInThenOutAtTheSamePointRestoresTheView) {
  const CanvasView v{12, -30, 1.3f};
  const CanvasView back = zoom_at(zoom_at(v, 1, 200, 150), -1, 200, 150);
  EXPECT_NEAR(back.zoom, v.zoom, 1e-5);
  EXPECT_NEAR(back.pan_x, v.pan_x, 1e-3);
  EXPECT_NEAR(back.pan_y, v.pan_y, 1e-3);
}

TEST(MonitorView, ZoomIsClampedAndStillAnchoredAtTheLimits) {
  CanvasView v{0, 0, 1};
  for (int i = 0; i < 100; ++i) v = zoom_at(v, 1, 50, 60);
  EXPECT_FLOAT_EQ(v.zoom, kMaxZoom);
  const Point at_max = to_layout(v, 50, 60);
  v = zoom_at(v, 1, 50, 60);  // one more notch at the limit: nothing moves
  EXPECT_FLOAT_EQ(v.zoom, kMaxZoom);
  EXPECT_NEAR(to_layout(v, 50, 60).x, at_max.x, 1e-3);
  EXPECT_NEAR(to_layout(v, 50, 60).y, at_max.y, 1e-3);
  for (int i = 0; i < 100; ++i) v = zoom_at(v, -1, 50, 60);
  EXPECT_FLOAT_EQ(v.zoom, kMinZoom);
  EXPECT_NEAR(to_layout(v, 50, 60).x, at_max.x, 1e-2) << "the anchor held all the way out";
}

TEST(MonitorView, FitCentresTheLayoutWithinTheCanvas) {
  const Layout L = chain_layout();
  const float w = 900, h = 500;
  const CanvasView v = fit_view(L, w, h, CanvasView{});
  const Point tl = to_canvas(v, 0, 0), br = to_canvas(v, L.width, L.height);
  EXPECT_GE(tl.x, -1e-3);
  EXPECT_GE(tl.y, -1e-3);
  EXPECT_LE(br.x, w + 1e-3);
  EXPECT_LE(br.y, h + 1e-3);
  EXPECT_NEAR(tl.x + br.x, w, 1e-2) << "centred horizontally";
  EXPECT_NEAR(tl.y + br.y, h, 1e-2) << "centred vertically";
  // One dimension fills the canvas exactly (unless a zoom limit applies).
  EXPECT_TRUE(std::fabs(br.x - tl.x - w) < 1e-2 || std::fabs(br.y - tl.y - h) < 1e-2);
  for (const LayoutNode& n : L.nodes) EXPECT_TRUE(node_visible(n, v, w, h, 0)) << n.id;

  EXPECT_FLOAT_EQ(fit_view(L, 1e5f, 1e5f, {}).zoom, kMaxFitZoom) << "a small graph is not blown up";
  EXPECT_FLOAT_EQ(fit_view(L, 20, 20, {}).zoom, kMinFitZoom) << "nor shrunk to unreadable";
  const CanvasView keep{7, 8, 1.7f};
  const CanvasView same = fit_view(Layout{}, w, h, keep);
  EXPECT_FLOAT_EQ(same.pan_x, 7);
  EXPECT_FLOAT_EQ(same.zoom, 1.7f) << "nothing to fit";
  EXPECT_FLOAT_EQ(fit_view(L, 0, h, keep).zoom, 1.7f) << "no canvas yet";
}

TEST(MonitorView, HitTestFindsTheNodeUnderThePointAfterPanAndZoom) {
  const Layout L = chain_layout();
  CanvasView v = zoom_at(pan_by(CanvasView{}, 100, 50), 4, 10, 10);
  for (size_t i = 0; i < L.nodes.size(); ++i) {
    const LayoutNode& n = L.nodes[i];
    const Point c = to_canvas(v, n.x + n.w / 2, n.y + n.h / 2);
    EXPECT_EQ(hit_test(L, v, c.x, c.y), static_cast<int>(i)) << n.id;
    const Point inside = to_canvas(v, n.x + n.w - 0.05f, n.y + n.h - 0.05f);
    EXPECT_EQ(hit_test(L, v, inside.x, inside.y), static_cast<int>(i)) << n.id << ": just inside the corner";
    const Point outside = to_canvas(v, n.x + n.w + 0.05f, n.y + n.h / 2);
    EXPECT_NE(hit_test(L, v, outside.x, outside.y), static_cast<int>(i)) << n.id << ": just outside";
  }
  EXPECT_EQ(hit_test(L, v, -1e4f, -1e4f), -1);
  const Point gap = to_canvas(v, node(L, "src").x + node(L, "src").w + 1, node(L, "src").y);
  EXPECT_EQ(hit_test(L, v, gap.x, gap.y), -1) << "between columns";
}

TEST(MonitorView, OffCanvasNodesAndEdgesAreCulled) {
  const Layout L = chain_layout();
  const float w = 800, h = 400;
  CanvasView v = fit_view(L, w, h, {});
  for (const LayoutEdge& e : L.edges) EXPECT_TRUE(curve_visible(edge_curve(L, e, v), w, h, 0)) << e.from << e.to;
  // Pan so that only the first column remains on the canvas.
  const LayoutNode& src = node(L, "src");
  const LayoutNode& sink = node(L, "sink");
  v = pan_by(v, w - to_canvas(v, src.x + src.w, 0).x, 0);
  EXPECT_TRUE(node_visible(src, v, w, h, 0));
  EXPECT_FALSE(node_visible(sink, v, w, h, 0));
  const LayoutEdge* b_sink = nullptr;
  for (const LayoutEdge& e : L.edges)
    if (e.from == "b" && e.to == "sink") b_sink = &e;
  ASSERT_NE(b_sink, nullptr);
  EXPECT_FALSE(curve_visible(edge_curve(L, *b_sink, v), w, h, 10));
  // A node partly on the canvas counts as visible.
  v = pan_by(v, -src.w * v.zoom / 2, 0);
  EXPECT_TRUE(node_visible(src, v, w, h, 0));
}

TEST(MonitorView, EdgeCurvesRunForwardOrLoopUnderneath) {
  const Layout L = chain_layout();
  const CanvasView v{0, 0, 1};
  for (const LayoutEdge& e : L.edges) {
    const EdgeCurve c = edge_curve(L, e, v);
    const LayoutNode& a = L.nodes[static_cast<size_t>(e.from_index)];
    const LayoutNode& b = L.nodes[static_cast<size_t>(e.to_index)];
    if (e.back_edge) {
      EXPECT_FLOAT_EQ(c.p1.y, a.y + a.h) << "leaves the bottom";
      EXPECT_GT(c.p2.y, c.p1.y) << "dips below";
      EXPECT_FLOAT_EQ(c.p4.y, b.y + b.h);
    } else {
      EXPECT_FLOAT_EQ(c.p1.x, a.x + a.w) << e.from << "->" << e.to << " leaves the right side";
      EXPECT_FLOAT_EQ(c.p4.x, b.x) << "enters the left side";
    }
    const Point s = c.at(0), t = c.at(1);
    EXPECT_FLOAT_EQ(s.x, c.p1.x);
    EXPECT_FLOAT_EQ(t.y, c.p4.y);
  }
}

TEST(MonitorView, SegmentCountFollowsOnScreenLength) {
  const Layout L = chain_layout();
  const LayoutEdge* long_edge = nullptr;  // src -> sink spans three columns
  for (const LayoutEdge& e : L.edges)
    if (e.from == "src" && e.to == "sink") long_edge = &e;
  ASSERT_NE(long_edge, nullptr);
  const LayoutEdge& e = *long_edge;
  const int near = curve_segments(edge_curve(L, e, CanvasView{0, 0, 4}));
  const int mid = curve_segments(edge_curve(L, e, CanvasView{0, 0, 1}));
  const int far = curve_segments(edge_curve(L, e, CanvasView{0, 0, 0.2f}));
  EXPECT_GE(near, mid);
  EXPECT_GT(mid, far) << "zooming out drops vertices";
  EXPECT_EQ(far, 4) << "but never below the minimum";
  EXPECT_EQ(near, 24) << "nor above the maximum";
  EXPECT_EQ(curve_segments(EdgeCurve{{0, 0}, {50, 0}, {50, 0}, {100, 0}}, 10, 2, 100), 10);
  const float nan = std::nanf("");
  EXPECT_EQ(curve_segments(EdgeCurve{{nan, 0}, {0, 0}, {0, 0}, {0, 0}}), 4) << "NaN input stays bounded";
}

TEST(MonitorView, DetailLevelDropsUnreadableTextAndUsesWholePixelWidths) {
  const DetailLevel full = detail_for_zoom(1);
  EXPECT_TRUE(full.node_text);
  EXPECT_TRUE(full.edge_labels);
  const DetailLevel mid = detail_for_zoom(0.4f);
  EXPECT_TRUE(mid.node_text);
  EXPECT_FALSE(mid.edge_labels) << "labels would overlap";
  const DetailLevel far = detail_for_zoom(0.25f);
  EXPECT_FALSE(far.node_text);
  EXPECT_FALSE(far.edge_labels);
  // Edge widths are whole pixels, at least 1.
  EXPECT_FLOAT_EQ(full.edge_thickness(2.4f, 1), 2);
  EXPECT_FLOAT_EQ(full.edge_thickness(2.6f, 1), 3);
  EXPECT_FLOAT_EQ(full.edge_thickness(3, 0.2f), 1);
  EXPECT_FLOAT_EQ(full.edge_thickness(100, 4), 32);
  EXPECT_FLOAT_EQ(full.edge_thickness(std::nanf(""), 1), 1);
}

}  // namespace
}  // namespace orderflow::monitor
