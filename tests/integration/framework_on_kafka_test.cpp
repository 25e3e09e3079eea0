// The framework (Application, listeners, retry/dead-letter, JSON codec) on a real Apache Kafka
// broker named by CPPFLY_KAFKA_BOOTSTRAP. Without it every test here FAILS, on purpose.
//
// Each test builds its own ListenerRegistry through make_listener(), so it controls exactly
// which listeners run; topics and groups get a random suffix; every wait has a deadline.
#include <algorithm>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <cppfly/application.hpp>
#include <cppfly/kafka/kafka_adapter.hpp>
#include <cppfly/messaging/dead_letter.hpp>
#include <cppfly/messaging/json_codec.hpp>
#include <cppfly/messaging/listener.hpp>

#include "support.hpp"

namespace cppfly_integration {
/// A business exception with a known, namespaced type name (x-exception must name it).
class OutOfStock : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
}  // namespace cppfly_integration

namespace {

using namespace cppfly;
using namespace cppfly::integration;
using namespace cppfly::messaging;
namespace dlh = cppfly::messaging::dead_letter_headers;
using Catch::Matchers::Contains;

struct Order {
  std::string id;
  int quantity{};
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(Order, id, quantity)
  friend bool operator==(const Order&, const Order&) = default;
};

std::ostream& operator<<(std::ostream& out, const Order& order) {
  return out << "Order{" << order.id << ", " << order.quantity << "}";
}

/// publish_async, then wait (bounded) for the delivery report.
DeliveryResult deliver(MessageBrokerPort& broker, const std::string& topic, std::string value,
                       PublishOptions options = {}) {
  auto future = broker.publish_async(topic, std::move(value), std::move(options));
  REQUIRE(future.wait_for(kWait) == std::future_status::ready);
  return future.get();
}

std::string header(const Message& message, std::string_view name) {
  const auto value = message.headers.get(name);
  return value ? std::string(*value) : std::string("<missing ") + std::string(name) + ">";
}

/// The headers of `message` whose names do not start with "x-" (the original ones), in order.
std::vector<Headers::Entry> original_headers(const Message& message) {
  std::vector<Headers::Entry> out;
  for (const auto& entry : message.headers) {
    if (!entry.first.starts_with("x-")) out.push_back(entry);
  }
  return out;
}

config::KafkaProperties adapter_properties(const std::string& servers) {
  return kafka_config(servers).messaging().kafka;
}

}  // namespace

