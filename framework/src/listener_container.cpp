// The listener container: ordering units, workers, retry timers, dead letters, offsets, bounds.
//
// State (all under State::mutex):
//   partitions   TopicPartition → Partition: its offset tracker and its ordering units
//   Unit         the records that must run one after the other (a partition, a key, or one record),
//                queued in offer order; at most one of them runs, and while its head waits for a
//                retry the whole unit waits
//   ready        units whose head may run now; workers take them in turn
//   timers       units waiting for a retry (or a dead-letter publish to be tried again)
// A batch handler gets up to batch_max_records records at the front of a unit (a partition: batches
// need partition ordering) in one call; a unit waiting for its batch to fill is on the timers too.
// A partition being revoked or stopped is `draining`: nothing more is queued, records that finish
// still settle; once the wait is over it is `gone` and late finishes are dropped.
#include <cppfly/messaging/listener_container.hpp>

#include <cppfly/messaging/batch_failure.hpp>
#include <cppfly/messaging/broker_port.hpp>
#include <cppfly/messaging/dead_letter.hpp>
#include <cppfly/messaging/json_codec.hpp>
#include <cppfly/messaging/payload_logging.hpp>
#include <cppfly/messaging/observer.hpp>
#include <cppfly/messaging/trace_context.hpp>

#include <cxxabi.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cppfly/detail/log.hpp"
#include "offset_progress.hpp"
#include "type_name.hpp"

namespace cppfly::messaging {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

/// A dead-letter topic that cannot be reached is tried again after 1 s, 2 s, 4 s ... at most this.
constexpr std::chrono::milliseconds kDeadLetterBackoffMax{30000};

struct Failure {
  std::string type;
  std::string message;
};

Failure describe_current_exception() {
  try {
    throw;
  } catch (const std::exception& e) {
    return {detail::type_name(typeid(e)), e.what()};
  } catch (...) {
    const std::type_info* type = abi::__cxa_current_exception_type();
    return {type != nullptr ? detail::type_name(*type) : "unknown", "a non-standard exception"};
  }
}

Failure describe(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (...) {
    return describe_current_exception();
  }
}

std::string where(const Message& message) {
  std::string text = message.topic;
  if (message.partition >= 0) text.append("[").append(std::to_string(message.partition)).append("]");
  if (message.offset >= 0) text.append("@").append(std::to_string(message.offset));
  return text;
}

/// "; payload: '...'" for a failure's log line when payload logging is on (pyfly.messaging.log-payloads), else "".
std::string payload_note(const Message& message) {
  if (!log_payloads()) return {};
  return std::string("; payload: ").append(payload_for_log(message.value));
}

struct Partition;

/// How a record's attempts went so far.
struct Progress {
  int failures{0};               ///< failed attempts so far
  bool dead_letter_due{false};   ///< given up on: only its dead-letter publish is left (it failed before)
  int dead_letter_failures{0};
  Failure failure{};             ///< the last one, for the dead-letter headers
};

struct Record {
  Message message;
  std::size_t bytes{0};
  Progress progress{};
  bool done{false};  ///< batches: settled (offset too) behind an unsettled record; popped when it reaches the front
  bool deferred{false};  ///< its headers are still to be read from the adapter's record (counted in the queue's pool)
};

/// A FIFO of records in chunks of 64 that are reused (a std::deque would allocate a block for every
/// record this size, and free it on another thread). References stay valid until the record is popped.
class RecordQueue {
 public:
  static constexpr std::size_t kChunk = 64;
  struct Chunk {
    std::array<std::optional<Record>, kChunk> slots;
  };
  /// Spare chunks, shared by the queues of one container (used under its lock).
  using Pool = std::vector<std::unique_ptr<Chunk>>;

  void use(Pool& pool, std::size_t& deferred) noexcept {
    pool_ = &pool;
    deferred_ = &deferred;
  }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  Record& front() { return *chunks_.front()->slots[head_]; }
  Record& back() { return *chunks_.back()->slots[tail_ - 1]; }
  Record& operator[](std::size_t i) {
    const std::size_t at = head_ + i;
    return *chunks_[at / kChunk]->slots[at % kChunk];
  }
  void push_back(Record&& record) {
    if (chunks_.empty() || tail_ == kChunk) {
      chunks_.push_back(take());
      tail_ = 0;
    }
    chunks_.back()->slots[tail_++].emplace(std::move(record));
    ++size_;
  }
  void pop_front() {
    uncount(*chunks_.front()->slots[head_]);
    chunks_.front()->slots[head_++].reset();
    --size_;
    if (size_ == 0) {
      release_all();
    } else if (head_ == kChunk) {
      give(std::move(chunks_.front()));
      chunks_.pop_front();
      head_ = 0;
    }
  }
  void pop_back() {
    uncount(*chunks_.back()->slots[tail_ - 1]);
    chunks_.back()->slots[--tail_].reset();
    --size_;
    if (size_ == 0) {
      release_all();
    } else if (tail_ == 0) {
      give(std::move(chunks_.back()));
      chunks_.pop_back();
      tail_ = kChunk;
    }
  }

 private:
  void uncount(const Record& record) noexcept {
    if (record.deferred && deferred_ != nullptr) --*deferred_;
  }
  std::unique_ptr<Chunk> take() {
    if (pool_ == nullptr || pool_->empty()) return std::make_unique<Chunk>();
    auto chunk = std::move(pool_->back());
    pool_->pop_back();
    return chunk;
  }
  void give(std::unique_ptr<Chunk> chunk) {
    if (pool_ != nullptr && pool_->size() < 64) pool_->push_back(std::move(chunk));
  }
  void release_all() {
    while (!chunks_.empty()) {
      give(std::move(chunks_.back()));
      chunks_.pop_back();
    }
    head_ = 0;
    tail_ = 0;
  }

  std::deque<std::unique_ptr<Chunk>> chunks_;
  std::size_t head_{0};  ///< first record, in the first chunk
  std::size_t tail_{0};  ///< after the last record, in the last chunk
  std::size_t size_{0};
  Pool* pool_{nullptr};
  std::size_t* deferred_{nullptr};
};

/// Records that run one after the other.
struct Unit {
  Partition* partition{nullptr};
  std::string key;
  RecordQueue queue;  ///< the head runs or waits
  std::size_t running{0};    ///< records at the front a worker holds (it runs them one after the other)
  bool waiting{false};
  std::uint64_t gate{0};  ///< its retry waits for the commit of this checkpoint (its attempt count): 0 none
  Clock::time_point gate_deadline{};  ///< ... at most until then
  bool filling{false};        ///< batches: waiting (on the timers, until fill_due) for more records
  Clock::time_point fill_due{};
};

/// Offsets given to the container and not settled, in order; the position is the first of them.
class OffsetTracker {
 public:
  void add(std::int64_t offset) {
    if (entries_.empty() || offset > entries_.back().offset) {
      entries_.push_back({offset, false});
    } else {  // offered out of order (concurrent publishers to the in-memory broker)
      auto at = std::lower_bound(entries_.begin(), entries_.end(), offset,
                                 [](const Entry& e, std::int64_t o) { return e.offset < o; });
      if (at != entries_.end() && at->offset == offset) return;
      entries_.insert(at, {offset, false});
    }
    next_ = std::max(next_, offset + 1);
  }
  /// True when the position moved.
  bool settle(std::int64_t offset) {
    if (!entries_.empty() && entries_.front().offset == offset) {  // in order: the usual case
      entries_.pop_front();
      while (!entries_.empty() && entries_.front().settled) entries_.pop_front();
      return true;
    }
    auto at = std::lower_bound(entries_.begin(), entries_.end(), offset,
                               [](const Entry& e, std::int64_t o) { return e.offset < o; });
    if (at == entries_.end() || at->offset != offset) return false;
    at->settled = true;
    if (at != entries_.begin()) return false;
    while (!entries_.empty() && entries_.front().settled) entries_.pop_front();
    return true;
  }
  [[nodiscard]] std::int64_t position() const { return entries_.empty() ? next_ : entries_.front().offset; }
  [[nodiscard]] bool empty() const noexcept { return entries_.empty(); }
  /// After the last offset given (-1: none given).
  [[nodiscard]] std::int64_t next() const noexcept { return next_; }
  /// The settled offsets past the position, as ranges apart from each other (an unsettled offset
  /// between any two).
  void settled_ranges(std::vector<detail::OffsetRange>& out) const {
    bool open = false;
    for (const auto& e : entries_) {
      if (!e.settled) {
        open = false;
      } else if (open) {
        out.back().last = e.offset;
      } else {
        out.push_back({e.offset, e.offset});
        open = true;
      }
    }
  }

