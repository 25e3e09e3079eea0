// Message, Headers, PublishOptions and DeliveryResult: the values that cross the port.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cppfly::messaging {

class Headers;
struct DeferredHeaders;

/// Ordered name→value pairs; a name may repeat (as in Kafka). Lookup returns the last one.
/// An adapter may fill them on first use (reading a record's headers costs even when it
/// has none); copying a Headers reads them first, so a copy never depends on the record.
class Headers {
 public:
  using Entry = std::pair<std::string, std::string>;

  Headers() = default;
  Headers(std::initializer_list<Entry> entries) : entries_(entries) {}
  Headers(const Headers& other) : entries_(other.entries()) {}
  // Moves take a deferred record along (no one else may use an object being moved from,
  // so plain loads and stores suffice).
  Headers(Headers&& other) noexcept
      : entries_(std::move(other.entries_)),
        reader_(other.reader_),
        record_(other.record_.load(std::memory_order_relaxed)) {
    other.record_.store(nullptr, std::memory_order_relaxed);
  }
  Headers& operator=(const Headers& other) {
    if (this != &other) {
      entries_ = other.entries();
      record_.store(nullptr, std::memory_order_relaxed);
    }
    return *this;
  }
  Headers& operator=(Headers&& other) noexcept {
    if (this != &other) {
      entries_ = std::move(other.entries_);
      reader_ = other.reader_;
      record_.store(other.record_.load(std::memory_order_relaxed), std::memory_order_relaxed);
      other.record_.store(nullptr, std::memory_order_relaxed);
    }
    return *this;
  }
  ~Headers() = default;

  /// Appends a header (keeps any earlier one of the same name).
  void add(std::string name, std::string value) {
    load();
    entries_.emplace_back(std::move(name), std::move(value));
  }
  /// Replaces every header of that name with one value.
  void set(std::string_view name, std::string value);
  /// The last value given for `name`, if any.
  [[nodiscard]] std::optional<std::string_view> get(std::string_view name) const;
  [[nodiscard]] bool contains(std::string_view name) const { return get(name).has_value(); }

  [[nodiscard]] std::size_t size() const { return entries().size(); }
  [[nodiscard]] bool empty() const { return entries().empty(); }
  [[nodiscard]] auto begin() const { return entries().begin(); }
  [[nodiscard]] auto end() const { return entries().end(); }
  [[nodiscard]] const std::vector<Entry>& entries() const {
    load();
    return entries_;
  }

  friend bool operator==(const Headers& a, const Headers& b) { return a.entries() == b.entries(); }

 private:
  friend struct DeferredHeaders;
  using Reader = void (*)(const void* record, std::vector<Entry>& into);

  void load() const {
    if (record_.load(std::memory_order_acquire) != nullptr) load_deferred();
  }
  void load_deferred() const;

  mutable std::vector<Entry> entries_;
  Reader reader_{nullptr};
  mutable std::atomic<const void*> record_{nullptr};  ///< set: entries_ not read yet
};

/// For adapters: headers read from the broker's record when first used.
struct DeferredHeaders {
  /// Clears `headers`; `read(record, entries)` fills them on first use. `record` must
  /// stay valid until forget().
  static void defer(Headers& headers, const void* record, Headers::Reader read) noexcept {
    headers.entries_.clear();
    headers.reader_ = read;
    headers.record_.store(record, std::memory_order_release);
  }
  /// The record goes away: headers not read by now are never needed.
  static void forget(Headers& headers) noexcept { headers.record_.store(nullptr, std::memory_order_release); }
  /// True when `headers` still have to be read from their record.
  [[nodiscard]] static bool pending(const Headers& headers) noexcept {
    return headers.record_.load(std::memory_order_relaxed) != nullptr;
  }
  /// Reads deferred headers now (their record is about to go).
  static void resolve(const Headers& headers) { headers.load(); }
  /// Replaces `headers` with what `read(record, entries)` gives, now (the entries keep their capacity).
  static void read_now(Headers& headers, const void* record, Headers::Reader read) {
    headers.record_.store(nullptr, std::memory_order_relaxed);
    headers.entries_.clear();
    read(record, headers.entries_);
  }
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
  int attempt{1};                 ///< delivery attempt of this record: 1 = first
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

inline void Headers::load_deferred() const {
  // Handlers may share a const Message between threads: one of them reads the record.
  static std::mutex reading;
  const std::lock_guard lock(reading);
  if (const void* record = record_.load(std::memory_order_relaxed); record != nullptr) {
    reader_(record, entries_);
    record_.store(nullptr, std::memory_order_release);
  }
}

inline void Headers::set(std::string_view name, std::string value) {
  load();
  std::erase_if(entries_, [&](const Entry& e) { return e.first == name; });
  entries_.emplace_back(std::string(name), std::move(value));
}

inline std::optional<std::string_view> Headers::get(std::string_view name) const {
  load();
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    if (it->first == name) return std::string_view(it->second);
  }
  return std::nullopt;
}

}  // namespace cppfly::messaging