TEST_CASE("kafka framework: a failing handler is retried twice, then dead-lettered with key, value, headers and x- "
          "headers, and the partition moves on with its offset committed",
          "[kafka][real][dead-letter]") {
  const auto servers = bootstrap_servers();
  const auto topic = unique_name("orders");
  const auto dlq = topic + "-dlq";
  const auto group = unique_name("billing");
  create_topic(servers, topic, 1);
  create_topic(servers, dlq, 1);

  Collector<Message> attempts;
  Collector<Message> dead;
  ListenerRegistry registry;
  registry.add(make_listener(
      "billing",
      [attempts](const Message& message) {
        attempts.add(message);
        if (message.value == "healthy") return;
        throw cppfly_integration::OutOfStock("no stock for " + message.key.value_or("?"));
      },
      {.topic = topic, .group_id = group, .retries = 2, .retry_delay = 0ms, .dead_letter_topic = dlq}));
  registry.add(make_listener("dlq-reader", [dead](const Message& message) { dead.add(message); },
                             {.topic = dlq, .group_id = unique_name("dlq-reader")}));
  REQUIRE(registry.problems().empty());

  Application app(kafka_config(servers), registry);
  app.start();

  const Headers headers{{"trace-id", "abc-123"}, {"tenant", "t\xC3\xBCrkiye"}, {"trace-id", "second"}, {"empty", ""}};
  const std::string value("order\x01{\"id\":7}\n\xC3\xA9", 17);
  const auto failed = deliver(app.broker(), topic, value, {.key = "order-7", .headers = headers});
  const auto healthy = deliver(app.broker(), topic, "healthy", {.key = "order-8"});
  CHECK(failed.partition == 0);
  CHECK(healthy.offset == failed.offset + 1);

  INFO("dead-lettered so far: " << dead.size() << ", attempts so far: " << attempts.size());
  REQUIRE(dead.wait_for_count(1));
  REQUIRE(attempts.wait_until([](const std::vector<Message>& seen) {
    return std::any_of(seen.begin(), seen.end(), [](const Message& m) { return m.value == "healthy"; });
  }));

  const Message record = dead.items().front();
  CHECK(record.topic == dlq);
  REQUIRE(record.key.has_value());
  CHECK(*record.key == "order-7");
  CHECK(record.value == value);
  CHECK(original_headers(record) == headers.entries());
  CHECK(header(record, dlh::original_topic) == topic);
  CHECK(header(record, dlh::exception) == "cppfly_integration::OutOfStock");
  CHECK(header(record, dlh::exception_message) == "no stock for order-7");
  CHECK(header(record, dlh::retry_count) == "2");
  CHECK(header(record, dlh::original_partition) == std::to_string(failed.partition));
  CHECK(header(record, dlh::original_offset) == std::to_string(failed.offset));

  // One first attempt + two retries of the failing record, then the next record once.
  const auto seen = attempts.items();
  REQUIRE(seen.size() == 4);
  for (int i = 0; i < 3; ++i) {
    CHECK(seen[i].offset == failed.offset);
    CHECK(seen[i].value == value);
  }
  CHECK(seen[3].value == "healthy");

  app.stop();
  CHECK(dead.size() == 1);  // dead-lettered exactly once
  // Both records count as handled: the group resumes after them.
  CHECK(committed_offset(servers, group, topic, 0) == healthy.offset + 1);

  // A restarted service in the same group gets neither the dead-lettered nor the handled record again.
  Collector<Message> after_restart;
  ListenerRegistry second;
  second.add(make_listener("billing", [after_restart](const Message& m) { after_restart.add(m); },
                           {.topic = topic, .group_id = group}));
  Application restarted(kafka_config(servers), second);
  restarted.start();
  const auto fresh = deliver(restarted.broker(), topic, "after-restart");
  REQUIRE(after_restart.wait_for_count(1));
  restarted.stop();
  const auto redelivered = after_restart.items();
  REQUIRE(redelivered.size() == 1);
  CHECK(redelivered.front().value == "after-restart");
  CHECK(redelivered.front().offset == fresh.offset);
}

