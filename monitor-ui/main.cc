// orderflow-monitor: the only file that knows GLFW and OpenGL. Frame loop in the manner of
// Dear ImGui's example_glfw_opengl3; everything drawn comes from ui.h as a function of a Snapshot.
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_opengl3.h>
#include <imgui.h>

#include <GLFW/glfw3.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "layout.h"
#include "png.h"
#include "poller.h"
#include "ui.h"

namespace {

using namespace orderflow::monitor;

struct Options {
  std::vector<std::string> urls;
  std::string screenshot;
  std::string dump_layout;
  bool frame_stats = false;  // print frame-time percentiles at exit
  bool show_help = false;  // start with the help overlay open (screenshots of it)
  std::string select;  // node selected at start (details panel), e.g. for screenshots
  int frames = -1;  // -1: run until the window closes
  double warmup = 0;  // batch mode: keep rendering at least this many seconds (sparklines fill)
  int interval_ms = 1000;
  int width = 1280, height = 800;
  float zoom = 0;  // > 0: start at this zoom, graph's top-left corner at the canvas's, instead of fitting
  HealthThresholds thresholds;  // --lag-warn / --lag-bad (seconds)
  std::string token;    // from --token-file, else ORDERFLOW_MONITOR_TOKEN; "" = none
  std::string ca_file;  // --ca-file: trusted CAs for https:// URLs (with the system's)
  bool show_dead_letters = false;  // start with the "Dead letters" panel in the bottom strip
  int admin_interval_ms = 5000;    // dead-letter and subscriber polls
  // --replay-dead-letter NODE:PARTITION:OFFSET or NODE:all, for tests and scripts: asked for
  // through the same queue as the panel's buttons, once the list is known.
  std::optional<ReplayRequest> replay;
};

void usage(std::FILE* f) {
  std::fprintf(f,
               "usage: orderflow-monitor [URL ...] [--interval MS] [--size WxH] [--zoom Z] [--select NODE]\n"
               "                         [--show-help] [--frame-stats]\n"
               "                         [--warmup SECONDS] [--lag-warn SECONDS] [--lag-bad SECONDS]\n"
               "                         [--screenshot FILE.png] [--dump-layout FILE.json] [--frames N]\n"
               "                         [--token-file PATH] [--ca-file PEM]\n"
               "                         [--show-dead-letters] [--admin-interval MS]\n"
               "                         [--replay-dead-letter NODE:PARTITION:OFFSET|NODE:all]\n"
               "                         [--replay-parked COMMAND_ID|all]\n"
               "  URL defaults to http://127.0.0.1:8080; several URLs = instances of one graph.\n"
               "  --token-file PATH: its first line is the bearer token sent on every poll (else the\n"
               "  environment variable ORDERFLOW_MONITOR_TOKEN; the token is never a flag's value).\n"
               "  --ca-file PEM: also trust server certificates signed by these CAs (https:// URLs are\n"
               "  always verified, by default against the system's CAs).\n"
               "  --lag-warn/--lag-bad: lag that colours a node yellow/red (default 1 and 10 s).\n"
               "  --frames N renders N frames after the first poll of every server, then exits\n"
               "  (writing --screenshot and --dump-layout).\n"
               "  --admin-interval MS: how often dead letters and subscribers are listed (default 5000).\n"
               "  --replay-dead-letter: replay one dead letter (or all of a source) once listed, as the\n"
               "  panel's Replay button does (for tests and scripts; needs a token with the write role).\n"
               "  --replay-parked: the same for a command the saga parked (or all of them).\n");
}

// A whole-string number in [lo, hi], or a message naming the flag.
bool number_in(const char* flag, const char* text, double lo, double hi, double* out) {
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(v >= lo && v <= hi)) {
    std::fprintf(stderr, "%s needs a number in [%g, %g], got '%s'\n", flag, lo, hi, text);
    return false;
  }
  *out = v;
  return true;
}

