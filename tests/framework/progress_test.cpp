// What survives a restart: the commit-metadata format (completed offsets, attempt counts), and the
// listener container writing it and resuming from it.
#include <catch2/catch.hpp>

#include <cppfly/messaging/broker_port.hpp>
#include <cppfly/messaging/listener_container.hpp>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <thread>
#include <mutex>
#include <set>
#include <vector>

#include "null_port.hpp"
#include "offset_progress.hpp"

using namespace cppfly::messaging;
using cppfly::detail::decode_progress;
using cppfly::detail::encode_progress;
using cppfly::detail::kProgressLimit;
using cppfly::detail::OffsetProgress;
using cppfly::detail::OffsetRange;
using cppfly::detail::ProgressRejection;
using namespace std::chrono_literals;

namespace {

OffsetProgress decoded(const std::string& metadata, std::int64_t committed) {
  ProgressRejection why{};
  auto progress = decode_progress(metadata, committed, why);
  REQUIRE(progress.has_value());
  CHECK(why == ProgressRejection::none);
  return *progress;
}

ProgressRejection rejection(const std::string& metadata, std::int64_t committed) {
  ProgressRejection why{};
  CHECK_FALSE(decode_progress(metadata, committed, why).has_value());
  return why;
}

/// A port that takes dead letters and drops them.
using NoDeadLetters = cppfly_test::NullPort;

/// What the handlers saw, with a bounded wait on it.
struct Seen {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::pair<std::int64_t, int>> records;  // offset, attempt
  void note(const Message& m) {
    const std::lock_guard lock(mutex);
    records.emplace_back(m.offset, m.attempt);
    changed.notify_all();
  }
  bool wait_for(std::size_t n) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 20s, [&] { return records.size() >= n; });
  }
};

/// Partition t[0] committed at `offset` with `metadata` (built step by step: a braced list of it trips
/// GCC 12's -Wmaybe-uninitialized at -O3).
std::vector<Position> committed_at(std::int64_t offset, const std::string& metadata) {
  Position position;
  position.partition.topic = "t";
  position.offset = offset;
  position.metadata = metadata;
  std::vector<Position> out;
  out.push_back(std::move(position));
  return out;
}

/// Polls `condition` every millisecond, at most 20 s.
bool eventually(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

Message record(std::int64_t offset, std::string key) {
  return Message{.topic = "t", .value = "v", .key = std::move(key), .partition = 0, .offset = offset};
}

}  // namespace

TEST_CASE("progress: the format, version 1, written and read back", "[progress]") {
  const OffsetProgress progress{.base = 100,
                                .completed = {{101, 104}, {107, 109}},
                                .attempts = {{100, 2}, {105, 1}}};
  // Scattered completions: the bitset (011110 000000 ... : "84") is shorter than the runs.
  const std::string text = encode_progress(progress, kProgressLimit);
  CHECK(text == "cf1;100;0:2,5:1;~84");
  CHECK(decoded(text, 100) == progress);
  CHECK(decoded("cf1;100;0:2,5:1;1.4.2.3", 100) == progress);  // the same as runs
  // A long run: the runs form.
  const OffsetProgress run{.base = 100, .completed = {{101, 5000}}, .attempts = {}};
  CHECK(encode_progress(run, kProgressLimit) == "cf1;100;;1.3s4");
  CHECK(decoded("cf1;100;;1.3s4", 100) == run);
  CHECK(decoded("cf1;100;;~eA", 100) == OffsetProgress{.base = 100, .completed = {{102, 105}}, .attempts = {}});
  // Base-36 distances, nothing past the base.
  const OffsetProgress far{.base = 7, .completed = {{7 + 36 * 36, 7 + 36 * 36 + 35}}, .attempts = {}};
  CHECK(encode_progress(far, kProgressLimit) == "cf1;7;;100.10");
  CHECK(decoded("cf1;7;;100.10", 7) == far);
  CHECK(decoded("cf1;0;;", 0) == OffsetProgress{.base = 0, .completed = {}, .attempts = {}});
}

