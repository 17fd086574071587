#include "nodes/nodes.h"

#include <pthread.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <random>
#include <stdexcept>
#include <utility>

#include "graph/containers.h"
#include "graph/log.h"


namespace orderflow {
namespace {

Outcome failed(Status s) {
  Outcome o;
  o.status = std::move(s);
  return o;
}

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }


}  // namespace



// ---- route ------------------------------------------------------------------------

RouteNode::RouteNode(Pipeline& p, const std::string& id, const Domain& domain, int64_t max_in_flight)
    : RuntimeNode(id, "route", p.metrics().probe(id, "route")),
      domain_(domain),
      max_in_flight_(max_in_flight) {}

Status RouteNode::connect_to(RuntimeNode& to) {
  auto* lanes = dynamic_cast<LaneGroupNode*>(&to);
  if (lanes == nullptr) return Status::internal("node " + to.id() + " (kind " + to.kind() + ") takes no routed commands");
  if (lanes_ != nullptr && lanes_ != lanes) return Status::invalid_argument("a route feeds one group of lanes");
  lanes_ = lanes;
  return Status::ok();
}

Status RouteNode::prepare(Envelope& env) const {
  if (env.command == nullptr) return Status::invalid_argument("no command");
  if (auto s = domain_.validate(*env.command); !s) return s;
  env.command_id_ref = &domain_.command_id(*env.command);
  env.stream = domain_.stream_of(*env.command);
  if (env.ingest_ns == 0) env.ingest_ns = steady_ns();
  return Status::ok();
}

bool RouteNode::admit(int64_t n) {
  const int64_t before = in_flight_.fetch_add(n, std::memory_order_relaxed);
  if (before + n <= max_in_flight_ || before == 0) return true;
  in_flight_.fetch_sub(n, std::memory_order_relaxed);
  return false;
}

void RouteNode::release(const Envelope&) {
  probe().add_out();
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
}

Status RouteNode::submit(EnvelopePtr env) {
  if (auto s = prepare(*env); !s) return s;
  if (!admit(1))
    return Status::unavailable("pipeline is at its limit of " + std::to_string(max_in_flight_) +
                               " commands in flight");
  BusyTimer t(probe());
  probe().add_in();
  env->admitted = this;
  lanes_->dispatch(std::move(env));
  return Status::ok();
}

Status RouteNode::submit_batch(EnvelopeBatch& batch) {
  if (batch.empty()) return Status::ok();
  if (!admit(static_cast<int64_t>(batch.size())))
    return Status::unavailable("pipeline is at its limit of " + std::to_string(max_in_flight_) +
                               " commands in flight");
  BusyTimer t(probe());
  probe().add_in(batch.size());
  size_t kept = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    EnvelopePtr& env = batch[i];
    env->admitted = this;
    if (Status s = prepare(*env); !s) {
      env->complete(failed(std::move(s)));  // releases its place
      continue;
    }
    if (kept != i) batch[kept] = std::move(env);
    ++kept;
  }
  batch.resize(kept);
  lanes_->dispatch(batch);
  return Status::ok();
}

void RouteNode::drain(std::chrono::steady_clock::time_point deadline) {
  while (in_flight_.load() > 0 && std::chrono::steady_clock::now() < deadline) sleep_ms(1);
}

// ---- lanes ------------------------------------------------------------------------

LaneGroupNode::LaneGroupNode(Pipeline& p, const std::string& id, const Domain& domain, int lanes,
                             EventStore* events, SnapshotStore* snapshots, size_t cache_streams, RunOn run_on)
    : RuntimeNode(id, "command_lane", p.metrics().probe(id, "command_lane")),
      domain_(domain),
      events_(events),
      snapshots_(snapshots),
      cache_streams_(cache_streams),
      run_on_(run_on),
      verify_rejections_(events->shared() || events->finds_repeats_on_append()),
      skip_repeat_lookup_(events->finds_repeats_on_append()) {
  for (int i = 0; i < lanes; ++i) {
    auto lane = std::make_unique<Lane>();
    Lane* raw = lane.get();
    // noexcept: decide_one answers every failure of a command itself; anything that still
    // escapes (out of memory) would have cancelled the whole graph before.
    auto body = [this, raw](const BatchPtr& batch, LanePorts& out) noexcept { decide(*raw, batch, out); };
    if (run_on == RunOn::kCaller) {
      auto node = std::make_unique<InlineLaneNode>(p.graph(), tbb::flow::serial, body);
      lane->input = node.get();
      lane->output = &tbb::flow::output_port<0>(*node);
      lane->node = std::move(node);
    } else {
      auto node = std::make_unique<LaneNode>(p.graph(), tbb::flow::serial, body);
      lane->input = node.get();
      lane->output = &tbb::flow::output_port<0>(*node);
      lane->node = std::move(node);
    }
    lanes_.push_back(std::move(lane));
  }
  if (run_on == RunOn::kCaller) {
    redispatch_ = std::make_unique<tbb::flow::function_node<EnvelopePtr, tbb::flow::continue_msg>>(
        p.graph(), tbb::flow::serial, [this](const EnvelopePtr& env) {
          dispatch(env);
          return tbb::flow::continue_msg();
        });
  }
}

LaneGroupNode::RunOn LaneGroupNode::resolve_run_on(const std::string& run_on, bool shared_store, bool fed_by_kafka) {
  if (run_on == "caller") return RunOn::kCaller;
  if (run_on == "workers" || shared_store || fed_by_kafka) return RunOn::kWorkers;
  return RunOn::kCaller;
}

void LaneGroupNode::redispatch(EnvelopePtr env) {
  if (redispatch_) {
    redispatch_->try_put(std::move(env));
  } else {
    dispatch(std::move(env));
  }
}

Status LaneGroupNode::connect_to(RuntimeNode& to) {
  auto* commit = dynamic_cast<CommitNode*>(&to);
  if (commit == nullptr) return Status::internal("node " + to.id() + " (kind " + to.kind() + ") takes no decisions");
  if (commit->lanes() != nullptr && commit->lanes() != this)
    return Status::invalid_argument("commit " + to.id() + " already takes the decisions of " + commit->lanes()->id());
  for (auto* out : outputs()) tbb::flow::make_edge(*out, commit->input());
  commit->set_lanes(this);
  return Status::ok();
}

std::vector<tbb::flow::sender<BatchPtr>*> LaneGroupNode::outputs() {
  std::vector<tbb::flow::sender<BatchPtr>*> v;
  for (auto& l : lanes_) v.push_back(l->output);
  return v;
}

void LaneGroupNode::dispatch(EnvelopePtr env) {
  env->lane = static_cast<uint32_t>(std::hash<std::string>()(env->stream) % lanes_.size());
  probe().queue_add(1);
  const uint32_t lane = env->lane;
  lanes_[lane]->input->try_put(std::make_shared<EnvelopeBatch>(1, std::move(env)));
}

void LaneGroupNode::dispatch(EnvelopeBatch& batch) {
  if (batch.empty()) return;
  probe().queue_add(static_cast<int64_t>(batch.size()));
  bool one_lane = true;
  for (auto& env : batch) {
    env->lane = static_cast<uint32_t>(std::hash<std::string>()(env->stream) % lanes_.size());
    one_lane = one_lane && env->lane == batch.front()->lane;
  }
  if (one_lane) {
    const uint32_t lane = batch.front()->lane;
    lanes_[lane]->input->try_put(std::make_shared<EnvelopeBatch>(std::move(batch)));
    batch.clear();
    return;
  }
  std::vector<BatchPtr> per_lane(lanes_.size());
  for (auto& env : batch) {
    BatchPtr& b = per_lane[env->lane];
    if (!b) b = std::make_shared<EnvelopeBatch>();
    b->push_back(std::move(env));
  }
  batch.clear();
  for (size_t i = 0; i < per_lane.size(); ++i)
    if (per_lane[i]) lanes_[i]->input->try_put(per_lane[i]);
}

void LaneGroupNode::settle(Envelope& env) {
  if (env.lane_stream == nullptr) return;
  Lane& lane = *lanes_[env.lane];
  std::lock_guard lock(lane.mu);
  settle_locked(lane, env);
}

void LaneGroupNode::settle_locked(Lane& lane, Envelope& env) {
  LaneStream* entry = std::exchange(env.lane_stream, nullptr);
  if (entry == nullptr) return;
  // An invalidated entry was kept only for its pending decisions: the last one drops it.
  if (--entry->pending <= 0 && !entry->state) lane.cache.erase(env.stream);
}

