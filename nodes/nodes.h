// The generic runtime node kinds of an event-sourced pipeline (see graphs/orders.yaml and
// DESIGN.md), written against the Domain interface (graph/domain.h): none of them names a
// command, event or state of a particular domain.
//
//   RouteNode        admits commands (one at a time or in batches) up to max_in_flight and
//                    hashes each stream onto one lane, on the submitting thread: a batch
//                    becomes one message per lane it touches. Implements CommandSink.
//   LaneGroupNode    N serial multifunction_nodes; each keeps a stream-state cache, decides
//                    a batch and passes what was decided to commit as one batch. Commands of
//                    one stream stay in order.
//   CommitNode       group commit: a writer thread appends everything queued as one durable
//                    write (and re-routes conflicts); a completer thread completes the
//                    written commands while the writer starts the next group (a small group
//                    is completed on the writer when the completer is idle).
//   ChangeFeedNode   one reader thread per subscriber, from its persisted checkpoint.
//   ProjectionNode   folds events into snapshots (FeedSubscriber).
//   SagaNode         the process manager: issues the domain's reactions to events as
//                    commands (FeedSubscriber).
//   DemoSourceNode   a steady synthetic load (--demo-rate) from the domain's generator.
//
// All are owned by the Pipeline and live until its shutdown() returns. Public methods are
// thread-safe unless noted.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <absl/container/node_hash_map.h>

#include "graph/domain.h"
#include "graph/envelope.h"
#include "graph/feed.h"
#include "graph/pipeline.h"
#include "graph/store.h"

namespace orderflow {

// A lane as oneTBB runs it: either kind has the same ports. The lightweight kind runs its
// body on the thread that puts a message when the lane is idle (it needs a noexcept body,
// or oneTBB quietly spawns a task as for the other kind); a busy lane queues either way.
using LaneNode = tbb::flow::multifunction_node<BatchPtr, std::tuple<BatchPtr>>;
using InlineLaneNode = tbb::flow::multifunction_node<BatchPtr, std::tuple<BatchPtr>, tbb::flow::queueing_lightweight>;
using LanePorts = LaneNode::output_ports_type;
static_assert(std::is_same_v<LanePorts, InlineLaneNode::output_ports_type>);

// The kinds' options as a graph file sets them (`params:`), with their defaults; bound to
// the YAML in kinds.cc (graph/options.h).
struct RouteOptions {
  int lanes = 8;                    // serial command lanes (the command_lane group it feeds)
  int64_t max_in_flight = 20000;    // admitted, unfinished commands; more are refused (429)
};
struct LaneOptions {
  std::string events;               // event store (required)
  std::string snapshots;            // snapshot store (required)
  int64_t cache_streams = 100000;   // cached stream states per lane
  // Where a command is decided: "caller" on the thread that submits it when its lane is
  // idle (no hand-off), "workers" always as a oneTBB task, "auto" see
  // LaneGroupNode::resolve_run_on.
  std::string run_on = "auto";
};
struct CommitOptions {
  std::string events;               // event store (required)
  int64_t max_batch = 1000;         // commands per durable write
  int max_retries = 8;              // re-decisions after a version conflict
  // Under load, a durable write starts at most this often (µs), so one sync carries the
  // commands of the interval; an idle writer still writes at once. -1: 1000 on a store that
  // syncs each append (RocksDB), 0 (write as soon as a command is queued) on others.
  int64_t write_interval_us = -1;
};
struct ChangeFeedOptions {
  std::string events;               // event store (required)
  int64_t batch = 512;              // events per delivery
  int poll_ms = 50;                 // wait for new events at most this long
  int64_t unhealthy_after_ms = 5000;  // a subscriber failing this long makes the node (and /readyz) unhealthy
};
struct ProjectionOptions {
  std::string snapshots;            // snapshot store (required)
  int64_t flush_ms = 25;            // a state is written at most this long after its event
  int64_t flush_batches = 32;       // ...or once this many feed batches wait to be written
};
struct SagaOptions {
  std::string parked;               // snapshot store keeping parked reactions; "" (default) = none
  int64_t park_after = 10;          // failures before a reaction is parked; 0 = never
};
struct DemoOptions {
  int rate = 0;                     // commands per second; 0 = off
  int skus = 200;                   // distinct entities of the synthetic load
  int64_t seed = 42;                // random seed
};

class LaneGroupNode;

class RouteNode final : public RuntimeNode, public CommandSink, private Admission {
 public:
  RouteNode(Pipeline& p, const std::string& id, const Domain& domain, int64_t max_in_flight);
  void set_lanes(LaneGroupNode* lanes) { lanes_ = lanes; }
  Status connect_to(RuntimeNode& to) override;  // a LaneGroupNode

