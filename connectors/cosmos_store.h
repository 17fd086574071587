// Cosmos DB stores (`kind: cosmos`): event store, change feed and snapshot store over the
// SQL API's REST interface (CosmosClient).
//
// Event store: one container partitioned by /streamId. A group commit writes each stream's
// consecutive commands as one document (grouped layout):
//   {id: "{stream}:{firstVersion}", streamId, firstVersion, lastVersion, writeId,
//    committedAtUs, commands: [{id, n}, ...], k0..k7, events: [base64 payload, ...]}
// `commands` lists the commands in version order with their event counts. Each command id
// also sits in the slot field k{FNV-1a(id) mod 8}; the other slots hold a filler that no
// command id has (a command id may not start with U+0001). The eight slots are the
// container's unique keys (unique per stream), so a repeated command id collides in its
// slot whichever document holds the first copy; two commands whose ids share a slot go
// into separate documents. A container made before this layout (unique key /commandId)
// keeps one command per document with `commandId`; the layout is read off the container's
// unique keys at open, and both are read.
// The id is a function of the stream and the version the document starts at, so two
// commits decided on the same version collide: the second create gets 409 and surfaces as
// kConflict (the command is re-decided on fresh state). Every version a writer starts from
// is a document boundary (its own last write, or the end of what read_stream returned; any
// other expected version is first checked by a version query), so a stale writer's
// document always starts where an existing one does. A 409 caused by a slot is a repeated
// command id: the first result is returned as a duplicate, unless the document carries
// this write's random writeId (the answer to our own create was lost and the retry
// collided with it). A 409 of a document of several commands is resolved by writing them
// one by one. The expected version is checked before the create unless the store last saw
// the stream at exactly that version; a stale view only ever makes the create collide,
// never succeed wrongly. Documents of one group commit are written in parallel across
// streams, in order within a stream; each is durable when its create returns (Cosmos has
// no cross-partition transaction, so a group commit is not atomic: each request gets its
// own result). Cosmos has no global position: positions in
// AppendResult and read_stream are 0; the change feed assigns synthetic ones.
//
// Change feed: subscribe(name) gives each subscriber a view that reads the partition key
// ranges it holds leases for with "A-IM: Incremental feed", merges them into one
// process-local sequence with synthetic positions, and on save_checkpoint writes, per
// range, the continuation that covers the position into the range's lease document in
// the leases container (partitioned by /subscriber):
//   {id: "{subscriber}..{range}", subscriber, range, owner, continuation, timestamp, start_time}
// A lease without a continuation reads its range from the start of the feed, or, when
// start_time (ms since the epoch, 0 = none) is set, from the changes after it (If-Modified-
// Since; whole seconds, so up to a second more is delivered). Offline repair
// (`orderflow repair`) rewrites leases with reset_leases().
// Leases are acquired when free or expired, renewed every lease_renew, stolen from an
// owner holding more than its fair share, and all writes use If-Match so two instances
// never both own a range. Delivery is at least once (in order per stream).
//
// Snapshot store: a container partitioned by /id: {id: stream, version, state: base64};
// it keeps no covered-position mark (the change feed has no global positions); clear()
// deletes every document (offline rebuild).
// writes use If-Match on the stored etag, so an older projection never overwrites a newer
// one (a 412 re-reads and re-decides). A stream the store has not read or written before
// is created without a read first (409: it exists; read, decide again).
//
// All classes are thread-safe; views returned by subscribe() are used by one thread each.
// Owned by the StoreSet; they share the account's CosmosClient.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "connectors/cosmos_client.h"
#include "graph/store.h"