void LaneGroupNode::complete(const EnvelopePtr& env, const Outcome& outcome) {
  std::vector<EnvelopePtr> repeats;
  {
    Lane& lane = *lanes_[env->lane];
    std::lock_guard lock(lane.mu);
    settle_locked(lane, *env);
    auto it = lane.in_flight.find(env->command_id());
    if (it != lane.in_flight.end() && it->second.owner == env.get()) {
      repeats = std::move(it->second.repeats);
      lane.in_flight.erase(it);
    }
  }
  env->complete(outcome);
  // Each parked repeat counted `in` when it reached the lane; it leaves now, answered or
  // sent back to be decided (which counts `in` again).
  if (!repeats.empty()) probe().add_out(repeats.size());
  for (auto& r : repeats) {
    // Same id on another stream: not a repeat; decided (and refused) on its own.
    if (outcome.status.is_ok() && r->stream == env->stream) {
      Outcome dup = outcome;
      dup.duplicate = true;
      dup.events = nullptr;
      r->complete(dup);
    } else {
      redispatch(std::move(r));  // the first failed: decide this one
    }
  }
}

void LaneGroupNode::invalidate(const Envelope& env) {
  // Commit invalidates only decided envelopes before it settles them: the entry is still
  // held for this one (pending), so it is neither looked up nor erased here; the last
  // settle of a stateless entry drops it.
  std::lock_guard lock(lanes_[env.lane]->mu);
  if (env.lane_stream != nullptr && env.lane_stream->chain <= env.chain) env.lane_stream->state.reset();
}

Result<MessagePtr> LaneGroupNode::load(const std::string& stream) {
  MessagePtr state = domain_.new_state();
  uint64_t from = 1;
  if (snapshots_ != nullptr) {
    auto snap = snapshots_->get(stream);
    if (!snap) return snap.status();
    if (snap->version > 0) {
      if (!state->ParseFromString(snap->state) || domain_.version(*state) != snap->version)
        return Status::io_error("corrupt snapshot of " + stream);
      from = snap->version + 1;
    }
  }
  std::vector<RecordedEvent> tail;
  if (auto s = events_->read_stream(stream, from, &tail); !s) return s;
  MessagePtr e = domain_.new_event();
  for (const auto& r : tail) {
    if (r.version != domain_.version(*state) + 1) return Status::io_error("gap in stream " + stream);
    if (!e->ParseFromString(r.payload)) return Status::io_error("undecodable event in " + stream);
    domain_.evolve(*state, *e);
  }
  return state;
}

void LaneGroupNode::decide(Lane& lane, const BatchPtr& batch, LanePorts& out) {
  // The batch is this lane's alone (dispatch made it): decided envelopes are compacted
  // into it and it goes on to commit as it is.
  EnvelopeBatch& envs = *batch;
  probe().queue_add(-static_cast<int64_t>(envs.size()));
  probe().add_in(envs.size());
  size_t kept = 0;
  {
    BusyTimer timer(probe());
    for (size_t i = 0; i < envs.size(); ++i) {
      if (!decide_one(lane, envs[i])) continue;
      if (kept != i) envs[kept] = std::move(envs[i]);
      ++kept;
    }
  }
  envs.resize(kept);
  if (kept > 0) {
    probe().add_out(kept);
    std::get<0>(out).try_put(batch);
  }
}

bool LaneGroupNode::decide_one(Lane& lane, EnvelopePtr& env) {
  if (NodeProbe::enabled()) env->decide_ns = steady_ns();
  env->rejection = Status::ok();  // a re-decision starts afresh
  try {
    if (env->deadline_ns != 0 && env->expired(steady_ns())) {
      // Its client has had its answer (or gave up): executing it now would surprise them.
      probe().add_out();
      probe().set_gauge("deadline_dropped", static_cast<double>(deadline_dropped_.fetch_add(1) + 1));
      complete(env, failed(Status::unavailable("the command's deadline passed before it was decided; it was not executed")));
      return false;
    }
    if (!skip_repeat_lookup_) {
      // A repeat of a command still in flight waits for the first one's outcome instead
      // of being decided against state that already contains its events. Checked before
      // the store: the first one leaves in_flight only once it is durable, so a repeat
      // that finds no entry here finds its result in the store below. (Checking the store
      // first raced with that hand-over: the repeat was decided afresh and rejected.)
      // Without the store look-up, the claim of the id below checks the same at once.
      std::lock_guard lock(lane.mu);
      auto fl = lane.in_flight.find(env->command_id());
      if (fl != lane.in_flight.end() && fl->second.owner != env.get()) {
        fl->second.repeats.push_back(std::move(env));
        return false;
      }
    }
    // A repeat of a committed command returns the first result and decides nothing. A store
    // that finds repeats on append (Cosmos DB's unique key) is not asked first: a repeat is
    // then decided, and its append or the version check of its rejection answers it as a
    // duplicate, which saves a query per command.
    auto found = skip_repeat_lookup_ ? Result<std::optional<AppendResult>>(std::optional<AppendResult>())
                                     : events_->find_command_in(env->stream, env->command_id());
    if (!found) {
      probe().add_error(found.status().to_string());
      probe().add_out();
      env->complete(failed(Status::unavailable(found.status().message())));
      return false;
    }
    if (found->has_value() && (**found).stream != env->stream) {
      // The id is taken by a command on another stream: not a repeat of this one. Answering
      // with that command's result would tell the client its (different) command happened.
      Status reused = command_id_taken(env->command_id(), (**found).stream);
      probe().add_error(reused.message());  // in the metrics too (a Kafka source dead-letters it)
      probe().add_out();
      env->complete(failed(std::move(reused)));
      return false;
    }
    if (found->has_value()) {
      Outcome o;
      o.duplicate = true;
      o.result = **found;
      probe().add_out();
      env->complete(o);
      return false;
    }
    ++env->attempts;
    {
      std::lock_guard lock(lane.mu);
      // Lanes are serial, so no other decision of this lane claimed the id meanwhile; a
      // re-decided envelope (conflict) still owns its entry.
      auto [fl, fresh] = lane.in_flight.try_emplace(env->command_id());
      if (!fresh && fl->second.owner != env.get()) {
        fl->second.repeats.push_back(std::move(env));
        return false;
      }
      fl->second.owner = env.get();
      auto release_in_flight = [&, fl = fl] {  // a copy: clang < 16 cannot capture a structured binding
        // Only called while no repeat can have been queued behind this decision.
        if (fl->second.repeats.empty()) lane.in_flight.erase(fl);
      };
      auto it = lane.cache.find(env->stream);
      const bool cached = it != lane.cache.end() && it->second.state;
      // A command that starts its stream is decided on the empty state the first time (see
      // Domain::starts_stream): its append expects version 0, so a stream that exists makes
      // it conflict, and the next attempt loads. Its rejection is verified (below) as well.
      // (An entry kept for pending decisions is not new: loaded.)
      const bool assumed_new =
          it == lane.cache.end() && env->attempts == 1 && domain_.starts_stream(*env->command);
      auto cache_state = [&](MessagePtr state) {
        if (it != lane.cache.end()) {  // invalidated while decisions were pending: reloaded
          it->second.state = std::move(state);
          it->second.chain = next_chain_.fetch_add(1);
          return it;
        }
        if (lane.cache.size() >= cache_streams_) {
          for (auto c = lane.cache.begin(); c != lane.cache.end();) {
            if (c->second.pending > 0) {
              ++c;
            } else {
              lane.cache.erase(c++);
            }
          }
        }
        return lane.cache.emplace(env->stream, LaneStream{std::move(state), next_chain_.fetch_add(1), 0}).first;
      };
      if (assumed_new) {
        it = cache_state(domain_.new_state());
      } else if (!cached) {
        auto loaded = load(env->stream);
        if (!loaded) {
          probe().add_error(loaded.status().to_string());
          auto repeats = std::move(fl->second.repeats);
          lane.in_flight.erase(fl);
          const Outcome o = failed(Status::unavailable("cannot load " + env->stream + ": " + loaded.status().message()));
          probe().add_out(1 + repeats.size());
          env->complete(o);
          for (auto& r : repeats) r->complete(o);
          return false;
        }
        it = cache_state(std::move(*loaded));
      }
      std::vector<MessagePtr> events;
      const Status decided = domain_.decide(*it->second.state, *env->command, &events);
      if (decided.is_ok() && events.empty())
        throw std::logic_error("domain " + domain_.name() + " decided no events for " + domain_.command_name(*env->command));
      if (!decided && decided.code() == StatusCode::kRejected &&
          (assumed_new || (verify_rejections_ && (cached || skip_repeat_lookup_)))) {
        // Another process may have moved the stream past the cached state: the rejection
        // counts only once commit has checked that the store is still at this version
        // (else the cache is dropped and the command re-decided), and, when the id was not
        // looked up first, that it is not a repeat. The in-flight entry stays, so repeats
        // wait for the verified outcome.
        env->rejection = decided;
        env->expected_version = domain_.version(*it->second.state);
        env->chain = it->second.chain;
        ++it->second.pending;
        env->lane_stream = &it->second;
        env->events.clear();
        env->payloads.clear();
      } else if (!decided) {
        if (decided.code() != StatusCode::kRejected) probe().add_error(decided.to_string());
        probe().add_out();
        // Rejections are not recorded, so repeats are decided afresh (they get the same answer).
        auto repeats = std::move(fl->second.repeats);
        fl->second.repeats.clear();
        release_in_flight();
        env->complete(failed(decided));
        probe().add_out(repeats.size());  // back to the lane, counted in again there
        for (auto& r : repeats) dispatch(std::move(r));
        return false;
      } else {
        env->expected_version = domain_.version(*it->second.state);
        env->chain = it->second.chain;
        ++it->second.pending;
        env->lane_stream = &it->second;
        env->events = std::move(events);
        env->payloads.clear();
        for (const auto& e : env->events) {
          env->payloads.push_back(e->SerializeAsString());
          domain_.evolve(*it->second.state, *e);  // speculative: later commands see it; undone on failure
        }
      }
    }
    return true;  // counted out by decide() with the rest of the batch
  } catch (const std::exception& ex) {
    probe().add_error(ex.what());
    probe().add_out();
    // Through complete(): the command may already own an in-flight entry (repeats would
    // wait behind it for ever) and count as pending on its stream.
    if (env) complete(env, failed(Status::internal(ex.what())));
    return false;
  }
}