 private:
  struct Entry {
    std::int64_t offset;
    bool settled;
  };
  std::deque<Entry> entries_;
  std::int64_t next_{-1};
};

/// Attempts made on a record under retry (or read back from the commit metadata).
struct Attempts {
  int made{0};
  bool retrying{false};  ///< a retry is scheduled or runs: checkpoints count it as made
};

struct Partition {
  TopicPartition id;
  OffsetTracker offsets;
  std::deque<detail::OffsetRange> restored;  ///< completed before the last commit, not offered since
  std::map<std::int64_t, Attempts> attempts; ///< records that failed (or were read back with attempts)
  bool progressed{false};                    ///< position, completions or attempts changed since the checkpoint
  std::unordered_map<std::string, Unit> units;
  std::size_t buffered{0};
  std::size_t running{0};
  std::size_t excluded{0};  ///< running handlers inside an adapter's stop()
  std::int64_t reported{-1};
  bool draining{false};
  bool gone{false};
  bool paused{false};
};

/// The handler running on this thread, for StopFromHandler.
struct CurrentRun {
  ListenerContainer::State* state{nullptr};
  Partition* partition{nullptr};
};
thread_local CurrentRun current_run;

/// While alive, this thread runs a handler of `state` (in `partition`): for StopFromHandler.
class RunningHere {
 public:
  RunningHere(ListenerContainer::State* state, Partition* partition) noexcept : outer_(current_run) {
    current_run = {state, partition};
  }
  ~RunningHere() { current_run = outer_; }
  RunningHere(const RunningHere&) = delete;
  RunningHere& operator=(const RunningHere&) = delete;

 private:
  CurrentRun outer_;
};

enum class Outcome { settled, retry, unsettled };

}  // namespace

struct ListenerContainer::State : std::enable_shared_from_this<ListenerContainer::State> {
  State(Subscription s, MessageBrokerPort& d, ContainerRuntime r)
      : subscription(std::move(s)), dead_letters(d), runtime(std::move(r)) {
    subscription.container.concurrency = std::max(1, subscription.container.concurrency);
    fast = runtime.caller_runs && !runtime.inline_execution && subscription.container.concurrency == 1 &&
           subscription.container.ordering == Ordering::partition && !subscription.batch_handler;
    name = subscription.container.failure.listener_name;
    if (name.empty()) name.append("'").append(subscription.topic).append("'");
  }

  Subscription subscription;
  MessageBrokerPort& dead_letters;
  ContainerRuntime runtime;
  std::string name;
  /// ContainerRuntime::caller_runs and a subscription it fits: records run in run_here(), the worker
  /// only promotes due retries.
  bool fast{false};

  std::mutex mutex;
  RecordQueue::Pool chunks;  ///< before `partitions`: outlives every queue that gives chunks back
  std::size_t deferred{0};   ///< queued records whose headers are deferred (Record::deferred)
  std::condition_variable wake;  ///< workers: a unit is ready, a timer moved, stopping
  std::condition_variable idle;  ///< stop/revoke: a running record finished
  std::condition_variable room;  ///< offer (block_when_full): below the bound again
  std::map<TopicPartition, std::unique_ptr<Partition>> partitions;
  std::vector<std::unique_ptr<Partition>> gone;  ///< revoked while a handler still ran there
  std::deque<Unit*> ready;
  std::multimap<Clock::time_point, Unit*> timers;
  std::size_t buffered_records{0};
  std::size_t buffered_bytes{0};
  std::size_t running{0};
  std::size_t excluded{0};
  bool started{false};
  bool stopping{false};
  bool caller_running{false};  ///< fast path: a thread runs records in run_here()
  std::atomic<std::uint64_t> drains{0};  ///< counts revokes and the stop: a worker's run of records ends early
  std::atomic<bool> halted{false};        ///< stop() began (read by inline runs without the lock)
  std::vector<Message> spares;            ///< handled records' messages, for offer(batch) to hand back
  static constexpr std::size_t kSparesMax = 1024;
  bool stopped{false};
  FlowChanges flow;
  std::atomic<bool> news{false};
  std::atomic<bool> urgent{false};  ///< an attempt count changed since the last checkpoint
  std::atomic<bool> flow_news{false};  ///< partitions to pause or resume since take_flow_changes()
  std::uint64_t checkpoints{0};     ///< checkpoint() calls
  std::uint64_t acknowledged{0};    ///< the last checkpoint the adapter committed

  struct Worker {
    std::thread thread;
    bool busy{false};
  };
  std::deque<Worker> workers;

  // --- bounds -----------------------------------------------------------------------------
  [[nodiscard]] bool full() const {
    const auto& o = subscription.container;
    return buffered_records >= o.max_buffered_records || buffered_bytes >= o.max_buffered_bytes;
  }
  /// Pauses a partition whose records fill its share of the bound (the bound divided among the
  /// assigned partitions: one partition's backlog cannot take the whole buffer and leave the others'
  /// workers idle), or any partition with records buffered while the whole bound is full. Resumes one
  /// once it holds at most half its share and the whole buffer is below the bound: a partition that
  /// drained goes on while others still hold more than their share.
  void note_flow_locked() {
    if (runtime.block_when_full || stopping) return;  // stopped: the fetch loop asks nothing more
    const std::size_t assigned = std::max<std::size_t>(1, partitions.size());
    const std::size_t share = std::max<std::size_t>(1, subscription.container.max_buffered_records / assigned);
    const bool over = full();
    bool changed = false;
    bool resumed = false;
    for (auto& [id, p] : partitions) {
      if (p->draining) continue;
      if (!p->paused) {
        if (p->buffered > 0 && (over || p->buffered >= share)) {
          p->paused = true;
          flow.pause.push_back(id);
          changed = true;
        }
      } else if (!over && p->buffered <= share / 2) {
        p->paused = false;
        flow.resume.push_back(id);
        changed = resumed = true;
      }
    }
    if (changed) {
      news.store(true);
      flow_news.store(true, std::memory_order_relaxed);
    }
    if (resumed && runtime.wake) runtime.wake();
  }

