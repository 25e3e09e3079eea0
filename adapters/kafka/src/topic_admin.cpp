#include "topic_admin.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <string>
#include <vector>

#include <cppfly/config/config.hpp>
#include <cppfly/detail/log.hpp>
#include <cppfly/messaging/broker_port.hpp>

#include "mock_cluster.hpp"

namespace cppfly::kafka::detail {
namespace {

using messaging::BrokerError;

constexpr std::string_view kTopicsKey = "pyfly.messaging.kafka.topics";

struct NewTopicDeleter {
  void operator()(rd_kafka_NewTopic_t* topic) const noexcept { rd_kafka_NewTopic_destroy(topic); }
};
struct NewPartitionsDeleter {
  void operator()(rd_kafka_NewPartitions_t* partitions) const noexcept { rd_kafka_NewPartitions_destroy(partitions); }
};
struct AdminOptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* options) const noexcept { rd_kafka_AdminOptions_destroy(options); }
};
using NewTopicHandle = std::unique_ptr<rd_kafka_NewTopic_t, NewTopicDeleter>;
using NewPartitionsHandle = std::unique_ptr<rd_kafka_NewPartitions_t, NewPartitionsDeleter>;
using AdminOptionsHandle = std::unique_ptr<rd_kafka_AdminOptions_t, AdminOptionsDeleter>;

std::string topic_key(const std::string& topic) { return std::string(kTopicsKey) + "." + topic; }

std::string describe(const config::TopicProperties& topic) {
  std::string out = topic.partitions ? std::to_string(*topic.partitions) + " partition(s)" : "default partitions";
  out += topic.replication_factor ? ", replication factor " + std::to_string(*topic.replication_factor)
                                  : ", default replication factor";
  for (const auto& [name, value] : topic.config) out += ", " + name + "=" + value;
  return out;
}

/// Partition counts of every topic the cluster has. A metadata request for all topics never
/// auto-creates one (a request naming a missing topic may, with the broker's defaults).
std::map<std::string, int> existing_topics(rd_kafka_t* rk, std::chrono::milliseconds timeout) {
  const rd_kafka_metadata_t* raw = nullptr;
  const auto err = rd_kafka_metadata(rk, 1, nullptr, &raw, static_cast<int>(timeout.count()));
  const MetadataHandle metadata(raw);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR || !metadata) {
    throw BrokerError(std::string("kafka: cannot list the cluster's topics to create the declared ones (") +
                      std::string(kTopicsKey) + "): " + rd_kafka_err2str(err));
  }
  std::map<std::string, int> out;
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    const auto& topic = metadata->topics[i];
    if (topic.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) continue;
    out[topic.topic] = topic.partition_cnt;
  }
  return out;
}

AdminOptionsHandle admin_options(rd_kafka_t* rk, rd_kafka_admin_op_t op, std::chrono::milliseconds timeout,
                                 bool validate_only) {
  AdminOptionsHandle options(rd_kafka_AdminOptions_new(rk, op));
  std::array<char, 512> reason{};
  const int ms = static_cast<int>(timeout.count());
  if (rd_kafka_AdminOptions_set_request_timeout(options.get(), ms, reason.data(), reason.size()) != 0 ||
      rd_kafka_AdminOptions_set_operation_timeout(options.get(), ms, reason.data(), reason.size()) != 0 ||
      (validate_only &&
       rd_kafka_AdminOptions_set_validate_only(options.get(), 1, reason.data(), reason.size()) != 0)) {
    throw BrokerError(std::string("kafka: admin request options refused: ") + reason.data());
  }
  return options;
}

/// Waits for the one result event of an admin request on `queue` (bounded).
EventHandle await_result(rd_kafka_queue_t* queue, std::chrono::milliseconds timeout, const std::string& what) {
  // The request itself is bounded by `timeout`; the margin covers the result's way back.
  EventHandle event(rd_kafka_queue_poll(queue, static_cast<int>(timeout.count()) + 5000));
  if (!event) {
    throw BrokerError("kafka: " + what + ": no answer within " + std::to_string(timeout.count()) + " ms");
  }
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw BrokerError("kafka: " + what + ": " + rd_kafka_event_error_string(event.get()));
  }
  return event;
}

