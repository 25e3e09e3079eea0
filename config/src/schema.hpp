// The pyfly.messaging schema: which keys exist, what they hold, and how they are typed (private).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <cppfly/config/config.hpp>

#include "entries.hpp"

namespace cppfly::config::detail {

using ValueMap = std::map<std::string, ConfigValue, std::less<>>;

inline constexpr std::string_view kMessagingPrefix = "pyfly.messaging";
inline constexpr std::string_view kProfilesKey = "pyfly.profiles.active";
inline constexpr std::string_view kRabbitWarning =
    "pyfly.messaging.rabbitmq is PyFly's RabbitMQ adapter; cppfly ignores it";

/// The declared topics: pyfly.messaging.kafka.topics.<name>.<field>.
inline constexpr std::string_view kTopicsKey = "pyfly.messaging.kafka.topics";

/// A key under pyfly.messaging.kafka.topics, split: the topic name as written (Kafka names are
/// case-sensitive and may hold '.', '_' and '-'), the field in canonical form (partitions,
/// replication-factor, config, grow-partitions; empty when the key is the topic itself) and what
/// follows the field (a topic config name under config, as written). The name ends before the
/// first segment that is a field name, so a topic named like "orders.config" cannot be declared.
struct TopicKey {
  std::string name;
  std::string field;
  std::string rest;
};
TopicKey split_topic_key(std::string_view after_topics);

/// The fields of a declared topic, in schema order.
const std::vector<std::string>& topic_fields();

/// Full dotted names of every scalar key cppfly knows under pyfly.messaging, in schema order.
const std::vector<std::string>& known_scalar_keys();

/// The pass-through maps, by full dotted name (pyfly.messaging.kafka.properties, ...).
const std::vector<std::string>& passthrough_keys();

/// Checks the shape of one file's entries under pyfly.messaging: unknown keys (with a suggestion),
/// a map where a value is expected and a value where a map is expected. Adds warnings for keys
/// PyFly knows that cppfly ignores. Throws ConfigError on the first problem.
void check_structure(const std::vector<Entry>& entries, std::vector<std::string>& warnings);

/// Types the merged values into MessagingProperties. Throws ConfigError naming origin, key and value.
MessagingProperties build_messaging(const ValueMap& values);

/// The pyfly.management keys cppfly reads (others, Spring Boot's or PyFly's, are left alone).
const std::vector<std::string>& management_keys();

/// Types pyfly.management into ManagementProperties. Throws ConfigError naming origin, key and value.
ManagementProperties build_management(const ValueMap& values);

/// Result of reading a duration ("250ms", "2s", "1m", "1500").
struct DurationParse {
  enum class Status { ok, syntax, fractional, not_positive, too_large } status{Status::syntax};
  std::chrono::milliseconds value{0};
};
DurationParse parse_duration(std::string_view text);

/// true/false/yes/no/on/off, any case.
std::optional<bool> parse_bool(std::string_view text);

/// Optimal-string-alignment edit distance, case-insensitive.
std::size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace cppfly::config::detail