  // --- units --------------------------------------------------------------------------------
  [[nodiscard]] std::string unit_key(const Message& message) {
    switch (subscription.container.ordering) {
      case Ordering::partition:
        return {};
      case Ordering::key:
        // (appended, not "k" + key: GCC 12 at -O3 warns about that concatenation, -Wrestrict)
        return message.key ? std::string("k").append(*message.key) : std::string("n");
      case Ordering::none:
        break;
    }
    return std::string("o").append(std::to_string(message.offset)).append("#").append(std::to_string(++unit_serial));
  }
  std::uint64_t unit_serial{0};

  Partition* partition_for(const Message& message) {
    TopicPartition id{message.topic, message.partition};
    auto found = partitions.find(id);
    if (found != partitions.end()) return found->second->draining ? nullptr : found->second.get();
    if (!runtime.assign_on_offer) return nullptr;
    auto made = std::make_unique<Partition>();
    made->id = id;
    return partitions.emplace(std::move(id), std::move(made)).first->second.get();
  }

  void drop_record_locked(Partition& p, const Record& record) {
    --p.buffered;
    --buffered_records;
    buffered_bytes -= record.bytes;
  }

  /// Drops what is queued or waiting in `p` (not what runs); keeps running heads.
  void drop_queued_locked(Partition& p) {
    std::erase_if(ready, [&](Unit* u) { return u->partition == &p; });
    for (auto it = timers.begin(); it != timers.end();) {
      it = it->second->partition == &p ? timers.erase(it) : std::next(it);
    }
    for (auto it = p.units.begin(); it != p.units.end();) {
      Unit& unit = it->second;
      unit.waiting = false;
      unit.filling = false;
      while (unit.queue.size() > unit.running) {
        drop_record_locked(p, unit.queue.back());
        unit.queue.pop_back();
      }
      it = unit.queue.empty() ? p.units.erase(it) : std::next(it);
    }
  }

  void settle_locked(Partition& p, std::int64_t offset) {
    if (p.offsets.settle(offset)) news.store(true, std::memory_order_relaxed);
    if (!p.attempts.empty()) p.attempts.erase(offset);
    p.progressed = true;
  }

  /// True when `offset` was completed before the last commit (then it is not run again). Offers come
  /// in offset order: ranges behind it are done with.
  static bool restored_locked(Partition& p, std::int64_t offset) {
    while (!p.restored.empty() && p.restored.front().last < offset) p.restored.pop_front();
    return !p.restored.empty() && p.restored.front().first <= offset;
  }

  /// The partition's position: its lowest unsettled offset, or past records completed before the last
  /// commit that follow it when nothing is unsettled.
  static std::int64_t position_now(const Partition& p) {
    std::int64_t position = p.offsets.position();
    if (position < 0 || !p.offsets.empty()) return position;
    for (const auto& range : p.restored) {
      if (range.first <= position && position <= range.last) position = range.last + 1;
    }
    return position;
  }

  /// The commit metadata of `p` at `position`; `exact`: attempts as made (else a scheduled retry counts).
  std::string metadata_of(const Partition& p, std::int64_t position, bool exact) {
    detail::OffsetProgress progress;
    progress.base = position;
    p.offsets.settled_ranges(progress.completed);
    const std::int64_t from = std::max(p.offsets.next(), position + 1);
    for (const auto& range : p.restored) {
      if (range.last < from) continue;
      const detail::OffsetRange clipped{std::max(range.first, from), range.last};
      if (!progress.completed.empty() && clipped.first <= progress.completed.back().last + 1) {
        progress.completed.back().last = std::max(progress.completed.back().last, clipped.last);
      } else {
        progress.completed.push_back(clipped);
      }
    }
    for (const auto& [offset, attempts] : p.attempts) {
      if (offset < position) continue;
      progress.attempts.emplace_back(offset, attempts.made + (attempts.retrying && !exact ? 1 : 0));
    }
    if (progress.completed.empty() && progress.attempts.empty()) return {};
    std::int64_t cut_at = -1;
    std::string text = detail::encode_progress(progress, detail::kProgressLimit, &cut_at);
    if (cut_at >= 0 && !cut_warned) {
      cut_warned = true;
      detail::log().warn("listener {}: {}[{}]: the records completed past offset {} do not fit in the commit "
                         "metadata ({} bytes at most); those from offset {} on run again after a restart or a "
                         "rebalance (logged once)",
                         name, p.id.topic, p.id.partition, position, detail::kProgressLimit, cut_at);
    }
    return text;
  }
  bool cut_warned{false};

  // --- one attempt ---------------------------------------------------------------------------
  /// Publishes `record` to the dead-letter topic; false when that failed (logged).
  bool dead_letter(Progress& progress, const Message& message) {
    const auto& policy = subscription.container.failure;
    const int retries = std::max(0, progress.failures - 1);
    try {
      dead_letters.publish(policy.dead_letter_topic, message.value,
                           dead_letter_options(message, progress.failure.type, progress.failure.message, retries,
                                               policy.group));
    } catch (const std::exception& e) {
      ++progress.dead_letter_failures;
      detail::log().error("listener {}: {} could not be sent to dead-letter topic '{}' ({}); it is held and tried "
                          "again in {} ms",
                          name, where(message), policy.dead_letter_topic, e.what(),
                          dead_letter_backoff(progress).count());
      progress.dead_letter_due = true;
      return false;
    }
    detail::log().warn("listener {}: {} sent to dead-letter topic '{}' after {} retries: {}: {}{}", name,
                       where(message), policy.dead_letter_topic, retries, progress.failure.type,
                       progress.failure.message, payload_note(message));
    return true;
  }

  [[nodiscard]] static std::chrono::milliseconds dead_letter_backoff(const Progress& progress) {
    std::chrono::milliseconds wait{1000};
    for (int i = 1; i < progress.dead_letter_failures && wait < kDeadLetterBackoffMax; ++i) wait *= 2;
    return std::min(wait, kDeadLetterBackoffMax);
  }

  /// Runs the record once (or its pending dead-letter publish). `retry_in` is set for Outcome::retry.
  /// Inline, an exhausted record without a dead-letter topic ends `unsettled` with `error` set.
  Outcome attempt(Progress& progress, const Message& message, Partition* p, std::chrono::milliseconds& retry_in,
                  std::exception_ptr& error) {
    const TraceScope trace(message);  // publishes made while handling it are spans of the record's trace
    MessagingObserver* observer = subscription.container.observer.get();
    if (observer == nullptr) return attempt_once(progress, message, p, retry_in, error);
    return observed_attempt(*observer, progress, message, p, retry_in, error);
  }

  /// attempt() told to an observer: its start, then its end with the outcome and the run time.
  Outcome observed_attempt(MessagingObserver& observer, Progress& progress, const Message& message, Partition* p,
                           std::chrono::milliseconds& retry_in, std::exception_ptr& error) {
    const std::string_view group = subscription.group ? *subscription.group : subscription.container.failure.group;
    const ConsumeEvent event{.listener = name, .group = group, .message = message};
    const int failures_before = progress.failures;
    const bool dead_letter_due_before = progress.dead_letter_due;
    observer.on_consume_start(event);
    const auto started = Clock::now();
    Outcome outcome = Outcome::unsettled;
    try {
      outcome = attempt_once(progress, message, p, retry_in, error);
    } catch (...) {
      observer.on_consume_end({.record = event, .outcome = ConsumeOutcome::skipped, .duration = Clock::now() - started});
      throw;
    }
    ConsumeOutcome told = ConsumeOutcome::skipped;
    if (outcome == Outcome::retry) {
      told = ConsumeOutcome::retried;
    } else if (outcome == Outcome::settled) {
      if (progress.failures == failures_before && !dead_letter_due_before) {
        told = ConsumeOutcome::success;
      } else if (!subscription.container.failure.dead_letter_topic.empty()) {
        told = ConsumeOutcome::dead_lettered;
      }
    }
    observer.on_consume_end({.record = event, .outcome = told, .duration = Clock::now() - started});
    return outcome;
  }

