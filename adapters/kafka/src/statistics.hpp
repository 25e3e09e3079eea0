// librdkafka's statistics (statistics.interval.ms), reduced to what health checks and metrics read:
// whether a broker is connected, the producer's queue, and each assigned partition's lag. Internal.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>
#include <vector>

#include <cppfly/messaging/broker_status.hpp>

namespace cppfly::kafka::detail {

struct ClientStatistics {
  bool reported{false};              ///< false until librdkafka's first report
  std::chrono::steady_clock::time_point at{};
  bool broker_up{false};             ///< at least one broker connection is UP
  std::int64_t queued{0};            ///< msg_cnt: records in the producer's queues
  int assigned{0};                   ///< partitions being fetched (fetch_state other than none)
  std::vector<messaging::PartitionLag> lag;  ///< of those whose lag librdkafka knows
};

/// Reads one statistics JSON document; throws (nlohmann::json's errors) when it is not one.
[[nodiscard]] ClientStatistics parse_statistics(std::string_view json);

}  // namespace cppfly::kafka::detail
