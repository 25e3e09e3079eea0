// PrometheusMetrics: the framework's metrics (docs/observability.md), counted by observing its events
// and rendered in Prometheus' text format 0.0.4. The Application registers one when the actuator
// exposes `prometheus`; a program wiring things by hand adds it as an observer and serves render().
#pragma once

#include <memory>
#include <string>

#include <cppfly/messaging/broker_status.hpp>
#include <cppfly/messaging/observer.hpp>

namespace cppfly::messaging {

class PrometheusMetrics final : public MessagingObserver {
 public:
  PrometheusMetrics();
  ~PrometheusMetrics() override;
  PrometheusMetrics(const PrometheusMetrics&) = delete;
  PrometheusMetrics& operator=(const PrometheusMetrics&) = delete;

  void on_publish(const PublishEvent& event) noexcept override;
  void on_consume_end(const ConsumeEndEvent& event) noexcept override;
  void on_commit(const CommitEvent& event) noexcept override;

  /// The counters and histograms so far, and the gauges read from `status` (lag, buffered records,
  /// waiting retries, producer queue), as one text-format 0.0.4 exposition.
  [[nodiscard]] std::string render(const BrokerStatus& status) const;

  /// The Content-Type of render()'s text.
  static constexpr const char* content_type = "text/plain; version=0.0.4; charset=utf-8";

 private:
  struct Families;
  std::unique_ptr<Families> families_;
};

}  // namespace cppfly::messaging
