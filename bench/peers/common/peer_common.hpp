// What the C++ contenders of bench/peers share: the order record, the 100-byte JSON it travels as,
// the environment protocol and the tally each consumer keeps. The Java and Python contenders do the
// same in their own language (see bench/peers/run for the protocol).
//
// Environment (set by bench/peers/run):
//   PEER_MODE          consume (default) | publish | slow (consume, each record waits PEER_SLEEP_MS, as for
//                      I/O; records are keyed "key-K" and carry header x-seq, increasing per key)
//   PEER_TOPIC         the topic to consume (consume) or to publish to (publish)
//   PEER_COUNT         N: a consumer stops after N messages; a publisher sends N
//   PEER_LATENCY_FILE  consume: write "id latency_us" lines for messages carrying x-sent-us
//   PEER_TIMEOUT_S     give up (exit 1) after this many seconds (default 900)
//   PEER_SLEEP_MS      slow: the wait in each handler call (default 2)
//   PEER_FAIL_ID       slow: the record with this id fails its first PEER_FAIL_TIMES (default 5) handler
//                      calls (the slow-retry workload; the contender retries it 5 times, retry N after
//                      200 ms × N); with PEER_LATENCY_FILE the latencies are written as in consume
// Report: one JSON line on stdout,
//   consume: {"count":..,"sum":..,"sumsq":..,"start_ms":..,"first_ms":..,"last_ms":..}
//   publish: {"count":..,"errors":..,"start_ms":..,"first_ms":..,"last_ms":..}
//   slow:    the consume line plus "violations":.. (records whose x-seq was not greater than the last
//            one seen for their key: 0 when every key was handled in order)
// (sum = Σ id, sumsq = Σ id², first/last = epoch ms of the first/last message handled or acknowledged).
#pragma once

#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace peers {

/// The order every contender decodes: the same fields in C++, Java (a record) and Python (pydantic).
struct Order {
  std::int64_t id{};
  std::string customer;
  std::string item;
  int quantity{};
  double amount{};
  std::string note;
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(Order, id, customer, item, quantity, amount, note)
};

/// Header that carries the producer's clock (epoch microseconds, decimal) for the latency workload.
inline constexpr const char* kSentHeader = "x-sent-us";
/// Header that carries a record's sequence number within its key (slow workload).
inline constexpr const char* kSeqHeader = "x-seq";
inline constexpr std::size_t kOrderBytes = 100;

inline std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
inline std::int64_t now_ms() { return now_us() / 1000; }

inline std::string env(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : std::string(fallback);
}
inline std::int64_t env_int(const char* name, std::int64_t fallback) {
  const std::string text = env(name, "");
  std::int64_t value = fallback;
  if (!text.empty()) std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

/// The order with this id, its fields derived from the id.
inline Order make_order(std::int64_t id) {
  Order order;
  order.id = id;
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "c-%05lld", static_cast<long long>(id % 100000));
  order.customer = buffer;
  std::snprintf(buffer, sizeof buffer, "sku-%04lld", static_cast<long long>(id % 10000));
  order.item = buffer;
  order.quantity = static_cast<int>(1 + id % 5);
  order.amount = static_cast<double>(100 + id % 90000) / 4.0;  // exact in binary: prints the same everywhere
  order.note = "";
  return order;
}

/// The order as exactly kOrderBytes of compact JSON ("note" pads it).
inline std::string order_json(std::int64_t id) {
  Order order = make_order(id);
  std::string text = nlohmann::json(order).dump();
  if (text.size() < kOrderBytes) {
    order.note.assign(kOrderBytes - text.size(), 'x');
    text = nlohmann::json(order).dump();
  }
  return text;
}

/// Parses a decimal header value (no allocation).
inline std::optional<std::int64_t> parse_int(const void* data, std::size_t size) {
  if (data == nullptr) return std::nullopt;
  const char* begin = static_cast<const char*>(data);
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(begin, begin + size, value);
  if (ec != std::errc() || end != begin + size) return std::nullopt;
  return value;
}

/// What a consumer saw. record() is called by one consumer thread; wait() by another.
class Tally {
 public:
  Tally(std::int64_t expected, bool latency) : expected_(expected), start_ms_(now_ms()) {
    if (latency) latencies_.assign(static_cast<std::size_t>(expected), kNoLatency);
  }

  void record(std::int64_t id, std::optional<std::int64_t> sent_us) {
    const std::int64_t now = now_us();
    if (!latencies_.empty() && sent_us && id >= 0 && id < expected_) latencies_[static_cast<std::size_t>(id)] = now - *sent_us;
    const auto n = count_.load(std::memory_order_relaxed) + 1;
    if (n == 1) first_us_.store(now, std::memory_order_relaxed);
    last_us_.store(now, std::memory_order_relaxed);
    sum_.store(sum_.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(id), std::memory_order_relaxed);
    sumsq_.store(sumsq_.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(id) * static_cast<std::uint64_t>(id),
                 std::memory_order_relaxed);
    count_.store(n, std::memory_order_release);
    if (n == expected_) {
      const std::lock_guard lock(mutex_);
      done_ = true;
      done_cv_.notify_all();
    }
  }