TEST_CASE("kafka framework: typed JSON listeners decode values, and an undecodable payload is dead-lettered at once "
          "while the partition moves on",
          "[kafka][real][json][dead-letter]") {
  const auto servers = bootstrap_servers();
  const auto topic = unique_name("inventory");
  const auto dlq = topic + "-dlq";
  const auto inventory_group = unique_name("inventory");
  create_topic(servers, topic, 1);
  create_topic(servers, dlq, 1);

  struct Typed {
    Order order;
    std::int64_t offset;
  };
  Collector<Typed> typed;
  Collector<nlohmann::json> audited;
  Collector<Message> dead;
  ListenerRegistry registry;
  // A 10 s retry delay: if an undecodable payload were retried, the dead letter would come only after 60 s.
  registry.add(make_listener(
      "inventory", [typed](const Order& order, const Message& message) { typed.add({order, message.offset}); },
      {.topic = topic, .group_id = inventory_group, .retries = 3, .retry_delay = 10s, .dead_letter_topic = dlq}));
  // No dead-letter topic: what cannot be parsed is logged and skipped.
  registry.add(make_listener("audit", [audited](const nlohmann::json& json) { audited.add(json); },
                             {.topic = topic, .group_id = unique_name("audit"), .retries = 3, .retry_delay = 10s}));
  registry.add(make_listener("dlq-reader", [dead](const Message& message) { dead.add(message); },
                             {.topic = dlq, .group_id = unique_name("dlq-reader")}));

  Application app(kafka_config(servers), registry);
  app.start();
  const auto started = std::chrono::steady_clock::now();

  auto& broker = app.broker();
  const Order a{"A", 1};
  const Order c{"C", 3};
  const Order d{"D \xE2\x9C\x93", 4};
  const auto at_a = deliver(broker, topic, encode_json(a), {.key = "A"});
  const auto at_garbage = deliver(broker, topic, "{not json", {.key = "garbage", .headers = {{"source", "fuzzer"}}});
  const auto at_b = deliver(broker, topic, R"({"id":"B"})", {.key = "B"});  // JSON, but no quantity
  const auto at_c = deliver(broker, topic, encode_json(c), {.key = "C"});
  const auto at_d = deliver(broker, topic, R"({"quantity":4,"id":"D \u2713","extra":[1,2]})", {.key = "D"});

  INFO("typed: " << typed.size() << ", audited: " << audited.size() << ", dead-lettered: " << dead.size());
  REQUIRE(typed.wait_for_count(3));
  REQUIRE(dead.wait_for_count(2));
  REQUIRE(audited.wait_for_count(4));
  CHECK(std::chrono::steady_clock::now() - started < 10s);  // no retry delay was waited for

  const auto orders = typed.items();
  REQUIRE(orders.size() == 3);
  CHECK(orders[0].order == a);
  CHECK(orders[0].offset == at_a.offset);
  CHECK(orders[1].order == c);
  CHECK(orders[1].offset == at_c.offset);
  CHECK(orders[2].order == d);
  CHECK(orders[2].offset == at_d.offset);

  const auto letters = dead.items();
  REQUIRE(letters.size() == 2);
  CHECK(letters[0].value == "{not json");
  CHECK(letters[0].key == std::optional<std::string>("garbage"));
  CHECK(header(letters[0], "source") == "fuzzer");
  CHECK(header(letters[0], dlh::original_topic) == topic);
  CHECK(header(letters[0], dlh::exception) == "cppfly::messaging::PayloadDecodeError");
  CHECK(header(letters[0], dlh::retry_count) == "0");
  CHECK(header(letters[0], dlh::original_partition) == "0");
  CHECK(header(letters[0], dlh::original_offset) == std::to_string(at_garbage.offset));
  CHECK_THAT(header(letters[0], dlh::exception_message), Contains(topic));
  CHECK(letters[1].value == R"({"id":"B"})");
  CHECK(header(letters[1], dlh::exception) == "cppfly::messaging::PayloadDecodeError");
  CHECK(header(letters[1], dlh::retry_count) == "0");
  CHECK(header(letters[1], dlh::original_offset) == std::to_string(at_b.offset));
  CHECK_THAT(header(letters[1], dlh::exception_message), Contains("quantity"));

  const auto json = audited.items();
  REQUIRE(json.size() == 4);
  CHECK(json[0] == nlohmann::json::parse(encode_json(a)));
  CHECK(json[1] == nlohmann::json{{"id", "B"}});
  CHECK(json[2] == nlohmann::json::parse(encode_json(c)));
  CHECK(json[3]["id"] == "D \xE2\x9C\x93");

  app.stop();
  CHECK(dead.size() == 2);
  CHECK(committed_offset(servers, inventory_group, topic, 0) == at_d.offset + 1);
}

