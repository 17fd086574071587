#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>
#include <unordered_map>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "bench/bench.h"
#include "connectors/append_plan.h"
#include "connectors/stores.h"
#include "graph/metrics.h"
#include "domain/orders/orders.h"
#include "graph/build.h"

namespace orderflow::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Client commands per hand-over in the closed loop (CommandSink::submit_batch).
constexpr size_t kClosedLoopSubmitBatch = 64;

Percentiles to_ms(const Histogram& h) {
  const auto s = h.summary();
  return {s.count, s.p50_us / 1000, s.p95_us / 1000, s.p99_us / 1000, s.p999_us / 1000, s.max_us / 1000};
}

// Shared by the driver, the completion callbacks (commit writer and lane threads) and the
// change-feed tap (feed threads).
class Tracker {
 public:
  Tracker(std::vector<std::string> subscribers, std::string projection)
      : projection_id_(std::move(projection)) {
    for (auto& s : subscribers) checkpoints_.emplace(std::move(s), std::make_unique<std::atomic<uint64_t>>(0));
  }

  // Positions are per subscriber (Cosmos DB): a commit's position says nothing about the
  // projection's, so ingest -> projection is not measured. Before the pipeline starts.
  void drop_projection_latency() { projection_id_.clear(); }

  // Orders placed and settled (confirmed, rejected, cancelled) in events one subscriber
  // read; ids in sets, so a redelivered event counts once.
  void tally(const std::vector<RecordedEvent>& events, size_t from) {
    std::lock_guard lock(tally_mu_);
    for (size_t i = from; i < events.size(); ++i) {
      v1::Event e;
      if (!e.ParseFromString(events[i].payload)) continue;
      switch (e.kind_case()) {
        case v1::Event::kOrderPlaced: placed_.insert(e.order_placed().order_id()); break;
        case v1::Event::kOrderConfirmed: settled_.insert(e.order_confirmed().order_id()); break;
        case v1::Event::kOrderRejected: settled_.insert(e.order_rejected().order_id()); break;
        case v1::Event::kOrderCancelled: settled_.insert(e.order_cancelled().order_id()); break;
        default: break;
      }
    }
  }
  std::pair<uint64_t, uint64_t> placed_and_settled() {
    std::lock_guard lock(tally_mu_);
    uint64_t settled = 0;
    for (const auto& id : placed_) settled += settled_.count(id);
    return {placed_.size(), settled};
  }

  void done(const Outcome& o, bool place, uint64_t ingest_ns, const Envelope& env) {
    const uint64_t now = steady_ns();
    if (o.status.is_ok()) {
      accepted.fetch_add(1, std::memory_order_relaxed);
      if (place) orders.fetch_add(1, std::memory_order_relaxed);
      if (!o.duplicate) {
        commit.record((now - std::min(now, ingest_ns)) / 1000);
        if (env.decide_ns != 0 && env.queued_ns != 0 && env.write_ns != 0) {
          const uint64_t marks[kStages + 1] = {ingest_ns, env.decide_ns, env.queued_ns, env.write_ns, env.written_ns, now};
          for (size_t k = 0; k < kStages; ++k)
            stages[k].record((marks[k + 1] - std::min(marks[k + 1], marks[k])) / 1000);
        }
        committed(o.result.last_position, ingest_ns, now);
      }
    } else if (o.status.code() == StatusCode::kRejected) {
      rejected.fetch_add(1, std::memory_order_relaxed);
    } else {
      failed.fetch_add(1, std::memory_order_relaxed);
    }
    last_event_ns.store(now, std::memory_order_relaxed);
    completed.fetch_add(1, std::memory_order_relaxed);
    outstanding.fetch_sub(1, std::memory_order_release);
  }

  void checkpoint(const std::string& subscriber, uint64_t position) {
    const uint64_t now = steady_ns();
    if (auto it = checkpoints_.find(subscriber); it != checkpoints_.end()) it->second->store(position);
    last_event_ns.store(now, std::memory_order_relaxed);
    if (subscriber != projection_id_) return;
    std::lock_guard lock(mu_);
    projected_ = std::max(projected_, position);
    // Commits complete in position order (one writer), so the waiting list is sorted.
    while (!waiting_.empty() && waiting_.front().first <= projected_) {
      projection.record((now - std::min(now, waiting_.front().second)) / 1000);
      waiting_.pop_front();
    }
  }

