// ListenerContainer: between an adapter's fetch loop and a subscription's handler. Orders records
// (partition, key, none), runs them on `concurrency` workers, retries on a timer, dead-letters,
// tracks the offsets that may be committed, bounds what is buffered, and stops within a bound. A
// subscription with a batch handler gets batches of one partition's records (partition ordering).
// Adapters drive it; applications only choose its options (ContainerOptions).
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <cppfly/messaging/subscription.hpp>

namespace cppfly::messaging {

class MessageBrokerPort;

/// One partition of one topic.
struct TopicPartition {
  std::string topic;
  std::int32_t partition{0};
  auto operator<=>(const TopicPartition&) const = default;
};

/// Where a partition's consumption may resume: its lowest unsettled offset (or the offset after the
/// last record it was given, when all are settled).
struct Position {
  TopicPartition partition;
  std::int64_t offset{-1};
  /// The container's progress past `offset` (records completed, attempts of records under retry),
  /// to commit with it and hand back to assign(): opaque text, at most 4,000 bytes. Empty when none.
  std::string metadata{};
};

/// What an adapter tells the container about how it feeds it.
struct ContainerRuntime {
  /// Run each record on the thread that offers it, retries included (waits then block that
  /// thread); no worker threads, and stop() does not wait for such runs (the adapter does; stop()
  /// cuts their retry waits short). The in-memory broker's default: deterministic tests.
  bool inline_execution{false};
  /// Above the buffer bound offer() waits for room (true), or the container asks for the partitions
  /// to be paused (false: take_flow_changes()).
  bool block_when_full{false};
  /// Partitions exist on first use (true), or only between assign() and revoke() (false: a record
  /// of another partition is dropped).
  bool assign_on_offer{false};
  /// Called when partitions are to be resumed: wakes the fetch loop. It runs on any thread with the
  /// container's lock held: it must not call the container.
  std::function<void()> wake{};
  /// When set, each attempt runs as around_handler(message, handle): the adapter's context for the
  /// handler (Kafka: a transaction that also commits the record's offset). It calls handle() once and
  /// lets its exception through (after aborting); an exception of its own fails the attempt too.
  std::function<void(const Message&, const std::function<void()>& handle)> around_handler{};
  /// The adapter commits checkpoints and reports them (committed()): a retry then waits until the
  /// checkpoint carrying its attempt count was committed (at most 2 s past its backoff), so a crash
  /// during the retry still counts it.
  bool gate_retries{false};
  /// The fast path: with concurrency 1, partition ordering and a per-record handler (not inline), the
  /// records run on the thread that calls run_here() (the adapter's fetch thread) instead of a worker;
  /// the worker only promotes retries that are due and calls `wake`. An adapter that asks for it calls
  /// run_here() after each offer, and keeps polling while a handler runs long (another of its threads
  /// takes the polling over). Ignored for other subscriptions.
  bool caller_runs{false};
};

/// Partitions to pause and to resume (the fetch loop applies them).
struct FlowChanges {
  std::vector<TopicPartition> pause;
  std::vector<TopicPartition> resume;
  [[nodiscard]] bool empty() const noexcept { return pause.empty() && resume.empty(); }
};

class ListenerContainer {
 public:
  /// Dead letters are published through `dead_letters`, which must outlive the container.
  ListenerContainer(Subscription subscription, MessageBrokerPort& dead_letters, ContainerRuntime runtime);
  /// stop()s.
  ~ListenerContainer();
  ListenerContainer(const ListenerContainer&) = delete;
  ListenerContainer& operator=(const ListenerContainer&) = delete;

  /// Throws BrokerError when `subscription` cannot run: no handler, or a batch handler with an
  /// ordering other than partition, with transactional, or with batch_max_records 0.
  static void check(const Subscription& subscription);

