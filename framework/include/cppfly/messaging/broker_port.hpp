// MessageBrokerPort: the one interface business code and adapters agree on.
#pragma once

#include <functional>
#include <future>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <cppfly/messaging/message.hpp>

namespace cppfly::messaging {

/// A handler receives each message; an exception it throws means "failed" (retry/dead-letter).
using MessageHandler = std::function<void(const Message&)>;

/// Any failure reported by a broker (publish refused, not started, unreachable, ...).
class BrokerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Thrown through a handler when its message was neither handled nor dead-lettered (the dead-letter
/// publish failed). Adapters must not acknowledge the message: they deliver it again later.
class RedeliveryRequired : public BrokerError {
 public:
  using BrokerError::BrokerError;
};

/// The port. Adapters: InMemoryMessageBroker (adapters/memory), KafkaAdapter (adapters/kafka).
class MessageBrokerPort {
 public:
  virtual ~MessageBrokerPort() = default;

  /// Blocks until the broker acknowledged the record; throws BrokerError on failure.
  virtual void publish(std::string_view topic, std::string_view value, PublishOptions options = {}) = 0;
  /// Returns at once; the future holds where the record landed, or the error.
  virtual std::future<DeliveryResult> publish_async(std::string_view topic, std::string value,
                                                    PublishOptions options = {}) = 0;
  /// No group: this handler gets every message. A group: one member of the group gets each message.
  virtual void subscribe(std::string_view topic, MessageHandler handler, std::optional<std::string> group = {}) = 0;
  /// Connect and begin consuming. subscribe() after start() also works.
  virtual void start() = 0;
  /// Stop fetching, finish in-flight handlers, commit, flush. Idempotent.
  virtual void stop() = 0;
};

}  // namespace cppfly::messaging
