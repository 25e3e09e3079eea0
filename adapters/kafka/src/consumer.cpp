#include "consumer.hpp"

#include <cppfly/messaging/observer.hpp>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <new>
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

/// Positions are stored at most this often while records flow (and whenever the fetch loop idles).
constexpr std::chrono::milliseconds kStoreInterval{10};
/// Records handed to the container at once, at most.
constexpr std::size_t kFetchBatch = 512;
/// Fast path: the lead runs records for at most this long before it polls again ...
constexpr std::chrono::milliseconds kInlineBudget{50};
/// ... and a lead that runs records this long is taken over by the other thread (which looks this often).
constexpr std::chrono::milliseconds kTakeOver{200};
constexpr std::chrono::milliseconds kTakeOverCheck{50};
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
                   std::chrono::milliseconds cluster_timeout, messaging::MessageBrokerPort& dead_letters,
                   std::function<std::unique_ptr<Producer>()> make_transactional)
    : ClientContext(describe(*subscription)),
      subscription_(std::move(subscription)),
      cluster_timeout_(cluster_timeout),
      conf_(std::move(conf)),
      dead_letters_(dead_letters),
      make_transactional_(std::move(make_transactional)) {
  if (subscription_->group) {
    group_id_ = *subscription_->group;
    set_property(conf_.get(), "group.id", group_id_, "group '" + group_id_ + "' of topic '" + subscription_->topic + "'");
  } else {
    group_id_ = broadcast_group_id();
    make_broadcast(conf_.get(), group_id_);
  }
  // The fetch loop commits at pyfly.messaging.kafka.commit-interval (carried in the configuration).
  if (const std::string interval = get_property(conf_.get(), "auto.commit.interval.ms"); !interval.empty()) {
    commit_interval_ = std::chrono::milliseconds(std::stoll(interval));
  }
  install_context(conf_.get(), this);
  rd_kafka_conf_set_rebalance_cb(conf_.get(), &Consumer::on_rebalance);
}

void Consumer::tell_committed(const rd_kafka_topic_partition_list_t* offsets, rd_kafka_resp_err_t err) const {
  auto* observer = subscription_->container.observer.get();
  if (observer == nullptr || err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
  for (int i = 0; offsets != nullptr && i < offsets->cnt; ++i) {
    const auto& p = offsets->elems[i];
    observer->on_commit({.group = group_id_,
                         .topic = p.topic,
                         .partition = p.partition,
                         .offset = p.offset,
                         .ok = err == RD_KAFKA_RESP_ERR_NO_ERROR && p.err == RD_KAFKA_RESP_ERR_NO_ERROR});
  }
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
  consumer_queue_.reset(rd_kafka_queue_get_consumer(rk_.get()));
  commit_queue_.reset(rd_kafka_queue_new(rk_.get()));
  messaging::ContainerRuntime runtime{.inline_execution = false,
                                      .block_when_full = false,
                                      .assign_on_offer = false,
                                      .wake = [queue = consumer_queue_.get()] { rd_kafka_queue_yield(queue); },
                                      .around_handler = {},
                                      // Group subscriptions commit each checkpoint (below) and report it.
                                      .gate_retries = !broadcast(),
                                      // Records run on the fetch thread (when the subscription fits).
                                      .caller_runs = !subscription_->container.transactional};
  if (subscription_->container.transactional) {
    transactional_ = make_transactional_();
    // Weak: a handler that outlived the stop may still finish after the consumer is gone.
    runtime.around_handler = [weak = weak_from_this()](const messaging::Message& message,
                                                       const std::function<void()>& handle) {
      const auto self = weak.lock();
      if (!self) throw messaging::BrokerError("the consumer is gone: no new transaction");
      self->in_transaction(message, handle);
    };
  }
  container_ = std::make_unique<messaging::ListenerContainer>(*subscription_, dead_letters_, std::move(runtime));

  if (broadcast()) record_start_offsets();

  const PartitionListHandle topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), subscription_->topic.c_str(), RD_KAFKA_PARTITION_UA);
  if (const auto err = rd_kafka_subscribe(rk_.get(), topics.get()); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw messaging::BrokerError("cannot subscribe to '" + subscription_->topic + "': " + rd_kafka_err2str(err));
  }
  container_->start();
  // The threads hold the consumer.
  batch_.reserve(kFetchBatch);
  for (auto& held : held_) held.reserve(kFetchBatch);
  stored_at_ = Clock::now();
  checkpoint_at_ = stored_at_;
  poller_ = std::thread([self = shared_from_this()] { self->run(0); });
  poller_id_ = poller_.get_id();
  if (container_->runs_on_caller()) {
    standby_ = std::thread([self = shared_from_this()] { self->run(1); });
    standby_id_ = standby_.get_id();
  }
  started_ = true;
  cppfly::detail::log().info("kafka: {} started (group id {})", description(), group_id_);
}

