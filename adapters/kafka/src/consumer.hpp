// One subscription's consumer: a librdkafka high-level consumer, its fetch thread and the listener
// container the fetch thread feeds. Handlers run on the container's workers, or (the fast path: one
// worker, partition order, a per-record handler) on the fetch thread itself, with a second thread
// that takes the polling over while a handler runs long. Internal.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <cppfly/messaging/broker_port.hpp>
#include <cppfly/messaging/listener_container.hpp>

#include "client_context.hpp"
#include "handles.hpp"
#include "producer.hpp"

namespace cppfly::kafka::detail {

using messaging::Subscription;

/// Owned by shared_ptr (start() hands a reference to the poll thread).
class Consumer final : public ClientContext, public std::enable_shared_from_this<Consumer> {
 public:
  /// `conf` is the consumer configuration (make_client_conf); the group (or the broadcast
  /// settings) and the callbacks are added here. `cluster_timeout` bounds every blocking
  /// exchange with the cluster (start offsets, commits, leaving the group).
  /// A transactional subscription gets its producer from `make_transactional` (at start()).
  Consumer(std::shared_ptr<const Subscription> subscription, ConfHandle conf,
           std::chrono::milliseconds cluster_timeout, messaging::MessageBrokerPort& dead_letters,
           std::function<std::unique_ptr<Producer>()> make_transactional = {});
  /// request_stop() + join().
  ~Consumer() override;
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  /// Creates the client, subscribes and starts the poll thread. A broadcast consumer
  /// first records where each partition ends, so it sees everything published after
  /// start() returned. Throws config::ConfigError / messaging::BrokerError. Does nothing
  /// when request_stop() came first.
  void start();
  /// Asks the fetch thread to stop (its container then stops within its shutdown timeout). Does not wait.
  void request_stop() noexcept;
  /// Waits until the poll thread has committed, left the group and the client is destroyed.
  /// Called from this subscription's own handler (stop() in a handler), it cannot wait: it detaches
  /// the thread and returns false; await_finished() waits later.
  bool join() noexcept;
  /// Waits until the poll thread has finished (also after a detach). Returns at once when
  /// called on the poll thread itself or when the consumer never started.
  void await_finished() noexcept;

  [[nodiscard]] const Subscription& subscription() const noexcept { return *subscription_; }
  /// Its container's buffered records and waiting retries, its assigned partitions and their lag
  /// (librdkafka's last statistics). Never waits for the fetch thread.
  [[nodiscard]] messaging::ListenerStatus status();
  [[nodiscard]] bool broadcast() const noexcept { return !subscription_->group.has_value(); }
  [[nodiscard]] const std::string& group_id() const noexcept { return group_id_; }

