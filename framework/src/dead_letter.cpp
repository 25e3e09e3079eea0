#include <cppfly/messaging/dead_letter.hpp>

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <memory>

#include "type_name.hpp"

namespace cppfly::detail {

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> readable(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  return status == 0 && readable ? std::string(readable.get()) : std::string(mangled);
}

}  // namespace cppfly::detail

namespace cppfly::messaging {

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

}  // namespace cppfly::messaging