void Consumer::request_stop() noexcept {
  stop_requested_.store(true);
  // Records queued in the container start no more; the fetch thread stops it when it sees the request.
  {
    const std::lock_guard lock(lifecycle_);
    if (container_) container_->halt();
  }
  { const std::lock_guard lead(lead_mutex_); }  // a stand-in waiting for the lead sees the request
  lead_cv_.notify_all();
}

bool Consumer::join() noexcept {
  const std::lock_guard lock(lifecycle_);
  if (!poller_.joinable() && !standby_.joinable()) return true;
  const auto here = std::this_thread::get_id();
  if (poller_id_ == here || standby_id_ == here || (container_ && container_->runs_on_this_thread())) {
    // stop() from this subscription's handler: the fetch thread's stop waits for that handler, which
    // returns after this call; the thread finishes on its own (await_finished() waits for it).
    if (poller_.joinable()) poller_.detach();
    if (standby_.joinable()) standby_.detach();
    return false;
  }
  if (!standby_.joinable()) {
    poller_.join();
    return true;
  }
  // Fast path: one thread finishes (within the shutdown timeout); no record starts after that. The
  // other one leaves at once, unless it runs a handler that outlived the timeout: that one is left to
  // end on its own (it holds the consumer), as the container leaves an overdue worker.
  finished_future_.wait();
  std::array<bool, 2> overdue{};
  {
    const std::lock_guard lead(lead_mutex_);
    const bool running = container_->running() > 0;
    for (std::size_t i = 0; i < overdue.size(); ++i) overdue[i] = running && in_records_[i];
  }
  std::array<std::thread*, 2> threads{&poller_, &standby_};
  for (std::size_t i = 0; i < threads.size(); ++i) {
    if (!threads[i]->joinable()) continue;
    if (overdue[i]) {
      threads[i]->detach();
    } else {
      threads[i]->join();
    }
  }
  return true;
}

void Consumer::await_finished() noexcept {
  std::shared_future<void> finished;
  {
    const std::lock_guard lock(lifecycle_);
    if (!started_ || poller_id_ == std::this_thread::get_id() || standby_id_ == std::this_thread::get_id()) return;
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
    if (broadcast()) {
      container_->assign(partitions_of(partitions));
    } else {
      container_->assign_committed(read_committed(partitions));
    }
    // The container starts them unpaused; librdkafka may still hold a pause from before a revoke.
    rd_kafka_resume_partitions(rk, partitions);
    if (cooperative) {
      const ErrorHandle error(rd_kafka_incremental_assign(rk, partitions));
      if (error) log.error("kafka: {}: assign failed: {}", description(), rd_kafka_error_string(error.get()));
    } else if (const auto aerr = rd_kafka_assign(rk, partitions); aerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
      log.error("kafka: {}: assign failed: {}", description(), rd_kafka_err2str(aerr));
    }
  } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    log.info("kafka: {}: partitions {} revoked", description(), partitions_text(partitions));
    // Running handlers of these partitions finish (within the shutdown timeout); what they finished
    // must not be redelivered to the next owner.
    const auto revoked = partitions_of(partitions);
    store(container_->revoke(revoked));
    commit_stored("partitions revoked");
    forget(revoked);
    if (cooperative) {
      const ErrorHandle error(rd_kafka_incremental_unassign(rk, partitions));
      if (error) log.error("kafka: {}: unassign failed: {}", description(), rd_kafka_error_string(error.get()));
    } else {
      rd_kafka_assign(rk, nullptr);
    }
  } else {
    log.warn("kafka: {}: rebalance error: {}", description(), rd_kafka_err2str(err));
    const auto revoked = partitions_of(partitions);
    (void)container_->revoke(revoked);
    forget(revoked);
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
  // What an asynchronous commit still carries is sent again: its answer may be a failure.
  for (const auto& [id, position] : in_flight_) noted_.try_emplace(id, position);
  if (noted_.empty()) return true;
  auto list = list_of(noted_);
  auto err = commit_offsets(rk_.get(), list.get(), cluster_timeout_);
  if (err == RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE && !metadata_refused_) {
    metadata_refused_ = true;
    log.warn("kafka: {}: the broker refuses the commit metadata (offset.metadata.max.bytes); committing without it "
             "from now on: records completed past a committed offset run again after a restart",
             description());
    list = list_of(noted_);
    err = commit_offsets(rk_.get(), list.get(), cluster_timeout_);
  }
  tell_committed(list.get(), err);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    noted_.clear();
    in_flight_.clear();  // superseded (its answer, when it comes, is ignored)
  }
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

