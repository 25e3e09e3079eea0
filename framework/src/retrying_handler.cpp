#include <cppfly/messaging/dead_letter.hpp>
#include <cppfly/messaging/json_codec.hpp>

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <iterator>
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

/// `text` cut to at most `limit` bytes at a UTF-8 character boundary, "..." marking the cut.
std::string bounded(std::string_view text, std::size_t limit) {
  if (text.size() <= limit) return std::string(text);
  std::size_t end = limit - 3;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0U) == 0x80U) --end;  // not inside a character
  return std::string(text.substr(0, end)) + "...";
}

PublishOptions dead_letter_options(const Message& message, std::string_view exception_type,
                                   std::string_view exception_message, int retries, std::string_view group) {
  namespace h = dead_letter_headers;
  static constexpr std::string_view kDiagnostics[] = {h::original_topic,     h::exception,        h::exception_message,
                                                      h::original_partition, h::original_offset,  h::original_timestamp,
                                                      h::original_group,     h::retry_count};
  PublishOptions options{.key = message.key, .headers = {}, .partition = std::nullopt};
  // A record dead-lettered before (then redriven) carries earlier diagnostics: they are replaced,
  // never stacked, so the record cannot grow with each trip.
  for (const auto& [name, value] : message.headers) {
    if (std::find(std::begin(kDiagnostics), std::end(kDiagnostics), name) == std::end(kDiagnostics)) {
      options.headers.add(name, value);
    }
  }
  options.headers.add(std::string(h::original_topic), message.topic);
  options.headers.add(std::string(h::exception), std::string(exception_type));
  options.headers.add(std::string(h::exception_message), bounded(exception_message, h::exception_message_limit));
  if (message.partition >= 0) options.headers.add(std::string(h::original_partition), std::to_string(message.partition));
  if (message.offset >= 0) options.headers.add(std::string(h::original_offset), std::to_string(message.offset));
  if (message.timestamp_ms >= 0) {
    options.headers.add(std::string(h::original_timestamp), std::to_string(message.timestamp_ms));
  }
  if (!group.empty()) options.headers.add(std::string(h::original_group), std::string(group));
  options.headers.add(std::string(h::retry_count), std::to_string(retries));
  return options;
}

MessageHandler with_failure_policy(MessageHandler handler, FailurePolicy policy, MessageBrokerPort& broker) {
  return [handler = std::move(handler), policy = std::move(policy), &broker](const Message& message) {
    auto dead_letter = [&](const Failure& failure, int retries) {
      try {
        broker.publish(policy.dead_letter_topic, message.value,
                       dead_letter_options(message, failure.type, failure.message, retries, policy.group));
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
