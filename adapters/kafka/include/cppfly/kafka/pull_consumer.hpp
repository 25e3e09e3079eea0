// PullConsumer: records fetched when the caller asks (poll), for code that runs its own loop.
//
// Kafka's KafkaConsumer shape on the same pyfly.messaging.kafka settings as the adapter: a
// group, its topics, commits when the caller says. Prefer listeners (at-least-once, retries,
// dead letters done for you); take a PullConsumer for batch jobs, tools and loops that must
// decide themselves when a record counts as done. Not thread-safe: one thread uses it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <cppfly/config/properties.hpp>
#include <cppfly/messaging/message.hpp>

namespace cppfly::kafka {

class PullConsumer {
 public:
  /// Joins `group` on `topics` with the adapter's settings (bootstrap servers, auto-offset-reset,
  /// pass-through properties, ...). Throws messaging::BrokerError when the cluster does not
  /// answer within connect-timeout, config::ConfigError when librdkafka refuses a property.
  PullConsumer(const config::KafkaProperties& properties, std::string group, std::vector<std::string> topics);
  /// close()s (without committing).
  ~PullConsumer();
  PullConsumer(const PullConsumer&) = delete;
  PullConsumer& operator=(const PullConsumer&) = delete;

  /// Up to `max_records` records: waits at most `timeout` for the first, then takes what is
  /// already fetched. Empty when nothing came. Partitions are assigned during poll().
  [[nodiscard]] std::vector<messaging::Message> poll(std::chrono::milliseconds timeout, std::size_t max_records = 500);
  /// Commits the position after every record poll() returned; waits for the broker at most
  /// connect-timeout. Throws messaging::BrokerError on failure or timeout. Partitions revoked in a
  /// rebalance are committed then.
  void commit();
  /// The same without waiting; a failure is logged.
  void commit_async();
  /// Commits `next_offset` (the offset of the next record to read) for one partition, whatever
  /// poll() returned; waits for the broker at most connect-timeout. Throws messaging::BrokerError.
  void commit(const std::string& topic, std::int32_t partition, std::int64_t next_offset);
  /// The offset this group committed for the partition (-1: none); at most connect-timeout.
  [[nodiscard]] std::int64_t committed(const std::string& topic, std::int32_t partition);
  /// The partition's low and high watermarks (first offset kept, offset of the next record
  /// written), from the broker; at most connect-timeout. Throws messaging::BrokerError.
  [[nodiscard]] std::pair<std::int64_t, std::int64_t> watermarks(const std::string& topic, std::int32_t partition);
  /// How many partitions `topic` has (-1: the cluster has no such topic). Never creates it.
  [[nodiscard]] int partition_count(const std::string& topic);
  /// The next poll() of this partition starts at `offset` (an assigned partition).
  void seek(const std::string& topic, std::int32_t partition, std::int64_t offset);
  /// poll() returns nothing of this partition until resume().
  void pause(const std::string& topic, std::int32_t partition);
  void resume(const std::string& topic, std::int32_t partition);
  /// The partitions assigned to this member now.
  [[nodiscard]] std::vector<std::pair<std::string, std::int32_t>> assignment() const;
  /// Leaves the group (bounded by connect-timeout). Idempotent; nothing is committed.
  void close() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cppfly::kafka
