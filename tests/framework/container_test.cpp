// The listener container on its own and under the in-memory broker's threaded executor: ordering,
// concurrency, retries that hold only their unit, dead letters, offsets, back-pressure, stop, revoke.
// Every wait is bounded and on a condition; handlers that must overlap meet at a gate.
#include <catch2/catch.hpp>

#include <cppfly/messaging/in_memory_broker.hpp>
#include <cppfly/messaging/listener_container.hpp>

#include "null_port.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

using namespace cppfly::messaging;
using namespace std::chrono_literals;

namespace {

/// Shared state of a test's handlers: what they saw, and a gate they may wait at.
class Board {
 public:
  void note(const Message& m) {
    const std::lock_guard lock(mutex_);
    seen_.push_back(m);
    changed_.notify_all();
  }
  bool wait_until(const std::function<bool(const std::vector<Message>&)>& done, std::chrono::milliseconds timeout = 20s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return done(seen_); });
  }
  bool wait_for_count(std::size_t n) {
    return wait_until([n](const auto& seen) { return seen.size() >= n; });
  }
  [[nodiscard]] std::vector<Message> seen() const {
    const std::lock_guard lock(mutex_);
    return seen_;
  }
  /// Blocks the calling handler until open() (at most 20 s); counts who waits.
  void hold() {
    std::unique_lock lock(mutex_);
    ++held_;
    changed_.notify_all();
    changed_.wait_for(lock, 20s, [&] { return open_; });
  }
  void open() {
    const std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }
  bool wait_for_held(int n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 20s, [&] { return held_ >= n; });
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Message> seen_;
  int held_{0};
  bool open_{false};
};

/// A port that only records dead letters (the container publishes them through it).
struct DeadLetters : cppfly_test::NullPort {
  std::mutex mutex;
  std::vector<Message> records;
  DeliveryResult publish(std::string_view topic, std::string_view value, PublishOptions options) override {
    const std::lock_guard lock(mutex);
    records.push_back(Message{.topic = std::string(topic), .value = std::string(value), .key = options.key,
                              .headers = options.headers});
    return {};
  }
};

Message record(std::int32_t partition, std::int64_t offset, std::string key, std::string value = "v") {
  return Message{.topic = "t", .value = std::move(value), .key = std::move(key), .partition = partition, .offset = offset};
}

/// Per key (or partition), the sequence numbers in the order they were handled.
std::map<std::string, std::vector<int>> sequences(const std::vector<Message>& seen, bool by_partition) {
  std::map<std::string, std::vector<int>> out;
  for (const auto& m : seen) out[by_partition ? std::to_string(m.partition) : *m.key].push_back(std::stoi(m.value));
  return out;
}

/// prefix + n, appended: `"k" + std::to_string(n)` trips GCC 12's -Wrestrict at -O3.
std::string numbered(const char* prefix, int n) { return std::string(prefix).append(std::to_string(n)); }

/// Opens the board's gate once the container holds `n` records (a stop or revoke dropped the rest):
/// the held handler then finishes while the stop or revoke waits for it, never before.
std::thread open_when_buffered(Board& board, const ListenerContainer& container, std::size_t n) {
  return std::thread([&board, &container, n] {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (container.buffered() > n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    board.open();
  });
}

bool ascending(const std::vector<int>& v) { return std::is_sorted(v.begin(), v.end()) && std::adjacent_find(v.begin(), v.end()) == v.end(); }

}  // namespace

