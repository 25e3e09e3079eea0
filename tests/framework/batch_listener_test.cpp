// Batch listeners on the in-memory broker and on the listener container itself: one partition's
// records in offset order per call, BatchFailure(index) settling the records before it, retries of a
// record or of the whole batch, dead letters one by one, undecodable records left out, max records,
// max wait, offsets. Every wait is bounded and on a condition.
#include <catch2/catch.hpp>

#include <cppfly/messaging/batch_failure.hpp>
#include <cppfly/messaging/in_memory_broker.hpp>
#include <cppfly/messaging/listener.hpp>
#include <cppfly/messaging/listener_container.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace cppfly::messaging;
using namespace std::chrono_literals;

namespace {

/// One call of a batch handler: its records' values, partitions, offsets and attempts.
struct Call {
  std::vector<std::string> values;
  std::vector<std::int32_t> partitions;
  std::vector<std::int64_t> offsets;
  std::vector<int> attempts;
};

/// What the batch handlers of a test were called with.
class Calls {
 public:
  void note(std::span<const Message> batch) {
    Call call;
    for (const auto& m : batch) {
      call.values.push_back(m.value);
      call.partitions.push_back(m.partition);
      call.offsets.push_back(m.offset);
      call.attempts.push_back(m.attempt);
    }
    const std::lock_guard lock(mutex_);
    calls_.push_back(std::move(call));
    changed_.notify_all();
  }
  /// Records handled so far: every record of a call that returned, those before the index of a BatchFailure.
  void handled(const Call& call, std::size_t count) {
    const std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < count; ++i) handled_.push_back(call.values[i]);
    changed_.notify_all();
  }
  bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = 20s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, done);
  }
  bool wait_for_handled(std::size_t n) {
    return wait_until([&] { return handled_.size() >= n; });
  }
  bool wait_for_calls(std::size_t n) {
    return wait_until([&] { return calls_.size() >= n; });
  }
  [[nodiscard]] std::vector<Call> calls() const {
    const std::lock_guard lock(mutex_);
    return calls_;
  }
  [[nodiscard]] std::vector<std::string> handled() const {
    const std::lock_guard lock(mutex_);
    return handled_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Call> calls_;
  std::vector<std::string> handled_;
};

std::vector<std::string> numbers(int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i < to; ++i) out.push_back(std::to_string(i));
  return out;
}

std::optional<std::string_view> header(const Message& m, std::string_view name) { return m.headers.get(name); }

/// A threaded broker whose batch listener on "t" (group "g") gets batches of up to 20, waiting up to
/// 20 s for 20: publishing 20 records makes exactly one batch. `fail` says which record fails how.
Subscription twenty(Calls& calls, int retries, std::function<void(std::span<const Message>)> fail) {
  return Subscription{.topic = "t",
                      .handler = {},
                      .group = "g",
                      .container = {.failure = {.retry = {.retries = retries, .delay = 1ms},
                                                .dead_letter_topic = "t.dlq",
                                                .listener_name = "batch",
                                                .group = "g"},
                                    .batch_max_records = 20,
                                    .batch_max_wait = 20s},
                      .batch_handler = [&calls, fail = std::move(fail)](std::span<const Message> batch) {
                        calls.note(batch);
                        Call seen;
                        for (const auto& m : batch) seen.values.push_back(m.value);
                        try {
                          fail(batch);
                        } catch (const BatchFailure& e) {
                          calls.handled(seen, e.index());
                          throw;
                        } catch (...) {
                          throw;
                        }
                        calls.handled(seen, batch.size());
                      }};
}

/// A batch handler that notes each call and handles every record of it.
BatchHandler noting(Calls& calls) {
  return [&calls](std::span<const Message> batch) {
    calls.note(batch);
    Call all;
    for (const auto& m : batch) all.values.push_back(m.value);
    calls.handled(all, all.values.size());
  };
}

/// Index of the record whose value is `value` in `batch`, or batch.size().
std::size_t index_of(std::span<const Message> batch, std::string_view value) {
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].value == value) return i;
  }
  return batch.size();
}

}  // namespace

TEST_CASE("batch: BatchFailure at index 7 of 20 settles 0-6 once, retries 7, runs 8-19 after it",
          "[batch][memory]") {
  InMemoryMessageBroker broker({.threaded = true});
  Calls calls;
  broker.subscribe(twenty(calls, 3, [](std::span<const Message> batch) {
    const std::size_t at = index_of(batch, "7");
    if (at < batch.size() && batch[at].attempt == 1) throw BatchFailure(at, "record 7 failed");
  }));
  broker.start();
  for (const auto& value : numbers(0, 20)) broker.publish("t", value);
  REQUIRE(calls.wait_for_handled(20));
  broker.stop();

  CHECK(calls.handled() == numbers(0, 20));  // each once, in offset order
  const auto seen = calls.calls();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].values == numbers(0, 20));
  CHECK(seen[1].values == numbers(7, 20));  // the retry starts at the failed record
  CHECK(seen[1].attempts.front() == 2);     // record 7's second attempt
  CHECK(std::all_of(seen[1].attempts.begin() + 1, seen[1].attempts.end(), [](int a) { return a == 1; }));
  CHECK(broker.published("t.dlq").empty());
}