  Outcome attempt_once(Progress& progress, const Message& message, Partition* p, std::chrono::milliseconds& retry_in,
                  std::exception_ptr& error) {
    if (progress.dead_letter_due) {
      if (dead_letter(progress, message)) return Outcome::settled;
      retry_in = dead_letter_backoff(progress);
      return Outcome::retry;
    }
    const RunningHere running_here(this, p);
    try {
      call_handler(message);
      return Outcome::settled;
    } catch (...) {
      return failed(progress, message, retry_in, error);
    }
  }

  void call_handler(const Message& message) {
    if (runtime.around_handler) {
      runtime.around_handler(message, [&] { subscription.handler(message); });
    } else {
      subscription.handler(message);
    }
  }

  /// The attempt of `message` failed with the exception being handled (called in its catch block).
  Outcome failed(Progress& progress, const Message& message, std::chrono::milliseconds& retry_in,
                 std::exception_ptr& error) {
    const auto& policy = subscription.container.failure;
    try {
      throw;
    } catch (const PayloadDecodeError&) {
      progress.failure = describe_current_exception();
      ++progress.failures;
      if (policy.dead_letter_topic.empty()) {
        detail::log().error("listener {}: {} skipped, payload cannot be decoded: {}", name, where(message),
                            progress.failure.message);
        return Outcome::settled;
      }
      progress.failures = 1;  // not retried: x-retry-count 0
    } catch (...) {
      progress.failure = describe_current_exception();
      ++progress.failures;
      const int retries = std::max(0, policy.retry.retries);
      if (progress.failures <= retries) {
        retry_in = policy.retry.delay_before(progress.failures);
        detail::log().warn("listener {}: {} failed ({}: {}); retry {}/{} in {} ms{}", name, where(message),
                           progress.failure.type, progress.failure.message, progress.failures, retries, retry_in.count(),
                           payload_note(message));
        return Outcome::retry;
      }
      if (policy.dead_letter_topic.empty()) {
        detail::log().error("listener {}: {} failed after {} retries, no dead-letter topic: {}: {}; skipped{}", name,
                            where(message), retries, progress.failure.type, progress.failure.message,
                            payload_note(message));
        if (runtime.inline_execution) {
          error = std::current_exception();
          return Outcome::unsettled;
        }
        return Outcome::settled;
      }
    }
    if (dead_letter(progress, message)) return Outcome::settled;
    retry_in = dead_letter_backoff(progress);
    return Outcome::retry;
  }

  // --- workers -----------------------------------------------------------------------------
  /// True when a unit became ready. Due units go before the units already ready, in the order they
  /// fell due: a retry runs at its backoff, not behind the whole backlog fetched meanwhile (its record
  /// is the oldest of its unit, and holds its partition's committed offset back).
  bool promote_due_locked(Clock::time_point now) {
    std::size_t promoted = 0;
    while (!timers.empty() && timers.begin()->first <= now) {
      Unit* unit = timers.begin()->second;
      timers.erase(timers.begin());
      if (unit->gate > acknowledged && now < unit->gate_deadline) {
        // Its attempt count is not committed yet: a crash in the retry would not count it.
        timers.emplace(std::min(now + kGatePoll, unit->gate_deadline), unit);
        continue;
      }
      unit->gate = 0;
      unit->waiting = false;
      unit->filling = false;
      ready.insert(ready.begin() + static_cast<std::ptrdiff_t>(promoted), unit);
      ++promoted;
    }
    return promoted > 0;
  }
  /// A retry whose attempt count is not committed looks again this often, at most kGateMax past its due time.
  static constexpr std::chrono::milliseconds kGatePoll{5};
  static constexpr std::chrono::milliseconds kGateMax{2000};

  void work(Worker& self) {
    std::unique_lock lock(mutex);
    for (;;) {
      if (promote_due_locked(Clock::now()) && fast && runtime.wake) runtime.wake();  // run_here() runs it
      if (!fast && !ready.empty() && !halted.load()) {
        Unit* unit = ready.front();
        ready.pop_front();
        self.busy = true;
        run(lock, *unit);
        self.busy = false;
        continue;
      }
      if (stopping) return;
      if (!timers.empty()) {
        const Clock::time_point due = timers.begin()->first;  // a copy: another worker may erase the timer
        wake.wait_until(lock, due);
      } else {
        wake.wait(lock);
      }
    }
  }

  /// A worker runs up to this many records of one unit in a row before it takes the lock again.
  static constexpr std::size_t kRunLength = 64;

  /// Runs the records at the front of `unit`, one after the other (called and returning with the lock held).
  void run(std::unique_lock<std::mutex>& lock, Unit& unit) {
    if (batching()) {
      run_batch(lock, unit);
      return;
    }
    Partition& p = *unit.partition;
    std::array<Record*, kRunLength> records{};
    const std::size_t held = std::min(unit.queue.size(), kRunLength);
    for (std::size_t i = 0; i < held; ++i) records[i] = &unit.queue[i];
    unit.running = held;
    ++p.running;
    ++running;
    const std::uint64_t drains_at_start = drains.load();
    lock.unlock();
    std::chrono::milliseconds retry_in{0};
    std::exception_ptr error;
    std::size_t settled = 0;
    bool failed = false;
    for (std::size_t i = 0; i < held; ++i) {
      if (i > 0 && drains.load(std::memory_order_relaxed) != drains_at_start) break;  // revoke or stop: no more
      Record& record = *records[i];
      record.message.attempt = record.progress.failures + 1;
      if (attempt(record.progress, record.message, &p, retry_in, error) != Outcome::settled) {
        failed = true;
        break;
      }
      ++settled;
    }
    lock.lock();
    finish_run_locked(unit, held, settled, failed, retry_in);
  }

