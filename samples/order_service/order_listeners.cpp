// The pipeline: a producer publishes orders as JSON to "orders"; inventory and billing each get every
// order (their own groups); the payment step declines large orders, is retried, and sends them to
// "orders-dlq", where a monitor picks them up. Start and stop hooks tell what happens.
#include <cppfly/messaging.hpp>

#include <cstdio>
#include <stdexcept>

#include <fmt/format.h>

#include "order.hpp"

using namespace std::chrono_literals;
using cppfly::messaging::Message;
using order_service::Order;
using order_service::Tally;

namespace order_service {
/// Thrown by the payment step: the card was declined.
class PaymentDeclined : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
}  // namespace order_service

namespace {
using order_service::PaymentDeclined;

const std::vector<Order> kOrders = {
    {"ORD-1001", "ada", "keyboard", 1, 89.00},    {"ORD-1002", "grace", "monitor", 2, 640.00},
    {"ORD-1003", "linus", "cable", 3, 12.50},     {"ORD-1004", "barbara", "laptop", 1, 1899.00},
    {"ORD-1005", "ken", "mouse", 1, 25.00},
};
constexpr double kCardLimit = 500.00;

}  // namespace

// Inventory: reserves stock for every order (its own group, so it sees all of them).
CPPFLY_MESSAGE_LISTENER(reserve_stock, (const Order& order), {.topic = "orders", .group_id = "inventory"}) {
  Tally::get().record("inventory", fmt::format("inventory  reserved {} x {} for {}", order.quantity, order.item, order.id));
}

// Billing is a service class: the application constructs it (CPPFLY_SERVICE) and binds its method.
namespace {
class BillingService {
 public:
  void invoice(const Order& order, const Message& message) {
    Tally::get().record("billing", fmt::format("billing    invoiced {} {:.2f} EUR (key {}, offset {})", order.id,
                                               order.amount, message.key.value_or("-"), message.offset));
  }
};
}  // namespace
CPPFLY_SERVICE(BillingService);
CPPFLY_MEMBER_LISTENER(BillingService, invoice, {.topic = "orders", .group_id = "billing"});

// Payment: declines orders over the card limit; retried twice, then dead-lettered to orders-dlq.
CPPFLY_MESSAGE_LISTENER(capture_payment, (const Order& order),
                        {.topic = "orders", .group_id = "payment", .retries = 2, .retry_delay = 50ms,
                         .dead_letter_topic = "orders-dlq"}) {
  if (order.amount > kCardLimit) {
    Tally::get().record("payment-attempt", "");
    throw PaymentDeclined(fmt::format("card limit {:.2f} EUR exceeded by {}", kCardLimit, order.id));
  }
  Tally::get().record("payment", fmt::format("payment    captured {:.2f} EUR for {}", order.amount, order.id));
}

// The dead-letter monitor reads the raw message: payload plus the headers the framework added.
CPPFLY_MESSAGE_LISTENER(watch_dead_letters, (const Message& message),
                        {.topic = "orders-dlq", .group_id = "dlq-monitor"}) {
  Tally::get().record("dead-letter",
                      fmt::format("orders-dlq {} after {} retries: {}: {}", message.key.value_or("?"),
                                  message.headers.get("x-retry-count").value_or("?"),
                                  message.headers.get("x-exception").value_or("?"),
                                  message.headers.get("x-exception-message").value_or("?")));
}

// After start: publish the orders, wait (bounded) for the pipeline, print the account, end the run.
CPPFLY_AFTER_START(publish_orders) {
  auto& broker = app.broker();
  std::printf("order-service started; publishing %zu orders to 'orders'\n", kOrders.size());
  for (const auto& order : kOrders) {
    broker.publish("orders", cppfly::messaging::encode_json(order), {.key = order.id, .headers = {{"source", "order-service"}}});
  }
  const auto timeout = std::chrono::milliseconds(std::stoi(app.config().get("order-service.timeout-ms").value_or("60000")));
  const bool done = Tally::get().wait_until_done(static_cast<int>(kOrders.size()), timeout);
  for (const auto& line : Tally::get().lines()) std::printf("  %s\n", line.c_str());
  auto& tally = Tally::get();
  std::printf("summary: %d reserved, %d invoiced, %d paid, %d dead-lettered (%d failed payment attempts)\n",
              tally.count("inventory"), tally.count("billing"), tally.count("payment"), tally.count("dead-letter"),
              tally.count("payment-attempt"));
  if (!done) std::printf("pipeline did not finish within %lld ms\n", static_cast<long long>(timeout.count()));
  std::fflush(stdout);
  if (done && app.config().get("order-service.keep-running").value_or("false") == "true") {
    std::printf("order-service keeps running (order-service.keep-running); Ctrl-C stops it\n");
    std::fflush(stdout);
    return;
  }
  app.request_stop(done ? 0 : 1);
}

CPPFLY_BEFORE_STOP(say_goodbye) { std::printf("order-service stopping\n"); }

namespace order_service {

Tally& Tally::get() {
  static Tally tally;
  return tally;
}

void Tally::record(const std::string& step, const std::string& line) {
  {
    std::lock_guard lock(mutex_);
    ++counts_[step];
    if (!line.empty()) lines_.push_back(line);
  }
  changed_.notify_all();
}

int Tally::count(const std::string& step) const {
  std::lock_guard lock(mutex_);
  auto it = counts_.find(step);
  return it == counts_.end() ? 0 : it->second;
}

bool Tally::wait_until_done(int orders, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] {
    auto n = [&](const char* step) { return counts_.contains(step) ? counts_.at(step) : 0; };
    return n("inventory") == orders && n("billing") == orders && n("payment") + n("dead-letter") == orders;
  });
}

std::vector<std::string> Tally::lines() const {
  std::lock_guard lock(mutex_);
  return lines_;
}

}  // namespace order_service
