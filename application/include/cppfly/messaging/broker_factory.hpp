// BrokerFactory: maps pyfly.messaging.provider to an adapter (memory, and kafka when built with it).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <cppfly/config/properties.hpp>
#include <cppfly/messaging/broker_port.hpp>

namespace cppfly::messaging {

class BrokerFactory {
 public:
  using Maker = std::function<std::unique_ptr<MessageBrokerPort>(const config::MessagingProperties&)>;

  /// The adapters this build has, registered explicitly: "memory", and "kafka" when built with it.
  [[nodiscard]] static BrokerFactory with_builtin_adapters();

  void add(std::string name, Maker maker);
  [[nodiscard]] bool has(const std::string& name) const { return makers_.contains(name); }
  [[nodiscard]] std::vector<std::string> names() const;

  /// auto → "kafka" when available, else "memory"; otherwise the provider's own name.
  [[nodiscard]] std::string resolve(config::Provider provider) const;
  /// Builds the adapter for `properties.provider` (logging the choice); an unavailable one is
  /// refused (config::ConfigError) with the list of available adapters.
  [[nodiscard]] std::unique_ptr<MessageBrokerPort> create(const config::MessagingProperties& properties) const;

 private:
  std::map<std::string, Maker> makers_;
};

}  // namespace cppfly::messaging
