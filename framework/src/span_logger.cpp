#include <cppfly/messaging/span_logger.hpp>

#include <chrono>
#include <optional>
#include <string>

#include <cppfly/messaging/trace_context.hpp>

#include "cppfly/detail/log.hpp"

namespace cppfly::messaging {
namespace {

bool debugging() { return detail::log().should_log(spdlog::level::debug); }

long long micros(std::chrono::nanoseconds duration) {
  return std::chrono::duration_cast<std::chrono::microseconds>(duration).count();
}

/// Logging must never throw out of an observer.
template <class Write>
void guarded(Write&& write) noexcept {
  try {
    write();
  } catch (...) {  // NOLINT(bugprone-empty-catch): a log line lost is better than a handler disturbed
  }
}

}  // namespace

void SpanLogger::on_publish(const PublishEvent& event) noexcept {
  if (!debugging()) return;
  guarded([&] {
    std::optional<TraceContext> trace;
    if (event.headers != nullptr) trace = TraceContext::from(*event.headers);
    detail::log().debug("span publish topic={} trace={} span={} ok={} duration_us={}", event.topic,
                        trace ? trace->trace_id() : "-", trace ? trace->span_id() : "-", event.ok,
                        micros(event.duration));
  });
}

void SpanLogger::on_consume_end(const ConsumeEndEvent& event) noexcept {
  if (!debugging()) return;
  guarded([&] {
    // On the handler's thread, inside the handling's scope: its span is the current one.
    const TraceContext* trace = current_trace();
    const Message& m = event.record.message;
    detail::log().debug(
        "span consume listener={} group={} topic={} partition={} offset={} attempt={} trace={} span={} parent={} "
        "outcome={} duration_us={}",
        event.record.listener, event.record.group.empty() ? "-" : event.record.group, m.topic, m.partition, m.offset,
        m.attempt, trace != nullptr ? trace->trace_id() : "-", trace != nullptr ? trace->span_id() : "-",
        trace != nullptr && !trace->parent_span_id().empty() ? trace->parent_span_id() : "-",
        to_string(event.outcome), micros(event.duration));
  });
}

void SpanLogger::on_commit(const CommitEvent& event) noexcept {
  if (!debugging()) return;
  guarded([&] {
    detail::log().debug("span commit group={} topic={} partition={} offset={} ok={}", event.group,
                        event.topic.empty() ? "-" : event.topic, event.partition, event.offset, event.ok);
  });
}

}  // namespace cppfly::messaging
