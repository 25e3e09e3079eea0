#include "placeholders.hpp"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "keys.hpp"
#include "text.hpp"

namespace cppfly::config::detail {
namespace {

constexpr int kMaxPlaceholderDepth = 10;

bool from_environment(const ConfigValue& value) { return value.origin.source.starts_with("environment variable "); }

class Resolver {
 public:
  Resolver(const ValueMap& values, const std::map<std::string, std::string, std::less<>>& environment)
      : values_(values), environment_(environment) {}

  /// `text` with its placeholders replaced; `chain` holds the keys being resolved, outermost first.
  std::string resolve(std::string_view text, std::vector<std::string>& chain) {
    std::string out;
    std::size_t pos = 0;
    for (;;) {
      const auto open = text.find("${", pos);
      const auto close = open == std::string_view::npos ? open : text.find('}', open + 2);
      if (close == std::string_view::npos || close == open + 2) {  // "${}" stays as written, as in PyFly
        out.append(text.substr(pos));
        return out;
      }
      out.append(text.substr(pos, open - pos));
      out += lookup(text.substr(open + 2, close - open - 2), chain);
      pos = close + 1;
    }
  }

  [[noreturn]] void fail(const std::vector<std::string>& chain, std::string_view problem) const {
    const ConfigValue& first = values_.find(chain.front())->second;
    throw ConfigError(fmt::format("{}: {}: {}", first.origin.describe(), chain.front(), problem), chain.front());
  }

 private:
  std::string lookup(std::string_view inner, std::vector<std::string>& chain) {
    const auto colon = inner.find(':');
    const std::string name(trim(inner.substr(0, colon)));
    const std::optional<std::string> fallback =
        colon == std::string_view::npos ? std::nullopt : std::optional<std::string>(inner.substr(colon + 1));
    if (const auto it = environment_.find(name); it != environment_.end()) return it->second;
    if (const auto it = environment_.find(environment_name(name)); it != environment_.end()) return it->second;

    const std::string key = canonical_key(name);
    if (const auto it = values_.find(key); it != values_.end()) {
      if (std::find(chain.begin(), chain.end(), key) != chain.end()) {
        fail(chain, fmt::format("placeholder cycle: {} -> {}", join(chain, " -> "), key));
      }
      if (from_environment(it->second) || it->second.value.find("${") == std::string::npos) return it->second.value;
      if (static_cast<int>(chain.size()) > kMaxPlaceholderDepth) {
        fail(chain, fmt::format("placeholders nested more than {} levels deep: {} -> {}", kMaxPlaceholderDepth,
                                join(chain, " -> "), key));
      }
      chain.push_back(key);
      std::string resolved = resolve(it->second.value, chain);
      chain.pop_back();
      return resolved;
    }
    if (fallback) return *fallback;
    const std::string via = chain.size() > 1 ? fmt::format(" (via {})", join(chain, " -> ")) : std::string();
    fail(chain, fmt::format("cannot resolve ${{{}}}{}: no environment variable {} or {} and no config key {}; "
                            "give a default as ${{{}:value}}",
                            printable(name), via, printable(name), environment_name(name), printable(key),
                            printable(name)));
  }

  const ValueMap& values_;
  const std::map<std::string, std::string, std::less<>>& environment_;
};

}  // namespace

void resolve_placeholders(ValueMap& values, const std::map<std::string, std::string, std::less<>>& environment) {
  // Resolve against the values as read, then write every result back at once, so a value's
  // resolution never depends on the order keys are visited.
  Resolver resolver(values, environment);
  std::vector<std::pair<std::string, std::string>> resolved;
  for (const auto& [key, value] : values) {
    if (from_environment(value) || value.value.find("${") == std::string::npos) continue;
    std::vector<std::string> chain{key};
    resolved.emplace_back(key, resolver.resolve(value.value, chain));
  }
  for (auto& [key, text] : resolved) values.at(key).value = std::move(text);
}

}  // namespace cppfly::config::detail
