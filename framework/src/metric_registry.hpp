// A small metric registry for the Prometheus text format 0.0.4: counters and histograms with fixed
// buckets, by label values. Updates are atomic; finding a series takes a shared lock (an exclusive
// one only the first time a label set is seen). Internal.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cppfly::messaging::detail {

/// Writes the text format's pieces: HELP/TYPE lines, samples with escaped labels.
class ExpositionWriter {
 public:
  explicit ExpositionWriter(std::string& out) : out_(out) {}
  void header(std::string_view name, std::string_view help, std::string_view type);
  /// name{label="value",...} value  (`extra` is one more label, e.g. le="0.5", or empty).
  void sample(std::string_view name, std::span<const std::string_view> label_names,
              std::span<const std::string> label_values, std::string_view extra_name, std::string_view extra_value,
              double value);

 private:
  std::string& out_;
};

/// A counter series.
struct Counter {
  std::atomic<std::uint64_t> value{0};
  void add(std::uint64_t n = 1) noexcept { value.fetch_add(n, std::memory_order_relaxed); }
};

/// A histogram series over fixed upper bounds (seconds).
struct Histogram {
  explicit Histogram(std::size_t buckets) : counts(buckets + 1) {}
  std::vector<std::atomic<std::uint64_t>> counts;  ///< per bucket, the last one +Inf (not cumulative)
  std::atomic<double> sum{0.0};
  std::atomic<std::uint64_t> count{0};
};

/// A metric family: a name, help, type and label names; its series by label values.
template <class Series>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string_view> labels)
      : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)) {}

  /// The series of these label values (as many as the family's label names), made on first use.
  template <class Make>
  Series& at(std::initializer_list<std::string_view> values, const Make& make) {
    thread_local std::string key;
    key.clear();
    for (const auto v : values) key.append(v).push_back('\x1f');
    {
      const std::shared_lock lock(mutex_);
      if (auto it = series_.find(key); it != series_.end()) return *it->second.series;
    }
    const std::unique_lock lock(mutex_);
    auto [it, fresh] = series_.try_emplace(key);
    if (fresh) {
      it->second.values.assign(values.begin(), values.end());
      it->second.series = make();
    }
    return *it->second.series;
  }

  template <class Visit>
  void each(const Visit& visit) const {
    const std::shared_lock lock(mutex_);
    for (const auto& [key, entry] : series_) visit(entry.values, *entry.series);
  }

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const std::string& help() const noexcept { return help_; }
  [[nodiscard]] const std::vector<std::string_view>& labels() const noexcept { return labels_; }

 private:
  struct Entry {
    std::vector<std::string> values;
    std::unique_ptr<Series> series;
  };
  std::string name_;
  std::string help_;
  std::vector<std::string_view> labels_;
  mutable std::shared_mutex mutex_;
  std::map<std::string, Entry, std::less<>> series_;
};

class CounterFamily : public Family<Counter> {
 public:
  using Family::Family;
  void add(std::initializer_list<std::string_view> values, std::uint64_t n = 1) {
    at(values, [] { return std::make_unique<Counter>(); }).add(n);
  }
  void write(ExpositionWriter& out) const;
};

class HistogramFamily : public Family<Histogram> {
 public:
  HistogramFamily(std::string name, std::string help, std::vector<std::string_view> labels,
                  std::vector<double> bounds)
      : Family(std::move(name), std::move(help), std::move(labels)), bounds_(std::move(bounds)) {}
  void observe(std::initializer_list<std::string_view> values, double seconds);
  void write(ExpositionWriter& out) const;

 private:
  std::vector<double> bounds_;
};

/// The text format's number: integers without a fraction, +Inf/-Inf/NaN spelled as it wants.
void append_number(std::string& out, double value);

}  // namespace cppfly::messaging::detail