namespace orderflow::connectors {

struct CosmosStoreOptions {
  std::string database;                  // required
  std::string container;                 // required: events or snapshots container
  std::string leases_container = "leases";
  bool create_if_missing = true;         // default true: create database and containers
  int parallelism = 16;                  // default 16: concurrent requests of one group commit
  std::string instance;                  // lease owner name; default host-pid-random
  std::chrono::milliseconds lease_expiry{6000};   // default 6 s without renewal frees a lease
  std::chrono::milliseconds lease_renew{1000};    // default 1 s between lease cycles
  int max_item_count = 100;              // default 100: change-feed page size
  // default 1 s: continuations reach the lease at most this often (and at every lease
  // renewal and on close); a crash redelivers at most this much more.
  std::chrono::milliseconds checkpoint_interval{1000};
  std::chrono::milliseconds max_idle_poll{1000};  // default 1 s: slowest poll of an idle range
  bool release_leases_on_close = true;   // default true; false leaves them as a crash would
};

// Creates the database and a container if missing (409 = exists).
Status cosmos_ensure_container(CosmosClient& client, const std::string& database, const std::string& container,
                               const std::string& partition_path, const std::vector<std::string>& unique_keys);

// One change-feed answer body (`{"Documents": [...]}`) as events: each commit document's
// payloads (base64) with its stream, command id, versions from firstVersion and positions
// from first_position on; documents without events are skipped. Appends to `out` only what
// it returns ok for; kIoError for a body that is not such a page. Pure (the feed view's
// parsing, kept apart so it can be fuzzed).
Status parse_change_feed_page(const std::string& body, uint64_t first_position, std::vector<RecordedEvent>* out);

// The slot field (k0..k7) a command id takes in a grouped commit document.
int cosmos_command_slot(const std::string& command_id);

class CosmosEventStore;

// One change-feed lease document, as stored.
struct CosmosLease {
  std::string range;
  std::string owner;         // empty = free
  std::string continuation;  // empty = not read yet: from start_time_ms, or the start
  std::string etag;
  int64_t timestamp_ms = 0;  // last write by its owner (wall clock)
  int64_t start_time_ms = 0; // 0 = from the start of the feed
};

// One subscriber's view of the Cosmos change feed (see above). Created by
// CosmosEventStore::subscribe, owned by the store; used by the subscriber's one thread
// (owned_ranges() may be called from any thread).
class CosmosFeedView final : public ChangeFeed {
 public:
  CosmosFeedView(CosmosEventStore& store, std::string subscriber);
  bool global_positions() const override { return false; }  // synthetic, process-local
  ~CosmosFeedView() override;  // releases its leases unless release_leases_on_close is false

  Status read(uint64_t after, size_t max, std::vector<RecordedEvent>* out) override;
  uint64_t head() override;
  void wait(uint64_t after, std::chrono::milliseconds timeout) override;
  Result<uint64_t> load_checkpoint(const std::string& subscriber) override;
  Status save_checkpoint(const std::string& subscriber, uint64_t position) override;

  std::vector<std::string> owned_ranges() const;
  const std::string& owner() const { return owner_; }
  // Runs a lease cycle now (acquire, renew with pending checkpoints, steal); normally
  // done inside read() every lease_renew.
  Status balance();

 private:
  struct Owned {
    std::string lease_etag;
    int64_t start_time_ms = 0;  // the lease's start_time, written back with it
    std::string saved;     // continuation in the lease (checkpointed)
    std::string fetched;   // continuation after the last page read into the buffer
    uint64_t epoch = 0;    // which holding of the range: pages of an older one are ignored
    bool dirty = false;    // saved not yet written to the lease
    uint64_t head_lsn = 0; // latest LSN the range reported (x-ms-session-token)
    // A range that answered 304 is polled less often, up to max_idle_poll: idle ranges
    // then cost little (each poll is a request charge).
    std::chrono::milliseconds idle_backoff{0};
    std::chrono::steady_clock::time_point next_poll{};
  };
  struct Page {
    std::string range;
    uint64_t epoch;
    uint64_t last_pos;        // last synthetic position of the page's events
    std::string continuation; // the range's continuation after the page
  };
  Status lease_cycle();
  // max_attempts: as CosmosRequest::max_attempts (0 = the client's retry policy).
  Status write_lease(const std::string& range, const std::string& etag, const std::string& owner,
                     const std::string& continuation, int64_t start_time_ms, std::string* new_etag,
                     int max_attempts = 0);
  Status fetch(uint64_t after, size_t want);  // reads owned ranges until `want` events follow `after`
  void publish_lag(const std::string& range, const Owned& o);