void Consumer::forget(const std::vector<messaging::TopicPartition>& partitions) {
  for (const auto& p : partitions) {
    noted_.erase(p);
    in_flight_.erase(p);
  }
}

void Consumer::note(const std::vector<messaging::Position>& positions) {
  for (const auto& position : positions) {
    if (position.offset >= 0) noted_.insert_or_assign(position.partition, position);
  }
}

PartitionListHandle Consumer::list_of(const std::map<messaging::TopicPartition, messaging::Position>& positions) const {
  PartitionListHandle list(rd_kafka_topic_partition_list_new(static_cast<int>(positions.size())));
  for (const auto& [id, position] : positions) {
    auto* entry = rd_kafka_topic_partition_list_add(list.get(), id.topic.c_str(), id.partition);
    entry->offset = position.offset;
    if (!position.metadata.empty() && !metadata_refused_) {
      // Freed by librdkafka with the list.
      entry->metadata = std::malloc(position.metadata.size());
      if (entry->metadata == nullptr) throw std::bad_alloc();
      std::memcpy(entry->metadata, position.metadata.data(), position.metadata.size());
      entry->metadata_size = position.metadata.size();
    }
  }
  return list;
}

void Consumer::commit_noted() {
  auto& log = cppfly::detail::log();
  // Answers of earlier commits.
  while (!in_flight_.empty()) {
    const EventHandle event(rd_kafka_queue_poll(commit_queue_.get(), 0));
    if (!event) break;
    if (rd_kafka_event_type(event.get()) != RD_KAFKA_EVENT_OFFSET_COMMIT) continue;
    // The answer to an earlier commit that a synchronous one superseded: not this one's.
    if (reinterpret_cast<std::uintptr_t>(rd_kafka_event_opaque(event.get())) != commit_serial_) continue;
    const auto err = rd_kafka_event_error(event.get());
    tell_committed(rd_kafka_event_topic_partition_list(event.get()), err);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET) {
      in_flight_.clear();
      container_->committed(in_flight_serial_);
      break;
    }
    if (err == RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE && !metadata_refused_) {
      metadata_refused_ = true;
      log.warn("kafka: {}: the broker refuses the commit metadata (offset.metadata.max.bytes); committing without "
               "it from now on: records completed past a committed offset run again after a restart",
               description());
    } else {
      log.warn("kafka: {}: committing offsets failed: {}; tried again", description(), rd_kafka_err2str(err));
    }
    // Sent again with the next commit, unless newer positions were noted meanwhile.
    for (auto& [id, position] : in_flight_) noted_.try_emplace(id, std::move(position));
    in_flight_.clear();
  }
  if (!in_flight_.empty() || noted_.empty()) return;
  const auto list = list_of(noted_);
  ++commit_serial_;
  if (const auto err = rd_kafka_commit_queue(rk_.get(), list.get(), commit_queue_.get(), nullptr,
                                             reinterpret_cast<void*>(commit_serial_));
      err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    log.warn("kafka: {}: cannot commit offsets: {}", description(), rd_kafka_err2str(err));
    return;
  }
  in_flight_.swap(noted_);
  noted_.clear();
  in_flight_serial_ = noted_serial_;
}