 private:
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions,
                           void* opaque) noexcept;
  /// Tells the observer (if any) how a commit of `offsets` went.
  void tell_committed(const rd_kafka_topic_partition_list_t* offsets, rd_kafka_resp_err_t err) const;
  void rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions);
  void record_start_offsets();
  [[nodiscard]] std::int64_t broadcast_position(std::int32_t partition) const;
  /// The fetch loop of thread `me` (0: the fetch thread, 1: the stand-in of the fast path).
  void run(int me) noexcept;
  /// Waits until thread `me` holds the lead (it polls): given, or taken over from a thread that runs
  /// records longer than kTakeOver (at once when stopping). False once the consumer finished.
  bool await_lead(int me);
  /// One round of the lead: poll a batch, hand it over, run it (fast path), pauses, commits.
  void fetch_round(int me);
  /// Fast path: runs ready records on this thread (the lead may be taken over meanwhile).
  void run_records(int me);
  /// Stops the container, commits, leaves the group (on thread `me`, holding the lead).
  void finish(int me) noexcept;
  /// Applies what the container asks: pause/resume partitions, store positions.
  void apply_container();
  void store(const std::vector<messaging::Position>& positions);
  /// What the container reads back on assignment: each partition's committed offset and metadata
  /// (the offsets are also set in `partitions`, for the assignment). Bounded by cluster_timeout_.
  std::vector<messaging::Position> read_committed(rd_kafka_topic_partition_list_t* partitions);
  /// Positions (with metadata) to commit next.
  void note(const std::vector<messaging::Position>& positions);
  /// Sends what is noted (asynchronously) unless a commit is under way; reads the answers of earlier ones.
  void commit_noted();
  /// The librdkafka list for `positions` (metadata copied in, unless the broker refused it).
  [[nodiscard]] PartitionListHandle list_of(const std::map<messaging::TopicPartition, messaging::Position>& positions) const;
  /// One attempt of a transactional listener: the handler's publishes and the record's offset in one
  /// transaction (one at a time).
  void in_transaction(const messaging::Message& message, const std::function<void()>& handle);
  static std::vector<messaging::TopicPartition> partitions_of(const rd_kafka_topic_partition_list_t* list);
  void report(const rd_kafka_message_t& record);
  /// Commits what is noted, waiting at most cluster_timeout_. False when the commit did not
  /// complete in time (the coordinator is unreachable).
  bool commit_stored(const char* why);
  /// Forgets noted positions of partitions no longer assigned.
  void forget(const std::vector<messaging::TopicPartition>& partitions);
  void close_client() noexcept;

  std::shared_ptr<const Subscription> subscription_;
  std::string group_id_;
  std::chrono::milliseconds cluster_timeout_;
  ConfHandle conf_;  ///< until start() hands it to rd_kafka_new

  // Broadcast positions (touched only by start(), then by the poll thread).
  enum class StartMode { recorded, from_beginning, latest };
  StartMode start_mode_{StartMode::latest};
  std::map<std::int32_t, std::int64_t> start_offsets_;  ///< partition → end offset at start()
  std::map<std::int32_t, std::int64_t> next_offsets_;   ///< partition → offset after the last handled record

  // Commits (group subscriptions): the consumer commits itself, every commit_interval_ and when the
  // container asks, each position with the container's metadata (librdkafka's offset store drops it).
  std::chrono::milliseconds commit_interval_{1000};
  std::map<messaging::TopicPartition, messaging::Position> noted_;     ///< newest positions, not sent yet
  std::map<messaging::TopicPartition, messaging::Position> in_flight_; ///< sent, answer pending
  QueueHandle commit_queue_;       ///< answers of asynchronous commits (destroyed before rk_)
  std::uintptr_t commit_serial_{0};  ///< of the last asynchronous commit: its answer carries it
  std::uint64_t noted_serial_{0};     ///< the container's checkpoint that noted_ is up to
  std::uint64_t in_flight_serial_{0}; ///< ... and in_flight_
  bool metadata_refused_{false};   ///< the broker refused the metadata (offset.metadata.max.bytes): sent without

  messaging::MessageBrokerPort& dead_letters_;
  std::unique_ptr<messaging::ListenerContainer> container_;  ///< made by start()
  QueueHandle consumer_queue_;  ///< to wake the fetch thread (destroyed before rk_)
  std::function<std::unique_ptr<Producer>()> make_transactional_;
  std::mutex transaction_mutex_;             ///< one transaction at a time
  std::unique_ptr<Producer> transactional_;  ///< transactional subscriptions: made by start()
  bool closing_{false};                      ///< under transaction_mutex_: no new transaction

  std::mutex lifecycle_;
  std::atomic<bool> stop_requested_{false};
  bool started_{false};
  bool coordinator_lost_{false};  ///< a commit timed out: skip further waits while stopping
  std::thread poller_;
  std::thread::id poller_id_;
  // The fast path (container_->runs_on_caller()): both threads run the fetch loop, one at a time.
  std::thread standby_;
  std::thread::id standby_id_;
  std::mutex lead_mutex_;
  std::condition_variable lead_cv_;
  std::atomic<int> leader_{0};  ///< the thread that polls (changed under lead_mutex_)
  bool leader_inline_{false};   ///< under lead_mutex_: the leader runs records since inline_since_
  std::chrono::steady_clock::time_point inline_since_{};
  std::array<bool, 2> in_records_{};  ///< under lead_mutex_: the thread is inside run_here()
  bool client_closing_{false};        ///< under lead_mutex_: consumer_queue_ may go
  bool finished_flag_{false};         ///< under lead_mutex_
  // The fetch loop's state (the thread holding the lead uses it).
  std::vector<messaging::Message> batch_;
  std::chrono::steady_clock::time_point stored_at_{};
  std::chrono::steady_clock::time_point checkpoint_at_{};
  bool ready_left_{false};  ///< run_here() left records ready: poll without waiting
  /// Fast path: each thread's records of its round, kept until the container read what it still
  /// needs of their headers (resolve_deferred).
  std::array<std::vector<MessageHandle>, 2> held_;
  std::promise<void> finished_;
  std::shared_future<void> finished_future_{finished_.get_future().share()};
  KafkaHandle rk_;  ///< declared last: destroyed first (the context must outlive it)
};

}  // namespace cppfly::kafka::detail