// ---- commit -----------------------------------------------------------------------

CommitNode::CommitNode(Pipeline& p, const std::string& id, EventStore* events, size_t max_batch,
                       int max_retries, std::chrono::microseconds write_interval)
    : RuntimeNode(id, "commit", p.metrics().probe(id, "commit")),
      events_(events),
      max_batch_(max_batch),
      max_retries_(max_retries),
      write_interval_ns_(static_cast<uint64_t>(std::max<int64_t>(0, write_interval.count())) * 1000),
      // Serial, so envelopes of one lane reach the queue in the order the lane decided them.
      // noexcept, or oneTBB ignores queueing_lightweight and spawns a task per batch.
      input_(p.graph(), tbb::flow::serial, [this](const BatchPtr& batch) noexcept {
        enqueue(*batch);
        return tbb::flow::continue_msg();
      }, tbb::flow::queueing_lightweight()) {}

CommitNode::~CommitNode() { stop(); }

std::chrono::microseconds CommitNode::resolve_write_interval(int64_t configured, const EventStore& events) {
  if (configured >= 0) return std::chrono::microseconds(configured);
  return events.syncs_each_append() ? kSyncedWriteInterval : std::chrono::microseconds(0);
}

Status CommitNode::start() {
  completer_ = std::thread([this] {
    name_thread("of-complete");
    run_completions();
  });
  writer_ = std::thread([this] {
    name_thread("of-commit");
    run();
  });
  return Status::ok();
}

void CommitNode::run_completions() {
  std::vector<std::pair<EnvelopePtr, Outcome>> work;
  for (;;) {
    {
      std::unique_lock lock(done_mu_);
      done_cv_.wait(lock, [&] { return !done_.empty() || done_stopping_; });
      if (done_.empty()) return;
      work.swap(done_);
      completing_ = true;
    }
    complete_all(work);  // the envelopes are released here, not on the writer
    {
      std::lock_guard lock(done_mu_);
      completing_ = false;
    }
    done_idle_cv_.notify_all();
  }
}

void CommitNode::complete_all(std::vector<std::pair<EnvelopePtr, Outcome>>& work) {
  for (auto& [env, outcome] : work) {
    try {
      lanes_->complete(env, outcome);
    } catch (const std::exception& ex) {
      probe().add_error(std::string("completion: ") + ex.what());
    }
  }
  work.clear();
}

void CommitNode::enqueue(EnvelopeBatch& batch) {
  if (NodeProbe::enabled()) {
    const uint64_t now = steady_ns();
    for (auto& env : batch) env->queued_ns = now;
  }
  probe().add_in(batch.size());
  probe().queue_add(static_cast<int64_t>(batch.size()));
  bool wake;
  {
    std::lock_guard lock(mu_);
    // The writer only sleeps on an empty queue: wake it for the first batch, not for each
    // one (a futex call per command showed up in profiles); while it spaces its writes, wake
    // it once a full group is queued.
    wake = (queue_.empty() && !busy_) ||
           (spacing_ && queue_.size() < max_batch_ && queue_.size() + batch.size() >= max_batch_);
    for (auto& env : batch) queue_.push_back(std::move(env));
  }
  batch.clear();
  if (wake) cv_.notify_one();
}

void CommitNode::run() {
  std::vector<EnvelopePtr> batch;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;
      if (write_interval_ns_ > 0) {
        // Under load, space the writes: a sync costs the same for one command as for a
        // thousand (on a virtual disk most of it is the device notification), so the
        // commands of the interval share one. An idle writer writes at once: the interval
        // since its last write has passed.
        const uint64_t due = last_write_ns_ + write_interval_ns_;
        const uint64_t now = steady_ns();
        if (now < due && queue_.size() < max_batch_) {
          spacing_ = true;
          cv_.wait_for(lock, std::chrono::nanoseconds(due - now),
                       [&] { return stopping_ || queue_.size() >= max_batch_; });
          spacing_ = false;
        }
      }
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      busy_ = true;
    }
    probe().queue_add(-static_cast<int64_t>(batch.size()));
    if (write_interval_ns_ > 0) last_write_ns_ = steady_ns();
    try {
      commit(batch);
    } catch (const std::exception& ex) {
      // Nothing may escape the writer: fail what is left of the batch, keep running.
      probe().add_error(std::string("commit: ") + ex.what());
      Outcome o;
      o.status = Status::internal(std::string("commit failed: ") + ex.what());
      for (auto& env : batch)
        if (env) lanes_->complete(env, o);
    }
    batch.clear();
    {
      std::lock_guard lock(mu_);
      busy_ = false;
    }
    idle_cv_.notify_all();
  }
}

