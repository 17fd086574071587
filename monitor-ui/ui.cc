#include "ui.h"

#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <optional>
#include <vector>

namespace orderflow::monitor {
namespace {

ImU32 health_fill(Health h) {
  switch (h) {
    case Health::kGreen: return IM_COL32(38, 120, 60, 255);
    case Health::kYellow: return IM_COL32(170, 140, 20, 255);
    case Health::kRed: return IM_COL32(170, 45, 45, 255);
    case Health::kIdle: break;
  }
  return IM_COL32(70, 72, 80, 255);
}

ImVec2 screen(const ImVec2& origin, const Point& p) { return ImVec2(origin.x + p.x, origin.y + p.y); }

// Draws one edge unless its curve's bounding box is off the canvas (w x h at origin).
void draw_edge(ImDrawList* dl, const ImVec2& origin, float w, float h, const CanvasView& v, const DetailLevel& lod,
               const Layout& L, const LayoutEdge& e) {
  const EdgeCurve c = edge_curve(L, e, v);
  const float thick = lod.edge_thickness(e.thickness, v.zoom);
  if (!curve_visible(c, w, h, 12 * v.zoom + thick + 40)) return;  // arrow head and label included
  const ImU32 col = e.back_edge ? IM_COL32(150, 150, 200, 200) : IM_COL32(190, 190, 200, 220);
  const int segments = curve_segments(c);
  const ImVec2 p1 = screen(origin, c.p1), p4 = screen(origin, c.p4);
  if (e.store_mediated) {
    // Dashes: every other of 2 * segments pieces, each a single quad.
    const int pieces = 2 * segments;
    for (int i = 0; i < pieces; i += 2) {
      const ImVec2 s0 = screen(origin, c.at(static_cast<float>(i) / static_cast<float>(pieces)));
      const ImVec2 s1 = screen(origin, c.at(static_cast<float>(i + 1) / static_cast<float>(pieces)));
      dl->AddLine(s0, s1, col, thick);
    }
  } else {
    dl->AddBezierCubic(p1, screen(origin, c.p2), screen(origin, c.p3), p4, col, thick, segments);
  }
  // Arrow head at the target.
  const ImVec2 q = screen(origin, c.at(0.96f));
  ImVec2 dir(p4.x - q.x, p4.y - q.y);
  const float len = std::sqrt(dir.x * dir.x + dir.y * dir.y);
  if (len > 0.01f) {
    dir = ImVec2(dir.x / len, dir.y / len);
    const float s = 7 * v.zoom + thick;
    const ImVec2 left(p4.x - dir.x * s - dir.y * s * 0.5f, p4.y - dir.y * s + dir.x * s * 0.5f);
    const ImVec2 right(p4.x - dir.x * s + dir.y * s * 0.5f, p4.y - dir.y * s - dir.x * s * 0.5f);
    dl->AddTriangleFilled(p4, left, right, col);
  }
  if (!lod.edge_labels) return;
  // Label at the middle of the curve.
  const ImVec2 m = screen(origin, c.at(0.5f));
  const float fs = ImGui::GetFontSize() * std::clamp(v.zoom, 0.6f, 1.4f);
  const ImVec2 ts = ImGui::GetFont()->CalcTextSizeA(fs, 1e9f, 0, e.label.c_str());
  const ImVec2 tl(m.x - ts.x / 2, m.y - ts.y - 2);
  dl->AddRectFilled(ImVec2(tl.x - 2, tl.y - 1), ImVec2(tl.x + ts.x + 2, tl.y + ts.y + 1),
                    IM_COL32(25, 25, 30, 200));
  dl->AddText(ImGui::GetFont(), fs, tl, IM_COL32(230, 230, 235, 255), e.label.c_str());
}

void draw_node(ImDrawList* dl, const ImVec2& origin, const CanvasView& v, const DetailLevel& lod, const LayoutNode& n,
               bool selected) {
  const ImVec2 a = screen(origin, to_canvas(v, n.x, n.y));
  const ImVec2 b = screen(origin, to_canvas(v, n.x + n.w, n.y + n.h));
  // Square corners: rounded ones cost a software rasterizer many thin anti-aliased triangles
  // per box (about an eighth of a 50-node frame at 100 % zoom).
  dl->AddRectFilled(a, b, health_fill(n.health));
  dl->AddRect(a, b, selected ? IM_COL32(255, 255, 255, 255) : IM_COL32(20, 20, 25, 255), 0, 0,
              selected ? 3.0f : 1.0f);
  // The default font is a 13 px bitmap: below ~0.8 it is unreadable, so text does not shrink
  // further and is clipped to the box instead.
  if (!lod.node_text) return;
  const float fs = ImGui::GetFontSize() * std::max(v.zoom, 0.8f);
  // Glyphs are clipped to the box on the CPU (AddText's fine clip rectangle) rather than with a
  // pushed clip rectangle: that would start a new draw command per node, and each draw call has a
  // fixed cost in a software rasterizer.
  const ImVec4 clip(a.x, a.y, b.x, b.y);
  float y = a.y + 3 * v.zoom;
  const float x = a.x + 5 * v.zoom;
  dl->AddText(ImGui::GetFont(), fs, ImVec2(x, y), IM_COL32(255, 255, 255, 255), n.label.c_str(), nullptr, 0, &clip);
  y += fs * 1.15f;
  for (const std::string& line : n.lines) {
    if (y + fs * 0.8f > b.y) break;
    dl->AddText(ImGui::GetFont(), fs, ImVec2(x, y), IM_COL32(225, 225, 230, 255), line.c_str(), nullptr, 0, &clip);
    y += fs * 1.05f;
  }
}

void record_window_rect(const char* name, UiState& ui) {
  const ImVec2 pos = ImGui::GetWindowPos(), size = ImGui::GetWindowSize();
  ui.window_rects.push_back({name, pos.x, pos.y, pos.x + size.x, pos.y + size.y});
}

// ImGui::Begin for a main panel. With ui.solid_fill installed (main.cc), ImGui draws no
// background: main.cc clears the whole framebuffer to the panels' background colour first, and
// only a panel that overlaps another window (this frame or the last; the user dragged it)
// repaints its rectangle, as a SolidFill placed first in its draw list, under the title bar,
// borders and scrollbars ImGui has already drawn inside Begin.
bool begin_panel(const char* name, UiState& ui, bool* p_open = nullptr) {
  if (!ui.solid_fill) return ImGui::Begin(name, p_open);
  const bool open = ImGui::Begin(name, p_open, ImGuiWindowFlags_NoBackground);
  record_window_rect(name, ui);
  const WindowRect me = ui.window_rects.back();
  if (!overlaps_other_window(me, ui.window_rects) && !overlaps_other_window(me, ui.window_rects_prev)) return open;
  ImDrawList* dl = ImGui::GetWindowDrawList();
  ImVec4 bg = ImGui::GetStyleColorVec4(ImGuiCol_WindowBg);
  bg.w = 1;
  ui.fills.push_back({me.x0, me.y0, me.x1, me.y1, ImGui::ColorConvertFloat4ToU32(bg)});
  ImDrawCmd cmd;  // zeroed by its constructor: no vertices, no indices
  const ImVec2 clip_min = dl->GetClipRectMin(), clip_max = dl->GetClipRectMax();
  cmd.ClipRect = ImVec4(clip_min.x, clip_min.y, clip_max.x, clip_max.y);
  cmd.TextureId = ImGui::GetIO().Fonts->TexID;
  cmd.UserCallback = ui.solid_fill;
  cmd.UserCallbackData = &ui.fills.back();
  dl->CmdBuffer.push_front(cmd);
  return open;
}

const NodeMetrics* selected_metrics(const Snapshot& s, const UiState& ui) {
  if (ui.selected.empty() || !s.has_metrics) return nullptr;
  return s.metrics.find(ui.selected);
}

double table_p99(const Snapshot& s, const LayoutNode& n) {
  const NodeMetrics* m = s.metrics.find(n.id);
  return m ? m->latency_us.p99 : 0.0;
}

const ImVec4 kParkedText(1.0f, 0.74f, 0.30f, 1.0f);  // amber: parked commands
constexpr ImU32 kParkedRowBg = IM_COL32(80, 55, 10, 255);
const ImVec4 kDeadText(1.0f, 0.52f, 0.46f, 1.0f);    // dead letters
const ImVec4 kOkText(0.55f, 0.90f, 0.55f, 1.0f);
const ImVec4 kWarnText(1.0f, 0.80f, 0.30f, 1.0f);

// The toolbar's "Dead letters" toggle, with the counts (the summary of the admin views).
void draw_dead_letter_button(const Snapshot& s, UiState& ui) {
  const DeadLetterCounts& c = s.dead_letter_total;
  std::string label = "Dead letters";
  if (s.admin_servers > 0) label += ": " + format_dead_letter_counts(c);
  label += "###dead-letters";
  const bool alarm = c.total() > 0;
  if (alarm)
    ImGui::PushStyleColor(ImGuiCol_Button, c.parked > 0 ? IM_COL32(130, 90, 15, 255) : IM_COL32(130, 40, 40, 255));
  if (ImGui::SmallButton(label.c_str())) ui.show_dead_letters = !ui.show_dead_letters;
  const ImVec2 a = ImGui::GetItemRectMin(), b = ImGui::GetItemRectMax();
  ui.dead_letters_toggle = {label.substr(0, label.find("###")), a.x, a.y, b.x, b.y};
  if (alarm) ImGui::PopStyleColor();
}

// "2026-12-02 03:20:14" (UTC) of a Kafka timestamp in ms, "?" when unknown.
std::string format_timestamp_ms(const std::optional<double>& ms) {
  if (!ms || *ms <= 0) return "?";
  const std::time_t t = static_cast<std::time_t>(*ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

void record_button(const ReplayRequest& r, UiState& ui) {
  const ImVec2 a = ImGui::GetItemRectMin(), b = ImGui::GetItemRectMax();
  ui.replay_buttons.push_back({r, WindowRect{r.describe(), a.x, a.y, b.x, b.y}});
}

// A replay of this row (or, for all, of any row of the source) is on its way: no second one.
bool replay_pending(const ServerState& st, const std::string& node, bool all, int partition, std::int64_t offset) {
  for (const ReplayOutcome& r : st.replays)
    if (r.state == ReplayOutcome::State::kPending && r.request.node == node &&
        (all || r.request.all || (r.request.partition == partition && r.request.offset == offset)))
      return true;
  return false;
}

void draw_outcome(const ReplayOutcome& r) {
  const std::string text = r.summary() + "  (" + format_clock(r.at) + ")";
  switch (r.state) {
    case ReplayOutcome::State::kPending: ImGui::TextDisabled("%s", text.c_str()); break;
    case ReplayOutcome::State::kDone:
      ImGui::TextColored(!r.answer.failed.empty()    ? kDeadText
                         : !r.answer.refused.empty() ? kWarnText
                                                     : kOkText,
                         "%s", text.c_str());
      break;
    case ReplayOutcome::State::kFailed: ImGui::TextColored(kDeadText, "%s", text.c_str()); break;
  }
}

void draw_dead_letter_rows(const ServerState& st, size_t server, const DeadLetterSource& src, UiState& ui) {
  const ImGuiTableFlags flags = ImGuiTableFlags_Borders | ImGuiTableFlags_Resizable | ImGuiTableFlags_SizingStretchProp;
  if (!ImGui::BeginTable("rows", 9, flags)) return;
  ImGui::TableSetupColumn("Kind", ImGuiTableColumnFlags_WidthFixed, 78);
  ImGui::TableSetupColumn("DLQ p:offset", ImGuiTableColumnFlags_WidthFixed, 84);
  ImGui::TableSetupColumn("Dead-lettered (UTC)", ImGuiTableColumnFlags_WidthFixed, 138);
  ImGui::TableSetupColumn("Source topic p:offset", ImGuiTableColumnFlags_WidthStretch, 1.2f);
  ImGui::TableSetupColumn("Key", ImGuiTableColumnFlags_WidthStretch, 0.7f);
  ImGui::TableSetupColumn("Size", ImGuiTableColumnFlags_WidthFixed, 60);
  ImGui::TableSetupColumn("Truncated", ImGuiTableColumnFlags_WidthFixed, 86);
  ImGui::TableSetupColumn("Reason", ImGuiTableColumnFlags_WidthStretch, 2.5f);
  ImGui::TableSetupColumn("Replay", ImGuiTableColumnFlags_WidthStretch, 1.0f);
  ImGui::TableHeadersRow();
  ImGuiListClipper clipper;
  clipper.Begin(static_cast<int>(src.dead_letters.size()));
  while (clipper.Step()) {
    for (int row = clipper.DisplayStart; row < clipper.DisplayEnd; ++row) {
      const DeadLetter& d = src.dead_letters[static_cast<size_t>(row)];
      ImGui::PushID(row);
      ImGui::TableNextRow();
      if (d.parked()) ImGui::TableSetBgColor(ImGuiTableBgTarget_RowBg0, kParkedRowBg);  // a few rows only
      ImGui::TableSetColumnIndex(0);
      if (d.parked())
        ImGui::TextColored(kParkedText, "parked");
      else if (d.kind == "dead_letter")
        ImGui::TextColored(kDeadText, "dead letter");
      else
        ImGui::TextUnformatted(escape_text(d.kind, 40).c_str());
      ImGui::TableSetColumnIndex(1);
      ImGui::Text("%d:%lld", d.partition, static_cast<long long>(d.offset));
      ImGui::TableSetColumnIndex(2);
      ImGui::TextUnformatted(format_timestamp_ms(d.timestamp_ms).c_str());
      ImGui::TableSetColumnIndex(3);
      if (d.has_source)
        ImGui::Text("%s %d:%lld", escape_text(d.source_topic, 120).c_str(), d.source_partition,
                    static_cast<long long>(d.source_offset));
      else
        ImGui::TextDisabled("unknown");
      ImGui::TableSetColumnIndex(4);
      if (d.key)
        ImGui::TextUnformatted(escape_text(*d.key, 120).c_str());
      else
        ImGui::TextDisabled("(none)");
      ImGui::TableSetColumnIndex(5);
      ImGui::TextUnformatted(format_count(static_cast<double>(d.size)).c_str());
      ImGui::TableSetColumnIndex(6);
      if (d.truncated)
        ImGui::TextColored(kWarnText, "of %s", format_count(static_cast<double>(d.original_size)).c_str());
      else
        ImGui::TextDisabled("no");
      if (d.headers_dropped > 0) {
        ImGui::SameLine();
        ImGui::TextColored(kWarnText, "-%llu hdr", static_cast<unsigned long long>(d.headers_dropped));
      }
      ImGui::TableSetColumnIndex(7);
      const std::string reason = escape_text(d.reason);
      ImGui::TextUnformatted(reason.c_str());
      if (ImGui::IsItemHovered() && reason.size() > 60) ImGui::SetTooltip("%s", reason.c_str());
      ImGui::TableSetColumnIndex(8);
      if (!d.replayable) {
        ImGui::TextDisabled("no: %s", escape_text(d.not_replayable_because, 200).c_str());
      } else if (replay_pending(st, src.node, false, d.partition, d.offset)) {
        ImGui::TextDisabled("replaying...");
      } else {
        const ReplayRequest r{server, src.node, false, d.partition, d.offset};
        if (ImGui::SmallButton("Replay")) ui.replay_requests.push_back(r);
        record_button(r, ui);
      }
      ImGui::PopID();
    }
  }
  ImGui::EndTable();
}

// Subscribers of the change feeds, per server that lists them (GET /api/v1/admin/subscribers).
bool parked_replay_pending(const ServerState& st, const std::string& command_id) {
  for (const ReplayOutcome& r : st.replays)
    if (r.state == ReplayOutcome::State::kPending && r.request.parked &&
        (command_id.empty() || r.request.all || r.request.command_id == command_id))
      return true;
  return false;
}

// The commands a server's saga parked, with Replay (one) and Replay all buttons.
void draw_parked_commands(const ServerState& st, size_t server, UiState& ui) {
  const AdminView& v = st.parked_view;
  if (v.status == AdminStatus::kFailed)
    ImGui::TextColored(kWarnText, "  listing parked commands failed%s: %s", st.parked ? " (the last list is shown)" : "",
                       escape_text(v.error).c_str());
  if (!st.parked || st.parked->parked.empty()) return;
  const auto& rows = st.parked->parked;
  ImGui::PushID("parked");
  ImGui::TextColored(kParkedText, "  %zu command%s parked by the saga", rows.size(), rows.size() == 1 ? "" : "s");
  ImGui::SameLine();
  const bool pending_all = parked_replay_pending(st, "");
  ImGui::BeginDisabled(pending_all);
  ReplayRequest all{server, rows.front().node, true, 0, 0};
  all.parked = true;
  if (ImGui::SmallButton("Replay all parked")) ui.replay_requests.push_back(all);
  if (!pending_all) record_button(all, ui);
  ImGui::EndDisabled();
  const ImGuiTableFlags flags = ImGuiTableFlags_Borders | ImGuiTableFlags_Resizable | ImGuiTableFlags_SizingStretchProp;
  if (ImGui::BeginTable("parked_rows", 8, flags)) {
    for (const char* c : {"Node", "Command", "Command id", "Stream", "Reacting to", "Attempts", "Reason"})
      ImGui::TableSetupColumn(c);
    ImGui::TableSetupColumn("Replay", ImGuiTableColumnFlags_WidthFixed, 64);
    ImGui::TableHeadersRow();
    for (const ParkedCommand& p : rows) {
      ImGui::PushID(p.command_id.c_str());
      ImGui::TableNextRow();
      ImGui::TableSetBgColor(ImGuiTableBgTarget_RowBg0, IM_COL32(90, 60, 10, 160));
      ImGui::TableSetColumnIndex(0);
      ImGui::TextUnformatted(escape_text(p.node, 60).c_str());
      ImGui::TableSetColumnIndex(1);
      ImGui::TextUnformatted(escape_text(p.command, 60).c_str());
      ImGui::TableSetColumnIndex(2);
      ImGui::TextUnformatted(escape_text(p.command_id, 120).c_str());
      ImGui::TableSetColumnIndex(3);
      ImGui::TextUnformatted(escape_text(p.stream, 80).c_str());
      ImGui::TableSetColumnIndex(4);
      ImGui::Text("%s v%lld", escape_text(p.event_stream, 80).c_str(), static_cast<long long>(p.event_version));
      ImGui::TableSetColumnIndex(5);
      ImGui::Text("%lld", static_cast<long long>(p.attempts));
      ImGui::TableSetColumnIndex(6);
      ImGui::TextUnformatted(escape_text(p.reason).c_str());
      if (ImGui::TableSetColumnIndex(7)) {
        const bool pending = parked_replay_pending(st, p.command_id);
        ImGui::BeginDisabled(pending);
        ReplayRequest one{server, p.node, false, 0, 0};
        one.parked = true;
        one.command_id = p.command_id;
        if (ImGui::SmallButton(pending ? "..." : "Replay")) ui.replay_requests.push_back(one);
        if (!pending) record_button(one, ui);
        ImGui::EndDisabled();
      }
      ImGui::PopID();
    }
    ImGui::EndTable();
  }
  ImGui::PopID();
}

void draw_subscribers(const Snapshot& s) {
  bool any = false;
  for (const ServerState& st : s.servers) any = any || (st.subscribers && !st.subscribers->empty());
  if (!any || !ImGui::CollapsingHeader("Subscribers", ImGuiTreeNodeFlags_DefaultOpen)) return;
  for (size_t i = 0; i < s.servers.size(); ++i) {
    const ServerState& st = s.servers[i];
    if (!st.subscribers || st.subscribers->empty() || (i < s.duplicate_of.size() && s.duplicate_of[i] >= 0)) continue;
    ImGui::PushID(static_cast<int>(i));
    ImGui::TextDisabled("%s", st.label().c_str());
    if (ImGui::BeginTable("subscribers", 6, ImGuiTableFlags_Borders | ImGuiTableFlags_SizingStretchProp)) {
      for (const char* c : {"Feed", "Subscriber", "Kind", "Checkpoint", "Head", "Behind"}) ImGui::TableSetupColumn(c);
      ImGui::TableHeadersRow();
      for (const SubscriberInfo& sb : *st.subscribers) {
        ImGui::TableNextRow();
        ImGui::TableSetColumnIndex(0);
        ImGui::TextUnformatted(escape_text(sb.feed, 80).c_str());
        ImGui::TableSetColumnIndex(1);
        ImGui::TextUnformatted(escape_text(sb.subscriber, 80).c_str());
        ImGui::TableSetColumnIndex(2);
        ImGui::TextUnformatted(escape_text(sb.kind, 40).c_str());
        ImGui::TableSetColumnIndex(3);
        ImGui::Text("%.0f", sb.checkpoint);
        ImGui::TableSetColumnIndex(4);
        ImGui::Text("%.0f", sb.head);
        ImGui::TableSetColumnIndex(5);
        if (sb.behind > 0)
          ImGui::TextColored(kWarnText, "%.0f", sb.behind);
        else
          ImGui::Text("0");
      }
      ImGui::EndTable();
    }
    ImGui::PopID();
  }
}

}  // namespace

void draw_dead_letters(const Snapshot& s, UiState& ui) {
  ImGui::Text("%s", s.admin_servers > 0 ? format_dead_letter_counts(s.dead_letter_total).c_str()
                                        : "no server lists dead letters");
  if (s.servers.size() > 1 && s.admin_servers > 1) {
    ImGui::SameLine();
    ImGui::TextDisabled("(each DLQ message once over instances; rows per instance below)");
  }
  for (size_t i = 0; i < s.servers.size(); ++i) {
    const ServerState& st = s.servers[i];
    ImGui::PushID(static_cast<int>(i));
    ImGui::Separator();
    const std::string who = st.label() == st.url ? st.url : st.label() + " at " + st.url;
    const int dup = i < s.duplicate_of.size() ? s.duplicate_of[i] : -1;
    const AdminView& v = st.dead_letters_view;
    if (dup >= 0) {
      ImGui::TextDisabled("%s: same instance as %s", who.c_str(), s.servers[static_cast<size_t>(dup)].url.c_str());
    } else if (!st.reachable) {
      ImGui::TextDisabled("%s: %s", who.c_str(), st.unauthorized ? "unauthorized" : "unreachable");
    } else if (v.status == AdminStatus::kNotPolled) {
      ImGui::TextDisabled("%s: dead letters not listed yet", who.c_str());
    } else if (v.status == AdminStatus::kNoAdminApi) {
      ImGui::TextDisabled("%s: no admin API", who.c_str());  // an older server: nothing is wrong
    } else if (v.status == AdminStatus::kUnauthorized) {
      ImGui::TextColored(kWarnText, "%s: not authorized to list dead letters", who.c_str());
      ImGui::TextDisabled("  %s", v.error.c_str());
    } else {
      ImGui::Text("%s", who.c_str());
      if (v.status == AdminStatus::kFailed)
        ImGui::TextColored(kWarnText, "  listing failed%s: %s", st.dead_letters ? " (the last list is shown)" : "",
                           escape_text(v.error).c_str());
      if (st.dead_letters && st.dead_letters->sources.empty()) ImGui::TextDisabled("  no kafka_source on this server");
    }
    const bool show_rows = dup < 0 && st.reachable && st.dead_letters;
    for (size_t k = 0; show_rows && k < st.dead_letters->sources.size(); ++k) {
      const DeadLetterSource& src = st.dead_letters->sources[k];
      ImGui::PushID(src.node.c_str());
      const size_t dead = src.count(false), parked = src.count(true);
      ImGui::Text("  %s", src.node.c_str());
      ImGui::SameLine();
      ImGui::TextDisabled("(%s)", src.topic.c_str());
      ImGui::SameLine();
      if (dead > 0) {
        ImGui::TextColored(kDeadText, "%zu%s dead letter%s", dead, src.more ? "+" : "", dead == 1 ? "" : "s");
        ImGui::SameLine();
      }
      if (parked > 0) {
        ImGui::TextColored(kParkedText, "%zu%s parked", parked, src.more ? "+" : "");
        ImGui::SameLine();
      }
      if (dead + parked == 0) {
        ImGui::TextDisabled("empty");
        ImGui::SameLine();
      }
      const bool any_replayable = std::any_of(src.dead_letters.begin(), src.dead_letters.end(),
                                              [](const DeadLetter& d) { return d.replayable; });
      const bool pending_all = replay_pending(st, src.node, true, 0, 0);
      ImGui::BeginDisabled(!any_replayable || pending_all);
      const ReplayRequest all{i, src.node, true, 0, 0};
      if (ImGui::SmallButton("Replay all")) ui.replay_requests.push_back(all);
      if (any_replayable && !pending_all) record_button(all, ui);
      ImGui::EndDisabled();
      if (src.more) ImGui::TextDisabled("  the server listed only the first %zu", src.dead_letters.size());
      for (auto it = st.replays.rbegin(); it != st.replays.rend(); ++it)
        if (it->request.node == src.node) draw_outcome(*it);
      if (!src.dead_letters.empty()) draw_dead_letter_rows(st, i, src, ui);
      ImGui::PopID();
    }
    if (dup < 0 && st.reachable) draw_parked_commands(st, i, ui);
    // Replays of a source no longer listed (or asked for before the list came), and of parked commands.
    for (auto it = st.replays.rbegin(); it != st.replays.rend(); ++it) {
      const bool listed = show_rows && std::any_of(st.dead_letters->sources.begin(), st.dead_letters->sources.end(),
                                                   [&](const DeadLetterSource& src) { return src.node == it->request.node; });
      if (!listed) draw_outcome(*it);
    }
    ImGui::PopID();
  }
  draw_subscribers(s);
}

std::vector<size_t> table_order(const Snapshot& s, const UiState& ui) {
  const Layout& L = s.layout;
  std::vector<size_t> order(L.nodes.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto less = [&](size_t ia, size_t ib) {
    const LayoutNode& a = L.nodes[ia];
    const LayoutNode& b = L.nodes[ib];
    switch (ui.sort_column) {
      case 1: return a.kind < b.kind;
      case 2: return a.rate_in < b.rate_in;
      case 3: return a.rate_out < b.rate_out;
      case 4: return a.busy_share < b.busy_share;
      case 5: return a.queue_depth < b.queue_depth;
      case 6: return a.lag_events < b.lag_events;
      case 7: return a.lag_seconds < b.lag_seconds;
      case 8: return a.errors < b.errors;
      case 9: return a.client_errors < b.client_errors;
      case 10: return table_p99(s, a) < table_p99(s, b);
      default: return a.id < b.id;
    }
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return ui.sort_descending ? less(b, a) : less(a, b);
  });
  return order;
}

bool overlaps_other_window(const WindowRect& r, const std::vector<WindowRect>& others) {
  for (const WindowRect& o : others)
    if (o.name != r.name && r.x0 < o.x1 && o.x0 < r.x1 && r.y0 < o.y1 && o.y0 < r.y1) return true;
  return false;
}

void handle_shortcuts(const Snapshot&, UiState& ui) {
  if (ui.help_key_pressed) ui.show_help = !ui.show_help;
  ui.help_key_pressed = false;
  if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Escape), false)) {
    if (ui.show_help)
      ui.show_help = false;
    else
      ui.selected.clear();
  }
}

