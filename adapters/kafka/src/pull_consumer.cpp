#include <cppfly/kafka/pull_consumer.hpp>

#include <algorithm>
#include <array>

#include <cppfly/config/config.hpp>
#include <cppfly/detail/log.hpp>
#include <cppfly/messaging/broker_port.hpp>

#include "client_config.hpp"
#include "client_context.hpp"
#include "cluster_probe.hpp"
#include "commit.hpp"
#include "handles.hpp"
#include "record.hpp"

namespace cppfly::kafka {

using messaging::BrokerError;
using Clock = std::chrono::steady_clock;

struct PullConsumer::Impl final : detail::ClientContext {
  Impl(const config::KafkaProperties& properties, std::string group_id, std::vector<std::string> topic_names)
      : ClientContext("pull consumer of group '" + group_id + "'"),
        group(std::move(group_id)),
        topics(std::move(topic_names)),
        timeout(properties.connect_timeout) {}

  std::string group;
  std::vector<std::string> topics;
  std::chrono::milliseconds timeout;
  detail::KafkaHandle rk;

  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions,
                           void* opaque) noexcept {
    auto* self = static_cast<Impl*>(static_cast<detail::ClientContext*>(opaque));
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
      // What poll() returned before the revoke is committed for the next owner.
      const auto cerr = detail::commit_stored_offsets(rk, self->timeout);
      if (cerr != RD_KAFKA_RESP_ERR_NO_ERROR && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        cppfly::detail::log().warn("kafka: {}: commit on revoke failed: {}", self->description(), rd_kafka_err2str(cerr));
      }
      rd_kafka_assign(rk, nullptr);
      return;
    }
    rd_kafka_assign(rk, err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? partitions : nullptr);
  }

  [[nodiscard]] detail::PartitionListHandle one(const std::string& topic, std::int32_t partition,
                                                std::int64_t offset = RD_KAFKA_OFFSET_INVALID) const {
    detail::PartitionListHandle list(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition)->offset = offset;
    return list;
  }

  void check(rd_kafka_resp_err_t err, const std::string& what) const {
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw BrokerError("kafka: " + description() + ": " + what + ": " + rd_kafka_err2str(err));
    }
  }
};

PullConsumer::PullConsumer(const config::KafkaProperties& properties, std::string group,
                           std::vector<std::string> topics)
    : impl_(std::make_unique<Impl>(properties, std::move(group), std::move(topics))) {
  if (properties.bootstrap_servers == "embedded") {
    throw config::ConfigError(
        "pyfly.messaging.kafka.bootstrap-servers: a PullConsumer needs a cluster address; for the embedded cluster "
        "pass the adapter's bootstrap_servers()",
        "pyfly.messaging.kafka.bootstrap-servers");
  }
  if (impl_->topics.empty()) throw BrokerError("a PullConsumer needs at least one topic");
  auto conf = detail::make_client_conf(properties, properties.bootstrap_servers, detail::ClientKind::consumer);
  // Java's KafkaConsumer with enable.auto.commit=false: poll() marks what it returned, commit() commits it.
  detail::set_property(conf.get(), "group.id", impl_->group, "group '" + impl_->group + "'");
  detail::set_property(conf.get(), "enable.auto.commit", "false", "pull consumer");
  detail::set_property(conf.get(), "enable.auto.offset.store", "true", "pull consumer");
  detail::install_context(conf.get(), impl_.get());
  rd_kafka_conf_set_rebalance_cb(conf.get(), &Impl::on_rebalance);
  std::array<char, 512> reason{};
  impl_->rk.reset(rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), reason.data(), reason.size()));
  if (!impl_->rk) {
    throw config::ConfigError(std::string("pyfly.messaging.kafka: librdkafka refused the consumer configuration: ") +
                              reason.data());
  }
  (void)conf.release();  // owned by rk now
  rd_kafka_poll_set_consumer(impl_->rk.get());
  detail::await_cluster(impl_->rk.get(), *impl_, properties.bootstrap_servers, properties.connect_timeout);
  const detail::PartitionListHandle list(rd_kafka_topic_partition_list_new(static_cast<int>(impl_->topics.size())));
  for (const auto& topic : impl_->topics) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), RD_KAFKA_PARTITION_UA);
  }
  impl_->check(rd_kafka_subscribe(impl_->rk.get(), list.get()), "subscribe");
}

