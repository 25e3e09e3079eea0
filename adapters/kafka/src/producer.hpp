// The adapter's one shared producer: librdkafka producer + a poll thread serving
// delivery reports. Internal.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include <cppfly/messaging/broker_port.hpp>
#include <cppfly/messaging/message.hpp>
#include <cppfly/messaging/observer.hpp>

#include "client_context.hpp"
#include "handles.hpp"

namespace cppfly::kafka::detail {

class Producer final : public ClientContext {
 public:
  /// Creates the librdkafka producer from `conf` (callbacks are installed here) and starts
  /// its poll thread. Throws config::ConfigError when librdkafka refuses the configuration.
  Producer(ConfHandle conf, std::chrono::milliseconds publish_timeout);
  /// close()s.
  ~Producer() override;
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  /// Enqueues one record; the future is fulfilled from the delivery report. A full local
  /// queue is back-pressure: waits for room up to publish_timeout. Throws
  /// messaging::BrokerError when the record cannot be enqueued (or after close()).
  [[nodiscard]] std::future<messaging::DeliveryResult> send(std::string_view topic, std::string_view value,
                                                            const messaging::PublishOptions& options);
  /// Completed by `done` (run once, from the delivery report) instead of a future. `done` is
  /// moved from only when the record is queued: when this throws, it is still the caller's.
  void send(std::string_view topic, std::string_view value, const messaging::PublishOptions& options,
            messaging::DeliveryCallback& done);

  /// Serves delivery reports until nothing is queued or `timeout` passed; true when nothing is left.
  bool flush(std::chrono::milliseconds timeout);

  /// Waits for a delivery report: the result, or messaging::BrokerError (failure, or no
  /// report within publish_timeout plus a grace period).
  [[nodiscard]] messaging::DeliveryResult await(std::future<messaging::DeliveryResult>& delivery,
                                                std::string_view topic) const;

  /// Transactions, for a producer made with transactional.id. Each throws messaging::BrokerError
  /// with librdkafka's reason; after a fatal error (fenced by a newer producer with the same id,
  /// ...) fatal() is true and the producer must be replaced.
  void init_transactions(std::chrono::milliseconds timeout);
  void begin_transaction();
  /// Flushes and commits within `timeout`; a failure that needs it aborts, then throws.
  void commit_transaction(std::chrono::milliseconds timeout);
  /// Aborts (what was produced is never seen by read_committed consumers); throws on failure.
  void abort_transaction(std::chrono::milliseconds timeout);
  /// Adds consumed offsets (the next offset to read, per partition) of the consumer group `group` to
  /// the open transaction: they commit with it (Kafka's fencing by group generation, KIP-447).
  void send_offsets_to_transaction(const rd_kafka_topic_partition_list_t& offsets,
                                   const rd_kafka_consumer_group_metadata_t& group, std::chrono::milliseconds timeout);
  [[nodiscard]] bool fatal() const noexcept { return fatal_.load(std::memory_order_relaxed); }
  void on_fatal() noexcept override { fatal_.store(true); }

  /// Refuses new records, flushes within `flush_timeout`, fails (and logs) whatever was not
  /// delivered by then, stops the poll thread and destroys the client. Idempotent.
  void close(std::chrono::milliseconds flush_timeout) noexcept;

  /// The librdkafka handle (metadata requests, tests). Valid until close().
  [[nodiscard]] rd_kafka_t* handle() const noexcept { return rk_.get(); }

  [[nodiscard]] std::chrono::milliseconds publish_timeout() const noexcept { return publish_timeout_; }

  /// Every record's delivery (or refusal) is told to `observer`; set before the first send().
  void observe(std::shared_ptr<messaging::MessagingObserver> observer) noexcept { observer_ = std::move(observer); }

 private:
  struct Delivery;
  class Visit;
  /// Queues the record; `delivery` is released (to librdkafka) only when that succeeds.
  void enqueue(std::string_view topic, std::string_view value, const messaging::PublishOptions& options,
               std::unique_ptr<Delivery>& delivery);
  void enqueue_record(std::string_view topic, std::string_view value, const messaging::PublishOptions& options,
                      std::unique_ptr<Delivery>& delivery);
  static void on_delivery(rd_kafka_t* rk, const rd_kafka_message_t* message, void* opaque) noexcept;
  void poll_loop() noexcept;

  std::chrono::milliseconds publish_timeout_;
  std::shared_ptr<messaging::MessagingObserver> observer_;
  std::atomic<bool> polling_{true};
  std::atomic<bool> closed_{false};
  std::atomic<bool> fatal_{false};  ///< a fatal transaction error: unusable
  std::atomic<int> sending_{0};         ///< send() and flush() calls under way (close waits for them)
  std::atomic<std::uint64_t> sends_{0};  ///< send() calls so far (the poll thread steps aside)
  std::mutex mutex_;                     ///< for wake_
  std::condition_variable wake_;         ///< the last send() left a closed producer; close()
  std::thread poller_;
  KafkaHandle rk_;  ///< declared last: destroyed first (the context must outlive it)
};

/// The transaction a transactional listener's handler runs in, on this thread (null: none): the
/// adapter's publish calls made from that handler go into it.
Producer*& current_transaction() noexcept;

}  // namespace cppfly::kafka::detail
