// Helpers for the real-broker integration tests: the broker address (a failure when it is
// missing), unique names, topics created through the Admin API, consumer-group inspection,
// bounded collectors and bounded subprocesses.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <cppfly/config/config.hpp>

namespace cppfly::integration {

using namespace std::chrono_literals;

/// The bound for anything a test waits for (records, delivery reports, group state).
inline constexpr std::chrono::seconds kWait{30};
/// The bound for one external client run (kcat, python).
inline constexpr std::chrono::seconds kProcessTimeout{60};

/// CPPFLY_KAFKA_BOOTSTRAP; FAILs the running test (with how to fix it) when it is unset.
std::string bootstrap_servers();

/// "cppfly-integ-<what>-<random hex>": never collides across runs.
std::string unique_name(const std::string& what);

/// Creates `topic` with `partitions` partitions (replication 1) through the Admin API and
/// waits until every partition has a leader. Throws std::runtime_error on failure.
void create_topic(const std::string& servers, const std::string& topic, int partitions);

/// An Application config: provider kafka at `servers`, short timeouts, commit timer 200 ms.
/// `extra` is YAML appended under pyfly.messaging.kafka (indented by 6 spaces), e.g.
/// "      properties:\n        compression.type: zstd\n".
config::Config kafka_config(const std::string& servers, const std::string& extra = {});

/// The partitions assigned to each member of `group` (member id → partitions), once the group is
/// Stable with exactly `members` members that each hold at least one partition; throws
/// std::runtime_error (with the last state seen) when that does not happen within `timeout`.
std::map<std::string, std::vector<std::int32_t>> wait_for_stable_group(const std::string& servers,
                                                                       const std::string& group, std::size_t members,
                                                                       std::chrono::milliseconds timeout = kWait);

/// The offset `group` committed for `topic`/`partition` (-1: none), through the Admin API.
std::int64_t committed_offset(const std::string& servers, const std::string& group, const std::string& topic,
                              std::int32_t partition);
/// The metadata committed with it ("" when none).
std::string committed_metadata(const std::string& servers, const std::string& group, const std::string& topic,
                               std::int32_t partition);
/// Commits `offset` with `metadata` for `group` (which must have no active member), through the Admin API.
void commit_offset(const std::string& servers, const std::string& group, const std::string& topic,
                   std::int32_t partition, std::int64_t offset, const std::string& metadata);

/// Thread-safe list that handlers append to and tests wait on (condition variable with a deadline).
/// Copies share the same list, so a handler may hold one by value.
template <class T>
class Collector {
 public:
  Collector() : state_(std::make_shared<State>()) {}

  void add(T item) const {
    {
      const std::lock_guard lock(state_->mutex);
      state_->items.push_back(std::move(item));
    }
    state_->changed.notify_all();
  }

  /// Waits until `done(items)` holds, at most `timeout`. False on timeout.
  bool wait_until(const std::function<bool(const std::vector<T>&)>& done,
                  std::chrono::milliseconds timeout = kWait) const {
    std::unique_lock lock(state_->mutex);
    return state_->changed.wait_for(lock, timeout, [&] { return done(state_->items); });
  }

  bool wait_for_count(std::size_t count, std::chrono::milliseconds timeout = kWait) const {
    return wait_until([count](const std::vector<T>& items) { return items.size() >= count; }, timeout);
  }

  [[nodiscard]] std::vector<T> items() const {
    const std::lock_guard lock(state_->mutex);
    return state_->items;
  }

  [[nodiscard]] std::size_t size() const {
    const std::lock_guard lock(state_->mutex);
    return state_->items.size();
  }

 private:
  struct State {
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<T> items;
  };
  std::shared_ptr<State> state_;
};

/// What a subprocess did.
struct ProcessResult {
  int exit_code{-1};       ///< the exit status; 128+N when killed by signal N; 124 when `timeout` stopped it
  bool timed_out{false};   ///< stopped by the time bound
  std::string out;         ///< everything it wrote to stdout
  std::string err;         ///< everything it wrote to stderr
  std::string command;     ///< the command line, for messages

  /// One line for test output: command, exit code, stderr.
  [[nodiscard]] std::string describe() const;
};

/// Runs `argv` under `timeout --kill-after=5 <timeout>`, feeding `input` to its stdin and
/// capturing stdout and stderr. Never waits longer than `timeout` + 15 s (then SIGKILLs it).
/// Throws std::runtime_error when the process cannot be started.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& input = {},
                          std::chrono::seconds timeout = kProcessTimeout);

/// Writes `content` to a fresh file in the temp directory; removed when the object dies.
class TempFile {
 public:
  explicit TempFile(const std::string& content);
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

}  // namespace cppfly::integration
