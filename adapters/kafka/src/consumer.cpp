#include "consumer.hpp"

#include <algorithm>
#include <array>
#include <random>
#include <sstream>
#include <string_view>
#include <thread>
#include <vector>

#include <cppfly/config/config.hpp>
#include <cppfly/detail/log.hpp>

#include "client_config.hpp"
#include "commit.hpp"
#include "record.hpp"

namespace cppfly::kafka::detail {
namespace {

using Clock = std::chrono::steady_clock;

/// How long a record that could not be settled waits before it is delivered again.
constexpr std::chrono::milliseconds kRedeliveryBackoff{1000};
using namespace std::chrono_literals;

std::string describe(const Subscription& subscription) {
  if (subscription.group) return "consumer of '" + subscription.topic + "' (group '" + *subscription.group + "')";
  return "broadcast consumer of '" + subscription.topic + "'";
}

std::string broadcast_group_id() {
  std::random_device device;
  std::mt19937_64 engine((static_cast<std::uint64_t>(device()) << 32U) ^ device());
  std::ostringstream id;
  id << "cppfly-broadcast-" << std::hex << engine();
  return id.str();
}

std::chrono::milliseconds left_of(Clock::time_point deadline) {
  return std::max(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()),
                  std::chrono::milliseconds{0});
}

int millis_left(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::max<std::int64_t>(left, 0));
}

std::string partitions_text(const rd_kafka_topic_partition_list_t* partitions) {
  std::string text;
  for (int i = 0; partitions != nullptr && i < partitions->cnt; ++i) {
    if (!text.empty()) text += ", ";
    text += std::to_string(partitions->elems[i].partition);
  }
  return "[" + text + "]";
}

}  // namespace

Consumer::Consumer(std::shared_ptr<const Subscription> subscription, ConfHandle conf,
                   std::chrono::milliseconds cluster_timeout)
    : ClientContext(describe(*subscription)),
      subscription_(std::move(subscription)),
      cluster_timeout_(cluster_timeout),
      conf_(std::move(conf)) {
  if (subscription_->group) {
    group_id_ = *subscription_->group;
    set_property(conf_.get(), "group.id", group_id_, "group '" + group_id_ + "' of topic '" + subscription_->topic + "'");
  } else {
    group_id_ = broadcast_group_id();
    make_broadcast(conf_.get(), group_id_);
  }
  install_context(conf_.get(), this);
  rd_kafka_conf_set_rebalance_cb(conf_.get(), &Consumer::on_rebalance);
}

Consumer::~Consumer() {
  request_stop();
  join();
}

void Consumer::start() {
  const std::lock_guard lock(lifecycle_);
  if (started_ || stop_requested_.load()) return;
  std::array<char, 512> reason{};
  rk_.reset(rd_kafka_new(RD_KAFKA_CONSUMER, conf_.get(), reason.data(), reason.size()));
  if (!rk_) {
    throw config::ConfigError(std::string("pyfly.messaging.kafka: librdkafka refused the consumer configuration: ") +
                              masked(reason.data()));
  }
  (void)conf_.release();  // owned by rk_ now
  rd_kafka_poll_set_consumer(rk_.get());

  if (broadcast()) record_start_offsets();

  const PartitionListHandle topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), subscription_->topic.c_str(), RD_KAFKA_PARTITION_UA);
  if (const auto err = rd_kafka_subscribe(rk_.get(), topics.get()); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw messaging::BrokerError("cannot subscribe to '" + subscription_->topic + "': " + rd_kafka_err2str(err));
  }
  // The thread holds the consumer: stop() called from this subscription's own handler
  // cannot join its own thread, so it detaches and the thread finishes on its own.
  poller_ = std::thread([self = shared_from_this()] { self->run(); });
  poller_id_ = poller_.get_id();
  started_ = true;
  cppfly::detail::log().info("kafka: {} started (group id {})", description(), group_id_);
}

void Consumer::request_stop() noexcept { stop_requested_.store(true); }

bool Consumer::join() noexcept {
  const std::lock_guard lock(lifecycle_);
  if (!poller_.joinable()) return true;
  if (poller_.get_id() == std::this_thread::get_id()) {
    // stop() from this subscription's handler: the loop ends when the handler returns.
    poller_.detach();
    return false;
  }
  poller_.join();
  return true;
}

void Consumer::await_finished() noexcept {
  std::shared_future<void> finished;
  {
    const std::lock_guard lock(lifecycle_);
    if (!started_ || poller_id_ == std::this_thread::get_id()) return;
    finished = finished_future_;
  }
  finished.wait();
}