TEST_CASE("container: key ordering with concurrency 8 keeps each key in order and runs keys at once",
          "[container][ordering]") {
  InMemoryMessageBroker broker({.threaded = true});
  Board board;
  std::atomic<int> inside{0};
  std::atomic<int> most{0};
  broker.subscribe(Subscription{.topic = "t",
                                .handler =
                                    [&](const Message& m) {
                                      const int now = ++inside;
                                      int seen = most.load();
                                      while (now > seen && !most.compare_exchange_weak(seen, now)) {
                                      }
                                      // The first record of key-0 and of key-1 meet: two handlers at once.
                                      if (m.value == "0" && (*m.key == "key-0" || *m.key == "key-1")) board.hold();
                                      --inside;
                                      board.note(m);
                                    },
                                .group = "g",
                                .container = {.ordering = Ordering::key, .concurrency = 8}});
  broker.start();
  std::thread opener([&] {
    if (board.wait_for_held(2)) board.open();
  });
  constexpr int kKeys = 50;
  constexpr int kPerKey = 40;
  for (int i = 0; i < kPerKey; ++i) {
    for (int k = 0; k < kKeys; ++k) broker.publish("t", std::to_string(i), {.key = numbered("key-", k), .partition = 0});
  }
  REQUIRE(board.wait_for_count(kKeys * kPerKey));
  opener.join();
  CHECK(most.load() >= 2);
  const auto by_key = sequences(board.seen(), false);
  CHECK(by_key.size() == kKeys);
  for (const auto& [key, seq] : by_key) {
    INFO(key);
    CHECK(seq.size() == kPerKey);
    CHECK(ascending(seq));
  }
  broker.stop();
}

TEST_CASE("container: partition ordering with concurrency 8 keeps each partition in order, partitions at once",
          "[container][ordering]") {
  InMemoryMessageBroker broker({.threaded = true});
  Board board;
  broker.subscribe(Subscription{.topic = "t",
                                .handler =
                                    [&](const Message& m) {
                                      if (m.value == "0" && m.partition < 2) board.hold();  // partitions 0 and 1 meet
                                      board.note(m);
                                    },
                                .group = "g",
                                .container = {.ordering = Ordering::partition, .concurrency = 8}});
  broker.start();
  std::thread opener([&] {
    if (board.wait_for_held(2)) board.open();
  });
  for (int i = 0; i < 200; ++i) {
    for (int p = 0; p < 4; ++p) broker.publish("t", std::to_string(i), {.key = numbered("k", i % 7), .partition = p});
  }
  REQUIRE(board.wait_for_count(800));
  opener.join();
  for (const auto& [partition, seq] : sequences(board.seen(), true)) {
    INFO(partition);
    CHECK(seq.size() == 200);
    CHECK(ascending(seq));
  }
  broker.stop();
}

TEST_CASE("container: a retrying key does not delay another key", "[container][retry]") {
  InMemoryMessageBroker broker({.threaded = true});
  Board board;
  std::atomic<int> a_attempts{0};
  broker.subscribe(Subscription{.topic = "t",
                                .handler =
                                    [&](const Message& m) {
                                      if (*m.key == "A") {
                                        ++a_attempts;
                                        throw std::runtime_error("A is down");
                                      }
                                      board.note(m);
                                    },
                                .group = "g",
                                .container = {.ordering = Ordering::key,
                                              .concurrency = 2,
                                              .failure = {.retry = {.retries = 5, .delay = 30s}},
                                              .shutdown_timeout = 2s}});
  broker.start();
  broker.publish("t", "0", {.key = "A", .partition = 0});
  for (int i = 0; i < 1000; ++i) broker.publish("t", std::to_string(i), {.key = "B", .partition = 0});
  // Every B is handled while A waits 30 s for its first retry (one partition: B is behind A in it).
  REQUIRE(board.wait_for_count(1000));
  CHECK(a_attempts.load() == 1);
  CHECK(ascending(sequences(board.seen(), false)["B"]));
  const auto start = std::chrono::steady_clock::now();
  broker.stop();  // the waiting retry does not hold the stop
  CHECK(std::chrono::steady_clock::now() - start < 4s);
}