std::vector<messaging::Position> Consumer::read_committed(rd_kafka_topic_partition_list_t* partitions) {
  std::vector<messaging::Position> committed;
  const PartitionListHandle query(rd_kafka_topic_partition_list_copy(partitions));
  const auto err = rd_kafka_committed(rk_.get(), query.get(), static_cast<int>(cluster_timeout_.count()));
  for (int i = 0; i < partitions->cnt; ++i) {
    auto& wanted = partitions->elems[i];
    messaging::Position position{{wanted.topic, wanted.partition}, -1, {}};
    const auto* found = err == RD_KAFKA_RESP_ERR_NO_ERROR
                            ? rd_kafka_topic_partition_list_find(query.get(), wanted.topic, wanted.partition)
                            : nullptr;
    if (found != nullptr && found->err == RD_KAFKA_RESP_ERR_NO_ERROR && found->offset >= 0) {
      position.offset = found->offset;
      wanted.offset = found->offset;
      if (found->metadata != nullptr && found->metadata_size > 0) {
        position.metadata.assign(static_cast<const char*>(found->metadata), found->metadata_size);
      }
    }
    committed.push_back(std::move(position));
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    cppfly::detail::log().warn("kafka: {}: reading the committed offsets failed: {}; the assignment starts from them "
                               "without their metadata (records completed past them may run again)",
                               description(), rd_kafka_err2str(err));
  }
  return committed;
}

messaging::ListenerStatus Consumer::status() {
  messaging::ListenerStatus out{.listener = subscription_->container.failure.listener_name,
                                .topic = subscription_->topic,
                                .group = subscription_->group.value_or("")};
  if (out.listener.empty()) out.listener.append("'").append(out.topic).append("'");
  if (const std::unique_lock lock(lifecycle_, std::try_to_lock); lock.owns_lock() && container_) {
    out.buffered = container_->buffered();
    out.retries_waiting = container_->retries_waiting();
  }
  if (auto stats = statistics(); stats.reported) {
    out.assigned = stats.assigned;
    out.lag = std::move(stats.lag);
  }
  return out;
}

std::vector<messaging::TopicPartition> Consumer::partitions_of(const rd_kafka_topic_partition_list_t* list) {
  std::vector<messaging::TopicPartition> out;
  for (int i = 0; list != nullptr && i < list->cnt; ++i) out.push_back({list->elems[i].topic, list->elems[i].partition});
  return out;
}

void Consumer::run(int me) noexcept {
  while (await_lead(me)) {
    if (stop_requested_.load()) {
      finish(me);
      return;
    }
    try {
      fetch_round(me);
    } catch (const std::exception& e) {
      cppfly::detail::log().error("kafka: {}: {}", description(), e.what());
    } catch (...) {
      cppfly::detail::log().error("kafka: {}: unknown error in the poll loop", description());
    }
  }
}

bool Consumer::await_lead(int me) {
  std::unique_lock lock(lead_mutex_);
  for (;;) {
    if (finished_flag_) return false;
    if (leader_.load() == me) return true;
    // The lead runs records: a handler that runs long (or a stop) must not keep the polling waiting,
    // so that a slow handler never counts against max.poll.interval.ms.
    if (leader_inline_ && (stop_requested_.load() || std::chrono::steady_clock::now() - inline_since_ >= kTakeOver)) {
      leader_.store(me);
      leader_inline_ = false;
      return true;
    }
    lead_cv_.wait_for(lock, kTakeOverCheck);
  }
}