  /// After a worker ran the first `held` records of `unit`: pops the first `settled` (settling them),
  /// then queues the unit again, sets its retry timer (`failed`), or drops what is left (lock held).
  void finish_run_locked(Unit& unit, std::size_t held, std::size_t settled, bool failed,
                         std::chrono::milliseconds retry_in) {
    Partition& p = *unit.partition;
    --running;
    --p.running;
    unit.running = 0;
    if (stopping || p.draining) idle.notify_all();
    if (p.gone) {  // revoked or stopped while it ran: nothing of it counts any more
      for (std::size_t i = 0; i < held; ++i) {
        drop_record_locked(p, unit.queue.front());
        unit.queue.pop_front();
      }
      if (p.running == 0) std::erase_if(gone, [&](const auto& g) { return g.get() == &p; });
      return;
    }
    for (std::size_t i = 0; i < settled; ++i) {
      Record& done = unit.queue.front();
      settle_locked(p, done.message.offset);
      drop_record_locked(p, done);
      if (spares.size() < kSparesMax) {
        DeferredHeaders::forget(done.message.headers);
        spares.push_back(std::move(done.message));
      }
      unit.queue.pop_front();
    }
    if (settled > 0) {
      note_flow_locked();
      if (runtime.block_when_full) room.notify_all();
    }
    if (p.draining || stopping) {  // what was not settled is dropped: read again later
      if (failed) {
        const Record& head = unit.queue.front();
        // Its attempts so far go into the final commit: the next delivery counts on from them.
        if (!head.progress.dead_letter_due && head.progress.failures > 0) {
          p.attempts[head.message.offset] = {head.progress.failures, false};
        }
        detail::log().info("listener {}: {} not retried: {}; it is delivered again", name, where(head.message),
                           stopping ? "stopping" : "its partition was revoked");
      }
      while (!unit.queue.empty()) {
        drop_record_locked(p, unit.queue.back());
        unit.queue.pop_back();
      }
    } else if (failed) {
      if (const Record& head = unit.queue.front(); !head.progress.dead_letter_due && head.progress.failures > 0) {
        p.attempts[head.message.offset] = {head.progress.failures, true};
        p.progressed = true;
        urgent.store(true, std::memory_order_relaxed);
        news.store(true, std::memory_order_relaxed);
        if (runtime.wake) runtime.wake();  // the fetch loop commits the count before the retry
        if (runtime.gate_retries) {
          unit.gate = checkpoints + 1;  // the next checkpoint carries it
          unit.gate_deadline = Clock::now() + retry_in + kGateMax;
        }
      }
      unit.waiting = true;
      timers.emplace(Clock::now() + retry_in, &unit);
      wake.notify_one();  // a sleeping worker may have to wake sooner
      return;
    }
    if (!unit.queue.empty() && !p.draining && !stopping) {
      ready.push_back(&unit);
      if (!fast) wake.notify_one();
    } else if (unit.queue.empty()) {
      p.units.erase(unit.key);
    }
  }

  /// Queues a record (lock held); true when a worker should be woken.
  bool queue_locked(Partition& p, Message&& message, std::size_t bytes) {
    const std::string key = unit_key(message);
    Unit& unit = p.units[key];
    if (unit.partition == nullptr) {
      unit.partition = &p;
      unit.key = key;
      unit.queue.use(chunks, deferred);
    }
    const bool headers_deferred = DeferredHeaders::pending(message.headers);
    unit.queue.push_back(Record{.message = std::move(message), .bytes = bytes});
    if (headers_deferred) {
      unit.queue.back().deferred = true;
      ++deferred;
    }
    if (!p.attempts.empty()) {
      Record& added = unit.queue.back();
      if (auto found = p.attempts.find(added.message.offset); found != p.attempts.end()) {
        added.progress.failures = found->second.made;
      }
    }
    if (unit.running == 0 && !unit.waiting && unit.queue.size() == 1) {
      if (batching() && subscription.container.batch_max_wait.count() > 0 && batch_limit() > 1) {
        unit.waiting = unit.filling = true;  // the batch waits to fill
        unit.fill_due = Clock::now() + subscription.container.batch_max_wait;
        timers.emplace(unit.fill_due, &unit);
        return true;  // a sleeping worker may have to wake sooner
      }
      ready.push_back(&unit);
      return true;
    }
    if (unit.filling && unit.queue.size() >= batch_limit()) {  // filled before its wait ended
      const auto [first, last] = timers.equal_range(unit.fill_due);
      const auto timer = std::find_if(first, last, [&](const auto& t) { return t.second == &unit; });
      if (timer != last) timers.erase(timer);
      unit.waiting = unit.filling = false;
      ready.push_back(&unit);
      return true;
    }
    return false;
  }

  /// Inline: runs the record and its retries on this thread. No offsets, bounds or partitions are
  /// kept (nothing commits them), and stop() does not wait for inline runs: the adapter that calls
  /// them does (stop() cuts their retry waits short).
  void run_inline(const Message& message) {
    if (halted.load(std::memory_order_relaxed)) return;  // stopped: dropped
    if (batching()) {
      run_inline_batch(message);
      return;
    }
    // Without an observer the first attempt runs without the retry state (most records need none).
    if (subscription.container.observer == nullptr) {
      const RunningHere running_here(this, nullptr);
      const TraceScope trace(message);
      try {
        call_handler(message);
        return;
      } catch (...) {
        run_inline_retries(message, true);
        return;
      }
    }
    run_inline_retries(message, false);
  }

  /// run_inline() from its first attempt, or (`first_failed`, in the catch block of the first attempt's
  /// exception) after it.
  void run_inline_retries(const Message& message, bool first_failed) {
    // The first attempt sees the publisher's message (attempt 1); a retry, a copy with its count.
    Progress progress;
    std::optional<Message> copy;
    const Message* current = &message;
    std::exception_ptr error;
    for (;;) {
      std::chrono::milliseconds retry_in{0};
      const Outcome outcome =
          first_failed ? failed(progress, message, retry_in, error) : attempt(progress, *current, nullptr, retry_in, error);
      first_failed = false;
      if (outcome != Outcome::retry) break;
      std::unique_lock lock(mutex);
      if (wake.wait_for(lock, retry_in, [&] { return halted.load(); })) {
        detail::log().info("listener {}: {} not retried: stopping", name, where(message));
        break;
      }
      lock.unlock();
      if (!copy) copy.emplace(message);
      copy->attempt = progress.failures + 1;
      current = &*copy;
    }
    if (error) std::rethrow_exception(error);
  }

  // --- batches -------------------------------------------------------------------------------
  [[nodiscard]] bool batching() const noexcept { return static_cast<bool>(subscription.batch_handler); }
  [[nodiscard]] std::size_t batch_limit() const noexcept {
    return std::max<std::size_t>(1, subscription.container.batch_max_records);
  }

  /// What a batch run did.
  struct BatchRun {
    std::size_t settled{0};  ///< records at the front now settled (handled, dead-lettered or skipped)
    bool retry{false};       ///< the record after them is tried again in retry_in
    std::chrono::milliseconds retry_in{0};
    std::exception_ptr error{};  ///< inline: a record given up on without a dead-letter topic
  };

  /// Calls the batch handler (the handler runs on this thread for StopFromHandler); its exception, or null.
  std::exception_ptr call_batch(std::span<const Message> batch, Partition* p) {
    const RunningHere running_here(this, p);
    const TraceScope trace(TraceScope::NewTrace{});  // several records' traces: its publishes start one of their own
    try {
      subscription.batch_handler(batch);
      return nullptr;
    } catch (...) {
      return std::current_exception();
    }
  }

  /// An exhausted record (its failure noted) goes to the dead-letter topic, or is skipped without one.
  /// False when its dead-letter publish failed: it is due, tried again later.
  bool give_up(Record& record, BatchRun& run, const std::exception_ptr& error) {
    const auto& policy = subscription.container.failure;
    if (policy.dead_letter_topic.empty()) {
      detail::log().error("listener {}: {} failed after {} retries, no dead-letter topic: {}: {}; skipped", name,
                          where(record.message), std::max(0, record.progress.failures - 1),
                          record.progress.failure.type, record.progress.failure.message);
      if (runtime.inline_execution) run.error = error;
      record.done = true;
      return true;
    }
    record.done = dead_letter(record.progress, record.message);
    return record.done;
  }

  /// The records of `members` that cannot be decoded go to the dead-letter topic at once (x-retry-count
  /// 0) and leave the batch. False when none of them could be taken out (then the batch failed).
  bool reject_undecodable(std::span<Record* const> records, const std::vector<std::size_t>& members,
                          const BatchDecodeError& e) {
    const auto& policy = subscription.container.failure;
    bool changed = false;
    for (const auto& rejected : e.rejected()) {
      if (rejected.index >= members.size() || !rejected.error) continue;
      Record& record = *records[members[rejected.index]];
      record.progress.failure = describe(rejected.error);
      record.progress.failures = 1;  // not retried: x-retry-count 0
      changed = true;
      if (policy.dead_letter_topic.empty()) {
        detail::log().error("listener {}: {} skipped, payload cannot be decoded: {}", name, where(record.message),
                            record.progress.failure.message);
        record.done = true;
      } else {
        record.done = dead_letter(record.progress, record.message);  // else due: the batch now ends before it
      }
    }
    return changed;
  }