TEST_CASE("container: a due retry runs before the records that became ready while it waited", "[container][retry]") {
  DeadLetters dead_letters;
  Board board;
  std::atomic<bool> a_failed{false};
  const auto retry_delay = 10ms;
  std::chrono::steady_clock::time_point a_failed_at;
  ListenerContainer container(
      Subscription{.topic = "t",
                   .handler =
                       [&](const Message& m) {
                         board.note(m);
                         if (*m.key == "A" && !a_failed.exchange(true)) {
                           a_failed_at = std::chrono::steady_clock::now();
                           throw std::runtime_error("A fails once");
                         }
                         // The first record after A's failure runs past A's due time.
                         if (m.value == "1") std::this_thread::sleep_until(a_failed_at + 5 * retry_delay);
                       },
                   .group = "g",
                   .container = {.ordering = Ordering::key,
                                 .concurrency = 1,
                                 .failure = {.retry = {.retries = 1, .delay = retry_delay}}}},
      dead_letters, ContainerRuntime{.assign_on_offer = true});
  container.start();
  container.offer(record(0, 0, "A", "0"));
  for (int i = 1; i <= 100; ++i) container.offer(record(0, i, numbered("B", i), std::to_string(i)));
  REQUIRE(board.wait_for_count(102));
  const auto seen = board.seen();
  // One worker: A fails, record 1 runs while A's retry falls due, then A's retry comes before the
  // 99 records that were ready long before it fell due.
  CHECK(seen[0].value == "0");
  CHECK(seen[1].value == "1");
  CHECK(seen[2].value == "0");
  CHECK(seen[2].attempt == 2);
  CHECK(seen[3].value == "2");
  const auto positions = container.stop();
  REQUIRE(positions.size() == 1);
  CHECK(positions[0].offset == 101);
}

TEST_CASE("container: exhausted retries go to the dead-letter topic and the unit moves on", "[container][dlq]") {
  DeadLetters dead_letters;
  Board board;
  ListenerContainer container(
      Subscription{.topic = "t",
                   .handler =
                       [&](const Message& m) {
                         board.note(m);
                         if (m.value == "poison") throw std::runtime_error(std::string("bad ").append(m.value));
                       },
                   .group = "g",
                   .container = {.ordering = Ordering::key,
                                 .concurrency = 4,
                                 .failure = {.retry = {.retries = 2, .delay = 10ms},
                                             .dead_letter_topic = "t-dlq",
                                             .listener_name = "l",
                                             .group = "g"}}},
      dead_letters, ContainerRuntime{.assign_on_offer = true});
  container.start();
  container.offer(record(0, 0, "A", "poison"));
  container.offer(record(0, 1, "A", "after"));
  REQUIRE(board.wait_until([](const auto& seen) {
    return std::any_of(seen.begin(), seen.end(), [](const Message& m) { return m.value == "after"; });
  }));
  const auto seen = board.seen();
  REQUIRE(seen.size() == 4);  // three attempts of the poison pill, then the next record of its key
  CHECK(seen[2].attempt == 3);
  CHECK(seen[3].value == "after");
  {
    const std::lock_guard lock(dead_letters.mutex);
    REQUIRE(dead_letters.records.size() == 1);
    CHECK(dead_letters.records[0].topic == "t-dlq");
    CHECK(dead_letters.records[0].headers.get("x-retry-count") == std::optional<std::string_view>("2"));
    CHECK(dead_letters.records[0].headers.get("x-original-group") == std::optional<std::string_view>("g"));
  }
  const auto positions = container.stop();
  REQUIRE(positions.size() == 1);
  CHECK(positions[0].offset == 2);
}