  Status submit(EnvelopePtr envelope) override;
  Status submit_batch(EnvelopeBatch& batch) override;
  int64_t in_flight() const override { return in_flight_.load(std::memory_order_relaxed); }
  int64_t max_in_flight() const override { return max_in_flight_; }

  void drain(std::chrono::steady_clock::time_point deadline) override;

 private:
  // Fills what the lanes need (command id, stream, ingest time); a malformed command's status.
  Status prepare(Envelope& env) const;
  // Takes n places under the limit, all or none (a batch larger than the limit only when
  // nothing is in flight).
  bool admit(int64_t n);
  void release(const Envelope& envelope) override;  // Admission: after the command's `done`

  const Domain& domain_;
  const int64_t max_in_flight_;
  std::atomic<int64_t> in_flight_{0};
  LaneGroupNode* lanes_ = nullptr;
};

class LaneGroupNode final : public RuntimeNode {
 public:
  enum class RunOn { kCaller, kWorkers };
  // command_lane's `run_on` resolved: "auto" is the caller for a local event store fed by
  // HTTP, the saga or the demo source (small batches, many threads), and workers for a
  // shared store (a state load is a round trip that would hold the caller) or when a
  // kafka_source feeds the route (one poll thread whose batches span every lane: deciding
  // them itself puts its polling behind decisions that workers would run in parallel).
  static RunOn resolve_run_on(const std::string& run_on, bool shared_store, bool fed_by_kafka);
  LaneGroupNode(Pipeline& p, const std::string& id, const Domain& domain, int lanes, EventStore* events,
                SnapshotStore* snapshots, size_t cache_streams, RunOn run_on = RunOn::kWorkers);
  Status connect_to(RuntimeNode& to) override;  // a CommitNode
  // Sends the envelope to the lane of its stream (sets envelope->lane).
  void dispatch(EnvelopePtr envelope);
  // The same for a batch (cleared): one message per lane it touches, order kept per stream.
  void dispatch(EnvelopeBatch& batch);
  // dispatch() from the commit writer or completer: with lanes that run on the caller, a
  // oneTBB task (the redispatch node) does it, so a re-decision never holds the writer nor
  // takes a lane's lock on a thread that may hold it.
  void redispatch(EnvelopePtr envelope);
  // Forgets the cached state of the envelope's stream: its decision on env.chain was not
  // written as decided (a newer chain, loaded since, is kept). Called before the envelope
  // settles (while it holds its stream's entry).
  void invalidate(const Envelope& env);
  // The envelope left commit (written, failed, or going back for a re-decision).
  void settle(Envelope& env);
  // Completes a decided envelope, and answers every repeat of its command id that arrived
  // while it was in flight with the same outcome (or re-decides them if it failed).
  void complete(const EnvelopePtr& env, const Outcome& outcome);
  std::vector<tbb::flow::sender<BatchPtr>*> outputs();

