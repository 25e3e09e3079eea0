// Reads one TOML document into flat entries (private; hides toml++).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "entries.hpp"

namespace cppfly::config::detail {

/// Parses `text` (named `source` in messages), as PyFly reads pyfly.toml. Throws ConfigError
/// with file:line:column for invalid TOML or a document past EntrySink's bounds.
std::vector<Entry> read_toml(std::string_view text, const std::string& source);

}  // namespace cppfly::config::detail
