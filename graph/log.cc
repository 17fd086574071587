#include "graph/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace orderflow::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
const char* names[] = {"debug", "info", "warn", "error"};

std::string quote_if_needed(const std::string& v) {
  if (!v.empty() && v.find_first_of(" \"=\t\n") == std::string::npos) return v;
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out + "\"";
}
}  // namespace

void set_level(Level level) { g_level = static_cast<int>(level); }
bool enabled(Level level) { return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed); }

bool parse_level(const std::string& text, Level* out) {
  for (int i = 0; i < 4; ++i)
    if (text == names[i]) {
      *out = static_cast<Level>(i);
      return true;
    }
  return false;
}

void write(Level level, const std::string& msg, Fields fields) {
  if (static_cast<int>(level) < g_level.load(std::memory_order_relaxed)) return;
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string line = "ts=" + std::string(ts) + "." + (ms < 100 ? (ms < 10 ? "00" : "0") : "") +
                     std::to_string(ms) + "Z level=" + names[static_cast<int>(level)] + " msg=" + quote_if_needed(msg);
  for (const auto& [k, v] : fields) line += std::string(" ") + k + "=" + quote_if_needed(v);
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace orderflow::log
