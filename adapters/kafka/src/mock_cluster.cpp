#include "mock_cluster.hpp"

#include <algorithm>
#include <array>

#include <librdkafka/rdkafka_mock.h>

#include <cppfly/detail/log.hpp>
#include <cppfly/messaging/broker_port.hpp>

#include "client_context.hpp"

namespace cppfly::kafka::detail {

void MockClusterDeleter::operator()(rd_kafka_mock_cluster_t* cluster) const noexcept {
  rd_kafka_mock_cluster_destroy(cluster);
}

EmbeddedCluster::EmbeddedCluster(int brokers) : brokers_(std::max(brokers, 1)) {
  ConfHandle conf(rd_kafka_conf_new());
  install_log_callback(conf.get());
  std::array<char, 512> reason{};
  // This handle only hosts the cluster; it talks to no broker. Its "no bootstrap.servers"
  // notice is noise, so it logs warnings and worse only.
  rd_kafka_conf_set(conf.get(), "log_level", "4", reason.data(), reason.size());
  rd_kafka_conf_set(conf.get(), "client.id", "cppfly-embedded-kafka", reason.data(), reason.size());
  owner_.reset(rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), reason.data(), reason.size()));
  if (!owner_) {
    throw messaging::BrokerError(std::string("embedded Kafka: cannot create its librdkafka handle: ") + reason.data());
  }
  conf.release();  // owned by the rd_kafka_t now

  cluster_.reset(rd_kafka_mock_cluster_new(owner_.get(), brokers_));
  if (!cluster_) {
    throw messaging::BrokerError("embedded Kafka: librdkafka could not start a mock cluster");
  }
  bootstraps_ = rd_kafka_mock_cluster_bootstraps(cluster_.get());
  cppfly::detail::log().warn(
      "EMBEDDED KAFKA at {} ({} broker(s)): an in-process librdkafka mock cluster for development and "
      "tests ONLY. Nothing is persisted, there is no TLS/SASL, and it stops with this process. "
      "Set pyfly.messaging.kafka.bootstrap-servers to a real cluster for anything else.",
      bootstraps_, brokers_);
}

void EmbeddedCluster::ensure_topic(std::string_view topic, int partitions) {
  const std::lock_guard lock(mutex_);
  if (topics_.contains(topic)) return;
  const std::string name(topic);
  const auto replication = std::min(brokers_, 3);
  const auto err = rd_kafka_mock_topic_create(cluster_.get(), name.c_str(), partitions, replication);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
    throw messaging::BrokerError("embedded Kafka: cannot create topic '" + name + "': " + rd_kafka_err2str(err));
  }
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    cppfly::detail::log().debug("embedded Kafka: created topic '{}' ({} partitions)", name, partitions);
  }
  topics_.insert(name);
}

}  // namespace cppfly::kafka::detail
