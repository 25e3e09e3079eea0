// memory_dispatch: the cost of InMemoryMessageBroker::publish() → handler, against the direct cost of
// building the same Message and calling the same handler through a std::function.
//
// Run on demand (never a ctest test):
//   build/default/bench/memory_dispatch [--messages N] [--rounds R] [--rows ABC]
// (--rows picks a subset, e.g. `--rows A` to profile one row under valgrind --tool=callgrind.)
//
// Rows, measured in alternating rounds (A B C A B C ...), single thread, nothing pinned:
//   A  broker, record_published = false: publish("bench", 100-byte payload) → raw-Message handler
//   B  direct: build the same Message (topic, value copy, partition 0, offset counter, system_clock
//      timestamp) and call the same handler through std::function<void(const Message&)>
//   C  broker, record_published = true (the default; what unit tests use), for information
// Reported per row: median messages/s and median ns/message over the rounds; then A/B of the medians.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <cppfly/messaging/in_memory_broker.hpp>

namespace {

using cppfly::messaging::InMemoryBrokerOptions;
using cppfly::messaging::InMemoryMessageBroker;
using cppfly::messaging::Message;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kTopic = "bench";
constexpr std::size_t kPayloadBytes = 100;
constexpr double kTargetMsgsPerSec = 5e6;  // A on one core
constexpr double kTargetRatio = 2.0;       // A's cost at most 2x B's

// The handler's observable effect, checked after every round so the work cannot be optimised away.
volatile std::uint64_t g_delivered = 0;
volatile std::uint64_t g_bytes = 0;

void handle(const Message& m) {
  g_delivered = g_delivered + 1;
  g_bytes = g_bytes + m.value.size();
}

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

struct Row {
  const char* id;
  const char* what;
  bool enabled;
  std::vector<double> ns_per_msg;  // one per round
};

[[noreturn]] void usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--messages N] [--rounds R] [--rows ABC]\n", argv0);
  std::exit(2);
}

std::uint64_t parse_positive(const char* text, const char* argv0) {
  std::uint64_t v = 0;
  std::string_view s(text);
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || v == 0) usage(argv0);
  return v;
}

/// Times `messages` deliveries of `fn(payload)`; checks the handler saw every one of them.
template <typename Fn>
double run_round(std::uint64_t messages, const std::string& payload, Fn&& fn) {
  g_delivered = 0;
  g_bytes = 0;
  const auto t0 = Clock::now();
  for (std::uint64_t i = 0; i < messages; ++i) fn(payload);
  const auto t1 = Clock::now();
  if (g_delivered != messages || g_bytes != messages * payload.size()) {
    std::fprintf(stderr, "memory_dispatch: handler saw %llu messages / %llu bytes, expected %llu / %llu\n",
                 static_cast<unsigned long long>(g_delivered), static_cast<unsigned long long>(g_bytes),
                 static_cast<unsigned long long>(messages),
                 static_cast<unsigned long long>(messages * payload.size()));
    std::exit(1);
  }
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(messages);
}

double round_broker(std::uint64_t messages, const std::string& payload, bool record_published) {
  InMemoryMessageBroker broker(InMemoryBrokerOptions{.record_published = record_published});
  broker.subscribe(kTopic, handle);
  broker.start();
  const double ns = run_round(messages, payload, [&](const std::string& p) { broker.publish(kTopic, p); });
  if (record_published && broker.published().size() != messages) {
    std::fprintf(stderr, "memory_dispatch: the broker recorded the wrong number of messages\n");
    std::exit(1);
  }
  broker.stop();
  return ns;  // the broker (and, for C, its record) is destroyed outside the timed loop
}

