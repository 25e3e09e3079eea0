#include "scenarios.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <span>

#include <cppfly/messaging/batch_failure.hpp>

#include <catch2/catch.hpp>

namespace cppfly::kafka::test {
namespace {

using messaging::Headers;
using messaging::PublishOptions;

std::vector<std::string> sorted(std::vector<std::string> values) {
  std::sort(values.begin(), values.end());
  return values;
}

std::vector<std::string> numbered(const std::string& prefix, int count) {
  std::vector<std::string> values;
  for (int i = 0; i < count; ++i) values.push_back(std::string(prefix).append(std::to_string(i)));
  return values;
}

void publish_all(KafkaAdapter& adapter, const std::string& topic, const std::vector<std::string>& values) {
  for (const auto& value : values) adapter.publish(topic, value, PublishOptions{.key = "key-" + value});
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void round_trip_scenario(TestCluster& cluster) {
  const auto topic = unique_name("round-trip");
  cluster.create_topic(topic, 3);
  Inbox inbox;
  KafkaAdapter adapter(cluster.properties());
  adapter.subscribe(topic, inbox.handler(), unique_name("group"));
  adapter.start();

  const Headers headers{{"content-type", "application/json"}, {"trace", "abc"}, {"trace", "def"}};
  const auto before = now_ms();
  adapter.publish(topic, R"({"id":1})", PublishOptions{.key = "order-1", .headers = headers, .partition = 1});
  const std::string binary("bin\0ary\xff", 8);
  adapter.publish(topic, binary, PublishOptions{.partition = 1});
  const auto after = now_ms();

  INFO("received so far: " << inbox.size());
  REQUIRE(inbox.wait_for_count(2));
  const auto messages = inbox.messages();
  REQUIRE(messages.size() == 2);

  const auto& first = messages[0];
  CHECK(first.topic == topic);
  CHECK(first.value == R"({"id":1})");
  REQUIRE(first.key.has_value());
  CHECK(*first.key == "order-1");
  CHECK(first.headers == headers);
  CHECK(first.headers.get("trace") == std::optional<std::string_view>("def"));
  CHECK(first.partition == 1);
  CHECK(first.offset == 0);
  CHECK(first.timestamp_ms >= before - 1000);
  CHECK(first.timestamp_ms <= after + 1000);

  const auto& second = messages[1];
  CHECK(second.value == binary);
  CHECK_FALSE(second.key.has_value());
  CHECK(second.headers.empty());
  CHECK(second.partition == 1);
  CHECK(second.offset == 1);
  adapter.stop();
}

void two_groups_scenario(TestCluster& cluster) {
  const auto topic = unique_name("two-groups");
  cluster.create_topic(topic, 3);
  Inbox billing;
  Inbox shipping;
  KafkaAdapter adapter(cluster.properties());
  adapter.subscribe(topic, billing.handler(), unique_name("billing"));
  adapter.subscribe(topic, shipping.handler(), unique_name("shipping"));
  adapter.start();

  const auto values = numbered("order-", 30);
  publish_all(adapter, topic, values);
  const auto sentinels = publish_sentinels(adapter, topic, "end", 3);

  REQUIRE(billing.wait_for_values(sentinels));
  REQUIRE(shipping.wait_for_values(sentinels));
  CHECK(sorted(payloads(billing)) == sorted(values));
  CHECK(sorted(payloads(shipping)) == sorted(values));
  adapter.stop();
}

void group_split_scenario(TestCluster& cluster) {
  const auto topic = unique_name("split");
  constexpr int kPartitions = 4;
  cluster.create_topic(topic, kPartitions);
  const auto group = unique_name("workers");

  Inbox first;
  Inbox second;
  Inbox both;
  auto tee = [&both](const Inbox& own) {
    return [mine = own.handler(), all = both.handler()](const messaging::Message& message) {
      mine(message);
      all(message);
    };
  };
  KafkaAdapter publisher(cluster.properties());
  KafkaAdapter member_a(cluster.properties());
  KafkaAdapter member_b(cluster.properties());
  member_a.subscribe(topic, tee(first), group);
  member_b.subscribe(topic, tee(second), group);
  publisher.start();
  member_a.start();
  member_b.start();

  // Until the group has settled with both members, one member may get everything: publish
  // a record to every partition each round until both have received something.
  std::vector<std::string> published;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  int round = 0;
  while (first.size() == 0 || second.size() == 0) {
    INFO("first " << first.size() << ", second " << second.size() << " after " << round << " rounds");
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    for (int p = 0; p < kPartitions; ++p) {
      const auto value = "warmup-" + std::to_string(round) + "-" + std::to_string(p);
      publisher.publish(topic, value, PublishOptions{.partition = p});
      published.push_back(value);
    }
    ++round;
    (void)both.wait_for_count(published.size(), 2s);
  }

  const auto first_before = first.size();
  const auto second_before = second.size();
  for (int i = 0; i < 40; ++i) {
    const auto value = "work-" + std::to_string(i);
    publisher.publish(topic, value, PublishOptions{.partition = i % kPartitions});
    published.push_back(value);
  }
  const auto sentinels = publish_sentinels(publisher, topic, "end", kPartitions);
  REQUIRE(both.wait_for_values(sentinels));

  const auto received = sorted(payloads(both));
  if (cluster.commits_during_rebalance()) {
    // Together: every record exactly once, across the rebalances too.
    CHECK(received == sorted(published));
  } else {
    // Nothing lost; a record may come twice around a rebalance (see commits_during_rebalance()).
    std::vector<std::string> distinct = received;
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    CHECK(distinct == sorted(published));
  }
  // Split: after settling, the members own disjoint partitions that cover the topic.
  std::set<std::int32_t> owned_a;
  std::set<std::int32_t> owned_b;
  const auto a = first.messages();
  const auto b = second.messages();
  for (std::size_t i = first_before; i < a.size(); ++i) owned_a.insert(a[i].partition);
  for (std::size_t i = second_before; i < b.size(); ++i) owned_b.insert(b[i].partition);
  INFO("member a owns " << owned_a.size() << " partitions, member b " << owned_b.size());
  CHECK_FALSE(owned_a.empty());
  CHECK_FALSE(owned_b.empty());
  std::vector<std::int32_t> common;
  std::set_intersection(owned_a.begin(), owned_a.end(), owned_b.begin(), owned_b.end(), std::back_inserter(common));
  CHECK(common.empty());
  CHECK(owned_a.size() + owned_b.size() == static_cast<std::size_t>(kPartitions));

  member_a.stop();
  member_b.stop();
  publisher.stop();
}

void subscribe_after_start_scenario(TestCluster& cluster) {
  const auto topic = unique_name("late");
  cluster.create_topic(topic, 3);
  KafkaAdapter adapter(cluster.properties());
  adapter.start();
  adapter.publish(topic, "early");

  Inbox group_inbox;
  Inbox broadcast_inbox;
  adapter.subscribe(topic, group_inbox.handler(), unique_name("late-group"));
  adapter.subscribe(topic, broadcast_inbox.handler());
  adapter.publish(topic, "late");
  const auto sentinels = publish_sentinels(adapter, topic, "end", 3);

  REQUIRE(group_inbox.wait_for_values(sentinels));
  REQUIRE(broadcast_inbox.wait_for_values(sentinels));
  // A new group starts at auto-offset-reset (earliest): the topic's whole content.
  CHECK(sorted(payloads(group_inbox)) == std::vector<std::string>{"early", "late"});
  // A broadcast subscription sees what was published after subscribe() returned.
  CHECK(payloads(broadcast_inbox) == std::vector<std::string>{"late"});
  adapter.stop();
}

void stop_restart_scenario(TestCluster& cluster) {
  const auto topic = unique_name("restart");
  cluster.create_topic(topic, 3);
  const auto group = unique_name("restart-group");
  KafkaAdapter publisher(cluster.properties());
  publisher.start();

  Inbox before_stop;
  const auto first_batch = numbered("first-", 20);
  {
    KafkaAdapter consumer(cluster.properties());
    consumer.subscribe(topic, before_stop.handler(), group);
    consumer.start();
    publish_all(publisher, topic, first_batch);
    REQUIRE(before_stop.wait_for_count(first_batch.size()));
    consumer.stop();
  }
  CHECK(sorted(before_stop.values()) == sorted(first_batch));

  const auto second_batch = numbered("second-", 20);
  publish_all(publisher, topic, second_batch);

  Inbox after_restart;
  KafkaAdapter consumer(cluster.properties());
  consumer.subscribe(topic, after_restart.handler(), group);
  consumer.start();
  const auto sentinels = publish_sentinels(publisher, topic, "end", 3);
  REQUIRE(after_restart.wait_for_values(sentinels));
  // Nothing lost (all of the second batch), nothing redelivered (none of the first).
  CHECK(sorted(payloads(after_restart)) == sorted(second_batch));
  CHECK(before_stop.size() == first_batch.size());
  consumer.stop();
  publisher.stop();
}

void faulting_handler_scenario(TestCluster& cluster) {
  const auto topic = unique_name("faulty");
  cluster.create_topic(topic, 3);
  const auto group = unique_name("faulty-group");
  KafkaAdapter publisher(cluster.properties());
  publisher.start();

  Inbox inbox;
  {
    KafkaAdapter consumer(cluster.properties());
    consumer.subscribe(topic,
                       inbox.handler([](const messaging::Message& message) {
                         if (message.value == "boom") throw std::runtime_error("handler failed on purpose");
                         if (message.value == "weird") throw 42;  // not a std::exception
                       }),
                       group);
    consumer.start();
    for (const auto* value : {"boom", "ok-1", "weird", "ok-2"}) {
      publisher.publish(topic, value, PublishOptions{.partition = 0});
    }
    REQUIRE(inbox.wait_for_values({"ok-1", "ok-2"}));
    CHECK(inbox.values() == std::vector<std::string>{"boom", "ok-1", "weird", "ok-2"});
    consumer.stop();
  }

  // The failed records count as handled: a new member of the group does not get them again.
  Inbox later;
  KafkaAdapter consumer(cluster.properties());
  consumer.subscribe(topic, later.handler(), group);
  consumer.start();
  const auto sentinels = publish_sentinels(publisher, topic, "end", 3);
  REQUIRE(later.wait_for_values(sentinels));
  CHECK(payloads(later).empty());
  consumer.stop();
  publisher.stop();
}

void broadcast_scenario(TestCluster& cluster) {
  const auto topic = unique_name("broadcast");
  cluster.create_topic(topic, 3);
  KafkaAdapter publisher(cluster.properties());
  publisher.start();
  publisher.publish(topic, "before-anyone-listened");

  Inbox first;
  Inbox second;
  KafkaAdapter a(cluster.properties());
  KafkaAdapter b(cluster.properties());
  a.subscribe(topic, first.handler());
  b.subscribe(topic, second.handler());
  a.start();  // subscriptions made before start() begin at start()
  b.start();

  const auto values = numbered("news-", 15);
  publish_all(publisher, topic, values);
  const auto sentinels = publish_sentinels(publisher, topic, "end", 3);
  REQUIRE(first.wait_for_values(sentinels));
  REQUIRE(second.wait_for_values(sentinels));
  CHECK(sorted(payloads(first)) == sorted(values));
  CHECK(sorted(payloads(second)) == sorted(values));
  a.stop();
  b.stop();
  publisher.stop();
}

}  // namespace cppfly::kafka::test

namespace cppfly::kafka::test {

void delivery_forms_scenario(TestCluster& cluster) {
  const auto topic = unique_name("delivery-forms");
  cluster.create_topic(topic, 2);
  Inbox inbox;
  KafkaAdapter adapter(cluster.properties());
  adapter.subscribe(topic, inbox.handler(), unique_name("group"));
  adapter.start();

  // publish() returns where the record landed.
  const auto first = adapter.publish(topic, "sync-0", PublishOptions{.partition = 0});
  CHECK(first.topic == topic);
  CHECK(first.partition == 0);
  CHECK(first.offset == 0);

  // The callback form: each callback runs exactly once, with the record's place.
  constexpr int kRecords = 500;
  struct Reports {
    std::mutex mutex;
    std::map<std::string, std::vector<std::pair<std::int32_t, std::int64_t>>> by_value;
    int errors{0};
  };
  auto reports = std::make_shared<Reports>();
  for (int i = 0; i < kRecords; ++i) {
    const std::string value = "cb-" + std::to_string(i);
    adapter.publish_async(topic, value, PublishOptions{.partition = i % 2},
                          [reports, value, i](const messaging::DeliveryReport& report) {
                            const std::lock_guard lock(reports->mutex);
                            if (!report.ok()) ++reports->errors;
                            reports->by_value[value].emplace_back(report.partition, report.offset);
                            if (i == 7) throw std::runtime_error("a callback that throws is logged, not fatal");
                          });
  }
  // flush: every report has run when it returns true.
  REQUIRE(adapter.flush(kWait));
  {
    const std::lock_guard lock(reports->mutex);
    CHECK(reports->errors == 0);
    REQUIRE(reports->by_value.size() == kRecords);
    for (const auto& [value, places] : reports->by_value) {
      INFO(value);
      CHECK(places.size() == 1);
    }
  }
  // The future form beside it.
  auto future = adapter.publish_async(topic, "future-0", PublishOptions{.partition = 1});
  REQUIRE(future.wait_for(kWait) == std::future_status::ready);
  const auto placed = future.get();
  CHECK(placed.partition == 1);

  // What the consumer saw is where the reports said each record went.
  REQUIRE(inbox.wait_for_count(kRecords + 2));
  const std::lock_guard lock(reports->mutex);
  for (const auto& message : inbox.messages()) {
    if (!message.value.starts_with("cb-")) continue;
    INFO(message.value);
    const auto& places = reports->by_value.at(message.value);
    REQUIRE(places.size() == 1);
    CHECK(places[0] == std::make_pair(message.partition, message.offset));
  }
  adapter.stop();
  CHECK(adapter.flush(1s));  // stopped: nothing is queued
}

}  // namespace cppfly::kafka::test

namespace cppfly::kafka::test {

void transactions_scenario(TestCluster& cluster) {
  const auto topic = unique_name("transactions");
  cluster.create_topic(topic, 2);
  auto properties = cluster.properties();
  properties.transactional_id_prefix = unique_name("tx") + "-";
  Inbox committed;  // read_committed (the adapter's setting)
  Inbox everything;
  auto uncommitted = cluster.properties();
  uncommitted.consumer_properties["isolation.level"] = "read_uncommitted";
  KafkaAdapter adapter(properties);
  KafkaAdapter reader(uncommitted);
  adapter.subscribe(topic, committed.handler(), unique_name("committed"));
  reader.subscribe(topic, everything.handler(), unique_name("uncommitted"));
  adapter.start();
  reader.start();

  adapter.transaction([&](messaging::TransactionalPublisher& tx) {
    for (int i = 0; i < 3; ++i) tx.publish(topic, "committed-" + std::to_string(i), {.partition = i % 2});
  });
  CHECK_THROWS_WITH(adapter.transaction([&](messaging::TransactionalPublisher& tx) {
                      for (int i = 0; i < 3; ++i) tx.publish(topic, "aborted-" + std::to_string(i), {.partition = i % 2});
                      REQUIRE(tx.flush(kWait));  // on the broker, uncommitted
                      tx.publish(topic, "aborted-late", {.partition = 0});  // still queued: purged by the abort
                      throw std::runtime_error("the body failed");
                    }),
                    "the body failed");
  adapter.transaction([&](messaging::TransactionalPublisher& tx) {
    tx.publish(topic, "end-0", {.partition = 0});
    tx.publish(topic, "end-1", {.partition = 1});
  });

  // The uncommitted reader proves the aborted records were written; the listener never gets them.
  REQUIRE(everything.wait_for_values({"aborted-0", "aborted-1", "aborted-2", "end-0", "end-1"}));
  REQUIRE(committed.wait_for_values({"end-0", "end-1"}));
  std::multiset<std::string> seen;
  for (const auto& value : committed.values()) {
    if (cluster.filters_aborted_transactions() || !value.starts_with("aborted-")) seen.insert(value);
  }
  CHECK(seen == std::multiset<std::string>{"committed-0", "committed-1", "committed-2", "end-0", "end-1"});
  reader.stop();
  adapter.stop();
  CHECK_THROWS_WITH(adapter.transaction([](messaging::TransactionalPublisher&) {}), Catch::Contains("not started"));
}

}  // namespace cppfly::kafka::test

namespace cppfly::kafka::test {
namespace {

/// Polls until `done(records so far)` holds or kWait passes.
std::vector<Message> poll_until(PullConsumer& consumer, const std::function<bool(const std::vector<Message>&)>& done) {
  std::vector<Message> records;
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (!done(records) && std::chrono::steady_clock::now() < deadline) {
    for (auto& record : consumer.poll(200ms)) records.push_back(std::move(record));
  }
  return records;
}

bool has_value(const std::vector<Message>& records, const std::string& value) {
  return std::any_of(records.begin(), records.end(), [&](const Message& m) { return m.value == value; });
}

}  // namespace

void pull_consumer_scenario(TestCluster& cluster) {
  const auto topic = unique_name("pull");
  const auto group = unique_name("pull-group");
  cluster.create_topic(topic, 2);
  KafkaAdapter producer(cluster.properties());
  producer.start();
  for (int i = 0; i < 20; ++i) {
    producer.publish(topic, std::string("first-").append(std::to_string(i)),
                     {.key = std::string("k").append(std::to_string(i)), .partition = i % 2});
  }
  {
    PullConsumer consumer(cluster.properties(), group, {topic});
    auto records = poll_until(consumer, [](const auto& r) { return r.size() >= 20; });
    REQUIRE(records.size() == 20);
    std::set<std::string> values;
    for (const auto& record : records) {
      values.insert(record.value);
      CHECK(record.topic == topic);
      CHECK(record.key == std::optional<std::string>("k" + record.value.substr(6)));
    }
    CHECK(values.size() == 20);
    CHECK(consumer.assignment().size() == 2);
    consumer.commit();

    // seek: partition 0 again from its start.
    consumer.seek(topic, 0, 0);
    const auto again = poll_until(consumer, [](const auto& r) { return r.size() >= 10; });
    REQUIRE(again.size() == 10);
    CHECK(again.front().partition == 0);
    CHECK(again.front().offset == 0);

    // pause: nothing of partition 1 until resume.
    consumer.pause(topic, 1);
    producer.publish(topic, "paused-1", {.partition = 1});
    producer.publish(topic, "open-0", {.partition = 0});
    const auto while_paused = poll_until(consumer, [](const auto& r) { return has_value(r, "open-0"); });
    CHECK(has_value(while_paused, "open-0"));
    CHECK_FALSE(has_value(while_paused, "paused-1"));
    consumer.resume(topic, 1);
    CHECK(has_value(poll_until(consumer, [](const auto& r) { return has_value(r, "paused-1"); }), "paused-1"));
    consumer.commit();
  }
  // A new member of the group starts where the commit left off.
  producer.publish(topic, "second-0", {.partition = 0});
  producer.publish(topic, "second-1", {.partition = 1});
  PullConsumer next(cluster.properties(), group, {topic});
  const auto rest = poll_until(next, [](const auto& r) { return has_value(r, "second-0") && has_value(r, "second-1"); });
  std::multiset<std::string> values;
  for (const auto& record : rest) values.insert(record.value);
  CHECK(values == std::multiset<std::string>{"second-0", "second-1"});
  next.close();
  CHECK_THROWS_AS(next.poll(10ms), messaging::BrokerError);
  producer.stop();
}

void batch_listener_scenario(TestCluster& cluster) {
  const auto topic = unique_name("batch");
  const auto dead_letter_topic = unique_name("batch-dlq");
  cluster.create_topic(topic, 1);
  cluster.create_topic(dead_letter_topic, 1);
  const auto group = unique_name("batch-group");
  KafkaAdapter publisher(cluster.properties());
  publisher.start();
  const auto values = numbered("r-", 20);
  for (const auto& value : values) publisher.publish(topic, value, PublishOptions{.partition = 0});

  std::mutex mutex;
  std::vector<std::vector<std::string>> calls;
  Inbox handled;  // each record the listener finished with
  const auto record_handled = handled.handler();
  {
    KafkaAdapter consumer(cluster.properties());
    // Set field by field: a braced Subscription this size trips GCC 12's -Wmaybe-uninitialized at -O3.
    messaging::Subscription subscription;
    subscription.topic = topic;
    subscription.group = group;
    subscription.container.failure.retry = {.retries = 2, .delay = std::chrono::milliseconds(10)};
    subscription.container.failure.dead_letter_topic = dead_letter_topic;
    subscription.container.failure.listener_name = "batch";
    subscription.container.failure.group = group;
    subscription.container.batch_max_records = 20;
    subscription.container.batch_max_wait = kWait;  // all 20 were published first: one batch of 20
    subscription.batch_handler = [&](std::span<const Message> batch) {
      std::vector<std::string> seen;
      for (const auto& m : batch) seen.push_back(m.value);
      {
        const std::lock_guard lock(mutex);
        calls.push_back(seen);
      }
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (batch[i].value == "r-7") throw messaging::BatchFailure(i, "r-7 fails every time");
        record_handled(batch[i]);
      }
    };
    consumer.subscribe(std::move(subscription));
    consumer.start();
    REQUIRE(handled.wait_for_count(19));
    consumer.stop();
  }
  auto expected = values;
  expected.erase(expected.begin() + 7);
  CHECK(handled.values() == expected);  // each once, in offset order
  {
    const std::lock_guard lock(mutex);
    REQUIRE(calls.size() == 4);  // the batch, two retries from r-7, then the records after it
    CHECK(calls[0] == values);
    CHECK(calls[1] == std::vector<std::string>(values.begin() + 7, values.end()));
    CHECK(calls[2] == calls[1]);
    CHECK(calls[3] == std::vector<std::string>(values.begin() + 8, values.end()));
  }

