#include <cppfly/messaging/retry_policy.hpp>

#include <algorithm>

namespace cppfly::messaging {

std::chrono::milliseconds RetryPolicy::delay_before(int attempt) const noexcept {
  if (attempt < 1 || delay.count() <= 0) return std::chrono::milliseconds{0};
  const auto cap = max_delay.count();
  std::int64_t wait = delay.count();
  if (backoff == Backoff::fixed) {
    // delay every time
  } else if (backoff == Backoff::linear) {
    wait = wait > cap / attempt ? cap : wait * attempt;
  } else {
    for (int i = 1; i < attempt && wait < cap; ++i) wait = wait > cap / 2 ? cap : wait * 2;
  }
  return std::chrono::milliseconds{std::min<std::int64_t>(wait, cap)};
}

}  // namespace cppfly::messaging
