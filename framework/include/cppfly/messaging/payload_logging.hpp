// Whether payload bytes may appear in logs and exception texts: pyfly.messaging.log-payloads, off by
// default (payloads may hold personal data). The Application sets it from the configuration.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace cppfly::messaging {

/// Bytes of a payload a log line or an exception text shows, at most.
inline constexpr std::size_t kPayloadLogLimit = 256;

/// Turns payload logging on or off for the process.
void set_log_payloads(bool on) noexcept;
[[nodiscard]] bool log_payloads() noexcept;

/// `payload` as a log line may show it: on, its first kPayloadLogLimit bytes in quotes (bytes that are
/// not printable ASCII as \xNN, "..." when cut); off, only its size ("<17 bytes, not logged>").
[[nodiscard]] std::string payload_for_log(std::string_view payload);

}  // namespace cppfly::messaging
