#include <cppfly/messaging/batch_failure.hpp>

#include <utility>

namespace cppfly::messaging {

namespace {

std::string describe(const std::exception_ptr& cause) {
  try {
    if (cause) std::rethrow_exception(cause);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {  // NOLINT(bugprone-empty-catch): a non-standard exception has no text
  }
  return "a record of the batch failed";
}

}  // namespace

BatchFailure::BatchFailure(std::size_t index, const std::string& reason) : std::runtime_error(reason), index_(index) {}

BatchFailure::BatchFailure(std::size_t index, std::exception_ptr cause)
    : std::runtime_error(describe(cause)), index_(index), cause_(std::move(cause)) {}

BatchDecodeError::BatchDecodeError(std::vector<Rejected> rejected)
    : std::runtime_error(std::to_string(rejected.size()).append(" record(s) of the batch cannot be decoded")),
      rejected_(std::move(rejected)) {}

}  // namespace cppfly::messaging