  CosmosEventStore& store_;
  const std::string subscriber_;
  const std::string owner_;
  mutable std::mutex mu_;
  std::deque<RecordedEvent> buffer_;   // positions checkpoint_+1 .. next_pos_-1
  uint64_t next_pos_ = 1;
  uint64_t checkpoint_ = 0;
  std::deque<Page> pages_;
  std::map<std::string, Owned> owned_;
  std::vector<std::string> ranges_;
  uint64_t epoch_ = 0;
  size_t round_robin_ = 0;
  std::chrono::steady_clock::time_point last_cycle_{};
  std::chrono::steady_clock::time_point last_lease_write_{};
};

class CosmosEventStore final : public EventStore, public ChangeFeed {
 public:
  static Result<std::unique_ptr<CosmosEventStore>> open(std::shared_ptr<CosmosClient> client,
                                                        const CosmosStoreOptions& options);
  ~CosmosEventStore() override;
  bool global_positions() const override { return false; }  // no global order (positions 0)

  std::vector<AppendResult> append(const std::vector<AppendRequest>& batch) override;
  Status read_stream(const std::string& stream, uint64_t from_version, std::vector<RecordedEvent>* out) override;
  Result<std::optional<AppendResult>> find_command(const std::string& command_id) override;
  Result<std::optional<AppendResult>> find_command_in(const std::string& stream,
                                                      const std::string& command_id) override;
  Result<uint64_t> stream_version(const std::string& stream) override;
  bool shared() const override { return true; }  // every instance of a service writes it
  bool finds_repeats_on_append() const override { return true; }  // the unique keys
  Status health() const override { return client_->health(); }

  // The change feed is only read through per-subscriber views.
  Result<ChangeFeed*> subscribe(const std::string& subscriber) override;

  // Change-feed pages read lately, shared by the views of every subscriber of this store. A
  // page answers its range, continuation and page size whoever asks (it is a prefix of the
  // range's changes after the continuation, and commit documents never change), so a
  // subscriber close behind another reads it from memory instead of the account. Kept
  // kFeedPageTtl, at most kFeedPageBytes of bodies.
  struct FeedPage {
    std::string body, etag, session_token;
  };
  std::shared_ptr<const FeedPage> cached_feed_page(const std::string& key);
  void cache_feed_page(const std::string& key, std::shared_ptr<const FeedPage> page);
  static constexpr std::chrono::seconds kFeedPageTtl{10};
  static constexpr size_t kFeedPageBytes = 16u << 20;
  Status read(uint64_t after, size_t max, std::vector<RecordedEvent>* out) override;
  uint64_t head() override { return 0; }
  void wait(uint64_t after, std::chrono::milliseconds timeout) override;
  Result<uint64_t> load_checkpoint(const std::string& subscriber) override;
  Status save_checkpoint(const std::string& subscriber, uint64_t position) override;

  CosmosClient& client() { return *client_; }
  const CosmosStoreOptions& options() const { return options_; }
  uint64_t commands_appended() const;

  // Offline repair (every instance stopped; not for use while this process reads the feed).
  // The ids of the events container's partition key ranges.
  Result<std::vector<std::string>> partition_key_ranges();
  // The lease documents of `subscriber`, by range.
  Result<std::vector<CosmosLease>> leases(const std::string& subscriber);
  // A lease whose owner renewed it within lease_expiry: an instance reads that range.
  bool lease_alive(const CosmosLease& lease) const;
  // kConflict naming each live lease's range and owner when an instance reads the
  // subscriber's feed, else ok.
  Status check_leases_free(const std::string& subscriber);
  // Rewrites (or creates) the subscriber's lease of every partition key range as free, with
  // no continuation and `start_time_ms` (0 = from the start of the feed), so the next
  // instance to take a range reads it from there. kConflict, writing nothing, when a lease
  // is alive (the message names its owner); kConflict too when an instance took a lease
  // meanwhile (If-Match), then the leases written so far stay written. Returns the ranges.
  Result<std::vector<std::string>> reset_leases(const std::string& subscriber, int64_t start_time_ms);
  // Writes one lease document: create when etag is empty, else replace with If-Match.
  Status write_lease(const std::string& subscriber, const CosmosLease& lease, std::string* new_etag,
                     int max_attempts = 0);