// NODE:PARTITION:OFFSET or NODE:all (the node id may itself hold no ':').
std::optional<ReplayRequest> parse_replay_flag(const std::string& text) {
  const size_t c1 = text.find(':');
  if (c1 == 0 || c1 == std::string::npos) return std::nullopt;
  ReplayRequest r;
  r.node = text.substr(0, c1);
  const std::string rest = text.substr(c1 + 1);
  if (rest == "all") {
    r.all = true;
    return r;
  }
  long long partition = -1, offset = -1;
  char tail = 0;
  if (std::sscanf(rest.c_str(), "%lld:%lld%c", &partition, &offset, &tail) != 2 || partition < 0 || offset < 0 ||
      partition > 1000000)
    return std::nullopt;
  r.partition = static_cast<int>(partition);
  r.offset = offset;
  return r;
}

// The first server (not a second URL of one instance) whose dead-letter list has `node`; for
// a parked command, the first that lists it (or any parked command, for "all").
std::optional<size_t> server_listing(const std::vector<std::unique_ptr<Poller>>& pollers, const ReplayRequest& r) {
  for (size_t i = 0; i < pollers.size(); ++i) {
    const ServerState st = pollers[i]->state();
    if (r.parked) {
      if (!st.parked) continue;
      for (const ParkedCommand& p : st.parked->parked)
        if (r.all || p.command_id == r.command_id) return i;
      continue;
    }
    if (!st.dead_letters) continue;
    for (const DeadLetterSource& src : st.dead_letters->sources)
      if (src.node == r.node) return i;
  }
  return std::nullopt;
}