 private:
  struct InFlight {
    const Envelope* owner = nullptr;       // the envelope being committed
    std::vector<EnvelopePtr> repeats;      // same command id, arrived meanwhile
  };
  struct Lane {
    std::mutex mu;  // guards cache and in_flight; contended only by the commit writer
    // stream -> its cached state (LaneStream, graph/envelope.h). An entry with decisions
    // pending is never evicted nor erased, so those envelopes point at it (no look-up to
    // settle): reloading the state from the store would miss their events, and a rejection
    // decided on that stale state would never be caught by the store. Invalidated while
    // pending, it keeps its count and loses its state (reloaded on the next decision).
    absl::node_hash_map<std::string, LaneStream> cache;
    absl::node_hash_map<std::string, InFlight> in_flight;  // command id -> decided, not yet committed
    std::unique_ptr<tbb::flow::graph_node> node;  // a LaneNode or an InlineLaneNode
    tbb::flow::receiver<BatchPtr>* input = nullptr;
    tbb::flow::sender<BatchPtr>* output = nullptr;
  };
  // Decides a batch in order; what goes on to commit leaves as one batch.
  void decide(Lane& lane, const BatchPtr& batch, LanePorts& out);
  void settle_locked(Lane& lane, Envelope& env);  // settle() with lane.mu held
  // Decides one command: true when it goes on to commit, false when it was answered here
  // (rejected, a repeat, failed) or parked behind its first copy.
  bool decide_one(Lane& lane, EnvelopePtr& env);
  Result<MessagePtr> load(const std::string& stream);

  const Domain& domain_;
  EventStore* events_;
  SnapshotStore* snapshots_;
  const size_t cache_streams_;
  const RunOn run_on_;
  std::unique_ptr<tbb::flow::function_node<EnvelopePtr, tbb::flow::continue_msg>> redispatch_;
  // events_->shared(): other processes write the store, so a rejection decided on cached
  // state goes through commit as a version check before it is final. Also when the lanes
  // skip the repeat look-up: the check then finds a rejected repeat of a written command.
  const bool verify_rejections_;
  // events_ finds repeated command ids on append (so rejections are verified): no
  // find_command_in() per command before deciding.
  const bool skip_repeat_lookup_;
  std::atomic<uint64_t> deadline_dropped_{0};
  std::atomic<uint64_t> next_chain_{1};
  std::vector<std::unique_ptr<Lane>> lanes_;
};

class CommitNode final : public RuntimeNode {
 public:
  // write_interval: see CommitOptions::write_interval_us (resolved: never negative).
  CommitNode(Pipeline& p, const std::string& id, EventStore* events, size_t max_batch, int max_retries,
             std::chrono::microseconds write_interval = std::chrono::microseconds(0));
  // CommitOptions::write_interval_us for a store: -1 (auto) becomes 1000 µs when the store
  // syncs each append, else 0.
  static std::chrono::microseconds resolve_write_interval(int64_t configured, const EventStore& events);
  // What auto (-1) resolves to on a store that syncs each append.
  static constexpr std::chrono::microseconds kSyncedWriteInterval{1000};
  ~CommitNode() override;
  void set_lanes(LaneGroupNode* lanes) { lanes_ = lanes; }
  tbb::flow::receiver<BatchPtr>& input() { return input_; }
  LaneGroupNode* lanes() const { return lanes_; }

  Status start() override;
  void drain(std::chrono::steady_clock::time_point deadline) override;
  void stop() override;

 private:
  void enqueue(EnvelopeBatch& batch);
  void run();
  void run_completions();
  void complete_all(std::vector<std::pair<EnvelopePtr, Outcome>>& work);
  void commit(std::vector<EnvelopePtr>& batch);
  void retry_or_fail(EnvelopePtr& env, const Status& conflict);

