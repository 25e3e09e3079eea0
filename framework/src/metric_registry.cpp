#include "metric_registry.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace cppfly::messaging::detail {

namespace {

void append_escaped(std::string& out, std::string_view value) {
  for (const char c : value) {
    switch (c) {
      case '\\': out.append("\\\\"); break;
      case '"': out.append("\\\""); break;
      case '\n': out.append("\\n"); break;
      default: out.push_back(c);
    }
  }
}

void append_help(std::string& out, std::string_view help) {
  for (const char c : help) {
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
}

}  // namespace

void append_number(std::string& out, double value) {
  if (std::isnan(value)) {
    out.append("NaN");
  } else if (std::isinf(value)) {
    out.append(value > 0 ? "+Inf" : "-Inf");
  } else if (value == std::floor(value) && std::fabs(value) < 1e15) {
    out.append(fmt::format("{}", static_cast<std::int64_t>(value)));
  } else {
    out.append(fmt::format("{}", value));
  }
}

void ExpositionWriter::header(std::string_view name, std::string_view help, std::string_view type) {
  out_.append("# HELP ").append(name).push_back(' ');
  append_help(out_, help);
  out_.append("\n# TYPE ").append(name).push_back(' ');
  out_.append(type).push_back('\n');
}

void ExpositionWriter::sample(std::string_view name, std::span<const std::string_view> label_names,
                              std::span<const std::string> label_values, std::string_view extra_name,
                              std::string_view extra_value, double value) {
  out_.append(name);
  bool first = true;
  const auto label = [&](std::string_view n, std::string_view v) {
    out_.push_back(first ? '{' : ',');
    first = false;
    out_.append(n).append("=\"");
    append_escaped(out_, v);
    out_.push_back('"');
  };
  for (std::size_t i = 0; i < label_names.size() && i < label_values.size(); ++i) label(label_names[i], label_values[i]);
  if (!extra_name.empty()) label(extra_name, extra_value);
  if (!first) out_.push_back('}');
  out_.push_back(' ');
  append_number(out_, value);
  out_.push_back('\n');
}

void CounterFamily::write(ExpositionWriter& out) const {
  out.header(name(), help(), "counter");
  each([&](const std::vector<std::string>& values, const Counter& c) {
    out.sample(name(), labels(), values, {}, {}, static_cast<double>(c.value.load(std::memory_order_relaxed)));
  });
}

void HistogramFamily::observe(std::initializer_list<std::string_view> values, double seconds) {
  Histogram& h = at(values, [this] { return std::make_unique<Histogram>(bounds_.size()); });
  const auto bucket = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), seconds) - bounds_.begin());
  h.counts[bucket].fetch_add(1, std::memory_order_relaxed);
  h.sum.fetch_add(seconds, std::memory_order_relaxed);
  h.count.fetch_add(1, std::memory_order_relaxed);
}

void HistogramFamily::write(ExpositionWriter& out) const {
  out.header(name(), help(), "histogram");
  const std::string bucket_name = std::string(name()).append("_bucket");
  const std::string sum_name = std::string(name()).append("_sum");
  const std::string count_name = std::string(name()).append("_count");
  each([&](const std::vector<std::string>& values, const Histogram& h) {
    // Read the buckets first and the count from them: a scrape never shows a count below a bucket.
    std::uint64_t cumulative = 0;
    std::string bound;
    for (std::size_t i = 0; i < h.counts.size(); ++i) {
      cumulative += h.counts[i].load(std::memory_order_relaxed);
      bound.clear();
      append_number(bound, i < bounds_.size() ? bounds_[i] : HUGE_VAL);
      out.sample(bucket_name, labels(), values, "le", bound, static_cast<double>(cumulative));
    }
    out.sample(sum_name, labels(), values, {}, {}, h.sum.load(std::memory_order_relaxed));
    out.sample(count_name, labels(), values, {}, {}, static_cast<double>(cumulative));
  });
}

}  // namespace cppfly::messaging::detail
