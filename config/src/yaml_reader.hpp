// Reads one YAML document into flat entries keyed by dotted path (private; hides yaml-cpp).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <cppfly/config/config.hpp>

namespace cppfly::config::detail {

/// What a key held in the YAML text.
enum class NodeKind {
  scalar,  ///< a scalar, or a list of scalars (joined with ",")
  map,     ///< a map; its keys follow as their own entries
  null,    ///< no value ("key:" or "key: ~")
  list,    ///< a list holding maps or lists; its items follow as "key[i]" entries
};

/// One key of the document, in document order (parents before children).
struct Entry {
  std::string key;     ///< dotted path: "pyfly.messaging.provider"
  NodeKind kind{NodeKind::scalar};
  std::string value;   ///< the scalar text as written (scalar kind only)
  Origin key_origin;   ///< where the key is written
  Origin value_origin; ///< where the value is written (the key's position when there is none)
};

/// Parses `text` (named `source` in messages). An empty document gives no entries.
/// Throws ConfigError for invalid YAML, a top level that is not a map, or more than one document.
std::vector<Entry> read_yaml(std::string_view text, const std::string& source);

}  // namespace cppfly::config::detail
