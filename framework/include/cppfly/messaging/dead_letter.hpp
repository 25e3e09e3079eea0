// The retry + dead-letter wrapper every adapter shares, and the dead-letter header names.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <cppfly/messaging/broker_port.hpp>
#include <cppfly/messaging/retry_policy.hpp>

namespace cppfly::messaging {

/// Headers added to a dead-lettered record (the original key, value and headers are kept).
namespace dead_letter_headers {
inline constexpr std::string_view original_topic = "x-original-topic";          // PyFly's name
inline constexpr std::string_view exception = "x-exception";                    // PyFly's name: type name
inline constexpr std::string_view exception_message = "x-exception-message";
inline constexpr std::string_view original_partition = "x-original-partition";
inline constexpr std::string_view original_offset = "x-original-offset";
inline constexpr std::string_view retry_count = "x-retry-count";
}  // namespace dead_letter_headers

/// What happens to a message whose handler keeps failing.
struct FailurePolicy {
  RetryPolicy retry{};
  std::string dead_letter_topic{};  ///< empty: no dead-letter topic
  std::string listener_name{};      ///< for logs
  std::shared_ptr<RetryWaits> waits{};  ///< cuts retry waits short at stop; none: a wait always runs in full
};

/// Wraps `handler`: retries on exception, then publishes to the dead-letter topic through `broker`
/// (then returns normally); without one, rethrows the last exception. A PayloadDecodeError is never
/// retried: dead-lettered at once, or logged and skipped when there is no dead-letter topic. When
/// `policy.waits` is cancelled, a retry wait ends at once and the wrapper throws RedeliveryRequired:
/// the message is neither handled nor dead-lettered, and the adapter must not acknowledge it.
[[nodiscard]] MessageHandler with_failure_policy(MessageHandler handler, FailurePolicy policy,
                                                 MessageBrokerPort& broker);

/// The dead-letter record for `message` after `exception`, with `retries` retries done.
[[nodiscard]] PublishOptions dead_letter_options(const Message& message, std::string_view exception_type,
                                                 std::string_view exception_message, int retries);

}  // namespace cppfly::messaging