TEST_CASE("container: the position is the lowest unsettled offset while later keys finish first", "[container][offsets]") {
  DeadLetters dead_letters;
  Board board;
  ListenerContainer container(Subscription{.topic = "t",
                                           .handler =
                                               [&](const Message& m) {
                                                 if (*m.key == "A") board.hold();
                                                 board.note(m);
                                               },
                                           .group = "g",
                                           .container = {.ordering = Ordering::key, .concurrency = 4}},
                              dead_letters, ContainerRuntime{.assign_on_offer = true});
  container.start();
  container.offer(record(0, 10, "A"));
  for (int i = 11; i < 20; ++i) container.offer(record(0, i, numbered("B", i % 3)));
  REQUIRE(board.wait_for_count(9));  // every B* record: done
  REQUIRE(board.wait_for_held(1));
  auto positions = container.take_positions();
  REQUIRE(positions.size() == 1);
  CHECK(positions[0].offset == 10);  // A@10 still runs: nothing past it may be committed
  board.open();
  REQUIRE(board.wait_for_count(10));
  const auto stopped = container.stop();
  REQUIRE(stopped.size() == 1);
  CHECK(stopped[0].offset == 20);
}

TEST_CASE("container: a partition past its share of the bound is paused, resumed once the buffer drained",
          "[container][backpressure]") {
  DeadLetters dead_letters;
  Board board;
  std::mutex woken_mutex;
  std::condition_variable woken_cv;
  int wakes = 0;
  ListenerContainer container(Subscription{.topic = "t",
                                           .handler =
                                               [&](const Message& m) {
                                                 board.hold();
                                                 board.note(m);
                                               },
                                           .group = "g",
                                           .container = {.concurrency = 1, .max_buffered_records = 10}},
                              dead_letters,
                              ContainerRuntime{.assign_on_offer = false, .wake = [&] {
                                const std::lock_guard lock(woken_mutex);
                                ++wakes;
                                woken_cv.notify_all();
                              }});
  container.start();
  container.assign({{"t", 0}, {"t", 1}, {"t", 2}});  // a share of 10 / 3 = 3 records each
  container.offer(record(0, 0, "k"));
  container.offer(record(0, 1, "k"));
  CHECK(container.take_flow_changes().empty());
  container.offer(record(0, 2, "k"));
  CHECK(container.has_news());
  auto flow = container.take_flow_changes();
  CHECK(flow.pause == std::vector<TopicPartition>{{"t", 0}});
  for (int i = 0; i < 12; ++i) container.offer(record(1, i, "k"));  // also past the whole bound
  flow = container.take_flow_changes();
  CHECK(flow.pause == std::vector<TopicPartition>{{"t", 1}});  // not partition 2: nothing of it is buffered
  CHECK(flow.resume.empty());
  CHECK(container.buffered() == 15);  // what was fetched is kept: nothing is lost
  container.offer(record(3, 0, "k"));  // not assigned: dropped
  CHECK(container.buffered() == 15);
  board.open();
  REQUIRE(board.wait_for_count(15));
  // A resume wakes the fetch loop (here: this test), which then takes it.
  // (The wake runs under the container's lock: never call the container holding woken_mutex.)
  std::vector<TopicPartition> resumed;
  int seen_wakes = 0;
  while (resumed.size() < 2) {
    {
      std::unique_lock lock(woken_mutex);
      REQUIRE(woken_cv.wait_for(lock, 20s, [&] { return wakes > seen_wakes; }));
      seen_wakes = wakes;
    }
    for (auto& p : container.take_flow_changes().resume) resumed.push_back(p);
  }
  std::sort(resumed.begin(), resumed.end());
  CHECK(resumed == std::vector<TopicPartition>{{"t", 0}, {"t", 1}});
  CHECK(wakes >= 1);
  container.stop();
}

