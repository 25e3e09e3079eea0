// The Kafka adapter against librdkafka's in-process mock cluster: always available.
#include <atomic>
#include <future>
#include <map>
#include <algorithm>
#include <thread>

#include <catch2/catch.hpp>

#include <librdkafka/rdkafka.h>

#include <cppfly/config/config.hpp>
#include <cppfly/messaging/prometheus_metrics.hpp>

#include "scenarios.hpp"

using namespace cppfly;
using namespace cppfly::kafka;
using namespace cppfly::kafka::test;
using messaging::BrokerError;
using messaging::PublishOptions;
using messaging::Ordering;
using messaging::Subscription;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

// "v7": appends the number to the prefix. `"v" + std::to_string(i)` inserts at the front of the
// temporary, and GCC 12 at -O3 reports a false -Wrestrict overlap in that inlined insert
// (GCC bug 105329).
std::string numbered(std::string_view prefix, int i) {
  std::string text(prefix);
  text += std::to_string(i);
  return text;
}

std::chrono::milliseconds elapsed_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
}

}  // namespace

TEST_CASE("mock: round trip keeps key, headers, partition, offset and timestamp", "[kafka][mock]") {
  MockCluster cluster;
  round_trip_scenario(cluster);
}

TEST_CASE("mock: two groups each get every message", "[kafka][mock]") {
  MockCluster cluster;
  two_groups_scenario(cluster);
}

TEST_CASE("mock: two members of one group split the partitions", "[kafka][mock]") {
  MockCluster cluster;
  group_split_scenario(cluster);
}

TEST_CASE("mock: subscribe after start", "[kafka][mock]") {
  MockCluster cluster;
  subscribe_after_start_scenario(cluster);
}

TEST_CASE("mock: stop, then a new adapter on the same group loses and redelivers nothing", "[kafka][mock]") {
  MockCluster cluster;
  stop_restart_scenario(cluster);
}

TEST_CASE("mock: a batch listener's failure at index 7 of 20 retries from it and dead-letters it alone",
          "[kafka][mock][batch]") {
  MockCluster cluster;
  batch_listener_scenario(cluster);
}

TEST_CASE("mock: a throwing handler does not stop the consumer", "[kafka][mock]") {
  MockCluster cluster;
  faulting_handler_scenario(cluster);
}

TEST_CASE("mock: broadcast subscriptions each get every message", "[kafka][mock]") {
  MockCluster cluster;
  broadcast_scenario(cluster);
}

TEST_CASE("mock: publish results, delivery callbacks and flush", "[kafka][mock]") {
  MockCluster cluster;
  delivery_forms_scenario(cluster);
}

TEST_CASE("mock: a pull consumer polls, commits, seeks, pauses and resumes", "[kafka][mock]") {
  MockCluster cluster;
  pull_consumer_scenario(cluster);
}

TEST_CASE("mock: committed transactions reach a listener, aborted ones never do", "[kafka][mock]") {
  MockCluster cluster;
  transactions_scenario(cluster);
}

TEST_CASE("embedded: transaction() without transactional-id-prefix says how to turn transactions on",
          "[kafka][embedded]") {
  KafkaAdapter adapter(test_properties("embedded"));
  adapter.start();
  CHECK_THROWS_WITH(adapter.transaction([](messaging::TransactionalPublisher&) {}),
                    "transactions are off: set pyfly.messaging.kafka.transactional-id-prefix to turn them on");
  adapter.stop();
}

TEST_CASE("embedded: a callback publish that cannot be queued reports its error at once", "[kafka][embedded]") {
  KafkaAdapter adapter(test_properties("embedded"));
  int calls = 0;
  std::string error;
  adapter.publish_async("t", "v", {}, [&](const messaging::DeliveryReport& report) {
    ++calls;
    REQUIRE_FALSE(report.ok());
    error = report.error->what();
  });
  CHECK(calls == 1);
  CHECK_THAT(error, Contains("not started"));
  CHECK(adapter.flush(1s));
}

