#include "entries.hpp"

#include <fmt/format.h>

#include "keys.hpp"
#include "text.hpp"

namespace cppfly::config::detail {

std::string EntrySink::child_key(const std::string& parent, const std::string& name) {
  return canonical_key(parent.empty() ? name : parent + "." + name);
}

void EntrySink::check_depth(int depth, const std::string& key, const Origin& where) const {
  if (depth > kMaxDepth) {
    throw ConfigError(fmt::format("{}: {}: nested more than {} levels deep (an alias that refers to its own anchor?)",
                                  where.describe(), printable(key, 80), kMaxDepth));
  }
}

void EntrySink::count_bytes(std::size_t bytes, const Origin& where) {
  bytes_ += bytes;
  if (bytes_ > kMaxBytes) {
    throw ConfigError(fmt::format("{}: the document expands to more than {} MiB (aliases repeated within aliases?)",
                                  where.describe(), kMaxBytes >> 20));
  }
}

void EntrySink::add(Entry entry) {
  if (entries_.size() >= kMaxEntries) {
    throw ConfigError(fmt::format("{}: the document expands to more than {} keys (aliases repeated within aliases?)",
                                  entry.key_origin.describe(), kMaxEntries));
  }
  count_bytes(entry.key.size() + entry.value.size(), entry.key_origin);
  // Same key twice in one document (also when spelled bootstrap_servers and bootstrap-servers):
  // strict parsers refuse it, and silently taking the last one hides a mistake.
  const auto [first, added] = index_.try_emplace(entry.key, entries_.size());
  if (!added) {
    throw ConfigError(fmt::format("{}: {}: duplicate key (first set at {})", entry.key_origin.describe(),
                                  printable(entry.key), entries_[first->second].key_origin.describe()));
  }
  entries_.push_back(std::move(entry));
}

}  // namespace cppfly::config::detail
