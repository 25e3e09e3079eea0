#include "support.hpp"

#include <algorithm>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

namespace cppfly::kafka::test {
namespace {

constexpr std::string_view kSentinelPrefix = "sentinel:";

using Clock = std::chrono::steady_clock;

/// A throwaway client for metadata and admin requests.
struct Client {
  /// An empty `bootstrap_servers`: a client that talks to no broker (a mock cluster's owner).
  explicit Client(const std::string& bootstrap_servers) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char reason[512];
    if (!bootstrap_servers.empty() &&
        rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap_servers.c_str(), reason, sizeof reason) !=
            RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(reason);
    }
    rd_kafka_conf_set(conf, "log_level", "3", reason, sizeof reason);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, reason, sizeof reason);
    if (rk == nullptr) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(reason);
    }
  }
  ~Client() { rd_kafka_destroy(rk); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  rd_kafka_t* rk{nullptr};
};

/// Partitions of `topic` that have a leader, as `client` sees them (-1: unknown topic).
int ready_partitions(rd_kafka_t* rk, const std::string& topic) {
  rd_kafka_topic_t* handle = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* metadata = nullptr;
  const auto err = rd_kafka_metadata(rk, 0, handle, &metadata, 5000);
  int count = -1;
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < metadata->topic_cnt; ++i) {
      const auto& t = metadata->topics[i];
      if (topic != t.topic || t.err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
      count = 0;
      for (int p = 0; p < t.partition_cnt; ++p) {
        if (t.partitions[p].leader >= 0 && t.partitions[p].err == RD_KAFKA_RESP_ERR_NO_ERROR) ++count;
      }
      if (count != t.partition_cnt) count = 0;
    }
    rd_kafka_metadata_destroy(metadata);
  }
  rd_kafka_topic_destroy(handle);
  return count;
}

void wait_for_topic(rd_kafka_t* rk, const std::string& topic, int partitions) {
  const auto deadline = Clock::now() + kWait;
  while (Clock::now() < deadline) {
    if (ready_partitions(rk, topic) == partitions) return;
    std::this_thread::sleep_for(100ms);  // polling a cluster's state, bounded by the deadline
  }
  throw std::runtime_error("topic " + topic + " did not get " + std::to_string(partitions) +
                           " partitions with leaders within 30 s");
}

}  // namespace

std::string unique_name(const std::string& what) {
  static std::mt19937_64 engine{std::random_device{}()};
  static std::mutex mutex;
  const std::lock_guard lock(mutex);
  std::ostringstream name;
  name << "cppfly-test-" << what << "-" << std::hex << engine();
  return name.str();
}

Inbox::Inbox() : state_(std::make_shared<State>()) {}

messaging::MessageHandler Inbox::handler(std::function<void(const Message&)> fault) const {
  return [state = state_, fault = std::move(fault)](const Message& message) {
    {
      const std::lock_guard lock(state->mutex);
      state->messages.push_back(message);
    }
    state->changed.notify_all();
    if (fault) fault(message);
  };
}

bool Inbox::wait_until(const std::function<bool(const std::vector<Message>&)>& done,
                       std::chrono::milliseconds timeout) const {
  std::unique_lock lock(state_->mutex);
  return state_->changed.wait_for(lock, timeout, [&] { return done(state_->messages); });
}

bool Inbox::wait_for_count(std::size_t count, std::chrono::milliseconds timeout) const {
  return wait_until([count](const std::vector<Message>& messages) { return messages.size() >= count; }, timeout);
}

bool Inbox::wait_for_values(const std::set<std::string>& values, std::chrono::milliseconds timeout) const {
  return wait_until(
      [&values](const std::vector<Message>& messages) {
        std::set<std::string> seen;
        for (const auto& message : messages) {
          if (values.contains(message.value)) seen.insert(message.value);
        }
        return seen.size() == values.size();
      },
      timeout);
}

std::vector<Message> Inbox::messages() const {
  const std::lock_guard lock(state_->mutex);
  return state_->messages;
}

std::vector<std::string> Inbox::values() const {
  std::vector<std::string> out;
  for (const auto& message : messages()) out.push_back(message.value);
  return out;
}

std::size_t Inbox::size() const {
  const std::lock_guard lock(state_->mutex);
  return state_->messages.size();
}

std::set<std::string> sentinel_values(const std::string& tag, int partitions) {
  std::set<std::string> values;
  for (int p = 0; p < partitions; ++p) values.insert(std::string(kSentinelPrefix) + tag + ":" + std::to_string(p));
  return values;
}