// Waits up to `limit` for `done`, polling GLFW events so the window stays responsive.
template <typename F>
bool wait_for(F&& done, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    glfwPollEvents();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// True for an http:// URL whose host is not loopback: a token sent there crosses the network
// in clear text.
bool plain_http_off_host(const std::string& url) {
  const std::string scheme = "http://";
  if (url.compare(0, scheme.size(), scheme) != 0) return false;
  std::string host = url.substr(scheme.size());
  host = host.substr(0, host.find_first_of("/?#"));
  if (const size_t at = host.rfind('@'); at != std::string::npos) host.erase(0, at + 1);
  host = host[0] == '[' ? host.substr(0, host.find(']') + 1) : host.substr(0, host.find(':'));
  return !(host == "localhost" || host.rfind("127.", 0) == 0 || host == "[::1]");
}

// The token and the CA file, checked before any window opens so a mistake exits 2 with the reason
// instead of showing up later as an unauthorized or unreachable banner.
bool resolve_access(const std::string& token_file, Options& o) {
  std::string error;
  if (!token_file.empty()) {
    const auto token = read_token_file(token_file, &error);
    if (!token) {
      std::fprintf(stderr, "--token-file: %s\n", error.c_str());
      return false;
    }
    o.token = *token;
  } else if (const char* env = std::getenv("ORDERFLOW_MONITOR_TOKEN"); env && *env) {
    if (!valid_token(env, &error)) {
      std::fprintf(stderr, "ORDERFLOW_MONITOR_TOKEN: %s\n", error.c_str());
      return false;
    }
    o.token = env;
  }
  if (!o.ca_file.empty()) {
    if (std::none_of(o.urls.begin(), o.urls.end(), [](const std::string& u) { return u.rfind("https://", 0) == 0; })) {
      std::fprintf(stderr, "--ca-file is for https:// URLs and none is given\n");
      return false;
    }
    error = check_ca_file(o.ca_file);
    if (!error.empty()) {
      std::fprintf(stderr, "--ca-file: %s\n", error.c_str());
      return false;
    }
  }
  if (!o.token.empty())
    for (const std::string& u : o.urls)
      if (plain_http_off_host(u))
        std::fprintf(stderr, "warning: the token goes to %s in clear text; use https://\n", u.c_str());
  return true;
}

bool parse_args(int argc, char** argv, Options& o) {
  std::string token_file;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", name);
        return nullptr;
      }
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      usage(stdout);
      std::exit(0);
    } else if (a == "--screenshot") {
      const char* v = next("--screenshot");
      if (!v) return false;
      o.screenshot = v;
    } else if (a == "--dump-layout") {
      const char* v = next("--dump-layout");
      if (!v) return false;
      o.dump_layout = v;
    } else if (a == "--token-file") {
      const char* v = next("--token-file");
      if (!v) return false;
      token_file = v;
    } else if (a == "--ca-file") {
      const char* v = next("--ca-file");
      if (!v) return false;
      o.ca_file = v;
    } else if (a == "--frame-stats") {
      o.frame_stats = true;
    } else if (a == "--show-help") {
      o.show_help = true;
    } else if (a == "--show-dead-letters") {
      o.show_dead_letters = true;
    } else if (a == "--admin-interval") {
      const char* v = next("--admin-interval");
      double d = 0;
      if (!v || !number_in("--admin-interval", v, 250, 3600000, &d)) return false;
      o.admin_interval_ms = static_cast<int>(d);
    } else if (a == "--replay-dead-letter") {
      const char* v = next("--replay-dead-letter");
      if (!v) return false;
      o.replay = parse_replay_flag(v);
      if (!o.replay) {
        std::fprintf(stderr, "--replay-dead-letter needs NODE:PARTITION:OFFSET or NODE:all, got '%s'\n", v);
        return false;
      }
    } else if (a == "--replay-parked") {
      const char* v = next("--replay-parked");
      if (!v) return false;
      if (*v == '\0') {
        std::fprintf(stderr, "--replay-parked needs a command id or all\n");
        return false;
      }
      ReplayRequest r;
      r.parked = true;
      r.all = std::string(v) == "all";
      if (!r.all) r.command_id = v;
      o.replay = r;
    } else if (a == "--select") {
      const char* v = next("--select");
      if (!v) return false;
      o.select = v;
    } else if (a == "--warmup") {
      const char* v = next("--warmup");
      double d = 0;
      if (!v || !number_in("--warmup", v, 0, 3600, &d)) return false;
      o.warmup = d;
    } else if (a == "--lag-warn" || a == "--lag-bad") {
      const char* v = next(a.c_str());
      double d = 0;
      if (!v || !number_in(a.c_str(), v, 0, 1e6, &d)) return false;
      (a == "--lag-warn" ? o.thresholds.lag_seconds_yellow : o.thresholds.lag_seconds_red) = d;
    } else if (a == "--frames") {
      const char* v = next("--frames");
      double d = 0;
      if (!v || !number_in("--frames", v, 1, 1e6, &d) || d != static_cast<int>(d)) {
        if (v && d != static_cast<int>(d)) std::fprintf(stderr, "--frames needs a whole number, got '%s'\n", v);
        return false;
      }
      o.frames = static_cast<int>(d);
    } else if (a == "--zoom") {
      const char* v = next("--zoom");
      if (!v) return false;
      o.zoom = static_cast<float>(std::atof(v));
      if (!(o.zoom >= kMinZoom && o.zoom <= kMaxZoom)) {
        std::fprintf(stderr, "--zoom needs a value in [%.2f, %.2f]\n", static_cast<double>(kMinZoom),
                     static_cast<double>(kMaxZoom));
        return false;
      }
    } else if (a == "--interval") {
      const char* v = next("--interval");
      double d = 0;
      if (!v || !number_in("--interval", v, 50, 3600000, &d)) return false;  // below 50 ms: polls pile up
      o.interval_ms = static_cast<int>(d);
    } else if (a == "--size") {
      const char* v = next("--size");
      if (!v) return false;
      char tail = 0;
      if (std::sscanf(v, "%dx%d%c", &o.width, &o.height, &tail) != 2 || o.width < 200 || o.height < 150 ||
          o.width > 16384 || o.height > 16384) {
        std::fprintf(stderr, "--size needs WIDTHxHEIGHT between 200x150 and 16384x16384, got '%s'\n", v);
        return false;
      }
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return false;
    } else {
      o.urls.push_back(a);
    }
  }
  if (o.urls.empty()) o.urls.push_back("http://127.0.0.1:8080");
  if ((!o.screenshot.empty() || !o.dump_layout.empty()) && o.frames < 0) o.frames = 3;
  if (o.thresholds.lag_seconds_red < o.thresholds.lag_seconds_yellow) {
    std::fprintf(stderr, "--lag-bad (%g s) must not be below --lag-warn (%g s)\n", o.thresholds.lag_seconds_red,
                 o.thresholds.lag_seconds_yellow);
    return false;
  }
  return resolve_access(token_file, o);
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Snapshot take_snapshot(const std::vector<std::unique_ptr<Poller>>& pollers, const HealthThresholds& thresholds) {
  std::vector<ServerState> states;
  states.reserve(pollers.size());
  for (const auto& p : pollers) states.push_back(p->state());
  return make_snapshot(std::move(states), unix_now(), thresholds);
}