void draw_banner(const Snapshot& s, UiState&) {
  if (!s.banners.empty()) {
    const ImGuiStyle& style = ImGui::GetStyle();
    const float h = static_cast<float>(s.banners.size()) * ImGui::GetTextLineHeightWithSpacing() +
                    2 * style.WindowPadding.y;
    ImGui::PushStyleColor(ImGuiCol_ChildBg, IM_COL32(110, 25, 25, 255));
    ImGui::PushStyleColor(ImGuiCol_Text, IM_COL32(255, 225, 220, 255));
    ImGui::BeginChild("unreachable", ImVec2(0, h), false, ImGuiWindowFlags_NoScrollbar);
    for (const std::string& line : s.banners) ImGui::TextUnformatted(line.c_str());
    ImGui::EndChild();
    ImGui::PopStyleColor(2);
  }
  bool any_reachable = false;
  for (const ServerState& st : s.servers) any_reachable = any_reachable || st.reachable;
  if (!any_reachable && s.banners.empty()) ImGui::TextDisabled("Connecting...");
}

void draw_summary(const Snapshot& s, UiState&) {
  if (!s.has_metrics) {
    ImGui::TextDisabled("No metrics yet.");
    return;
  }
  const Totals& t = s.totals;
  ImGui::Text("graph %s  |  uptime %.0f s  |  commands %s  |  events %s  |  errors %llu  |  4xx %llu",
              s.topology.name.c_str(), t.uptime_seconds, format_rate(t.commands_per_second).c_str(),
              format_rate(t.events_per_second).c_str(), static_cast<unsigned long long>(t.errors),
              static_cast<unsigned long long>(t.client_errors));
  const bool has_totals = !t.domain_totals.empty();
  if (has_totals) {
    // The domain's running totals, e.g. "orders confirmed 40, orders rejected 7".
    std::string line = "| ";
    for (size_t i = 0; i < t.domain_totals.size(); ++i) {
      std::string name = t.domain_totals[i].first;
      std::replace(name.begin(), name.end(), '_', ' ');
      char value[32];
      std::snprintf(value, sizeof value, " %.0f", t.domain_totals[i].second);
      line += (i ? ", " : " ") + name + value;
    }
    ImGui::SameLine();
    ImGui::TextUnformatted(line.c_str());
  }
  if (!t.bottleneck.empty()) {
    if (!has_totals) ImGui::SameLine();  // with the domain's totals the first line is full
    ImGui::TextColored(ImVec4(1.0f, 0.8f, 0.3f, 1.0f), "%sbottleneck: %s (busy %.0f%%)",
                       has_totals ? "" : "|  ", t.bottleneck.c_str(), t.bottleneck_busy_share * 100);
  }
  if (s.servers.size() > 1) {
    int up = 0;
    for (const ServerState& st : s.servers) up += st.reachable ? 1 : 0;
    ImGui::Text("%d of %zu URLs reachable; rates and counts summed over instances, lag and checkpoints the "
                "maximum, latency histograms merged",
                up, s.servers.size());
    for (size_t i = 0; i < s.servers.size() && i < s.server_totals.size(); ++i) {
      const ServerState& st = s.servers[i];
      const std::string who = st.instance_id().empty() ? st.url + " (no instance id)" : st.label() + " at " + st.url;
      const int dup = i < s.duplicate_of.size() ? s.duplicate_of[i] : -1;
      if (dup >= 0)
        ImGui::TextDisabled("  %s: same instance as %s, not counted twice", who.c_str(),
                            s.servers[static_cast<size_t>(dup)].url.c_str());
      else if (st.reachable && st.has_metrics)
        ImGui::TextDisabled("  %s: commands %s, events %s", who.c_str(),
                            format_rate(s.server_totals[i].commands_per_second).c_str(),
                            format_rate(s.server_totals[i].events_per_second).c_str());
      else
        ImGui::TextDisabled("  %s: %s", who.c_str(), st.unauthorized ? "unauthorized" : "unreachable");
    }
  }
}