TEST_CASE("batch: a record whose retries are exhausted goes to the dead-letter topic alone, the rest after it",
          "[batch][memory][dlq]") {
  InMemoryMessageBroker broker({.threaded = true});
  Calls calls;
  broker.subscribe(twenty(calls, 2, [](std::span<const Message> batch) {
    const std::size_t at = index_of(batch, "7");
    if (at < batch.size()) throw BatchFailure(at, std::make_exception_ptr(std::invalid_argument("seven is bad")));
  }));
  broker.start();
  for (const auto& value : numbers(0, 20)) broker.publish("t", value);
  REQUIRE(calls.wait_for_handled(19));
  broker.stop();

  auto expected = numbers(0, 20);
  expected.erase(expected.begin() + 7);
  CHECK(calls.handled() == expected);
  const auto seen = calls.calls();
  REQUIRE(seen.size() == 4);  // the batch, two retries from record 7, then the records after it
  CHECK(seen[1].values == numbers(7, 20));
  CHECK(seen[2].values == numbers(7, 20));
  CHECK(seen[2].attempts.front() == 3);
  CHECK(seen[3].values == numbers(8, 20));
  const auto dead = broker.published("t.dlq");
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].value == "7");
  CHECK(header(dead[0], "x-retry-count") == std::optional<std::string_view>("2"));
  CHECK(header(dead[0], "x-original-offset") == std::optional<std::string_view>("7"));
  CHECK(header(dead[0], "x-original-topic") == std::optional<std::string_view>("t"));
  CHECK(header(dead[0], "x-original-group") == std::optional<std::string_view>("g"));
  CHECK(header(dead[0], "x-exception-message") == std::optional<std::string_view>("seven is bad"));
  CHECK(header(dead[0], "x-exception") == std::optional<std::string_view>("std::invalid_argument"));
}

TEST_CASE("batch: a plain exception retries the whole batch", "[batch][memory]") {
  InMemoryMessageBroker broker({.threaded = true});
  Calls calls;
  broker.subscribe(twenty(calls, 3, [](std::span<const Message> batch) {
    if (batch.front().attempt < 3) throw std::runtime_error("the database is away");
  }));
  broker.start();
  for (const auto& value : numbers(0, 20)) broker.publish("t", value);
  REQUIRE(calls.wait_for_handled(20));
  broker.stop();

  CHECK(calls.handled() == numbers(0, 20));
  const auto seen = calls.calls();
  REQUIRE(seen.size() == 3);
  for (std::size_t i = 0; i < seen.size(); ++i) {
    CHECK(seen[i].values == numbers(0, 20));
    CHECK(std::all_of(seen[i].attempts.begin(), seen[i].attempts.end(),
                      [&](int a) { return a == static_cast<int>(i) + 1; }));
  }
  CHECK(broker.published("t.dlq").empty());
}

TEST_CASE("batch: a batch that keeps failing goes to the dead-letter topic record by record", "[batch][memory][dlq]") {
  InMemoryMessageBroker broker({.threaded = true});
  Calls calls;
  Calls dead_letters;
  broker.subscribe(twenty(calls, 1, [](std::span<const Message>) { throw std::runtime_error("always"); }));
  broker.subscribe("t.dlq", [&](const Message& m) { dead_letters.note(std::span<const Message>(&m, 1)); });
  broker.start();
  for (const auto& value : numbers(0, 20)) broker.publish("t", value);
  REQUIRE(dead_letters.wait_for_calls(20));
  broker.stop();
  const auto dead = broker.published("t.dlq");
  REQUIRE(dead.size() == 20);
  for (std::size_t i = 0; i < dead.size(); ++i) {
    CHECK(dead[i].value == std::to_string(i));
    CHECK(header(dead[i], "x-retry-count") == std::optional<std::string_view>("1"));
  }
  CHECK(calls.calls().size() == 2);
}

namespace {

struct Item {
  int n{0};
};
void from_json(const nlohmann::json& j, Item& item) { item.n = j.at("n").get<int>(); }

}  // namespace

