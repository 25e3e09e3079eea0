// What a partition's commit carries beyond its offset: the records completed past it and the
// attempts made on records under retry, as text in the commit's metadata (the broker keeps up to
// offset.metadata.max.bytes, 4,096 by default).
//
// Format, version 1 (ASCII; numbers past the base in base 36):
//   cf1;<base>;<attempts>;<runs>
//   base      the committed offset, in decimal (the metadata only counts when it matches it)
//   attempts  <distance>:<count> pairs joined by ',': a record at base+distance has had <count> attempts
//   runs      the completed records, in one of two forms (the encoder keeps the one that records more,
//             then the shorter): lengths in base 36 joined by '.', alternating from base: not
//             completed, completed, not completed, ...; or '~' and a bitset in base64url, 6 offsets a
//             character from base + 1, most significant bit first (for scattered completions)
// e.g. "cf1;100;0:2;1.4.2.3": 100 had 2 attempts; 101-104 and 107-109 are completed; "cf1;100;;~eA"
// (011110 000000): 102-105 are completed.
// A version tag other than cf1 is ignored (written by a later format), as is metadata that is not ours.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cppfly::detail {

/// Offsets `first` to `last`, both included.
struct OffsetRange {
  std::int64_t first{0};
  std::int64_t last{0};
  bool operator==(const OffsetRange&) const = default;
};

struct OffsetProgress {
  std::int64_t base{-1};                                   ///< the committed offset (not completed)
  std::vector<OffsetRange> completed;                      ///< sorted, apart, each past base
  std::vector<std::pair<std::int64_t, int>> attempts;      ///< offset → attempts made, sorted, each ≥ base
  bool operator==(const OffsetProgress&) const = default;
};

/// The commit metadata for `progress`, at most `limit` bytes. What does not fit is left out, from the
/// highest offsets down (attempts take at most half): `*cut_at` (when given) is then set to the first
/// offset whose completion is no longer recorded, else left alone.
[[nodiscard]] std::string encode_progress(const OffsetProgress& progress, std::size_t limit,
                                          std::int64_t* cut_at = nullptr);

/// Why metadata was not taken (decode_progress).
enum class ProgressRejection { none, empty, foreign, later_version, other_offset };

/// The progress in `metadata` committed with `committed`; nothing (and `why`) for empty, foreign or
/// later-version metadata, or metadata written for another offset.
[[nodiscard]] std::optional<OffsetProgress> decode_progress(std::string_view metadata, std::int64_t committed,
                                                            ProgressRejection& why);

/// Commit metadata is kept below this (the broker's default bound is 4,096 bytes).
inline constexpr std::size_t kProgressLimit = 4000;

}  // namespace cppfly::detail