PullConsumer::~PullConsumer() { close(); }

std::vector<messaging::Message> PullConsumer::poll(std::chrono::milliseconds timeout, std::size_t max_records) {
  if (!impl_->rk) throw BrokerError("kafka: " + impl_->description() + " is closed");
  std::vector<messaging::Message> records;
  const auto deadline = Clock::now() + timeout;
  while (records.size() < max_records) {
    // Wait for the first record until the deadline; after it, take only what is already here.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    const int wait = records.empty() ? static_cast<int>(std::clamp<std::int64_t>(left, 0, 100)) : 0;
    const detail::MessageHandle record(rd_kafka_consumer_poll(impl_->rk.get(), wait));
    if (!record) {
      if (!records.empty() || Clock::now() >= deadline) break;
      continue;
    }
    if (record->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
    if (record->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (record->err == RD_KAFKA_RESP_ERR__FATAL) {
        throw BrokerError("kafka: " + impl_->description() + ": " + rd_kafka_message_errstr(record.get()));
      }
      cppfly::detail::log().warn("kafka: {}: {}", impl_->description(), rd_kafka_message_errstr(record.get()));
      continue;
    }
    records.push_back(detail::to_message(*record));
  }
  return records;
}

void PullConsumer::commit() {
  if (!impl_->rk) throw BrokerError("kafka: " + impl_->description() + " is closed");
  const auto err = detail::commit_stored_offsets(impl_->rk.get(), impl_->timeout);
  if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;  // nothing new since the last commit
  impl_->check(err, err == RD_KAFKA_RESP_ERR__TIMED_OUT
                        ? "commit: no answer within connect-timeout (" + std::to_string(impl_->timeout.count()) + " ms)"
                        : std::string("commit"));
}

void PullConsumer::commit_async() {
  if (!impl_->rk) throw BrokerError("kafka: " + impl_->description() + " is closed");
  const auto err = rd_kafka_commit(impl_->rk.get(), nullptr, 1);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
    cppfly::detail::log().warn("kafka: {}: commit failed: {}", impl_->description(), rd_kafka_err2str(err));
  }
}

void PullConsumer::commit(const std::string& topic, std::int32_t partition, std::int64_t next_offset) {
  if (!impl_->rk) throw BrokerError("kafka: " + impl_->description() + " is closed");
  const auto list = impl_->one(topic, partition, next_offset);
  const detail::QueueHandle queue(rd_kafka_queue_new(impl_->rk.get()));
  auto err = rd_kafka_commit_queue(impl_->rk.get(), list.get(), queue.get(), nullptr, nullptr);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    const auto deadline = Clock::now() + impl_->timeout;
    while (Clock::now() < deadline) {
      const detail::EventHandle event(rd_kafka_queue_poll(queue.get(), 100));
      if (event && rd_kafka_event_type(event.get()) == RD_KAFKA_EVENT_OFFSET_COMMIT) {
        err = rd_kafka_event_error(event.get());
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          // The request may succeed as a whole and fail for the partition.
          const auto* offsets = rd_kafka_event_topic_partition_list(event.get());
          if (offsets != nullptr && offsets->cnt > 0) err = offsets->elems[0].err;
        }
        break;
      }
    }
  }
  impl_->check(err, "commit " + topic + " [" + std::to_string(partition) + "] at " + std::to_string(next_offset));
}

std::int64_t PullConsumer::committed(const std::string& topic, std::int32_t partition) {
  if (!impl_->rk) throw BrokerError("kafka: " + impl_->description() + " is closed");
  const auto list = impl_->one(topic, partition);
  impl_->check(rd_kafka_committed(impl_->rk.get(), list.get(), static_cast<int>(impl_->timeout.count())),
               "committed offset of " + topic + " [" + std::to_string(partition) + "]");
  const auto offset = list->elems[0].offset;
  return offset < 0 ? -1 : offset;
}