std::set<std::string> publish_sentinels(KafkaAdapter& adapter, const std::string& topic, const std::string& tag,
                                        int partitions) {
  for (int p = 0; p < partitions; ++p) {
    adapter.publish(topic, std::string(kSentinelPrefix) + tag + ":" + std::to_string(p),
                    messaging::PublishOptions{.partition = p});
  }
  return sentinel_values(tag, partitions);
}

bool is_sentinel(const std::string& value) { return value.starts_with(kSentinelPrefix); }

std::vector<std::string> payloads(const Inbox& inbox) {
  std::vector<std::string> out;
  for (auto& value : inbox.values()) {
    if (!is_sentinel(value)) out.push_back(std::move(value));
  }
  return out;
}

config::KafkaProperties test_properties(const std::string& bootstrap_servers) {
  config::KafkaProperties properties;
  properties.bootstrap_servers = bootstrap_servers;
  properties.client_id = "cppfly-kafka-tests";
  properties.connect_timeout = 10s;
  properties.publish_timeout = 10s;
  properties.commit_interval = 200ms;
  properties.reconnect_backoff_max = 500ms;
  return properties;
}

int partition_count(const std::string& bootstrap_servers, const std::string& topic) {
  const Client client(bootstrap_servers);
  return ready_partitions(client.rk, topic);
}

struct MockCluster::Impl {
  std::unique_ptr<Client> owner;
  rd_kafka_mock_cluster_t* cluster{nullptr};
};

MockCluster::MockCluster(int brokers) : impl_(std::make_unique<Impl>()) {
  impl_->owner = std::make_unique<Client>("");  // hosts the cluster, talks to no broker
  impl_->cluster = rd_kafka_mock_cluster_new(impl_->owner->rk, brokers);
  if (impl_->cluster == nullptr) throw std::runtime_error("cannot create a librdkafka mock cluster");
}

MockCluster::~MockCluster() {
  rd_kafka_mock_cluster_destroy(impl_->cluster);
  impl_->owner.reset();
}

std::string MockCluster::bootstrap_servers() const { return rd_kafka_mock_cluster_bootstraps(impl_->cluster); }

void MockCluster::create_topic(const std::string& topic, int partitions) {
  const auto err = rd_kafka_mock_topic_create(impl_->cluster, topic.c_str(), partitions, 1);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error("mock cluster: cannot create " + topic + ": " + rd_kafka_err2str(err));
  }
}

config::KafkaProperties MockCluster::properties() const {
  auto properties = test_properties(bootstrap_servers());
  properties.consumer_properties["session.timeout.ms"] = "6000";
  properties.consumer_properties["heartbeat.interval.ms"] = "1500";
  return properties;
}

void MockCluster::all_brokers_down() { rd_kafka_mock_broker_set_down(impl_->cluster, -1); }

void MockCluster::fail_produce_requests(int error, int count) {
  const std::vector<rd_kafka_resp_err_t> errors(static_cast<std::size_t>(count), static_cast<rd_kafka_resp_err_t>(error));
  constexpr std::int16_t kProduceApiKey = 0;  // Kafka protocol: Produce
  rd_kafka_mock_push_request_errors_array(impl_->cluster, kProduceApiKey, errors.size(), errors.data());
}

void RealCluster::create_topic(const std::string& topic, int partitions) {
  const Client client(servers_);
  char reason[512];
  rd_kafka_NewTopic_t* new_topic = rd_kafka_NewTopic_new(topic.c_str(), partitions, 1, reason, sizeof reason);
  if (new_topic == nullptr) throw std::runtime_error(reason);
  rd_kafka_queue_t* queue = rd_kafka_queue_new(client.rk);
  rd_kafka_CreateTopics(client.rk, &new_topic, 1, nullptr, queue);
  rd_kafka_NewTopic_destroy(new_topic);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 30000);
  std::string failure;
  if (event == nullptr) {
    failure = "no CreateTopics result within 30 s";
  } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    failure = rd_kafka_event_error_string(event);
  } else {
    const auto* result = rd_kafka_event_CreateTopics_result(event);
    std::size_t count = 0;
    const auto** topics = rd_kafka_CreateTopics_result_topics(result, &count);
    for (std::size_t i = 0; i < count; ++i) {
      if (rd_kafka_topic_result_error(topics[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* message = rd_kafka_topic_result_error_string(topics[i]);
        failure = message != nullptr ? message : rd_kafka_err2str(rd_kafka_topic_result_error(topics[i]));
      }
    }
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_queue_destroy(queue);
  if (!failure.empty()) throw std::runtime_error("cannot create topic " + topic + ": " + failure);
  wait_for_topic(client.rk, topic, partitions);
}

}  // namespace cppfly::kafka::test
