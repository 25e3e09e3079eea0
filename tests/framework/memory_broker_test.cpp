// InMemoryMessageBroker: the behaviours PyFly's own memory-broker tests assert, and a few more.
#include <catch2/catch.hpp>

#include <cppfly/messaging/in_memory_broker.hpp>

#include <atomic>
#include <thread>
#include <tuple>

using namespace cppfly::messaging;

namespace {

struct Inbox {
  std::vector<Message> messages;
  MessageHandler handler() {
    return [this](const Message& m) { messages.push_back(m); };
  }
};

}  // namespace

TEST_CASE("memory broker delivers a published message to a subscriber", "[memory]") {
  InMemoryMessageBroker broker;
  Inbox inbox;
  broker.subscribe("orders", inbox.handler());
  broker.start();
  broker.publish("orders", R"({"id":1})");
  REQUIRE(inbox.messages.size() == 1);
  CHECK(inbox.messages[0].topic == "orders");
  CHECK(inbox.messages[0].value == R"({"id":1})");
  CHECK_FALSE(inbox.messages[0].key.has_value());
}

TEST_CASE("memory broker keeps key and headers", "[memory]") {
  InMemoryMessageBroker broker;
  Inbox inbox;
  broker.subscribe("orders", inbox.handler());
  broker.start();
  broker.publish("orders", "v", {.key = "order-7", .headers = {{"trace", "abc"}, {"source", "test"}}});
  REQUIRE(inbox.messages.size() == 1);
  CHECK(inbox.messages[0].key == std::optional<std::string>("order-7"));
  CHECK(inbox.messages[0].headers.get("trace") == std::optional<std::string_view>("abc"));
  CHECK(inbox.messages[0].headers.get("source") == std::optional<std::string_view>("test"));
  CHECK(inbox.messages[0].headers.size() == 2);
}

TEST_CASE("memory broker gives every subscriber without a group every message", "[memory]") {
  InMemoryMessageBroker broker;
  Inbox a, b;
  broker.subscribe("orders", a.handler());
  broker.subscribe("orders", b.handler());
  broker.start();
  broker.publish("orders", "1");
  broker.publish("orders", "2");
  CHECK(a.messages.size() == 2);
  CHECK(b.messages.size() == 2);
}

TEST_CASE("memory broker does not deliver across topics", "[memory]") {
  InMemoryMessageBroker broker;
  Inbox orders, payments;
  broker.subscribe("orders", orders.handler());
  broker.subscribe("payments", payments.handler());
  broker.start();
  broker.publish("orders", "o");
  REQUIRE(orders.messages.size() == 1);
  CHECK(payments.messages.empty());
}

TEST_CASE("memory broker delivers each message once per group, every group its own copy", "[memory]") {
  InMemoryMessageBroker broker;
  Inbox a1, a2, b1;
  broker.subscribe("orders", a1.handler(), "group-a");
  broker.subscribe("orders", a2.handler(), "group-a");
  broker.subscribe("orders", b1.handler(), "group-b");
  broker.start();
  broker.publish("orders", "x");
  CHECK(a1.messages.size() + a2.messages.size() == 1);
  CHECK(b1.messages.size() == 1);
}

TEST_CASE("memory broker round-robins a group: 4 messages over 2 members is 2 and 2", "[memory]") {
  InMemoryMessageBroker broker;
  Inbox a, b;
  broker.subscribe("orders", a.handler(), "g");
  broker.subscribe("orders", b.handler(), "g");
  broker.start();
  for (int i = 0; i < 4; ++i) broker.publish("orders", std::to_string(i));
  REQUIRE(a.messages.size() == 2);
  REQUIRE(b.messages.size() == 2);
  CHECK(a.messages[0].value == "0");
  CHECK(b.messages[0].value == "1");
  CHECK(a.messages[1].value == "2");
}

TEST_CASE("memory broker refuses publish before start and after stop", "[memory]") {
  InMemoryMessageBroker broker;
  CHECK_THROWS_WITH(broker.publish("orders", "x"), Catch::Contains("before start()"));
  auto future = broker.publish_async("orders", "x");
  CHECK_THROWS_AS(future.get(), BrokerError);
  broker.start();
  CHECK_NOTHROW(broker.publish("orders", "x"));
  broker.stop();
  broker.stop();  // idempotent
  CHECK_THROWS_AS(broker.publish("orders", "x"), BrokerError);
}