TEST_CASE("container: once stopped it asks the fetch loop for nothing, woken or not", "[container][backpressure]") {
  DeadLetters dead_letters;
  Board board;
  std::atomic<int> wakes{0};
  ListenerContainer container(Subscription{.topic = "t",
                                           .handler = [&](const Message& m) {
                                             board.hold();
                                             board.note(m);
                                           },
                                           .group = "g",
                                           .container = {.max_buffered_records = 4, .shutdown_timeout = 5s}},
                              dead_letters,
                              ContainerRuntime{.assign_on_offer = false, .wake = [&] { ++wakes; }});
  container.start();
  container.assign({{"t", 0}});
  for (int i = 0; i < 8; ++i) container.offer(record(0, i, "k"));
  REQUIRE(container.take_flow_changes().pause.size() == 1);
  REQUIRE(board.wait_for_held(1));
  container.halt();  // nothing starts any more: the held record is the last to settle (7 stay buffered)
  std::thread opener([&] { board.open(); });
  container.stop();  // drops the queue: below the low mark, but stopped: no resume, no wake
  opener.join();
  CHECK(container.revoke({{"t", 0}}).empty());
  CHECK(container.take_flow_changes().empty());
  CHECK(wakes.load() == 0);
}

TEST_CASE("container: the threaded memory broker bounds what is buffered and loses nothing", "[container][backpressure]") {
  InMemoryMessageBroker broker({.threaded = true});
  Board board;
  std::atomic<int> published{0};
  std::atomic<int> handled{0};
  std::atomic<int> most{0};
  broker.subscribe(Subscription{.topic = "t",
                                .handler =
                                    [&](const Message& m) {
                                      // published - handled never exceeds what the container holds
                                      const int backlog = published.load() - handled.load();
                                      int seen = most.load();
                                      while (backlog > seen && !most.compare_exchange_weak(seen, backlog)) {
                                      }
                                      ++handled;
                                      board.note(m);
                                    },
                                .group = "g",
                                .container = {.ordering = Ordering::key, .concurrency = 2, .max_buffered_records = 8}});
  broker.start();
  for (int i = 0; i < 2000; ++i) {
    broker.publish("t", std::to_string(i), {.key = numbered("k", i % 5)});
    ++published;
  }
  REQUIRE(board.wait_for_count(2000));
  CHECK(most.load() <= 8);
  for (const auto& [key, seq] : sequences(board.seen(), false)) CHECK(ascending(seq));
  broker.stop();
}

TEST_CASE("container: stop drops what waits, lets the running handler finish within the timeout", "[container][stop]") {
  DeadLetters dead_letters;
  Board board;
  ListenerContainer container(
      Subscription{.topic = "t",
                   .handler =
                       [&](const Message& m) {
                         if (m.partition == 1) throw std::runtime_error("retry me");
                         board.hold();
                         board.note(m);
                       },
                   .group = "g",
                   .container = {.concurrency = 4, .failure = {.retry = {.retries = 3, .delay = 60s}}, .shutdown_timeout = 10s}},
      dead_letters, ContainerRuntime{.assign_on_offer = true});
  container.start();
  container.offer(record(0, 0, "k"));  // runs, held at the gate
  REQUIRE(board.wait_for_held(1));
  container.offer(record(0, 1, "k"));  // queued behind it
  container.offer(record(1, 7, "k"));  // fails, waits 60 s for its retry
  std::thread opener = open_when_buffered(board, container, 1);  // once stop() dropped offsets 1 and 7
  const auto start = std::chrono::steady_clock::now();
  auto positions = container.stop();
  opener.join();
  CHECK(std::chrono::steady_clock::now() - start < 10s);
  std::sort(positions.begin(), positions.end(), [](const Position& a, const Position& b) { return a.partition < b.partition; });
  REQUIRE(positions.size() == 2);
  CHECK(positions[0].offset == 1);  // offset 0 finished; offset 1 was dropped unsettled: read again
  CHECK(positions[1].offset == 7);  // the waiting record: read again
  CHECK(board.seen().size() == 1);
}