bool save_screenshot(GLFWwindow* window, const std::string& path) {
  int w = 0, h = 0;
  glfwGetFramebufferSize(window, &w, &h);
  if (w <= 0 || h <= 0) return false;
  std::vector<unsigned char> pixels(static_cast<size_t>(w) * static_cast<size_t>(h) * 4);
  glPixelStorei(GL_PACK_ALIGNMENT, 1);
  glReadBuffer(GL_BACK);
  glReadPixels(0, 0, w, h, GL_RGBA, GL_UNSIGNED_BYTE, pixels.data());
  // OpenGL rows are bottom-up; PNG rows top-down.
  std::vector<unsigned char> flipped(pixels.size());
  const size_t stride = static_cast<size_t>(w) * 4;
  for (int y = 0; y < h; ++y)
    std::memcpy(&flipped[stride * static_cast<size_t>(y)], &pixels[stride * static_cast<size_t>(h - 1 - y)], stride);
  for (size_t i = 3; i < flipped.size(); i += 4) flipped[i] = 255;  // opaque
  return write_png(path, flipped.data(), w, h);
}

bool write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  return static_cast<bool>(f);
}

void glfw_error(int code, const char* description) {
  std::fprintf(stderr, "GLFW error %d: %s\n", code, description);
}

// ui.h's SolidFillCallback: fills the rectangle with a scissored glClear (Mesa draws it as a
// quad with a plain colour shader: no texture fetch, no blending). Only panels that overlap
// another window use it. Runs inside ImGui_ImplOpenGL3_RenderDrawData, whose next draw command
// sets its own scissor box again.
void clear_solid_fill(const ImDrawList*, const ImDrawCmd* cmd) {
  const auto* f = static_cast<const SolidFill*>(cmd->UserCallbackData);
  const ImDrawData* dd = ImGui::GetDrawData();
  const float x0 = std::max(f->x0, cmd->ClipRect.x), y0 = std::max(f->y0, cmd->ClipRect.y);
  const float x1 = std::min(f->x1, cmd->ClipRect.z), y1 = std::min(f->y1, cmd->ClipRect.w);
  if (!dd || x1 <= x0 || y1 <= y0) return;
  const ImVec2 off = dd->DisplayPos, scale = dd->FramebufferScale;
  const float fb_h = dd->DisplaySize.y * scale.y;
  const auto px = [](float v) { return static_cast<GLint>(std::lround(v)); };
  const GLint sx0 = px((x0 - off.x) * scale.x), sx1 = px((x1 - off.x) * scale.x);
  const GLint sy0 = px(fb_h - (y1 - off.y) * scale.y), sy1 = px(fb_h - (y0 - off.y) * scale.y);
  glScissor(sx0, sy0, sx1 - sx0, sy1 - sy0);
  const ImVec4 c = ImGui::ColorConvertU32ToFloat4(f->color);
  glClearColor(c.x, c.y, c.z, 1.0f);
  glClear(GL_COLOR_BUFFER_BIT);
}

