// The retry + dead-letter wrapper, on the in-memory broker.
#include <map>

#include <catch2/catch.hpp>

#include <cppfly/messaging/dead_letter.hpp>
#include <cppfly/messaging/in_memory_broker.hpp>
#include <cppfly/messaging/json_codec.hpp>

#include <atomic>
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

}  // namespace

TEST_CASE("retry: a handler that fails twice succeeds on the third attempt", "[retry]") {
  InMemoryMessageBroker broker;
  Flaky flaky{.failures = 2};
  broker.subscribe("orders", with_failure_policy(std::ref(flaky), policy(3, "orders-dlq"), broker));
  broker.start();
  broker.publish("orders", "x");
  CHECK(flaky.calls == 3);
  CHECK(broker.published("orders-dlq").empty());
}

TEST_CASE("retry: exhausted retries send the message to the dead-letter topic, all kept", "[retry][dlq]") {
  InMemoryMessageBroker broker;
  Flaky flaky{.failures = 100};
  broker.subscribe("orders", with_failure_policy(std::ref(flaky), policy(2, "orders-dlq"), broker));
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
  broker.subscribe("orders", with_failure_policy(std::ref(flaky), policy(1), broker));
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
  broker.subscribe("orders", with_failure_policy(decode, policy(5, "orders-dlq"), broker));
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
  broker.subscribe("orders", with_failure_policy(decode, policy(3), broker));
  broker.start();
  CHECK_NOTHROW(broker.publish("orders", "{broken"));
  broker.publish("orders", R"({"id":2})");
  CHECK(ids == std::vector<int>{2});
  CHECK(broker.published().size() == 2);  // nothing was dead-lettered
}

TEST_CASE("retry policy: linear waits delay × N, exponential delay × 2^(N-1), both capped", "[retry]") {
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

TEST_CASE("retry: a dead-letter publish that fails asks the adapter to deliver the message again", "[retry][dlq]") {
  /// Refuses every publish: the dead-letter topic cannot be reached.
  struct DownBroker : MessageBrokerPort {
    DeliveryResult publish(std::string_view topic, std::string_view, PublishOptions) override {
      throw BrokerError("cannot reach '" + std::string(topic) + "'");
    }
    std::future<DeliveryResult> publish_async(std::string_view, std::string, PublishOptions) override { return {}; }
    void publish_async(std::string_view, std::string, PublishOptions, DeliveryCallback) override {}
    bool flush(std::chrono::milliseconds) override { return true; }
    void subscribe(std::string_view, MessageHandler, std::optional<std::string>) override {}
    void start() override {}
    void stop() override {}
  } down;
  auto handler = with_failure_policy([](const Message&) { throw std::runtime_error("boom"); }, policy(1, "dlq"), down);
  CHECK_THROWS_AS(handler(Message{.topic = "orders", .value = "x"}), RedeliveryRequired);
  CHECK_THROWS_WITH(handler(Message{.topic = "orders", .value = "x"}), Catch::Contains("cannot reach 'dlq'"));
}

TEST_CASE("retry: cancelled waits end a retry wait at once and leave the message unsettled", "[retry][stop]") {
  InMemoryMessageBroker broker;
  std::atomic<int> calls{0};
  auto waits = std::make_shared<RetryWaits>();
  FailurePolicy stoppable = policy(5, "orders-dlq");
  stoppable.retry.delay = 60s;
  stoppable.waits = waits;
  broker.subscribe("orders", with_failure_policy([&](const Message&) {
    ++calls;
    throw TransientError("down");
  }, stoppable, broker));
  broker.start();
  // Cancels once the first attempt failed, i.e. while the wrapper waits 60 s for retry 1.
  std::thread stopper([&] {
    while (calls.load() == 0) std::this_thread::yield();
    waits->cancel();
  });
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(broker.publish("orders", "x"), RedeliveryRequired);
  stopper.join();
  CHECK(std::chrono::steady_clock::now() - start < 30s);
  CHECK(calls.load() == 1);
  CHECK(broker.published("orders-dlq").empty());  // neither retried nor dead-lettered

  // Cancelled stays cancelled (a wait ends at once) until reset().
  CHECK_FALSE(waits->wait_for(60s));
  waits->reset();
  CHECK(waits->wait_for(1ms));
}
