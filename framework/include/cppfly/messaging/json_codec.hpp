// JSON payloads: encode a value for publish, decode a Message for a typed handler.
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include <cppfly/messaging/message.hpp>

namespace cppfly::messaging {

/// A payload that cannot be decoded. Never retried: dead-lettered at once (or logged and skipped).
class PayloadDecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Parses the message value as JSON; throws PayloadDecodeError naming the topic and the parser's reason.
[[nodiscard]] nlohmann::json parse_json(const Message& message);

/// Decodes the message value into T through nlohmann's from_json; throws PayloadDecodeError.
template <class T>
[[nodiscard]] T decode_json(const Message& message) {
  nlohmann::json json = parse_json(message);
  try {
    return json.get<T>();
  } catch (const std::exception& e) {
    throw PayloadDecodeError("cannot decode payload on '" + message.topic + "': " + e.what());
  }
}

/// Serializes any value nlohmann can convert (to_json) into a compact JSON string.
template <class T>
[[nodiscard]] std::string encode_json(const T& value) {
  return nlohmann::json(value).dump();
}

}  // namespace cppfly::messaging