/// The key a refused topic is about: the topic config the broker's reason names (the longest
/// declared name it mentions), the partitions or the replication factor, else the topic itself.
std::string refused_key(const std::string& topic, const config::TopicProperties& declared, rd_kafka_resp_err_t err,
                        const std::string& reason) {
  const std::string base = topic_key(topic);
  if (err == RD_KAFKA_RESP_ERR_INVALID_PARTITIONS) return base + ".partitions";
  if (err == RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR) return base + ".replication-factor";
  std::string named;
  for (const auto& [name, value] : declared.config) {
    if (reason.find(name) != std::string::npos && name.size() > named.size()) named = name;
  }
  if (!named.empty()) return base + ".config." + named;
  if (declared.config.size() == 1 && (err == RD_KAFKA_RESP_ERR_INVALID_CONFIG || err == RD_KAFKA_RESP_ERR_POLICY_VIOLATION)) {
    return base + ".config." + declared.config.begin()->first;
  }
  return base;
}

bool is_config_error(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICA_ASSIGNMENT:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
      return true;
    default:
      return false;
  }
}

/// CreateTopics for `names` (validate-only first when `validate_only`). Throws on a refusal.
void create_topics(rd_kafka_t* rk, const std::vector<std::string>& names,
                   const std::map<std::string, config::TopicProperties>& declared, std::chrono::milliseconds timeout,
                   bool validate_only) {
  std::vector<NewTopicHandle> owned;
  std::vector<rd_kafka_NewTopic_t*> topics;
  for (const auto& name : names) {
    const auto& topic = declared.at(name);
    std::array<char, 512> reason{};
    NewTopicHandle made(rd_kafka_NewTopic_new(name.c_str(), topic.partitions.value_or(-1),
                                              topic.replication_factor.value_or(-1), reason.data(), reason.size()));
    if (!made) throw config::ConfigError(topic_key(name) + ": " + reason.data(), topic_key(name));
    for (const auto& [config_name, value] : topic.config) {
      const auto err = rd_kafka_NewTopic_set_config(made.get(), config_name.c_str(), value.c_str());
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        const std::string key = topic_key(name) + ".config." + config_name;
        throw config::ConfigError(key + ": " + rd_kafka_err2str(err), key);
      }
    }
    topics.push_back(made.get());
    owned.push_back(std::move(made));
  }
  const auto options = admin_options(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS, timeout, validate_only);
  const QueueHandle queue(rd_kafka_queue_new(rk));
  rd_kafka_CreateTopics(rk, topics.data(), topics.size(), options.get(), queue.get());
  const auto event = await_result(queue.get(), timeout, "creating the declared topics");
  const auto* result = rd_kafka_event_CreateTopics_result(event.get());
  std::size_t count = 0;
  const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &count);
  for (std::size_t i = 0; i < count; ++i) {
    const std::string name = rd_kafka_topic_result_name(results[i]);
    const auto err = rd_kafka_topic_result_error(results[i]);
    const char* text = rd_kafka_topic_result_error_string(results[i]);
    const std::string reason = text != nullptr && *text != '\0' ? text : rd_kafka_err2str(err);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (!validate_only) {
        cppfly::detail::log().info("kafka: created topic '{}' ({}) from {}", name, describe(declared.at(name)),
                                   topic_key(name));
      }
      continue;
    }
    if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      // Made meanwhile by someone else (another instance starting): theirs stands.
      if (!validate_only) cppfly::detail::log().info("kafka: topic '{}' was created meanwhile; kept as it is", name);
      continue;
    }
    if (is_config_error(err)) {
      const std::string key = refused_key(name, declared.at(name), err, reason);
      throw config::ConfigError(key + ": Kafka refused to create topic '" + name + "': " + reason, key);
    }
    throw BrokerError("kafka: cannot create topic '" + name + "' (" + topic_key(name) + "): " + reason);
  }
}