void Consumer::record_start_offsets() {
  const auto deadline = Clock::now() + cluster_timeout_;
  const auto& topic = subscription_->topic;
  auto fall_back = [&](const std::string& why) {
    cppfly::detail::log().warn(
        "kafka: {}: cannot read where '{}' ends within {} ms ({}); it starts at the latest offsets found when its "
        "partitions are assigned, so records published in between are not seen",
        description(), topic, cluster_timeout_.count(), why);
    start_mode_ = StartMode::latest;
    start_offsets_.clear();
  };
  // A topic created a moment ago answers "leader not available" / "not leader" for a
  // while: retry (briefly apart) until the deadline.
  auto pause = [&] { std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(100ms, left_of(deadline))); };

  const TopicHandle handle(rd_kafka_topic_new(rk_.get(), topic.c_str(), nullptr));
  std::vector<std::int32_t> partitions;
  for (;;) {
    const rd_kafka_metadata_t* raw = nullptr;
    const auto err = rd_kafka_metadata(rk_.get(), 0, handle.get(), &raw, std::max(millis_left(deadline), 1));
    const MetadataHandle metadata(raw);
    std::string problem;
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR || !metadata) {
      problem = rd_kafka_err2str(err);
    } else {
      const rd_kafka_metadata_topic* found = nullptr;
      for (int i = 0; i < metadata->topic_cnt; ++i) {
        if (topic == metadata->topics[i].topic) found = &metadata->topics[i];
      }
      if (found == nullptr || found->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
          (found->err == RD_KAFKA_RESP_ERR_NO_ERROR && found->partition_cnt == 0)) {
        // The topic does not exist yet: everything it will ever hold comes after this point.
        start_mode_ = StartMode::from_beginning;
        return;
      }
      if (found->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        problem = rd_kafka_err2str(found->err);
      } else {
        for (int i = 0; i < found->partition_cnt; ++i) partitions.push_back(found->partitions[i].id);
        break;
      }
    }
    if (Clock::now() >= deadline) return fall_back(problem);
    pause();
  }

  for (const auto partition : partitions) {
    for (;;) {
      std::int64_t low = 0;
      std::int64_t high = 0;
      const auto err = rd_kafka_query_watermark_offsets(rk_.get(), topic.c_str(), partition, &low, &high,
                                                        std::clamp(millis_left(deadline), 1, 1000));
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        start_offsets_[partition] = high;
        break;
      }
      if (Clock::now() >= deadline) {
        return fall_back("partition " + std::to_string(partition) + ": " + rd_kafka_err2str(err));
      }
      pause();
    }
  }
  start_mode_ = StartMode::recorded;
}

std::int64_t Consumer::broadcast_position(std::int32_t partition) const {
  if (auto it = next_offsets_.find(partition); it != next_offsets_.end()) return it->second;
  switch (start_mode_) {
    case StartMode::recorded: {
      const auto it = start_offsets_.find(partition);
      // A partition added after start(): all of it is new.
      return it != start_offsets_.end() ? it->second : RD_KAFKA_OFFSET_BEGINNING;
    }
    case StartMode::from_beginning:
      return RD_KAFKA_OFFSET_BEGINNING;
    case StartMode::latest:
      break;
  }
  return RD_KAFKA_OFFSET_INVALID;  // no committed offset: auto.offset.reset=latest
}

void Consumer::on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions,
                            void* opaque) noexcept {
  auto* self = static_cast<Consumer*>(static_cast<ClientContext*>(opaque));
  try {
    self->rebalance(rk, err, partitions);
    return;
  } catch (const std::exception& e) {
    cppfly::detail::log().error("kafka: {}: rebalance handling failed: {}", self->description(), e.what());
  } catch (...) {
    cppfly::detail::log().error("kafka: {}: rebalance handling failed", self->description());
  }
  // Nothing may escape into librdkafka; still give it the (un)assignment it waits for.
  // (Eager protocol; an exception here is a bug or out of memory.)
  rd_kafka_assign(rk, err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? partitions : nullptr);
}

