// Retries and dead letters of the listener container, on the in-memory broker (inline: deterministic).
#include <map>

#include <catch2/catch.hpp>

#include <cppfly/messaging/dead_letter.hpp>
#include <cppfly/messaging/in_memory_broker.hpp>
#include <cppfly/messaging/json_codec.hpp>
#include <cppfly/messaging/listener_container.hpp>

#include "null_port.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <memory>
#include <thread>

using namespace cppfly::messaging;
using namespace std::chrono_literals;

namespace {

struct TransientError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Fails the first `failures` calls, then succeeds.
struct Flaky {
  int failures;
  int calls = 0;
  void operator()(const Message&) {
    if (++calls <= failures) throw TransientError("attempt " + std::to_string(calls) + " failed");
  }
};

FailurePolicy policy(int retries, std::string dlq = {}) {
  return {.retry = {.retries = retries, .delay = 0ms}, .dead_letter_topic = std::move(dlq), .listener_name = "test"};
}

Subscription with_policy(MessageHandler handler, FailurePolicy failure) {
  return {.topic = "orders", .handler = std::move(handler), .group = {}, .container = {.failure = std::move(failure)}};
}

}  // namespace

TEST_CASE("retry: a handler that fails twice succeeds on the third attempt", "[retry]") {
  InMemoryMessageBroker broker;
  Flaky flaky{.failures = 2};
  broker.subscribe(with_policy(std::ref(flaky), policy(3, "orders-dlq")));
  broker.start();
  broker.publish("orders", "x");
  CHECK(flaky.calls == 3);
  CHECK(broker.published("orders-dlq").empty());
}

TEST_CASE("retry: exhausted retries send the message to the dead-letter topic, all kept", "[retry][dlq]") {
  InMemoryMessageBroker broker;
  Flaky flaky{.failures = 100};
  broker.subscribe(with_policy(std::ref(flaky), policy(2, "orders-dlq")));
  broker.start();
  CHECK_NOTHROW(broker.publish("orders", R"({"id":9})", {.key = "k9", .headers = {{"trace", "t-1"}}}));
  CHECK(flaky.calls == 3);
  auto dlq = broker.published("orders-dlq");
  REQUIRE(dlq.size() == 1);
  const auto& dead = dlq[0];
  CHECK(dead.value == R"({"id":9})");
  CHECK(dead.key == std::optional<std::string>("k9"));
  CHECK(dead.headers.get("trace") == std::optional<std::string_view>("t-1"));
  CHECK(dead.headers.get("x-original-topic") == std::optional<std::string_view>("orders"));
  CHECK(dead.headers.get("x-exception").value_or("") == "(anonymous namespace)::TransientError");
  CHECK(dead.headers.get("x-exception-message") == std::optional<std::string_view>("attempt 3 failed"));
  CHECK(dead.headers.get("x-retry-count") == std::optional<std::string_view>("2"));
  CHECK(dead.headers.get("x-original-partition") == std::optional<std::string_view>("0"));
  CHECK(dead.headers.get("x-original-offset") == std::optional<std::string_view>("0"));
}

TEST_CASE("retry: exhausted retries without a dead-letter topic let the error surface", "[retry]") {
  InMemoryMessageBroker broker;
  Flaky flaky{.failures = 100};
  broker.subscribe(with_policy(std::ref(flaky), policy(1)));
  broker.start();
  CHECK_THROWS_AS(broker.publish("orders", "x"), TransientError);
  CHECK(flaky.calls == 2);
}

TEST_CASE("retry: an undecodable payload is dead-lettered at once, without retries", "[retry][dlq]") {
  InMemoryMessageBroker broker;
  int calls = 0;
  MessageHandler decode = [&](const Message& m) {
    ++calls;
    (void)parse_json(m);
  };
  broker.subscribe(with_policy(decode, policy(5, "orders-dlq")));
  broker.start();
  broker.publish("orders", "not json");
  CHECK(calls == 1);
  auto dlq = broker.published("orders-dlq");
  REQUIRE(dlq.size() == 1);
  CHECK(dlq[0].headers.get("x-exception") == std::optional<std::string_view>("cppfly::messaging::PayloadDecodeError"));
  CHECK(dlq[0].headers.get("x-retry-count") == std::optional<std::string_view>("0"));
  CHECK(std::string(dlq[0].headers.get("x-exception-message").value_or("")).find("orders") != std::string::npos);
}

