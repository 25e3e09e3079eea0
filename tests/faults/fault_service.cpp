// The service the fault tests run as real processes: built from the public headers only.
//
// Kafka settings come from its pyfly.yaml (--config); what the listener and the publisher do comes
// from the environment, read once at start:
//   FAULT_TOPIC            topic listened to / published to (default "faults")
//   FAULT_GROUP            consumer group (default "fault-service")
//   FAULT_RETRIES          retries (default 0); FAULT_RETRY_DELAY_MS base delay (default 100)
//   FAULT_DLQ              dead-letter topic (default none)
//   FAULT_OUT              file: one line "<id>\n" per handled record, one write(2) each (O_APPEND)
//   FAULT_EVENTS           file: one line "fail <id> <attempt>" per failed attempt (optional)
//   FAULT_INFLIGHT         file: "<n>\n" each time more handlers than ever before run at once (optional)
//   FAULT_FAIL_ID          the record with this id throws (optional): always, or in its first
//                          FAULT_FAIL_ATTEMPTS attempts (Message::attempt); in attempt FAULT_ABORT_ATTEMPT
//                          it kills the process instead (std::abort, after an "abort <id> <attempt>" event)
//   FAULT_ORDERING         partition (default), key or none; FAULT_CONCURRENCY records at once (default 1)
//   FAULT_BACKOFF          linear (default), exponential or fixed
//   FAULT_FORWARD          topic: each handled record is published there ({"id":N}, key N) from the handler
//   FAULT_TRANSACTIONAL    1: a transactional listener (exactly-once consume-process-produce)
//   FAULT_DELAY_US         every record takes at least this long (default 0)
//   FAULT_SLOW_ID          the record with this id sleeps FAULT_SLOW_MS in its first call (optional)
//   FAULT_HOLD_AFTER       the handler that writes the N-th line of FAULT_OUT then holds (up to 120 s):
//                          the test kills the process there, inside that record's handling (optional)
//   FAULT_PUBLISH_COUNT    publish ids 0..N-1 ({"id":N}) from a thread after start (default 0)
//   FAULT_PUBLISH_WINDOW   1: sync publish(); >1: publish_async() with that many in flight
//   FAULT_PUBLISH_RATE     records per second at most (0: no limit)
//   FAULT_ACKED            file: "<id>\n" per acknowledged publish
//   FAULT_PUBLISH_ERRORS   file: "<id> <elapsed ms> <error>\n" per failed publish
//   FAULT_PUBLISH_DONE     file written ("<acked> <failed> <slowest publish ms>\n") when the publisher finished
// Compiled with FAULT_PUBLISHER_ONLY (fault_publisher), it has no listener: a producer process.
#include <cppfly/messaging.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;
using cppfly::messaging::Message;

std::string env(const char* name, std::string fallback = {}) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

long env_long(const char* name, long fallback) {
  const std::string value = env(name);
  return value.empty() ? fallback : std::stol(value);
}

/// An append-only file written with one write(2) per line, so a kill -9 never leaves half a line.
class LineFile {
 public:
  explicit LineFile(const std::string& path)
      : fd_(path.empty() ? -1 : ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) {
    if (!path.empty() && fd_ < 0) throw std::runtime_error("cannot open " + path);
  }
  ~LineFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  LineFile(const LineFile&) = delete;
  LineFile& operator=(const LineFile&) = delete;
  void line(const std::string& text) const {
    if (fd_ < 0) return;
    const std::string row = text + "\n";
    if (::write(fd_, row.data(), row.size()) != static_cast<ssize_t>(row.size())) std::abort();
  }

 private:
  int fd_;
};

struct Record {
  long id{};
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(Record, id)
};

