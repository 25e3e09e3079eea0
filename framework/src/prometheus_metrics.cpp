#include <cppfly/messaging/prometheus_metrics.hpp>

#include <array>
#include <chrono>
#include <string_view>

#include "metric_registry.hpp"

namespace cppfly::messaging {

namespace {

using detail::CounterFamily;
using detail::ExpositionWriter;
using detail::HistogramFamily;

/// Handler and publish durations, seconds: 0.5 ms to 10 s.
std::vector<double> duration_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

constexpr std::array<std::string_view, 3> kListenerLabels{"listener", "topic", "group"};

}  // namespace

struct PrometheusMetrics::Families {
  CounterFamily received{"cppfly_records_received_total", "Records a listener began to handle (first attempts).",
                         {"listener", "topic", "group"}};
  CounterFamily handled{"cppfly_records_handled_total",
                        "Handler attempts by outcome: success, retried, dead_lettered, skipped.",
                        {"listener", "topic", "group", "outcome"}};
  HistogramFamily handler_duration{"cppfly_handler_duration_seconds", "Run time of each handler attempt.",
                                   {"listener", "topic", "group"}, duration_buckets()};
  CounterFamily published{"cppfly_published_total", "Records published and acknowledged by the broker.", {"topic"}};
  CounterFamily publish_failures{"cppfly_publish_failures_total", "Publishes that failed (refused or timed out).",
                                 {"topic"}};
  HistogramFamily publish_duration{"cppfly_publish_duration_seconds",
                                   "Time from a publish call to its delivery report.", {"topic"}, duration_buckets()};
  CounterFamily commits{"cppfly_commits_total", "Offset commits of a consumer group, by outcome (success, failure).",
                        {"group", "outcome"}};
};

PrometheusMetrics::PrometheusMetrics() : families_(std::make_unique<Families>()) {}
PrometheusMetrics::~PrometheusMetrics() = default;

void PrometheusMetrics::on_publish(const PublishEvent& event) noexcept {
  try {
    if (event.ok) {
      families_->published.add({event.topic});
    } else {
      families_->publish_failures.add({event.topic});
    }
    families_->publish_duration.observe({event.topic}, seconds(event.duration));
  } catch (...) {  // NOLINT(bugprone-empty-catch): a metric that cannot be counted is not the work's failure
  }
}

void PrometheusMetrics::on_consume_end(const ConsumeEndEvent& event) noexcept {
  try {
    const auto& r = event.record;
    const std::string_view topic = r.message.topic;
    if (r.message.attempt <= 1) families_->received.add({r.listener, topic, r.group});
    families_->handled.add({r.listener, topic, r.group, to_string(event.outcome)});
    families_->handler_duration.observe({r.listener, topic, r.group}, seconds(event.duration));
  } catch (...) {  // NOLINT(bugprone-empty-catch)
  }
}

void PrometheusMetrics::on_commit(const CommitEvent& event) noexcept {
  try {
    families_->commits.add({event.group, event.ok ? "success" : "failure"});
  } catch (...) {  // NOLINT(bugprone-empty-catch)
  }
}

std::string PrometheusMetrics::render(const BrokerStatus& status) const {
  std::string out;
  out.reserve(8192);
  ExpositionWriter w(out);
  const Families& f = *families_;
  f.received.write(w);
  f.handled.write(w);
  f.handler_duration.write(w);
  f.published.write(w);
  f.publish_failures.write(w);
  f.publish_duration.write(w);
  f.commits.write(w);

  w.header("cppfly_records_buffered", "Records fetched by a listener's container and not yet settled.", "gauge");
  for (const auto& l : status.listeners) {
    const std::array<std::string, 3> values{l.listener, l.topic, l.group};
    w.sample("cppfly_records_buffered", kListenerLabels, values, {}, {}, static_cast<double>(l.buffered));
  }
  w.header("cppfly_retries_waiting", "Records waiting for a retry's backoff.", "gauge");
  for (const auto& l : status.listeners) {
    const std::array<std::string, 3> values{l.listener, l.topic, l.group};
    w.sample("cppfly_retries_waiting", kListenerLabels, values, {}, {}, static_cast<double>(l.retries_waiting));
  }
  w.header("cppfly_consumer_lag", "Records between a partition's committed position and its high watermark.",
           "gauge");
  for (const auto& l : status.listeners) {
    for (const auto& lag : l.lag) {
      const std::array<std::string, 3> values{l.listener, lag.topic, l.group};
      w.sample("cppfly_consumer_lag", kListenerLabels, values, "partition", std::to_string(lag.partition),
               static_cast<double>(lag.lag));
    }
  }
  if (status.producer_queue) {
    w.header("cppfly_producer_queue_depth", "Records queued in the producer, not yet delivered.", "gauge");
    w.sample("cppfly_producer_queue_depth", {}, {}, {}, {}, static_cast<double>(*status.producer_queue));
  }
  if (status.reachable) {
    w.header("cppfly_broker_up", "1 when the broker answers, else 0.", "gauge");
    w.sample("cppfly_broker_up", {}, {}, {}, {}, *status.reachable ? 1 : 0);
  }
  return out;
}

}  // namespace cppfly::messaging
