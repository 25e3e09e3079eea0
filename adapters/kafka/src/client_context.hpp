// What every librdkafka client of the adapter shares: a name for logs, the last error
// librdkafka reported (for clear failure messages), and the log/error callbacks. Internal.
#pragma once

#include <mutex>
#include <string>

#include <librdkafka/rdkafka.h>

namespace cppfly::kafka::detail {

/// The opaque of every client configuration (rd_kafka_conf_set_opaque). Must outlive the
/// rd_kafka_t it is attached to: owners destroy the handle before the context.
class ClientContext {
 public:
  explicit ClientContext(std::string description) : description_(std::move(description)) {}
  virtual ~ClientContext() = default;
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  /// "producer", "consumer of 'orders' (group 'billing')", ... for log lines.
  [[nodiscard]] const std::string& description() const noexcept { return description_; }

  /// The last error librdkafka reported through error_cb ("" when none yet).
  [[nodiscard]] std::string last_error() const;
  void record_error(std::string error);
  void clear_error();

  /// librdkafka raised a fatal error: this client can no longer be used (its owner replaces it).
  virtual void on_fatal() noexcept {}

  /// The context attached to a client handle (nullptr if none).
  static ClientContext* of(const rd_kafka_t* rk) noexcept;

 private:
  std::string description_;
  mutable std::mutex mutex_;
  std::string last_error_;
};

/// librdkafka log lines → the cppfly logger (syslog levels mapped to spdlog levels).
void install_log_callback(rd_kafka_conf_t* conf) noexcept;

/// log_cb, error_cb and the opaque. Call last, after the user's properties.
void install_context(rd_kafka_conf_t* conf, ClientContext* context) noexcept;

}  // namespace cppfly::kafka::detail
