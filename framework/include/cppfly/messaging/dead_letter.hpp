// The retry + dead-letter wrapper every adapter shares, and the dead-letter header names.
#pragma once

#include <cstddef>
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
inline constexpr std::string_view exception_message = "x-exception-message";  // at most 1,024 bytes
inline constexpr std::string_view original_partition = "x-original-partition";
inline constexpr std::string_view original_offset = "x-original-offset";
inline constexpr std::string_view original_timestamp = "x-original-timestamp";  // ms since the epoch
inline constexpr std::string_view original_group = "x-original-group";          // the listener's group
inline constexpr std::string_view retry_count = "x-retry-count";
/// x-exception-message is cut to this many bytes (at a UTF-8 character boundary, "..." added).
inline constexpr std::size_t exception_message_limit = 1024;
}  // namespace dead_letter_headers

/// What happens to a message whose handler keeps failing.
struct FailurePolicy {
  RetryPolicy retry{};
  std::string dead_letter_topic{};  ///< empty: no dead-letter topic
  std::string listener_name{};      ///< for logs
  std::string group{};              ///< the listener's group: x-original-group (empty: none)
  std::shared_ptr<RetryWaits> waits{};  ///< cuts retry waits short at stop; none: a wait always runs in full
};

/// Wraps `handler`: retries on exception, then publishes to the dead-letter topic through `broker`
/// (then returns normally); without one, rethrows the last exception. A PayloadDecodeError is never
/// retried: dead-lettered at once, or logged and skipped when there is no dead-letter topic. When
/// `policy.waits` is cancelled, a retry wait ends at once and the wrapper throws RedeliveryRequired:
/// the message is neither handled nor dead-lettered, and the adapter must not acknowledge it.
[[nodiscard]] MessageHandler with_failure_policy(MessageHandler handler, FailurePolicy policy,
                                                 MessageBrokerPort& broker);

/// The dead-letter record for `message` after `exception`, with `retries` retries done, from the
/// listener of `group`: its key and headers, the dead-letter headers above set anew (a record that
/// was dead-lettered before has its earlier ones replaced, never stacked).
[[nodiscard]] PublishOptions dead_letter_options(const Message& message, std::string_view exception_type,
                                                 std::string_view exception_message, int retries,
                                                 std::string_view group = {});

}  // namespace cppfly::messaging
