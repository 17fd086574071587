// CPU time of this process's threads, by thread name, between two samples (Linux
// /proc/self/task/*/schedstat, nanoseconds). `orderflow bench` reports it per event: the pipeline's serial threads
// (the commit writer, its completer, one thread per feed subscriber) each cap the events/s
// the design can reach on any number of cores at 1e6 / (their µs of CPU per event); the
// rest (oneTBB workers, the driver, I/O pools) spreads over cores.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include <map>
#include <string>
#include <vector>

namespace orderflow::bench {

struct ThreadSample {
  // "driver" for the main thread, "unnamed" for threads that kept the process's name
  // (library pools), else the thread's name (comm): "of-worker" for the pipeline's oneTBB
  // workers (Pipeline names them)
  std::string name;
  double cpu_s = 0;   // user + system, since the thread started
  // Times it went to sleep (blocked: a condition variable, a futex, I/O, a timer) since it
  // started: /proc/.../status voluntary_ctxt_switches. Each is a wake-up later, a cost of
  // its own on a virtual machine (the guest's interrupt re-enable, a scheduler round).
  uint64_t sleeps = 0;
};
using ThreadSamples = std::map<pid_t, ThreadSample>;  // by thread id

// The live threads of this process now.
ThreadSamples sample_threads();

struct ThreadCpu {
  std::string name;
  int threads = 0;       // threads of that name that ran between the samples
  double cpu_s = 0;      // their CPU between the samples (threads started meanwhile: all of it)
  bool serial = false;   // one of the pipeline's single threads (see is_serial_thread)
  double sleeps = 0;     // their sleeps between the samples (ThreadSample::sleeps)
};

// CPU between two samples by thread name, most first. Threads that ended between the two
// are not counted (sample `after` before a pipeline stops its threads).
std::vector<ThreadCpu> thread_cpu_between(const ThreadSamples& before, const ThreadSamples& after);

// The pipeline's threads that run alone and in order whatever the core count:
// "of-commit", "of-complete" and the feed subscribers' "of-feed-...".
bool is_serial_thread(const std::string& name);

// What a run's CPU by thread says about more cores: each serial thread caps events/s at
// 1e6 / its µs per event; the lowest cap is the ceiling, and reaching it takes
// (all CPU per event) x ceiling / 1e6 cores.
struct Ceiling {
  double events_per_s = 0;  // 0: no serial thread measured
  std::string limit;        // the serial thread with the lowest cap
  double cores = 0;         // cores busy at the ceiling
};
Ceiling ceiling_of(const std::vector<ThreadCpu>& threads, double events);

}  // namespace orderflow::bench