TEST_CASE("kafka framework: publish_async futures report partition and offset", "[kafka][real][publish]") {
  const auto servers = bootstrap_servers();
  const auto topic = unique_name("async");
  create_topic(servers, topic, 2);

  Collector<Message> received;
  ListenerRegistry registry;
  registry.add(make_listener("reader", [received](const Message& message) { received.add(message); },
                             {.topic = topic, .group_id = unique_name("reader")}));
  Application app(kafka_config(servers), registry);
  app.start();
  auto& broker = app.broker();

  struct Sent {
    std::string value;
    std::optional<std::int32_t> partition;
    std::optional<std::string> key;
    std::future<DeliveryResult> future;
  };
  std::vector<Sent> sent;
  for (int i = 0; i < 10; ++i) {
    const std::int32_t partition = i % 2;
    std::string value = "explicit-" + std::to_string(i);
    auto future = broker.publish_async(topic, value, {.partition = partition});
    sent.push_back({std::move(value), partition, std::nullopt, std::move(future)});
  }
  for (int i = 0; i < 6; ++i) {
    std::string key = i % 2 == 0 ? "customer-42" : "customer-7";
    std::string value = "keyed-" + std::to_string(i);
    auto future = broker.publish_async(topic, value, {.key = key});
    sent.push_back({std::move(value), std::nullopt, std::move(key), std::move(future)});
  }

  std::map<std::pair<std::int32_t, std::int64_t>, std::string> placed;  // (partition, offset) → value
  std::map<std::int32_t, std::vector<std::int64_t>> offsets;            // per partition, in publish order
  std::map<std::string, std::set<std::int32_t>> key_partitions;
  for (auto& record : sent) {
    INFO("record " << record.value);
    REQUIRE(record.future.wait_for(kWait) == std::future_status::ready);
    const DeliveryResult result = record.future.get();
    CHECK(result.topic == topic);
    CHECK((result.partition == 0 || result.partition == 1));
    CHECK(result.offset >= 0);
    if (record.partition) CHECK(result.partition == *record.partition);
    if (record.key) key_partitions[*record.key].insert(result.partition);
    CHECK(placed.emplace(std::pair{result.partition, result.offset}, record.value).second);  // no two share a place
    offsets[result.partition].push_back(result.offset);
  }
  // A fresh topic: each partition's offsets are 0, 1, 2, ... in the order the records were published.
  for (const auto& [partition, list] : offsets) {
    INFO("partition " << partition);
    for (std::size_t i = 0; i < list.size(); ++i) CHECK(list[i] == static_cast<std::int64_t>(i));
  }
  // One key, one partition.
  for (const auto& [key, partitions] : key_partitions) {
    INFO("key " << key);
    CHECK(partitions.size() == 1);
  }

  // The records are where the futures said.
  REQUIRE(received.wait_for_count(sent.size()));
  for (const auto& message : received.items()) {
    const auto found = placed.find({message.partition, message.offset});
    REQUIRE(found != placed.end());
    CHECK(found->second == message.value);
  }

  // A partition that does not exist: the error comes through the future, within the bound.
  auto nowhere = broker.publish_async(topic, "nowhere", {.partition = 7});
  REQUIRE(nowhere.wait_for(kWait) == std::future_status::ready);
  CHECK_THROWS_AS(nowhere.get(), BrokerError);
  app.stop();
}