  /// Starts the workers (none when inline).
  void start();
  /// New partitions: their records are accepted from now on.
  void assign(const std::vector<TopicPartition>& partitions);
  /// assign() with what was committed for each: records its metadata says were completed are
  /// skipped, and attempt counts go on from where they were (metadata not written by the container
  /// for that offset is ignored, with a warning when it is another client's).
  void assign_committed(const std::vector<Position>& committed);
  /// Hands a fetched record over. Threaded: queued, returns at once (or waits for room, see
  /// ContainerRuntime). Inline: runs it, and its retries, before returning (a batch handler gets it
  /// as a batch of one: nothing else is buffered); when it ends unsettled
  /// (retries exhausted, no dead-letter topic) the handler's last exception comes out.
  void offer(Message message);
  /// offer() for a message the caller keeps: inline, it runs without a copy (one is made only for a
  /// retry); threaded, it is copied.
  void deliver(const Message& message);
  /// The same for several records under one lock (a fetch loop's batch). Every message is taken;
  /// `messages` comes back holding spare ones (handled records whose strings keep their capacity)
  /// for the caller to refill, or empty.
  void offer(std::vector<Message>& messages);
  /// The fast path (ContainerRuntime::caller_runs): runs ready records on this thread, a unit's run
  /// (up to 64 records) at a time, until `until` or until go_on() (asked after each run, with the container's
  /// lock held: it must not call the container) says no. Does
  /// nothing while another thread runs records here. Returns true when records are left ready (call
  /// again soon); false also when the fast path is off.
  bool run_here(std::chrono::steady_clock::time_point until, const std::function<bool()>& go_on);
  /// Messages offered with deferred headers (DeferredHeaders) that the container still holds read
  /// them now: the adapter's records they read from are about to go. (The fast path: records that ran
  /// in run_here() needed none of it; this finds any left queued, for a retry or a later run.)
  void resolve_deferred();
  /// True when this container runs records on the caller of run_here().
  [[nodiscard]] bool runs_on_caller() const noexcept;
  /// Partitions taken away: their queued and waiting records are dropped (not settled: read again by
  /// the next owner), running ones get up to the shutdown timeout. Returns their final positions
  /// (with metadata).
  std::vector<Position> revoke(const std::vector<TopicPartition>& partitions);
  /// Positions that moved since the last call (offsets only).
  [[nodiscard]] std::vector<Position> take_positions();
  /// What to commit now: the position and metadata of every partition whose progress changed since
  /// the last call. A record waiting for a retry counts its next attempt as made (after a crash it
  /// is not run more often than its retries allow); revoke() and stop() give exact counts.
  [[nodiscard]] std::vector<Position> checkpoint();
  /// True when an attempt count changed since the last checkpoint(): commit soon, so that a crash in
  /// the coming retry does not reset it.
  [[nodiscard]] bool checkpoint_urgent() const noexcept;
  /// The number of the last checkpoint() (1, 2, ...), for committed().
  [[nodiscard]] std::uint64_t checkpoint_serial() const;
  /// Checkpoints up to `serial` are committed (ContainerRuntime::gate_retries).
  void committed(std::uint64_t serial);
  /// True when take_positions() or take_flow_changes() may have something (a cheap check).
  [[nodiscard]] bool has_news() const noexcept;
  /// Partitions to pause or resume since the last call.
  [[nodiscard]] FlowChanges take_flow_changes();
  /// True when take_flow_changes() has something (a cheap check: the fetch loop applies pauses at once).
  [[nodiscard]] bool has_flow_changes() const noexcept;
  /// No record starts from now on (running ones finish); stop() follows. For a stop requested on
  /// another thread than the one that will call stop().
  void halt() noexcept;
  /// Stops: drops queued and waiting records, lets running handlers finish within the shutdown
  /// timeout (a handler that calls the adapter's stop() is not waited for), returns the final position
  /// of every partition. Idempotent (a second call returns nothing).
  std::vector<Position> stop();

  /// Records offered and not yet settled or dropped.
  [[nodiscard]] std::size_t buffered() const;
  /// Handler calls under way (after stop(): those that outlived its shutdown timeout).
  [[nodiscard]] std::size_t running() const;
  /// Records waiting for a retry's backoff (or for their dead-letter publish to be tried again).
  [[nodiscard]] std::size_t retries_waiting() const;
  [[nodiscard]] const Subscription& subscription() const noexcept;
  /// True on a thread that runs one of this container's handlers right now.
  [[nodiscard]] bool runs_on_this_thread() const noexcept;

  /// While alive on a thread that runs a handler of some container, that handler is not waited for
  /// by its container's stop() or revoke(): an adapter's stop() holds one, so a handler may stop the
  /// broker it is served by.
  class StopFromHandler {
   public:
    StopFromHandler() noexcept;
    ~StopFromHandler();
    StopFromHandler(const StopFromHandler&) = delete;
    StopFromHandler& operator=(const StopFromHandler&) = delete;

   private:
    void* state_{nullptr};
  };

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace cppfly::messaging
