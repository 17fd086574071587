// orderflow-monitor: the only file that knows GLFW and OpenGL. Frame loop in the manner of
// Dear ImGui's example_glfw_opengl3; everything drawn comes from ui.h as a function of a Snapshot.
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_opengl3.h>
#include <imgui.h>

#include <GLFW/glfw3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
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
};

void usage(std::FILE* f) {
  std::fprintf(f,
               "usage: orderflow-monitor [URL ...] [--interval MS] [--size WxH] [--select NODE] [--show-help]\n"
               "                         [--frame-stats]\n"
               "                         [--warmup SECONDS]\n"
               "                         [--screenshot FILE.png] [--dump-layout FILE.json] [--frames N]\n"
               "  URL defaults to http://127.0.0.1:8080; several URLs = instances of one graph.\n"
               "  --frames N renders N frames after the first poll of every server, then exits\n"
               "  (writing --screenshot and --dump-layout).\n");
}

bool parse_args(int argc, char** argv, Options& o) {
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
    } else if (a == "--frame-stats") {
      o.frame_stats = true;
    } else if (a == "--show-help") {
      o.show_help = true;
    } else if (a == "--select") {
      const char* v = next("--select");
      if (!v) return false;
      o.select = v;
    } else if (a == "--warmup") {
      const char* v = next("--warmup");
      if (!v) return false;
      o.warmup = std::atof(v);
    } else if (a == "--frames") {
      const char* v = next("--frames");
      if (!v) return false;
      o.frames = std::atoi(v);
    } else if (a == "--interval") {
      const char* v = next("--interval");
      if (!v) return false;
      o.interval_ms = std::max(50, std::atoi(v));
    } else if (a == "--size") {
      const char* v = next("--size");
      if (!v || std::sscanf(v, "%dx%d", &o.width, &o.height) != 2) return false;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return false;
    } else {
      o.urls.push_back(a);
    }
  }
  if (o.urls.empty()) o.urls.push_back("http://127.0.0.1:8080");
  if ((!o.screenshot.empty() || !o.dump_layout.empty()) && o.frames < 0) o.frames = 3;
  return true;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Snapshot take_snapshot(const std::vector<std::unique_ptr<Poller>>& pollers) {
  std::vector<ServerState> states;
  states.reserve(pollers.size());
  for (const auto& p : pollers) states.push_back(p->state());
  return make_snapshot(std::move(states), unix_now());
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
  std::vector<std::unique_ptr<Poller>> pollers;
  for (const std::string& url : opt.urls) {
    pollers.push_back(std::make_unique<Poller>(url, popt));
    pollers.back()->start();
  }

  if (batch) {
    // Wait (bounded) for every server's first poll, so the frames show real figures.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      bool all = true;
      for (const auto& p : pollers) all = all && p->attempts() > 0;
      if (all || std::chrono::steady_clock::now() > deadline) break;
      glfwPollEvents();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  UiState ui;
  ui.selected = opt.select;
  ui.show_help = opt.show_help;
  bool f1_was_down = false;
  int frame = 0;
  const auto loop_start = std::chrono::steady_clock::now();
  int rc = 0;
  Snapshot snap;
  std::vector<double> frame_ms, ui_ms;
  while (!glfwWindowShouldClose(window)) {
    const auto frame_start = std::chrono::steady_clock::now();
    glfwPollEvents();
    const bool f1_down = glfwGetKey(window, GLFW_KEY_F1) == GLFW_PRESS;
    if (f1_down && !f1_was_down) ui.help_key_pressed = true;
    f1_was_down = f1_down;

    snap = take_snapshot(pollers);

    ImGui_ImplOpenGL3_NewFrame();
    ImGui_ImplGlfw_NewFrame();
    ImGui::NewFrame();
    draw_frame(snap, ui);
    ImGui::Render();
    if (opt.frame_stats)
      ui_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - frame_start).count());

    int display_w = 0, display_h = 0;
    glfwGetFramebufferSize(window, &display_w, &display_h);
    glViewport(0, 0, display_w, display_h);
    glClearColor(0.10f, 0.10f, 0.12f, 1.0f);
    glClear(GL_COLOR_BUFFER_BIT);
    ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
    if (opt.frame_stats) {
      glFinish();  // count the GPU (llvmpipe) work too, not only the command submission
      frame_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - frame_start).count());
    }

    ++frame;
    const bool warm = std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_start).count() >= opt.warmup;
    const bool last = batch && warm && frame >= std::max(1, opt.frames);
    if (batch && !warm) std::this_thread::sleep_for(std::chrono::milliseconds(30));
    if (last && !opt.screenshot.empty() && !save_screenshot(window, opt.screenshot)) {
      std::fprintf(stderr, "could not write %s\n", opt.screenshot.c_str());
      rc = 1;
    }
    glfwSwapBuffers(window);
    if (last) break;
  }

  if (!opt.dump_layout.empty() && !write_text(opt.dump_layout, dump_layout_json(snap))) {
    std::fprintf(stderr, "could not write %s\n", opt.dump_layout.c_str());
    rc = 1;
  }

  if (opt.frame_stats && !frame_ms.empty()) {
    std::sort(frame_ms.begin(), frame_ms.end());
    std::sort(ui_ms.begin(), ui_ms.end());
    auto pct = [](const std::vector<double>& v, double q) {
      return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
    };
    // frame = poll copy + ImGui (CPU) + GL render (glFinish); ui = the part before GL.
    std::printf("frames %zu nodes %zu frame_ms p50 %.2f p99 %.2f max %.2f ui_ms p50 %.2f p99 %.2f\n",
                frame_ms.size(), snap.layout.nodes.size(), pct(frame_ms, 0.5), pct(frame_ms, 0.99),
                frame_ms.back(), pct(ui_ms, 0.5), pct(ui_ms, 0.99));
  }
  for (auto& p : pollers) p->stop();
  ImGui_ImplOpenGL3_Shutdown();
  ImGui_ImplGlfw_Shutdown();
  ImGui::DestroyContext();
  glfwDestroyWindow(window);
  glfwTerminate();
  return rc;
}