struct Settings {
  std::string topic = env("FAULT_TOPIC", "faults");
  long fail_id = env_long("FAULT_FAIL_ID", -1);
  long fail_attempts = env_long("FAULT_FAIL_ATTEMPTS", -1);
  long abort_attempt = env_long("FAULT_ABORT_ATTEMPT", -1);
  long slow_id = env_long("FAULT_SLOW_ID", -1);
  long slow_ms = env_long("FAULT_SLOW_MS", 0);
  long delay_us = env_long("FAULT_DELAY_US", 0);
  long hold_after = env_long("FAULT_HOLD_AFTER", -1);
  LineFile out{env("FAULT_OUT")};
  LineFile events{env("FAULT_EVENTS")};
  LineFile inflight{env("FAULT_INFLIGHT")};
};

Settings& settings() {
  static Settings instance;
  return instance;
}


}  // namespace

#ifndef FAULT_PUBLISHER_ONLY
namespace {

cppfly::messaging::ListenerOptions listener_options() {
  using cppfly::messaging::Backoff;
  using cppfly::messaging::Ordering;
  const std::string ordering = env("FAULT_ORDERING", "partition");
  const std::string backoff = env("FAULT_BACKOFF", "linear");
  return {.topic = settings().topic,
          .group_id = env("FAULT_GROUP", "fault-service"),
          .retries = static_cast<int>(env_long("FAULT_RETRIES", 0)),
          .retry_delay = std::chrono::milliseconds(env_long("FAULT_RETRY_DELAY_MS", 100)),
          .backoff = backoff == "fixed" ? Backoff::fixed : backoff == "exponential" ? Backoff::exponential : Backoff::linear,
          .dead_letter_topic = env("FAULT_DLQ"),
          .concurrency = static_cast<int>(env_long("FAULT_CONCURRENCY", 1)),
          .ordering = ordering == "key" ? Ordering::key : ordering == "none" ? Ordering::none : Ordering::partition,
          .transactional = env("FAULT_TRANSACTIONAL") == "1"};
}

/// The broker, for FAULT_FORWARD: set by the after-start hook, and a record may come before it.
class ForwardBroker {
 public:
  void set(cppfly::messaging::MessageBrokerPort& broker) {
    const std::lock_guard lock(mutex_);
    broker_ = &broker;
    ready_.notify_all();
  }
  /// Waits until it is set, at most 30 s.
  cppfly::messaging::MessageBrokerPort& get() {
    std::unique_lock lock(mutex_);
    if (!ready_.wait_for(lock, 30s, [this] { return broker_ != nullptr; })) {
      throw std::runtime_error("no broker within 30 s");
    }
    return *broker_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  cppfly::messaging::MessageBrokerPort* broker_{nullptr};
};

ForwardBroker forward_broker;

std::atomic<bool> slow_done{false};
std::atomic<long> lines_written{0};
std::atomic<int> inflight{0};
std::atomic<int> most_inflight{0};

/// Counts the handlers running at once; notes each new maximum.
struct InFlight {
  InFlight() {
    const int now = ++inflight;
    int most = most_inflight.load();
    while (now > most) {
      if (most_inflight.compare_exchange_weak(most, now)) {
        settings().inflight.line(std::to_string(now));
        break;
      }
    }
  }
  ~InFlight() { --inflight; }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
};

}  // namespace

CPPFLY_MESSAGE_LISTENER(handle_record, (const Record& record, const Message& message), {listener_options()}) {
  auto& s = settings();
  const InFlight counted;
  if (record.id == s.fail_id && message.attempt == s.abort_attempt) {
    s.events.line("abort " + std::to_string(record.id) + " " + std::to_string(message.attempt));
    std::abort();
  }
  if (record.id == s.fail_id && (s.fail_attempts < 0 || message.attempt <= s.fail_attempts)) {
    s.events.line("fail " + std::to_string(record.id) + " " + std::to_string(message.attempt));
    throw std::runtime_error("record " + std::to_string(record.id) + " always fails");
  }
  if (record.id == s.slow_id && !slow_done.exchange(true)) {
    s.events.line("slow " + std::to_string(record.id));
    std::this_thread::sleep_for(std::chrono::milliseconds(s.slow_ms));
  }
  if (s.delay_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(s.delay_us));
  static const std::string forward = env("FAULT_FORWARD");
  if (!forward.empty()) {
    forward_broker.get().publish(forward, "{\"id\":" + std::to_string(record.id) + "}", {.key = std::to_string(record.id)});
  }
  s.out.line(std::to_string(record.id));
  if (++lines_written == s.hold_after) {
    // Held inside the handling (a transactional listener's transaction is open) until the test's
    // SIGKILL; bounded, so a test that never kills still ends.
    std::this_thread::sleep_for(std::chrono::seconds(120));
  }
}
#endif

namespace {

/// Publishes ids 0..count-1 from its own thread; stopped before the broker stops.
class Publisher {
 public:
  void start(cppfly::messaging::MessageBrokerPort& broker) {
    const long count = env_long("FAULT_PUBLISH_COUNT", 0);
    if (count <= 0) return;
    thread_ = std::thread([this, &broker, count] { run(broker, count); });
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run(cppfly::messaging::MessageBrokerPort& broker, long count) {
    const std::string topic = settings().topic;
    const long window = std::max(1L, env_long("FAULT_PUBLISH_WINDOW", 1));
    const long rate = env_long("FAULT_PUBLISH_RATE", 0);
    LineFile acked(env("FAULT_ACKED"));
    LineFile errors(env("FAULT_PUBLISH_ERRORS"));
    long n_acked = 0;
    long n_failed = 0;
    long slowest_ms = 0;
    using Clock = std::chrono::steady_clock;
    struct InFlight {
      long id;
      Clock::time_point sent;
      std::future<cppfly::messaging::DeliveryResult> result;
    };
    std::deque<InFlight> in_flight;
    auto elapsed_ms = [](Clock::time_point since) {
      return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count());
    };
    auto settle = [&](InFlight& f) {
      try {
        f.result.get();
        slowest_ms = std::max(slowest_ms, elapsed_ms(f.sent));
        acked.line(std::to_string(f.id));
        ++n_acked;
      } catch (const std::exception& e) {
        const long ms = elapsed_ms(f.sent);
        slowest_ms = std::max(slowest_ms, ms);
        errors.line(std::to_string(f.id) + " " + std::to_string(ms) + " " + e.what());
        ++n_failed;
      }
    };
    const auto t0 = Clock::now();
    for (long id = 0; id < count && !stop_; ++id) {
      if (rate > 0) {
        const auto due = t0 + std::chrono::microseconds(id * 1000000 / rate);
        while (!stop_ && Clock::now() < due) std::this_thread::sleep_for(std::min<Clock::duration>(due - Clock::now(), 50ms));
      }
      const std::string value = "{\"id\":" + std::to_string(id) + "}";
      const auto sent = Clock::now();
      if (window == 1) {
        try {
          broker.publish(topic, value, {.key = std::to_string(id)});
          slowest_ms = std::max(slowest_ms, elapsed_ms(sent));
          acked.line(std::to_string(id));
          ++n_acked;
        } catch (const std::exception& e) {
          const long ms = elapsed_ms(sent);
          slowest_ms = std::max(slowest_ms, ms);
          errors.line(std::to_string(id) + " " + std::to_string(ms) + " " + e.what());
          ++n_failed;
        }
        continue;
      }
      in_flight.push_back({id, sent, broker.publish_async(topic, value, {.key = std::to_string(id)})});
      while (static_cast<long>(in_flight.size()) >= window) {
        settle(in_flight.front());
        in_flight.pop_front();
      }
    }
    for (auto& f : in_flight) settle(f);
    LineFile(env("FAULT_PUBLISH_DONE")).line(std::to_string(n_acked) + " " + std::to_string(n_failed) + " " +
                                            std::to_string(slowest_ms));
  }

  std::atomic<bool> stop_{false};
  std::thread thread_;
};

Publisher publisher;

}  // namespace

CPPFLY_AFTER_START(start_publisher) {
#ifndef FAULT_PUBLISHER_ONLY
  forward_broker.set(app.broker());
#endif
  publisher.start(app.broker());
}

CPPFLY_BEFORE_STOP(stop_publisher) { publisher.stop(); }

int main(int argc, char** argv) { return cppfly::Application::run(argc, argv); }