TEST_CASE("retry: an undecodable payload without a dead-letter topic is skipped, and the next one handled",
          "[retry]") {
  InMemoryMessageBroker broker;
  std::vector<int> ids;
  MessageHandler decode = [&](const Message& m) { ids.push_back(parse_json(m).at("id").get<int>()); };
  broker.subscribe(with_policy(decode, policy(3)));
  broker.start();
  CHECK_NOTHROW(broker.publish("orders", "{broken"));
  broker.publish("orders", R"({"id":2})");
  CHECK(ids == std::vector<int>{2});
  CHECK(broker.published().size() == 2);  // nothing was dead-lettered
}

TEST_CASE("retry policy: linear waits delay × N, exponential delay × 2^(N-1), fixed delay, all capped", "[retry]") {
  RetryPolicy linear{.retries = 3, .delay = 100ms};
  CHECK(linear.delay_before(1) == 100ms);
  CHECK(linear.delay_before(2) == 200ms);
  CHECK(linear.delay_before(3) == 300ms);
  RetryPolicy exponential{.retries = 4, .delay = 100ms, .backoff = Backoff::exponential};
  CHECK(exponential.delay_before(1) == 100ms);
  CHECK(exponential.delay_before(2) == 200ms);
  CHECK(exponential.delay_before(4) == 800ms);
  RetryPolicy capped{.retries = 40, .delay = 1000ms, .backoff = Backoff::exponential, .max_delay = 5000ms};
  CHECK(capped.delay_before(40) == 5000ms);
  RetryPolicy fixed{.retries = 5, .delay = 1000ms, .backoff = Backoff::fixed};
  CHECK(fixed.delay_before(1) == 1000ms);
  CHECK(fixed.delay_before(5) == 1000ms);
  RetryPolicy none{.retries = 2, .delay = 0ms};
  CHECK(none.delay_before(2) == 0ms);
}

TEST_CASE("dead_letter_options keeps key and headers and adds the dead-letter headers", "[dlq]") {
  Message m{.topic = "t", .value = "v", .key = "k", .headers = {{"a", "1"}}, .partition = 3, .offset = 42};
  auto options = dead_letter_options(m, "std::runtime_error", "bad", 2);
  CHECK(options.key == std::optional<std::string>("k"));
  CHECK(options.headers.get("a") == std::optional<std::string_view>("1"));
  CHECK(options.headers.get("x-original-partition") == std::optional<std::string_view>("3"));
  CHECK(options.headers.get("x-original-offset") == std::optional<std::string_view>("42"));
  CHECK(options.headers.get("x-exception") == std::optional<std::string_view>("std::runtime_error"));
  CHECK_FALSE(options.partition.has_value());
}

TEST_CASE("dead_letter_options adds timestamp and group, bounds the message and never stacks", "[dlq]") {
  Message m{.topic = "orders", .value = "v", .key = "k", .headers = {{"trace", "t-1"}}, .partition = 1, .offset = 7,
            .timestamp_ms = 1700000000123};
  const std::string long_message = std::string(2000, 'x') + "\xC3\xA9";  // 2,002 bytes, ends in a 2-byte character
  auto first = dead_letter_options(m, "std::runtime_error", long_message, 3, "billing");
  CHECK(first.headers.get("x-original-timestamp") == std::optional<std::string_view>("1700000000123"));
  CHECK(first.headers.get("x-original-group") == std::optional<std::string_view>("billing"));
  CHECK(first.headers.get("x-retry-count") == std::optional<std::string_view>("3"));
  const auto cut = first.headers.get("x-exception-message");
  REQUIRE(cut.has_value());
  CHECK(cut->size() <= dead_letter_headers::exception_message_limit);
  CHECK(cut->ends_with("..."));

  // Redriven to orders and dead-lettered again (from another partition, no group): the earlier
  // diagnostics are replaced, none is left over or repeated, the user's own headers stay.
  Message again{.topic = "orders", .value = "v", .key = "k", .headers = first.headers, .partition = 0, .offset = 99};
  auto second = dead_letter_options(again, "std::logic_error", "still bad", 1);
  std::map<std::string, int> counts;
  for (const auto& [name, value] : second.headers) ++counts[name];
  for (const auto& [name, count] : counts) {
    INFO(name);
    CHECK(count == 1);
  }
  CHECK(second.headers.get("trace") == std::optional<std::string_view>("t-1"));
  CHECK(second.headers.get("x-exception") == std::optional<std::string_view>("std::logic_error"));
  CHECK(second.headers.get("x-original-offset") == std::optional<std::string_view>("99"));
  CHECK(second.headers.get("x-retry-count") == std::optional<std::string_view>("1"));
  CHECK_FALSE(second.headers.contains("x-original-group"));
  CHECK_FALSE(second.headers.contains("x-original-timestamp"));
}

