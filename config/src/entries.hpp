// A config document as flat entries keyed by dotted path, whatever its format (private).
#pragma once

#include <cstddef>
#include <string>
#include <unordered_map>
#include <vector>

#include <cppfly/config/config.hpp>

namespace cppfly::config::detail {

/// What a key held in the document.
enum class NodeKind {
  scalar,  ///< a scalar, or a list of scalars (joined with ",")
  map,     ///< a map; its keys follow as their own entries
  null,    ///< no value ("key:" or "key: ~")
  list,    ///< a list holding maps or lists; its items follow as "key[i]" entries
};

/// One key of the document, in document order (parents before children).
struct Entry {
  std::string key;     ///< dotted path in its canonical form: "pyfly.messaging.provider"
  NodeKind kind{NodeKind::scalar};
  std::string value;   ///< the scalar text as written (scalar kind only)
  Origin key_origin;   ///< where the key is written
  Origin value_origin; ///< where the value is written (the key's position when there is none)
};

/// What one document may hold before it is refused: bounds that keep a hostile or broken file
/// (an alias cycle, "billion laughs" expansion) from exhausting the stack, memory or time.
inline constexpr int kMaxDepth = 64;
inline constexpr std::size_t kMaxEntries = 10'000;
inline constexpr std::size_t kMaxBytes = 4u << 20;  ///< keys and values, after alias expansion

/// Collects a document's entries: canonical keys (relaxed binding), duplicate keys refused with
/// both places, and the bounds above enforced. Each reader (YAML, TOML) feeds one.
class EntrySink {
 public:
  explicit EntrySink(const std::string& source) : source_(source) {}

  /// `parent` + "." + `name` in canonical form.
  [[nodiscard]] static std::string child_key(const std::string& parent, const std::string& name);
  /// Throws when a value `depth` levels deep is past the nesting bound.
  void check_depth(int depth, const std::string& key, const Origin& where) const;
  /// Adds one entry; throws ConfigError for a duplicate key or a document past the bounds.
  void add(Entry entry);
  /// Counts bytes a reader builds before adding them (joined lists); throws past the bound.
  void count_bytes(std::size_t bytes, const Origin& where);

  [[nodiscard]] const std::string& source() const noexcept { return source_; }
  std::vector<Entry> take() { return std::move(entries_); }

 private:
  const std::string& source_;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, std::size_t> index_;  ///< key -> position in entries_
  std::size_t bytes_{0};
};

}  // namespace cppfly::config::detail
