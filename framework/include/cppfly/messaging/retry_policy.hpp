// RetryPolicy: how many times a failing handler is retried and how long each retry waits.
#pragma once

#include <chrono>

namespace cppfly::messaging {

/// linear: attempt N waits delay × N (PyFly's rule). exponential: delay × 2^(N-1). fixed: delay each time
/// (Spring's FixedBackOff).
enum class Backoff { linear, exponential, fixed };

struct RetryPolicy {
  int retries{0};                                  ///< retries after the first attempt
  std::chrono::milliseconds delay{1000};           ///< base delay
  Backoff backoff{Backoff::linear};
  std::chrono::milliseconds max_delay{std::chrono::minutes{5}};  ///< cap on one wait

  /// The wait before retry number `attempt` (1-based), capped at max_delay.
  [[nodiscard]] std::chrono::milliseconds delay_before(int attempt) const noexcept;
};

}  // namespace cppfly::messaging