// --frame-stats: per-frame wall times (ImGui CPU work; + GL render to glFinish; + buffer swap)
// and the process's CPU time per frame (all threads, llvmpipe's included), after kSkip frames of
// warm-up (shader compilation, font upload).
class FrameStats {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  void add(TimePoint start, TimePoint ui_done, TimePoint render_done, TimePoint swapped) {
    if (++seen_ <= kSkip) {
      if (seen_ == kSkip) cpu0_ = cpu_seconds();
      return;
    }
    auto ms = [](TimePoint a, TimePoint b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
    ui_.push_back(ms(start, ui_done));
    render_.push_back(ms(start, render_done));
    frame_.push_back(ms(start, swapped));
  }
  void print(size_t nodes, int width, int height) {
    if (frame_.empty()) {
      std::printf("frames 0 (fewer than %d rendered)\n", kSkip + 1);
      return;
    }
    const double cpu_ms = (cpu_seconds() - cpu0_) * 1000 / static_cast<double>(frame_.size());
    for (auto* v : {&ui_, &render_, &frame_}) std::sort(v->begin(), v->end());
    auto pct = [](const std::vector<double>& v, double q) {
      return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
    };
    std::printf("frames %zu nodes %zu size %dx%d frame_ms p50 %.2f p99 %.2f max %.2f render_ms p50 %.2f p99 %.2f "
                "ui_ms p50 %.2f p99 %.2f cpu_ms_per_frame %.2f\n",
                frame_.size(), nodes, width, height, pct(frame_, 0.5), pct(frame_, 0.99), frame_.back(),
                pct(render_, 0.5), pct(render_, 0.99), pct(ui_, 0.5), pct(ui_, 0.99), cpu_ms);
  }