  /// True when `expected` messages arrived within the timeout.
  bool wait(std::chrono::seconds timeout) {
    std::unique_lock lock(mutex_);
    return done_cv_.wait_for(lock, timeout, [this] { return done_; });
  }

  [[nodiscard]] std::int64_t count() const { return count_.load(std::memory_order_acquire); }

  /// The report line (stdout) and, when latencies were recorded, the latency file.
  void report(const std::string& latency_file) const {
    std::printf("{\"count\":%lld,\"sum\":%llu,\"sumsq\":%llu,\"start_ms\":%lld,\"first_ms\":%lld,\"last_ms\":%lld}\n",
                static_cast<long long>(count()), static_cast<unsigned long long>(sum_.load()),
                static_cast<unsigned long long>(sumsq_.load()), static_cast<long long>(start_ms_),
                static_cast<long long>(first_us_.load() / 1000), static_cast<long long>(last_us_.load() / 1000));
    std::fflush(stdout);
    if (latency_file.empty() || latencies_.empty()) return;
    if (std::FILE* out = std::fopen(latency_file.c_str(), "w")) {
      for (std::size_t id = 0; id < latencies_.size(); ++id) {
        if (latencies_[id] != kNoLatency) std::fprintf(out, "%zu %lld\n", id, static_cast<long long>(latencies_[id]));
      }
      std::fclose(out);
    }
  }

 private:
  static constexpr std::int64_t kNoLatency = INT64_MIN;
  std::int64_t expected_;
  std::int64_t start_ms_;
  std::atomic<std::int64_t> count_{0};
  std::atomic<std::uint64_t> sum_{0};
  std::atomic<std::uint64_t> sumsq_{0};
  std::atomic<std::int64_t> first_us_{0};
  std::atomic<std::int64_t> last_us_{0};
  std::vector<std::int64_t> latencies_;
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_{false};
};

/// What a consumer of the slow workload saw: record() is called by any number of threads at once (a
/// mutex; each call is followed by milliseconds of waiting, so it costs nothing measurable).
class SlowTally {
 public:
  SlowTally(std::int64_t expected, bool latency) : expected_(expected), start_ms_(now_ms()) {
    if (latency) latencies_.assign(static_cast<std::size_t>(expected), kNoLatency);
  }

  /// One handled record: its id, its key ("key-K"), its x-seq and its x-sent-us.
  void record(std::int64_t id, std::string_view key, std::optional<std::int64_t> seq,
              std::optional<std::int64_t> sent_us = std::nullopt) {
    const std::int64_t now = now_us();
    const std::lock_guard lock(mutex_);
    if (!latencies_.empty() && sent_us && id >= 0 && id < expected_) latencies_[static_cast<std::size_t>(id)] = now - *sent_us;
    auto [it, fresh] = last_seq_.try_emplace(std::string(key), seq.value_or(-1));
    if (!seq || (!fresh && *seq <= it->second)) ++violations_;
    if (seq && *seq > it->second) it->second = *seq;
    if (count_ == 0) first_us_ = now;
    last_us_ = now;
    sum_ += static_cast<std::uint64_t>(id);
    sumsq_ += static_cast<std::uint64_t>(id) * static_cast<std::uint64_t>(id);
    if (++count_ == expected_) done_cv_.notify_all();
  }

  bool wait(std::chrono::seconds timeout) {
    std::unique_lock lock(mutex_);
    return done_cv_.wait_for(lock, timeout, [this] { return count_ >= expected_; });
  }

  void report(const std::string& latency_file) {
    const std::lock_guard lock(mutex_);
    std::printf("{\"count\":%lld,\"sum\":%llu,\"sumsq\":%llu,\"start_ms\":%lld,\"first_ms\":%lld,\"last_ms\":%lld,"
                "\"violations\":%lld}\n",
                static_cast<long long>(count_), static_cast<unsigned long long>(sum_),
                static_cast<unsigned long long>(sumsq_), static_cast<long long>(start_ms_),
                static_cast<long long>(first_us_ / 1000), static_cast<long long>(last_us_ / 1000),
                static_cast<long long>(violations_));
    std::fflush(stdout);
    if (latency_file.empty() || latencies_.empty()) return;
    if (std::FILE* out = std::fopen(latency_file.c_str(), "w")) {
      for (std::size_t id = 0; id < latencies_.size(); ++id) {
        if (latencies_[id] != kNoLatency) std::fprintf(out, "%zu %lld\n", id, static_cast<long long>(latencies_[id]));
      }
      std::fclose(out);
    }
  }

 private:
  static constexpr std::int64_t kNoLatency = INT64_MIN;
  std::vector<std::int64_t> latencies_;
  std::int64_t expected_;
  std::int64_t start_ms_;
  std::mutex mutex_;
  std::condition_variable done_cv_;
  std::unordered_map<std::string, std::int64_t> last_seq_;
  std::int64_t count_{0};
  std::int64_t violations_{0};
  std::uint64_t sum_{0};
  std::uint64_t sumsq_{0};
  std::int64_t first_us_{0};
  std::int64_t last_us_{0};
};

}  // namespace peers