TEST_CASE("kafka framework: two services of one group, concurrency 2 each, on a 2-partition topic see each message once",
          "[kafka][real][concurrency]") {
  const auto servers = bootstrap_servers();
  const auto topic = unique_name("work");
  const auto group = unique_name("workers");
  create_topic(servers, topic, 2);

  struct Handled {
    std::string value;
    std::int32_t partition;
    std::thread::id thread;
  };
  Collector<Handled> handled;
  ListenerRegistry registry;
  registry.add(make_listener(
      "workers",
      [handled](const Message& message) {
        handled.add({message.value, message.partition, std::this_thread::get_id()});
      },
      {.topic = topic, .group_id = group, .concurrency = 2}));

  cppfly::kafka::KafkaAdapter producer(adapter_properties(servers));
  producer.start();
  std::set<std::string> expected;
  auto publish_batch = [&](const std::string& prefix) {
    for (int i = 0; i < 20; ++i) {
      const std::string value = prefix + std::to_string(i);
      producer.publish(topic, value, {.key = value, .partition = i % 2});
      expected.insert(value);
    }
  };

  // Before start: the first member to join takes both partitions, then hands one over.
  publish_batch("early-");
  Application app(kafka_config(servers), registry);
  Application other(kafka_config(servers), registry);  // a second process of the same service
  app.start();
  other.start();
  const auto members = wait_for_stable_group(servers, group, 2);
  CHECK(members.size() == 2);
  for (const auto& [member, partitions] : members) {
    INFO("member " << member);
    CHECK(partitions.size() == 1);
  }

  // After the group settled: each member has one partition.
  publish_batch("late-");
  for (std::int32_t p = 0; p < 2; ++p) {
    const std::string sentinel = "sentinel-" + std::to_string(p);
    producer.publish(topic, sentinel, {.partition = p});
    expected.insert(sentinel);
  }

  INFO("handled so far: " << handled.size());
  REQUIRE(handled.wait_until([&](const std::vector<Handled>& items) {
    std::set<std::string> values;
    for (const auto& item : items) values.insert(item.value);
    return values == expected;
  }));
  app.stop();
  other.stop();
  producer.stop();

  // Exactly once each (a duplicate would come before its partition's sentinel).
  std::map<std::string, int> counts;
  for (const auto& item : handled.items()) ++counts[item.value];
  for (const auto& [value, count] : counts) {
    INFO("value " << value);
    CHECK(count == 1);
  }
  CHECK(counts.size() == expected.size());

  // Per-partition order holds: each partition's records were handled in the order they were published.
  std::map<std::int32_t, std::vector<std::string>> order;
  for (const auto& item : handled.items()) order[item.partition].push_back(item.value);
  for (std::int32_t p = 0; p < 2; ++p) {
    std::vector<std::string> published;
    for (const auto* prefix : {"early-", "late-"}) {
      for (int i = p; i < 20; i += 2) published.push_back(prefix + std::to_string(i));
    }
    published.push_back("sentinel-" + std::to_string(p));
    INFO("partition " << p);
    CHECK(order[p] == published);
  }

  // After the rebalance each partition was served by its own member: the two never shared a worker thread.
  std::map<std::int32_t, std::set<std::thread::id>> late_threads;
  for (const auto& item : handled.items()) {
    if (item.value.starts_with("late-") || item.value.starts_with("sentinel-")) {
      late_threads[item.partition].insert(item.thread);
    }
  }
  REQUIRE(late_threads.size() == 2);
  for (const auto& thread : late_threads[0]) CHECK_FALSE(late_threads[1].contains(thread));
}

// Application::start() binds every listener again, while the adapter keeps the subscriptions it
// already had: after a restart each listener would be subscribed twice.
TEST_CASE("kafka framework: an Application stopped and started again delivers each record once per listener",
          "[kafka][real][lifecycle]") {
  const auto servers = bootstrap_servers();
  const auto topic = unique_name("restart");
  const auto group = unique_name("restart-group");
  create_topic(servers, topic, 1);

  Collector<Message> grouped;
  Collector<Message> broadcast;
  ListenerRegistry registry;
  registry.add(make_listener("grouped", [grouped](const Message& message) { grouped.add(message); },
                             {.topic = topic, .group_id = group}));
  registry.add(make_listener("broadcast", [broadcast](const Message& message) { broadcast.add(message); },
                             {.topic = topic}));
  Application app(kafka_config(servers), registry);
  app.start();
  deliver(app.broker(), topic, "first");
  REQUIRE(grouped.wait_for_count(1));
  REQUIRE(broadcast.wait_for_count(1));
  app.stop();

  app.start();
  deliver(app.broker(), topic, "second");
  deliver(app.broker(), topic, "sentinel");
  INFO("grouped: " << grouped.size() << ", broadcast: " << broadcast.size());
  auto has_sentinel = [](const std::vector<Message>& messages) {
    return std::any_of(messages.begin(), messages.end(), [](const Message& m) { return m.value == "sentinel"; });
  };
  REQUIRE(grouped.wait_until(has_sentinel));
  REQUIRE(broadcast.wait_until(has_sentinel));
  app.stop();

  auto values = [](const Collector<Message>& collector) {
    std::vector<std::string> out;
    for (const auto& message : collector.items()) out.push_back(message.value);
    return out;
  };
  const std::vector<std::string> expected{"first", "second", "sentinel"};
  CHECK(values(grouped) == expected);
  CHECK(values(broadcast) == expected);
}