void Consumer::fetch_round(int me) {
  // The first record waits up to 100 ms (none when records are left to run); what else is already
  // fetched follows at once, handed to the container in one go. The messages are filled in place:
  // the container hands back messages it is done with, their strings' capacity kept, so a record in
  // the steady state costs no allocation here (nor a free on a worker).
  // Fast path: the records run on this thread, their headers read only when a handler asks; the
  // records are kept until the container has read the headers of any it still holds.
  const bool fast = container_->runs_on_caller();
  auto& held = held_[static_cast<std::size_t>(me)];
  struct Release {
    Consumer& self;
    std::vector<MessageHandle>& held;
    ~Release() {
      {
        const std::lock_guard lead(self.lead_mutex_);  // finish() may take them
        if (held.empty()) return;
      }
      bool keep = false;
      try {
        self.container_->resolve_deferred();
      } catch (...) {  // out of memory: a message may still read them; they stay (leaked)
        keep = true;
      }
      // (Once the consumer stops, the thread that stops it takes them: see finish().)
      const std::lock_guard lead(self.lead_mutex_);
      if (keep) {
        for (auto& record : held) (void)record.release();
      }
      held.clear();
    }
  } release{*this, held};
  bool idle = true;
  std::size_t filled = 0;
  for (int timeout = ready_left_ ? 0 : 100; filled < kFetchBatch; timeout = 0) {
    MessageHandle record(rd_kafka_consumer_poll(rk_.get(), timeout));
    if (!record) break;
    idle = false;
    if (record->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      report(*record);
      continue;
    }
    if (filled == batch_.size()) batch_.emplace_back();
    fill_message(batch_[filled++], *record, fast);
    if (fast) held.push_back(std::move(record));
  }
  if (filled > 0) {
    batch_.resize(filled);
    container_->offer(batch_);
  }
  if (fast) {
    run_records(me);
    if (leader_.load() != me) return;  // taken over: the other thread polls now
  }
  const auto now = Clock::now();
  // Pauses at once (librdkafka drops what it prefetched of a paused partition), positions at most
  // every kStoreInterval.
  if (container_->has_news() && (idle || container_->has_flow_changes() || now - stored_at_ >= kStoreInterval)) {
    apply_container();
    stored_at_ = now;
  }
  if (!broadcast()) {
    if (container_->checkpoint_urgent() || now - checkpoint_at_ >= commit_interval_) {
      note(container_->checkpoint());
      noted_serial_ = container_->checkpoint_serial();
      checkpoint_at_ = now;
      // Nothing to commit: the checkpoint is as good as committed.
      if (noted_.empty() && in_flight_.empty()) container_->committed(noted_serial_);
    }
    commit_noted();
  }
}

void Consumer::run_records(int me) {
  auto until = Clock::now();
  {
    const std::lock_guard lead(lead_mutex_);
    leader_inline_ = true;
    inline_since_ = until;
    in_records_[static_cast<std::size_t>(me)] = true;
  }
  until += kInlineBudget;
  const bool left =
      container_->run_here(until, [this, me] { return leader_.load(std::memory_order_relaxed) == me; });
  const std::lock_guard lead(lead_mutex_);
  in_records_[static_cast<std::size_t>(me)] = false;
  if (leader_.load() == me) {
    leader_inline_ = false;
    ready_left_ = left;
  } else if (left && !client_closing_) {
    rd_kafka_queue_yield(consumer_queue_.get());  // the thread that took over runs them, now
  }
}

void Consumer::finish(int me) noexcept {
  try {
    store(container_->stop());
    // (an asynchronous commit still under way is answered later: the final one follows it)
  } catch (const std::exception& e) {
    cppfly::detail::log().error("kafka: {}: stopping the listener container failed: {}", description(), e.what());
  } catch (...) {
    cppfly::detail::log().error("kafka: {}: stopping the listener container failed", description());
  }
  // The other thread may still be in a round that lost the lead (its run ends after the stop, or its
  // handler outlived the shutdown timeout): its records go now, before the client (librdkafka's
  // records must not outlive it); what the container still holds of them reads its headers first.
  std::vector<MessageHandle> others;
  {
    const std::lock_guard lead(lead_mutex_);
    client_closing_ = true;
    others.swap(held_[static_cast<std::size_t>(1 - me)]);
  }
  if (!others.empty()) {
    try {
      container_->resolve_deferred();
    } catch (...) {  // out of memory: a message may still read them; they stay (leaked)
      for (auto& record : others) (void)record.release();
    }
    others.clear();
  }
  close_client();
  {
    const std::lock_guard lead(lead_mutex_);
    finished_flag_ = true;
  }
  lead_cv_.notify_all();
  finished_.set_value();
}

