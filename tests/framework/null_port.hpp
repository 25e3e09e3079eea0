// A port that does nothing: tests derive from it and override what they watch (publish, start ...).
#pragma once

#include <chrono>
#include <future>
#include <string>
#include <string_view>

#include <cppfly/messaging/broker_port.hpp>

namespace cppfly_test {

struct NullPort : cppfly::messaging::MessageBrokerPort {
  using DeliveryResult = cppfly::messaging::DeliveryResult;
  using PublishOptions = cppfly::messaging::PublishOptions;
  DeliveryResult publish(std::string_view, std::string_view, PublishOptions) override { return {}; }
  std::future<DeliveryResult> publish_async(std::string_view, std::string, PublishOptions) override { return {}; }
  void publish_async(std::string_view, std::string, PublishOptions, cppfly::messaging::DeliveryCallback) override {}
  bool flush(std::chrono::milliseconds) override { return true; }
  using MessageBrokerPort::subscribe;
  void subscribe(cppfly::messaging::Subscription) override {}
  void start() override {}
  void stop() override {}
};

}  // namespace cppfly_test
