// Structured log lines on stderr: `ts=... level=info msg="..." key=value ...`.
// Thread-safe (one write per line). Secrets must never be passed in.
#pragma once

#include <initializer_list>
#include <string>
#include <utility>

namespace orderflow::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void set_level(Level level);
bool enabled(Level level);  // whether a line of this level is written (skip building it if not)
bool parse_level(const std::string& text, Level* out);
using Fields = std::initializer_list<std::pair<const char*, std::string>>;
void write(Level level, const std::string& msg, Fields fields = {});
inline void info(const std::string& msg, Fields f = {}) { write(Level::kInfo, msg, f); }
inline void warn(const std::string& msg, Fields f = {}) { write(Level::kWarn, msg, f); }
inline void error(const std::string& msg, Fields f = {}) { write(Level::kError, msg, f); }
inline void debug(const std::string& msg, Fields f = {}) { write(Level::kDebug, msg, f); }

}  // namespace orderflow::log
