#include "bench/thread_cpu.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

namespace orderflow::bench {
namespace {

// Time on a CPU of one thread: the first field of /proc/.../schedstat (nanoseconds; kernels
// with CONFIG_SCHED_INFO, which Debian's have), else utime + stime of /proc/.../stat
// (fields 14 and 15, in clock ticks of 10 ms: too coarse for runs of a fraction of a second).
// In stat the name is field 2, in parentheses, and may itself hold spaces or parentheses:
// parse after the last ')'.
bool read_cpu(const std::filesystem::path& task, double* cpu_s) {
  {
    std::ifstream f(task / "schedstat");
    unsigned long long ns = 0;
    if (f >> ns) {
      *cpu_s = static_cast<double>(ns) / 1e9;
      return true;
    }
  }
  std::ifstream f(task / "stat");
  std::string line;
  if (!std::getline(f, line)) return false;
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // After the name: state (3), ppid (4), ... utime (14), stime (15).
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  static const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  *cpu_s = static_cast<double>(utime + stime) / ticks;
  return true;
}

// voluntary_ctxt_switches of /proc/.../status.
bool read_sleeps(const std::filesystem::path& task, uint64_t* sleeps) {
  std::ifstream f(task / "status");
  std::string line;
  constexpr std::string_view kField = "voluntary_ctxt_switches:";
  while (std::getline(f, line)) {
    if (line.rfind(kField, 0) != 0) continue;
    try {
      *sleeps = std::stoull(line.substr(kField.size()));
    } catch (const std::exception&) {
      return false;
    }
    return true;
  }
  return false;
}

}  // namespace

ThreadSamples sample_threads() {
  ThreadSamples out;
  const pid_t self = getpid();
  std::string process_name;  // what a thread that never named itself is called
  {
    std::ifstream comm("/proc/self/comm");
    std::getline(comm, process_name);
  }
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    pid_t tid = 0;
    try {
      tid = static_cast<pid_t>(std::stol(entry.path().filename().string()));
    } catch (const std::exception&) {
      continue;
    }
    ThreadSample s;
    if (!read_cpu(entry.path(), &s.cpu_s)) continue;  // ended while we looked
    read_sleeps(entry.path(), &s.sleeps);               // 0 if it ended meanwhile
    if (tid == self) {
      s.name = "driver";
    } else {
      std::ifstream comm(entry.path() / "comm");
      std::getline(comm, s.name);
      // Library pools (cpprestsdk's, librdkafka's) keep the process's name.
      if (s.name.empty() || s.name == process_name) s.name = "unnamed";
    }
    out.emplace(tid, std::move(s));
  }
  return out;
}

bool is_serial_thread(const std::string& name) {
  return name == "of-commit" || name == "of-complete" || name == "of-index" || name.rfind("of-feed-", 0) == 0;
}

std::vector<ThreadCpu> thread_cpu_between(const ThreadSamples& before, const ThreadSamples& after) {
  std::map<std::string, ThreadCpu> by_name;
  for (const auto& [tid, s] : after) {
    auto b = before.find(tid);
    // A thread id reused by a new thread of another name started meanwhile: all of it.
    const bool same_thread = b != before.end() && b->second.name == s.name;
    const double base = same_thread ? b->second.cpu_s : 0;
    const double used = std::max(0.0, s.cpu_s - base);
    if (used <= 0) continue;
    const uint64_t slept_before = same_thread ? b->second.sleeps : 0;
    ThreadCpu& t = by_name[s.name];
    t.name = s.name;
    t.threads += 1;
    t.cpu_s += used;
    t.sleeps += static_cast<double>(s.sleeps > slept_before ? s.sleeps - slept_before : 0);
  }
  std::vector<ThreadCpu> out;
  for (auto& [name, t] : by_name) {
    // A name several threads share is a pool, whatever it is called.
    t.serial = t.threads == 1 && is_serial_thread(name);
    out.push_back(t);
  }
  std::sort(out.begin(), out.end(), [](const ThreadCpu& a, const ThreadCpu& b) { return a.cpu_s > b.cpu_s; });
  return out;
}

Ceiling ceiling_of(const std::vector<ThreadCpu>& threads, double events) {
  Ceiling c;
  if (events <= 0) return c;
  double all_us = 0;
  for (const auto& t : threads) {
    all_us += t.cpu_s * 1e6 / events;
    if (!t.serial || t.cpu_s <= 0) continue;
    const double cap = events / t.cpu_s;  // 1e6 / (µs per event)
    if (c.events_per_s == 0 || cap < c.events_per_s) {
      c.events_per_s = cap;
      c.limit = t.name;
    }
  }
  if (c.events_per_s > 0) c.cores = all_us * c.events_per_s / 1e6;
  return c;
}

}  // namespace orderflow::bench