TEST_CASE("batch: an undecodable record is dead-lettered at once and left out of the batch", "[batch][memory][dlq]") {
  InMemoryMessageBroker broker({.threaded = true});
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::vector<int>> batches;
  auto definition = make_listener(
      "items",
      [&](std::span<const Item> items) {
        std::vector<int> ns;
        for (const auto& item : items) ns.push_back(item.n);
        const std::lock_guard lock(mutex);
        batches.push_back(std::move(ns));
        changed.notify_all();
      },
      {.topic = "items", .group_id = "g", .dead_letter_topic = "items.dlq"});
  REQUIRE(definition.is_batch());
  broker.subscribe(Subscription{.topic = "items",
                                .handler = definition.make_handler(nullptr),
                                .group = "g",
                                .container = {.failure = {.retry = {.retries = 3, .delay = 1ms},
                                                          .dead_letter_topic = "items.dlq"},
                                              .batch_max_records = 10,
                                              .batch_max_wait = 20s},
                                .batch_handler = definition.make_batch_handler(nullptr)});
  broker.start();
  for (int i = 0; i < 10; ++i) {
    broker.publish("items", i == 3 || i == 6 ? std::string("not json ").append(std::to_string(i))
                                             : std::string(R"({"n":)").append(std::to_string(i)).append("}"));
  }
  {
    std::unique_lock lock(mutex);
    REQUIRE(changed.wait_for(lock, 20s, [&] { return !batches.empty(); }));
  }
  broker.stop();
  REQUIRE(batches.size() == 1);
  CHECK(batches[0] == std::vector<int>{0, 1, 2, 4, 5, 7, 8, 9});
  const auto dead = broker.published("items.dlq");
  REQUIRE(dead.size() == 2);
  CHECK(dead[0].value == "not json 3");
  CHECK(dead[1].value == "not json 6");
  CHECK(header(dead[0], "x-retry-count") == std::optional<std::string_view>("0"));
  CHECK(header(dead[0], "x-exception") == std::optional<std::string_view>("cppfly::messaging::PayloadDecodeError"));
}

TEST_CASE("batch: batches never mix partitions, keep offset order and hold at most batch_max_records",
          "[batch][container]") {
  InMemoryMessageBroker dead_letters;  // the containers' dead-letter port (no subscribers)
  dead_letters.start();
  Calls calls;
  ListenerContainer container(
      Subscription{.topic = "t",
                   .handler = {},
                   .group = "g",
                   .container = {.concurrency = 3, .batch_max_records = 8},
                   .batch_handler = noting(calls)},
      dead_letters, ContainerRuntime{.assign_on_offer = true});
  // Offered in one go before the workers start: the batches are the same on every run.
  std::vector<Message> fetched;
  for (std::int64_t offset = 0; offset < 30; ++offset) {
    for (std::int32_t partition = 0; partition < 3; ++partition) {
      fetched.push_back(Message{.topic = "t", .value = std::to_string(partition), .partition = partition, .offset = offset});
    }
  }
  container.offer(fetched);
  container.start();
  REQUIRE(calls.wait_for_handled(90));
  const auto positions = container.stop();

  std::map<std::int32_t, std::vector<std::int64_t>> offsets;
  std::map<std::int32_t, std::vector<std::size_t>> sizes;
  for (const auto& call : calls.calls()) {
    REQUIRE(!call.partitions.empty());
    const std::int32_t partition = call.partitions.front();
    CHECK(std::all_of(call.partitions.begin(), call.partitions.end(), [&](std::int32_t p) { return p == partition; }));
    CHECK(call.offsets.size() <= 8);
    sizes[partition].push_back(call.offsets.size());
    offsets[partition].insert(offsets[partition].end(), call.offsets.begin(), call.offsets.end());
  }
  REQUIRE(offsets.size() == 3);
  for (const auto& [partition, seen] : offsets) {
    std::vector<std::int64_t> expected(30);
    for (std::int64_t i = 0; i < 30; ++i) expected[static_cast<std::size_t>(i)] = i;
    CHECK(seen == expected);
    CHECK(sizes[partition] == std::vector<std::size_t>{8, 8, 8, 6});
  }
  REQUIRE(positions.size() == 3);
  for (const auto& position : positions) CHECK(position.offset == 30);
}

TEST_CASE("batch: only settled records count for the position while the failed one waits for its retry",
          "[batch][container][offsets]") {
  InMemoryMessageBroker dead_letters;  // the containers' dead-letter port (no subscribers)
  dead_letters.start();
  Calls calls;
  ListenerContainer container(
      Subscription{.topic = "t",
                   .handler = {},
                   .group = "g",
                   .container = {.failure = {.retry = {.retries = 1, .delay = 60s}}, .batch_max_records = 20},
                   .batch_handler = [&](std::span<const Message> batch) {
                     calls.note(batch);
                     throw BatchFailure(7);
                   }},
      dead_letters, ContainerRuntime{.assign_on_offer = true});
  std::vector<Message> fetched;
  for (std::int64_t offset = 100; offset < 120; ++offset) {
    fetched.push_back(Message{.topic = "t", .value = "v", .partition = 0, .offset = offset});
  }
  container.offer(fetched);
  container.start();
  REQUIRE(calls.wait_for_calls(1));
  // Records 100-106 settle once the handler returned; the container then holds the other 13.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (container.buffered() != 13 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  REQUIRE(container.buffered() == 13);
  const auto positions = container.take_positions();
  REQUIRE(positions.size() == 1);
  CHECK(positions[0].offset == 107);
  const auto stopped = container.stop();  // the retry is dropped, not settled: read again later
  REQUIRE(stopped.size() == 1);
  CHECK(stopped[0].offset == 107);
  CHECK(calls.calls().size() == 1);
}

