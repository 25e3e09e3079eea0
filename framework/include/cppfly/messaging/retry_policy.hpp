// RetryPolicy: how many times a failing handler is retried and how long each retry waits.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace cppfly::messaging {

/// linear: attempt N waits delay × N (PyFly's rule). exponential: delay × 2^(N-1).
enum class Backoff { linear, exponential };

struct RetryPolicy {
  int retries{0};                                  ///< retries after the first attempt
  std::chrono::milliseconds delay{1000};           ///< base delay
  Backoff backoff{Backoff::linear};
  std::chrono::milliseconds max_delay{std::chrono::minutes{5}};  ///< cap on one wait

  /// The wait before retry number `attempt` (1-based), capped at max_delay.
  [[nodiscard]] std::chrono::milliseconds delay_before(int attempt) const noexcept;
};

/// Retry waits that a stop can cut short. The Application holds one for all its listeners:
/// stop() cancels it (a record waiting to be retried is then not settled, so it is delivered
/// again), start() resets it.
class RetryWaits {
 public:
  /// Waits `delay`, or less when cancel() comes first. False when cancelled (before or during it).
  [[nodiscard]] bool wait_for(std::chrono::milliseconds delay);
  void cancel() noexcept;
  void reset() noexcept;

 private:
  std::mutex mutex_;
  std::condition_variable cancelled_cv_;
  bool cancelled_{false};
};

}  // namespace cppfly::messaging