void Consumer::rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions) {
  auto& log = cppfly::detail::log();
  // Eager by default (partition.assignment.strategy=range,roundrobin); a user who
  // configures cooperative-sticky gets incremental (un)assignment.
  const char* protocol = rd_kafka_rebalance_protocol(rk);
  const bool cooperative = protocol != nullptr && std::string_view(protocol) == "COOPERATIVE";
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    if (broadcast()) {
      for (int i = 0; i < partitions->cnt; ++i) {
        partitions->elems[i].offset = broadcast_position(partitions->elems[i].partition);
      }
    }
    log.info("kafka: {}: assigned partitions {}", description(), partitions_text(partitions));
    if (cooperative) {
      const ErrorHandle error(rd_kafka_incremental_assign(rk, partitions));
      if (error) log.error("kafka: {}: assign failed: {}", description(), rd_kafka_error_string(error.get()));
    } else if (const auto aerr = rd_kafka_assign(rk, partitions); aerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
      log.error("kafka: {}: assign failed: {}", description(), rd_kafka_err2str(aerr));
    }
  } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    log.info("kafka: {}: partitions {} revoked", description(), partitions_text(partitions));
    // What the handlers finished so far must not be redelivered to the next owner.
    commit_stored("partitions revoked");
    if (cooperative) {
      const ErrorHandle error(rd_kafka_incremental_unassign(rk, partitions));
      if (error) log.error("kafka: {}: unassign failed: {}", description(), rd_kafka_error_string(error.get()));
    } else {
      rd_kafka_assign(rk, nullptr);
    }
  } else {
    log.warn("kafka: {}: rebalance error: {}", description(), rd_kafka_err2str(err));
    if (cooperative) {
      const ErrorHandle error(rd_kafka_incremental_unassign(rk, partitions));
    } else {
      rd_kafka_assign(rk, nullptr);
    }
  }
}

bool Consumer::commit_stored(const char* why) {
  if (broadcast()) return true;  // broadcast subscriptions never commit
  if (coordinator_lost_) return false;
  auto& log = cppfly::detail::log();
  const auto err = commit_stored_offsets(rk_.get(), cluster_timeout_);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    log.debug("kafka: {}: committed offsets ({})", description(), why);
  } else if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) {
    // nothing new since the last commit
  } else if (err == RD_KAFKA_RESP_ERR__TIMED_OUT) {
    coordinator_lost_ = stop_requested_.load();
    log.warn("kafka: {}: committing offsets ({}) took longer than {} ms; records handled since the last commit "
             "may be delivered again",
             description(), why, cluster_timeout_.count());
  } else {
    log.warn("kafka: {}: committing offsets ({}) failed: {}; records handled since the last commit may be "
             "delivered again",
             description(), why, rd_kafka_err2str(err));
  }
  return err != RD_KAFKA_RESP_ERR__TIMED_OUT;
}

void Consumer::run() noexcept {
  while (!stop_requested_.load()) {
    try {
      const MessageHandle record(rd_kafka_consumer_poll(rk_.get(), 100));
      if (!record) continue;
      if (record->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        report(*record);
      } else {
        dispatch(*record);
      }
    } catch (const std::exception& e) {
      cppfly::detail::log().error("kafka: {}: {}", description(), e.what());
    } catch (...) {
      cppfly::detail::log().error("kafka: {}: unknown error in the poll loop", description());
    }
  }
  close_client();
  finished_.set_value();
}

void Consumer::dispatch(const rd_kafka_message_t& record) {
  // One Message per consumer, refilled for each record: its strings keep their capacity,
  // so a record costs no allocation for its topic and (usual sizes of) value.
  messaging::Message& message = message_;
  if (record.rkt != message_topic_) {  // a consumer reads one topic: set its name once
    message.topic.assign(rd_kafka_topic_name(record.rkt));
    message_topic_ = record.rkt;
  }
  if (record.payload != nullptr) {
    message.value.assign(static_cast<const char*>(record.payload), record.len);
  } else {
    message.value.clear();
  }
  if (record.key != nullptr) {
    const std::string_view key(static_cast<const char*>(record.key), record.key_len);
    if (message.key) {
      message.key->assign(key);
    } else {
      message.key.emplace(key);
    }
  } else {
    message.key.reset();
  }
  // Headers are read only if something looks at them: librdkafka allocates to parse a
  // record's header block even when it holds none.
  messaging::DeferredHeaders::defer(message.headers, &record, &read_headers);
  struct Forget {
    messaging::Headers& headers;
    ~Forget() { messaging::DeferredHeaders::forget(headers); }
  } forget{message.headers};
  message.partition = record.partition;
  message.offset = record.offset;
  rd_kafka_timestamp_type_t timestamp_type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
  const auto timestamp = rd_kafka_message_timestamp(&record, &timestamp_type);
  message.timestamp_ms = timestamp_type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : timestamp;

  try {
    subscription_->handler(message);
  } catch (const messaging::RedeliveryRequired& e) {
    // Neither handled nor dead-lettered: not acknowledged; read again from this record.
    cppfly::detail::log().error("kafka: handler for '{}' [partition {}, offset {}] could not settle the record: {}; "
                                "it is delivered again",
                                message.topic, message.partition, message.offset, e.what());
    rewind(record);
    return;
  } catch (const std::exception& e) {
    // The framework's retry/dead-letter wrapper runs inside the handler: an exception that
    // reaches this point means its retries are exhausted and there is no dead-letter topic.
    cppfly::detail::log().error("kafka: handler for '{}' [partition {}, offset {}] failed: {}; skipping the record",
                                message.topic, message.partition, message.offset, e.what());
  } catch (...) {
    cppfly::detail::log().error(
        "kafka: handler for '{}' [partition {}, offset {}] failed (non-standard exception); skipping the record",
        message.topic, message.partition, message.offset);
  }

  // Handled (or given up on): the next record of this partition is where to resume.
  if (broadcast()) {
    next_offsets_[record.partition] = record.offset + 1;
    return;
  }
  // rd_kafka_offset_store() stores record.offset + 1 through the record's own topic handle: the same
  // (non-forced) store as rd_kafka_offsets_store() of a one-entry list, without allocating that list
  // and looking the topic up by name for every record.
  if (const auto err = rd_kafka_offset_store(record.rkt, record.partition, record.offset);
      err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    // Typically: the partition was revoked meanwhile; its next owner resumes from the
    // last commit, so this record may be delivered again (at-least-once).
    cppfly::detail::log().debug("kafka: {}: cannot store offset {} of partition {}: {}", description(),
                                record.offset + 1, record.partition, rd_kafka_err2str(err));
  }
}