TEST_CASE("memory broker lifecycle: start, stop, start again", "[memory]") {
  InMemoryMessageBroker broker;
  CHECK_FALSE(broker.running());
  broker.start();
  CHECK(broker.running());
  broker.stop();
  CHECK_FALSE(broker.running());
  broker.start();
  CHECK(broker.running());
}

TEST_CASE("memory broker accepts subscribe after start", "[memory]") {
  InMemoryMessageBroker broker;
  broker.start();
  broker.publish("orders", "before");
  Inbox inbox;
  broker.subscribe("orders", inbox.handler());
  broker.publish("orders", "after");
  REQUIRE(inbox.messages.size() == 1);
  CHECK(inbox.messages[0].value == "after");
}

TEST_CASE("memory broker records what was published, with offsets per topic", "[memory]") {
  InMemoryMessageBroker broker;
  broker.start();
  broker.publish("a", "1");
  broker.publish("b", "2");
  auto result = broker.publish_async("a", "3").get();
  CHECK(result.topic == "a");
  CHECK(result.offset == 1);
  auto all = broker.published();
  REQUIRE(all.size() == 3);
  CHECK(all[2].offset == 1);
  auto a = broker.published("a");
  REQUIRE(a.size() == 2);
  CHECK(a[0].value == "1");
  CHECK(a[1].value == "3");
  broker.clear_published();
  CHECK(broker.published().empty());
}

TEST_CASE("memory broker lets a handler's exception out of publish after every subscriber ran", "[memory]") {
  InMemoryMessageBroker broker;
  Inbox after;
  broker.subscribe("orders", [](const Message&) { throw std::runtime_error("boom"); });
  broker.subscribe("orders", after.handler());
  broker.start();
  CHECK_THROWS_WITH(broker.publish("orders", "x"), "boom");
  CHECK(after.messages.size() == 1);
  CHECK_THROWS_WITH(broker.publish_async("orders", "y").get(), "boom");
}

TEST_CASE("memory broker is safe to publish from many threads", "[memory]") {
  InMemoryMessageBroker broker({.record_published = true});
  std::atomic<int> grouped{0}, broadcast{0};
  broker.subscribe("t", [&](const Message&) { ++grouped; }, "g");
  broker.subscribe("t", [&](const Message&) { ++grouped; }, "g");
  broker.subscribe("t", [&](const Message&) { ++broadcast; });
  broker.start();
  constexpr int threads = 4, each = 2000;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i = 0; i < each; ++i) broker.publish("t", "m");
    });
  }
  // A subscriber added while others publish sees only later messages and breaks nothing.
  std::atomic<int> late{0};
  broker.subscribe("t", [&](const Message&) { ++late; }, "late");
  for (auto& th : pool) th.join();
  CHECK(grouped == threads * each);
  CHECK(broadcast == threads * each);
  CHECK(late <= threads * each);
  auto record = broker.published("t");
  REQUIRE(record.size() == threads * each);
  std::vector<bool> seen(threads * each, false);
  for (const auto& m : record) seen.at(static_cast<std::size_t>(m.offset)) = true;
  CHECK(std::all_of(seen.begin(), seen.end(), [](bool b) { return b; }));
}

TEST_CASE("memory broker handlers may publish and subscribe from inside a handler", "[memory]") {
  InMemoryMessageBroker broker;
  Inbox shipped;
  broker.subscribe("shipments", shipped.handler());
  broker.subscribe("orders", [&](const Message& m) {
    broker.publish("shipments", "ship " + m.value);
    broker.subscribe("audit", [](const Message&) {});
  });
  broker.start();
  broker.publish("orders", "7");
  REQUIRE(shipped.messages.size() == 1);
  CHECK(shipped.messages[0].value == "ship 7");
}