  // The dead-letter topic holds r-7 alone (a sentinel published after it closes the read).
  Inbox dead;
  KafkaAdapter reader(cluster.properties());
  reader.subscribe(dead_letter_topic, dead.handler(), unique_name("batch-dlq-reader"));
  reader.start();
  publisher.publish(dead_letter_topic, "end", PublishOptions{.partition = 0});
  REQUIRE(dead.wait_for_values({"end"}));
  const auto dead_letters = dead.messages();
  REQUIRE(dead_letters.size() == 2);
  CHECK(dead_letters[0].value == "r-7");
  CHECK(dead_letters[0].headers.get("x-retry-count") == std::optional<std::string_view>("2"));
  CHECK(dead_letters[0].headers.get("x-original-offset") == std::optional<std::string_view>("7"));
  CHECK(dead_letters[0].headers.get("x-original-group") == std::optional<std::string_view>(group));
  reader.stop();

  // Every record was settled and committed: the group's next member gets only what comes after.
  Inbox after_restart;
  KafkaAdapter consumer(cluster.properties());
  consumer.subscribe(topic, after_restart.handler(), group);
  consumer.start();
  const auto sentinels = publish_sentinels(publisher, topic, "batch-end", 1);
  REQUIRE(after_restart.wait_for_values(sentinels));
  CHECK(payloads(after_restart).empty());
  consumer.stop();
  publisher.stop();
}

}  // namespace cppfly::kafka::test
