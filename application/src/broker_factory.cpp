#include <cppfly/config/config.hpp>
#include <cppfly/messaging/broker_factory.hpp>
#include <cppfly/messaging/in_memory_broker.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cppfly/detail/log.hpp"

#ifdef CPPFLY_HAS_KAFKA
#include <cppfly/kafka/kafka_adapter.hpp>
#endif

namespace cppfly::messaging {

BrokerFactory BrokerFactory::with_builtin_adapters() {
  BrokerFactory factory;
  // A service on the in-memory broker may run for long: it keeps only the last 10,000 published records.
  factory.add("memory", [](const config::MessagingProperties&) {
    return std::make_unique<InMemoryMessageBroker>(InMemoryBrokerOptions{.max_published = 10000});
  });
#ifdef CPPFLY_HAS_KAFKA
  factory.add("kafka", [](const config::MessagingProperties& properties) {
    return std::make_unique<kafka::KafkaAdapter>(properties.kafka);
  });
#endif
  return factory;
}

void BrokerFactory::add(std::string name, Maker maker) { makers_.insert_or_assign(std::move(name), std::move(maker)); }

std::vector<std::string> BrokerFactory::names() const {
  std::vector<std::string> out;
  for (const auto& [name, maker] : makers_) out.push_back(name);
  return out;
}

std::string BrokerFactory::resolve(config::Provider provider) const {
  if (provider == config::Provider::auto_detect) return has("kafka") ? "kafka" : "memory";
  return std::string(config::to_string(provider));
}

std::unique_ptr<MessageBrokerPort> BrokerFactory::create(const config::MessagingProperties& properties) const {
  const std::string name = resolve(properties.provider);
  auto found = makers_.find(name);
  if (found == makers_.end()) {
    throw config::ConfigError(fmt::format("pyfly.messaging.provider: '{}' is not available in this build; available: {}",
                                          name, fmt::join(names(), ", ")));
  }
  if (properties.provider == config::Provider::auto_detect) {
    detail::log().info("messaging provider: {} (auto: {})", name,
                       name == "kafka" ? "the Kafka adapter is built in" : "no Kafka adapter in this build");
  } else {
    detail::log().info("messaging provider: {}", name);
  }
  return found->second(properties);
}

}  // namespace cppfly::messaging
