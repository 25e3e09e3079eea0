// Which settings hold secrets, and how they are shown ("***") in logs, errors and config dumps.
#pragma once

#include <string>
#include <string_view>

namespace cppfly::config {

/// What a secret is shown as.
inline constexpr std::string_view kMasked = "***";

/// True when a dotted key or a librdkafka property name names a secret: PyFly's rule (password,
/// passwd, secret, token, credential, api-key, private-key, client-secret anywhere, any case, '-'
/// and '_' alike; a last segment `key` or ending in -key/_key) plus librdkafka's ssl.key.pem and
/// sasl.oauthbearer.config.
[[nodiscard]] bool is_sensitive_key(std::string_view key) noexcept;

/// `value` as it may be printed under `key`: "***" for a secret; otherwise the value with the
/// password of any URI user-info (scheme://user:PASSWORD@host) masked.
[[nodiscard]] std::string shown_value(std::string_view key, std::string_view value);

}  // namespace cppfly::config