double round_direct(std::uint64_t messages, const std::string& payload) {
  const std::function<void(const Message&)> handler = handle;
  const std::string topic(kTopic);
  std::int64_t next_offset = 0;
  return run_round(messages, payload, [&](const std::string& p) {
    const Message message{.topic = topic,
                          .value = p,
                          .key = {},
                          .headers = {},
                          .partition = 0,
                          .offset = next_offset++,
                          .timestamp_ms = now_ms()};
    handler(message);
  });
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t messages = 2'000'000;
  std::uint64_t rounds = 7;
  std::string_view rows = "ABC";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg(argv[i]);
    if (arg == "--messages" && i + 1 < argc) {
      messages = parse_positive(argv[++i], argv[0]);
    } else if (arg == "--rounds" && i + 1 < argc) {
      rounds = parse_positive(argv[++i], argv[0]);
    } else if (arg == "--rows" && i + 1 < argc) {
      rows = argv[++i];
      if (rows.empty() || rows.find_first_not_of("ABC") != std::string_view::npos) usage(argv[0]);
    } else {
      usage(argv[0]);
    }
  }

  const std::string payload(kPayloadBytes, 'x');
  const auto has = [&](char id) { return rows.find(id) != std::string_view::npos; };
  Row a{"A", "broker publish, record_published=false", has('A'), {}};
  Row b{"B", "direct: build Message + std::function call", has('B'), {}};
  Row c{"C", "broker publish, record_published=true", has('C'), {}};
  const Row* const all[] = {&a, &b, &c};

  // Warm-up (not in the results): caches, allocator arenas, page faults.
  const std::uint64_t warmup = std::max<std::uint64_t>(1, messages / 10);
  if (a.enabled) round_broker(warmup, payload, false);
  if (b.enabled) round_direct(warmup, payload);
  if (c.enabled) round_broker(warmup, payload, true);

  for (std::uint64_t r = 0; r < rounds; ++r) {
    if (a.enabled) a.ns_per_msg.push_back(round_broker(messages, payload, false));
    if (b.enabled) b.ns_per_msg.push_back(round_direct(messages, payload));
    if (c.enabled) c.ns_per_msg.push_back(round_broker(messages, payload, true));
  }

  std::printf("memory_dispatch: %llu messages x %llu rounds per row (rounds interleaved), %zu-byte payload\n\n",
              static_cast<unsigned long long>(messages), static_cast<unsigned long long>(rounds), kPayloadBytes);
  std::printf("%-3s %-44s %14s %12s %10s %10s\n", "row", "what", "median msg/s", "median ns", "min ns", "max ns");
  for (const Row* row : all) {
    if (!row->enabled) continue;
    const double med = median(row->ns_per_msg);
    const auto [lo, hi] = std::minmax_element(row->ns_per_msg.begin(), row->ns_per_msg.end());
    std::printf("%-3s %-44s %14.0f %12.1f %10.1f %10.1f\n", row->id, row->what, 1e9 / med, med, *lo, *hi);
  }
  std::printf("\n");

  double ratio = 0;
  bool rate_ok = false, ratio_ok = false;
  if (a.enabled) {
    rate_ok = 1e9 / median(a.ns_per_msg) >= kTargetMsgsPerSec;
    std::printf("target A >= %.0f M msg/s: %s\n", kTargetMsgsPerSec / 1e6, rate_ok ? "met" : "MISSED");
  }
  if (a.enabled && b.enabled) {
    ratio = median(a.ns_per_msg) / median(b.ns_per_msg);
    ratio_ok = ratio <= kTargetRatio;
    std::printf("A/B cost ratio: %.2f; target A/B <= %.1f: %s\n", ratio, kTargetRatio, ratio_ok ? "met" : "MISSED");
  }
  if (a.enabled) std::printf("\n");

  // Machine-readable lines.
  for (const Row* row : all) {
    if (!row->enabled) continue;
    const double med = median(row->ns_per_msg);
    std::printf("BENCH memory_dispatch row=%s messages=%llu rounds=%llu median_msgs_per_s=%.0f median_ns_per_msg=%.2f\n",
                row->id, static_cast<unsigned long long>(messages), static_cast<unsigned long long>(rounds),
                1e9 / med, med);
  }
  if (a.enabled && b.enabled) {
    std::printf("BENCH memory_dispatch ratio_a_over_b=%.3f target_rate_met=%d target_ratio_met=%d\n", ratio,
                rate_ok ? 1 : 0, ratio_ok ? 1 : 0);
  }
  return 0;
}
