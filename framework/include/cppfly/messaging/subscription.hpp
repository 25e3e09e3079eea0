// Subscription: a handler for one topic, and how its listener container runs it.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include <cppfly/messaging/listener_options.hpp>
#include <cppfly/messaging/message.hpp>
#include <cppfly/messaging/retry_policy.hpp>

namespace cppfly::messaging {

class MessagingObserver;

/// A handler receives each message; an exception it throws means "failed" (retry/dead-letter).
using MessageHandler = std::function<void(const Message&)>;
/// A batch listener's handler: records of one partition in offset order (BatchFailure names a failed one).
using BatchHandler = std::function<void(std::span<const Message>)>;

/// What happens to a message whose handler keeps failing.
struct FailurePolicy {
  RetryPolicy retry{};              ///< none by default: a failure is final at once
  std::string dead_letter_topic{};  ///< empty: no dead-letter topic (the record is logged and skipped)
  std::string listener_name{};      ///< for logs
  std::string group{};              ///< the listener's group: x-original-group (empty: none)
};

/// How the listener container runs one subscription's records (DESIGN.md, "The listener container").
struct ContainerOptions {
  Ordering ordering{Ordering::partition};  ///< which records wait for each other
  int concurrency{1};                      ///< records handled at once (worker threads)
  FailurePolicy failure{};
  /// Records fetched and not yet settled, at most (Kafka: above it the partitions behind are paused,
  /// resumed below half of it; in-memory broker: publish waits).
  std::size_t max_buffered_records{50000};
  std::size_t max_buffered_bytes{std::size_t{64} << 20U};  ///< the same bound on their payload bytes
  /// stop() and a revoke let running handlers finish this long; then they are abandoned.
  std::chrono::milliseconds shutdown_timeout{std::chrono::seconds{30}};
  /// Each attempt in a transaction with the record's offset (adapters that have transactions).
  bool transactional{false};
  /// Batch handlers: records in one call, at most (ListenerOptions::batch_max_records).
  std::size_t batch_max_records{500};
  /// Batch handlers: how long a batch may wait from its first record to fill (0: what is buffered).
  std::chrono::milliseconds batch_max_wait{0};
  /// Told of every handler attempt (start, end, outcome); null: nothing is told (Application sets it).
  std::shared_ptr<MessagingObserver> observer{};
};

/// subscribe()'s argument: a topic, the handler, the group (none: broadcast) and the container's options.
struct Subscription {
  std::string topic{};
  MessageHandler handler{};
  std::optional<std::string> group{};
  ContainerOptions container{};
  /// When set, the container runs this instead of `handler`: batches of one partition's records
  /// (partition ordering only, not transactional). `handler` may stay empty.
  BatchHandler batch_handler{};
};

}  // namespace cppfly::messaging