// Kept last in this file: when it fails, it may fail by aborting the process. It drives the
// KafkaAdapter directly (the framework adds nothing here).
TEST_CASE("kafka adapter: stop() while fetched records are still queued neither crashes nor loses or repeats "
          "records",
          "[kafka][real][lifecycle]") {
  const auto servers = bootstrap_servers();
  const auto topic = unique_name("backlog");
  const auto group = unique_name("backlog-group");
  create_topic(servers, topic, 1);

  constexpr int kRecords = 300;
  {
    cppfly::kafka::KafkaAdapter producer(adapter_properties(servers));
    producer.start();
    std::vector<std::future<DeliveryResult>> deliveries;
    for (int i = 0; i < kRecords; ++i) deliveries.push_back(producer.publish_async(topic, std::string("r").append(std::to_string(i))));
    for (auto& delivery : deliveries) {
      REQUIRE(delivery.wait_for(kWait) == std::future_status::ready);
      delivery.get();
    }
    producer.stop();
  }

  // The handler of the 5th record stops the adapter. librdkafka fetched the backlog in
  // one go (one partition, a few kB), so the records after it are queued, not handled, when
  // the consumer closes. Stopping from the handler makes that order certain: the consumer
  // checks for stop after each handler, and closes on its own thread either way.
  constexpr std::size_t kHandledBeforeStop = 5;
  Collector<Message> first_run;
  std::promise<std::chrono::steady_clock::time_point> stop_requested;
  auto requested = stop_requested.get_future();
  std::chrono::steady_clock::time_point stopping;
  {
    cppfly::kafka::KafkaAdapter adapter(adapter_properties(servers));
    adapter.subscribe(
        topic,
        [first_run, &adapter, &stop_requested](const Message& message) {
          first_run.add(message);
          if (first_run.size() == kHandledBeforeStop) {
            const auto at = std::chrono::steady_clock::now();
            // before the fix: librdkafka aborts (rd_kafka_q_serve: assert: res != RD_KAFKA_OP_RES_PASS)
            adapter.stop();
            stop_requested.set_value(at);
          }
        },
        group);
    adapter.start();
    REQUIRE(requested.wait_for(kWait) == std::future_status::ready);
    stopping = requested.get();
  }  // ~KafkaAdapter waits for the consumer that stopped from its handler to commit and close
  CHECK(std::chrono::steady_clock::now() - stopping < 20s);
  const auto handled = static_cast<std::int64_t>(first_run.size());
  INFO("handled before stop: " << handled);
  CHECK(handled < kRecords);
  CHECK(committed_offset(servers, group, topic, 0) == handled);

  // The same group again: it resumes exactly after the last handled record.
  Collector<Message> second_run;
  cppfly::kafka::KafkaAdapter adapter(adapter_properties(servers));
  adapter.subscribe(topic, [second_run](const Message& message) { second_run.add(message); }, group);
  adapter.start();
  REQUIRE(second_run.wait_until([](const std::vector<Message>& messages) {
    return !messages.empty() && messages.back().offset == kRecords - 1;
  }));
  adapter.stop();
  const auto rest = second_run.items();
  REQUIRE_FALSE(rest.empty());
  CHECK(rest.front().offset == handled);
  CHECK(static_cast<std::int64_t>(rest.size()) == kRecords - handled);
}

