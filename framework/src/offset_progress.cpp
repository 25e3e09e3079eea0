#include "offset_progress.hpp"

#include <algorithm>
#include <charconv>
#include <limits>

namespace cppfly::detail {
namespace {

constexpr std::string_view kTag = "cf1;";

void append36(std::string& out, std::int64_t value) {
  char digits[16];
  std::size_t n = 0;
  auto v = static_cast<std::uint64_t>(value);
  do {
    const auto d = static_cast<unsigned>(v % 36);
    digits[n++] = static_cast<char>(d < 10 ? '0' + d : 'a' + (d - 10));
    v /= 36;
  } while (v != 0 && n < sizeof digits);
  while (n > 0) out.push_back(digits[--n]);
}

/// Reads a non-negative number in `base` at the front of `text`; advances past it.
std::optional<std::int64_t> read_number(std::string_view& text, int base) {
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (ec != std::errc{} || end == text.data() || value < 0) return std::nullopt;
  // from_chars accepts upper-case digits; the format writes lower case only.
  for (const char* c = text.data(); c != end; ++c) {
    if (*c >= 'A' && *c <= 'Z') return std::nullopt;
  }
  text.remove_prefix(static_cast<std::size_t>(end - text.data()));
  return value;
}

bool take(std::string_view& text, char c) {
  if (text.empty() || text.front() != c) return false;
  text.remove_prefix(1);
  return true;
}

}  // namespace

namespace {

constexpr std::string_view kBase64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The completed offsets as runs, as many as fit in `room` bytes; the first completed offset left
/// out, or -1.
std::int64_t append_runs(std::string& out, const OffsetProgress& progress, std::size_t room) {
  const std::size_t limit = out.size() + room;
  std::string item;
  std::int64_t at = progress.base;  // the first offset the runs have not covered yet
  bool first = true;
  for (const auto& range : progress.completed) {
    item.clear();
    if (!first) item.push_back('.');
    append36(item, range.first - at);
    item.push_back('.');
    append36(item, range.last - range.first + 1);
    if (out.size() + item.size() > limit) return range.first;
    out.append(item);
    at = range.last + 1;
    first = false;
  }
  return -1;
}

/// The completed offsets as '~' and a bitset in base64url (bit k, most significant first in each
/// character: offset base + 1 + k), as far as fits in `room` bytes; the first completed offset left
/// out, or -1.
std::int64_t append_bits(std::string& out, const OffsetProgress& progress, std::size_t room) {
  if (progress.completed.empty()) return -1;
  if (room < 2) return progress.completed.front().first;
  const std::int64_t span = progress.completed.back().last - progress.base;  // offsets base+1 .. last
  const auto wanted = static_cast<std::size_t>((span + 5) / 6);
  const std::size_t chars = std::min(wanted, room - 1);
  const std::int64_t covered = progress.base + static_cast<std::int64_t>(chars) * 6;  // last offset covered
  std::string bits(chars, '\0');
  for (const auto& range : progress.completed) {
    for (std::int64_t o = range.first; o <= std::min(range.last, covered); ++o) {
      const auto k = static_cast<std::size_t>(o - progress.base - 1);
      bits[k / 6] = static_cast<char>(bits[k / 6] | (1 << (5 - k % 6)));
    }
    if (range.last >= covered) break;
  }
  out.push_back('~');
  for (const char c : bits) out.push_back(kBase64[static_cast<unsigned char>(c)]);
  for (const auto& range : progress.completed) {
    if (range.last > covered) return std::max(range.first, covered + 1);
  }
  return -1;
}

}  // namespace

std::string encode_progress(const OffsetProgress& progress, std::size_t limit, std::int64_t* cut_at) {
  std::string out(kTag);
  out.append(std::to_string(progress.base)).push_back(';');
  if (out.size() + 1 > limit) return {};
  const std::size_t attempts_limit = out.size() + (limit - out.size()) / 2;
  std::string item;
  bool first = true;
  for (const auto& [offset, count] : progress.attempts) {
    item.clear();
    if (!first) item.push_back(',');
    append36(item, offset - progress.base);
    item.push_back(':');
    append36(item, count);
    if (out.size() + item.size() > attempts_limit) break;
    out.append(item);
    first = false;
  }
  out.push_back(';');
  // Runs cost a few bytes a run, bits one byte per 6 offsets: the form that records more (then the
  // shorter one) is kept.
  const std::size_t room = limit - out.size();
  std::string runs = out;
  std::string bits = out;
  const std::int64_t runs_cut = append_runs(runs, progress, room);
  const std::int64_t bits_cut = append_bits(bits, progress, room);
  auto reach = [](std::int64_t cut) { return cut < 0 ? std::numeric_limits<std::int64_t>::max() : cut; };
  const bool use_bits =
      reach(bits_cut) > reach(runs_cut) || (reach(bits_cut) == reach(runs_cut) && bits.size() < runs.size());
  const std::int64_t cut = use_bits ? bits_cut : runs_cut;
  if (cut >= 0 && cut_at != nullptr) *cut_at = cut;
  return use_bits ? bits : runs;
}

std::optional<OffsetProgress> decode_progress(std::string_view metadata, std::int64_t committed,
                                              ProgressRejection& why) {
  why = ProgressRejection::none;
  if (metadata.empty()) {
    why = ProgressRejection::empty;
    return std::nullopt;
  }
  if (!metadata.starts_with(kTag)) {
    // "cf<digits>;" is ours, of another version; anything else is another client's.
    std::string_view rest = metadata;
    if (rest.starts_with("cf")) {
      rest.remove_prefix(2);
      if (read_number(rest, 10) && take(rest, ';')) {
        why = ProgressRejection::later_version;
        return std::nullopt;
      }
    }
    why = ProgressRejection::foreign;
    return std::nullopt;
  }
  std::string_view text = metadata.substr(kTag.size());
  OffsetProgress progress;
  auto foreign = [&] {
    why = ProgressRejection::foreign;
    return std::nullopt;
  };
  const auto base = read_number(text, 10);
  if (!base || !take(text, ';')) return foreign();
  progress.base = *base;
  while (!text.empty() && text.front() != ';') {
    if (!progress.attempts.empty() && !take(text, ',')) return foreign();
    const auto distance = read_number(text, 36);
    if (!distance || !take(text, ':')) return foreign();
    const auto count = read_number(text, 36);
    if (!count || *count > 1000000) return foreign();
    const std::int64_t offset = progress.base + *distance;
    if (!progress.attempts.empty() && offset <= progress.attempts.back().first) return foreign();
    progress.attempts.emplace_back(offset, static_cast<int>(*count));
  }
  if (!take(text, ';')) return foreign();
  if (take(text, '~')) {
    std::int64_t offset = progress.base + 1;
    for (const char c : text) {
      const auto value = kBase64.find(c);
      if (value == std::string_view::npos) return foreign();
      for (int bit = 5; bit >= 0; --bit, ++offset) {
        if ((value >> bit & 1U) == 0) continue;
        if (!progress.completed.empty() && progress.completed.back().last == offset - 1) {
          progress.completed.back().last = offset;
        } else {
          progress.completed.push_back({offset, offset});
        }
      }
    }
    text = {};
  }
  std::int64_t at = progress.base;
  while (!text.empty()) {
    if (!progress.completed.empty() && !take(text, '.')) return foreign();
    const auto gap = read_number(text, 36);
    if (!gap || !take(text, '.')) return foreign();
    const auto length = read_number(text, 36);
    // Completed runs start past the base (the committed record is not completed) and never touch.
    if (!length || *length == 0 || *gap == 0) return foreign();
    const std::int64_t first = at + *gap;
    progress.completed.push_back({first, first + *length - 1});
    at = first + *length;
  }
  if (progress.base != committed) {
    why = ProgressRejection::other_offset;
    return std::nullopt;
  }
  return progress;
}

}  // namespace cppfly::detail
