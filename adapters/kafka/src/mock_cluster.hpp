// The embedded Kafka: librdkafka's in-process mock cluster. Development and tests only.
// Internal.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include "handles.hpp"

typedef struct rd_kafka_mock_cluster_s rd_kafka_mock_cluster_t;  // NOLINT: librdkafka's own name

namespace cppfly::kafka::detail {

struct MockClusterDeleter {
  void operator()(rd_kafka_mock_cluster_t* cluster) const noexcept;
};

class EmbeddedCluster {
 public:
  /// Partitions of a topic the adapter creates on the mock cluster.
  static constexpr int kTopicPartitions = 3;

  /// Starts `brokers` mock brokers listening on 127.0.0.1 (random ports). Throws
  /// messaging::BrokerError when librdkafka cannot start them.
  explicit EmbeddedCluster(int brokers);
  ~EmbeddedCluster() = default;
  EmbeddedCluster(const EmbeddedCluster&) = delete;
  EmbeddedCluster& operator=(const EmbeddedCluster&) = delete;

  /// "127.0.0.1:port,..."
  [[nodiscard]] const std::string& bootstrap_servers() const noexcept { return bootstraps_; }

  /// Creates `topic` with kTopicPartitions partitions unless it exists. The mock cluster's
  /// own auto-creation (on a producer's metadata request) would give it 4 partitions,
  /// and a consumer subscribing first would see "unknown topic": creating it up front
  /// makes both paths behave the same. Thread-safe; cheap after the first call.
  void ensure_topic(std::string_view topic) { ensure_topic(topic, kTopicPartitions); }
  /// The same with `partitions` partitions (a declared topic, pyfly.messaging.kafka.topics).
  void ensure_topic(std::string_view topic, int partitions);

 private:
  KafkaHandle owner_;  ///< the rd_kafka_t librdkafka needs to run the mock cluster on
  std::unique_ptr<rd_kafka_mock_cluster_t, MockClusterDeleter> cluster_;  ///< destroyed before owner_
  std::string bootstraps_;
  int brokers_{1};
  std::mutex mutex_;
  std::set<std::string, std::less<>> topics_;
};

}  // namespace cppfly::kafka::detail
