// ${...} placeholders in config values, resolved as PyFly resolves them (private).
#pragma once

#include <map>
#include <string>

#include "schema.hpp"

namespace cppfly::config::detail {

/// Resolves every ${ENV}, ${other.key} and ${key:default} in the values read from files (values
/// from the environment are taken as they are, as PyFly does). For each placeholder the
/// environment comes first (the name as written, then its PYFLY_* form), then the key in
/// `values` (relaxed), then the default. Throws ConfigError (file:line, key, the chain) for an
/// unresolvable placeholder, a cycle, or references nested more than 10 deep.
void resolve_placeholders(ValueMap& values, const std::map<std::string, std::string, std::less<>>& environment);

}  // namespace cppfly::config::detail