  uint64_t checkpoint_of(const std::string& subscriber) const {
    auto it = checkpoints_.find(subscriber);
    return it == checkpoints_.end() ? 0 : it->second->load();
  }

  std::atomic<int64_t> outstanding{0};
  std::atomic<uint64_t> completed{0}, accepted{0}, rejected{0}, failed{0}, orders{0};
  std::atomic<uint64_t> last_event_ns{0};  // last completion or checkpoint
  Histogram commit, projection;
  Histogram stages[kStages];

 private:
  void committed(uint64_t last_position, uint64_t ingest_ns, uint64_t now) {
    if (projection_id_.empty()) return;
    std::lock_guard lock(mu_);
    if (last_position <= projected_) {
      projection.record((now - std::min(now, ingest_ns)) / 1000);
      return;
    }
    waiting_.emplace_back(last_position, ingest_ns);
  }

  std::string projection_id_;  // set before the pipeline starts
  std::map<std::string, std::unique_ptr<std::atomic<uint64_t>>> checkpoints_;  // keys fixed at construction
  std::mutex tally_mu_;
  std::set<std::string> placed_, settled_;  // guarded by tally_mu_
  std::mutex mu_;
  uint64_t projected_ = 0;                               // guarded by mu_
  std::deque<std::pair<uint64_t, uint64_t>> waiting_;   // guarded by mu_: (last position, ingest ns)
};

// Forwards to the real change feed and tells the tracker about saved checkpoints. A feed
// with per-subscriber views (Cosmos DB) gets a tap per view; the view of `tally_subscriber`
// also tells the tracker which orders it saw placed and settled.
class TapFeed final : public ChangeFeed {
 public:
  TapFeed(ChangeFeed* inner, Tracker* tracker, std::string tally_subscriber, bool tally = false)
      : inner_(inner), tracker_(tracker), tally_subscriber_(std::move(tally_subscriber)), tally_(tally) {}
  Result<ChangeFeed*> subscribe(const std::string& subscriber) override {
    auto view = inner_->subscribe(subscriber);
    if (!view) return view.status();
    if (*view == inner_) return static_cast<ChangeFeed*>(this);
    std::lock_guard lock(mu_);
    auto& tap = views_[subscriber];
    if (!tap) tap = std::make_unique<TapFeed>(*view, tracker_, "", subscriber == tally_subscriber_);
    return static_cast<ChangeFeed*>(tap.get());
  }
  bool global_positions() const override { return inner_->global_positions(); }
  Status read(uint64_t after, size_t max, std::vector<RecordedEvent>* out) override {
    const size_t from = out->size();
    Status s = inner_->read(after, max, out);
    if (s && tally_) tracker_->tally(*out, from);
    return s;
  }
  uint64_t head() override { return inner_->head(); }
  void wait(uint64_t after, std::chrono::milliseconds timeout) override { inner_->wait(after, timeout); }
  Result<uint64_t> load_checkpoint(const std::string& subscriber) override {
    auto r = inner_->load_checkpoint(subscriber);
    if (r) tracker_->checkpoint(subscriber, *r);
    return r;
  }
  Status save_checkpoint(const std::string& subscriber, uint64_t position) override {
    Status s = inner_->save_checkpoint(subscriber, position);
    if (s) tracker_->checkpoint(subscriber, position);
    return s;
  }

 private:
  ChangeFeed* inner_;
  Tracker* tracker_;
  const std::string tally_subscriber_;
  const bool tally_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<TapFeed>> views_;  // guarded by mu_
};