  /// The whole batch failed: each of its records had one more attempt. Retried while its first record
  /// has retries left; then the exhausted records are given up on one by one. True to go on at once.
  bool fail_batch(std::span<Record* const> records, const std::vector<std::size_t>& members, BatchRun& run,
                  const std::exception_ptr& error) {
    const auto& policy = subscription.container.failure;
    const int retries = std::max(0, policy.retry.retries);
    const Failure failure = describe(error);
    for (const std::size_t i : members) {
      ++records[i]->progress.failures;
      records[i]->progress.failure = failure;
    }
    Record& head = *records[members.front()];
    if (head.progress.failures <= retries) {
      run.retry = true;
      run.retry_in = policy.retry.delay_before(head.progress.failures);
      detail::log().warn("listener {}: batch of {} from {} failed ({}: {}); retry {}/{} in {} ms", name, members.size(),
                         where(head.message), failure.type, failure.message, head.progress.failures, retries,
                         run.retry_in.count());
      return false;
    }
    for (const std::size_t i : members) {
      Record& record = *records[i];
      if (record.progress.failures <= retries) break;  // joined the batch later: has retries left
      if (!give_up(record, run, error)) {
        run.retry = true;
        run.retry_in = dead_letter_backoff(record.progress);
        return false;
      }
    }
    return true;
  }

  /// A record of the batch failed (BatchFailure): the ones before it are done; it is retried or given up on.
  /// True to go on at once (with the records after it).
  bool fail_record(Record& record, BatchRun& run, const BatchFailure& e, const std::exception_ptr& error) {
    const int retries = std::max(0, subscription.container.failure.retry.retries);
    const std::exception_ptr cause = e.cause() ? e.cause() : error;
    record.progress.failure = describe(cause);
    ++record.progress.failures;
    if (record.progress.failures <= retries) {
      run.retry = true;
      run.retry_in = subscription.container.failure.retry.delay_before(record.progress.failures);
      detail::log().warn("listener {}: {} failed in its batch ({}: {}); retry {}/{} in {} ms", name,
                         where(record.message), record.progress.failure.type, record.progress.failure.message,
                         record.progress.failures, retries, run.retry_in.count());
      return false;
    }
    if (give_up(record, run, cause)) return true;
    run.retry = true;
    run.retry_in = dead_letter_backoff(record.progress);
    return false;
  }

  /// Runs `records` (one partition's, in offset order) as batches until all are settled, one is to be
  /// retried, or a revoke or stop comes; called without the lock.
  BatchRun attempt_batch(std::span<Record* const> records, Partition* p) {
    const std::uint64_t drains_at_start = drains.load();
    BatchRun run;
    std::vector<std::size_t> members;  // indices into `records` of the batch handed over
    std::vector<Message> batch;
    for (bool first = true;; first = false) {
      while (run.settled < records.size() && records[run.settled]->done) ++run.settled;
      if (run.settled == records.size()) return run;
      if (!first && drains.load(std::memory_order_relaxed) != drains_at_start) return run;  // revoke or stop
      Record& head = *records[run.settled];
      if (head.progress.dead_letter_due) {  // given up on before; its dead-letter publish failed
        if (!dead_letter(head.progress, head.message)) {
          run.retry = true;
          run.retry_in = dead_letter_backoff(head.progress);
          return run;
        }
        head.done = true;
        continue;
      }
      members.clear();
      for (std::size_t i = run.settled; i < records.size() && !records[i]->progress.dead_letter_due; ++i) {
        if (!records[i]->done) members.push_back(i);
      }
      batch.clear();
      for (const std::size_t i : members) {
        records[i]->message.attempt = records[i]->progress.failures + 1;
        batch.push_back(std::move(records[i]->message));
      }
      const std::exception_ptr error = call_batch(batch, p);
      for (std::size_t j = 0; j < members.size(); ++j) records[members[j]]->message = std::move(batch[j]);
      if (!error) {
        for (const std::size_t i : members) records[i]->done = true;
        continue;
      }
      bool go_on = false;
      try {
        std::rethrow_exception(error);
      } catch (const BatchDecodeError& e) {
        go_on = reject_undecodable(records, members, e) || fail_batch(records, members, run, error);
      } catch (const BatchFailure& e) {
        if (e.index() < members.size()) {
          for (std::size_t j = 0; j < e.index(); ++j) records[members[j]]->done = true;
          go_on = fail_record(*records[members[e.index()]], run, e, error);
        } else {
          detail::log().error("listener {}: BatchFailure index {} is outside its batch of {}: the batch failed", name,
                              e.index(), members.size());
          go_on = fail_batch(records, members, run, error);
        }
      } catch (...) {
        go_on = fail_batch(records, members, run, error);
      }
      if (!go_on) {
        while (run.settled < records.size() && records[run.settled]->done) ++run.settled;
        return run;
      }
    }
  }

  /// A worker's batch: up to batch_max_records records at the front of `unit` (lock held on entry and exit).
  void run_batch(std::unique_lock<std::mutex>& lock, Unit& unit) {
    Partition& p = *unit.partition;
    const std::size_t held = std::min(unit.queue.size(), batch_limit());
    std::vector<Record*> records(held);
    for (std::size_t i = 0; i < held; ++i) records[i] = &unit.queue[i];
    unit.running = held;
    ++p.running;
    ++running;
    lock.unlock();
    const BatchRun outcome = attempt_batch(records, &p);
    lock.lock();
    if (!p.gone) {  // settled behind an unsettled record (dead-lettered, or before a BatchFailure's index)
      for (std::size_t i = outcome.settled; i < held; ++i) {
        if (records[i]->done) settle_locked(p, records[i]->message.offset);
      }
    }
    finish_run_locked(unit, held, outcome.settled, outcome.retry, outcome.retry_in);
  }

  /// Inline: the record as a batch of one (nothing else is buffered), its retries on this thread.
  void run_inline_batch(const Message& message) {
    Record record{.message = message};
    const std::array<Record*, 1> records{&record};
    for (;;) {
      const BatchRun outcome = attempt_batch(records, nullptr);
      if (!outcome.retry) {
        if (outcome.error) std::rethrow_exception(outcome.error);
        return;
      }
      std::unique_lock lock(mutex);
      if (wake.wait_for(lock, outcome.retry_in, [&] { return halted.load(); })) {
        detail::log().info("listener {}: {} not retried: stopping", name, where(message));
        return;
      }
    }
  }

  void start_workers() {
    for (int i = 0; i < subscription.container.concurrency; ++i) {
      workers.emplace_back();
      Worker& worker = workers.back();
      worker.thread = std::thread([self = shared_from_this(), &worker] { self->work(worker); });
    }
  }

  /// Waits until nothing of `drained` runs (except handlers inside a stop), at most the shutdown timeout.
  /// False when some still run.
  bool await_drained(std::unique_lock<std::mutex>& lock, const std::function<bool()>& drained) {
    return idle.wait_for(lock, subscription.container.shutdown_timeout, drained);
  }

