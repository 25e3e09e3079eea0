// BrokerStatus: what a broker knows of its health and work at one moment (MessageBrokerPort::status()),
// read by the actuator's health endpoints and the Prometheus metrics.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cppfly::messaging {

/// How far a consumer is behind on one partition.
struct PartitionLag {
  std::string topic;
  std::int32_t partition{0};
  std::int64_t lag{0};  ///< records between the committed (or stored) position and the high watermark
};

/// One subscription's listener container and consumer.
struct ListenerStatus {
  std::string listener;             ///< the listener's name (or 'topic' for an anonymous subscription)
  std::string topic;                ///< its subscribed topic
  std::string group;                ///< its consumer group (empty: broadcast)
  std::size_t buffered{0};          ///< records fetched and not yet settled
  std::size_t retries_waiting{0};   ///< records waiting for a retry's backoff
  std::optional<int> assigned{};    ///< partitions assigned to it (unknown: not reported by the adapter)
  std::vector<PartitionLag> lag{};  ///< per assigned partition, where known
};

/// The whole broker.
struct BrokerStatus {
  std::optional<bool> reachable{};            ///< the broker answers (unknown: the adapter cannot tell)
  std::string detail{};                       ///< why it is not reachable, or where it is
  std::optional<std::size_t> producer_queue{};  ///< records queued in the producer, not yet delivered
  std::vector<ListenerStatus> listeners{};
};

}  // namespace cppfly::messaging
