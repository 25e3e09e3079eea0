// BatchFailure: what a batch listener throws to name the record of its batch that failed.
#pragma once

#include <cstddef>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

namespace cppfly::messaging {

/// Thrown by a batch listener: the records before `index` (in the batch it was given) are handled
/// and settle; the one at `index` failed and is retried (then dead-lettered alone), the rest run after it.
/// Spring Kafka's BatchListenerFailedException. `cause` (when set) names the failure in the dead-letter headers.
class BatchFailure : public std::runtime_error {
 public:
  explicit BatchFailure(std::size_t index, const std::string& reason = "a record of the batch failed");
  BatchFailure(std::size_t index, std::exception_ptr cause);

  [[nodiscard]] std::size_t index() const noexcept { return index_; }
  [[nodiscard]] const std::exception_ptr& cause() const noexcept { return cause_; }

 private:
  std::size_t index_;
  std::exception_ptr cause_;
};

/// Thrown by a batch listener's decoding, before its function runs: these records (indices into the
/// batch) cannot be decoded. The container dead-letters them at once and runs the batch without them.
class BatchDecodeError : public std::runtime_error {
 public:
  struct Rejected {
    std::size_t index{0};
    std::exception_ptr error;  ///< the PayloadDecodeError
  };
  explicit BatchDecodeError(std::vector<Rejected> rejected);

  [[nodiscard]] const std::vector<Rejected>& rejected() const noexcept { return rejected_; }

 private:
  std::vector<Rejected> rejected_;
};

}  // namespace cppfly::messaging
