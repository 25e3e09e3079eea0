// What every librdkafka client of the adapter shares: a name for logs, the last error
// librdkafka reported (for clear failure messages), the secrets of its configuration (masked
// in everything it logs), and the log/error callbacks. Internal.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include <librdkafka/rdkafka.h>

#include "statistics.hpp"

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
  void record_error(rd_kafka_resp_err_t code, std::string error);
  void clear_error();

  /// librdkafka raised a fatal error: this client can no longer be used (its owner replaces it).
  virtual void on_fatal() noexcept {}

  /// The last authentication (RD_KAFKA_RESP_ERR__AUTHENTICATION) or TLS (__SSL) failure
  /// reported since clear_error(); code RD_KAFKA_RESP_ERR_NO_ERROR when none. These are not
  /// overwritten by the generic errors that follow them (all brokers down, transport).
  struct Failure {
    rd_kafka_resp_err_t code{RD_KAFKA_RESP_ERR_NO_ERROR};
    std::string text;
  };
  [[nodiscard]] Failure security_failure() const;

  /// `text` with every secret value of this client's configuration replaced by "***".
  [[nodiscard]] std::string masked(std::string text) const;

  /// librdkafka's last statistics report (statistics.interval.ms); `reported` false before the first.
  [[nodiscard]] ClientStatistics statistics() const;
  void record_statistics(ClientStatistics statistics);

  /// The context attached to a client handle (nullptr if none).
  static ClientContext* of(const rd_kafka_t* rk) noexcept;

 private:
  friend void install_context(rd_kafka_conf_t* conf, ClientContext* context) noexcept;

  std::string description_;
  mutable std::mutex mutex_;
  std::string last_error_;
  Failure security_failure_;
  ClientStatistics statistics_;
  std::vector<std::string> secrets_;  // set once by install_context, before the client exists
};

/// librdkafka log lines → the cppfly logger (syslog levels mapped to spdlog levels).
void install_log_callback(rd_kafka_conf_t* conf) noexcept;

/// log_cb, error_cb, stats_cb and the opaque; remembers the values of `conf`'s secret properties
/// (config::is_sensitive_key) so that no log line or error of this client shows them.
/// Call last, after the user's properties.
void install_context(rd_kafka_conf_t* conf, ClientContext* context) noexcept;

/// `text` with each of `secrets` (non-empty values) replaced by "***".
[[nodiscard]] std::string mask_secrets(std::string text, const std::vector<std::string>& secrets);

}  // namespace cppfly::kafka::detail
