// Message, Headers, PublishOptions and DeliveryResult: the values that cross the port.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cppfly::messaging {

/// Ordered name→value pairs; a name may repeat (as in Kafka). Lookup returns the last one.
class Headers {
 public:
  using Entry = std::pair<std::string, std::string>;

  Headers() = default;
  Headers(std::initializer_list<Entry> entries) : entries_(entries) {}

  /// Appends a header (keeps any earlier one of the same name).
  void add(std::string name, std::string value) { entries_.emplace_back(std::move(name), std::move(value)); }
  /// Replaces every header of that name with one value.
  void set(std::string_view name, std::string value);
  /// The last value given for `name`, if any.
  [[nodiscard]] std::optional<std::string_view> get(std::string_view name) const noexcept;
  [[nodiscard]] bool contains(std::string_view name) const noexcept { return get(name).has_value(); }

  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
  [[nodiscard]] bool empty() const noexcept { return entries_.empty(); }
  [[nodiscard]] auto begin() const noexcept { return entries_.begin(); }
  [[nodiscard]] auto end() const noexcept { return entries_.end(); }
  [[nodiscard]] const std::vector<Entry>& entries() const noexcept { return entries_; }

  friend bool operator==(const Headers&, const Headers&) = default;

 private:
  std::vector<Entry> entries_;
};

/// What a handler sees: the record as it came from the broker.
struct Message {
  std::string topic{};
  std::string value{};  ///< raw bytes; JSON helpers in json_codec.hpp
  std::optional<std::string> key{};
  Headers headers{};
  // Adapter metadata where known (-1 / unset when not).
  std::int32_t partition{-1};
  std::int64_t offset{-1};
  std::int64_t timestamp_ms{-1};  ///< milliseconds since the epoch
};

/// Optional parts of a published record.
struct PublishOptions {
  std::optional<std::string> key{};
  Headers headers{};
  std::optional<std::int32_t> partition{};  ///< unset: the adapter's partitioner picks
};

/// Where a published record landed.
struct DeliveryResult {
  std::string topic{};
  std::int32_t partition{-1};
  std::int64_t offset{-1};
};

inline void Headers::set(std::string_view name, std::string value) {
  std::erase_if(entries_, [&](const Entry& e) { return e.first == name; });
  entries_.emplace_back(std::string(name), std::move(value));
}

inline std::optional<std::string_view> Headers::get(std::string_view name) const noexcept {
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    if (it->first == name) return std::string_view(it->second);
  }
  return std::nullopt;
}

}  // namespace cppfly::messaging