void Consumer::apply_container() {
  auto& log = cppfly::detail::log();
  const auto flow = container_->take_flow_changes();
  auto apply = [&](const std::vector<messaging::TopicPartition>& partitions, bool pause) {
    if (partitions.empty()) return;
    const PartitionListHandle list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
    for (const auto& p : partitions) rd_kafka_topic_partition_list_add(list.get(), p.topic.c_str(), p.partition);
    const auto err = pause ? rd_kafka_pause_partitions(rk_.get(), list.get())
                           : rd_kafka_resume_partitions(rk_.get(), list.get());
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      log.warn("kafka: {}: cannot {} partitions: {}", description(), pause ? "pause" : "resume", rd_kafka_err2str(err));
    } else {
      log.debug("kafka: {}: {} {} partition(s) (records buffered: {})", description(), pause ? "paused" : "resumed",
                partitions.size(), container_->buffered());
    }
  };
  apply(flow.pause, true);
  apply(flow.resume, false);
  // Group subscriptions commit checkpoints (with metadata); broadcast ones only keep positions.
  const auto positions = container_->take_positions();
  if (broadcast()) store(positions);
}

void Consumer::in_transaction(const messaging::Message& message, const std::function<void()>& handle) {
  const std::lock_guard lock(transaction_mutex_);
  if (transactional_->fatal()) {
    // Fenced (a newer producer with this transactional.id) or broken: a new one takes over, and
    // fences whatever the old one left open.
    cppfly::detail::log().warn("kafka: {}: the transactional producer hit a fatal error; replaced", description());
    transactional_->close(std::chrono::milliseconds(0));
    transactional_ = make_transactional_();
  }
  if (closing_) throw messaging::BrokerError("the consumer is stopping: no new transaction");
  // Taken now: once the handler ran the client may be closing (a handler that outlived the stop).
  const std::unique_ptr<rd_kafka_consumer_group_metadata_t, void (*)(rd_kafka_consumer_group_metadata_t*)> group(
      rd_kafka_consumer_group_metadata(rk_.get()), &rd_kafka_consumer_group_metadata_destroy);
  Producer& producer = *transactional_;
  const auto timeout = producer.publish_timeout();
  producer.begin_transaction();
  auto abort = [&] {
    try {
      producer.abort_transaction(timeout);
    } catch (const std::exception& e) {
      cppfly::detail::log().error("kafka: {}: aborting a transaction failed: {}", description(), e.what());
    }
  };
  current_transaction() = &producer;
  try {
    handle();
  } catch (...) {
    current_transaction() = nullptr;
    abort();
    throw;
  }
  current_transaction() = nullptr;
  try {
    const PartitionListHandle offsets(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(offsets.get(), message.topic.c_str(), message.partition)->offset =
        message.offset + 1;
    producer.send_offsets_to_transaction(*offsets, *group, timeout);
  } catch (...) {
    abort();
    throw;
  }
  producer.commit_transaction(timeout);  // aborts itself when it must, then throws
}

void Consumer::store(const std::vector<messaging::Position>& positions) {
  if (broadcast()) {
    for (const auto& position : positions) next_offsets_[position.partition.partition] = position.offset;
  } else {
    note(positions);
  }
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
    if (transactional_) {
      // A transaction of a handler that outlived the shutdown timeout still holds it: that producer
      // is left to it (its transaction never commits: aborted by the broker's transaction timeout).
      const std::unique_lock lock(transaction_mutex_, std::try_to_lock);
      if (lock.owns_lock()) {
        closing_ = true;
        transactional_->close(cluster_timeout_);
      } else {
        log.warn("kafka: {}: a transaction is still under way; its producer is left open", description());
      }
    }
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
    consumer_queue_.reset();  // before the client goes
    commit_queue_.reset();
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
