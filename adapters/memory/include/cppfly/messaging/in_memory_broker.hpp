// InMemoryMessageBroker: the port in process memory, for unit tests and local runs.
#pragma once

#include <atomic>
#include <cstddef>
#include <deque>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <cppfly/messaging/broker_port.hpp>
#include <cppfly/messaging/listener_container.hpp>

namespace cppfly::messaging {

struct InMemoryBrokerOptions {
  bool record_published{true};  ///< keep a copy of every published message for published()
  /// published() keeps at most this many (the oldest go first); 0: no bound. Set one for a
  /// long-running service (the broker built from config keeps 10,000).
  std::size_t max_published{0};
  /// Handlers run inline in publish() (false: deterministic tests), or on each listener container's
  /// workers (true: concurrency and ordering as on Kafka; publish() waits when a container is full).
  bool threaded{false};
};

/// PyFly's semantics: no group → every subscriber gets every message; a group → one member per
/// message (round-robin), each group its own copy. Each subscription runs in a ListenerContainer
/// (retries, dead letters, ordering) as on Kafka. By default handlers run inline in publish(), retry
/// waits included, so tests are deterministic; an exception a handler lets out (retries exhausted,
/// no dead-letter topic) comes out of publish(). Thread-safe: publish and subscribe from any thread,
/// handlers included.
class InMemoryMessageBroker final : public MessageBrokerPort {
 public:
  explicit InMemoryMessageBroker(InMemoryBrokerOptions options = {});
  ~InMemoryMessageBroker() override;

  /// Delivers to the subscribers before it returns; refused (BrokerError) unless started.
  DeliveryResult publish(std::string_view topic, std::string_view value, PublishOptions options = {}) override;
  std::future<DeliveryResult> publish_async(std::string_view topic, std::string value,
                                            PublishOptions options = {}) override;
  /// Delivers inline, then runs `done` on the calling thread (an error a handler threw is its report's error).
  void publish_async(std::string_view topic, std::string value, PublishOptions options,
                     DeliveryCallback done) override;
  /// Nothing is ever queued: true at once.
  bool flush(std::chrono::milliseconds timeout) override;
  /// Holds what `body` publishes and delivers it, in order, once `body` returned; drops it when
  /// `body` throws. One transaction at a time.
  void transaction(const std::function<void(TransactionalPublisher&)>& body) override;
  using MessageBrokerPort::subscribe;
  void subscribe(Subscription subscription) override;
  void start() override;
  /// Refuses further publishes, waits for deliveries running on other threads to finish, and stops
  /// the listener containers (each within its shutdown timeout; records still queued are dropped).
  void stop() override;
  /// Each publish is told to `observer` (success once its subscribers were served).
  void observe(std::shared_ptr<MessagingObserver> observer) override;
  /// Reachable while started; every container's buffered records and waiting retries; no lag.
  [[nodiscard]] BrokerStatus status() const override;

  [[nodiscard]] bool running() const noexcept { return running_.load(std::memory_order_acquire); }
  /// Every message published so far (when record_published), in publish order.
  [[nodiscard]] std::vector<Message> published() const;
  /// The messages published to one topic.
  [[nodiscard]] std::vector<Message> published(std::string_view topic) const;
  void clear_published();

 private:
  struct Routes;
  struct Topic;
  /// Publishes and dispatches; fills `result` when given.
  void deliver(std::string_view topic, std::string&& value, PublishOptions&& options, DeliveryResult* result);
  void dispatch(std::string_view topic, std::string&& value, PublishOptions&& options, DeliveryResult* result);
  std::shared_ptr<const Topic> find_or_add_topic(std::string_view topic);
  [[nodiscard]] std::shared_ptr<ListenerContainer> make_container(const Subscription& subscription);

  InMemoryBrokerOptions options_;
  std::shared_ptr<MessagingObserver> observer_;  // set before start()
  std::atomic<bool> running_{false};
  std::atomic<int> in_flight_{0};  // deliveries under way, on any thread
  std::atomic<bool> stopping_{false};
  std::mutex transaction_mutex_;
  std::mutex idle_mutex_;
  std::condition_variable idle_;
  mutable std::mutex routes_mutex_;
  std::shared_ptr<const Routes> routes_;  // copy-on-write: publish reads a snapshot, subscribe swaps
  // Every route (Topic) the snapshots held, kept while the broker lives (start() drops those of
  // earlier runs when no delivery is under way): a publisher's per-thread cache of its last topic
  // reads one without a lock or a reference count. `routes_generation_` changes (to a number no
  // broker used before) whenever routes_ does: a cached route of another generation is not used.
  std::vector<std::shared_ptr<const Topic>> all_routes_;  // under routes_mutex_
  std::atomic<std::uint64_t> routes_generation_{0};
  std::vector<Subscription> subscriptions_;  // under routes_mutex_: start() makes their containers anew
  mutable std::mutex record_mutex_;
  std::deque<Message> record_;
};

}  // namespace cppfly::messaging