TEST_CASE("container: stop gives up on a handler that outlives the shutdown timeout", "[container][stop]") {
  DeadLetters dead_letters;
  auto board = std::make_shared<Board>();
  ListenerContainer container(Subscription{.topic = "t",
                                           .handler = [board](const Message& m) {
                                             board->hold();
                                             board->note(m);
                                           },
                                           .group = "g",
                                           .container = {.shutdown_timeout = 200ms}},
                              dead_letters, ContainerRuntime{.assign_on_offer = true});
  container.start();
  container.offer(record(0, 3, "k"));
  REQUIRE(board->wait_for_held(1));
  const auto start = std::chrono::steady_clock::now();
  const auto positions = container.stop();
  CHECK(std::chrono::steady_clock::now() - start < 3s);
  REQUIRE(positions.size() == 1);
  CHECK(positions[0].offset == 3);  // not settled: read again
  board->open();                    // the abandoned handler ends on its own
  REQUIRE(board->wait_for_count(1));
}

TEST_CASE("container: revoke drops the partition's queued records and returns its position", "[container][revoke]") {
  DeadLetters dead_letters;
  Board board;
  ListenerContainer container(Subscription{.topic = "t",
                                           .handler =
                                               [&](const Message& m) {
                                                 if (m.offset == 0) board.hold();
                                                 board.note(m);
                                               },
                                           .group = "g",
                                           .container = {.concurrency = 2, .shutdown_timeout = 10s}},
                              dead_letters, ContainerRuntime{.assign_on_offer = false});
  container.start();
  container.assign({{"t", 0}, {"t", 1}});
  container.offer(record(0, 0, "k"));
  REQUIRE(board.wait_for_held(1));
  container.offer(record(0, 1, "k"));
  std::thread opener = open_when_buffered(board, container, 1);  // once revoke() dropped offset 1
  const auto revoked = container.revoke({{"t", 0}});
  opener.join();
  REQUIRE(revoked.size() == 1);
  CHECK(revoked[0].offset == 1);  // 0 finished within the timeout; 1 was dropped
  container.offer(record(0, 2, "k"));  // no longer assigned: dropped
  container.offer(record(1, 0, "k"));
  REQUIRE(board.wait_for_count(2));
  const auto seen = board.seen();
  CHECK(seen[0].offset == 0);
  CHECK(seen[1].partition == 1);
  container.stop();
}

TEST_CASE("container: a handler may stop the threaded broker that serves it", "[container][stop]") {
  InMemoryMessageBroker broker({.threaded = true});
  Board board;
  std::atomic<bool> stopped{false};
  broker.subscribe(Subscription{.topic = "t",
                                .handler =
                                    [&](const Message& m) {
                                      broker.stop();
                                      stopped.store(true);
                                      board.note(m);
                                    },
                                .group = "g",
                                .container = {.concurrency = 2}});
  broker.start();
  broker.publish("t", "x");
  REQUIRE(board.wait_for_count(1));
  CHECK(stopped.load());
  CHECK_FALSE(broker.running());
}

// ---- the fast path (ContainerRuntime::caller_runs) ------------------------------------------------

namespace {

/// A stand-in for an adapter's record whose headers are read when first used.
struct FakeRecord {
  bool alive{true};
  std::vector<Headers::Entry> entries;
};

void read_fake(const void* record, std::vector<Headers::Entry>& into) {
  const auto& fake = *static_cast<const FakeRecord*>(record);
  if (!fake.alive) {
    into.emplace_back("read-after-its-record-went", "");
    return;
  }
  into.insert(into.end(), fake.entries.begin(), fake.entries.end());
}

}  // namespace

