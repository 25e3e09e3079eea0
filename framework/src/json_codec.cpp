#include <cppfly/messaging/json_codec.hpp>

#include <cppfly/messaging/payload_logging.hpp>

namespace cppfly::messaging {
namespace {

/// nlohmann's parse error, its quote of the payload ("last read: '...'") replaced by the payload as
/// payload logging allows.
std::string parse_error_text(std::string_view what, std::string_view payload) {
  constexpr std::string_view kQuote = "; last read: '";
  const auto begin = what.find(kQuote);
  if (begin == std::string_view::npos) return std::string(what);
  // The quote ends at "'; expected ..." when there is one, else at the last quote.
  auto end = what.rfind("'; expected");
  if (end == std::string_view::npos || end < begin + kQuote.size()) end = what.rfind('\'');
  if (end == std::string_view::npos || end < begin + kQuote.size()) return std::string(what.substr(0, begin));
  std::string text(what.substr(0, begin));
  text.append("; payload: ").append(payload_for_log(payload)).append(what.substr(end + 1));
  return text;
}

}  // namespace

nlohmann::json parse_json(const Message& message) {
  try {
    return nlohmann::json::parse(message.value);
  } catch (const nlohmann::json::exception& e) {
    throw PayloadDecodeError(std::string("cannot parse JSON payload on '")
                                 .append(message.topic)
                                 .append("': ")
                                 .append(parse_error_text(e.what(), message.value)));
  }
}

}  // namespace cppfly::messaging
