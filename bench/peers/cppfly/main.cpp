// peer_cppfly: the cppfly contender of bench/peers, written as a user writes a cppfly service: one
// listener with a typed JSON parameter in group "bench", the one-line main, a pyfly.yaml.
//
//   PEER_MODE=consume PEER_TOPIC=t PEER_COUNT=N peer_cppfly --config bench/peers/cppfly/pyfly.yaml
//   PEER_MODE=publish PEER_TOPIC=t PEER_COUNT=N peer_cppfly --config ...   (publish_async with a callback, then flush)
//   PEER_MODE=slow PEER_TOPIC=t PEER_COUNT=N PEER_ORDERING=key|partition PEER_CONCURRENCY=64 peer_cppfly --config ...
//                    (the slow workload: each handler call waits PEER_SLEEP_MS, default 2, as for I/O; the
//                    listener's .ordering and .concurrency come from the environment; the report line adds
//                    the per-key order violations). PEER_FAIL_ID (slow-retry): that record fails its first
//                    PEER_FAIL_TIMES (5) calls, and the listener retries 5 times, retry N after 200 ms × N
//                    (cppfly's linear backoff); latencies as in consume with PEER_LATENCY_FILE
//
// The bootstrap address comes from PYFLY_MESSAGING_KAFKA_BOOTSTRAP_SERVERS. Protocol and report line:
// bench/peers/common/peer_common.hpp.
#include <cppfly/messaging.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>
#include <vector>

#include "peer_common.hpp"

using cppfly::messaging::Message;
using cppfly::messaging::Ordering;
using peers::Order;

namespace {

const std::string& mode() {
  static const std::string value = peers::env("PEER_MODE", "consume");
  return value;
}
std::int64_t count() { return peers::env_int("PEER_COUNT", 1000000); }
bool slow() { return mode() == "slow"; }

// In publish mode the listener stays on an idle topic (a cppfly listener always subscribes).
std::string listener_topic() {
  return mode() == "consume" || slow() ? peers::env("PEER_TOPIC", "peers-orders")
                                       : peers::env("PEER_IDLE_TOPIC", "peers-idle");
}

// The slow workload's two cppfly contenders differ only in these (drain and latency: the defaults).
int listener_concurrency() { return static_cast<int>(peers::env_int("PEER_CONCURRENCY", 1)); }
// slow-retry: the failing record's retries (cppfly's defaults otherwise: no retry).
int listener_retries() { return peers::env("PEER_FAIL_ID", "").empty() ? 0 : 5; }
std::chrono::milliseconds listener_retry_delay() {
  return std::chrono::milliseconds(peers::env("PEER_FAIL_ID", "").empty() ? 1000 : 200);
}

Ordering listener_ordering() {
  const std::string value = peers::env("PEER_ORDERING", "partition");
  return value == "key" ? Ordering::key : value == "none" ? Ordering::none : Ordering::partition;
}

peers::Tally& tally() {
  static peers::Tally instance(count(), !peers::env("PEER_LATENCY_FILE", "").empty());
  return instance;
}

peers::SlowTally& slow_tally() {
  static peers::SlowTally instance(count(), !peers::env("PEER_LATENCY_FILE", "").empty());
  return instance;
}

}  // namespace