  /// The partition's position, noted as reported; with its metadata when `metadata`.
  Position position_of(Partition& p, bool metadata = true) {
    p.reported = position_now(p);
    return {p.id, p.reported, metadata ? metadata_of(p, p.reported, true) : std::string()};
  }

  /// Takes a record offered to `p` (lock held); true when a worker should be woken. A record completed
  /// before the last commit is settled at once, not run.
  bool accept_locked(Partition& p, Message&& message) {
    p.offsets.add(message.offset);
    if (!p.restored.empty() && restored_locked(p, message.offset)) {
      settle_locked(p, message.offset);
      DeferredHeaders::forget(message.headers);
      if (spares.size() < kSparesMax) spares.push_back(std::move(message));
      return false;
    }
    const std::size_t bytes = message.value.size() + (message.key ? message.key->size() : 0);
    ++p.buffered;
    ++buffered_records;
    buffered_bytes += bytes;
    return queue_locked(p, std::move(message), bytes);
  }
};

ListenerContainer::ListenerContainer(Subscription subscription, MessageBrokerPort& dead_letters,
                                     ContainerRuntime runtime)
    : state_(std::make_shared<State>(std::move(subscription), dead_letters, std::move(runtime))) {}

ListenerContainer::~ListenerContainer() {
  try {
    stop();
  } catch (...) {  // NOLINT(bugprone-empty-catch): nothing may leave a destructor
  }
}

void ListenerContainer::check(const Subscription& subscription) {
  if (!subscription.batch_handler) return;
  const auto& o = subscription.container;
  std::string listener = o.failure.listener_name.empty() ? std::string("of '").append(subscription.topic).append("'")
                                                          : std::string("'").append(o.failure.listener_name).append("'");
  if (o.ordering != Ordering::partition) {
    throw BrokerError(std::string("batch listener ")
                          .append(listener)
                          .append(": a batch is one partition's records in offset order, so ordering must be "
                                  "partition (not ")
                          .append(to_string(o.ordering))
                          .append(")"));
  }
  if (o.transactional) throw BrokerError(std::string("batch listener ").append(listener).append(" cannot be transactional"));
  if (o.batch_max_records < 1) {
    throw BrokerError(std::string("batch listener ").append(listener).append(": batch_max_records must be >= 1"));
  }
}

const Subscription& ListenerContainer::subscription() const noexcept { return state_->subscription; }

bool ListenerContainer::runs_on_this_thread() const noexcept { return current_run.state == state_.get(); }

void ListenerContainer::start() {
  const std::lock_guard lock(state_->mutex);
  if (state_->started || state_->stopping) return;
  state_->started = true;
  if (!state_->runtime.inline_execution) state_->start_workers();
}

void ListenerContainer::assign(const std::vector<TopicPartition>& partitions) {
  std::vector<Position> committed;
  committed.reserve(partitions.size());
  for (const auto& id : partitions) committed.push_back({id, -1, {}});
  assign_committed(committed);
}

void ListenerContainer::assign_committed(const std::vector<Position>& committed) {
  State& s = *state_;
  const std::lock_guard lock(s.mutex);
  for (const auto& [id, offset, metadata] : committed) {
    auto& slot = s.partitions[id];
    if (slot && !slot->draining) continue;
    if (slot) {  // still draining from an earlier revoke: let it finish apart
      slot->gone = true;
      if (slot->running > 0) s.gone.push_back(std::move(slot));
    }
    slot = std::make_unique<Partition>();
    slot->id = id;
    if (metadata.empty()) continue;
    detail::ProgressRejection why{};
    auto progress = detail::decode_progress(metadata, offset, why);
    if (!progress) {
      if (why == detail::ProgressRejection::foreign) {
        detail::log().warn("listener {}: {}[{}]: the commit metadata at offset {} was not written by cppfly; ignored",
                           s.name, id.topic, id.partition, offset);
      } else if (why == detail::ProgressRejection::later_version) {
        detail::log().warn("listener {}: {}[{}]: the commit metadata at offset {} has a later format than this "
                           "version reads; ignored (records completed past it may run again)",
                           s.name, id.topic, id.partition, offset);
      } else if (why == detail::ProgressRejection::other_offset) {
        detail::log().info("listener {}: {}[{}]: the committed offset {} was moved since the metadata was written; "
                           "its progress is ignored",
                           s.name, id.topic, id.partition, offset);
      }
      continue;
    }
    slot->restored.assign(progress->completed.begin(), progress->completed.end());
    for (const auto& [at, made] : progress->attempts) slot->attempts[at] = {made, false};
    detail::log().debug("listener {}: {}[{}]: resumed at offset {}: {} completed range(s) past it, {} record(s) "
                        "with attempts",
                        s.name, id.topic, id.partition, offset, slot->restored.size(), slot->attempts.size());
  }
}

void ListenerContainer::offer(Message message) {
  State& s = *state_;
  if (s.runtime.inline_execution) {
    s.run_inline(message);
    return;
  }
  std::unique_lock lock(s.mutex);
  if (s.stopping) return;  // stopped: not settled, read again later
  if (s.runtime.block_when_full && current_run.state != &s) {
    s.room.wait(lock, [&] { return s.stopping || !s.full(); });
    if (s.stopping) return;
  }
  Partition* p = s.partition_for(message);
  if (p == nullptr) {
    detail::log().debug("listener {}: {} dropped: its partition is not assigned", s.name, where(message));
    return;
  }
  if (s.accept_locked(*p, std::move(message)) && !s.fast) s.wake.notify_one();
  s.note_flow_locked();
}

void ListenerContainer::deliver(const Message& message) {
  if (state_->runtime.inline_execution) {
    state_->run_inline(message);
  } else {
    offer(Message(message));
  }
}

void ListenerContainer::offer(std::vector<Message>& messages) {
  State& s = *state_;
  if (s.runtime.inline_execution || s.runtime.block_when_full) {
    for (auto& message : messages) offer(std::move(message));
    messages.clear();
    return;
  }
  std::size_t woken = 0;
  {
    const std::lock_guard lock(s.mutex);
    if (!s.stopping) {
      Partition* last = nullptr;  // a fetch brings runs of one partition's records
      for (auto& message : messages) {
        Partition* p = last != nullptr && message.partition == last->id.partition && message.topic == last->id.topic
                           ? last
                           : s.partition_for(message);
        last = p;
        if (p == nullptr) {
          detail::log().debug("listener {}: {} dropped: its partition is not assigned", s.name, where(message));
          continue;
        }
        if (s.accept_locked(*p, std::move(message)) && !s.fast) ++woken;
      }
      s.note_flow_locked();
    }
    messages.clear();
    const std::size_t reuse = std::min(s.spares.size(), messages.capacity());
    std::move(s.spares.end() - static_cast<std::ptrdiff_t>(reuse), s.spares.end(), std::back_inserter(messages));
    s.spares.resize(s.spares.size() - reuse);
  }
  if (woken == 1) {
    s.wake.notify_one();
  } else if (woken > 1) {
    s.wake.notify_all();
  }
}

bool ListenerContainer::run_here(Clock::time_point until, const std::function<bool()>& go_on) {
  State& s = *state_;
  if (!s.fast) return false;
  std::unique_lock lock(s.mutex);
  if (s.caller_running) return !s.ready.empty();  // a thread that lost the lead finishes its run
  if (!s.timers.empty()) s.promote_due_locked(Clock::now());
  s.caller_running = true;
  while (!s.ready.empty() && !s.halted.load() && !s.stopping) {
    Unit* unit = s.ready.front();
    s.ready.pop_front();
    s.run(lock, *unit);
    if (Clock::now() >= until || !go_on()) break;
  }
  s.caller_running = false;
  return !s.ready.empty() && !s.halted.load() && !s.stopping;
}