 private:
  static constexpr int kSkip = 10;
  static double cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  }
  int seen_ = 0;
  double cpu0_ = 0;
  std::vector<double> ui_, render_, frame_;
};

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!parse_args(argc, argv, opt)) {
    usage(stderr);
    return 2;
  }
  const bool batch = opt.frames >= 0;

  glfwSetErrorCallback(glfw_error);
  if (!glfwInit()) return 1;
  const char* glsl_version = "#version 130";
  glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 0);
  GLFWwindow* window = glfwCreateWindow(opt.width, opt.height, "orderflow-monitor", nullptr, nullptr);
  if (!window) {
    glfwTerminate();
    return 1;
  }
  glfwMakeContextCurrent(window);
  glfwSwapInterval(batch ? 0 : 1);

  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGuiIO& io = ImGui::GetIO();
  if (batch) io.IniFilename = nullptr;  // deterministic screenshots: ignore the saved layout
  ImGui::StyleColorsDark();
  ImGui_ImplGlfw_InitForOpenGL(window, true);
  ImGui_ImplOpenGL3_Init(glsl_version);
  PollerOptions popt;
  popt.interval = std::chrono::milliseconds(opt.interval_ms);
  popt.token = opt.token;
  popt.ca_file = opt.ca_file;
  popt.admin_interval = std::chrono::milliseconds(opt.admin_interval_ms);
  std::vector<std::unique_ptr<Poller>> pollers;
  for (const std::string& url : opt.urls) {
    pollers.push_back(std::make_unique<Poller>(url, popt));
    pollers.back()->start();
  }

  if (batch || opt.replay) {
    // Wait (bounded) for every server's first poll, so the frames show real figures, then for
    // the dead-letter list of every reachable one (its own thread, started by that first poll).
    wait_for(
        [&] {
          for (const auto& p : pollers)
            if (p->attempts() == 0) return false;
          return true;
        },
        std::chrono::seconds(10));
    wait_for(
        [&] {
          for (const auto& p : pollers)
            if (p->admin_attempts() == 0 && p->state().reachable) return false;
          return true;
        },
        std::chrono::seconds(10));
  }
  if (opt.replay) {
    // The same path as the panel's button: the request goes to a server that lists the node.
    const std::optional<size_t> server = server_listing(pollers, *opt.replay);
    if (!server) {
      if (opt.replay->parked)
        std::fprintf(stderr, "--replay-parked: no server lists parked command '%s'\n",
                     opt.replay->all ? "(any)" : opt.replay->command_id.c_str());
      else
        std::fprintf(stderr, "--replay-dead-letter: no server lists dead letters of '%s'\n", opt.replay->node.c_str());
    } else {
      Poller& p = *pollers[*server];
      const int finished = p.replays_finished(), listed = p.admin_attempts();
      opt.replay->server = *server;
      if (opt.replay->parked) {  // the node that parked it, as the panel's button sends it
        const ServerState st = p.state();
        for (const ParkedCommand& pc : st.parked->parked)
          if (opt.replay->all || pc.command_id == opt.replay->command_id) {
            opt.replay->node = pc.node;
            break;
          }
      }
      p.request_replay(*opt.replay);
      // Its answer, and the list polled again after it.
      if (!wait_for([&] { return p.replays_finished() > finished && p.admin_attempts() > listed; },
                    std::chrono::seconds(30)))
        std::fprintf(stderr, "--replay-dead-letter: no answer within 30 s\n");
    }
  }

  UiState ui;
  ui.solid_fill = clear_solid_fill;
  ui.selected = opt.select;
  ui.show_help = opt.show_help;
  ui.show_dead_letters = opt.show_dead_letters;
  ui.thresholds = opt.thresholds;
  if (opt.zoom > 0) {
    ui.view.zoom = opt.zoom;
    ui.fit_pending = false;
  }
  bool f1_was_down = false;
  int frame = 0;
  const auto loop_start = std::chrono::steady_clock::now();
  int rc = 0;
  Snapshot snap;
  FrameStats stats;
  while (!glfwWindowShouldClose(window)) {
    const auto frame_start = std::chrono::steady_clock::now();
    glfwPollEvents();
    const bool f1_down = glfwGetKey(window, GLFW_KEY_F1) == GLFW_PRESS;
    if (f1_down && !f1_was_down) ui.help_key_pressed = true;
    f1_was_down = f1_down;

    snap = take_snapshot(pollers, ui.thresholds);

    ImGui_ImplOpenGL3_NewFrame();
    ImGui_ImplGlfw_NewFrame();
    ImGui::NewFrame();
    draw_frame(snap, ui);
    ImGui::Render();
    for (ReplayRequest& r : ui.replay_requests)  // the panel's buttons; queued, never waited for
      if (r.server < pollers.size()) pollers[r.server]->request_replay(std::move(r));
    ui.replay_requests.clear();
    const auto ui_done = std::chrono::steady_clock::now();

    int display_w = 0, display_h = 0;
    glfwGetFramebufferSize(window, &display_w, &display_h);
    glViewport(0, 0, display_w, display_h);
    const ImVec4 bg = ImGui::GetStyleColorVec4(ImGuiCol_WindowBg);  // where no panel covers
    glClearColor(bg.x, bg.y, bg.z, 1.0f);
    glClear(GL_COLOR_BUFFER_BIT);
    ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
    if (opt.frame_stats) glFinish();  // count the GPU (llvmpipe) work too, not only the command submission
    const auto render_done = std::chrono::steady_clock::now();

    ++frame;
    const bool warm = std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_start).count() >= opt.warmup;
    const bool last = batch && warm && frame >= std::max(1, opt.frames);
    if (last && !opt.screenshot.empty() && !save_screenshot(window, opt.screenshot)) {
      std::fprintf(stderr, "could not write %s\n", opt.screenshot.c_str());
      rc = 1;
    }
    glfwSwapBuffers(window);
    if (opt.frame_stats) stats.add(frame_start, ui_done, render_done, std::chrono::steady_clock::now());
    if (last) break;
    if (batch && !warm) std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }

  if (!opt.dump_layout.empty() && !write_text(opt.dump_layout, dump_layout_json(snap))) {
    std::fprintf(stderr, "could not write %s\n", opt.dump_layout.c_str());
    rc = 1;
  }

  if (opt.frame_stats) stats.print(snap.layout.nodes.size(), opt.width, opt.height);
  for (auto& p : pollers) p->stop();
  ImGui_ImplOpenGL3_Shutdown();
  ImGui_ImplGlfw_Shutdown();
  ImGui::DestroyContext();
  glfwDestroyWindow(window);
  glfwTerminate();
  return rc;
}