CPPFLY_MESSAGE_LISTENER(on_order, (const Order& order, const Message& message),
                        {.topic = listener_topic(),
                         .group_id = "bench",
                         .retries = listener_retries(),
                         .retry_delay = listener_retry_delay(),
                         .concurrency = listener_concurrency(),
                         .ordering = listener_ordering()}) {
  if (slow()) {
    static const auto wait = std::chrono::milliseconds(peers::env_int("PEER_SLEEP_MS", 2));
    std::this_thread::sleep_for(wait);  // as for I/O
    // slow-retry: the first PEER_FAIL_TIMES calls for this record fail. Counted here rather than with
    // Message::attempt, which the retry loop of this version does not fill in yet.
    static const std::int64_t fail_id = peers::env_int("PEER_FAIL_ID", -1);
    static const std::int64_t fail_times = peers::env_int("PEER_FAIL_TIMES", 5);
    static std::atomic<std::int64_t> failed{0};
    if (order.id == fail_id && failed.fetch_add(1) < fail_times) throw std::runtime_error("transient failure (bench)");
    std::optional<std::int64_t> seq;
    if (auto header = message.headers.get(peers::kSeqHeader)) seq = peers::parse_int(header->data(), header->size());
    std::optional<std::int64_t> sent;
    if (auto header = message.headers.get(peers::kSentHeader)) sent = peers::parse_int(header->data(), header->size());
    slow_tally().record(order.id, message.key.value_or(""), seq, sent);
    return;
  }
  std::optional<std::int64_t> sent;
  if (auto header = message.headers.get(peers::kSentHeader)) sent = peers::parse_int(header->data(), header->size());
  tally().record(order.id, sent);
}

// publish: N orders through publish_async's callback form (key = id), the fastest documented
// form; then flush() until every delivery report has run.
static int publish_all(cppfly::Application& app) {
  const std::int64_t n = count();
  const std::string topic = peers::env("PEER_TOPIC", "peers-orders");
  const std::int64_t start_ms = peers::now_ms();
  auto& broker = app.broker();
  std::atomic<std::int64_t> delivered{0};
  std::atomic<std::int64_t> failed{0};
  const auto report = [&delivered, &failed](const cppfly::messaging::DeliveryReport& r) {
    if (r.ok()) {
      delivered.fetch_add(1, std::memory_order_relaxed);
    } else if (failed.fetch_add(1, std::memory_order_relaxed) == 0) {
      std::fprintf(stderr, "peer_cppfly: publish failed: %s\n", r.error->what());
    }
  };
  const std::int64_t first_ms = peers::now_ms();
  for (std::int64_t id = 0; id < n; ++id) {
    Order order = peers::make_order(id);
    order.note.assign(8, 'x');  // ~100 bytes, as the consumed orders
    broker.publish_async(topic, cppfly::messaging::encode_json(order), {.key = std::to_string(id)}, report);
  }
  if (!broker.flush(std::chrono::minutes(5))) std::fprintf(stderr, "peer_cppfly: flush timed out\n");
  const std::int64_t ok = delivered.load();
  const std::int64_t errors = failed.load() + (n - ok - failed.load());
  const std::int64_t last_ms = peers::now_ms();
  std::printf("{\"count\":%lld,\"errors\":%lld,\"start_ms\":%lld,\"first_ms\":%lld,\"last_ms\":%lld}\n",
              static_cast<long long>(ok), static_cast<long long>(errors), static_cast<long long>(start_ms),
              static_cast<long long>(first_ms), static_cast<long long>(last_ms));
  std::fflush(stdout);
  return errors == 0 ? 0 : 1;
}

// After start: wait until the listener saw N orders (or publish them), report, end the run.
CPPFLY_AFTER_START(drive_benchmark) {
  if (mode() == "publish") {
    app.request_stop(publish_all(app));
    return;
  }
  const auto timeout = std::chrono::seconds(peers::env_int("PEER_TIMEOUT_S", 900));
  if (slow()) {
    const bool done = slow_tally().wait(timeout);
    slow_tally().report(peers::env("PEER_LATENCY_FILE", ""));
    app.request_stop(done ? 0 : 1);
    return;
  }
  const bool done = tally().wait(timeout);
  tally().report(peers::env("PEER_LATENCY_FILE", ""));
  app.request_stop(done ? 0 : 1);
}

int main(int argc, char** argv) {
  (void)tally();  // the clock starts with the process
  if (slow()) (void)slow_tally();
  return cppfly::Application::run(argc, argv);
}