 private:
  CosmosEventStore(std::shared_ptr<CosmosClient> client, CosmosStoreOptions options);
  std::string coll_link() const;
  Result<std::optional<AppendResult>> query_command(const std::string* stream, const std::string& command_id,
                                                    const char* op, std::string* write_id = nullptr,
                                                    uint64_t* doc_last = nullptr);
  Result<uint64_t> query_version(const std::string& stream, const char* op);
  // The field that holds a command id in this container's layout (a slot, or commandId).
  std::string command_field(const std::string& command_id) const;
  // The version check of a rejection decided at version `expected` (>= 1) and the look-up of
  // its command id, in one query: the stream's documents from the one holding `expected` on,
  // and the one naming the command. Nothing when no document holds `expected` (the caller
  // then asks the two questions apart).
  struct Check {
    uint64_t version = 0;
    std::optional<AppendResult> found;  // the command's first result, when it was written
  };
  Result<std::optional<Check>> query_check(const std::string& stream, uint64_t expected,
                                           const std::string& command_id, const char* op);
  void remember_version(const std::string& stream, uint64_t version);
  // Writes the planned requests batch[reqs[0..count)] (consecutive versions of one stream)
  // as one document; fills their results. Returns how many committed, in order: after the
  // first that did not (its result says why), none did. `our_earlier_write`: the writeId of
  // a document this call retries alone, whose commands count as ours, not as repeats.
  // `write_id`: the document's writeId (a fresh random one when empty).
  size_t write_commits(const std::vector<AppendRequest>& batch, const size_t* reqs, size_t count,
                       std::vector<AppendResult>& results, const std::string& our_earlier_write,
                       const std::string& write_id = std::string());
  // Writes the documents `docs` of one stream (each a span [first, second) of `reqs`, in
  // version order) in one transactional batch: all or none. True when all were written (their
  // results filled in); false when none was or the outcome is unknown (results untouched).
  // `write_ids` gets each document's writeId either way, for write_commits to retry with.
  bool write_commit_batch(const std::vector<AppendRequest>& batch, const std::vector<size_t>& reqs,
                          const std::vector<std::pair<size_t, size_t>>& docs, std::vector<AppendResult>& results,
                          std::vector<std::string>* write_ids);

  std::shared_ptr<CosmosClient> client_;
  const CosmosStoreOptions options_;
  mutable std::mutex mu_;
  bool grouped_ = false;  // the grouped layout (slot unique keys), else one command per document
  // Cleared when the account refuses a transactional batch (400): one document per request.
  std::atomic<bool> batches_{true};
  std::unordered_map<std::string, uint64_t> versions_;  // last version seen per stream (a doc boundary)
  uint64_t commands_ = 0;
  uint64_t documents_ = 0;  // written whole by a group commit (commands_ / documents_: grouping)
  std::map<std::string, std::unique_ptr<CosmosFeedView>> views_;
  std::mutex pages_mu_;  // guards the shared feed pages
  struct CachedPage {
    std::chrono::steady_clock::time_point at;
    std::shared_ptr<const FeedPage> page;
  };
  std::unordered_map<std::string, CachedPage> feed_pages_;
  std::deque<std::string> feed_page_order_;  // keys, oldest first
  size_t feed_page_bytes_ = 0;
  uint64_t feed_pages_shared_ = 0;
};

class CosmosSnapshotStore final : public SnapshotStore {
 public:
  static Result<std::unique_ptr<CosmosSnapshotStore>> open(std::shared_ptr<CosmosClient> client,
                                                           const CosmosStoreOptions& options);
  Result<Snapshot> get(const std::string& stream) override;
  // Entries of different streams are written in parallel; not one atomic write.
  Status put(const std::vector<std::pair<std::string, Snapshot>>& entries) override;
  // Deletes every snapshot document (offline rebuild: no projection may write meanwhile).
  Status clear() override;
  Status health() const override { return client_->health(); }

 private:
  struct Stored {
    uint64_t version = 0;
    std::string etag;  // empty = absent
  };
  CosmosSnapshotStore(std::shared_ptr<CosmosClient> client, CosmosStoreOptions options);
  Result<Stored> read_stored(const std::string& stream, Snapshot* out, const char* op);
  Status put_one(const std::string& stream, const Snapshot& snap);

  std::shared_ptr<CosmosClient> client_;
  const CosmosStoreOptions options_;
  std::mutex mu_;
  std::unordered_map<std::string, Stored> stored_;  // last known version and etag per stream
};

// Runs fn(0..n-1) on up to `workers` threads (the caller and threads of a process-wide pool,
// made once and kept); returns when all are done.
void parallel_for(size_t n, int workers, const std::function<void(size_t)>& fn);

}  // namespace orderflow::connectors