void grow_topics(rd_kafka_t* rk, const std::vector<std::pair<std::string, int>>& grow,
                 std::chrono::milliseconds timeout) {
  std::vector<NewPartitionsHandle> owned;
  std::vector<rd_kafka_NewPartitions_t*> requests;
  for (const auto& [name, total] : grow) {
    std::array<char, 512> reason{};
    NewPartitionsHandle made(
        rd_kafka_NewPartitions_new(name.c_str(), static_cast<std::size_t>(total), reason.data(), reason.size()));
    if (!made) throw config::ConfigError(topic_key(name) + ".partitions: " + reason.data(), topic_key(name) + ".partitions");
    requests.push_back(made.get());
    owned.push_back(std::move(made));
  }
  const auto options = admin_options(rk, RD_KAFKA_ADMIN_OP_CREATEPARTITIONS, timeout, false);
  const QueueHandle queue(rd_kafka_queue_new(rk));
  rd_kafka_CreatePartitions(rk, requests.data(), requests.size(), options.get(), queue.get());
  const auto event = await_result(queue.get(), timeout, "growing the declared topics");
  const auto* result = rd_kafka_event_CreatePartitions_result(event.get());
  std::size_t count = 0;
  const rd_kafka_topic_result_t** results = rd_kafka_CreatePartitions_result_topics(result, &count);
  for (std::size_t i = 0; i < count; ++i) {
    const std::string name = rd_kafka_topic_result_name(results[i]);
    const auto err = rd_kafka_topic_result_error(results[i]);
    const char* text = rd_kafka_topic_result_error_string(results[i]);
    const std::string reason = text != nullptr && *text != '\0' ? text : rd_kafka_err2str(err);
    const auto wanted = std::find_if(grow.begin(), grow.end(), [&](const auto& g) { return g.first == name; });
    const int total = wanted == grow.end() ? -1 : wanted->second;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      cppfly::detail::log().info("kafka: grew topic '{}' to {} partitions ({}.partitions, grow-partitions: true)", name,
                                 total, topic_key(name));
      continue;
    }
    if (is_config_error(err)) {
      const std::string key = topic_key(name) + ".partitions";
      throw config::ConfigError(key + ": Kafka refused to grow topic '" + name + "' to " + std::to_string(total) +
                                    " partitions: " + reason,
                                key);
    }
    throw BrokerError("kafka: cannot grow topic '" + name + "' (" + topic_key(name) + "): " + reason);
  }
}

}  // namespace

void declare_embedded_topics(const config::KafkaProperties& properties, EmbeddedCluster& embedded) {
  for (const auto& [name, topic] : properties.topics) {
    embedded.ensure_topic(name, topic.partitions.value_or(EmbeddedCluster::kTopicPartitions));
    if (!topic.config.empty() || topic.replication_factor || topic.grow_partitions) {
      cppfly::detail::log().warn(
          "kafka: {}: the embedded cluster takes a declared topic's partitions only; its config, "
          "replication-factor and grow-partitions apply on a real cluster",
          topic_key(name));
    }
  }
}

void apply_declared_topics(rd_kafka_t* rk, const config::KafkaProperties& properties) {
  if (properties.topics.empty() || properties.bootstrap_servers == "embedded") return;
  const auto timeout = properties.connect_timeout;
  const auto existing = existing_topics(rk, timeout);
  std::vector<std::string> missing;
  std::vector<std::pair<std::string, int>> grow;
  for (const auto& [name, topic] : properties.topics) {
    const auto found = existing.find(name);
    if (found == existing.end()) {
      missing.push_back(name);
      continue;
    }
    if (!topic.partitions || found->second >= *topic.partitions) continue;
    if (topic.grow_partitions) {
      grow.emplace_back(name, *topic.partitions);
    } else {
      cppfly::detail::log().warn(
          "kafka: topic '{}' has {} partition(s), {}.partitions declares {}: not grown (set grow-partitions: true "
          "to grow it; records of one key then go to another partition than before)",
          name, found->second, topic_key(name), *topic.partitions);
    }
  }
  if (!missing.empty()) {
    // The broker checks every missing topic first: a refused one leaves none of them created.
    create_topics(rk, missing, properties.topics, timeout, true);
    create_topics(rk, missing, properties.topics, timeout, false);
  }
  if (!grow.empty()) grow_topics(rk, grow, timeout);
}

}  // namespace cppfly::kafka::detail
