// KafkaAdapter: MessageBrokerPort on librdkafka (Apache Kafka, or an embedded mock cluster).
//
// Lifecycle
//   construct  validates the configuration (a property librdkafka rejects throws
//              config::ConfigError naming the pyfly key); for bootstrap-servers
//              "embedded" it also starts the in-process mock cluster. No client
//              connects yet.
//   start()    creates the shared producer, checks that the cluster answers a metadata
//              request within connect_timeout (else BrokerError), then starts one
//              consumer per subscription. Idempotent.
//   stop()     stops the consumers (each stops fetching, lets running handlers finish
//              within the container's shutdown timeout, drops what is queued or waiting
//              to retry, commits and leaves its group), then flushes the producer within
//              publish_timeout. Idempotent, also from a handler; start() may be called
//              again afterwards.
//
// Delivery
//   publish() returns after the delivery report (acks=all, idempotent by default).
//   Consumers are at-least-once: a partition's committed offset is its lowest unsettled
//   one (settled: handled, skipped or dead-lettered), committed on a timer, on partition
//   revoke and on stop.
//   No group: a broadcast subscription (private group id, never committed) that sees
//   every message published after subscribe() (or start(), for earlier subscriptions)
//   returned. A group: each message goes to one member of the group.
//
// Threads
//   publish/publish_async/subscribe may be called from any thread. Each subscription
//   has its own fetch thread, which never runs handlers; they run on the container's
//   `concurrency` workers in the container's ordering.
#pragma once

#include <future>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <cppfly/config/properties.hpp>
#include <cppfly/messaging/broker_port.hpp>

namespace cppfly::kafka {

class KafkaAdapter final : public messaging::MessageBrokerPort {
 public:
  /// Throws config::ConfigError when librdkafka refuses a property.
  explicit KafkaAdapter(config::KafkaProperties properties);
  /// stop()s, then shuts the embedded cluster down (if any).
  ~KafkaAdapter() override;

  KafkaAdapter(const KafkaAdapter&) = delete;
  KafkaAdapter& operator=(const KafkaAdapter&) = delete;
  KafkaAdapter(KafkaAdapter&&) = delete;
  KafkaAdapter& operator=(KafkaAdapter&&) = delete;

  /// Blocks until the delivery report; throws messaging::BrokerError (topic and reason)
  /// on failure, or when the adapter is not started.
  messaging::DeliveryResult publish(std::string_view topic, std::string_view value,
                                    messaging::PublishOptions options = {}) override;
  /// Returns at once (unless the local queue is full: then it waits for room, at most
  /// publish_timeout). Every error, "not started" included, is delivered through the future.
  std::future<messaging::DeliveryResult> publish_async(std::string_view topic, std::string value,
                                                       messaging::PublishOptions options = {}) override;
  /// The same, completed by `done` instead of a future: the fastest form. `done` runs on the thread
  /// that serves delivery reports: a later publish call's thread, or the producer's own thread
  /// once publishing pauses (an error before the record is queued: on the calling thread, at once).
  void publish_async(std::string_view topic, std::string value, messaging::PublishOptions options,
                     messaging::DeliveryCallback done) override;
  /// Serves delivery reports until nothing is queued, at most `timeout`; true when nothing is left
  /// (also when not started).
  bool flush(std::chrono::milliseconds timeout) override;
  /// With transactional-id-prefix set: one transaction at a time on a transactional producer
  /// (transactional.id = prefix + "0", made by start(): a restarted service fences the one before
  /// it); commit and abort bounded by publish_timeout. Never call stop() from `body`.
  void transaction(const std::function<void(messaging::TransactionalPublisher&)>& body) override;
  /// Before start(): recorded, started by start(). After start(): started at once. One consumer per
  /// subscription; its records run in a listener container (subscription.container).
  using messaging::MessageBrokerPort::subscribe;
  void subscribe(messaging::Subscription subscription) override;
  /// Throws messaging::BrokerError when the cluster cannot be reached within connect_timeout.
  void start() override;
  void stop() override;
  /// Publishes (delivery reports) and commits are told to `observer`; call before start().
  void observe(std::shared_ptr<messaging::MessagingObserver> observer) override;
  /// From librdkafka's statistics (statistics.interval.ms, 1 s unless the properties say otherwise):
  /// reachable while a client holds a connection to a broker (unknown before the first report), the
  /// producer's queue, each consumer's assigned partitions and their lag behind the stored position.
  [[nodiscard]] messaging::BrokerStatus status() const override;

  /// The effective bootstrap servers (for "embedded": the mock cluster's address).
  [[nodiscard]] std::string bootstrap_servers() const;
  /// How many times a producer that hit a fatal error (librdkafka's idempotent producer can) was
  /// replaced by a new one; each is logged. Records the old one still held failed.
  [[nodiscard]] std::uint64_t producer_replacements() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cppfly::kafka