void CommitNode::commit(std::vector<EnvelopePtr>& all) {
  BusyTimer timer(probe());
  // Commands decided on a chain that already failed are re-decided, not appended: their
  // state included events that were never written. They still go to the store, marked, so
  // that the repeats among them are answered there (AppendRequest::chain_failed).
  std::vector<EnvelopePtr> batch;
  std::vector<char> chain_failed;  // per batch entry: its chain failed in an earlier group
  batch.reserve(all.size());
  chain_failed.reserve(all.size());
  const uint64_t started = steady_ns();
  for (auto& env : all) {
    if (env->expired(started)) {
      // Decided, not written: dropped like an undecided one. Later commands decided on its
      // speculative state are re-decided (its chain failed).
      uint64_t& f = failed_chains_[env->stream];
      f = std::max(f, env->chain);
      lanes_->invalidate(*env);
      probe().add_out();
      probe().set_gauge("deadline_dropped", static_cast<double>(++deadline_dropped_));
      lanes_->complete(env, failed(Status::unavailable("the command's deadline passed before it was written; it was not executed")));
      continue;
    }
    auto f = failed_chains_.find(env->stream);
    bool after_failure = false;
    if (f != failed_chains_.end()) {
      if (env->chain <= f->second) {
        // Still sent: the store answers a repeat among them with its first result (a
        // redelivered saga batch is a chain of repeats), and fails the rest as conflicts.
        after_failure = true;
      } else {
        failed_chains_.erase(f);  // a newer chain: everything older has passed (lanes emit in order)
      }
    }
    batch.push_back(env);  // `all` keeps a reference, so run() can fail it if this throws
    chain_failed.push_back(after_failure);
  }
  if (failed_chains_.size() > 1000000) failed_chains_.clear();
  std::vector<AppendRequest> requests(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    requests[i].stream = batch[i]->stream;
    requests[i].expected_version = batch[i]->expected_version;
    requests[i].command_id = batch[i]->command_id();
    requests[i].events = std::move(batch[i]->payloads);
    requests[i].chain = batch[i]->chain;
    requests[i].verify_only = !batch[i]->rejection.is_ok();
    requests[i].chain_failed = chain_failed[i] != 0;
  }
  const uint64_t write_start = NodeProbe::enabled() ? steady_ns() : 0;
  std::vector<AppendResult> results = events_->append(requests);
  const uint64_t now = steady_ns();
  std::vector<std::pair<EnvelopePtr, Outcome>> written;
  written.reserve(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    EnvelopePtr& env = batch[i];
    AppendResult& r = results[i];
    env->write_ns = write_start;
    env->written_ns = now;
    Outcome o;
    o.result = r;
    if (!r.status.is_ok() || r.duplicate) {
      uint64_t& f = failed_chains_[env->stream];
      f = std::max(f, env->chain);
    }
    if (r.status.is_ok() && requests[i].verify_only && r.duplicate) {
      // A rejected repeat of a written command: answered with the first result.
      o.duplicate = true;
      probe().add_out();
      written.emplace_back(env, std::move(o));
      continue;
    }
    if (r.status.is_ok() && requests[i].verify_only) {
      // The rejection was decided on the stream's current version: it stands.
      o.status = env->rejection;
      probe().add_out();
      written.emplace_back(env, std::move(o));
      continue;
    }
    if (r.status.is_ok()) {
      o.duplicate = r.duplicate;
      if (r.duplicate) {
        lanes_->invalidate(*env);  // the speculative state holds events never written
      } else {
        o.events = &env->events;
      }
      probe().add_out();
      if (NodeProbe::enabled()) probe().record_latency_us((now - env->ingest_ns) / 1000);
      written.emplace_back(env, std::move(o));
      continue;
    }
    if (r.status.code() == StatusCode::kConflict) {
      retry_or_fail(env, r.status);
      continue;
    }
    lanes_->invalidate(*env);
    probe().add_error(r.status.to_string());
    o.status = r.status;
    lanes_->complete(env, o);
  }
  if (!written.empty()) {
    bool inline_completion = false, wake = false;
    {
      std::lock_guard lock(done_mu_);
      // A small group with the completer idle is completed right here: handing it over
      // costs a thread wake-up (tens of microseconds, milliseconds on a busy machine) for
      // a few microseconds of work. Large groups go to the completer, so the writer starts
      // the next group at once; so do duplicates, whose callbacks may read the store (the
      // HTTP source fetches the first result's events). Either way completions keep the
      // commit order.
      if (written.size() <= kInlineCompletions && done_.empty() && !completing_ &&
          std::none_of(written.begin(), written.end(), [](const auto& w) { return w.second.duplicate; })) {
        inline_completion = true;
      } else {
        wake = done_.empty();
        if (done_.empty()) done_.swap(written);
        else std::move(written.begin(), written.end(), std::back_inserter(done_));
      }
    }
    if (inline_completion) {
      complete_all(written);
    } else if (wake) {
      done_cv_.notify_one();
    }
  }
  ++batches_;
  batched_commands_ += all.size();
  probe().set_gauge("last_batch_commands", static_cast<double>(all.size()));
  probe().set_gauge("mean_batch_commands", static_cast<double>(batched_commands_) / static_cast<double>(batches_));
}

void CommitNode::retry_or_fail(EnvelopePtr& env, const Status& conflict) {
  lanes_->invalidate(*env);
  if (env->attempts <= max_retries_) {
    lanes_->settle(*env);
    env->events.clear();
    lanes_->redispatch(std::move(env));  // re-decide on fresh state
    return;
  }
  probe().add_error(conflict.to_string());
  Outcome o;
  o.status = conflict;
  o.result.stream = env->stream;
  lanes_->complete(env, o);
}

void CommitNode::drain(std::chrono::steady_clock::time_point deadline) {
  {
    std::unique_lock lock(mu_);
    idle_cv_.wait_until(lock, deadline, [&] { return queue_.empty() && !busy_; });
  }
  std::unique_lock lock(done_mu_);
  done_idle_cv_.wait_until(lock, deadline, [&] { return done_.empty() && !completing_; });
}

void CommitNode::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  {
    std::lock_guard lock(done_mu_);
    done_stopping_ = true;  // the completer finishes what is queued, then exits
  }
  done_cv_.notify_all();
  if (completer_.joinable()) completer_.join();
}

// ---- change feed ------------------------------------------------------------------

ChangeFeedNode::ChangeFeedNode(Pipeline& p, const std::string& id, ChangeFeed* feed, size_t batch,
                               int poll_ms, std::chrono::milliseconds unhealthy_after, const Domain* domain)
    : RuntimeNode(id, "change_feed", p.metrics().probe(id, "change_feed")),
      feed_(feed),
      batch_(batch),
      poll_ms_(poll_ms),
      unhealthy_after_(unhealthy_after),
      domain_(domain) {}

Status ChangeFeedNode::read(ChangeFeed* feed, uint64_t after, Chunk* out) {
  auto decode_and_wrap = [&](std::vector<RecordedEvent>&& events) {
    if (!events.empty())
      probe().set_gauge("store_events_read", static_cast<double>(store_events_read_.fetch_add(events.size()) + events.size()));
    if (domain_ != nullptr) {
      for (auto& r : events) {
        MessagePtr e = domain_->new_event();
        if (e->ParseFromString(r.payload)) r.event = std::move(e);  // else: each subscriber reports it
      }
    }
    return std::make_shared<const std::vector<RecordedEvent>>(std::move(events));
  };
  if (!feed->global_positions() || subscribers_.size() < 2) {
    // Positions are the subscriber's own (Cosmos DB's per-range views): nothing to share.
    std::vector<RecordedEvent> events;
    if (Status s = feed->read(after, batch_, &events); !s) return s;
    *out = decode_and_wrap(std::move(events));
    return Status::ok();
  }
  auto cached = [&]() -> bool {
    std::lock_guard lock(tail_mu_);
    auto it = tail_.find(after + 1);
    if (it == tail_.end()) return false;
    *out = it->second;
    probe().set_gauge("tail_hits", static_cast<double>(tail_hits_.fetch_add(1) + 1));
    return true;
  };
  if (cached()) return Status::ok();
  std::lock_guard reading(tail_read_mu_);
  if (cached()) return Status::ok();  // another subscriber read it meanwhile
  std::vector<RecordedEvent> events;
  if (Status s = feed->read(after, batch_, &events); !s) return s;
  *out = decode_and_wrap(std::move(events));
  if ((*out)->empty()) return Status::ok();
  std::lock_guard lock(tail_mu_);
  tail_.emplace(after + 1, *out);
  // The newest chunks stay: a subscriber far behind reads past them from the store, and its
  // old chunk leaves at once.
  while (tail_.size() > kTailChunks) tail_.erase(tail_.begin());
  return Status::ok();
}

