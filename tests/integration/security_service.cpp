// A small listener service built from the public headers only, run by the security tests as a
// real process: `security_service --config FILE`. Its broker settings (TLS, SASL) come from the
// file's pyfly.messaging.kafka.properties and nothing else.
//
// One listener (its own group) reads the topic named by `security-check.topic`; after start the
// service publishes `security-check.value` there and waits (bounded by
// `security-check.timeout-ms`, default 30000) until the listener has received it. It prints
// "round trip ok: <value>" and exits 0, or prints "round trip failed" and exits 1. With a broker
// that refuses it, Application::run exits non-zero before any of this runs.
#include <cppfly/messaging.hpp>

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>

namespace {

struct Received {
  std::mutex mutex;
  std::condition_variable changed;
  std::string wanted;
  bool seen = false;
};

Received& received() {
  static Received state;
  return state;
}

}  // namespace

CPPFLY_AFTER_START(security_round_trip) {
  const auto& config = app.config();
  const auto topic = config.get("security-check.topic").value_or("cppfly-security-check");
  const auto value = config.get("security-check.value").value_or("security-check");
  const auto timeout = std::chrono::milliseconds(std::stoi(config.get("security-check.timeout-ms").value_or("30000")));
  auto& state = received();
  {
    const std::lock_guard lock(state.mutex);
    state.wanted = value;
  }
  // The listener: a group of its own, reading from the earliest offset (the default), so the
  // record is seen even when it is published before the group's assignment.
  app.broker().subscribe(
      topic,
      [&state](const cppfly::messaging::Message& message) {
        const std::lock_guard lock(state.mutex);
        if (message.value == state.wanted) state.seen = true;
        state.changed.notify_all();
      },
      topic + "-reader");
  app.broker().publish(topic, value, {.key = "security-check"});  // returns once the broker acknowledged it
  std::printf("published to %s\n", topic.c_str());
  std::unique_lock lock(state.mutex);
  const bool seen = state.changed.wait_for(lock, timeout, [&state] { return state.seen; });
  lock.unlock();
  std::printf(seen ? "round trip ok: %s\n" : "round trip failed: %s not received\n", value.c_str());
  std::fflush(stdout);
  app.request_stop(seen ? 0 : 1);
}

int main(int argc, char** argv) { return cppfly::Application::run(argc, argv); }
