// SpanLogger: a MessagingObserver that logs each publish, handler attempt and commit as one line at
// debug level on the "cppfly" logger, with its trace and span ids (the shape of an OpenTelemetry span,
// without a collector). The Application adds it when that logger is at debug level at start.
#pragma once

#include <cppfly/messaging/observer.hpp>

namespace cppfly::messaging {

/// Logs `span publish|consume|commit ...` lines at debug level; does nothing at a higher level.
class SpanLogger final : public MessagingObserver {
 public:
  void on_publish(const PublishEvent& event) noexcept override;
  void on_consume_end(const ConsumeEndEvent& event) noexcept override;
  void on_commit(const CommitEvent& event) noexcept override;
};

}  // namespace cppfly::messaging