TEST_CASE("embedded: bootstrap-servers 'embedded' runs an in-process cluster", "[kafka][embedded]") {
  auto properties = test_properties("embedded");
  Inbox inbox;
  KafkaAdapter adapter(properties);
  const auto servers = adapter.bootstrap_servers();
  CHECK_THAT(servers, Catch::Matchers::StartsWith("127.0.0.1:"));

  // Subscribing before any record exists: the embedded cluster creates the topic.
  const auto topic = unique_name("embedded");
  adapter.subscribe(topic, inbox.handler(), unique_name("group"));
  adapter.start();
  CHECK(partition_count(servers, topic) == 3);
  adapter.publish(topic, "hello", PublishOptions{.key = "k"});
  REQUIRE(inbox.wait_for_count(1));
  CHECK(inbox.messages()[0].value == "hello");
  CHECK(inbox.messages()[0].key == std::optional<std::string>("k"));

  // Topics first named by publish() get the same partition count.
  const auto other = unique_name("embedded-publish");
  adapter.publish(other, "x");
  CHECK(partition_count(servers, other) == 3);

  // Another adapter can use the embedded cluster through its address.
  Inbox remote;
  KafkaAdapter client(test_properties(servers));
  client.subscribe(topic, remote.handler(), unique_name("remote"));
  client.start();
  REQUIRE(remote.wait_for_values({"hello"}));
  client.stop();
  adapter.stop();
}

TEST_CASE("embedded: a declared topic (pyfly.messaging.kafka.topics) gets its partitions before a listener "
          "subscribes", "[kafka][embedded][topics]") {
  auto properties = test_properties("embedded");
  const auto topic = unique_name("declared");
  // librdkafka 2.0.2's mock cluster answers no Admin API request: the adapter creates the topic
  // in the mock itself, with its partitions; configs and growing apply on a real cluster only.
  properties.topics[topic] = config::TopicProperties{.partitions = 5, .config = {{"retention.ms", "1000"}}};
  KafkaAdapter adapter(properties);
  Inbox inbox;
  adapter.subscribe(topic, inbox.handler(), unique_name("group"));
  adapter.start();
  CHECK(partition_count(adapter.bootstrap_servers(), topic) == 5);
  adapter.publish(topic, "hello", PublishOptions{.partition = 4});
  REQUIRE(inbox.wait_for_values({"hello"}));
  adapter.stop();
}

