#include <cppfly/config/secrets.hpp>

#include <array>

#include "text.hpp"

namespace cppfly::config {
namespace {

/// Lower case with '_' folded to '-', so "API_KEY" and "api-key" are one spelling.
std::string folded(std::string_view key) {
  std::string out = detail::to_lower(key);
  for (char& c : out) {
    if (c == '_') c = '-';
  }
  return out;
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' || c == '.' ||
         c == '-';
}

}  // namespace

bool is_sensitive_key(std::string_view key) noexcept {
  try {
    static constexpr std::array<std::string_view, 9> kParts{
        "password", "passwd", "secret", "token", "credential", "api-key", "apikey", "private-key", "client-secret"};
    static constexpr std::array<std::string_view, 2> kLibrdkafkaSecrets{"ssl.key.pem", "sasl.oauthbearer.config"};
    const std::string full = folded(key);
    for (const auto part : kParts) {
      if (full.find(part) != std::string::npos) return true;
    }
    for (const auto name : kLibrdkafkaSecrets) {
      // `full` is name, or ends in "." + name.
      if (full.ends_with(name) && (full.size() == name.size() || full[full.size() - name.size() - 1] == '.')) {
        return true;
      }
    }
    const auto dot = full.rfind('.');
    const std::string_view leaf = dot == std::string::npos ? std::string_view(full) : std::string_view(full).substr(dot + 1);
    return leaf == "key" || leaf.ends_with("-key");
  } catch (...) {
    return true;  // out of memory: show nothing rather than a secret
  }
}

std::string shown_value(std::string_view key, std::string_view value) {
  if (is_sensitive_key(key)) return std::string(kMasked);
  // scheme://user:PASSWORD@host -> scheme://user:***@host, for every URI in the value.
  std::string out;
  std::size_t pos = 0;
  while (pos < value.size()) {
    const auto sep = value.find("://", pos);
    if (sep == std::string_view::npos) break;
    std::size_t scheme = sep;
    while (scheme > pos && is_name_char(value[scheme - 1])) --scheme;
    const std::size_t user = sep + 3;
    std::size_t colon = user;
    while (colon < value.size() && value[colon] != ':' && value[colon] != '@' && value[colon] != '/' &&
           value[colon] != ' ')
      ++colon;
    if (scheme == sep || colon == user || colon >= value.size() || value[colon] != ':') {
      out.append(value.substr(pos, user - pos));
      pos = user;
      continue;
    }
    std::size_t at = colon + 1;
    while (at < value.size() && value[at] != '@' && value[at] != '/' && value[at] != ' ') ++at;
    if (at >= value.size() || value[at] != '@' || at == colon + 1) {
      out.append(value.substr(pos, colon + 1 - pos));
      pos = colon + 1;
      continue;
    }
    out.append(value.substr(pos, colon + 1 - pos));
    out.append(kMasked);
    pos = at;
  }
  out.append(value.substr(pos));
  return out;
}

}  // namespace cppfly::config