void draw_canvas(const Snapshot& s, UiState& ui) {
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 origin = ImGui::GetCursorScreenPos();
  ImVec2 size = ImGui::GetContentRegionAvail();
  size.x = std::max(size.x, 50.0f);
  size.y = std::max(size.y, 50.0f);
  const ImVec2 end(origin.x + size.x, origin.y + size.y);
  ui.canvas_x = origin.x;
  ui.canvas_y = origin.y;
  ui.canvas_w = size.x;
  ui.canvas_h = size.y;
  ImGui::InvisibleButton("canvas", size,
                         ImGuiButtonFlags_MouseButtonLeft | ImGuiButtonFlags_MouseButtonRight |
                             ImGuiButtonFlags_MouseButtonMiddle);
  const bool hovered = ImGui::IsItemHovered();
  const bool active = ImGui::IsItemActive();
  const Layout& L = s.layout;
  if (ui.fit_pending && !L.nodes.empty()) {
    ui.view = fit_view(L, size.x, size.y, ui.view);
    ui.fit_pending = false;
  }
  ImGuiIO& io = ImGui::GetIO();
  if (active && (ImGui::IsMouseDragging(ImGuiMouseButton_Left, 2) ||
                 ImGui::IsMouseDragging(ImGuiMouseButton_Right, 2) ||
                 ImGui::IsMouseDragging(ImGuiMouseButton_Middle, 2)))
    ui.view = pan_by(ui.view, io.MouseDelta.x, io.MouseDelta.y);
  const float mx = io.MousePos.x - origin.x, my = io.MousePos.y - origin.y;
  if (hovered && io.MouseWheel != 0) ui.view = zoom_at(ui.view, io.MouseWheel, mx, my);
  if (hovered && ImGui::IsMouseDoubleClicked(ImGuiMouseButton_Left)) ui.fit_pending = true;

  if (hovered && ImGui::IsMouseReleased(ImGuiMouseButton_Left) &&
      ImGui::GetMouseDragDelta(ImGuiMouseButton_Left).x == 0 &&
      ImGui::GetMouseDragDelta(ImGuiMouseButton_Left).y == 0) {
    const int hit = hit_test(L, ui.view, mx, my);
    ui.selected = hit >= 0 ? L.nodes[static_cast<size_t>(hit)].id : std::string();
  }
  const CanvasView& v = ui.view;

  dl->PushClipRect(origin, end, true);
  // No fill of its own (a panel-sized shaded rectangle is what llvmpipe pays most for): the
  // canvas is the panel's background, framed.
  dl->AddRect(origin, end, IM_COL32(60, 62, 70, 255));
  // No background grid: its canvas-long lines cost llvmpipe about a third of a 50-node frame.
  if (L.nodes.empty()) {
    dl->AddText(ImVec2(origin.x + 12, origin.y + 12), IM_COL32(160, 160, 170, 255),
                s.has_topology ? "(empty graph)" : "Waiting for /api/v1/graph ...");
  }
  // Off-canvas nodes and edges are skipped before they become vertices (the clip rectangle
  // alone would still tessellate and submit them).
  const DetailLevel lod = detail_for_zoom(v.zoom);
  for (const LayoutEdge& e : L.edges) draw_edge(dl, origin, size.x, size.y, v, lod, L, e);
  for (const LayoutNode& n : L.nodes)
    if (node_visible(n, v, size.x, size.y)) draw_node(dl, origin, v, lod, n, n.id == ui.selected);
  dl->PopClipRect();
}

