// MessageBrokerPort: the one interface business code and adapters agree on.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <cppfly/messaging/broker_status.hpp>
#include <cppfly/messaging/message.hpp>
#include <cppfly/messaging/observer.hpp>
#include <cppfly/messaging/subscription.hpp>

namespace cppfly::messaging {

/// Any failure reported by a broker (publish refused, not started, unreachable, ...).
class BrokerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What became of one publish_async with a callback: where the record landed, or why it did not.
/// Valid for the callback's call only (the topic is a view); result() makes an owning copy.
struct DeliveryReport {
  std::string_view topic;
  std::int32_t partition{-1};
  std::int64_t offset{-1};
  const BrokerError* error{nullptr};  ///< null when the record was delivered

  [[nodiscard]] bool ok() const noexcept { return error == nullptr; }
  [[nodiscard]] DeliveryResult result() const { return {std::string(topic), partition, offset}; }
};

/// Runs exactly once per publish_async, with the report. It runs on a thread of the adapter's
/// (Kafka: the thread serving delivery reports, which may be a later publish call's own thread);
/// keep it short and never call the blocking publish() from it. An exception it throws is logged.
using DeliveryCallback = std::function<void(const DeliveryReport&)>;

/// Publishes inside one transaction: nothing it publishes is visible to read-committed consumers
/// until the transaction commits, and none of it ever is when it aborts.
class TransactionalPublisher {
 public:
  virtual ~TransactionalPublisher() = default;
  /// Queues the record in the transaction; a delivery failure fails the commit.
  virtual void publish(std::string_view topic, std::string_view value, PublishOptions options = {}) = 0;
  /// Sends what was published so far to the broker, still uncommitted, at most `timeout` (a long
  /// transaction need not hold it all in memory); true when nothing is left to send.
  virtual bool flush(std::chrono::milliseconds timeout) = 0;
};

/// The port. Adapters: InMemoryMessageBroker (adapters/memory), KafkaAdapter (adapters/kafka).
class MessageBrokerPort {
 public:
  virtual ~MessageBrokerPort() = default;

  /// Blocks until the broker acknowledged the record and returns where it landed; throws
  /// BrokerError on failure.
  virtual DeliveryResult publish(std::string_view topic, std::string_view value, PublishOptions options = {}) = 0;
  /// Returns at once; the future holds where the record landed, or the error.
  virtual std::future<DeliveryResult> publish_async(std::string_view topic, std::string value,
                                                    PublishOptions options = {}) = 0;
  /// Returns at once; `done` runs exactly once with the report (no future per record: the fast form).
  virtual void publish_async(std::string_view topic, std::string value, PublishOptions options,
                             DeliveryCallback done) = 0;
  /// Waits until every record published so far is delivered or failed, at most `timeout`.
  /// True when nothing is left queued.
  virtual bool flush(std::chrono::milliseconds timeout) = 0;
  /// Runs `body` in a transaction: what it publishes through its TransactionalPublisher commits
  /// together when it returns, and is aborted when it throws (the exception then comes out).
  /// Throws BrokerError when the commit fails, or when this broker has no transactions (Kafka:
  /// pyfly.messaging.kafka.transactional-id-prefix unset). One transaction at a time per broker.
  virtual void transaction(const std::function<void(TransactionalPublisher&)>& body) {
    (void)body;
    throw BrokerError("this broker has no transactions");
  }
  /// No group: this handler gets every message. A group: one member of the group gets each message.
  /// Its records run in a listener container with `subscription.container`'s ordering, concurrency,
  /// retries and dead-letter topic.
  virtual void subscribe(Subscription subscription) = 0;
  /// The same with the container's defaults: partition order, one at a time, no retry.
  void subscribe(std::string_view topic, MessageHandler handler, std::optional<std::string> group = {}) {
    subscribe(Subscription{.topic = std::string(topic), .handler = std::move(handler), .group = std::move(group)});
  }
  /// Connect and begin consuming. subscribe() after start() also works.
  virtual void start() = 0;
  /// Stop fetching, finish in-flight handlers, commit, flush. Idempotent.
  virtual void stop() = 0;

  /// Publishes (and commits, where the adapter commits) are told to `observer` from now on; call
  /// before start(). Handler runs are told through each subscription's ContainerOptions::observer.
  /// The default ignores it (an adapter without observation).
  virtual void observe(std::shared_ptr<MessagingObserver> observer) { (void)observer; }
  /// What the broker knows now of its health and work (reachability, lag, buffered records), for
  /// health checks and metrics. Cheap: it never waits for the broker. The default knows nothing.
  [[nodiscard]] virtual BrokerStatus status() const { return {}; }
};

}  // namespace cppfly::messaging
