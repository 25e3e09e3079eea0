// "Did you mean ...?": the known name nearest to a misspelled one.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cppfly::config {

/// The candidate nearest to `name` (edit distance, any case), when it is near enough to be a
/// likely misspelling (at most max(2, length / 4) edits, fewer than `name` has characters).
[[nodiscard]] std::optional<std::string> nearest_name(std::string_view name,
                                                      const std::vector<std::string>& candidates);

}  // namespace cppfly::config
