// Listeners declared with the macros (free functions, member functions, services, hooks), end to end
// through Application on the in-memory broker.
#include <catch2/catch.hpp>

#include <cppfly/messaging.hpp>

using namespace cppfly;
using namespace cppfly::messaging;
using namespace std::chrono_literals;

namespace {

struct Order {
  std::string id;
  int quantity{};
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(Order, id, quantity)
};

struct Seen {
  std::vector<std::string> events;
  static Seen& get() {
    static Seen seen;
    return seen;
  }
};

void note(std::string event) { Seen::get().events.push_back(std::move(event)); }

}  // namespace

CPPFLY_MESSAGE_LISTENER(on_order_typed, (const Order& order), {.topic = "macro.orders", .group_id = "typed"}) {
  note("typed " + order.id + " x" + std::to_string(order.quantity));
}

CPPFLY_MESSAGE_LISTENER(on_order_json, (const nlohmann::json& order), {.topic = "macro.orders", .group_id = "json"}) {
  note("json " + order.at("id").get<std::string>());
}

CPPFLY_MESSAGE_LISTENER(on_order_raw, (const Message& message),
                        {.topics = {"macro.orders", "macro.returns"}, .group_id = "raw"}) {
  note("raw " + message.topic + " key=" + message.key.value_or("-"));
}

CPPFLY_MESSAGE_LISTENER(on_order_with_meta, (const Order& order, const Message& message),
                        {.topic = "macro.orders", .group_id = "meta"}) {
  note("meta " + order.id + " trace=" + std::string(message.headers.get("trace").value_or("-")));
}

CPPFLY_MESSAGE_LISTENER(on_payment, (const Order& order),
                        {.topic = "macro.payments", .group_id = "payments", .retries = 2, .retry_delay = 0ms,
                         .dead_letter_topic = "macro.payments-dlq"}) {
  note("payment attempt " + order.id);
  if (order.quantity > 10) throw std::invalid_argument("quantity over limit");
}

namespace {

/// A user-owned service: the test binds an instance.
class Billing {
 public:
  void on_order(const Order& order) { billed.push_back(order.id); }
  /// A batch listener: the inline memory broker hands it each record as a batch of one.
  void on_orders(const std::vector<Order>& orders) {
    for (const auto& order : orders) batched.push_back(order.id + "/" + std::to_string(orders.size()));
  }
  std::vector<std::string> billed;
  std::vector<std::string> batched;
};

/// An application-owned service: CPPFLY_SERVICE makes the application construct it.
class Shipping {
 public:
  void on_order(const Message& message) const { note("shipping " + message.value.substr(0, 9)); }
};

}  // namespace

CPPFLY_MEMBER_LISTENER(Billing, on_order, {.topic = "macro.orders", .group_id = "billing"});
CPPFLY_MEMBER_LISTENER(Billing, on_orders, {.topic = "macro.batch", .group_id = "billing", .batch_max_records = 50});
CPPFLY_MEMBER_LISTENER(Shipping, on_order, {.topic = "macro.orders", .group_id = "shipping"});
CPPFLY_SERVICE(Shipping);

CPPFLY_AFTER_START(announce) { note("started with " + std::string(app.running() ? "running" : "not running")); }
CPPFLY_BEFORE_STOP(farewell) {
  note("stopping");
  app.broker().publish("macro.returns", "last", {.key = "bye"});
}

TEST_CASE("the macros register every listener, service and hook in the global registry", "[macros]") {
  const auto& registry = ListenerRegistry::global();
  CHECK(registry.problems().empty());
  CHECK(registry.listeners().size() == 8);
  CHECK(registry.services().size() == 1);
  CHECK(registry.hooks().size() == 2);
  auto lines = registry.describe();
  auto has = [&](const std::string& text) {
    return std::any_of(lines.begin(), lines.end(), [&](const auto& l) { return l.find(text) != std::string::npos; });
  };
  CHECK(has("on_order_raw topics=[macro.orders,macro.returns] group=raw"));
  CHECK(has("Billing::on_order topics=[macro.orders] group=billing"));
  CHECK(has("on_payment topics=[macro.payments] group=payments retries=2 retry_delay=0ms dead_letter=macro.payments-dlq"));
  CHECK(has("listener_macro_test.cpp:"));
  CHECK(has("Billing::on_orders topics=[macro.batch] group=billing retries=0 retry_delay=1000ms dead_letter=- "
            "concurrency=1 ordering=partition batch_max_records=50 batch_max_wait=0ms"));
  auto billing = std::find_if(registry.listeners().begin(), registry.listeners().end(),
                              [](const auto& l) { return l.name == "Billing::on_order"; });
  REQUIRE(billing != registry.listeners().end());
  CHECK(billing->owner_name == "(anonymous namespace)::Billing");
}

TEST_CASE("a member listener without an instance is refused at start with what to do", "[macros]") {
  Application app(config::Config::from_string("pyfly: {messaging: {provider: memory}}"));
  CHECK_THROWS_WITH(app.start(), Catch::Contains("Billing::on_order") && Catch::Contains("app.bind(instance)"));
}

TEST_CASE("macro listeners run end to end through Application", "[macros]") {
  Seen::get().events.clear();
  Billing billing;
  {
    Application app(config::Config::from_string("pyfly: {messaging: {provider: memory}}"));
    app.bind(billing);
    app.start();
    auto& broker = dynamic_cast<InMemoryMessageBroker&>(app.broker());
    broker.publish("macro.orders", R"({"id":"A-1","quantity":3})", {.key = "A-1", .headers = {{"trace", "t9"}}});
    broker.publish("macro.payments", R"({"id":"P-1","quantity":50})");
    broker.publish("macro.payments", R"({"id":"P-2","quantity":1})");
    broker.publish("macro.batch", R"({"id":"B-1","quantity":1})");
    broker.publish("macro.batch", R"({"id":"B-2","quantity":2})");
    app.stop();

    auto dlq = broker.published("macro.payments-dlq");
    REQUIRE(dlq.size() == 1);
    CHECK(dlq[0].value == R"({"id":"P-1","quantity":50})");
    CHECK(dlq[0].headers.get("x-exception") == std::optional<std::string_view>("std::invalid_argument"));
    CHECK(dlq[0].headers.get("x-exception-message") == std::optional<std::string_view>("quantity over limit"));
    CHECK(dlq[0].headers.get("x-retry-count") == std::optional<std::string_view>("2"));
  }
  CHECK(billing.billed == std::vector<std::string>{"A-1"});
  CHECK(billing.batched == std::vector<std::string>{"B-1/1", "B-2/1"});
  const auto& e = Seen::get().events;
  std::vector<std::string> expected{"started with running",
                                    "typed A-1 x3",
                                    "json A-1",
                                    "raw macro.orders key=A-1",
                                    "meta A-1 trace=t9",
                                    "shipping {\"id\":\"A-",
                                    "payment attempt P-1",
                                    "payment attempt P-1",
                                    "payment attempt P-1",
                                    "payment attempt P-2",
                                    "stopping",
                                    "raw macro.returns key=bye"};
  CHECK(e == expected);
}
