// Declared topics (pyfly.messaging.kafka.topics) on a real Apache Kafka broker named by
// CPPFLY_KAFKA_BOOTSTRAP: created at start with their partitions and configs, grown when asked,
// a warning when not, and a config the broker refuses is a start error naming the key.
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>
#include <librdkafka/rdkafka.h>
#include <spdlog/sinks/ostream_sink.h>

#include <cppfly/application.hpp>
#include <cppfly/detail/log.hpp>
#include <cppfly/kafka/kafka_adapter.hpp>

#include "../kafka/support.hpp"
#include "support.hpp"

namespace {

using namespace cppfly;
using namespace cppfly::integration;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

/// The configs of `topic` as the broker describes them (DescribeConfigs).
std::map<std::string, std::string> topic_configs(const std::string& servers, const std::string& topic) {
  char reason[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", servers.c_str(), reason, sizeof reason);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, reason, sizeof reason);
  REQUIRE(rk != nullptr);
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_ConfigResource_t* resource = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  rd_kafka_DescribeConfigs(rk, &resource, 1, nullptr, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 30000);
  std::map<std::string, std::string> out;
  if (event != nullptr && rd_kafka_event_error(event) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::size_t resources = 0;
    const auto** described =
        rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(event), &resources);
    for (std::size_t r = 0; r < resources; ++r) {
      std::size_t count = 0;
      const auto** entries = rd_kafka_ConfigResource_configs(described[r], &count);
      for (std::size_t i = 0; i < count; ++i) {
        const char* value = rd_kafka_ConfigEntry_value(entries[i]);
        out[rd_kafka_ConfigEntry_name(entries[i])] = value != nullptr ? value : "";
      }
    }
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_ConfigResource_destroy(resource);
  rd_kafka_queue_destroy(queue);
  rd_kafka_destroy(rk);
  return out;
}

/// Whether the cluster has `topic`, from a metadata request for all topics (one naming the topic
/// would let the broker auto-create it).
bool topic_exists(const std::string& servers, const std::string& topic) {
  char reason[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", servers.c_str(), reason, sizeof reason);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, reason, sizeof reason);
  REQUIRE(rk != nullptr);
  const rd_kafka_metadata_t* metadata = nullptr;
  const auto err = rd_kafka_metadata(rk, 1, nullptr, &metadata, 10000);
  bool found = false;
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < metadata->topic_cnt; ++i) found = found || topic == metadata->topics[i].topic;
    rd_kafka_metadata_destroy(metadata);
  }
  rd_kafka_destroy(rk);
  REQUIRE(err == RD_KAFKA_RESP_ERR_NO_ERROR);
  return found;
}

/// Everything the "cppfly" logger writes while it lives.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(text_)) {
    cppfly::detail::log().sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = cppfly::detail::log().sinks();
    std::erase(sinks, sink_);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  [[nodiscard]] std::string text() {
    sink_->flush();
    return text_.str();
  }

 private:
  std::ostringstream text_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

config::KafkaProperties properties_with(const std::string& servers, const std::string& topics_yaml) {
  return kafka_config(servers, "      topics:\n" + topics_yaml).messaging().kafka;
}

}  // namespace

TEST_CASE("kafka topics: a declared topic is created at start with its partitions and configs",
          "[kafka][real][topics]") {
  const auto servers = bootstrap_servers();
  const auto topic = unique_name("declared");
  kafka::KafkaAdapter adapter(properties_with(servers, "        " + topic +
                                                           ":\n"
                                                           "          partitions: 3\n"
                                                           "          replication_factor: 1\n"
                                                           "          config:\n"
                                                           "            retention.ms: 3600000\n"
                                                           "            cleanup.policy: compact\n"));
  adapter.start();
  CHECK(kafka::test::partition_count(servers, topic) == 3);
  const auto configs = topic_configs(servers, topic);
  CHECK(configs.at("retention.ms") == "3600000");
  CHECK(configs.at("cleanup.policy") == "compact");
  // Started again: the topic exists, nothing changes, no error.
  adapter.stop();
  adapter.start();
  CHECK(kafka::test::partition_count(servers, topic) == 3);
  adapter.stop();
}