TEST_CASE("embedded: publish_async futures hold partition and offset", "[kafka][embedded]") {
  KafkaAdapter adapter(test_properties("embedded"));
  const auto topic = unique_name("async");
  adapter.start();
  std::vector<std::future<messaging::DeliveryResult>> futures;
  for (int i = 0; i < 30; ++i) {
    futures.push_back(adapter.publish_async(topic, numbered("v", i), PublishOptions{.partition = i % 3}));
  }
  std::map<std::int32_t, std::vector<std::int64_t>> offsets;
  for (auto& future : futures) {
    REQUIRE(future.wait_for(kWait) == std::future_status::ready);
    const auto result = future.get();
    CHECK(result.topic == topic);
    offsets[result.partition].push_back(result.offset);
  }
  REQUIRE(offsets.size() == 3);
  for (const auto& [partition, list] : offsets) {
    INFO("partition " << partition);
    CHECK(list == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  }
  adapter.stop();
}

TEST_CASE("embedded: a full local queue is back-pressure, not loss", "[kafka][embedded]") {
  auto properties = test_properties("embedded");
  properties.producer_properties["queue.buffering.max.messages"] = "2";
  KafkaAdapter adapter(properties);
  const auto topic = unique_name("pressure");
  Inbox inbox;
  adapter.subscribe(topic, inbox.handler(), unique_name("group"));
  adapter.start();
  std::vector<std::future<messaging::DeliveryResult>> futures;
  for (int i = 0; i < 200; ++i) futures.push_back(adapter.publish_async(topic, numbered("m", i)));
  for (auto& future : futures) {
    REQUIRE(future.wait_for(kWait) == std::future_status::ready);
    CHECK_NOTHROW(future.get());
  }
  REQUIRE(inbox.wait_for_count(200));
  adapter.stop();
}

TEST_CASE("embedded: publish from many threads", "[kafka][embedded]") {
  KafkaAdapter adapter(test_properties("embedded"));
  const auto topic = unique_name("threads");
  Inbox inbox;
  adapter.subscribe(topic, inbox.handler(), unique_name("group"));
  adapter.start();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        try {
          adapter.publish(topic, std::to_string(t) + "-" + std::to_string(i));
        } catch (...) {
          ++failures;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(failures == 0);
  REQUIRE(inbox.wait_for_count(100));
  auto values = inbox.values();
  std::sort(values.begin(), values.end());
  CHECK(std::unique(values.begin(), values.end()) == values.end());
  adapter.stop();
}

TEST_CASE("embedded: publish before start() is refused", "[kafka][embedded]") {
  KafkaAdapter adapter(test_properties("embedded"));
  CHECK_THROWS_MATCHES(adapter.publish("t", "v"), BrokerError, Catch::Matchers::Message(
                                                                   "cannot publish to 't': the Kafka adapter is not "
                                                                   "started (call start() first)"));
  auto future = adapter.publish_async("t", "v");
  REQUIRE(future.wait_for(0s) == std::future_status::ready);
  CHECK_THROWS_AS(future.get(), BrokerError);
}

TEST_CASE("embedded: stop is idempotent and the adapter can start again", "[kafka][embedded]") {
  KafkaAdapter adapter(test_properties("embedded"));
  const auto topic = unique_name("again");
  Inbox inbox;
  adapter.subscribe(topic, inbox.handler(), unique_name("group"));
  adapter.stop();  // before start: nothing to do
  adapter.start();
  adapter.start();  // idempotent
  adapter.publish(topic, "one");
  REQUIRE(inbox.wait_for_values({"one"}));
  adapter.stop();
  adapter.stop();
  CHECK_THROWS_AS(adapter.publish(topic, "refused"), BrokerError);
  adapter.start();
  adapter.publish(topic, "two");
  REQUIRE(inbox.wait_for_values({"two"}));
  CHECK(inbox.values() == std::vector<std::string>{"one", "two"});
  // The destructor stops a started adapter.
}

TEST_CASE("embedded: stop() called from a handler", "[kafka][embedded]") {
  KafkaAdapter adapter(test_properties("embedded"));
  const auto topic = unique_name("self-stop");
  Inbox inbox;
  Inbox stopped;
  adapter.subscribe(topic, inbox.handler([&adapter, done = stopped.handler()](const messaging::Message& message) {
    adapter.stop();
    done(message);
  }), unique_name("group"));
  adapter.start();
  adapter.publish(topic, "please stop");
  REQUIRE(stopped.wait_for_count(1));
  CHECK_THROWS_WITH(adapter.publish(topic, "after"), Contains("not started"));
  adapter.stop();
}

TEST_CASE("unreachable broker: start() fails within connect-timeout", "[kafka][fault]") {
  auto properties = test_properties("127.0.0.1:1");
  properties.connect_timeout = 2s;
  KafkaAdapter adapter(properties);
  const auto start = std::chrono::steady_clock::now();
  try {
    adapter.start();
    FAIL("start() succeeded against 127.0.0.1:1");
  } catch (const BrokerError& e) {
    const auto took = elapsed_since(start);
    INFO(e.what());
    CHECK_THAT(e.what(), Contains("cannot reach Kafka at 127.0.0.1:1 within 2000 ms"));
    CHECK(took >= 1900ms);
    CHECK(took < 5s);
  }
  CHECK_THROWS_WITH(adapter.publish("t", "v"), Contains("not started"));
  adapter.stop();
}

TEST_CASE("a broker that dies: publish fails within publish-timeout", "[kafka][fault]") {
  MockCluster cluster;
  const auto topic = unique_name("dying");
  cluster.create_topic(topic, 3);
  auto properties = cluster.properties();
  properties.publish_timeout = 3s;
  KafkaAdapter adapter(properties);
  adapter.start();
  adapter.publish(topic, "while-alive");

  cluster.all_brokers_down();
  auto start = std::chrono::steady_clock::now();
  try {
    adapter.publish(topic, "after-death");
    FAIL("publish succeeded with every broker down");
  } catch (const BrokerError& e) {
    INFO(e.what());
    CHECK_THAT(e.what(), Contains("publish to '" + topic + "' failed"));
    CHECK_THAT(e.what(), Contains("timed out"));
    CHECK(elapsed_since(start) < 3s + 2s);
  }

  start = std::chrono::steady_clock::now();
  auto future = adapter.publish_async(topic, "async-after-death");
  REQUIRE(future.wait_for(10s) == std::future_status::ready);
  CHECK_THROWS_AS(future.get(), BrokerError);
  CHECK(elapsed_since(start) < 3s + 2s);

  // The callback form reports the failure; flush() says false while the record waits.
  start = std::chrono::steady_clock::now();
  std::promise<std::string> failed;
  adapter.publish_async(topic, "callback-after-death", {}, [&failed](const messaging::DeliveryReport& report) {
    failed.set_value(report.ok() ? std::string("delivered") : std::string(report.error->what()));
  });
  CHECK_FALSE(adapter.flush(500ms));
  auto outcome = failed.get_future();
  REQUIRE(outcome.wait_for(10s) == std::future_status::ready);
  CHECK_THAT(outcome.get(), Contains("timed out"));
  CHECK(elapsed_since(start) < 3s + 2s);
  CHECK(adapter.flush(1s));

  start = std::chrono::steady_clock::now();
  adapter.stop();  // nothing queued: quick even with the cluster gone
  CHECK(elapsed_since(start) < 5s);
}

TEST_CASE("a producer that hits a fatal error is replaced: later publishes go through", "[kafka][fault]") {
  MockCluster cluster;
  const auto topic = unique_name("fatal");
  cluster.create_topic(topic, 1);
  auto properties = cluster.properties();
  // With the gapless guarantee a sequence gap is fatal for librdkafka's idempotent producer.
  properties.producer_properties["enable.gapless.guarantee"] = "true";
  KafkaAdapter adapter(properties);
  Inbox inbox;
  adapter.subscribe(topic, inbox.handler(), unique_name("group"));
  adapter.start();
  adapter.publish(topic, "before");
  CHECK(adapter.producer_replacements() == 0);

  cluster.fail_produce_requests(RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, 1);
  CHECK_THROWS_AS(adapter.publish(topic, "hit"), BrokerError);
  // Bounded: the next publish replaces the producer (at once, or once librdkafka has raised the
  // fatal error on its own thread) and is delivered.
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  bool delivered = false;
  while (!delivered && std::chrono::steady_clock::now() < deadline) {
    try {
      adapter.publish(topic, "after");
      delivered = true;
    } catch (const BrokerError& e) {
      INFO(e.what());
    }
  }
  CHECK(delivered);
  CHECK(adapter.producer_replacements() == 1);
  REQUIRE(inbox.wait_for_values({"before", "after"}));
  adapter.stop();
}

TEST_CASE("a consumer whose broker dies still stops within a bound", "[kafka][fault]") {
  MockCluster cluster;
  const auto topic = unique_name("orphan");
  cluster.create_topic(topic, 3);
  auto properties = cluster.properties();
  properties.connect_timeout = 3s;
  properties.publish_timeout = 3s;
  Inbox inbox;
  KafkaAdapter adapter(properties);
  adapter.subscribe(topic, inbox.handler(), unique_name("group"));
  adapter.start();
  adapter.publish(topic, "one");
  REQUIRE(inbox.wait_for_count(1));
  cluster.all_brokers_down();
  const auto start = std::chrono::steady_clock::now();
  adapter.stop();
  // The stop commit gives up after connect-timeout; librdkafka then still waits for its
  // queued commits, at most session.timeout.ms (6 s here).
  CHECK(elapsed_since(start) < 3s + 6s + 3s);
}

TEST_CASE("a property librdkafka refuses is a ConfigError naming the key", "[kafka][config]") {
  SECTION("properties") {
    auto properties = test_properties("embedded");
    properties.properties["no.such.property"] = "1";
    CHECK_THROWS_MATCHES(KafkaAdapter(properties), config::ConfigError,
                         Catch::Matchers::Predicate<config::ConfigError>([](const config::ConfigError& e) {
                           const std::string what = e.what();
                           return what.starts_with("pyfly.messaging.kafka.properties.no.such.property: ") &&
                                  what.find("librdkafka has no property no.such.property") != std::string::npos;
                         }));
  }
  SECTION("producer-properties") {
    auto properties = test_properties("127.0.0.1:9092");
    properties.producer_properties["linger.ms"] = "soon";
    CHECK_THROWS_WITH(KafkaAdapter(properties),
                      Catch::Matchers::StartsWith("pyfly.messaging.kafka.producer-properties.linger.ms: "));
  }
  SECTION("consumer-properties") {
    auto properties = test_properties("127.0.0.1:9092");
    properties.consumer_properties["session.timeout.ms"] = "-5";
    CHECK_THROWS_WITH(KafkaAdapter(properties),
                      Catch::Matchers::StartsWith("pyfly.messaging.kafka.consumer-properties.session.timeout.ms: "));
  }
  SECTION("a typed setting") {
    auto properties = test_properties("127.0.0.1:9092");
    properties.acks = "most";
    CHECK_THROWS_WITH(KafkaAdapter(properties), Catch::Matchers::StartsWith("pyfly.messaging.kafka.acks: "));
  }
  SECTION("a bound that is not positive") {
    auto properties = test_properties("127.0.0.1:9092");
    properties.publish_timeout = 0ms;
    CHECK_THROWS_WITH(KafkaAdapter(properties), Catch::Matchers::StartsWith("pyfly.messaging.kafka.publish-timeout: "));
  }
  SECTION("a combination refused when the producer is created") {
    auto properties = test_properties("127.0.0.1:9092");
    properties.acks = "1";  // idempotence (the default) needs acks=all
    KafkaAdapter adapter(properties);
    CHECK_THROWS_AS(adapter.start(), config::ConfigError);
  }
}

TEST_CASE("a misspelled secret property is refused with the nearest librdkafka name, never with its value",
          "[kafka][config][security]") {
  auto properties = test_properties("embedded");
  properties.properties["sasl.pasword"] = "do-not-print-7f3a";
  CHECK_THROWS_MATCHES(KafkaAdapter(properties), config::ConfigError,
                       Catch::Matchers::Predicate<config::ConfigError>([](const config::ConfigError& e) {
                         const std::string what = e.what();
                         return what == "pyfly.messaging.kafka.properties.sasl.pasword: librdkafka has no property "
                                        "sasl.pasword; did you mean sasl.password?" &&
                                e.key() == "pyfly.messaging.kafka.properties.sasl.pasword";
                       },
                                                                     "names the key and sasl.password, not the value"));
  SECTION("a plain misspelling gets its suggestion too") {
    auto misspelled = test_properties("embedded");
    misspelled.properties["compresion.type"] = "zstd";
    CHECK_THROWS_WITH(KafkaAdapter(misspelled),
                      Catch::Matchers::EndsWith("no property compresion.type; did you mean compression.type?"));
  }
  SECTION("a name far from every property gets no suggestion") {
    auto unknown = test_properties("embedded");
    unknown.properties["qqqqqqqqqqqqqqqq"] = "1";
    CHECK_THROWS_WITH(KafkaAdapter(unknown), Catch::Matchers::EndsWith("librdkafka has no property qqqqqqqqqqqqqqqq"));
  }
}

TEST_CASE("embedded: under key ordering a retrying record holds only its key, other keys go on, each in order",
          "[kafka][embedded][container]") {
  KafkaAdapter adapter(test_properties("embedded"));
  const auto topic = unique_name("keyed");
  Inbox inbox;
  std::atomic<int> failures{0};
  // a-0 fails twice (retried after 300 ms, then 600 ms); b-* and c-* must not wait for it.
  adapter.subscribe(Subscription{
      .topic = topic,
      .handler = inbox.handler([&](const Message& m) {
        if (m.value == "a-0" && m.attempt <= 2) {
          failures.fetch_add(1);
          throw std::runtime_error("not yet");
        }
      }),
      .group = unique_name("group"),
      .container = {.ordering = Ordering::key,
                    .concurrency = 4,
                    .failure = {.retry = {.retries = 3, .delay = 300ms}}}});
  adapter.start();
  std::vector<std::string> published;
  for (int i = 0; i < 20; ++i) {
    for (const char* key : {"a", "b", "c"}) {
      const std::string value = std::string(key) + "-" + std::to_string(i);
      adapter.publish(topic, value, PublishOptions{.key = key, .partition = 0});
      published.push_back(value);
    }
  }
  REQUIRE(inbox.wait_until([](const std::vector<Message>& m) {
    return std::count_if(m.begin(), m.end(), [](const Message& x) { return x.value == "a-19"; }) == 1;
  }));
  const auto values = inbox.values();
  CHECK(failures.load() == 2);
  // Each key in order; a-0 seen three times (two failures), everything else once.
  std::map<std::string, std::vector<int>> by_key;
  for (const auto& v : values) by_key[v.substr(0, 1)].push_back(std::stoi(v.substr(2)));
  for (const auto& [key, seq] : by_key) {
    INFO(key);
    std::vector<int> expected;
    if (key == "a") expected = {0, 0};
    for (int i = 0; i < 20; ++i) expected.push_back(i);
    CHECK(seq == expected);
  }
  // b and c were all handled before a-0 succeeded at its third attempt.
  const auto third_a0 = std::find(std::next(std::find(std::next(std::find(values.begin(), values.end(), "a-0")),
                                                      values.end(), "a-0")),
                                  values.end(), "a-0");
  REQUIRE(third_a0 != values.end());
  CHECK(std::find(third_a0, values.end(), "b-19") == values.end());
  CHECK(std::find(third_a0, values.end(), "c-19") == values.end());
  adapter.stop();
}

TEST_CASE("embedded: stop during a 60 s retry wait returns at once, the record comes again after a restart",
          "[kafka][embedded][container]") {
  KafkaAdapter adapter(test_properties("embedded"));
  const auto topic = unique_name("stopwait");
  Inbox inbox;
  std::atomic<bool> failing{true};
  adapter.subscribe(Subscription{
      .topic = topic,
      .handler = inbox.handler([&](const Message&) {
        if (failing.load()) throw std::runtime_error("down");
      }),
      .group = unique_name("group"),
      .container = {.failure = {.retry = {.retries = 5, .delay = 60s}, .dead_letter_topic = topic + "-dlq"},
                    .shutdown_timeout = 5s}});
  adapter.start();
  adapter.publish(topic, "poison", PublishOptions{.partition = 0});
  adapter.publish(topic, "behind", PublishOptions{.partition = 0});
  REQUIRE(inbox.wait_for_values({"poison"}));
  // "poison" failed and waits 60 s for its retry; "behind" waits behind it (partition order).
  const auto start = std::chrono::steady_clock::now();
  adapter.stop();
  CHECK(std::chrono::steady_clock::now() - start < 7s);  // the shutdown timeout + 2 s
  CHECK(inbox.values() == std::vector<std::string>{"poison"});

  // Started again: neither was settled, so both come, the poison pill first, its attempt count going on
  // (the stop committed it in the metadata).
  failing.store(false);
  adapter.start();
  REQUIRE(inbox.wait_for_values({"behind"}));
  const auto messages = inbox.messages();
  REQUIRE(messages.size() == 3);
  CHECK(messages[1].value == "poison");
  CHECK(messages[1].attempt == 2);
  CHECK(messages[2].value == "behind");
  CHECK(inbox.size() == 3);
  adapter.stop();
}

namespace {

/// Kafka's murmur2 (the Java client's and aiokafka's key partitioner), for the expected partitions.
std::int32_t murmur2(const std::string& key) {
  const auto* data = reinterpret_cast<const unsigned char*>(key.data());
  const auto length = static_cast<std::uint32_t>(key.size());
  constexpr std::uint32_t m = 0x5bd1e995;
  constexpr int r = 24;
  std::uint32_t h = 0x9747b28c ^ length;
  std::uint32_t i = 0;
  for (; i + 4 <= length; i += 4) {
    std::uint32_t k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (static_cast<std::uint32_t>(data[i + 3]) << 24);
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  switch (length - i) {
    case 3: h ^= static_cast<std::uint32_t>(data[i + 2]) << 16; [[fallthrough]];
    case 2: h ^= static_cast<std::uint32_t>(data[i + 1]) << 8; [[fallthrough]];
    case 1:
      h ^= data[i];
      h *= m;
      break;
    default: break;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return static_cast<std::int32_t>(h & 0x7fffffff);
}

}  // namespace

TEST_CASE("a configured partitioner takes effect: murmur2_random places keys as Java clients do", "[kafka][embedded]") {
  constexpr int kPartitions = 3;  // the embedded cluster's topics
  auto properties = test_properties("embedded");
  properties.producer_properties["partitioner"] = "murmur2_random";
  KafkaAdapter adapter(properties);
  adapter.start();
  const auto topic = unique_name("partitioner");
  for (int i = 0; i < 30; ++i) {
    const std::string key = "order-" + std::to_string(i);
    const auto placed = adapter.publish(topic, "v", {.key = key});
    INFO(key);
    CHECK(placed.partition == murmur2(key) % kPartitions);
  }
  adapter.stop();
}

TEST_CASE("mock: the observer sees publishes and commits, and status() reports lag, partitions, reachability",
          "[kafka][mock][observer]") {
  MockCluster cluster;
  const auto topic = unique_name("observed");
  const auto group = unique_name("group");
  cluster.create_topic(topic, 2);
  auto metrics = std::make_shared<messaging::PrometheusMetrics>();
  auto properties = cluster.properties();
  properties.properties["statistics.interval.ms"] = "100";
  KafkaAdapter adapter(properties);
  adapter.observe(metrics);
  Inbox inbox;
  adapter.subscribe(Subscription{.topic = topic,
                                 .handler = inbox.handler(),
                                 .group = group,
                                 .container = {.failure = {.listener_name = "observed"}, .observer = metrics}});
  CHECK(adapter.status().listeners.empty());  // not started
  adapter.start();
  CHECK_THROWS_AS(adapter.observe(metrics), BrokerError);
  for (int i = 0; i < 6; ++i) adapter.publish(topic, numbered("v", i), PublishOptions{.partition = i % 2});
  REQUIRE(inbox.wait_for_count(6));

  // Statistics come every 100 ms: wait (bounded) until they show both partitions caught up.
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  messaging::BrokerStatus status;
  const auto caught_up = [&] {
    status = adapter.status();
    if (status.listeners.size() != 1) return false;
    const auto& l = status.listeners[0];
    return status.reachable == true && l.assigned == 2 && l.lag.size() == 2 &&
           std::all_of(l.lag.begin(), l.lag.end(), [](const auto& p) { return p.lag == 0; });
  };
  while (!caught_up() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
  REQUIRE(caught_up());
  CHECK(status.listeners[0].listener == "observed");
  CHECK(status.listeners[0].group == group);
  CHECK(status.listeners[0].buffered == 0);
  REQUIRE(status.producer_queue.has_value());

  // A commit happens on the 200 ms timer once offsets were stored.
  const auto committed = [&] {
    return metrics->render(adapter.status()).find("cppfly_commits_total{group=\"" + group + "\",outcome=\"success\"}") !=
           std::string::npos;
  };
  const auto commit_deadline = std::chrono::steady_clock::now() + kWait;
  while (!committed() && std::chrono::steady_clock::now() < commit_deadline) std::this_thread::sleep_for(20ms);
  CHECK(committed());

  const std::string text = metrics->render(adapter.status());
  CHECK_THAT(text, Contains("cppfly_published_total{topic=\"" + topic + "\"} 6"));
  CHECK_THAT(text, Contains("cppfly_publish_duration_seconds_count{topic=\"" + topic + "\"} 6"));
  CHECK_THAT(text, Contains("cppfly_records_handled_total{listener=\"observed\",topic=\"" + topic + "\",group=\"" +
                            group + "\",outcome=\"success\"} 6"));
  CHECK_THAT(text, Contains("cppfly_consumer_lag{listener=\"observed\",topic=\"" + topic + "\",group=\"" + group +
                            "\",partition=\"1\"} 0"));
  CHECK_THAT(text, Contains("cppfly_broker_up 1"));
  adapter.stop();
  CHECK(adapter.status().reachable == false);
}