TEST_CASE("batch: a batch waits up to batch_max_wait to fill, and runs at once when full", "[batch][container]") {
  InMemoryMessageBroker dead_letters;  // the containers' dead-letter port (no subscribers)
  dead_letters.start();
  Calls calls;
  auto subscription = [&](std::chrono::milliseconds wait) {
    return Subscription{.topic = "t",
                        .handler = {},
                        .group = "g",
                        .container = {.batch_max_records = 3, .batch_max_wait = wait},
                        .batch_handler = noting(calls)};
  };
  SECTION("filled: three records offered one by one make one batch (the wait is 60 s)") {
    ListenerContainer container(subscription(60s), dead_letters, ContainerRuntime{.assign_on_offer = true});
    container.start();
    for (std::int64_t offset = 0; offset < 3; ++offset) {
      container.offer(Message{.topic = "t", .value = std::to_string(offset), .partition = 0, .offset = offset});
    }
    REQUIRE(calls.wait_for_handled(3));
    container.stop();
    REQUIRE(calls.calls().size() == 1);
    CHECK(calls.calls()[0].values == numbers(0, 3));
  }
  SECTION("not filled: one record runs alone once the wait is over") {
    ListenerContainer container(subscription(100ms), dead_letters, ContainerRuntime{.assign_on_offer = true});
    container.start();
    const auto offered = std::chrono::steady_clock::now();
    container.offer(Message{.topic = "t", .value = "0", .partition = 0, .offset = 0});
    REQUIRE(calls.wait_for_handled(1));
    CHECK(std::chrono::steady_clock::now() - offered >= 100ms);
    container.stop();
    REQUIRE(calls.calls().size() == 1);
    CHECK(calls.calls()[0].values == numbers(0, 1));
  }
}

TEST_CASE("batch: the inline broker runs each publish as a batch of one, retries on the publisher's thread",
          "[batch][memory]") {
  InMemoryMessageBroker broker;
  Calls calls;
  broker.subscribe(Subscription{.topic = "t",
                                .handler = {},
                                .group = "g",
                                .container = {.failure = {.retry = {.retries = 1, .delay = 1ms}}},
                                .batch_handler = [&](std::span<const Message> batch) {
                                  calls.note(batch);
                                  if (batch.front().attempt == 1) throw BatchFailure(0);
                                }});
  broker.start();
  broker.publish("t", "a");
  broker.publish("t", "b");
  const auto seen = calls.calls();  // inline: done when publish returned
  REQUIRE(seen.size() == 4);
  CHECK(seen[0].values == std::vector<std::string>{"a"});
  CHECK(seen[1].values == std::vector<std::string>{"a"});
  CHECK(seen[1].attempts == std::vector<int>{2});
  CHECK(seen[3].values == std::vector<std::string>{"b"});
  broker.stop();
}

TEST_CASE("batch: a batch listener must use partition ordering and cannot be transactional", "[batch][registry]") {
  InMemoryMessageBroker broker;
  auto handler = [](std::span<const Message>) {};
  CHECK_THROWS_WITH(broker.subscribe(Subscription{.topic = "t",
                                                  .handler = {},
                                                  .group = "g",
                                                  .container = {.ordering = Ordering::key},
                                                  .batch_handler = handler}),
                    Catch::Contains("ordering must be partition"));
  CHECK_THROWS_WITH(broker.subscribe(Subscription{.topic = "t",
                                                  .handler = {},
                                                  .group = "g",
                                                  .container = {.transactional = true},
                                                  .batch_handler = handler}),
                    Catch::Contains("cannot be transactional"));

  ListenerRegistry registry;
  registry.add(make_listener("keyed", [](const std::vector<Item>&) {},
                             {.topic = "t", .group_id = "g", .ordering = Ordering::key}));
  registry.add(make_listener("plain", [](std::span<const Item>) {}, {.topic = "u", .group_id = "g"}));
  REQUIRE(registry.problems().size() == 1);
  CHECK_THAT(registry.problems()[0], Catch::Contains("'keyed'") && Catch::Contains("ordering must be partition"));
}
