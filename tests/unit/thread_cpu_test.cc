// `orderflow bench`'s CPU by thread: samples of /proc/self/task by thread name, and the
// ceiling the serial threads put on events/s.
#include <gtest/gtest.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "bench/thread_cpu.h"

namespace orderflow::bench {
namespace {

// Burns CPU on a thread of the given name until `stop`.
std::thread burner(const char* name, std::atomic<bool>& stop, std::atomic<int>& started) {
  return std::thread([name, &stop, &started] {
    pthread_setname_np(pthread_self(), name);
    ++started;
    volatile uint64_t x = 0;
    while (!stop.load(std::memory_order_relaxed)) x = x + 1;
  });
}

const ThreadCpu* find(const std::vector<ThreadCpu>& v, const std::string& name) {
  for (const auto& t : v)
    if (t.name == name) return &t;
  return nullptr;
}

TEST(ThreadCpu, CountsEachNamedThreadsCpuAndTellsSerialThreadsFromPools) {
  std::atomic<bool> stop{false};
  std::atomic<int> started{0};
  const ThreadSamples before = sample_threads();
  std::thread lone = burner("of-feed-test", stop, started);
  std::thread pool_a = burner("of-commit", stop, started);  // two of one name: a pool, not serial
  std::thread pool_b = burner("of-commit", stop, started);
  while (started.load() < 3) std::this_thread::yield();
  // Until each has used at least 0.2 s of CPU (on a busy machine that takes longer).
  ThreadSamples now;
  for (int i = 0; i < 600; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    now = sample_threads();
    const auto v = thread_cpu_between(before, now);
    const ThreadCpu* l = find(v, "of-feed-test");
    const ThreadCpu* p = find(v, "of-commit");
    if (l != nullptr && l->cpu_s >= 0.2 && p != nullptr && p->cpu_s >= 0.4) break;
  }
  const auto v = thread_cpu_between(before, now);
  stop = true;
  lone.join();
  pool_a.join();
  pool_b.join();

  const ThreadCpu* l = find(v, "of-feed-test");
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->threads, 1);
  EXPECT_GE(l->cpu_s, 0.2);
  EXPECT_TRUE(l->serial) << "one feed subscriber's thread runs alone";
  const ThreadCpu* p = find(v, "of-commit");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->threads, 2);
  EXPECT_GE(p->cpu_s, 0.4);
  EXPECT_FALSE(p->serial) << "a name two threads share is a pool";
  ASSERT_TRUE(now.count(getpid()));
  EXPECT_EQ(now.at(getpid()).name, "driver") << "the main thread";
  for (size_t i = 1; i < v.size(); ++i) EXPECT_GE(v[i - 1].cpu_s, v[i].cpu_s) << "most first";

  // A thread sampled before that has not run since counts nothing.
  EXPECT_EQ(find(thread_cpu_between(now, now), "of-feed-test"), nullptr);
}

TEST(ThreadCpu, CountsHowOftenEachThreadSleptAndWasWokenAgain) {
  // One thread waits on a condition variable and is woken 200 times; another spins and
  // never blocks.
  std::atomic<bool> stop{false};
  std::atomic<int> started{0};
  std::mutex mu;
  std::condition_variable cv;
  int wakes_sent = 0, wakes_seen = 0;
  bool finished = false;
  const ThreadSamples before = sample_threads();
  std::thread spinner = burner("of-feed-spin", stop, started);
  std::thread sleeper([&] {
    pthread_setname_np(pthread_self(), "of-feed-sleep");
    ++started;
    std::unique_lock lock(mu);
    while (wakes_seen < 200) {
      cv.wait(lock, [&] { return wakes_sent > wakes_seen; });
      wakes_seen = wakes_sent;
      volatile uint64_t x = 0;
      for (int i = 0; i < 1000; ++i) x = x + 1;  // some CPU, so the thread is counted
      cv.notify_all();
    }
    cv.wait(lock, [&] { return finished; });  // alive until sampled
  });
  while (started.load() < 2) std::this_thread::yield();
  // A running thread's CPU shows in /proc at its next tick: let the spinner get some.
  for (int i = 0; i < 200; ++i) {
    const auto so_far = thread_cpu_between(before, sample_threads());
    const ThreadCpu* b = find(so_far, "of-feed-spin");
    if (b != nullptr && b->cpu_s >= 0.05) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (int i = 0; i < 200; ++i) {
    // By then the sleeper is asleep in its wait (a notify sent while it is on its way there
    // finds it awake: it then sleeps fewer times, which the bound below allows for).
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::unique_lock lock(mu);
    ++wakes_sent;
    cv.notify_all();
    cv.wait(lock, [&] { return wakes_seen == wakes_sent; });
  }
  const ThreadSamples after = sample_threads();
  {
    std::lock_guard lock(mu);
    finished = true;
  }
  cv.notify_all();
  sleeper.join();
  stop = true;
  spinner.join();
  const auto v = thread_cpu_between(before, after);
  const ThreadCpu* s = find(v, "of-feed-sleep");
  ASSERT_NE(s, nullptr);
  // Most wake-ups found it asleep; it may also have slept on the mutex now and then.
  EXPECT_GE(s->sleeps, 100);
  EXPECT_LE(s->sleeps, 450);
  const ThreadCpu* b = find(v, "of-feed-spin");
  ASSERT_NE(b, nullptr);
  EXPECT_LT(b->sleeps, 20) << "a spinning thread is preempted, it does not sleep";
  // Threads that ended before the second sample are not in it; their sleeps are not counted.
  EXPECT_EQ(find(thread_cpu_between(after, after), "of-feed-sleep"), nullptr);
}

TEST(ThreadCpu, TheSlowestSerialThreadSetsTheCeiling) {
  // 100,000 events: the writer spent 1 s (10 µs per event), a subscriber 0.5 s, a pool 2 s.
  const std::vector<ThreadCpu> threads = {
      {"unnamed", 4, 2.0, false}, {"of-commit", 1, 1.0, true}, {"of-feed-saga", 1, 0.5, true}};
  const Ceiling c = ceiling_of(threads, 100000);
  EXPECT_DOUBLE_EQ(c.events_per_s, 100000);
  EXPECT_EQ(c.limit, "of-commit");
  EXPECT_DOUBLE_EQ(c.cores, 3.5) << "35 µs of CPU per event at 100,000 events/s";
  EXPECT_EQ(ceiling_of({{"unnamed", 2, 1.0, false}}, 1000).events_per_s, 0) << "no serial thread, no ceiling";
  EXPECT_EQ(ceiling_of(threads, 0).events_per_s, 0);
  EXPECT_TRUE(is_serial_thread("of-complete"));
  EXPECT_TRUE(is_serial_thread("of-feed-project"));
  EXPECT_FALSE(is_serial_thread("of-http-io"));
}

}  // namespace
}  // namespace orderflow::bench
