// Reads one YAML document into flat entries (private; hides yaml-cpp).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "entries.hpp"

namespace cppfly::config::detail {

/// Parses `text` (named `source` in messages). An empty document gives no entries.
/// Throws ConfigError for invalid YAML (including what yaml-cpp lets through: duplicate keys,
/// an unterminated quoted string), a top level that is not a map, more than one document, or a
/// document past EntrySink's bounds.
std::vector<Entry> read_yaml(std::string_view text, const std::string& source);

}  // namespace cppfly::config::detail