TEST_CASE("progress: metadata that is not ours, of a later format, or for another offset is not taken",
          "[progress]") {
  CHECK(rejection("", 5) == ProgressRejection::empty);
  CHECK(rejection("some other client's note", 5) == ProgressRejection::foreign);
  CHECK(rejection("{\"v\":1}", 5) == ProgressRejection::foreign);
  CHECK(rejection("cf2;5;whatever may come", 5) == ProgressRejection::later_version);
  CHECK(rejection("cf1;4;;1.1", 5) == ProgressRejection::other_offset);  // the offset was reset by a tool
  // Malformed: a completed run touching the base or the one before, upper case, trailing junk.
  CHECK(rejection("cf1;5;;0.2", 5) == ProgressRejection::foreign);
  CHECK(rejection("cf1;5;;1.2.0.1", 5) == ProgressRejection::foreign);
  CHECK(rejection("cf1;5;;1.A", 5) == ProgressRejection::foreign);
  CHECK(rejection("cf1;5;0:1;1.2-", 5) == ProgressRejection::foreign);
  CHECK(rejection("cf1;5;0:1", 5) == ProgressRejection::foreign);
  CHECK(rejection("cf1;5;1:1,0:1;", 5) == ProgressRejection::foreign);  // attempts out of order
  CHECK(rejection("cf1;-5;;", -5) == ProgressRejection::foreign);
  CHECK(rejection("cf1;5;;~a+b", 5) == ProgressRejection::foreign);  // not base64url
}

TEST_CASE("progress: what does not fit is left out from the highest offsets down, never more", "[progress]") {
  // 50,000 completed records, every other offset: far more than 4,000 bytes either way (the bitset
  // records the most: 6 offsets a byte).
  OffsetProgress scattered{.base = 1000, .completed = {}, .attempts = {}};
  for (std::int64_t i = 0; i < 50000; ++i) scattered.completed.push_back({1001 + 2 * i, 1001 + 2 * i});
  for (std::int64_t i = 0; i < 5000; ++i) scattered.attempts.emplace_back(1000 + 2 * i, 3);
  std::int64_t cut_at = -1;
  const std::string text = encode_progress(scattered, kProgressLimit, &cut_at);
  CHECK(text.size() <= kProgressLimit);
  const OffsetProgress back = decoded(text, 1000);
  REQUIRE_FALSE(back.completed.empty());
  REQUIRE(back.completed.size() < scattered.completed.size());
  // A prefix of each list: nothing recorded that was not so.
  CHECK(std::equal(back.completed.begin(), back.completed.end(), scattered.completed.begin()));
  CHECK(std::equal(back.attempts.begin(), back.attempts.end(), scattered.attempts.begin()));
  CHECK_FALSE(back.attempts.empty());
  CHECK(cut_at == scattered.completed[back.completed.size()].first);
  CHECK(back.completed.size() > 5000);  // what ~1,950 bytes of bits hold: ~11,700 offsets
}

TEST_CASE("progress: the container checkpoints completions past a retrying record, and its attempts",
          "[progress][container]") {
  NoDeadLetters dead_letters;
  Seen seen;
  ListenerContainer container(
      Subscription{.topic = "t",
                   .handler =
                       [&](const Message& m) {
                         if (*m.key == "A") throw std::runtime_error("A fails");
                         seen.note(m);
                       },
                   .group = "g",
                   .container = {.ordering = Ordering::key,
                                 .concurrency = 2,
                                 .failure = {.retry = RetryPolicy{.retries = 5, .delay = 60s}}}},
      dead_letters, ContainerRuntime{});
  container.start();
  container.assign({{"t", 0}});
  container.offer(record(10, "A"));
  for (int i = 11; i < 20; ++i) container.offer(record(i, "B"));
  REQUIRE(seen.wait_for(9));
  // A@10 failed once and waits 60 s: the checkpoint counts its next attempt as made. (Polled, bounded:
  // the container notifies nobody when a record settles or a failure is noted.)
  REQUIRE(eventually([&] { return container.buffered() == 1 && container.checkpoint_urgent(); }));
  const auto positions = container.checkpoint();
  CHECK_FALSE(container.checkpoint_urgent());
  REQUIRE(positions.size() == 1);
  CHECK(positions[0].offset == 10);
  CHECK(decoded(positions[0].metadata, 10) ==
        OffsetProgress{.base = 10, .completed = {{11, 19}}, .attempts = {{10, 2}}});
  // A clean stop writes the attempts made.
  const auto stopped = container.stop();
  REQUIRE(stopped.size() == 1);
  CHECK(stopped[0].offset == 10);
  CHECK(decoded(stopped[0].metadata, 10) ==
        OffsetProgress{.base = 10, .completed = {{11, 19}}, .attempts = {{10, 1}}});
}

