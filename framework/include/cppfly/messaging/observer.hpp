// MessagingObserver: what the framework tells about its work (publishes, handler runs, commits), for
// metrics and tracing (the built-in Prometheus metrics, or a user's OpenTelemetry spans). Register
// one with Application::add_observer(), or with MessageBrokerPort::observe() and
// ContainerOptions::observer when wiring a broker by hand.
//
// Calls come from the threads doing the work (publishers, delivery-report threads, container
// workers, fetch threads), concurrently: an observer is thread-safe, quick, and never throws (its
// members are noexcept). The views it is given live for the call only.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include <cppfly/messaging/message.hpp>

namespace cppfly::messaging {

/// How one handler attempt ended.
enum class ConsumeOutcome {
  success,        ///< the handler returned: the record is settled
  retried,        ///< it failed and is scheduled again after its backoff
  dead_lettered,  ///< it failed for the last time (or could not be decoded) and went to the dead-letter topic
  skipped,        ///< it failed for the last time with no dead-letter topic: logged and given up
};

/// "success", "retried", "dead_lettered", "skipped" (the metrics' outcome label).
[[nodiscard]] std::string_view to_string(ConsumeOutcome outcome) noexcept;

/// A publish finished (its delivery report came, or it failed before being queued).
struct PublishEvent {
  std::string_view topic;             ///< the topic published to
  bool ok{true};                      ///< false: the broker refused it or it timed out
  std::chrono::nanoseconds duration;  ///< from the publish call to the delivery report
  const Headers* headers{nullptr};    ///< the record's headers (null when unknown)
};

/// Which listener runs a record, and the record.
struct ConsumeEvent {
  std::string_view listener;  ///< the listener's name (or 'topic' for an anonymous subscription)
  std::string_view group;     ///< its consumer group (empty: broadcast)
  const Message& message;     ///< the record (topic, partition, offset, headers, attempt)
};

/// A handler attempt ended.
struct ConsumeEndEvent {
  ConsumeEvent record;
  ConsumeOutcome outcome{ConsumeOutcome::success};
  std::chrono::nanoseconds duration{};  ///< the attempt's run time (handler, and dead-letter publish)
};

/// Offsets were committed for a group (Kafka), or the commit failed.
struct CommitEvent {
  std::string_view group;   ///< the consumer group
  std::string_view topic;     ///< the subscription's topic
  std::int32_t partition{-1};  ///< -1: all the consumer's stored offsets at once (the commit at a revoke or a stop)
  std::int64_t offset{-1};     ///< the committed position (the next offset to read); -1 with partition -1
  bool ok{true};            ///< false: the commit failed or timed out
};

/// Receives the framework's events; every member has a default that does nothing.
class MessagingObserver {
 public:
  virtual ~MessagingObserver() = default;
  /// A publish made through the broker finished (success or failure).
  virtual void on_publish(const PublishEvent& /*event*/) noexcept {}
  /// A handler attempt is about to start (on the thread that runs it: thread-locals set here are seen
  /// by the handler and by on_consume_end).
  virtual void on_consume_start(const ConsumeEvent& /*event*/) noexcept {}
  /// That attempt ended, with its outcome and duration (same thread as on_consume_start).
  virtual void on_consume_end(const ConsumeEndEvent& /*event*/) noexcept {}
  /// A partition's committed offset moved (or a commit failed).
  virtual void on_commit(const CommitEvent& /*event*/) noexcept {}
};

/// Forwards each event to several observers, in the order they were added (add before the work starts).
class ObserverList final : public MessagingObserver {
 public:
  void add(std::shared_ptr<MessagingObserver> observer);
  [[nodiscard]] bool empty() const noexcept { return observers_.empty(); }
  void on_publish(const PublishEvent& event) noexcept override;
  void on_consume_start(const ConsumeEvent& event) noexcept override;
  void on_consume_end(const ConsumeEndEvent& event) noexcept override;
  void on_commit(const CommitEvent& event) noexcept override;

 private:
  std::vector<std::shared_ptr<MessagingObserver>> observers_;
};

}  // namespace cppfly::messaging