TEST_CASE("kafka framework: a stop while a record waits for its retry commits the records finished past it and "
          "its attempts, and the restart runs only that record, its attempt count going on",
          "[kafka][real][progress]") {
  const auto servers = bootstrap_servers();
  const auto topic = unique_name("progress");
  const auto group = unique_name("progress-group");
  create_topic(servers, topic, 1);

  Collector<Message> first_run;
  ListenerRegistry registry;
  registry.add(make_listener(
      "progress",
      [first_run](const Message& message) {
        first_run.add(message);
        if (message.key == "A") throw std::runtime_error("A fails");
      },
      {.topic = topic, .group_id = group, .retries = 5, .retry_delay = 60s, .ordering = Ordering::key}));
  Application app(kafka_config(servers), registry);
  app.start();
  deliver(app.broker(), topic, "a", {.key = "A"});
  for (int i = 1; i < 10; ++i) deliver(app.broker(), topic, std::to_string(i), {.key = "B"});
  REQUIRE(first_run.wait_for_count(10));  // A's first attempt and the nine B records
  app.stop();  // A waits 60 s for its retry: dropped, not settled

  // Offset 0 (A) is the lowest unsettled one; 1-9 are completed past it; A made 1 attempt.
  CHECK(committed_offset(servers, group, topic, 0) == 0);
  CHECK(committed_metadata(servers, group, topic, 0) == "cf1;0;0:1;1.9");

  Collector<Message> second_run;
  ListenerRegistry again;
  again.add(make_listener("progress", [second_run](const Message& message) { second_run.add(message); },
                          {.topic = topic, .group_id = group, .retries = 5, .ordering = Ordering::key}));
  Application restarted(kafka_config(servers), again);
  restarted.start();
  const auto fresh = deliver(restarted.broker(), topic, "after-restart", {.key = "B"});
  REQUIRE(second_run.wait_for_count(2));
  restarted.stop();
  const auto seen = second_run.items();
  REQUIRE(seen.size() == 2);
  std::map<std::int64_t, int> attempt_of;
  for (const auto& m : seen) attempt_of[m.offset] = m.attempt;
  CHECK(attempt_of == std::map<std::int64_t, int>{{0, 2}, {fresh.offset, 1}});
  CHECK(committed_offset(servers, group, topic, 0) == fresh.offset + 1);
  CHECK(committed_metadata(servers, group, topic, 0).empty());
}

TEST_CASE("kafka framework: commit metadata another client wrote is ignored with a warning, and consumption starts at "
          "the committed offset",
          "[kafka][real][progress]") {
  const auto servers = bootstrap_servers();
  const auto topic = unique_name("foreign");
  const auto group = unique_name("foreign-group");
  create_topic(servers, topic, 1);
  {
    kafka::KafkaAdapter publisher(adapter_properties(servers));
    publisher.start();
    for (int i = 0; i < 5; ++i) deliver(publisher, topic, std::to_string(i));
    publisher.stop();
  }
  commit_offset(servers, group, topic, 0, 3, "{\"client\":\"someone else\",\"note\":\"cf1;3;;1.1\"}");

  Collector<Message> seen;
  ListenerRegistry registry;
  registry.add(make_listener("foreign", [seen](const Message& m) { seen.add(m); },
                             {.topic = topic, .group_id = group, .ordering = Ordering::key}));
  Application app(kafka_config(servers), registry);
  app.start();
  REQUIRE(seen.wait_for_count(2));
  app.stop();
  std::vector<std::int64_t> offsets;
  for (const auto& m : seen.items()) offsets.push_back(m.offset);
  CHECK(offsets == std::vector<std::int64_t>{3, 4});
  CHECK(committed_offset(servers, group, topic, 0) == 5);
}
