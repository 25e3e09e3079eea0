#include <cppfly/messaging/json_codec.hpp>

namespace cppfly::messaging {

nlohmann::json parse_json(const Message& message) {
  try {
    return nlohmann::json::parse(message.value);
  } catch (const nlohmann::json::exception& e) {
    throw PayloadDecodeError("cannot parse JSON payload on '" + message.topic + "': " + e.what());
  }
}

}  // namespace cppfly::messaging
