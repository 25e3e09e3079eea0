// ListenerOptions: what a listener macro's braces hold (topic, group, retries, dead-letter topic, ...).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include <cppfly/messaging/retry_policy.hpp>

namespace cppfly::messaging {

/// Which records of a listener must run one after the other (its ordering units).
/// partition: the records of one partition, in offset order (the default). key: the records of one
/// key (within its partition), in offset order; different keys run in parallel. none: no order.
enum class Ordering { partition, key, none };

[[nodiscard]] constexpr const char* to_string(Ordering ordering) noexcept {
  switch (ordering) {
    case Ordering::partition:
      return "partition";
    case Ordering::key:
      return "key";
    case Ordering::none:
      break;
  }
  return "none";
}

/// Options of one listener. Designated initializers must follow this declaration order:
/// topic, topics, group_id, retries, retry_delay, backoff, dead_letter_topic, concurrency, ordering, transactional,
/// batch_max_records, batch_max_wait.
struct ListenerOptions {
  std::string topic{};                        ///< one topic (or use `topics`, or both)
  std::vector<std::string> topics{};          ///< several topics
  std::string group_id{};                     ///< empty: broadcast (every such listener gets every message)
  int retries{0};                             ///< retries after the first failed attempt
  std::chrono::milliseconds retry_delay{1000};///< attempt N waits retry_delay × N (linear)
  Backoff backoff{Backoff::linear};           ///< or Backoff::exponential: retry_delay × 2^(N-1)
  std::string dead_letter_topic{};            ///< where exhausted / undecodable messages go
  int concurrency{1};                         ///< records of this listener handled at once in this process
  Ordering ordering{Ordering::partition};     ///< which records wait for each other
  /// Exactly-once consume-process-produce (Kafka, needs transactional-id-prefix and a group): what the
  /// handler publishes and the record's offset commit in one transaction, one record at a time.
  bool transactional{false};
  /// Batch listeners (a `std::span<const T>` or `const std::vector<T>&` parameter): records in one call, at most.
  std::size_t batch_max_records{500};
  /// Batch listeners: how long a batch may wait, from its first record, to fill up to batch_max_records
  /// (0: it takes what is already buffered and runs at once).
  std::chrono::milliseconds batch_max_wait{0};

  /// `topic` and `topics` together, without duplicates, in order.
  [[nodiscard]] std::vector<std::string> all_topics() const;
};

}  // namespace cppfly::messaging