  EventStore* events_;
  const size_t max_batch_;
  const int max_retries_;
  const uint64_t write_interval_ns_;
  uint64_t last_write_ns_ = 0;      // writer thread only: when the latest write started
  LaneGroupNode* lanes_ = nullptr;
  // Lightweight: enqueue() runs on the lane's thread right after its decision instead of
  // as one more task per command (and one more worker wake-up).
  tbb::flow::function_node<BatchPtr, tbb::flow::continue_msg, tbb::flow::queueing_lightweight> input_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<EnvelopePtr> queue_;   // guarded by mu_
  // Writer thread only: stream -> highest decision chain with a failed command. Later
  // commands of that chain are re-decided without being appended (see AppendRequest::chain).
  std::unordered_map<std::string, uint64_t> failed_chains_;
  uint64_t batches_ = 0, batched_commands_ = 0;  // writer thread only
  uint64_t deadline_dropped_ = 0;                 // writer thread only
  bool busy_ = false;               // guarded by mu_: a batch is being written
  bool spacing_ = false;            // guarded by mu_: the writer waits out write_interval
  bool stopping_ = false;           // guarded by mu_
  std::thread writer_;
  // Written commands are completed (callbacks, lane bookkeeping, envelope release) on a
  // second thread, so the writer starts the next group meanwhile; groups of at most this
  // many without duplicates, with the completer idle, are completed on the writer (see
  // commit()). Completion callbacks must not block either way.
  static constexpr size_t kInlineCompletions = 16;
  std::mutex done_mu_;
  std::condition_variable done_cv_, done_idle_cv_;
  std::vector<std::pair<EnvelopePtr, Outcome>> done_;  // guarded by done_mu_
  bool completing_ = false;         // guarded by done_mu_
  bool done_stopping_ = false;      // guarded by done_mu_
  std::thread completer_;
};

class ChangeFeedNode final : public RuntimeNode, public FeedControl {
 public:
  // unhealthy_after: a subscriber failing (redelivering) this long without progress makes
  // the node unhealthy (health(), readiness) and logs one warning.
  // domain: decodes each event once for every subscriber (null: subscribers decode).
  ChangeFeedNode(Pipeline& p, const std::string& id, ChangeFeed* feed, size_t batch, int poll_ms,
                 std::chrono::milliseconds unhealthy_after = std::chrono::seconds(5),
                 const Domain* domain = nullptr);
  ~ChangeFeedNode() override;
  void add_subscriber(FeedSubscriber* s) { subscribers_.push_back(s); }
  Status connect_to(RuntimeNode& to) override;  // a FeedSubscriber

  Status start() override;
  Status health() const override;
  void stop_intake() override;
  void drain(std::chrono::steady_clock::time_point deadline) override;

  // FeedControl (the admin API). The feed thread of a subscriber looks for a pause request
  // between batches: it flushes the subscriber (idle(true)), waits for every outstanding
  // ticket, saves the checkpoint they earned, reports itself paused and waits for resume().
  const std::string& feed_id() const override { return id(); }
  bool global_positions() const override { return feed_->global_positions(); }
  ChangeFeed& store_feed() override { return *feed_; }
  std::vector<SubscriberPosition> positions() override;
  Status pause(const std::string& subscriber, std::chrono::milliseconds timeout) override;
  Result<uint64_t> resume(const std::string& subscriber, std::optional<uint64_t> checkpoint, bool forget) override;

 private:
  // One subscriber's pause/resume hand-over between an admin caller and its feed thread.
  struct Control {
    std::mutex mu;
    std::condition_variable cv;
    bool pause_wanted = false;                // guarded by mu; set by pause(), cleared by resume()
    bool paused = false;                      // guarded by mu; the feed thread waits in the pause
    bool forget = false;                      // guarded by mu
    std::optional<uint64_t> target;           // guarded by mu: the checkpoint resume() asks for
    uint64_t resumes = 0;                     // guarded by mu: resumes the feed thread has applied
    Status applied;                           // guarded by mu: the outcome of the last one
    std::atomic<bool> pause_flag{false};      // pause_wanted, read lock-free between batches
    std::atomic<bool> running{false};         // the thread delivers (checkpoint loaded)
    std::atomic<uint64_t> checkpoint{0};      // as last saved, for positions()
    std::atomic<ChangeFeed*> view{nullptr};   // the subscriber's view of the feed
  };
  Control* control_of(const std::string& subscriber);

