#include <cppfly/messaging/dead_letter.hpp>
#include <cppfly/messaging/json_codec.hpp>

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <thread>

#include "cppfly/detail/log.hpp"
#include "type_name.hpp"

namespace cppfly::detail {

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> readable(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  return status == 0 && readable ? std::string(readable.get()) : std::string(mangled);
}

}  // namespace cppfly::detail

namespace cppfly::messaging {

namespace {

/// The type name and message of the exception being handled.
struct Failure {
  std::string type;
  std::string message;
};

Failure describe_current_exception() {
  try {
    throw;
  } catch (const std::exception& e) {
    return {detail::type_name(typeid(e)), e.what()};
  } catch (...) {
    const std::type_info* type = abi::__cxa_current_exception_type();
    return {type ? detail::type_name(*type) : "unknown", "a non-standard exception"};
  }
}

std::string where(const Message& message) {
  std::string text = message.topic;
  if (message.partition >= 0) text += "[" + std::to_string(message.partition) + "]";
  if (message.offset >= 0) text += "@" + std::to_string(message.offset);
  return text;
}

}  // namespace

PublishOptions dead_letter_options(const Message& message, std::string_view exception_type,
                                   std::string_view exception_message, int retries) {
  namespace h = dead_letter_headers;
  PublishOptions options{.key = message.key, .headers = message.headers, .partition = std::nullopt};
  options.headers.set(h::original_topic, message.topic);
  options.headers.set(h::exception, std::string(exception_type));
  options.headers.set(h::exception_message, std::string(exception_message));
  if (message.partition >= 0) options.headers.set(h::original_partition, std::to_string(message.partition));
  if (message.offset >= 0) options.headers.set(h::original_offset, std::to_string(message.offset));
  options.headers.set(h::retry_count, std::to_string(retries));
  return options;
}

MessageHandler with_failure_policy(MessageHandler handler, FailurePolicy policy, MessageBrokerPort& broker) {
  return [handler = std::move(handler), policy = std::move(policy), &broker](const Message& message) {
    auto dead_letter = [&](const Failure& failure, int retries) {
      try {
        broker.publish(policy.dead_letter_topic, message.value,
                       dead_letter_options(message, failure.type, failure.message, retries));
      } catch (const std::exception& e) {
        // Neither handled nor dead-lettered: the adapter must deliver it again, not acknowledge it.
        detail::log().error("listener {}: {} could not be sent to dead-letter topic '{}': {}", policy.listener_name,
                            where(message), policy.dead_letter_topic, e.what());
        throw RedeliveryRequired("dead-letter publish to '" + policy.dead_letter_topic + "' failed: " + e.what());
      }
      detail::log().warn("listener {}: {} sent to dead-letter topic '{}' after {} retries: {}: {}",
                         policy.listener_name, where(message), policy.dead_letter_topic, retries, failure.type,
                         failure.message);
    };
    const int retries = std::max(0, policy.retry.retries);
    for (int attempt = 0;; ++attempt) {
      try {
        handler(message);
        return;
      } catch (const PayloadDecodeError&) {
        // Retrying cannot fix a payload: dead-letter it at once, or skip it.
        Failure failure = describe_current_exception();
        if (policy.dead_letter_topic.empty()) {
          detail::log().error("listener {}: {} skipped, payload cannot be decoded: {}", policy.listener_name,
                              where(message), failure.message);
          return;
        }
        dead_letter(failure, attempt);
        return;
      } catch (...) {
        Failure failure = describe_current_exception();
        if (attempt < retries) {
          auto wait = policy.retry.delay_before(attempt + 1);
          detail::log().warn("listener {}: {} failed ({}: {}); retry {}/{} in {} ms", policy.listener_name,
                             where(message), failure.type, failure.message, attempt + 1, retries, wait.count());
          const bool waited = policy.waits ? policy.waits->wait_for(wait)
                                           : (std::this_thread::sleep_for(wait), true);
          if (!waited) {
            // Stopping: not settled, so the adapter does not acknowledge it and it comes again.
            detail::log().info("listener {}: {} not retried: stopping; it is delivered again", policy.listener_name,
                               where(message));
            throw RedeliveryRequired("retry cancelled: the application is stopping");
          }
          continue;
        }
        if (policy.dead_letter_topic.empty()) {
          detail::log().error("listener {}: {} failed after {} retries, no dead-letter topic: {}: {}",
                              policy.listener_name, where(message), retries, failure.type, failure.message);
          throw;
        }
        dead_letter(failure, retries);
        return;
      }
    }
  };
}

}  // namespace cppfly::messaging