bool ListenerContainer::runs_on_caller() const noexcept { return state_->fast; }

void ListenerContainer::resolve_deferred() {
  State& s = *state_;
  const std::lock_guard lock(s.mutex);
  if (s.deferred == 0) return;
  auto resolve = [&](Partition& p) {
    for (auto& [key, unit] : p.units) {
      for (std::size_t i = 0; i < unit.queue.size() && s.deferred > 0; ++i) {
        Record& record = unit.queue[i];
        if (!record.deferred) continue;
        DeferredHeaders::resolve(record.message.headers);
        record.deferred = false;
        --s.deferred;
      }
    }
  };
  for (auto& [id, p] : s.partitions) resolve(*p);
  for (auto& p : s.gone) resolve(*p);
}

std::vector<Position> ListenerContainer::revoke(const std::vector<TopicPartition>& partitions) {
  State& s = *state_;
  std::unique_lock lock(s.mutex);
  std::vector<Partition*> revoked;
  for (const auto& id : partitions) {
    auto found = s.partitions.find(id);
    if (found == s.partitions.end() || found->second->draining) continue;
    Partition& p = *found->second;
    p.draining = true;
    s.drop_queued_locked(p);
    revoked.push_back(&p);
  }
  s.drains.fetch_add(1);
  s.wake.notify_all();
  if (!s.await_drained(lock, [&] {
        return std::all_of(revoked.begin(), revoked.end(), [](Partition* p) { return p->running <= p->excluded; });
      })) {
    detail::log().warn("listener {}: handlers of revoked partitions still run after the shutdown timeout ({} ms); "
                       "their records are delivered again to the next owner",
                       s.name, s.subscription.container.shutdown_timeout.count());
  }
  std::vector<Position> positions;
  for (Partition* p : revoked) {
    positions.push_back(s.position_of(*p));
    p->gone = true;
    if (p->paused) std::erase(s.flow.pause, p->id);
    auto found = s.partitions.find(p->id);
    if (p->running > 0) s.gone.push_back(std::move(found->second));
    s.drop_queued_locked(*p);
    s.partitions.erase(found);
  }
  s.note_flow_locked();
  return positions;
}

std::vector<Position> ListenerContainer::take_positions() {
  State& s = *state_;
  const std::lock_guard lock(s.mutex);
  s.news.store(!s.flow.empty(), std::memory_order_relaxed);
  std::vector<Position> positions;
  for (auto& [id, p] : s.partitions) {
    const std::int64_t position = State::position_now(*p);
    if (position != p->reported && position >= 0) positions.push_back(s.position_of(*p, false));
  }
  return positions;
}

std::vector<Position> ListenerContainer::checkpoint() {
  State& s = *state_;
  const std::lock_guard lock(s.mutex);
  s.urgent.store(false, std::memory_order_relaxed);
  ++s.checkpoints;
  std::vector<Position> positions;
  for (auto& [id, p] : s.partitions) {
    if (!p->progressed || p->draining) continue;
    p->progressed = false;
    const std::int64_t position = State::position_now(*p);
    if (position < 0) continue;
    p->reported = position;
    positions.push_back({id, position, s.metadata_of(*p, position, false)});
  }
  return positions;
}

bool ListenerContainer::checkpoint_urgent() const noexcept { return state_->urgent.load(std::memory_order_relaxed); }

std::uint64_t ListenerContainer::checkpoint_serial() const {
  const std::lock_guard lock(state_->mutex);
  return state_->checkpoints;
}

void ListenerContainer::committed(std::uint64_t serial) {
  State& s = *state_;
  const std::lock_guard lock(s.mutex);
  if (serial <= s.acknowledged) return;
  s.acknowledged = serial;
  s.wake.notify_all();  // gated retries may go
}

void ListenerContainer::halt() noexcept {
  State& s = *state_;
  const std::lock_guard lock(s.mutex);
  s.halted.store(true);
  s.drains.fetch_add(1);
}

bool ListenerContainer::has_news() const noexcept { return state_->news.load(std::memory_order_relaxed); }

bool ListenerContainer::has_flow_changes() const noexcept {
  return state_->flow_news.load(std::memory_order_relaxed);
}

FlowChanges ListenerContainer::take_flow_changes() {
  const std::lock_guard lock(state_->mutex);
  state_->flow_news.store(false, std::memory_order_relaxed);
  return std::exchange(state_->flow, {});
}

std::size_t ListenerContainer::buffered() const {
  const std::lock_guard lock(state_->mutex);
  return state_->buffered_records;
}

std::size_t ListenerContainer::running() const {
  const std::lock_guard lock(state_->mutex);
  return state_->running;
}

std::size_t ListenerContainer::retries_waiting() const {
  const std::lock_guard lock(state_->mutex);
  return state_->timers.size();
}

std::vector<Position> ListenerContainer::stop() {
  State& s = *state_;
  std::unique_lock lock(s.mutex);
  if (s.stopping) return {};
  s.stopping = true;
  s.halted.store(true);
  s.drains.fetch_add(1);
  for (auto& [id, p] : s.partitions) {
    p->draining = true;
    s.drop_queued_locked(*p);
  }
  s.wake.notify_all();
  s.room.notify_all();
  if (!s.await_drained(lock, [&] { return s.running <= s.excluded; })) {
    detail::log().warn("listener {}: {} handler(s) still run after the shutdown timeout ({} ms); stopping without "
                       "them (their records are delivered again)",
                       s.name, s.running - s.excluded, s.subscription.container.shutdown_timeout.count());
  }
  std::vector<Position> positions;
  for (auto& [id, p] : s.partitions) {
    if (State::position_now(*p) >= 0) positions.push_back(s.position_of(*p));
    p->gone = true;
    if (p->running > 0) s.gone.push_back(std::move(p));
  }
  s.partitions.clear();
  s.stopped = true;
  // The Worker objects stay in the state (a detached one still uses its own).
  std::vector<std::thread> threads;
  std::vector<bool> busy;
  for (auto& worker : s.workers) {
    threads.push_back(std::move(worker.thread));
    busy.push_back(worker.busy);
  }
  lock.unlock();
  // Idle workers end at once; one still in a handler (overdue, or stopping its own broker) is left
  // to end on its own: it holds the state.
  for (std::size_t i = 0; i < threads.size(); ++i) {
    auto& thread = threads[i];
    if (busy[i] || thread.get_id() == std::this_thread::get_id()) {
      thread.detach();
    } else {
      thread.join();
    }
  }
  return positions;
}

ListenerContainer::StopFromHandler::StopFromHandler() noexcept {
  if (current_run.state == nullptr) return;
  State& s = *current_run.state;
  const std::lock_guard lock(s.mutex);
  ++s.excluded;
  if (current_run.partition != nullptr) ++current_run.partition->excluded;
  state_ = &s;
  s.idle.notify_all();
}

ListenerContainer::StopFromHandler::~StopFromHandler() {
  if (state_ == nullptr) return;
  auto& s = *static_cast<State*>(state_);
  const std::lock_guard lock(s.mutex);
  --s.excluded;
  if (current_run.partition != nullptr) --current_run.partition->excluded;
}

}  // namespace cppfly::messaging