void draw_table(const Snapshot& s, UiState& ui) {
  const Layout& L = s.layout;
  // No ImGuiTableFlags_RowBg: alternating row fills cost a software rasterizer a fifth of a
  // screen of shaded pixels per frame; the horizontal borders separate the rows.
  const ImGuiTableFlags flags = ImGuiTableFlags_Sortable | ImGuiTableFlags_Borders |
                                ImGuiTableFlags_Resizable | ImGuiTableFlags_ScrollY |
                                ImGuiTableFlags_SizingStretchProp;
  if (!ImGui::BeginTable("nodes", 11, flags)) return;
  ImGui::TableSetupScrollFreeze(0, 1);
  ImGui::TableSetupColumn("Node", ImGuiTableColumnFlags_DefaultSort);
  ImGui::TableSetupColumn("Kind");
  ImGui::TableSetupColumn("In/s");
  ImGui::TableSetupColumn("Out/s");
  ImGui::TableSetupColumn("Busy %");
  ImGui::TableSetupColumn("Queue depth");
  ImGui::TableSetupColumn("Lag ev");
  ImGui::TableSetupColumn("Lag s");
  ImGui::TableSetupColumn("Errors");
  ImGui::TableSetupColumn("4xx");
  ImGui::TableSetupColumn("p99 us");
  ImGui::TableHeadersRow();
  if (ImGuiTableSortSpecs* specs = ImGui::TableGetSortSpecs()) {
    if (specs->SpecsDirty && specs->SpecsCount > 0) {
      ui.sort_column = specs->Specs[0].ColumnIndex;
      ui.sort_descending = specs->Specs[0].SortDirection == ImGuiSortDirection_Descending;
    }
    specs->SpecsDirty = false;
  }
  std::vector<size_t> order = table_order(s, ui);
  ImGuiListClipper clipper;
  clipper.Begin(static_cast<int>(order.size()));
  while (clipper.Step()) {
    for (int row = clipper.DisplayStart; row < clipper.DisplayEnd; ++row) {
      const LayoutNode& n = L.nodes[order[static_cast<size_t>(row)]];
      ImGui::TableNextRow();
      ImGui::TableSetColumnIndex(0);
      if (ImGui::Selectable(n.id.c_str(), n.id == ui.selected, ImGuiSelectableFlags_SpanAllColumns))
        ui.selected = n.id;
      ImGui::TableSetColumnIndex(1);
      ImGui::TextUnformatted(n.kind.c_str());
      ImGui::TableSetColumnIndex(2);
      ImGui::Text("%.1f", n.rate_in);
      ImGui::TableSetColumnIndex(3);
      ImGui::Text("%.1f", n.rate_out);
      ImGui::TableSetColumnIndex(4);
      if (n.busy_measured)
        ImGui::Text("%.1f", n.busy_share * 100);
      else
        ImGui::TextDisabled("n/m");
      ImGui::TableSetColumnIndex(5);
      ImGui::Text("%.0f", n.queue_depth);
      ImGui::TableSetColumnIndex(6);
      if (n.has_lag) ImGui::TextUnformatted(format_count(n.lag_events).c_str());
      ImGui::TableSetColumnIndex(7);
      if (n.has_lag) ImGui::Text("%.2f", n.lag_seconds);
      ImGui::TableSetColumnIndex(8);
      ImGui::Text("%llu", static_cast<unsigned long long>(n.errors));
      ImGui::TableSetColumnIndex(9);
      ImGui::Text(n.client_errors_exact || n.client_errors == 0 ? "%llu" : "~%llu",
                  static_cast<unsigned long long>(n.client_errors));
      ImGui::TableSetColumnIndex(10);
      ImGui::Text("%.0f", table_p99(s, n));
    }
  }
  ImGui::EndTable();
}

