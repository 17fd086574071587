// `orderflow serve` as a child process for end-to-end suites: fork/exec of the real binary
// (ORDERFLOW_BINARY) on a loopback port with a data directory; stdout/stderr to a log file.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/net.h"

namespace orderflow::testing {

namespace fs = std::filesystem;

inline std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

// Prints the last `max_lines` lines of a server's log to stderr (for a failed test).
inline void print_log_tail(const fs::path& log, size_t max_lines) {
  std::ifstream in(log);
  std::deque<std::string> tail;
  for (std::string line; std::getline(in, line);) {
    tail.push_back(line);
    if (tail.size() > max_lines) tail.pop_front();
  }
  std::cerr << "---- " << log.string() << " (last " << tail.size() << " lines) ----\n";
  for (const auto& l : tail) std::cerr << l << "\n";
  std::cerr << "---- end of " << log.filename().string() << " ----\n";
}

// One `orderflow serve` child process. Not thread-safe; the destructor kills and reaps it.
class ServerProcess {
 public:
  // graph: the YAML file to serve (default graphs/orders.yaml).
  ServerProcess(fs::path data_dir, fs::path log, std::string graph = std::string(ORDERFLOW_SOURCE_DIR) + "/graphs/orders.yaml")
      : data_dir_(std::move(data_dir)), log_(std::move(log)), graph_(std::move(graph)) {}
  ~ServerProcess() { kill_now(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Another binary built on the same command line (server/cli.h), e.g. one with more domains.
  void set_binary(std::string path) { binary_ = std::move(path); }

  // Further flags for every later start (e.g. {"--log-level", "debug"}).
  void add_args(std::vector<std::string> more) { extra_.insert(extra_.end(), more.begin(), more.end()); }

  bool start(int port) {
    if (pid_ > 0) return false;
    std::vector<std::string> args = {binary_,
                                     "serve",
                                     graph_,
                                     "--listen",
                                     "127.0.0.1:" + std::to_string(port),
                                     "--data-dir",
                                     data_dir_.string(),
                                     "--threads",
                                     "2"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string log = log_.string();
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) {
      // The child of a multithreaded parent: async-signal-safe calls only, then exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
      if (::getppid() != parent) ::_exit(127);
      ::close_range(3, ~0U, 0);  // no inherited client sockets
      const int in = ::open("/dev/null", O_RDONLY);
      if (in >= 0) ::dup2(in, STDIN_FILENO);
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, STDOUT_FILENO);
        ::dup2(fd, STDERR_FILENO);
      }
      ::signal(SIGPIPE, SIG_DFL);  // the test ignores SIGPIPE; the server gets the default
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    pid_ = pid;
    last_status_.reset();
    return true;
  }

  // start(port), then polls GET /readyz until it answers 200. Empty when ready, else why not
  // (the child exited, or `timeout` passed).
  std::string start_ready(int port, std::chrono::milliseconds timeout) {
    if (!start(port)) return "fork failed: " + std::string(std::strerror(errno));
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (!running()) return "server exited during start-up: " + describe_wait_status(last_status_.value_or(0));
      if (!http_get_body(port, "/readyz").empty()) return "";
      if (std::chrono::steady_clock::now() >= deadline) return "GET /readyz never answered 200";
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  // False once the child has exited (its status is then in last_status()).
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      last_status_ = status;
      return false;
    }
    return true;
  }

  // SIGTERM, then waits up to `timeout` for the exit; SIGKILL after that. The wait status.
  std::optional<int> terminate(std::chrono::milliseconds timeout) {
    if (!running()) return last_status_;
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!running()) return last_status_;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill_now();
    return std::nullopt;
  }

  // SIGKILL and reap. Returns the wait status (nullopt if nothing was running).
  std::optional<int> kill_now() {
    if (pid_ <= 0) return std::nullopt;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    last_status_ = status;
    return status;
  }

  std::optional<int> last_status() const { return last_status_; }
  pid_t pid() const { return pid_; }

 private:
  std::vector<std::string> extra_;
  std::string binary_ = ORDERFLOW_BINARY;
  const fs::path data_dir_;
  const fs::path log_;
  const std::string graph_;
  pid_t pid_ = -1;
  std::optional<int> last_status_;
};

}  // namespace orderflow::testing