TEST_CASE("kafka topics: an existing topic with fewer partitions is grown with grow-partitions: true",
          "[kafka][real][topics]") {
  const auto servers = bootstrap_servers();
  const auto topic = unique_name("grown");
  create_topic(servers, topic, 1);
  kafka::KafkaAdapter adapter(
      properties_with(servers, "        " + topic + ":\n          partitions: 4\n          grow-partitions: true\n"));
  adapter.start();
  CHECK(kafka::test::partition_count(servers, topic) == 4);
  adapter.stop();
}

TEST_CASE("kafka topics: without grow-partitions an existing smaller topic is left as it is, with a warning",
          "[kafka][real][topics]") {
  const auto servers = bootstrap_servers();
  const auto topic = unique_name("kept");
  create_topic(servers, topic, 1);
  LogCapture log;
  kafka::KafkaAdapter adapter(properties_with(servers, "        " + topic + ":\n          partitions: 4\n"));
  adapter.start();
  CHECK(kafka::test::partition_count(servers, topic) == 1);
  adapter.stop();
  CHECK_THAT(log.text(), Contains("topic '" + topic + "' has 1 partition(s), pyfly.messaging.kafka.topics." + topic +
                                  ".partitions declares 4: not grown (set grow-partitions: true"));
}

TEST_CASE("kafka topics: a topic config the broker refuses is a start error naming the key, and nothing is created",
          "[kafka][real][topics]") {
  const auto servers = bootstrap_servers();
  const auto topic = unique_name("refused");
  const auto fine = unique_name("fine");
  const auto properties = properties_with(servers, "        " + fine +
                                                       ":\n"
                                                       "          partitions: 1\n"
                                                       "        " +
                                                       topic +
                                                       ":\n"
                                                       "          partitions: 2\n"
                                                       "          config:\n"
                                                       "            retention.ms: forever\n"
                                                       "            cleanup.policy: delete\n");
  kafka::KafkaAdapter adapter(properties);
  try {
    adapter.start();
    FAIL("start() accepted retention.ms: forever");
  } catch (const config::ConfigError& e) {
    CHECK(e.key() == "pyfly.messaging.kafka.topics." + topic + ".config.retention.ms");
    CHECK_THAT(e.what(), StartsWith("pyfly.messaging.kafka.topics." + topic + ".config.retention.ms: Kafka refused to "
                                    "create topic '" + topic + "': "));
    CHECK_THAT(e.what(), Contains("forever"));
  }
  // Validated before anything was created: neither topic exists.
  CHECK_FALSE(topic_exists(servers, topic));
  CHECK_FALSE(topic_exists(servers, fine));

  // Through an Application the error also says where the key was set (file:line:column).
  const auto other = unique_name("refused");
  const auto config = kafka_config(servers, "      topics:\n"
                                            "        " + other + ":\n"
                                            "          config:\n"
                                            "            retention.ms: forever\n");
  messaging::ListenerRegistry registry;
  Application app(config, registry);
  try {
    app.start();
    FAIL("Application::start() accepted retention.ms: forever");
  } catch (const config::ConfigError& e) {
    CHECK_THAT(e.what(), StartsWith("integration.yaml:14:27: pyfly.messaging.kafka.topics." + other +
                                    ".config.retention.ms: Kafka refused"));
  }
  app.stop();
  CHECK_FALSE(topic_exists(servers, other));
}

TEST_CASE("kafka topics: an unknown topic config name is refused naming the key", "[kafka][real][topics]") {
  const auto servers = bootstrap_servers();
  const auto topic = unique_name("unknown-config");
  kafka::KafkaAdapter adapter(
      properties_with(servers, "        " + topic + ":\n          config:\n            retention.mss: 1000\n"));
  try {
    adapter.start();
    FAIL("start() accepted retention.mss");
  } catch (const config::ConfigError& e) {
    CHECK(e.key() == "pyfly.messaging.kafka.topics." + topic + ".config.retention.mss");
    CHECK_THAT(e.what(), Contains("retention.mss"));
  }
}
