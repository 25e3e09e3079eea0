#include "producer.hpp"

#include <array>
#include <exception>
#include <memory>

#include <cppfly/config/config.hpp>
#include <cppfly/detail/log.hpp>
#include <cppfly/messaging/broker_port.hpp>

namespace cppfly::kafka::detail {

using messaging::BrokerError;
using messaging::DeliveryResult;
using Clock = std::chrono::steady_clock;

/// The per-record opaque: owned by librdkafka between producev and the delivery report.
struct Producer::Delivery {
  std::string topic;
  std::promise<DeliveryResult> promise;
};

namespace {

/// Extra time publish() waits beyond message.timeout.ms before giving up on a report
/// librdkafka has not sent (it always should).
constexpr std::chrono::milliseconds kReportGrace{5000};

bool is_purge(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT;
}

}  // namespace

Producer::Producer(ConfHandle conf, std::chrono::milliseconds publish_timeout)
    : ClientContext("producer"), publish_timeout_(publish_timeout) {
  install_context(conf.get(), this);
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &Producer::on_delivery);
  std::array<char, 512> reason{};
  rk_.reset(rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), reason.data(), reason.size()));
  if (!rk_) {
    throw config::ConfigError(std::string("pyfly.messaging.kafka: librdkafka refused the producer configuration: ") +
                              reason.data());
  }
  conf.release();  // owned by rk_ now
  poller_ = std::thread([this] { poll_loop(); });
}

Producer::~Producer() { close(publish_timeout_); }

void Producer::poll_loop() noexcept {
  while (polling_.load(std::memory_order_acquire)) {
    rd_kafka_poll(rk_.get(), 100);  // serves delivery reports, errors, logs
  }
}

void Producer::on_delivery(rd_kafka_t* rk, const rd_kafka_message_t* message, void* /*opaque*/) noexcept {
  std::unique_ptr<Delivery> delivery(static_cast<Delivery*>(message->_private));
  if (!delivery) return;
  try {
    if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      delivery->promise.set_value(DeliveryResult{delivery->topic, message->partition, message->offset});
      return;
    }
    // Not rd_kafka_message_errstr(): for a delivery report, payload is the record's value.
    std::string reason = rd_kafka_err2str(message->err);
    auto* self = static_cast<Producer*>(ClientContext::of(rk));
    if (message->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT && self != nullptr) {
      reason += " after " + std::to_string(self->publish_timeout_.count()) + " ms";
      if (auto last = self->last_error(); !last.empty()) reason += " (last broker error: " + last + ")";
    }
    if (is_purge(message->err)) {
      reason = "not delivered before the producer stopped (" + reason + ")";
      cppfly::detail::log().warn("kafka producer: a record for '{}' was not delivered before stop and is dropped",
                                 delivery->topic);
    }
    delivery->promise.set_exception(
        std::make_exception_ptr(BrokerError("publish to '" + delivery->topic + "' failed: " + reason)));
  } catch (...) {  // NOLINT(bugprone-empty-catch): nothing may escape into librdkafka
  }
}

std::future<DeliveryResult> Producer::send(std::string_view topic, std::string_view value,
                                           const messaging::PublishOptions& options) {
  const std::string name(topic);
  {
    const std::lock_guard lock(mutex_);
    if (closed_) throw BrokerError("publish to '" + name + "' failed: the Kafka adapter is stopped");
    ++sending_;
  }
  struct Leave {
    Producer* self;
    ~Leave() {
      const std::lock_guard lock(self->mutex_);
      if (--self->sending_ == 0) self->idle_.notify_all();
    }
  } leave{this};

  auto delivery = std::make_unique<Delivery>();
  delivery->topic = name;
  auto future = delivery->promise.get_future();

  HeadersHandle headers;
  if (!options.headers.empty()) {
    headers.reset(rd_kafka_headers_new(options.headers.size()));
    for (const auto& [header, header_value] : options.headers) {
      rd_kafka_header_add(headers.get(), header.data(), static_cast<ssize_t>(header.size()), header_value.data(),
                          static_cast<ssize_t>(header_value.size()));
    }
  }
  const void* key = options.key ? options.key->data() : nullptr;
  const std::size_t key_size = options.key ? options.key->size() : 0;
  const std::int32_t partition = options.partition.value_or(RD_KAFKA_PARTITION_UA);

  const auto deadline = Clock::now() + publish_timeout_;
  for (;;) {
    // librdkafka's macros cast away const; RD_KAFKA_MSG_F_COPY copies key and value.
    const auto err = rd_kafka_producev(
        rk_.get(), RD_KAFKA_V_TOPIC(name.c_str()), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),  // NOLINT(cppcoreguidelines-pro-type-const-cast)
        RD_KAFKA_V_KEY(key, key_size), RD_KAFKA_V_HEADERS(headers.get()), RD_KAFKA_V_OPAQUE(delivery.get()),
        RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      (void)headers.release();   // owned by the message now
      (void)delivery.release();  // owned by librdkafka until the delivery report
      return future;
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && Clock::now() < deadline) {
      // Back-pressure: wait for delivery reports to make room (the poll thread serves
      // them; polling here too just waits on the same queue).
      rd_kafka_poll(rk_.get(), 10);
      continue;
    }
    std::string reason = rd_kafka_err2str(err);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      reason = "the local queue stayed full for " + std::to_string(publish_timeout_.count()) + " ms (" + reason + ")";
    } else if (err == RD_KAFKA_RESP_ERR__FATAL) {
      std::array<char, 512> fatal{};
      rd_kafka_fatal_error(rk_.get(), fatal.data(), fatal.size());
      reason += std::string(": ") + fatal.data();
    } else if (err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION) {
      reason += " (partition " + std::to_string(partition) + ")";
    }
    throw BrokerError("publish to '" + name + "' failed: " + reason);
  }
}

DeliveryResult Producer::await(std::future<DeliveryResult>& delivery, std::string_view topic) const {
  if (delivery.wait_for(publish_timeout_ + kReportGrace) != std::future_status::ready) {
    throw BrokerError("publish to '" + std::string(topic) + "' failed: no delivery report within " +
                      std::to_string((publish_timeout_ + kReportGrace).count()) + " ms");
  }
  return delivery.get();
}

void Producer::close(std::chrono::milliseconds flush_timeout) noexcept {
  try {
    {
      std::unique_lock lock(mutex_);
      if (closed_) return;
      closed_ = true;
      // Calls already inside send() finish first (each bounded by publish_timeout).
      idle_.wait(lock, [this] { return sending_ == 0; });
    }
    auto& log = cppfly::detail::log();
    if (rd_kafka_flush(rk_.get(), static_cast<int>(flush_timeout.count())) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      log.warn("kafka producer: {} record(s) were still undelivered after {} ms at stop; dropping them",
               rd_kafka_outq_len(rk_.get()), flush_timeout.count());
      rd_kafka_purge(rk_.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      // Serve the purged records' reports so every future is fulfilled.
      rd_kafka_flush(rk_.get(), 5000);
    }
    polling_.store(false, std::memory_order_release);
    if (poller_.joinable()) poller_.join();
    rk_.reset();
  } catch (const std::exception& e) {
    cppfly::detail::log().error("kafka producer: error while closing: {}", e.what());
  } catch (...) {
    cppfly::detail::log().error("kafka producer: unknown error while closing");
  }
}

}  // namespace cppfly::kafka::detail