class TapProvider final : public StoreProvider {
 public:
  TapProvider(StoreProvider& inner, Tracker& tracker, std::string tally_subscriber)
      : inner_(inner), tracker_(tracker), tally_subscriber_(std::move(tally_subscriber)) {}
  Result<EventStore*> event_store(const std::string& name) override { return inner_.event_store(name); }
  Result<SnapshotStore*> snapshot_store(const std::string& name) override { return inner_.snapshot_store(name); }
  Result<ParkingStore*> parking_store(const std::string& name) override { return inner_.parking_store(name); }
  void attach_metrics(MetricsRegistry& registry) override { inner_.attach_metrics(registry); }
  Result<ChangeFeed*> change_feed(const std::string& name) override {
    if (auto it = feeds_.find(name); it != feeds_.end()) return static_cast<ChangeFeed*>(it->second.get());
    auto f = inner_.change_feed(name);
    if (!f) return f.status();
    auto& tap = feeds_[name] = std::make_unique<TapFeed>(*f, &tracker_, tally_subscriber_);
    return static_cast<ChangeFeed*>(tap.get());
  }

 private:
  StoreProvider& inner_;
  Tracker& tracker_;
  const std::string tally_subscriber_;
  std::map<std::string, std::unique_ptr<TapFeed>> feeds_;
};

struct CpuTimes {
  double user = 0, sys = 0;
};
CpuTimes cpu_now() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return {s(ru.ru_utime), s(ru.ru_stime)};
}

// Resets the kernel's peak-RSS mark (Linux >= 4.0), so each run reports its own peak.
void reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
}

double peak_rss_mb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;  // kB
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

void draw_progress(const std::string& label, double fraction, double rate) {
  constexpr int kWidth = 30;
  fraction = std::clamp(fraction, 0.0, 1.0);
  const int filled = static_cast<int>(fraction * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(kWidth - filled), '.');
  std::fprintf(stderr, "\r  %-28s [%s] %3.0f%% %9.0f cmd/s ", label.c_str(), bar.c_str(), fraction * 100, rate);
  std::fflush(stderr);
}

void sleep_us(int us) { std::this_thread::sleep_for(std::chrono::microseconds(us)); }

// The account metrics nodes' figures (kind "cosmos", one per account) at one moment.
struct CosmosTotals {
  uint64_t requests = 0;
  double request_units = 0, throttles = 0;
  std::map<std::string, double> ru_by_op, requests_by_op;
};
CosmosTotals cosmos_totals(const MetricsRegistry& metrics) {
  CosmosTotals t;
  for (const auto& n : metrics.snapshot().nodes) {
    if (n.kind != "cosmos") continue;
    t.requests += n.in;
    for (const auto& [k, v] : n.gauges) {
      if (k == "request_units_total") t.request_units += v;
      else if (k == "throttles_total") t.throttles += v;
      else if (k.rfind("ru_", 0) == 0 && k != "ru_per_command") t.ru_by_op[k.substr(3)] += v;
      else if (k.rfind("requests_", 0) == 0) t.requests_by_op[k.substr(9)] += v;
    }
  }
  return t;
}

// How long a run with per-subscriber feeds (Cosmos DB) must stay quiescent before it ends:
// a view learns of new documents only when it polls, and an idle partition key range is
// polled only every max_idle_poll, so twice that (as cosmos_bench waits).
uint64_t settle_ns(const graph::GraphDef& def) {
  int64_t ms = 0;
  for (const auto& [name, store] : def.stores)
    if (store.kind == "cosmos") ms = std::max(ms, connectors::cosmos_store_params().parse(store).max_idle_poll_ms);
  return static_cast<uint64_t>(std::max<int64_t>(2 * ms, 500)) * 1'000'000ULL;
}

}  // namespace

