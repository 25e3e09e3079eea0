// The observer interface and the Prometheus metrics built on it, on the in-memory broker.
#include <catch2/catch.hpp>

#include <cppfly/application.hpp>
#include <cppfly/messaging/in_memory_broker.hpp>
#include <cppfly/messaging/listener.hpp>
#include <cppfly/messaging/prometheus_metrics.hpp>

#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

using namespace cppfly;
using namespace cppfly::messaging;
using namespace std::chrono_literals;

namespace {

config::Config memory_config() { return config::Config::from_string("pyfly:\n  messaging:\n    provider: memory\n"); }

/// Records every event as a line.
struct Recorder final : MessagingObserver {
  std::mutex mutex;
  std::vector<std::string> lines;
  void on_publish(const PublishEvent& e) noexcept override {
    const std::lock_guard lock(mutex);
    lines.push_back(std::string("publish ").append(e.topic).append(e.ok ? " ok" : " failed"));
  }
  void on_consume_start(const ConsumeEvent& e) noexcept override {
    const std::lock_guard lock(mutex);
    lines.push_back(std::string("start ").append(e.listener).append(" ").append(e.message.topic).append(" #")
                        .append(std::to_string(e.message.attempt)));
  }
  void on_consume_end(const ConsumeEndEvent& e) noexcept override {
    const std::lock_guard lock(mutex);
    lines.push_back(std::string("end ").append(e.record.listener).append(" ").append(to_string(e.outcome)));
  }
};

/// The value of one sample line of an exposition ("name{labels} value"), or -1 when absent.
double sample(const std::string& text, const std::string& series) {
  const std::string prefix = series + " ";
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t end = text.find('\n', at);
    const std::string line = text.substr(at, end - at);
    if (line.rfind(prefix, 0) == 0) return std::stod(line.substr(prefix.size()));
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return -1;
}

}  // namespace

TEST_CASE("an observer sees publishes and each handler attempt with its outcome", "[observer]") {
  ListenerRegistry registry;
  int calls = 0;
  registry.add(make_listener("billing", [&](const Message& m) {
    ++calls;
    if (m.value == "poison") throw std::runtime_error("bad");
  }, {.topic = "orders", .group_id = "billing", .retries = 1, .retry_delay = 1ms, .dead_letter_topic = "orders-dlq"}));
  registry.add(make_listener("audit", [&](const Message& m) {
    if (m.value == "poison") throw std::runtime_error("bad");
  }, {.topic = "orders", .group_id = "audit"}));
  auto recorder = std::make_shared<Recorder>();
  Application app(memory_config(), registry);
  app.add_observer(recorder);
  app.start();
  app.broker().publish("orders", "fine");
  REQUIRE_THROWS(app.broker().publish("orders", "poison"));  // audit: no retries, no DLQ: the error comes out
  app.stop();

  const std::vector<std::string> expected{
      "start billing orders #1", "end billing success", "start audit orders #1", "end audit success",
      "publish orders ok",
      "start billing orders #1", "end billing retried", "start billing orders #2",
      "publish orders-dlq ok",  // the dead letter, published while the attempt runs
      "end billing dead_lettered", "start audit orders #1", "end audit skipped", "publish orders ok"};
  CHECK(recorder->lines == expected);
  CHECK(calls == 3);
}

TEST_CASE("observe() after start is refused by the in-memory broker", "[observer]") {
  InMemoryMessageBroker broker;
  broker.start();
  CHECK_THROWS_AS(broker.observe(std::make_shared<Recorder>()), BrokerError);
}

TEST_CASE("prometheus metrics count what the observer is told, in the text format", "[observer][metrics]") {
  ListenerRegistry registry;
  registry.add(make_listener("billing", [&](const Message& m) {
    if (m.value == "poison") throw std::runtime_error("bad");
  }, {.topic = "orders", .group_id = "billing", .retries = 2, .retry_delay = 1ms, .dead_letter_topic = "orders-dlq"}));
  auto metrics = std::make_shared<PrometheusMetrics>();
  Application app(memory_config(), registry);
  app.add_observer(metrics);
  app.start();
  for (int i = 0; i < 3; ++i) app.broker().publish("orders", "fine");
  app.broker().publish("orders", "poison");
  const std::string text = metrics->render(app.broker().status());
  app.stop();

  const std::string labels = R"({listener="billing",topic="orders",group="billing")";
  CHECK(sample(text, "cppfly_records_received_total" + labels + "}") == 4);
  CHECK(sample(text, "cppfly_records_handled_total" + labels + R"(,outcome="success"})") == 3);
  CHECK(sample(text, "cppfly_records_handled_total" + labels + R"(,outcome="retried"})") == 2);
  CHECK(sample(text, "cppfly_records_handled_total" + labels + R"(,outcome="dead_lettered"})") == 1);
  CHECK(sample(text, "cppfly_handler_duration_seconds_count" + labels + "}") == 6);
  CHECK(sample(text, "cppfly_handler_duration_seconds_bucket" + labels + R"(,le="+Inf"})") == 6);
  CHECK(sample(text, R"(cppfly_published_total{topic="orders"})") == 4);
  CHECK(sample(text, R"(cppfly_published_total{topic="orders-dlq"})") == 1);
  CHECK(sample(text, R"(cppfly_publish_duration_seconds_count{topic="orders"})") == 4);
  CHECK(sample(text, "cppfly_records_buffered" + labels + "}") == 0);
  CHECK(sample(text, "cppfly_retries_waiting" + labels + "}") == 0);
  CHECK(sample(text, "cppfly_broker_up") == 1);
  CHECK(text.find("# TYPE cppfly_handler_duration_seconds histogram\n") != std::string::npos);
  CHECK(text.find("# TYPE cppfly_records_handled_total counter\n") != std::string::npos);
}

TEST_CASE("prometheus label values are escaped", "[observer][metrics]") {
  PrometheusMetrics metrics;
  metrics.on_publish({.topic = "we\"ird\\topic\nname", .ok = false, .duration = 2ms});
  const std::string text = metrics.render({});
  CHECK(sample(text, R"(cppfly_publish_failures_total{topic="we\"ird\\topic\nname"})") == 1);
  CHECK(sample(text, R"(cppfly_publish_duration_seconds_bucket{topic="we\"ird\\topic\nname",le="0.0025"})") == 1);
  CHECK(sample(text, R"(cppfly_publish_duration_seconds_bucket{topic="we\"ird\\topic\nname",le="0.001"})") == 0);
}
