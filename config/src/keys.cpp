#include "keys.hpp"

#include <algorithm>
#include <cctype>

#include "schema.hpp"
#include "text.hpp"

namespace cppfly::config::detail {

std::string canonical_key(std::string_view dotted) {
  std::string out;
  out.reserve(dotted.size());
  std::string_view rest = dotted;
  for (bool first = true;; first = false) {
    const auto dot = rest.find('.');
    const std::string_view segment = rest.substr(0, dot);
    if (!first) out += '.';
    for (char c : segment) out += c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
    if (out == kTopicsKey) {
      // A topic name is kept as written; its field is canonical; a topic config name as written.
      const TopicKey topic = split_topic_key(rest);
      out += '.';
      out += topic.name;
      if (!topic.field.empty()) {
        out += '.';
        out += topic.field;
        if (!topic.rest.empty()) {
          out += '.';
          out += topic.rest;
        }
      }
      break;
    }
    const auto& passthrough = passthrough_keys();
    if (std::find(passthrough.begin(), passthrough.end(), out) != passthrough.end()) {
      out += '.';
      out += rest;  // a librdkafka property name, as written
      break;
    }
  }
  return out;
}

std::string environment_name(std::string_view key) {
  std::string_view base = key;
  if (to_lower(base.substr(0, 6)) == "pyfly.") base.remove_prefix(6);
  std::string out = "PYFLY_";
  for (char c : base) {
    if (c == '.' || c == '-' || c == '[') {
      out += '_';
    } else if (c != ']') {
      out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

}  // namespace cppfly::config::detail