void draw_details(const Snapshot& s, UiState& ui) {
  if (ui.selected.empty()) {
    ImGui::TextDisabled("Click a node (canvas or table) for details.");
    return;
  }
  const NodeMetrics* m = selected_metrics(s, ui);
  ImGui::Text("%s", ui.selected.c_str());
  if (!m) {
    ImGui::TextDisabled("No metrics for this node.");
    return;
  }
  ImGui::TextDisabled("%s", m->kind.c_str());
  ImGui::Separator();
  ImGui::Text("rate in %s, out %s", format_rate(m->rate_in).c_str(), format_rate(m->rate_out).c_str());
  if (m->busy_measured())
    ImGui::Text("busy %.1f%%   queue depth %.0f", m->busy_share * 100, m->queue_depth);
  else
    ImGui::Text("busy not measured (no busy time reported)   queue depth %.0f", m->queue_depth);
  ImGui::Text("node errors %llu   client errors (4xx) %s%llu", static_cast<unsigned long long>(m->node_errors()),
              m->client_errors_exact || m->client_errors == 0 ? "" : "~",
              static_cast<unsigned long long>(m->client_errors));
  if (!m->client_errors_exact && m->client_errors > 0)
    ImGui::TextDisabled("4xx attributed from lastError between polls (the server counts them as errors)");
  ImGui::Text("in %llu   out %llu", static_cast<unsigned long long>(m->in),
              static_cast<unsigned long long>(m->out));
  ImGui::Separator();
  ImGui::Text("latency (us, %.0f samples)", m->latency_us.count);
  if (s.servers.size() > 1 && !m->latency_us.exact) ImGui::TextDisabled("percentiles: %s", kLatencyMergeNote);
  ImGui::Text("p50 %.0f   p99 %.0f", m->latency_us.p50, m->latency_us.p99);
  ImGui::Text("p999 %.0f   max %.0f", m->latency_us.p999, m->latency_us.max);
  if (m->has_lag()) {
    ImGui::Separator();
    if (const auto ls = m->lag_seconds())
      ImGui::Text("lag: %.0f events, %.3f s", m->lag_events(), *ls);
    else
      ImGui::Text("lag: %.0f messages", m->lag_events());
    if (s.servers.size() > 1) ImGui::TextDisabled("maximum over instances");
  }
  bool other_gauges = false;
  for (const auto& [k, val] : m->gauges) {
    if (k == "lag_events" || k == "lag_seconds" || k == "consumer_lag") continue;
    if (!other_gauges) ImGui::Separator();
    other_gauges = true;
    ImGui::Text("%s: %.6g%s", k.c_str(), val,
                s.servers.size() > 1 && merge_rule(m->kind, k) == MergeRule::kMax ? " (max)" : "");
  }
  if (auto it = s.dead_letter_counts.find(ui.selected); it != s.dead_letter_counts.end()) {
    ImGui::Separator();
    ImGui::TextColored(it->second.parked > 0 ? kParkedText : it->second.total() > 0 ? kDeadText : kOkText, "%s",
                       format_dead_letter_counts(it->second).c_str());
    ImGui::SameLine();
    if (ImGui::SmallButton(ui.show_dead_letters ? "Node table" : "Show")) ui.show_dead_letters = !ui.show_dead_letters;
  }
  if (!m->last_error.empty()) {
    ImGui::Separator();
    ImGui::TextColored(ImVec4(1, 0.45f, 0.4f, 1), "last error:");
    ImGui::TextWrapped("%s", m->last_error.c_str());
  }
  ImGui::Separator();
  ImGui::Text("last 5 minutes");
  const float w = ImGui::GetContentRegionAvail().x;
  for (size_t i = 0; i < s.servers.size(); ++i) {
    const ServerState& st = s.servers[i];
    if (i < s.duplicate_of.size() && s.duplicate_of[i] >= 0) continue;  // its twin's lines are drawn
    const std::deque<Sample>* samples = st.history_of(ui.selected);
    if (!samples || samples->empty()) continue;
    std::vector<float> rate, queue;
    rate.reserve(samples->size());
    queue.reserve(samples->size());
    for (const Sample& sm : *samples) {
      rate.push_back(static_cast<float>(sm.rate));
      queue.push_back(static_cast<float>(sm.queue_depth));
    }
    if (s.servers.size() > 1) ImGui::TextDisabled("%s", st.label().c_str());
    ImGui::PushID(st.url.c_str());
    char overlay[64];
    std::snprintf(overlay, sizeof overlay, "rate %.0f/s", static_cast<double>(rate.back()));
    ImGui::PlotLines("##rate", rate.data(), static_cast<int>(rate.size()), 0, overlay, 0.0f, FLT_MAX,
                     ImVec2(w, 50));
    std::snprintf(overlay, sizeof overlay, "queue %.0f", static_cast<double>(queue.back()));
    ImGui::PlotLines("##queue", queue.data(), static_cast<int>(queue.size()), 0, overlay, 0.0f, FLT_MAX,
                     ImVec2(w, 50));
    ImGui::PopID();
  }
  if (s.servers.size() > 1) {
    ImGui::Separator();
    ImGui::Text("per instance");
    for (size_t i = 0; i < s.servers.size(); ++i) {
      const ServerState& st = s.servers[i];
      const NodeMetrics* pm = st.has_metrics ? st.metrics.find(ui.selected) : nullptr;
      if (i < s.duplicate_of.size() && s.duplicate_of[i] >= 0) {
        ImGui::TextDisabled("%s: same instance as %s", st.url.c_str(),
                            s.servers[static_cast<size_t>(s.duplicate_of[i])].url.c_str());
        continue;
      }
      if (!st.reachable || !pm) {
        ImGui::TextDisabled("%s: %s", st.label().c_str(),
                            st.reachable       ? "no metrics for this node"
                            : st.unauthorized ? "unauthorized"
                                              : "unreachable");
        continue;
      }
      std::string text = st.label() + ": " + format_rate(pm->rate());
      char buf[96];
      std::snprintf(buf, sizeof buf, ", busy %.0f%%, q %.0f, err %llu, 4xx %llu", pm->busy_share * 100, pm->queue_depth,
                    static_cast<unsigned long long>(pm->node_errors()),
                    static_cast<unsigned long long>(pm->client_errors));
      text += buf;
      if (pm->has_lag()) text += ", " + format_lag(pm->lag_events(), pm->lag_seconds());
      if (const auto cp = pm->gauge("checkpoint")) {
        std::snprintf(buf, sizeof buf, ", checkpoint %.0f", *cp);
        text += buf;
      }
      ImGui::TextWrapped("%s", text.c_str());
    }
  }
}