TEST_CASE("memory broker stop() waits for a handler running on another thread", "[memory]") {
  InMemoryMessageBroker broker;
  std::promise<void> entered, release;
  auto released = release.get_future().share();
  std::mutex order_mutex;
  std::vector<std::string> order;
  auto note = [&](const char* event) {
    std::lock_guard lock(order_mutex);
    order.emplace_back(event);
  };
  broker.subscribe("t", [&](const Message&) {
    entered.set_value();
    REQUIRE(released.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    note("handler finished");
  });
  broker.start();
  std::thread publisher([&] { broker.publish("t", "x"); });
  REQUIRE(entered.get_future().wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  std::thread stopper([&] {
    broker.stop();
    note("stop returned");
  });
  // Release the handler once stop() has begun (publishing is refused from then on).
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
       broker.running() && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::yield();
  }
  CHECK_FALSE(broker.running());
  CHECK_THROWS_AS(broker.publish("t", "late"), BrokerError);
  release.set_value();
  publisher.join();
  stopper.join();
  CHECK(order == std::vector<std::string>{"handler finished", "stop returned"});
}

TEST_CASE("memory broker stop() from inside a handler does not wait for itself", "[memory]") {
  InMemoryMessageBroker broker;
  broker.subscribe("t", [&](const Message&) { broker.stop(); });
  broker.start();
  broker.publish("t", "x");
  CHECK_FALSE(broker.running());
}

TEST_CASE("memory broker: publish returns the place, the callback form reports once, flush is true", "[memory]") {
  InMemoryMessageBroker broker;
  int handled = 0;
  broker.subscribe("orders", [&](const Message& m) {
    ++handled;
    if (m.value == "bad") throw std::runtime_error("handler refused it");
  });
  broker.start();
  const DeliveryResult first = broker.publish("orders", "a");
  CHECK(first.topic == "orders");
  CHECK(first.partition == 0);
  CHECK(first.offset == 0);

  std::vector<std::tuple<std::string, std::int64_t, std::string>> reports;  // topic, offset, error
  const auto record = [&](const DeliveryReport& r) {
    reports.emplace_back(std::string(r.topic), r.offset, r.ok() ? std::string() : std::string(r.error->what()));
  };
  broker.publish_async("orders", "b", {}, record);
  broker.publish_async("orders", "bad", {}, record);
  broker.publish_async("orders", "c", {}, [&](const DeliveryReport& r) {
    record(r);
    throw std::runtime_error("a throwing callback is logged");
  });
  CHECK(broker.flush(std::chrono::milliseconds(0)));
  REQUIRE(reports.size() == 3);
  CHECK(reports[0] == std::make_tuple(std::string("orders"), std::int64_t{1}, std::string()));
  CHECK(reports[1] == std::make_tuple(std::string("orders"), std::int64_t{2}, std::string("handler refused it")));
  CHECK(reports[2] == std::make_tuple(std::string("orders"), std::int64_t{3}, std::string()));
  CHECK(handled == 4);
  broker.stop();

  std::string refused;
  broker.publish_async("orders", "late", {}, [&](const DeliveryReport& r) { refused = r.error->what(); });
  CHECK(refused.find("before start()") != std::string::npos);
}

TEST_CASE("memory broker: a transaction delivers what it published when it returns, nothing when it throws",
          "[memory][transactions]") {
  InMemoryMessageBroker broker;
  std::vector<std::string> seen;
  broker.subscribe("ledger", [&](const Message& m) { seen.push_back(m.value); });
  CHECK_THROWS_WITH(broker.transaction([](TransactionalPublisher&) {}), Catch::Contains("before start()"));
  broker.start();
  broker.transaction([&](TransactionalPublisher& tx) {
    tx.publish("ledger", "debit");
    CHECK(tx.flush(std::chrono::milliseconds(0)));
    CHECK(seen.empty());  // held until the commit
    tx.publish("ledger", "credit", {.key = "acct-1"});
  });
  CHECK(seen == std::vector<std::string>{"debit", "credit"});
  CHECK_THROWS_WITH(broker.transaction([&](TransactionalPublisher& tx) {
                      tx.publish("ledger", "half");
                      throw std::runtime_error("abort it");
                    }),
                    "abort it");
  CHECK(seen == std::vector<std::string>{"debit", "credit"});
  CHECK(broker.published("ledger").size() == 2);
  broker.stop();
}

TEST_CASE("memory broker keeps at most max_published records, the newest", "[memory]") {
  InMemoryMessageBroker broker({.max_published = 3});
  broker.start();
  for (int i = 0; i < 5; ++i) broker.publish("t", std::to_string(i));
  const auto kept = broker.published();
  REQUIRE(kept.size() == 3);
  CHECK(kept.front().value == "2");
  CHECK(kept.back().value == "4");
}
