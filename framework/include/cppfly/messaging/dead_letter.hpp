// The dead-letter record: its header names, and how the listener container builds it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <cppfly/messaging/broker_port.hpp>

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

/// The dead-letter record for `message` after `exception`, with `retries` retries done, from the
/// listener of `group`: its key and headers, the dead-letter headers above set anew (a record that
/// was dead-lettered before has its earlier ones replaced, never stacked).
[[nodiscard]] PublishOptions dead_letter_options(const Message& message, std::string_view exception_type,
                                                 std::string_view exception_message, int retries,
                                                 std::string_view group = {});

}  // namespace cppfly::messaging
