// KafkaProperties → rd_kafka_conf_t. Internal.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <cppfly/config/properties.hpp>

#include "handles.hpp"

namespace cppfly::kafka::detail {

enum class ClientKind { producer, consumer };

/// Consumers' queued.min.messages (librdkafka's default is 100,000): see client_config.cpp.
inline constexpr int kQueuedMinMessages = 300000;
/// statistics.interval.ms unless the properties set it: how often health and lag are refreshed.
inline constexpr int kStatisticsIntervalMs = 1000;

/// Sets one librdkafka property; throws config::ConfigError naming `pyfly_key` when librdkafka
/// refuses it: for an unknown name, the nearest known name (never the value); for a bad value,
/// librdkafka's reason, with the value shown as "***" when the property is a secret.
void set_property(rd_kafka_conf_t* conf, const std::string& name, const std::string& value,
                  std::string_view pyfly_key);

/// The configuration of one client: the typed settings first, then `properties`, then
/// `producer_properties` or `consumer_properties` (each passed to librdkafka unchanged,
/// so a user's property wins over a typed default). Callbacks are not installed here.
/// Throws config::ConfigError.
[[nodiscard]] ConfHandle make_client_conf(const config::KafkaProperties& properties,
                                          const std::string& bootstrap_servers, ClientKind kind);

/// Applies what every broadcast (group-less) consumer needs on top of the consumer
/// configuration: its private group id, no commits, latest as the fallback reset.
void make_broadcast(rd_kafka_conf_t* conf, const std::string& group_id);

/// Every configuration property name librdkafka knows (global and topic properties).
[[nodiscard]] const std::vector<std::string>& librdkafka_property_names();

/// The value of a property in `conf` ("" when unset or unknown).
[[nodiscard]] std::string get_property(const rd_kafka_conf_t* conf, const char* name);

}  // namespace cppfly::kafka::detail