std::pair<std::int64_t, std::int64_t> PullConsumer::watermarks(const std::string& topic, std::int32_t partition) {
  if (!impl_->rk) throw BrokerError("kafka: " + impl_->description() + " is closed");
  std::int64_t low = -1;
  std::int64_t high = -1;
  impl_->check(rd_kafka_query_watermark_offsets(impl_->rk.get(), topic.c_str(), partition, &low, &high,
                                                static_cast<int>(impl_->timeout.count())),
               "watermarks of " + topic + " [" + std::to_string(partition) + "]");
  return {low, high};
}

int PullConsumer::partition_count(const std::string& topic) {
  if (!impl_->rk) throw BrokerError("kafka: " + impl_->description() + " is closed");
  // All topics: a request naming a missing topic could make the broker create it.
  const rd_kafka_metadata_t* raw = nullptr;
  const auto err = rd_kafka_metadata(impl_->rk.get(), 1, nullptr, &raw, static_cast<int>(impl_->timeout.count()));
  const detail::MetadataHandle metadata(raw);
  impl_->check(err, "metadata");
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    const auto& found = metadata->topics[i];
    if (topic == found.topic && found.err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) return found.partition_cnt;
  }
  return -1;
}

void PullConsumer::seek(const std::string& topic, std::int32_t partition, std::int64_t offset) {
  const auto list = impl_->one(topic, partition, offset);
  const detail::ErrorHandle error(
      rd_kafka_seek_partitions(impl_->rk.get(), list.get(), static_cast<int>(impl_->timeout.count())));
  if (error) {
    throw BrokerError("kafka: " + impl_->description() + ": seek " + topic + " [" + std::to_string(partition) +
                      "] to " + std::to_string(offset) + ": " + rd_kafka_error_string(error.get()));
  }
  if (list->elems[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    impl_->check(list->elems[0].err, "seek " + topic + " [" + std::to_string(partition) + "]");
  }
}

void PullConsumer::pause(const std::string& topic, std::int32_t partition) {
  const auto list = impl_->one(topic, partition);
  impl_->check(rd_kafka_pause_partitions(impl_->rk.get(), list.get()), "pause");
}

void PullConsumer::resume(const std::string& topic, std::int32_t partition) {
  const auto list = impl_->one(topic, partition);
  impl_->check(rd_kafka_resume_partitions(impl_->rk.get(), list.get()), "resume");
}

std::vector<std::pair<std::string, std::int32_t>> PullConsumer::assignment() const {
  std::vector<std::pair<std::string, std::int32_t>> out;
  rd_kafka_topic_partition_list_t* list = nullptr;
  if (!impl_->rk || rd_kafka_assignment(impl_->rk.get(), &list) != RD_KAFKA_RESP_ERR_NO_ERROR) return out;
  const detail::PartitionListHandle owned(list);
  for (int i = 0; i < list->cnt; ++i) out.emplace_back(list->elems[i].topic, list->elems[i].partition);
  return out;
}

void PullConsumer::close() noexcept {
  if (!impl_ || !impl_->rk) return;
  try {
    // Leave the group within a bound: rd_kafka_consumer_close() may wait for a session timeout
    // when the coordinator is gone.
    bool closed = false;
    {
      // The queue must be gone before the client is destroyed (it holds a reference to it).
      const detail::QueueHandle queue(rd_kafka_queue_new(impl_->rk.get()));
      const detail::ErrorHandle error(rd_kafka_consumer_close_queue(impl_->rk.get(), queue.get()));
      const auto deadline = Clock::now() + impl_->timeout;
      while (!error && rd_kafka_consumer_closed(impl_->rk.get()) == 0 && Clock::now() < deadline) {
        const detail::EventHandle event(rd_kafka_queue_poll(queue.get(), 100));
        if (event && rd_kafka_event_type(event.get()) == RD_KAFKA_EVENT_REBALANCE) {
          rd_kafka_assign(impl_->rk.get(), nullptr);  // revoked at close: nothing is committed
        }
      }
      closed = !error && rd_kafka_consumer_closed(impl_->rk.get()) != 0;
    }
    if (closed) {
      impl_->rk.reset();
    } else {
      rd_kafka_destroy_flags(impl_->rk.release(), RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
  } catch (...) {  // NOLINT(bugprone-empty-catch): closing never throws
  }
}

}  // namespace cppfly::kafka