void draw_thresholds(const Snapshot&, UiState& ui) {
  if (!ImGui::CollapsingHeader("Lag thresholds")) return;
  HealthThresholds& t = ui.thresholds;
  ImGui::PushItemWidth(90);
  ImGui::InputDouble("warn s", &t.lag_seconds_yellow, 0, 0, "%.2f");
  ImGui::InputDouble("bad s", &t.lag_seconds_red, 0, 0, "%.2f");
  ImGui::InputDouble("warn events", &t.lag_events_yellow, 0, 0, "%.0f");
  ImGui::InputDouble("bad events", &t.lag_events_red, 0, 0, "%.0f");
  ImGui::PopItemWidth();
  t.lag_seconds_yellow = std::max(0.0, t.lag_seconds_yellow);
  t.lag_seconds_red = std::max(t.lag_seconds_yellow, t.lag_seconds_red);
  t.lag_events_yellow = std::max(0.0, t.lag_events_yellow);
  t.lag_events_red = std::max(t.lag_events_yellow, t.lag_events_red);
  ImGui::TextDisabled("seconds where a node reports them, else events");
}

void draw_help(const Snapshot&, UiState& ui) {
  if (!ui.show_help) return;
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  ImGui::SetNextWindowPos(ImVec2(vp->WorkPos.x + vp->WorkSize.x / 2, vp->WorkPos.y + vp->WorkSize.y / 2),
                          ImGuiCond_Always, ImVec2(0.5f, 0.5f));
  ImGui::SetNextWindowBgAlpha(0.92f);
  if (ImGui::Begin("Help", &ui.show_help,
                   ImGuiWindowFlags_AlwaysAutoResize | ImGuiWindowFlags_NoCollapse |
                       ImGuiWindowFlags_NoSavedSettings)) {
    ImGui::Text("orderflow-monitor shortcuts");
    ImGui::Separator();
    ImGui::BulletText("F1: show / hide this help");
    ImGui::BulletText("Esc: close this help, else clear the selection");
    ImGui::BulletText("Click a node: details panel");
    ImGui::BulletText("Drag (any button): pan; mouse wheel: zoom");
    ImGui::BulletText("Double-click the canvas: fit the graph");
    ImGui::BulletText("Click a table header: sort");
    ImGui::Separator();
    ImGui::TextDisabled("Window layout is remembered in imgui.ini.");
  }
  record_window_rect("Help", ui);
  ImGui::End();
}