Result<RunResult> run_pipeline(const graph::GraphDef& def, const graph::KindRegistry& kinds,
                               const RunConfig& config, const Options& options,
                               std::vector<v1::Command>& commands, WorkloadGenerator* more,
                               const std::string& dir, std::vector<std::string>* recorded) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::io_error("cannot create " + dir + ": " + ec.message());

  // Which subscribers read which feed, to know when everything has caught up.
  std::vector<std::pair<std::string, std::string>> feed_subscribers;  // (event store name, subscriber id)
  std::vector<std::string> subscriber_ids;
  std::string projection_id;
  for (const auto& n : def.nodes) {
    if (n.kind != "change_feed") continue;
    for (const auto* s : def.successors(n.id)) {
      feed_subscribers.emplace_back(n.get_string("events"), s->id);
      subscriber_ids.push_back(s->id);
      if (s->kind == "projection" && projection_id.empty()) projection_id = s->id;
    }
  }

  NodeProbe::set_enabled(config.metrics);
  struct Restore {
    ~Restore() { NodeProbe::set_enabled(true); }
  } restore;

  RunResult result;
  result.config = config;
  Tracker tracker(subscriber_ids, projection_id);
  {
    connectors::StoreSet stores(def, dir);
    TapProvider provider(stores, tracker, subscriber_ids.empty() ? "" : subscriber_ids.front());
    BuildOptions bo;
    bo.threads = config.threads;
    auto built = build_pipeline(def, kinds, provider, bo);
    if (!built) return built.status();
    if (built->sink == nullptr) return Status::invalid_argument("the graph has no route node to drive");
    // Each subscriber's own view of its feed (the feed itself where positions are global):
    // its checkpoint is compared with that view's head.
    std::vector<ChangeFeed*> feeds;
    bool per_subscriber = false;
    for (const auto& [name, sub] : feed_subscribers) {
      auto f = provider.change_feed(name);
      if (!f) return f.status();
      per_subscriber = per_subscriber || !(*f)->global_positions();
      auto view = (*f)->subscribe(sub);
      if (!view) return view.status();
      feeds.push_back(*view);
    }
    if (per_subscriber) tracker.drop_projection_latency();
    const uint64_t settle = per_subscriber ? settle_ns(def) : 0;
    const bool cosmos = std::any_of(def.stores.begin(), def.stores.end(),
                                    [](const auto& s) { return s.second.kind == "cosmos"; });
    if (auto s = built->pipeline->start(); !s) {
      built->pipeline->shutdown(std::chrono::seconds(5));
      return s;
    }
    CommandSink* sink = built->sink;

    const bool open_loop = options.rate > 0;
    const uint64_t stocking = std::min<uint64_t>(options.workload.skus, commands.size());
    // Commands to submit: a count, or everything due within the duration.
    const bool by_duration = options.duration_s > 0;
    uint64_t total = by_duration ? UINT64_MAX : std::min<uint64_t>(commands.size(), options.commands + stocking);
    if (by_duration && open_loop)
      total = stocking + static_cast<uint64_t>(std::llround(options.rate * options.duration_s));

    std::atomic<bool> progress_done{false};
    std::thread progress;
    const auto t0 = Clock::now();
    if (options.progress) {
      progress = std::thread([&] {
        uint64_t last = 0;
        auto last_t = Clock::now();
        while (!progress_done.load()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(250));
          const uint64_t c = tracker.completed.load();
          const auto now = Clock::now();
          const double dt = std::chrono::duration<double>(now - last_t).count();
          const double frac = by_duration && !open_loop
                                  ? std::chrono::duration<double>(now - t0).count() / options.duration_s
                                  : static_cast<double>(c) / static_cast<double>(std::max<uint64_t>(total, 1));
          draw_progress(config.name() + " #" + std::to_string(result.repetition + 1), frac,
                        dt > 0 ? static_cast<double>(c - last) / dt : 0);
          last = c;
          last_t = now;
        }
        std::fprintf(stderr, "\r%*s\r", 90, "");
      });
    }

    reset_peak_rss();
    const CosmosTotals cosmos0 = cosmos ? cosmos_totals(built->pipeline->metrics()) : CosmosTotals{};
    const CpuTimes cpu0 = cpu_now();
    const ThreadSamples threads0 = sample_threads();
    const uint64_t start_ns = steady_ns();
    const uint64_t deadline_ns = start_ns + static_cast<uint64_t>(options.duration_s * 1e9);
    const double interval_ns = open_loop ? 1e9 / options.rate : 0;
    uint64_t submitted = 0, placed = 0;
    // The closed loop hands commands over in batches, as a source that polls (Kafka) does;
    // the open loop one at a time, each at its scheduled time.
    const size_t submit_batch = open_loop ? 1 : kClosedLoopSubmitBatch;
    EnvelopeBatch pending;
    auto hand_over = [&] {
      while (!pending.empty()) {
        Status s = sink->submit_batch(pending);
        if (s) break;
        if (s.code() == StatusCode::kUnavailable) {  // at max_in_flight: wait for room
          sleep_us(100);
          continue;
        }
        tracker.outstanding.fetch_sub(pending.size());
        tracker.failed.fetch_add(pending.size());
        tracker.completed.fetch_add(pending.size());
        pending.clear();
      }
    };
    for (uint64_t i = 0; i < total; ++i) {
      uint64_t ingest = 0;
      if (open_loop) {
        // Latency counts from the scheduled time, so a stalled pipeline cannot hide
        // behind a driver that waits for it (coordinated omission).
        ingest = start_ns + static_cast<uint64_t>(static_cast<double>(i) * interval_ns);
        for (uint64_t now = steady_ns(); now + 1000 < ingest; now = steady_ns())
          sleep_us(static_cast<int>(std::min<uint64_t>((ingest - now) / 1000, 1000)));
      } else {
        if (by_duration && steady_ns() >= deadline_ns) break;
        if (tracker.outstanding.load(std::memory_order_acquire) >= options.in_flight) hand_over();
        while (tracker.outstanding.load(std::memory_order_acquire) >= options.in_flight) sleep_us(100);
        ingest = steady_ns();
      }
      if (i >= commands.size()) {
        if (more == nullptr) break;
        commands.push_back(more->next());
      }
      const bool place = commands[i].has_place_order();
      placed += place ? 1 : 0;
      auto env = make_envelope(commands[i], nullptr);
      // The envelope outlives its completion call, so the callback may read its stage times.
      env->done = [&tracker, place, ingest, e = env.get()](const Outcome& o) { tracker.done(o, place, ingest, *e); };
      env->ingest_ns = ingest;
      tracker.outstanding.fetch_add(1, std::memory_order_relaxed);
      pending.push_back(std::move(env));
      if (pending.size() >= submit_batch) hand_over();
      ++submitted;
    }
    hand_over();

    // Done when every client command completed, nothing (saga commands included) is in
    // flight, and every subscriber's checkpoint is at the head of its feed.
    auto quiescent = [&] {
      if (tracker.outstanding.load() != 0 || sink->in_flight() != 0) return false;
      for (size_t k = 0; k < feeds.size(); ++k)
        if (tracker.checkpoint_of(feed_subscribers[k].second) != feeds[k]->head()) return false;
      return true;
    };
    // With per-subscriber views, quiescent for `settle` in a row (see settle_ns); the
    // account's figures are taken when that stretch began.
    Status stalled;
    CosmosTotals cosmos1;
    uint64_t quiet_since = 0;
    for (int stable = 0; stable < 3 || steady_ns() - quiet_since < settle;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (quiescent()) {
        if (stable++ == 0) {
          quiet_since = steady_ns();
          if (cosmos) cosmos1 = cosmos_totals(built->pipeline->metrics());
        }
      } else {
        stable = 0;
      }
      const uint64_t last = std::max(tracker.last_event_ns.load(), start_ns);
      if (steady_ns() - last > 60'000'000'000ULL) {
        stalled = Status::internal("no progress for 60 s (" + std::to_string(tracker.outstanding.load()) +
                                   " client commands outstanding)");
        break;
      }
    }
    const uint64_t end_ns = std::max(tracker.last_event_ns.load(), start_ns + 1);
    const CpuTimes cpu1 = cpu_now();
    result.threads = thread_cpu_between(threads0, sample_threads());  // before the pipeline's threads stop
    const uint64_t settled_ns = steady_ns();
    const CosmosTotals cosmos2 = cosmos ? cosmos_totals(built->pipeline->metrics()) : CosmosTotals{};
    result.peak_rss_mb = peak_rss_mb();
    progress_done = true;
    if (progress.joinable()) progress.join();
    if (!stalled.is_ok()) {
      built->pipeline->shutdown(std::chrono::seconds(5));
      return stalled;
    }

    result.seconds = static_cast<double>(end_ns - start_ns) / 1e9;
    result.commands = tracker.completed.load();
    result.accepted = tracker.accepted.load();
    result.rejected = tracker.rejected.load();
    result.failed = tracker.failed.load();
    result.orders = tracker.orders.load();
    result.events = feeds.empty() ? 0 : feeds.front()->head();
    result.commands_per_s = static_cast<double>(result.commands) / result.seconds;
    result.events_per_s = static_cast<double>(result.events) / result.seconds;
    result.orders_per_s = static_cast<double>(result.orders) / result.seconds;
    result.commit = to_ms(tracker.commit);
    result.projection = to_ms(tracker.projection);
    for (size_t k = 0; k < kStages; ++k) result.stages[k] = to_ms(tracker.stages[k]);
    result.cpu_user_s = cpu1.user - cpu0.user;
    result.cpu_sys_s = cpu1.sys - cpu0.sys;
    if (cosmos) {
      CosmosFigures& c = result.cosmos;
      c.measured = true;
      c.workload_orders = placed;
      c.requests = cosmos1.requests - cosmos0.requests;
      c.request_units = cosmos1.request_units - cosmos0.request_units;
      c.throttles = static_cast<uint64_t>(cosmos1.throttles - cosmos0.throttles);
      for (auto by_op : {&CosmosTotals::ru_by_op, &CosmosTotals::requests_by_op}) {
        auto& into = by_op == &CosmosTotals::ru_by_op ? c.ru_by_op : c.requests_by_op;
        for (const auto& [op, v] : cosmos1.*by_op) {
          auto before = (cosmos0.*by_op).find(op);
          const double spent = v - (before == (cosmos0.*by_op).end() ? 0 : before->second);
          if (spent > 0) into[op] = spent;
        }
      }
      c.idle_ru_per_s = (cosmos2.request_units - cosmos1.request_units) /
                        std::max(1e-3, static_cast<double>(settled_ns - quiet_since) / 1e9);
      std::tie(c.orders_placed, c.orders_settled) = tracker.placed_and_settled();
      for (const auto& n : built->pipeline->metrics().snapshot().nodes)
        if (n.kind == "commit") c.all_commands += n.out;
      c.all_commands_per_s = static_cast<double>(c.all_commands) / result.seconds;
    }
    if (config.metrics) {
      for (const auto& n : built->pipeline->metrics().snapshot().nodes) {
        NodeFigure f;
        f.id = n.id;
        f.kind = n.kind;
        f.in = n.in;
        f.out = n.out;
        f.errors = n.errors;
        f.rate_out = static_cast<double>(n.out) / result.seconds;
        f.busy_share = static_cast<double>(n.busy_ns) / 1e9 / result.seconds;
        if (n.kind == "commit" && n.gauges.count("mean_batch_commands"))
          result.mean_commit_group = n.gauges.at("mean_batch_commands");
        result.nodes.push_back(std::move(f));
      }
    }
    if (recorded != nullptr && !feeds.empty()) {
      recorded->clear();
      std::vector<RecordedEvent> chunk;
      for (uint64_t after = 0; after < result.events;) {
        chunk.clear();
        if (auto s = feeds.front()->read(after, 65536, &chunk); !s) return s;
        if (chunk.empty()) break;
        for (const auto& e : chunk) recorded->push_back(connectors::encode_event(e));
        after = chunk.back().position;
      }
    }
    built->pipeline->shutdown(std::chrono::seconds(30));
  }
  std::filesystem::remove_all(dir, ec);
  return result;
}

