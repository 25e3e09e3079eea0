// Typed messaging properties (pyfly.messaging.*), with the defaults a service gets when a key is absent.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cppfly::config {

/// pyfly.messaging.provider
enum class Provider { auto_detect, kafka, memory };

[[nodiscard]] std::string_view to_string(Provider provider) noexcept;

/// pyfly.messaging.kafka.topics.<name>: a topic the Kafka adapter creates at start when it is
/// missing (Spring's NewTopic / KafkaAdmin). Absent numbers take the broker's defaults
/// (num.partitions, default.replication.factor).
struct TopicProperties {
  std::optional<int> partitions{};          ///< partitions; an existing topic with fewer is grown or warned about
  std::optional<int> replication_factor{};  ///< replicas of each partition (creation only)
  std::map<std::string, std::string> config{};  ///< topic configs (retention.ms, cleanup.policy ...), at creation
  bool grow_partitions{false};              ///< true: an existing topic with fewer partitions is grown
};

/// pyfly.messaging.kafka.*
struct KafkaProperties {
  std::string bootstrap_servers{"localhost:9092"};  ///< comma-separated; "embedded" starts a mock cluster
  std::string client_id{"cppfly"};
  std::string transactional_id_prefix{};             ///< non-empty: transactions on (transactional.id prefix)
  int embedded_brokers{1};                           ///< brokers in the embedded mock cluster
  std::string auto_offset_reset{"earliest"};         ///< earliest | latest (new groups only)
  std::string acks{"all"};                           ///< all | 1 | 0 (passed to librdkafka)
  bool enable_idempotence{true};
  std::chrono::milliseconds commit_interval{1000};   ///< timer for committing stored offsets
  std::chrono::milliseconds connect_timeout{10000};  ///< start(): report an unreachable cluster after this
  std::chrono::milliseconds publish_timeout{30000};  ///< publish(): delivery report deadline (message.timeout.ms)
  std::chrono::milliseconds reconnect_backoff_max{1000};  ///< reconnect.backoff.max.ms
  std::map<std::string, std::string> properties{};   ///< passed to librdkafka unchanged (both clients)
  std::map<std::string, std::string> producer_properties{};  ///< producer only
  std::map<std::string, std::string> consumer_properties{};  ///< consumer only
  std::map<std::string, TopicProperties> topics{};   ///< declared topics, by name (created at start)
};

/// pyfly.messaging.listener.* (and PyFly's pyfly.context.shutdown-timeout): every listener container's bounds.
struct ListenerProperties {
  std::size_t max_buffered_records{50000};                ///< fetched, not yet settled, per listener
  std::size_t max_buffered_bytes{std::size_t{64} << 20U};  ///< the same in payload bytes
  std::chrono::milliseconds shutdown_timeout{30000};      ///< pyfly.context.shutdown-timeout
};

/// pyfly.messaging.*
struct MessagingProperties {
  Provider provider{Provider::memory};
  KafkaProperties kafka{};
  ListenerProperties listener{};
  bool log_payloads{false};  ///< log-payloads: payload bytes in logs and exception texts (cut to 256 bytes)
  /// trace-propagation: which published records get a W3C traceparent: "continue" (those published
  /// under a trace), "always" (every one: a publish under none starts one) or "off"
  std::string trace_propagation{"continue"};
};

/// pyfly.management.*: the actuator (PyFly's keys, which are Spring Boot's). The management server
/// runs only when the configuration has a pyfly.management section; then port 9090 unless set.
struct ManagementProperties {
  bool configured{false};                  ///< some pyfly.management key is set: the server runs (unless port -1)
  int port{9090};                          ///< server.port: -1 disables, 0 picks a free port (logged)
  std::string address{"0.0.0.0"};          ///< server.address: the interface to listen on
  std::string base_path{"/actuator"};      ///< endpoints.web.base-path
  std::vector<std::string> include{"health", "info"};  ///< endpoints.web.exposure.include ("*": all)
  std::vector<std::string> exclude{};      ///< endpoints.web.exposure.exclude
  std::optional<std::int64_t> readiness_max_lag{};  ///< health.readiness.max-lag: records per partition; none: not checked

  /// The server should run: configured and port not -1.
  [[nodiscard]] bool enabled() const noexcept { return configured && port != -1; }
  /// Whether endpoint `id` (health, info, prometheus) is exposed.
  [[nodiscard]] bool exposes(std::string_view id) const;
};

}  // namespace cppfly::config