TEST_CASE("retry: a dead-letter topic that cannot be reached holds the record, tried again until it is",
          "[retry][dlq]") {
  /// Refuses the first publish (the dead-letter topic is down), then takes them.
  struct FlakyDeadLetters : cppfly_test::NullPort {
    std::mutex mutex;
    std::condition_variable changed;
    int refused = 0;
    std::vector<std::string> taken;
    DeliveryResult publish(std::string_view topic, std::string_view value, PublishOptions) override {
      const std::lock_guard lock(mutex);
      changed.notify_all();
      if (refused++ == 0) throw BrokerError("cannot reach '" + std::string(topic) + "'");
      taken.emplace_back(value);
      return {};
    }
  } dead_letters;
  std::atomic<int> calls{0};
  ListenerContainer container(with_policy([&](const Message&) {
                                ++calls;
                                throw std::runtime_error("boom");
                              }, policy(0, "dlq")),
                              dead_letters, ContainerRuntime{.assign_on_offer = true});
  container.start();
  container.offer(Message{.topic = "orders", .value = "x", .partition = 0, .offset = 5});
  {
    std::unique_lock lock(dead_letters.mutex);
    REQUIRE(dead_letters.changed.wait_for(lock, 10s, [&] { return dead_letters.refused == 1; }));
  }
  // Refused: not settled, the partition's position stays at the record.
  const auto held = container.take_positions();
  REQUIRE(held.size() == 1);
  CHECK(held[0].offset == 5);
  {
    std::unique_lock lock(dead_letters.mutex);
    REQUIRE(dead_letters.changed.wait_for(lock, 10s, [&] { return dead_letters.taken.size() == 1; }));
  }
  CHECK(calls.load() == 1);  // the handler is not run again: only the dead-letter publish is tried again
  const auto stopped = container.stop();
  REQUIRE(stopped.size() == 1);
  CHECK(stopped[0].offset == 6);
}

TEST_CASE("retry: stop ends a retry wait at once and leaves the message unsettled", "[retry][stop]") {
  InMemoryMessageBroker broker;
  std::atomic<int> calls{0};
  FailurePolicy stoppable = policy(5, "orders-dlq");
  stoppable.retry.delay = 60s;
  broker.subscribe(with_policy([&](const Message&) {
    ++calls;
    throw TransientError("down");
  }, stoppable));
  broker.start();
  // Stops once the first attempt failed, i.e. while the container waits 60 s for retry 1.
  std::thread stopper([&] {
    while (calls.load() == 0) std::this_thread::yield();
    broker.stop();
  });
  const auto start = std::chrono::steady_clock::now();
  CHECK_NOTHROW(broker.publish("orders", "x"));
  stopper.join();
  CHECK(std::chrono::steady_clock::now() - start < 30s);
  CHECK(calls.load() == 1);
  CHECK(broker.published("orders-dlq").empty());  // neither retried nor dead-lettered
}

TEST_CASE("retry: Message::attempt counts the deliveries of a record, 1 first", "[retry]") {
  InMemoryMessageBroker broker;
  std::vector<int> attempts;
  broker.subscribe(with_policy([&](const Message& m) {
    attempts.push_back(m.attempt);
    if (m.attempt < 3) throw TransientError("not yet");
  }, policy(4)));
  broker.start();
  broker.publish("orders", "x");
  CHECK(attempts == std::vector<int>{1, 2, 3});
}
