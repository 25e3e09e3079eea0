// The Kafka adapter against a real Apache Kafka broker. Needs CPPFLY_KAFKA_BOOTSTRAP
// (scripts/kafka start; CPPFLY_KAFKA_BOOTSTRAP=127.0.0.1:19092): without it every test
// here FAILS, on purpose: a skipped integration test must not look like a passing one.
#include <cstdlib>

#include <catch2/catch.hpp>

#include "../scenarios.hpp"

using namespace cppfly;
using namespace cppfly::kafka;
using namespace cppfly::kafka::test;
using Catch::Matchers::Contains;

namespace {

RealCluster real_cluster() {
  const char* servers = std::getenv("CPPFLY_KAFKA_BOOTSTRAP");
  if (servers == nullptr || *servers == '\0') {
    FAIL("CPPFLY_KAFKA_BOOTSTRAP is not set. These tests need a real Kafka broker: run `scripts/kafka start`, "
         "then `CPPFLY_KAFKA_BOOTSTRAP=127.0.0.1:19092 ctest -L real` (or run this executable with it set).");
  }
  return RealCluster(servers);
}

}  // namespace

TEST_CASE("real: round trip keeps key, headers, partition, offset and timestamp", "[kafka][real]") {
  auto cluster = real_cluster();
  round_trip_scenario(cluster);
}

TEST_CASE("real: publish results, delivery callbacks and flush", "[kafka][real]") {
  auto cluster = real_cluster();
  delivery_forms_scenario(cluster);
}

TEST_CASE("real: committed transactions reach a listener, aborted ones never do", "[kafka][real]") {
  auto cluster = real_cluster();
  transactions_scenario(cluster);
}

TEST_CASE("real: a pull consumer polls, commits, seeks, pauses and resumes", "[kafka][real]") {
  auto cluster = real_cluster();
  pull_consumer_scenario(cluster);
}

TEST_CASE("real: two groups each get every message", "[kafka][real]") {
  auto cluster = real_cluster();
  two_groups_scenario(cluster);
}

TEST_CASE("real: two members of one group split the partitions", "[kafka][real]") {
  auto cluster = real_cluster();
  group_split_scenario(cluster);
}

TEST_CASE("real: subscribe after start", "[kafka][real]") {
  auto cluster = real_cluster();
  subscribe_after_start_scenario(cluster);
}

TEST_CASE("real: clean stop, then restart: nothing lost, nothing redelivered", "[kafka][real]") {
  auto cluster = real_cluster();
  stop_restart_scenario(cluster);
}

TEST_CASE("real: a batch listener's failure at index 7 of 20 retries from it and dead-letters it alone",
          "[kafka][real][batch]") {
  auto cluster = real_cluster();
  batch_listener_scenario(cluster);
}

TEST_CASE("real: a throwing handler does not stop the consumer", "[kafka][real]") {
  auto cluster = real_cluster();
  faulting_handler_scenario(cluster);
}

TEST_CASE("real: broadcast subscriptions each get every message", "[kafka][real]") {
  auto cluster = real_cluster();
  broadcast_scenario(cluster);
}

TEST_CASE("real: subscribing to a topic that does not exist yet", "[kafka][real]") {
  auto cluster = real_cluster();
  const auto topic = unique_name("autocreate");
  Inbox group_inbox;
  Inbox broadcast_inbox;
  KafkaAdapter adapter(test_properties(cluster.bootstrap_servers()));
  adapter.subscribe(topic, group_inbox.handler(), unique_name("group"));
  adapter.subscribe(topic, broadcast_inbox.handler());
  adapter.start();
  adapter.publish(topic, "first");
  REQUIRE(group_inbox.wait_for_values({"first"}));
  REQUIRE(broadcast_inbox.wait_for_values({"first"}));
  adapter.stop();
}

TEST_CASE("real: an unreachable broker fails clearly within its bound", "[kafka][real]") {
  auto cluster = real_cluster();  // fails without a broker, like the rest of this file
  auto properties = test_properties("127.0.0.1:1");
  properties.connect_timeout = 2s;
  KafkaAdapter adapter(properties);
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH(adapter.start(), Contains("cannot reach Kafka at 127.0.0.1:1 within 2000 ms"));
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  CHECK_THROWS_WITH(adapter.publish("t", "v"), Contains("not started"));
}