void draw_frame(const Snapshot& s, UiState& ui) {
  ui.fills.clear();  // the previous frame has been rendered
  ui.window_rects_prev.swap(ui.window_rects);
  ui.window_rects.clear();
  ui.replay_buttons.clear();
  handle_shortcuts(s, ui);
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  const ImVec2 p = vp->WorkPos, sz = vp->WorkSize;
  const float details_w = std::min(330.0f, sz.x * 0.3f);
  const float table_h = std::min(260.0f, sz.y * 0.34f);

  ImGui::SetNextWindowPos(p, ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowSize(ImVec2(sz.x - details_w, sz.y - table_h), ImGuiCond_FirstUseEver);
  if (begin_panel("Graph", ui)) {
    draw_banner(s, ui);
    draw_summary(s, ui);
    if (ImGui::SmallButton("Fit")) ui.fit_pending = true;
    ImGui::SameLine();
    draw_dead_letter_button(s, ui);
    ImGui::SameLine();
    ImGui::TextDisabled("zoom %.0f%%   F1 help", ui.view.zoom * 100);
    draw_canvas(s, ui);
  }
  ImGui::End();

  ImGui::SetNextWindowPos(ImVec2(p.x + sz.x - details_w, p.y), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowSize(ImVec2(details_w, sz.y - table_h), ImGuiCond_FirstUseEver);
  if (begin_panel("Details", ui)) {
    draw_details(s, ui);
    ImGui::Separator();
    draw_thresholds(s, ui);
  }
  ImGui::End();

  // The bottom strip: the node table, or the dead letters in its place (so neither pays for the
  // other's pixels, see "Frame time" in README.md).
  ImGui::SetNextWindowPos(ImVec2(p.x, p.y + sz.y - table_h), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowSize(ImVec2(sz.x, table_h), ImGuiCond_FirstUseEver);
  if (ui.show_dead_letters) {
    if (begin_panel("Dead letters", ui, &ui.show_dead_letters)) draw_dead_letters(s, ui);
  } else if (begin_panel("Nodes", ui)) {
    draw_table(s, ui);
  }
  ImGui::End();

  draw_help(s, ui);
}

}  // namespace orderflow::monitor