void Consumer::rewind(const rd_kafka_message_t& record) {
  const PartitionListHandle position(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(position.get(), rd_kafka_topic_name(record.rkt), record.partition)->offset =
      record.offset;
  const ErrorHandle error(rd_kafka_seek_partitions(rk_.get(), position.get(), static_cast<int>(cluster_timeout_.count())));
  if (error) {
    cppfly::detail::log().error("kafka: {}: cannot rewind partition {} to offset {}: {}", description(),
                                record.partition, record.offset, rd_kafka_error_string(error.get()));
  }
  // Back off before the record comes again, so a broker outage is not a busy loop; stop() cuts it short.
  const auto until = Clock::now() + kRedeliveryBackoff;
  while (!stop_requested_.load() && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

void Consumer::report(const rd_kafka_message_t& record) {
  auto& log = cppfly::detail::log();
  switch (record.err) {
    case RD_KAFKA_RESP_ERR__PARTITION_EOF:
      return;
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      log.warn("kafka: {}: topic '{}' is not available (yet): {}", description(), subscription_->topic,
               rd_kafka_message_errstr(&record));
      return;
    case RD_KAFKA_RESP_ERR__FATAL:
      log.error("kafka: {}: fatal: {}", description(), rd_kafka_message_errstr(&record));
      return;
    default:
      log.warn("kafka: {}: {}", description(), rd_kafka_message_errstr(&record));
  }
}

void Consumer::close_client() noexcept {
  try {
    auto& log = cppfly::detail::log();
    const bool reachable = commit_stored("stop");
    // Leave the group within a bound: rd_kafka_consumer_close() may block for up to
    // session.timeout.ms when the coordinator is gone.
    bool closed = false;
    if (reachable) {
      // The queue must be gone before the client is destroyed.
      const QueueHandle queue(rd_kafka_queue_new(rk_.get()));
      const ErrorHandle error(rd_kafka_consumer_close_queue(rk_.get(), queue.get()));
      const auto deadline = Clock::now() + cluster_timeout_;
      if (error) {
        log.warn("kafka: {}: close failed: {}", description(), rd_kafka_error_string(error.get()));
      } else {
        // Served as events, not callbacks: the queue also receives records that were fetched but
        // never handed out, which librdkafka cannot serve by callback (it aborts). Those are dropped:
        // their offsets were never stored, so the group's next owner reads them.
        while (rd_kafka_consumer_closed(rk_.get()) == 0 && Clock::now() < deadline) {
          const EventHandle event(rd_kafka_queue_poll(queue.get(), std::min(millis_left(deadline), 100)));
          if (event && rd_kafka_event_type(event.get()) == RD_KAFKA_EVENT_REBALANCE) {
            rebalance(rk_.get(), rd_kafka_event_error(event.get()), rd_kafka_event_topic_partition_list(event.get()));
          }
        }
        closed = rd_kafka_consumer_closed(rk_.get()) != 0;
      }
    }
    if (closed) {
      rk_.reset();
    } else {
      // librdkafka still waits for the commits it has queued to time out (at most
      // session.timeout.ms after they were made) before the client is gone.
      log.warn("kafka: {}: the group coordinator does not answer; closing without leaving the group "
               "(librdkafka may take up to session.timeout.ms to give up its pending commits)",
               description());
      rd_kafka_destroy_flags(rk_.release(), RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
    log.info("kafka: {} stopped", description());
  } catch (...) {  // NOLINT(bugprone-empty-catch): the thread ends either way
  }
}

}  // namespace cppfly::kafka::detail