TEST_CASE("container: on the fast path records run on the caller of run_here, in order, and settle",
          "[container][fast]") {
  DeadLetters dead_letters;
  std::vector<std::int64_t> offsets;
  std::vector<std::thread::id> threads;
  ListenerContainer container(Subscription{.topic = "t",
                                           .handler =
                                               [&](const Message& m) {
                                                 offsets.push_back(m.offset);
                                                 threads.push_back(std::this_thread::get_id());
                                               },
                                           .group = "g"},
                              dead_letters, ContainerRuntime{.assign_on_offer = true, .caller_runs = true});
  REQUIRE(container.runs_on_caller());
  container.start();
  std::vector<Message> batch;
  for (int i = 0; i < 5; ++i) batch.push_back(record(0, i, "k"));
  container.offer(batch);
  CHECK(container.buffered() == 5);  // no worker runs them
  CHECK_FALSE(container.run_here(std::chrono::steady_clock::now() + 10s, [] { return true; }));
  CHECK(offsets == std::vector<std::int64_t>{0, 1, 2, 3, 4});
  CHECK(std::all_of(threads.begin(), threads.end(), [](auto id) { return id == std::this_thread::get_id(); }));
  CHECK(container.buffered() == 0);
  const auto positions = container.stop();
  REQUIRE(positions.size() == 1);
  CHECK(positions[0].offset == 5);

  // Other subscriptions keep their workers.
  ListenerContainer keyed(Subscription{.topic = "t", .handler = [](const Message&) {}, .container = {.ordering = Ordering::key}},
                          dead_letters, ContainerRuntime{.caller_runs = true});
  CHECK_FALSE(keyed.runs_on_caller());
  ListenerContainer two(Subscription{.topic = "t", .handler = [](const Message&) {}, .container = {.concurrency = 2}},
                        dead_letters, ContainerRuntime{.caller_runs = true});
  CHECK_FALSE(two.runs_on_caller());
}

TEST_CASE("container: on the fast path a due retry wakes the caller, and deferred headers are read before their record goes",
          "[container][fast]") {
  DeadLetters dead_letters;
  Board board;
  std::mutex woken_mutex;
  std::condition_variable woken_cv;
  int wakes = 0;
  ListenerContainer container(
      Subscription{.topic = "t",
                   .handler =
                       [&](const Message& m) {
                         board.note(m);
                         if (m.value == "poison" && m.attempt == 1) throw std::runtime_error("first attempt");
                       },
                   .group = "g",
                   .container = {.failure = {.retry = {.retries = 1, .delay = 10ms}}}},
      dead_letters,
      ContainerRuntime{.assign_on_offer = true,
                       .wake =
                           [&] {
                             const std::lock_guard lock(woken_mutex);
                             ++wakes;
                             woken_cv.notify_all();
                           },
                       .caller_runs = true});
  container.start();
  FakeRecord first{.alive = true, .entries = {{"h", "0"}}};
  FakeRecord second{.alive = true, .entries = {{"h", "1"}}};
  std::vector<Message> batch{record(0, 0, "k", "poison"), record(0, 1, "k", "after")};
  DeferredHeaders::defer(batch[0].headers, &first, &read_fake);
  DeferredHeaders::defer(batch[1].headers, &second, &read_fake);
  container.offer(batch);
  container.run_here(std::chrono::steady_clock::now() + 10s, [] { return true; });
  REQUIRE(board.seen().size() == 1);  // the first attempt failed: its partition waits for the retry
  container.resolve_deferred();  // the round's records go
  first.alive = false;
  second.alive = false;
  // As a fetch loop does: each wake, run what is ready (the failure woke it already, to commit the
  // attempt count; the worker wakes it again when the retry is due).
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  int handled = 0;
  while (board.seen().size() < 3) {
    {
      std::unique_lock lock(woken_mutex);
      REQUIRE(woken_cv.wait_until(lock, deadline, [&] { return wakes > handled; }));
      handled = wakes;
    }
    container.run_here(std::chrono::steady_clock::now() + 10s, [] { return true; });
  }
  const auto seen = board.seen();
  REQUIRE(seen.size() == 3);
  CHECK(seen[1].attempt == 2);
  CHECK(seen[1].headers.get("h") == std::optional<std::string_view>("0"));
  CHECK(seen[2].headers.get("h") == std::optional<std::string_view>("1"));
  CHECK_FALSE(seen[2].headers.get("read-after-its-record-went"));
  const auto positions = container.stop();
  REQUIRE(positions.size() == 1);
  CHECK(positions[0].offset == 2);
}
