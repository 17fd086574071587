// Runs a shell command line and keeps its exit code and output (stdout and stderr
// together): for tests that drive the orderflow binary as a user would.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace orderflow::testing {

struct Ran {
  int exit_code = -1;  // -1: could not start, or killed by a signal
  std::string output;  // stdout and stderr
};

inline Ran run_shell(const std::string& command_line) {
  Ran r;
  FILE* p = ::popen((command_line + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p) != nullptr) r.output += buf;
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace orderflow::testing