TEST_CASE("progress: assigned with that metadata, the container skips completed records and goes on counting",
          "[progress][container]") {
  NoDeadLetters dead_letters;
  Seen seen;
  ListenerContainer container(Subscription{.topic = "t",
                                           .handler = [&](const Message& m) { seen.note(m); },
                                           .group = "g",
                                           .container = {.ordering = Ordering::key, .concurrency = 2}},
                              dead_letters, ContainerRuntime{});
  container.start();
  container.assign_committed(committed_at(10, "cf1;10;0:1;1.9"));
  for (int i = 10; i < 25; ++i) container.offer(record(i, i == 10 ? "A" : "B"));
  REQUIRE(seen.wait_for(6));  // 10, then 20-24
  const auto stopped = container.stop();
  std::set<std::int64_t> offsets;
  for (const auto& [offset, attempt] : seen.records) {
    offsets.insert(offset);
    CHECK(attempt == (offset == 10 ? 2 : 1));
  }
  CHECK(seen.records.size() == 6);
  CHECK(offsets == std::set<std::int64_t>{10, 20, 21, 22, 23, 24});
  REQUIRE(stopped.size() == 1);
  CHECK(stopped[0].offset == 25);
  CHECK(stopped[0].metadata.empty());
}

TEST_CASE("progress: completed records not offered yet stay in the metadata, and move the position once reached",
          "[progress][container]") {
  NoDeadLetters dead_letters;
  Seen seen;
  ListenerContainer container(Subscription{.topic = "t", .handler = [&](const Message& m) { seen.note(m); }, .group = "g"},
                              dead_letters, ContainerRuntime{});
  container.start();
  // 6-9 and 12-14 were completed; 5, 10 and 11 were not.
  container.assign_committed(committed_at(5, "cf1;5;;1.4.2.3"));
  container.offer(record(5, "k"));
  REQUIRE(seen.wait_for(1));
  auto stopped = container.stop();
  REQUIRE(stopped.size() == 1);
  CHECK(stopped[0].offset == 10);  // past 6-9 (completed), though never offered
  CHECK(decoded(stopped[0].metadata, 10) == OffsetProgress{.base = 10, .completed = {{12, 14}}, .attempts = {}});
  // Foreign metadata is ignored: everything runs.
  Seen all;
  ListenerContainer other(Subscription{.topic = "t", .handler = [&](const Message& m) { all.note(m); }, .group = "g"},
                          dead_letters, ContainerRuntime{});
  other.start();
  other.assign_committed(committed_at(5, "{\"written-by\":\"another client\"}"));
  for (int i = 5; i < 10; ++i) other.offer(record(i, "k"));
  REQUIRE(all.wait_for(5));
  stopped = other.stop();
  REQUIRE(stopped.size() == 1);
  CHECK(stopped[0].offset == 10);
}

TEST_CASE("progress: with gated retries a retry waits until the checkpoint with its attempt count was committed",
          "[progress][container]") {
  NoDeadLetters dead_letters;
  Seen seen;
  std::atomic<bool> count_committed{false};
  std::atomic<bool> retried_before_commit{false};
  ListenerContainer container(
      Subscription{.topic = "t",
                   .handler =
                       [&](const Message& m) {
                         seen.note(m);
                         if (m.attempt == 1) throw std::runtime_error("first attempt fails");
                         if (!count_committed.load()) retried_before_commit = true;
                       },
                   .group = "g",
                   .container = {.failure = {.retry = RetryPolicy{.retries = 1, .delay = 0ms}}}},
      dead_letters, ContainerRuntime{.gate_retries = true});
  container.start();
  container.assign({{"t", 0}});
  container.offer(record(7, "k"));
  REQUIRE(eventually([&] { return container.checkpoint_urgent(); }));
  const auto positions = container.checkpoint();  // what the adapter commits: the count of 7
  REQUIRE(positions.size() == 1);
  CHECK(decoded(positions[0].metadata, 7).attempts == std::vector<std::pair<std::int64_t, int>>{{7, 2}});
  count_committed = true;
  container.committed(container.checkpoint_serial());
  REQUIRE(seen.wait_for(2));
  container.stop();
  CHECK_FALSE(retried_before_commit.load());
  CHECK(seen.records == std::vector<std::pair<std::int64_t, int>>{{7, 1}, {7, 2}});
}