  // One subscriber's failure state: written by its feed thread, read by health().
  struct Failing {
    std::atomic<uint64_t> since_ns{0};  // steady clock of the first failure without progress since; 0 = fine
    bool warned = false;                // feed thread only
    mutable std::mutex mu;
    std::string last_error;             // guarded by mu
  };
  using Chunk = std::shared_ptr<const std::vector<RecordedEvent>>;
  void run(FeedSubscriber* s, Failing& failing, Control& control);
  // The events after `after` (at most batch_), through the live tail: on a feed with global
  // positions, the first subscriber to reach a position reads it from the store and
  // decodes it once; the others take the same chunk from memory. A subscriber behind the
  // tail's window reads from the store (catch-up) and rejoins the tail when it gets there.
  Status read(ChangeFeed* feed, uint64_t after, Chunk* out);
  void failed(FeedSubscriber* s, Failing& f, const std::string& error);
  void progressed(FeedSubscriber* s, Failing& f);
  // Batches handed out but not yet complete: FeedSubscriber::max_outstanding (16 unless the
  // subscriber holds more back).
  static constexpr std::chrono::milliseconds kIdleRecheck{5};  // idle() cadence while tickets are out
  // A subscriber's checkpoint is saved at most this often while events keep coming, and
  // once the feed has been quiet for kCheckpointIdle; at once on pause, stop and failure.
  static constexpr std::chrono::milliseconds kCheckpointEvery{100};
  static constexpr std::chrono::milliseconds kCheckpointIdle{10};
  static constexpr size_t kTailChunks = 32;  // chunks the live tail keeps (the newest)
  ChangeFeed* feed_;
  const size_t batch_;
  const int poll_ms_;
  const std::chrono::milliseconds unhealthy_after_;
  const Domain* domain_;
  std::mutex tail_read_mu_;                   // one store read of the tail at a time
  std::mutex tail_mu_;                        // guards tail_
  std::map<uint64_t, Chunk> tail_;            // first position -> chunk
  std::atomic<uint64_t> store_events_read_{0}, tail_hits_{0};
  std::vector<FeedSubscriber*> subscribers_;
  std::vector<std::unique_ptr<Failing>> failing_;  // one per subscriber, made by start()
  std::vector<std::unique_ptr<Control>> controls_;  // one per subscriber, made by start()
  std::vector<std::thread> threads_;
  std::atomic<bool> running_{false};
};

// Folds batches into its cache and writes the snapshots of the streams they touched once
// for several batches: a batch's ticket completes when its snapshots are written (so the
// feed's checkpoint never passes an unwritten state), after kFlushBatches batches,
// the flush interval (kFlushInterval unless the graph sets flush_ms), or when the feed is
// idle and they are a fifth of it old (a low rate still coalesces a little). Hot streams (a popular SKU's state holds
// thousands of reservations) are then serialized and written once per flush, not per batch.
class ProjectionNode final : public RuntimeNode, public FeedSubscriber {
 public:
  // flush_interval: batches are written at most this long after the first of them
  // arrived (kFlushInterval by default); an idle feed flushes them at a fifth of it.
  // flush_batches: batches are written at the latest once this many wait (kFlushBatches by
  // default); the feed hands out that many plus kSpareBatches before it waits.
  ProjectionNode(Pipeline& p, const std::string& id, const Domain& domain, SnapshotStore* snapshots,
                 EventStore* events, std::chrono::milliseconds flush_interval = kFlushInterval,
                 size_t flush_batches = kFlushBatches);
  const std::string& subscriber_id() const override { return id(); }
  NodeProbe& subscriber_probe() override { return probe(); }
  Result<std::shared_ptr<BatchTicket>> handle(const std::vector<RecordedEvent>& batch) override;
  void idle(bool stopping) override;
  Result<std::optional<uint64_t>> covered_position() override { return snapshots_->covered_position(id()); }
  void feed_replays_lost_output(bool replays) override {
    if (!replays) snapshots_->require_durable_covering();
  }
  void forget() override;
  size_t max_outstanding() const override { return flush_batches_ + kSpareBatches; }

  static constexpr size_t kFlushBatches = 32;
  static constexpr size_t kSpareBatches = 8;  // handed out beyond flush_batches while a flush runs
  static constexpr std::chrono::milliseconds kFlushInterval{25};

 private:
  Status apply(const std::vector<RecordedEvent>& batch);
  Status flush();   // writes every dirty state, completes the pending tickets
  void abandon(const Status& s);  // forget unwritten states, fail their tickets

