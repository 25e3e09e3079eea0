#include "client_config.hpp"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <vector>

#include <cppfly/config/config.hpp>
#include <cppfly/config/secrets.hpp>
#include <cppfly/config/suggest.hpp>

#include "client_context.hpp"

namespace cppfly::kafka::detail {
namespace {

constexpr std::string_view kPrefix = "pyfly.messaging.kafka.";

std::string key(std::string_view suffix) { return std::string(kPrefix) + std::string(suffix); }

void set_all(rd_kafka_conf_t* conf, const std::map<std::string, std::string>& properties,
             std::string_view section) {
  for (const auto& [name, value] : properties) {
    set_property(conf, name, value, key(section) + "." + name);
  }
}

std::string millis(std::chrono::milliseconds value) { return std::to_string(value.count()); }

/// Every property name librdkafka knows (global and topic), read once from its own table
/// (rd_kafka_conf_properties_show: one "name | C/P | ..." row per property).
std::vector<std::string> read_property_names() {
  char* buffer = nullptr;
  std::size_t size = 0;
  FILE* out = open_memstream(&buffer, &size);
  if (out == nullptr) return {};
  rd_kafka_conf_properties_show(out);
  std::fclose(out);
  std::istringstream table(std::string(buffer, size));
  std::free(buffer);  // NOLINT(cppcoreguidelines-no-malloc): open_memstream's buffer
  std::vector<std::string> names;
  for (std::string line; std::getline(table, line);) {
    const auto bar = line.find('|');
    if (bar == std::string::npos || bar == 0) continue;
    std::string name = line.substr(0, line.find_first_of(" |"));
    if (name.empty() || name == "Property" || name.front() == '-') continue;
    names.push_back(std::move(name));
  }
  return names;
}

}  // namespace

const std::vector<std::string>& librdkafka_property_names() {
  static const std::vector<std::string> names = read_property_names();
  return names;
}

void set_property(rd_kafka_conf_t* conf, const std::string& name, const std::string& value,
                  std::string_view pyfly_key) {
  std::array<char, 512> reason{};
  const auto result = rd_kafka_conf_set(conf, name.c_str(), value.c_str(), reason.data(), reason.size());
  if (result == RD_KAFKA_CONF_OK) return;
  std::string message = std::string(pyfly_key) + ": ";
  if (result == RD_KAFKA_CONF_UNKNOWN) {
    // The value of an unknown (often misspelled) property may well be a secret: never shown.
    message += "librdkafka has no property " + name;
    if (const auto nearest = config::nearest_name(name, librdkafka_property_names())) {
      message += "; did you mean " + *nearest + "?";
    }
  } else {
    // librdkafka's reason quotes the value: masked like the value when the property is a secret.
    const std::string shown = config::shown_value(name, value);
    std::string why = reason.data();
    if (shown != value) why = mask_secrets(std::move(why), {value});
    message += "librdkafka refused " + name + "=\"" + shown + "\": " + why;
  }
  throw config::ConfigError(message, std::string(pyfly_key));
}

ConfHandle make_client_conf(const config::KafkaProperties& properties, const std::string& bootstrap_servers,
                            ClientKind kind) {
  // librdkafka reads message.timeout.ms=0 as "forever"; the adapter's bounds must be real.
  if (properties.publish_timeout.count() <= 0) {
    throw config::ConfigError(key("publish-timeout") + ": must be positive, got " +
                              millis(properties.publish_timeout) + " ms");
  }
  if (properties.connect_timeout.count() <= 0) {
    throw config::ConfigError(key("connect-timeout") + ": must be positive, got " +
                              millis(properties.connect_timeout) + " ms");
  }
  ConfHandle conf(rd_kafka_conf_new());
  rd_kafka_conf_t* c = conf.get();

  set_property(c, "bootstrap.servers", bootstrap_servers, key("bootstrap-servers"));
  set_property(c, "client.id", properties.client_id, key("client-id"));
  set_property(c, "reconnect.backoff.max.ms", millis(properties.reconnect_backoff_max), key("reconnect-backoff-max"));
  if (properties.reconnect_backoff_max.count() < 100) {
    // librdkafka refuses reconnect.backoff.ms (default 100) above the maximum.
    set_property(c, "reconnect.backoff.ms", millis(properties.reconnect_backoff_max), key("reconnect-backoff-max"));
  }

  if (kind == ClientKind::producer) {
    set_property(c, "acks", properties.acks, key("acks"));
    set_property(c, "enable.idempotence", properties.enable_idempotence ? "true" : "false",
                 key("enable-idempotence"));
    set_property(c, "message.timeout.ms", millis(properties.publish_timeout), key("publish-timeout"));
  } else {
    set_property(c, "auto.offset.reset", properties.auto_offset_reset, key("auto-offset-reset"));
    set_property(c, "auto.commit.interval.ms", millis(properties.commit_interval), key("commit-interval"));
    // The consumer commits settled positions itself at this interval, each with the listener
    // container's metadata (librdkafka's timer commits its offset store, which drops metadata).
    set_property(c, "enable.auto.commit", "false", key("commit-interval"));
    set_property(c, "enable.auto.offset.store", "false", key("commit-interval"));
    // Eager assignors: librdkafka 2.0.2 can lose an assignment when offsets are committed
    // during a cooperative rebalance (librdkafka issue 4059).
    set_property(c, "partition.assignment.strategy", "range,roundrobin", key("consumer-properties"));
    // Like the Java consumer (and Spring): subscribing to a topic may create it when the
    // broker allows it (auto.create.topics.enable). librdkafka's consumer default is false.
    set_property(c, "allow.auto.create.topics", "true", key("consumer-properties"));
    // librdkafka 2.0.2 stops fetching for 1 s (a fixed back-off) once queued.min.messages
    // records are waiting locally; a consumer that handles more than that many records a
    // second then idles for the rest of the second. 100,000 (librdkafka's default) caps a
    // backlog drain near 160 k msg/s; 300,000 lets a JSON listener run at its own pace.
    // The payload held stays bounded by queued.max.messages.kbytes (64 MiB by default).
    set_property(c, "queued.min.messages", std::to_string(kQueuedMinMessages), key("consumer-properties"));
    // Records of aborted transactions are never handed to a listener (librdkafka's default too;
    // said here because transactions depend on it).
    set_property(c, "isolation.level", "read_committed", key("consumer-properties"));
  }

  // Statistics feed the health checks and metrics (broker connected, lag, producer queue); a
  // statistics.interval.ms among the properties wins (0 turns them off).
  set_property(c, "statistics.interval.ms", std::to_string(kStatisticsIntervalMs), key("properties"));

  set_all(c, properties.properties, "properties");
  if (kind == ClientKind::producer) {
    set_all(c, properties.producer_properties, "producer-properties");
  } else {
    set_all(c, properties.consumer_properties, "consumer-properties");
  }
  return conf;
}

void make_broadcast(rd_kafka_conf_t* conf, const std::string& group_id) {
  set_property(conf, "group.id", group_id, "group");
  // A broadcast subscription is private to this process: it never commits, so nothing
  // is left behind on the cluster but an empty group that expires.
  set_property(conf, "enable.auto.commit", "false", "group");
  set_property(conf, "auto.offset.reset", "latest", "group");
}

std::string get_property(const rd_kafka_conf_t* conf, const char* name) {
  std::array<char, 1024> value{};
  std::size_t size = value.size();
  if (rd_kafka_conf_get(conf, name, value.data(), &size) != RD_KAFKA_CONF_OK) return {};
  return std::string(value.data());
}

}  // namespace cppfly::kafka::detail