namespace {

// A fresh DB with RocksDB's default options in `dir` (what was there is removed).
Result<std::unique_ptr<rocksdb::DB>> open_fresh_db(const std::string& dir, const std::string& what) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  rocksdb::Options o;
  o.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(o, dir, &raw);
  if (!s.ok()) return Status::io_error(what + ": cannot open " + dir + ": " + s.ToString());
  return std::unique_ptr<rocksdb::DB>(raw);
}

void close_and_remove(std::unique_ptr<rocksdb::DB>& db, const std::string& dir) {
  db->Close();
  db.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace

Result<BaselineResult> raw_rocksdb_baseline(const std::vector<std::string>& records, const std::string& dir) {
  auto opened = open_fresh_db(dir, "raw RocksDB baseline");
  if (!opened) return opened.status();
  std::unique_ptr<rocksdb::DB> db = std::move(*opened);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  const auto t0 = Clock::now();
  for (size_t i = 0; i < records.size();) {
    rocksdb::WriteBatch wb;
    for (int k = 0; k < 1000 && i < records.size(); ++k, ++i) {
      std::string key;
      connectors::put_u64_be(key, i + 1);
      wb.Put(key, records[i]);
    }
    if (auto w = db->Write(wo, &wb); !w.ok()) return Status::io_error("raw RocksDB baseline: " + w.ToString());
  }
  BaselineResult r;
  r.name = "raw-rocksdb";
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.events = records.size();
  r.events_per_s = static_cast<double>(r.events) / r.seconds;
  close_and_remove(db, dir);
  return r;
}

Result<BaselineResult> raw_rocksdb_paced_baseline(const std::vector<std::string>& records, const std::string& dir,
                                                  double events_per_s, std::chrono::microseconds interval) {
  if (records.empty() || events_per_s <= 0) return Status::invalid_argument("raw RocksDB paced baseline: no events to pace");
  auto opened = open_fresh_db(dir, "raw RocksDB paced baseline");
  if (!opened) return opened.status();
  std::unique_ptr<rocksdb::DB> db = std::move(*opened);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  BaselineResult r;
  r.name = "raw-rocksdb-paced";
  const std::chrono::duration<double> gap(1.0 / events_per_s);  // between two records
  auto due = [&](size_t i) { return std::chrono::duration_cast<Clock::duration>(gap * static_cast<double>(i)); };
  const ThreadSamples before = sample_threads();
  const auto t0 = Clock::now();
  auto last_write = t0 - interval;
  for (size_t i = 0; i < records.size();) {
    // Sleep until the next record is due and the interval since the last write has passed,
    // then write every record due by then in one synced batch.
    const auto wake = std::max(t0 + due(i), last_write + interval);
    if (Clock::now() < wake) std::this_thread::sleep_until(wake);
    last_write = Clock::now();
    rocksdb::WriteBatch wb;
    for (; i < records.size() && t0 + due(i) <= last_write; ++i) {
      std::string key;
      connectors::put_u64_be(key, i + 1);
      wb.Put(key, records[i]);
    }
    if (auto w = db->Write(wo, &wb); !w.ok()) return Status::io_error("raw RocksDB paced baseline: " + w.ToString());
    ++r.writes;
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  for (const auto& t : thread_cpu_between(before, sample_threads())) {
    r.cpu_s += t.cpu_s;
    r.sleeps += t.sleeps;
  }
  r.events = records.size();
  r.events_per_s = static_cast<double>(r.events) / r.seconds;
  close_and_remove(db, dir);
  return r;
}

BaselineResult cpu_loop_baseline(const std::vector<v1::Command>& commands) {
  // What the pipeline computes for each command, minus graph and stores: the lane's
  // decide, serialize and evolve, the projection's evolve into its own state, and the
  // saga's reactions, decided right after the event that caused them.
  const auto t0 = Clock::now();
  std::unordered_map<std::string, v1::StreamState> lane_states, projected;
  std::deque<v1::Command> work;
  uint64_t events = 0;
  for (const auto& client : commands) {
    work.push_back(client);
    while (!work.empty()) {
      const v1::Command c = std::move(work.front());
      work.pop_front();
      const std::string stream = orders::stream_of(c);
      auto& st = lane_states[stream];
      auto decided = orders::decide(st, c);
      if (!decided) continue;
      for (const auto& e : *decided) {
        const std::string payload = e.SerializeAsString();  // what the lane hands to commit
        orders::evolve(st, e);
        orders::evolve(projected[stream], e);
        ++events;
        for (auto& next : orders::saga_react(stream, st.version(), e)) work.push_back(std::move(next));
      }
    }
  }
  BaselineResult r;
  r.name = "cpu-loop";
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.events = events;
  r.events_per_s = static_cast<double>(events) / r.seconds;
  return r;
}

}  // namespace orderflow::bench