ChangeFeedNode::~ChangeFeedNode() {
  stop_intake();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

Status ChangeFeedNode::start() {
  // A subscriber's output ahead of the event store (the event store restored from an older
  // copy than the snapshot store) would make every command on those streams conflict for
  // ever: command lanes decide on the snapshot's version, which the store never reaches.
  // Refuse to start instead, naming both sides and the way out.
  if (feed_->global_positions()) {
    const uint64_t head = feed_->head();
    for (auto* s : subscribers_) {
      auto covered = s->covered_position();
      if (!covered) return covered.status();
      if (covered->has_value() && **covered > head)
        return Status::io_error(
            "the output of subscriber " + s->subscriber_id() + " covers the change feed up to position " +
            std::to_string(**covered) + ", but the event store ends at " + std::to_string(head) +
            ": the event store is older than its read model (restored from an older copy, or its events lost). "
            "Restore the event store that matches it, or, to accept the event store as it is, stop and run "
            "'orderflow repair rebuild-projection' so the read model is rebuilt from it");
    }
  }
  running_ = true;
  failing_.clear();
  controls_.clear();
  for (size_t i = 0; i < subscribers_.size(); ++i) {
    failing_.push_back(std::make_unique<Failing>());
    controls_.push_back(std::make_unique<Control>());
  }
  for (size_t i = 0; i < subscribers_.size(); ++i)
    threads_.emplace_back([this, s = subscribers_[i], f = failing_[i].get(), c = controls_[i].get()] {
      name_thread("of-feed-" + s->subscriber_id());
      run(s, *f, *c);
      std::lock_guard lock(c->mu);
      c->running = false;
      c->cv.notify_all();
    });
  return Status::ok();
}

ChangeFeedNode::Control* ChangeFeedNode::control_of(const std::string& subscriber) {
  for (size_t i = 0; i < subscribers_.size() && i < controls_.size(); ++i)
    if (subscribers_[i]->subscriber_id() == subscriber) return controls_[i].get();
  return nullptr;
}

std::vector<SubscriberPosition> ChangeFeedNode::positions() {
  std::vector<SubscriberPosition> out;
  const bool global = feed_->global_positions();
  const uint64_t store_head = global ? feed_->head() : 0;
  for (size_t i = 0; i < subscribers_.size() && i < controls_.size(); ++i) {
    Control& c = *controls_[i];
    SubscriberPosition p;
    p.subscriber = subscribers_[i]->subscriber_id();
    const auto* node = dynamic_cast<const RuntimeNode*>(subscribers_[i]);
    p.kind = node != nullptr ? node->kind() : "subscriber";
    p.checkpoint = c.checkpoint.load();
    ChangeFeed* view = c.view.load();
    p.head = global ? store_head : (view != nullptr ? view->head() : 0);
    p.running = c.running.load();
    p.resettable = global;
    if (!global)
      p.not_resettable_because = "the change feed's store has no global positions (Cosmos DB: checkpoints are "
                                 "per partition key range), so a checkpoint cannot be named or moved";
    out.push_back(std::move(p));
  }
  return out;
}

Status ChangeFeedNode::pause(const std::string& subscriber, std::chrono::milliseconds timeout) {
  Control* c = control_of(subscriber);
  if (c == nullptr) return Status::not_found("change feed " + id() + " has no subscriber " + subscriber);
  if (!feed_->global_positions())
    return Status::conflict("change feed " + id() +
                            " reads a store without global positions (Cosmos DB): its subscribers' checkpoints "
                            "cannot be moved");
  if (!running_ || !c->running)
    return Status::unavailable("subscriber " + subscriber + " of change feed " + id() +
                               " is not delivering (starting, stopping, or its checkpoint cannot be loaded)");
  std::unique_lock lock(c->mu);
  if (c->pause_wanted) return Status::conflict("subscriber " + subscriber + " is already paused by another request");
  c->pause_wanted = true;
  c->pause_flag = true;
  const bool paused = c->cv.wait_for(lock, timeout, [&] { return c->paused || !running_ || !c->running; });
  if (!paused || !c->paused) {
    c->pause_wanted = false;
    c->pause_flag = false;
    c->cv.notify_all();
    return Status::unavailable("subscriber " + subscriber + " did not pause within " +
                               std::to_string(timeout.count()) + " ms (its outstanding batches did not finish)");
  }
  return Status::ok();
}

Result<uint64_t> ChangeFeedNode::resume(const std::string& subscriber, std::optional<uint64_t> checkpoint,
                                        bool forget) {
  Control* c = control_of(subscriber);
  if (c == nullptr) return Status::not_found("change feed " + id() + " has no subscriber " + subscriber);
  std::unique_lock lock(c->mu);
  if (!c->pause_wanted) return Status::invalid_argument("subscriber " + subscriber + " is not paused");
  const uint64_t old = c->checkpoint.load();
  c->target = checkpoint;
  c->forget = forget;
  c->pause_wanted = false;
  c->pause_flag = false;
  const uint64_t seen = c->resumes;
  c->cv.notify_all();
  // The feed thread applies it at once (it waits on this condition); a stopping node may not.
  c->cv.wait(lock, [&] { return c->resumes > seen || !c->running; });
  if (c->resumes == seen) return Status::unavailable("the change feed stopped before the reset was applied");
  if (!c->applied) return c->applied;
  return old;
}

Status ChangeFeedNode::health() const {
  const uint64_t now = steady_ns();
  const auto limit = static_cast<uint64_t>(std::chrono::nanoseconds(unhealthy_after_).count());
  for (size_t i = 0; i < failing_.size() && i < subscribers_.size(); ++i) {
    const uint64_t since = failing_[i]->since_ns.load(std::memory_order_relaxed);
    if (since == 0 || now - since < limit) continue;
    std::lock_guard lock(failing_[i]->mu);
    return Status::unavailable("subscriber " + subscribers_[i]->subscriber_id() + " has made no progress for " +
                               std::to_string((now - since) / 1000000000) + " s: " + failing_[i]->last_error);
  }
  return Status::ok();
}

void ChangeFeedNode::failed(FeedSubscriber* s, Failing& f, const std::string& error) {
  {
    std::lock_guard lock(f.mu);
    f.last_error = error;
  }
  const uint64_t now = steady_ns();
  uint64_t since = f.since_ns.load(std::memory_order_relaxed);
  if (since == 0) f.since_ns.store(since = now, std::memory_order_relaxed);
  if (!f.warned && now - since >= static_cast<uint64_t>(std::chrono::nanoseconds(unhealthy_after_).count())) {
    f.warned = true;  // once per episode: the metrics count every failure
    log::warn("change feed: a subscriber keeps failing; its events are redelivered and readiness is 503 until it "
              "succeeds",
              {{"node", id()}, {"subscriber", s->subscriber_id()}, {"error", error}});
  }
}

void ChangeFeedNode::progressed(FeedSubscriber* s, Failing& f) {
  if (f.since_ns.load(std::memory_order_relaxed) == 0) return;
  f.since_ns.store(0, std::memory_order_relaxed);
  if (f.warned) log::info("change feed: the subscriber makes progress again", {{"node", id()}, {"subscriber", s->subscriber_id()}});
  f.warned = false;
}

void ChangeFeedNode::stop_intake() {
  running_ = false;
  for (auto& c : controls_) {  // a paused feed thread, or a caller waiting for one, wakes up
    std::lock_guard lock(c->mu);
    c->cv.notify_all();
  }
}

void ChangeFeedNode::drain(std::chrono::steady_clock::time_point) {
  // The threads finish the batch in hand and save its checkpoint; no deadline can cut
  // that short without redelivery, which is allowed but wasteful.
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

void ChangeFeedNode::run(FeedSubscriber* sub, Failing& failing, Control& control) {
  NodeProbe& sp = sub->subscriber_probe();
  const size_t max_outstanding = std::max<size_t>(1, sub->max_outstanding());
  ChangeFeed* feed = nullptr;  // this subscriber's view: positions below are in its terms
  for (;;) {
    auto f = feed_->subscribe(sub->subscriber_id());
    if (f) {
      feed = *f;
      break;
    }
    sp.add_error("cannot subscribe: " + f.status().to_string());
    failed(sub, failing, "cannot subscribe: " + f.status().to_string());
    if (!running_) return;
    sleep_ms(200);
  }
  uint64_t checkpoint = 0;  // persisted: every event up to here is fully handled
  for (;;) {
    auto cp = feed->load_checkpoint(sub->subscriber_id());
    if (cp) {
      checkpoint = *cp;
      break;
    }
    sp.add_error("cannot load checkpoint: " + cp.status().to_string());
    failed(sub, failing, "cannot load checkpoint: " + cp.status().to_string());
    if (!running_) return;
    sleep_ms(200);
  }
  // A subscriber whose own output lost its tail (its snapshot store restored from an older
  // copy, or its WAL tail gone) would otherwise stay behind for ever on streams with no new
  // events: its checkpoint says they were handled. Deliver the gap again (idempotent).
  for (;;) {
    auto covered = sub->covered_position();
    if (!covered) {
      sp.add_error("cannot read what the subscriber's output covers: " + covered.status().to_string());
      if (!running_) return;
      sleep_ms(200);
      continue;
    }
    if (feed->global_positions() && covered->has_value() && **covered < checkpoint) {
      // Covering nothing is also what a store written before these marks existed reads as:
      // say so, rather than alarm the operator of an upgrade about damage.
      log::warn(**covered == 0 ? "subscriber's output holds no mark of what it covers (a new or wiped store, or one "
                                 "from before such marks); replaying the feed from the start"
                               : "subscriber's output is behind its checkpoint (its unsynced tail lost to a power "
                                 "failure, or a restored or damaged store); replaying the gap",
                {{"subscriber", sub->subscriber_id()}, {"checkpoint", std::to_string(checkpoint)},
                 {"covered", std::to_string(**covered)}});
      if (auto s = feed->save_checkpoint(sub->subscriber_id(), **covered); !s) {
        sp.add_error("cannot move the checkpoint back: " + s.to_string());
        if (!running_) return;
        sleep_ms(200);
        continue;
      }
      checkpoint = **covered;
    }
    break;
  }
  sp.set_gauge("checkpoint", static_cast<double>(checkpoint));  // from the start, not only once it moves
  control.checkpoint = checkpoint;
  control.view = feed;
  control.running = true;
  struct Outstanding {
    uint64_t last_position;
    size_t events;
    std::shared_ptr<BatchTicket> ticket;  // null: finished when handle() returned
  };
  std::deque<Outstanding> outstanding;
  uint64_t read_pos = checkpoint;  // events up to here were handed to the subscriber
  uint64_t handled_to = checkpoint;  // events up to here are fully handled; saved up to `checkpoint`
  auto saved_at = std::chrono::steady_clock::now();
  bool quiet = false;  // caught up with nothing outstanding, since quiet_since
  auto quiet_since = saved_at;
  int backoff_ms = 10;

  // Saves what is handled as the checkpoint: at once when `now`, else at most once per
  // kCheckpointEvery. A save per batch was 12-16% of a feed thread at 2,000 commands/s (a
  // RocksDB write queued behind the group commit's sync); a later save only means a crash
  // redelivers a little more, which every subscriber handles (at-least-once).
  auto persist = [&](bool now) -> bool {
    if (handled_to == checkpoint) return true;
    const auto t = std::chrono::steady_clock::now();
    if (!now && t - saved_at < kCheckpointEvery) return true;
    if (auto cs = feed->save_checkpoint(sub->subscriber_id(), handled_to); !cs) {
      sp.add_error(cs.to_string());
      failed(sub, failing, "cannot save checkpoint: " + cs.to_string());
      return false;
    }
    saved_at = t;
    checkpoint = handled_to;
    control.checkpoint = checkpoint;
    progressed(sub, failing);
    sp.set_gauge("checkpoint", static_cast<double>(checkpoint));
    return true;
  };

  // Moves what is handled past the completed prefix of outstanding batches and saves it
  // (see persist; kUntilAll saves at once). On a failed batch, waits for the rest and
  // rewinds to what is handled (redelivery).
  enum Block { kNoWait, kUntilOne, kUntilAll };
  auto settle = [&](Block block) -> bool {
    const bool save_now = block == kUntilAll;
    uint64_t advanced = handled_to;
    while (!outstanding.empty()) {
      auto& front = outstanding.front();
      if (front.ticket && !front.ticket->done()) {
        if (block == kNoWait) break;
        front.ticket->wait_for(std::chrono::milliseconds(100));
        continue;
      }
      if (block == kUntilOne) block = kNoWait;
      Status s = front.ticket ? front.ticket->status() : Status::ok();
      if (!s) {
        sp.add_error(s.to_string());
        failed(sub, failing, s.to_string());
        for (auto& o : outstanding)
          if (o.ticket) while (!o.ticket->wait_for(std::chrono::milliseconds(100))) {}
        outstanding.clear();
        read_pos = advanced;
        break;
      }
      advanced = front.last_position;
      probe().add_out(front.events);
      outstanding.pop_front();
    }
    handled_to = advanced;
    if (!persist(save_now)) return false;
    return read_pos >= handled_to;
  };

  // An operator's reset (FeedControl::pause, then resume): between batches, the subscriber
  // finishes what it holds, the outstanding batches complete and are checkpointed, then
  // this thread waits; resume() may name a new checkpoint, saved here before delivery goes on.
  auto pause_here = [&] {
    sub->idle(true);
    settle(kUntilAll);
    std::optional<uint64_t> target;
    bool forget = false;
    {
      std::unique_lock lock(control.mu);
      control.paused = true;
      control.cv.notify_all();
      control.cv.wait(lock, [&] { return !control.pause_wanted || !running_; });
      control.paused = false;
      if (!control.pause_wanted) {
        target = control.target;
        forget = control.forget;
      }
      control.target.reset();
    }
    Status applied;
    if (target) {
      applied = feed->save_checkpoint(sub->subscriber_id(), *target);
      if (applied) {
        if (forget) sub->forget();
        log::info("change feed: subscriber's checkpoint moved by an operator",
                  {{"node", id()}, {"subscriber", sub->subscriber_id()}, {"from", std::to_string(checkpoint)},
                   {"to", std::to_string(*target)}, {"forget", forget ? "yes" : "no"}});
        checkpoint = handled_to = read_pos = *target;
        control.checkpoint = checkpoint;
        sp.set_gauge("checkpoint", static_cast<double>(checkpoint));
      } else {
        sp.add_error("cannot save the checkpoint an operator asked for: " + applied.to_string());
      }
    }
    std::lock_guard lock(control.mu);
    control.applied = applied;
    ++control.resumes;
    control.cv.notify_all();
  };

  Chunk chunk;
  while (running_) {
    if (control.pause_flag.load(std::memory_order_relaxed)) {
      pause_here();
      continue;
    }
    settle(outstanding.size() >= max_outstanding ? kUntilOne : kNoWait);
    chunk.reset();
    Status read_status;
    {
      BusyTimer timer(probe());  // the feed's own work: reading (and decoding) the log
      read_status = read(feed, read_pos, &chunk);
    }
    if (auto s = read_status; !s) {
      probe().add_error(s.to_string());
      failed(sub, failing, "cannot read the feed: " + s.to_string());
      sleep_ms(backoff_ms);
      backoff_ms = std::min(backoff_ms * 2, 1000);
      continue;
    }
    const std::vector<RecordedEvent>& batch = *chunk;
    const uint64_t head = feed->head();
    sp.set_gauge("lag_events", static_cast<double>(head > handled_to ? head - handled_to : 0));
    if (batch.empty()) {
      sub->idle(false);
      if (outstanding.empty()) {
        progressed(sub, failing);  // caught up, nothing owed
        sp.set_gauge("lag_seconds", 0);
        // What is handled is saved once the feed has been quiet for kCheckpointIdle.
        const auto t = std::chrono::steady_clock::now();
        if (!quiet) quiet_since = t;
        quiet = true;
        if (handled_to != checkpoint && t - quiet_since >= kCheckpointIdle) persist(true);
        const std::chrono::milliseconds poll(poll_ms_);
        feed->wait(read_pos, handled_to != checkpoint ? std::min(poll, kCheckpointIdle) : poll);
      } else if (outstanding.front().ticket) {
        outstanding.front().ticket->wait_for(std::min(kIdleRecheck, std::chrono::milliseconds(poll_ms_)));
      }
      continue;
    }
    quiet = false;
    const int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    sp.set_gauge("lag_seconds", std::max<double>(0, static_cast<double>(now - batch.front().committed_at_us) / 1e6));
    probe().add_in(batch.size());
    Result<std::shared_ptr<BatchTicket>> handled = Status::internal("not handled");
    try {
      handled = sub->handle(batch);
    } catch (const std::exception& ex) {
      handled = Status::internal(ex.what());
    }
    if (!handled) {
      sp.add_error(handled.status().to_string());
      failed(sub, failing, handled.status().to_string());
      settle(kUntilAll);       // finish what is outstanding, then redeliver this batch
      read_pos = handled_to;
      sleep_ms(backoff_ms);
      backoff_ms = std::min(backoff_ms * 2, 1000);
      continue;
    }
    backoff_ms = 10;
    read_pos = batch.back().position;
    outstanding.push_back({read_pos, batch.size(), std::move(*handled)});
  }
  // Stopping: let the outstanding batches finish (their commands are still committed by
  // the running pipeline) and persist the checkpoint.
  sub->idle(true);
  settle(kUntilAll);
}

Status ChangeFeedNode::connect_to(RuntimeNode& to) {
  auto* subscriber = dynamic_cast<FeedSubscriber*>(&to);
  if (subscriber == nullptr) return Status::internal("node " + to.id() + " (kind " + to.kind() + ") takes no events");
  subscriber->feed_replays_lost_output(feed_->global_positions());
  add_subscriber(subscriber);
  return Status::ok();
}

// ---- projection -------------------------------------------------------------------

ProjectionNode::ProjectionNode(Pipeline& p, const std::string& id, const Domain& domain, SnapshotStore* snapshots,
                               EventStore* events, std::chrono::milliseconds flush_interval,
                               size_t flush_batches)
    : RuntimeNode(id, "projection", p.metrics().probe(id, "projection")),
      domain_(domain),
      snapshots_(snapshots),
      events_(events),
      flush_interval_(flush_interval),
      idle_flush_age_(std::max(std::chrono::milliseconds(1), flush_interval / 5)),
      flush_batches_(std::max<size_t>(1, flush_batches)),
      counter_specs_(domain.counters()),
      counted_(counter_specs_.size()),
      unwritten_counted_(counter_specs_.size()) {
  // Running totals are counters in the exposition (orderflow_<name>_total).
  for (const auto& c : counter_specs_) declare_figure(c.name, FigureSpec{FigureType::kCounter, c.help, "", ""});
}

Result<std::shared_ptr<BatchTicket>> ProjectionNode::handle(const std::vector<RecordedEvent>& batch) {
  BusyTimer timer(probe());
  try {
    if (cache_.size() > 200000) {
      if (Status s = flush(); !s) return s;  // never drop a state that is not written yet
      empty_keeping_capacity(cache_);
    }
    if (Status s = apply(batch); !s) {
      abandon(s);
      return s;
    }
    if (!batch.empty()) applied_position_ = batch.back().position;
    auto ticket = std::make_shared<BatchTicket>();
    ticket->add();
    if (pending_.empty()) first_pending_ = std::chrono::steady_clock::now();
    pending_.push_back(ticket);
    if (pending_.size() >= flush_batches_ || std::chrono::steady_clock::now() - first_pending_ >= flush_interval_)
      flush();  // on failure the ticket carries the error
    return ticket;
  } catch (const std::exception& ex) {
    // The feed waits for every ticket handed out before it redelivers: fail them all.
    abandon(Status::internal(std::string("projection: ") + ex.what()));
    return Status::internal(std::string("projection: ") + ex.what());
  }
}

void ProjectionNode::idle(bool stopping) {
  if (pending_.empty()) return;
  if (!stopping && std::chrono::steady_clock::now() - first_pending_ < idle_flush_age_) return;
  BusyTimer timer(probe());
  try {
    flush();
  } catch (const std::exception& ex) {
    abandon(Status::internal(std::string("projection: ") + ex.what()));
  }
}

Status ProjectionNode::apply(const std::vector<RecordedEvent>& batch) {
  MessagePtr event = domain_.new_event();
  Message& e = *event;
  const int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  for (const auto& r : batch) {
    probe().add_in();
    auto it = cache_.find(r.stream);
    if (it == cache_.end()) {
      MessagePtr st = domain_.new_state();
      // A stream's first event needs no snapshot read: whatever the store holds (a
      // redelivery) is a fold of this event and the ones after it, which follow in order,
      // and a write never replaces a newer snapshot.
      if (r.version > 1) {
        auto snap = snapshots_->get(r.stream);
        if (!snap) return snap.status();
        if (snap->version > 0 && !st->ParseFromString(snap->state))
          return Status::io_error("corrupt snapshot of " + r.stream);
      }
      it = cache_.emplace(r.stream, Projected{std::move(st), false}).first;
    }
    Message& st = *it->second.state;
    const uint64_t version = domain_.version(st);
    if (r.version <= version) continue;  // already applied (redelivery)
    if (!it->second.dirty) {  // from here on the cached state may differ from the stored one
      it->second.dirty = true;
      dirty_.push_back(&*it);
    }
    if (r.version > version + 1 && events_ != nullptr) {
      std::vector<RecordedEvent> gap;
      if (auto s = events_->read_stream(r.stream, version + 1, &gap); !s) return s;
      for (const auto& g : gap) {
        if (g.version >= r.version) break;
        if (!e.ParseFromString(g.payload)) return Status::io_error("undecodable event in " + r.stream);
        domain_.evolve(st, e);
      }
    }
    if (r.version != domain_.version(st) + 1) return Status::internal("projection gap in " + r.stream);
    const Message* ev = r.event.get();  // decoded by the feed, once for every subscriber
    if (ev == nullptr) {
      if (!e.ParseFromString(r.payload)) {
        probe().add_error("undecodable event at position " + std::to_string(r.position));
        return Status::io_error("undecodable event at position " + std::to_string(r.position));
      }
      ev = &e;
    }
    domain_.evolve(st, *ev);
    // Counted when written: an abandoned write re-applies its events after redelivery.
    if (const int c = domain_.counter_of(*ev); c >= 0 && static_cast<size_t>(c) < unwritten_counted_.size())
      ++unwritten_counted_[static_cast<size_t>(c)];
    probe().add_out();
    if (NodeProbe::enabled()) probe().record_latency_us(static_cast<uint64_t>(std::max<int64_t>(0, now - r.committed_at_us)));
  }
  return Status::ok();
}

Status ProjectionNode::flush() {
  std::vector<std::pair<std::string, Snapshot>> entries;
  entries.reserve(dirty_.size());
  for (const auto* entry : dirty_) {
    const Message& st = *entry->second.state;
    entries.push_back({entry->first, Snapshot{domain_.version(st), st.SerializeAsString()}});
  }
  if (auto s = snapshots_->put_covering(entries, id(), applied_position_); !s) {
    probe().add_error(s.to_string());
    abandon(s);
    return s;
  }
  for (auto* entry : dirty_) entry->second.dirty = false;
  dirty_.clear();
  // The domain's running totals, for the monitor and Prometheus (since this process started).
  for (size_t i = 0; i < counted_.size(); ++i) {
    counted_[i] += std::exchange(unwritten_counted_[i], 0);
    probe().set_gauge(counter_specs_[i].name, static_cast<double>(counted_[i]));
  }
  for (auto& t : pending_) t->finish(Status::ok());
  pending_.clear();
  return Status::ok();
}

void ProjectionNode::forget() {
  // Paused by the feed: every batch handed out was flushed, nothing is dirty or pending.
  cache_.clear();
  dirty_.clear();
  applied_position_ = 0;
  // The running totals count again from what the rebuild folds.
  std::fill(counted_.begin(), counted_.end(), 0);
  std::fill(unwritten_counted_.begin(), unwritten_counted_.end(), 0);
  for (size_t i = 0; i < counted_.size(); ++i) probe().set_gauge(counter_specs_[i].name, 0);
}

void ProjectionNode::abandon(const Status& s) {
  // Re-read what was really stored: the feed redelivers from its checkpoint.
  for (const auto* entry : dirty_) {
    const std::string stream = entry->first;  // a copy: erase must not read the key it frees
    cache_.erase(stream);
  }
  dirty_.clear();
  std::fill(unwritten_counted_.begin(), unwritten_counted_.end(), 0);
  for (auto& t : pending_) t->finish(s);
  pending_.clear();
}

// ---- saga -------------------------------------------------------------------------

struct SagaNode::Reaction {
  std::string command_id, command_name, stream, command, event_stream;
  uint64_t event_version = 0, event_position = 0;
};

SagaNode::SagaNode(Pipeline& p, const std::string& id, const Domain& domain, ParkingStore* parking, int park_after)
    : RuntimeNode(id, "saga", p.metrics().probe(id, "saga")),
      domain_(domain),
      parking_(parking),
      park_after_(park_after) {
  if (parking_ != nullptr) count_parked();
}

void SagaNode::count_parked() {
  std::vector<ParkedCommand> records;
  if (parking_->list(id(), &records)) parked_count_ = static_cast<int64_t>(records.size());
  probe().set_gauge("parked", static_cast<double>(parked_count_.load()));
}

Status SagaNode::parked(std::vector<ParkedCommand>* out) {
  if (parking_ == nullptr) return Status::ok();
  return parking_->list(id(), out);
}

// One reaction's outcome, with parking on (see the class comment).
void SagaNode::finished(const Reaction& r, const Outcome& o, BatchTicket* t) {
  if (o.status.code() == StatusCode::kInvalidArgument) probe().add_error("saga command refused: " + o.status.message());
  const bool final = o.status.is_ok() || o.status.code() == StatusCode::kRejected ||
                     o.status.code() == StatusCode::kInvalidArgument;
  uint64_t failures = 0;
  bool park = false;
  {
    std::lock_guard lock(park_mu_);
    if (final) {
      failing_.erase(r.command_id);
      // Written or rejected: the store answered (as the Kafka source counts). A refusal says
      // nothing about the store.
      if (o.status.code() != StatusCode::kInvalidArgument) ++finished_ok_;
    } else {
      Failing& f = failing_[r.command_id];
      if (f.failures == 0) f.ok_mark = finished_ok_;
      failures = ++f.failures;
      // Poison, not an outage: other reactions went through while this one kept failing.
      park = park_after_ > 0 && f.failures >= static_cast<uint64_t>(park_after_) && finished_ok_ > f.ok_mark;
    }
  }
  if (!park) {
    t->finish(final ? Status::ok() : o.status);
    return;
  }
  ParkedCommand p;
  p.node = id();
  p.command_id = r.command_id;
  p.command_name = r.command_name;
  p.stream = r.stream;
  p.command = r.command;
  p.event_stream = r.event_stream;
  p.event_version = r.event_version;
  p.event_position = r.event_position;
  p.reason = kParkedReasonPrefix + std::to_string(failures) + " failed attempts while other reactions succeeded: " +
             o.status.to_string();
  p.attempts = failures;
  p.parked_at_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (Status s = parking_->park(p); !s) {
    // Not durable: the reaction keeps failing (its event is redelivered), nothing is lost.
    probe().add_error("saga could not park " + r.command_id + ": " + s.to_string());
    t->finish(o.status);
    return;
  }
  {
    std::lock_guard lock(park_mu_);
    failing_.erase(r.command_id);
  }
  count_parked();  // from the store: a reaction parked again (redelivered with another) replaces its record
  log::warn("saga: a reaction keeps failing while others succeed; parked (orderflow parked list / replay)",
            {{"node", id()}, {"command", r.command_id}, {"stream", r.stream}, {"event_stream", r.event_stream},
             {"event_version", std::to_string(r.event_version)}, {"reason", p.reason}});
  t->finish(Status::ok());
}

ReplayOutcome SagaNode::replay(const std::string& command_id, std::chrono::milliseconds timeout) {
  ReplayOutcome out;
  out.command_id = command_id;
  out.outcome = "failed";
  if (parking_ == nullptr || sink_ == nullptr) {
    out.status = Status::not_found("saga '" + id() + "' parks nothing (no `parked:` store)");
    return out;
  }
  std::vector<ParkedCommand> records;
  if (Status s = parking_->list(id(), &records); !s) {
    out.status = s;
    return out;
  }
  auto it = std::find_if(records.begin(), records.end(), [&](const ParkedCommand& p) { return p.command_id == command_id; });
  if (it == records.end()) {
    out.status = Status::not_found("no parked command '" + command_id + "' in saga '" + id() + "'");
    return out;
  }
  MessagePtr cmd = domain_.new_command();
  if (!cmd->ParseFromString(it->command)) {
    out.status = Status::invalid_argument("the parked command " + command_id + " does not decode");
    return out;
  }
  struct Wait {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    Outcome outcome;
  };
  auto wait = std::make_shared<Wait>();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto env = make_envelope(std::move(cmd), [wait](const Outcome& o) {
    std::lock_guard lock(wait->mu);
    wait->outcome.status = o.status;
    wait->outcome.duplicate = o.duplicate;
    wait->done = true;
    wait->cv.notify_all();
  });
  Status s;
  for (int attempt = 0;; ++attempt) {
    s = sink_->submit(env);
    if (s.code() != StatusCode::kUnavailable || std::chrono::steady_clock::now() >= deadline) break;
    sleep_ms(std::min(1 + attempt, 50));
  }
  if (!s) {
    out.status = s;
    return out;
  }
  Outcome o;
  {
    std::unique_lock lock(wait->mu);
    if (!wait->cv.wait_until(lock, deadline, [&] { return wait->done; })) {
      out.status = Status::unavailable("no outcome within " + std::to_string(timeout.count()) + " ms; still parked");
      return out;
    }
    o = wait->outcome;
  }
  out.status = o.status;
  if (o.status.is_ok())
    out.outcome = o.duplicate ? "duplicate" : "committed";
  else if (o.status.code() == StatusCode::kRejected)
    out.outcome = "rejected";
  else
    return out;  // kept: replay it again later
  if (Status r = parking_->remove(id(), command_id); !r) {
    out.status = Status(r.code(), "replayed (" + out.outcome + ") but the record was not removed: " + r.message());
    return out;
  }
  out.removed = true;
  {
    std::lock_guard lock(park_mu_);
    failing_.erase(command_id);
  }
  count_parked();
  log::info("saga: parked command replayed", {{"node", id()}, {"command", command_id}, {"outcome", out.outcome}});
  return out;
}

Status SagaNode::connect_to(RuntimeNode& to) {
  auto sink = command_sink_of(*this, to);
  if (!sink) return sink.status();
  sink_ = *sink;
  return Status::ok();
}

Result<std::shared_ptr<BatchTicket>> SagaNode::handle(const std::vector<RecordedEvent>& batch) {
  BusyTimer timer(probe());
  // The commands commit asynchronously: the feed checkpoints this batch once the ticket
  // completes, and meanwhile hands out the next batches (their commands are submitted in
  // event order, so per-stream order is kept). The reactions to a whole batch of events are
  // submitted as one batch of commands.
  auto ticket = std::make_shared<BatchTicket>();
  // The feed holds the ticket until it is done, i.e. until every completion below ran: a
  // plain pointer keeps the completion small enough for std::function's inline storage.
  BatchTicket* t = ticket.get();
  EnvelopeBatch commands;
  MessagePtr event = domain_.new_event();
  Message& e = *event;
  for (const auto& r : batch) {
    probe().add_in();
    const Message* ev = r.event.get();  // decoded by the feed, once for every subscriber
    if (ev == nullptr) {
      if (!e.ParseFromString(r.payload)) {
        probe().add_error("undecodable event at position " + std::to_string(r.position));
        continue;  // nothing to react to; the projection reports it too
      }
      ev = &e;
    }
    for (auto& cmd : domain_.react(r.stream, r.version, *ev)) {
      ticket->add();
      if (parking_ != nullptr) {
        // What a parked record needs, taken now (the envelope owns the command). A cost per
        // reaction only for a saga that parks.
        auto reaction = std::make_shared<Reaction>();
        reaction->command_id = domain_.command_id(*cmd);
        reaction->command_name = domain_.command_name(*cmd);
        reaction->stream = domain_.stream_of(*cmd);
        cmd->SerializeToString(&reaction->command);
        reaction->event_stream = r.stream;
        reaction->event_version = r.version;
        reaction->event_position = r.position;
        commands.push_back(make_envelope(std::move(cmd), [this, t, reaction](const Outcome& o) {
          finished(*reaction, o, t);
        }));
        continue;
      }
      commands.push_back(make_envelope(std::move(cmd), [this, t](const Outcome& o) {
        // Final answers: a domain rejection, or a refusal (e.g. its id taken by a client's
        // command on another stream). Retrying either would stall the subscription for good.
        if (o.status.code() == StatusCode::kInvalidArgument) probe().add_error("saga command refused: " + o.status.message());
        const bool final = o.status.code() == StatusCode::kRejected || o.status.code() == StatusCode::kInvalidArgument;
        t->finish(final ? Status::ok() : o.status);
      }));
    }
  }
  const size_t n = commands.size();
  Status s;
  for (int attempt = 0;; ++attempt) {
    s = sink_->submit_batch(commands);
    if (s.code() != StatusCode::kUnavailable) break;
    sleep_ms(std::min(1 + attempt, 50));  // the pipeline is full: wait for room
  }
  if (!s) {
    probe().add_error("saga commands refused: " + s.to_string());
    for (size_t i = 0; i < commands.size(); ++i) ticket->finish(s);
  } else {
    probe().add_out(n);
  }
  return ticket;
}

// ---- demo source ------------------------------------------------------------------

DemoSourceNode::DemoSourceNode(Pipeline& p, const std::string& id, const Domain& domain, int rate, int keys,
                               uint64_t seed)
    : RuntimeNode(id, "demo_source", p.metrics().probe(id, "demo_source")),
      domain_(domain),
      rate_(rate),
      skus_(keys),
      seed_(seed) {}

DemoSourceNode::~DemoSourceNode() {
  stop_intake();
}

Status DemoSourceNode::connect_to(RuntimeNode& to) {
  auto sink = command_sink_of(*this, to);
  if (!sink) return sink.status();
  sink_ = *sink;
  return Status::ok();
}

Status DemoSourceNode::start() {
  if (rate_ <= 0 || sink_ == nullptr) return Status::ok();
  if (domain_.demo(1, seed_) == nullptr) {
    log::warn("demo_source: the domain has no synthetic load", {{"node", id()}, {"domain", domain_.name()}});
    return Status::ok();
  }
  running_ = true;
  thread_ = std::thread([this] {
    name_thread("of-demo");
    run();
  });
  return Status::ok();
}

void DemoSourceNode::stop_intake() {
  running_ = false;
  if (thread_.joinable()) thread_.join();
}

void DemoSourceNode::run() {
  auto load = domain_.demo(skus_, seed_);
  // Ids unique across restarts, so a restarted demo never collides with old commands.
  const std::string run_id = std::to_string(std::chrono::system_clock::now().time_since_epoch().count() / 1000);
  uint64_t n = 0;
  auto send = [&] {
    MessagePtr c = load->next();
    domain_.set_command_id(*c, "demo-" + run_id + "-" + std::to_string(++n));
    auto env = make_envelope(std::move(c), nullptr);
    if (sink_->submit(env)) probe().add_out(); else probe().add_error("demo command refused (overload)");
  };
  // The first `keys` commands set the scene (the order domain restocks every SKU) at once.
  for (int i = 0; i < skus_ && running_; ++i) send();
  const auto tick = std::chrono::milliseconds(10);
  double budget = 0;
  auto next = std::chrono::steady_clock::now();
  while (running_) {
    next += tick;
    std::this_thread::sleep_until(next);
    budget += rate_ / 100.0;
    while (budget >= 1 && running_) {
      budget -= 1;
      send();
    }
  }
}

}  // namespace orderflow