  const Domain& domain_;
  SnapshotStore* snapshots_;
  EventStore* events_;  // to fill a gap, if the snapshot is behind the feed; may be null
  const std::chrono::milliseconds flush_interval_, idle_flush_age_;
  const size_t flush_batches_;
  // Feed thread only, all of them:
  struct Projected {
    MessagePtr state;
    bool dirty = false;  // applied, not yet written
  };
  using Cache = absl::node_hash_map<std::string, Projected>;
  Cache cache_;
  // The dirty entries of cache_, once each (elements of an unordered_map keep their address
  // across rehashing): one hash look-up per event, none per flush.
  std::vector<Cache::value_type*> dirty_;
  std::vector<std::shared_ptr<BatchTicket>> pending_;         // batches waiting for the next flush
  // Feed position of the last event applied: what a flush's snapshots cover (recorded with
  // them, SnapshotStore::put_covering). Follows redelivery back, so it never claims more.
  uint64_t applied_position_ = 0;
  std::chrono::steady_clock::time_point first_pending_;
  // The domain's running totals (Domain::counters), in written snapshots and in dirty states.
  const std::vector<CounterSpec> counter_specs_;
  std::vector<uint64_t> counted_, unwritten_counted_;
};

// With a ParkingStore (`parked:`), a reaction whose commit keeps failing (a non-final
// status) while other reactions succeed is parked: after `park_after` failures of its
// command id across redeliveries, and only if some other reaction succeeded since its first
// failure (an outage, where nothing succeeds, parks nothing), the command is written to the
// store and, once that write is durable, counts as done for its batch's ticket so the feed's
// checkpoint moves on. A failed write keeps it failing. The admin API lists and replays the
// records (ParkingControl). Without a store the saga retries for ever, as before. Gauge
// `parked`: records this saga has in its store.
class SagaNode final : public RuntimeNode, public FeedSubscriber, public ParkingControl {
 public:
  // parking: may be null (no parking); must outlive the node. park_after: 0 = never.
  SagaNode(Pipeline& p, const std::string& id, const Domain& domain, ParkingStore* parking = nullptr,
           int park_after = 10);
  void set_sink(CommandSink* sink) { sink_ = sink; }
  Status connect_to(RuntimeNode& to) override;  // a CommandSink
  const std::string& subscriber_id() const override { return id(); }
  NodeProbe& subscriber_probe() override { return probe(); }
  Result<std::shared_ptr<BatchTicket>> handle(const std::vector<RecordedEvent>& batch) override;

  const std::string& parking_node_id() const override { return id(); }
  Status parked(std::vector<ParkedCommand>* out) override;
  ReplayOutcome replay(const std::string& command_id, std::chrono::milliseconds timeout) override;

 private:
  struct Reaction;  // what a parked record needs of one submitted reaction
  void finished(const Reaction& r, const Outcome& o, BatchTicket* t);
  void count_parked();
  const Domain& domain_;
  CommandSink* sink_ = nullptr;
  ParkingStore* const parking_;
  const int park_after_;
  struct Failing {
    uint64_t failures = 0;
    uint64_t ok_mark = 0;  // finished_ok_ at the first failure
  };
  std::mutex park_mu_;
  std::unordered_map<std::string, Failing> failing_;  // guarded by park_mu_: by command id
  uint64_t finished_ok_ = 0;                           // guarded by park_mu_: reactions that succeeded
  std::atomic<int64_t> parked_count_{0};
};

// Synthetic load at a steady rate: the domain's generator (Domain::demo), e.g. restocks,
// orders over Zipf-popular SKUs, cancels and shipments for the order domain.
class DemoSourceNode final : public RuntimeNode {
 public:
  DemoSourceNode(Pipeline& p, const std::string& id, const Domain& domain, int rate, int keys, uint64_t seed);
  ~DemoSourceNode() override;
  void set_sink(CommandSink* sink) { sink_ = sink; }
  Status connect_to(RuntimeNode& to) override;  // a CommandSink
  Status start() override;
  void stop_intake() override;

 private:
  void run();
  const Domain& domain_;
  const int rate_, skus_;
  const uint64_t seed_;
  CommandSink* sink_ = nullptr;
  std::atomic<bool> running_{false};
  std::thread thread_;
};

}  // namespace orderflow
