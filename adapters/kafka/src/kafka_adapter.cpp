// KafkaAdapter: lifecycle and the port's five methods, on top of Producer, Consumer and
// EmbeddedCluster.
#include <cppfly/kafka/kafka_adapter.hpp>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <vector>

#include <cppfly/config/config.hpp>
#include <cppfly/detail/log.hpp>

#include "client_config.hpp"
#include "cluster_probe.hpp"
#include "consumer.hpp"
#include "handles.hpp"
#include "mock_cluster.hpp"
#include "producer.hpp"
#include "topic_admin.hpp"

namespace cppfly::kafka {

using messaging::BrokerError;
using messaging::DeliveryResult;

struct KafkaAdapter::Impl {
  enum class State { created, started, stopping, stopped };

  explicit Impl(config::KafkaProperties given) : properties(std::move(given)) {}

  config::KafkaProperties properties;
  std::unique_ptr<detail::EmbeddedCluster> embedded;  ///< first member: destroyed last
  std::string servers;
  detail::ConfHandle producer_conf;  ///< validated at construction; each client gets a copy
  detail::ConfHandle consumer_conf;

  std::mutex lifecycle;  ///< serialises start() and stop()
  std::shared_ptr<messaging::MessagingObserver> observer;  ///< set before start(): given to each producer

  std::mutex state_mutex;  ///< guards state, subscriptions, consumers
  State state{State::created};
  std::vector<std::shared_ptr<const detail::Subscription>> subscriptions;
  std::vector<std::shared_ptr<detail::Consumer>> consumers;

  /// The started producer, read without a lock by publish(). A stopped producer refuses
  /// records but its object lives as long as the adapter (`producers`), so a publish that
  /// read the pointer just before stop() gets a clear "stopped" error, never a dangling one.
  std::atomic<detail::Producer*> producer{nullptr};
  std::vector<std::unique_ptr<detail::Producer>> producers;  ///< every one start() made

  /// transaction(): one at a time; the transactional producer (transactional-id-prefix set),
  /// made by start() and closed by stop(), both under this lock.
  std::mutex transaction_mutex;
  std::unique_ptr<detail::Producer> transactional;

  /// A transactional producer, its transactions initialised (fencing an earlier one with the id).
  [[nodiscard]] std::unique_ptr<detail::Producer> make_transactional() const {
    // Spring's rule: the prefix plus the producer's number; this adapter has one for transaction().
    return make_transactional_with(properties.transactional_id_prefix + "0");
  }

  [[nodiscard]] std::unique_ptr<detail::Producer> make_transactional_with(const std::string& id) const {
    auto conf = detail::duplicate(producer_conf.get());
    detail::set_property(conf.get(), "transactional.id", id, "pyfly.messaging.kafka.transactional-id-prefix");
    auto made = std::make_unique<detail::Producer>(std::move(conf), properties.publish_timeout);
    made->observe(observer);
    made->init_transactions(properties.connect_timeout);
    return made;
  }

  /// Consumers stopped from their own handler: still finishing on their own thread.
  std::vector<std::shared_ptr<detail::Consumer>> detached;

  /// Waits for detached consumers (only ever called with `lifecycle` held).
  void await_detached() {
    for (const auto& consumer : detached) consumer->await_finished();
    detached.clear();
  }

  std::mutex producers_mutex;  ///< guards `producers` (start() and replace_fatal())
  std::atomic<std::uint64_t> replacements{0};

  /// The producer to publish with: the current one, or (after a fatal error) a new one.
  [[nodiscard]] detail::Producer* current_producer() {
    auto* current = producer.load(std::memory_order_acquire);
    if (current == nullptr || !current->fatal()) return current;
    return replace_fatal(current);
  }

  /// An idempotent producer that hit a fatal error (librdkafka: it can no longer guarantee order
  /// and no duplicates) is replaced by a new one; what the old one still held fails.
  detail::Producer* replace_fatal(detail::Producer* fatal) {
    const std::lock_guard lock(producers_mutex);
    if (producer.load() != fatal) return producer.load();  // replaced meanwhile, or stopped
    auto fresh = std::make_unique<detail::Producer>(detail::duplicate(producer_conf.get()), properties.publish_timeout);
    fresh->observe(observer);
    detail::Producer* expected = fatal;
    if (!producer.compare_exchange_strong(expected, fresh.get())) return expected;  // stop() took it
    producers.push_back(std::move(fresh));
    const auto count = replacements.fetch_add(1) + 1;
    cppfly::detail::log().warn("kafka: the producer hit a fatal error ({}); replaced by a new producer ({} so far)",
                               fatal->last_error(), count);
    fatal->close(std::chrono::milliseconds(0));  // its undelivered records fail now
    return producers.back().get();
  }

  /// The producer to publish a record of `topic` with (its topic prepared); throws BrokerError
  /// when the adapter is not started.
  detail::Producer* producer_for(std::string_view topic) {
    auto* current = current_producer();
    if (current == nullptr) {
      throw BrokerError("cannot publish to '" + std::string(topic) +
                        "': the Kafka adapter is not started (call start() first)");
    }
    prepare_topic(topic);
    return current;
  }

  /// Embedded cluster: topics are created (with a fixed partition count) on first use.
  void prepare_topic(std::string_view topic) {
    if (embedded) embedded->ensure_topic(topic);
  }

  [[nodiscard]] std::shared_ptr<detail::Consumer> make_consumer(std::shared_ptr<const detail::Subscription> s) {
    std::function<std::unique_ptr<detail::Producer>()> make_transactional;
    if (s->container.transactional) {
      // One transactional.id per listener subscription of this service instance: a restarted
      // instance fences the one before it (each instance needs its own prefix, as in Spring).
      make_transactional = [this, id = properties.transactional_id_prefix + "-" + *s->group + "-" + s->topic] {
        return make_transactional_with(id);
      };
    }
    return std::make_shared<detail::Consumer>(std::move(s), detail::duplicate(consumer_conf.get()),
                                              properties.connect_timeout, *port, std::move(make_transactional));
  }
  messaging::MessageBrokerPort* port{nullptr};  ///< the adapter: dead letters are published through it

  void stop_locked() {
    std::vector<std::shared_ptr<detail::Consumer>> stopping;
    {
      const std::lock_guard lock(state_mutex);
      if (state != State::started) return;
      state = State::stopping;
      stopping.swap(consumers);
    }
    // Consumers first (their handlers may still publish), all at once, then the producer.
    for (const auto& consumer : stopping) consumer->request_stop();
    for (const auto& consumer : stopping) {
      if (!consumer->join()) detached.push_back(consumer);
    }
    stopping.clear();
    {
      const std::lock_guard lock(transaction_mutex);  // a transaction under way ends first
      if (transactional) transactional->close(properties.publish_timeout);
      transactional.reset();
    }
    if (auto* closing = producer.exchange(nullptr)) closing->close(properties.publish_timeout);
    {
      const std::lock_guard lock(state_mutex);
      state = State::stopped;
    }
    cppfly::detail::log().info("kafka: adapter stopped ({})", servers);
  }
};

KafkaAdapter::KafkaAdapter(config::KafkaProperties properties)
    : impl_(std::make_unique<Impl>(std::move(properties))) {
  impl_->port = this;
  auto& p = impl_->properties;
  // Validate everything before anything starts: a refused property throws ConfigError here.
  impl_->producer_conf = detail::make_client_conf(p, p.bootstrap_servers, detail::ClientKind::producer);
  impl_->consumer_conf = detail::make_client_conf(p, p.bootstrap_servers, detail::ClientKind::consumer);
  impl_->servers = p.bootstrap_servers;
  if (p.bootstrap_servers == "embedded") {
    impl_->embedded = std::make_unique<detail::EmbeddedCluster>(p.embedded_brokers);
    impl_->servers = impl_->embedded->bootstrap_servers();
    detail::declare_embedded_topics(p, *impl_->embedded);  // pyfly.messaging.kafka.topics
    for (auto* conf : {impl_->producer_conf.get(), impl_->consumer_conf.get()}) {
      detail::set_property(conf, "bootstrap.servers", impl_->servers, "pyfly.messaging.kafka.bootstrap-servers");
    }
    // librdkafka 2.0.2's mock coordinator holds a JoinGroup for a whole session timeout
    // after the group's last member left (45 s by default): restarting a service on the
    // embedded cluster would stall that long. 6 s is real Kafka's minimum.
    const auto user_set = [&p](const std::string& name) {
      return p.properties.contains(name) || p.consumer_properties.contains(name);
    };
    if (!user_set("session.timeout.ms")) {
      detail::set_property(impl_->consumer_conf.get(), "session.timeout.ms", "6000", "embedded");
      if (!user_set("heartbeat.interval.ms")) {
        detail::set_property(impl_->consumer_conf.get(), "heartbeat.interval.ms", "1500", "embedded");
      }
    }
  }
}

KafkaAdapter::~KafkaAdapter() {
  try {
    stop();
    const std::lock_guard lifecycle(impl_->lifecycle);
    impl_->await_detached();
  } catch (const std::exception& e) {
    cppfly::detail::log().error("kafka: error while stopping the adapter: {}", e.what());
  } catch (...) {
    cppfly::detail::log().error("kafka: unknown error while stopping the adapter");
  }
}

std::string KafkaAdapter::bootstrap_servers() const { return impl_->servers; }

std::uint64_t KafkaAdapter::producer_replacements() const noexcept { return impl_->replacements.load(); }

DeliveryResult KafkaAdapter::publish(std::string_view topic, std::string_view value, messaging::PublishOptions options) {
  // From a transactional listener's handler: into its transaction.
  auto* producer = detail::current_transaction();
  if (producer != nullptr) {
    impl_->prepare_topic(topic);
  } else {
    producer = impl_->producer_for(topic);
  }
  auto delivery = producer->send(topic, value, options);
  return producer->await(delivery, topic);
}

void KafkaAdapter::publish_async(std::string_view topic, std::string value, messaging::PublishOptions options,
                                 messaging::DeliveryCallback done) {
  std::optional<BrokerError> error;
  try {
    auto* producer = detail::current_transaction();
    if (producer != nullptr) {
      impl_->prepare_topic(topic);
    } else {
      producer = impl_->producer_for(topic);
    }
    producer->send(topic, value, options, done);
    return;
  } catch (const BrokerError& e) {
    error.emplace(e);
  } catch (const std::exception& e) {
    error.emplace(e.what());
  }
  // Not queued: the report comes at once, on this thread (send() moves `done` only once the
  // record is queued).
  try {
    if (done) done(messaging::DeliveryReport{topic, -1, -1, &*error});
  } catch (const std::exception& e) {
    cppfly::detail::log().error("kafka: delivery callback for '{}' threw: {}", topic, e.what());
  } catch (...) {
    cppfly::detail::log().error("kafka: delivery callback for '{}' threw", topic);
  }
}

void KafkaAdapter::transaction(const std::function<void(messaging::TransactionalPublisher&)>& body) {
  const auto& p = impl_->properties;
  if (p.transactional_id_prefix.empty()) {
    throw BrokerError("transactions are off: set pyfly.messaging.kafka.transactional-id-prefix to turn them on");
  }
  const std::lock_guard lock(impl_->transaction_mutex);
  if (!impl_->transactional) throw BrokerError("cannot begin a transaction: the Kafka adapter is not started");
  if (impl_->transactional->fatal()) {
    // Fenced or broken by an earlier failure: a new producer with the same id takes over.
    impl_->transactional->close(std::chrono::milliseconds(0));
    impl_->transactional = impl_->make_transactional();
  }
  detail::Producer& producer = *impl_->transactional;
  producer.begin_transaction();

  struct Publisher final : messaging::TransactionalPublisher {
    Impl& impl;
    detail::Producer& producer;
    Publisher(Impl& i, detail::Producer& p) : impl(i), producer(p) {}
    void publish(std::string_view topic, std::string_view value, messaging::PublishOptions options) override {
      impl.prepare_topic(topic);
      // A failed record fails the commit; its report needs no handling of its own.
      messaging::DeliveryCallback ignore = [](const messaging::DeliveryReport&) {};
      producer.send(topic, value, options, ignore);
    }
    bool flush(std::chrono::milliseconds timeout) override { return producer.flush(timeout); }
  } publisher(*impl_, producer);

  try {
    body(publisher);
  } catch (...) {
    try {
      producer.abort_transaction(p.publish_timeout);
    } catch (const std::exception& e) {
      cppfly::detail::log().error("kafka: aborting a transaction failed: {}", e.what());
    }
    throw;
  }
  producer.commit_transaction(p.publish_timeout);
}

bool KafkaAdapter::flush(std::chrono::milliseconds timeout) {
  auto producer = impl_->current_producer();
  return producer == nullptr || producer->flush(timeout);
}

std::future<DeliveryResult> KafkaAdapter::publish_async(std::string_view topic, std::string value,
                                                        messaging::PublishOptions options) {
  try {
    auto* producer = detail::current_transaction();
    if (producer != nullptr) {
      impl_->prepare_topic(topic);
    } else {
      producer = impl_->producer_for(topic);
    }
    return producer->send(topic, value, options);
  } catch (...) {
    std::promise<DeliveryResult> failed;
    failed.set_exception(std::current_exception());
    return failed.get_future();
  }
}

void KafkaAdapter::subscribe(messaging::Subscription given) {
  if (given.topic.empty()) throw BrokerError("cannot subscribe: the topic name is empty");
  if (!given.handler && !given.batch_handler) throw BrokerError("cannot subscribe to '" + given.topic + "': the handler is empty");
  messaging::ListenerContainer::check(given);
  if (given.group && given.group->empty()) given.group.reset();  // "" means no group, as in PyFly
  if (given.container.transactional) {
    if (impl_->properties.transactional_id_prefix.empty()) {
      throw config::ConfigError("listener '" + given.container.failure.listener_name + "' of '" + given.topic +
                                    "' is transactional: set pyfly.messaging.kafka.transactional-id-prefix",
                                "pyfly.messaging.kafka.transactional-id-prefix");
    }
    if (!given.group) {
      throw BrokerError("cannot subscribe to '" + given.topic + "' transactionally without a group");
    }
  }
  impl_->prepare_topic(given.topic);

  auto subscription = std::make_shared<const detail::Subscription>(std::move(given));
  std::shared_ptr<detail::Consumer> consumer;
  {
    const std::lock_guard lock(impl_->state_mutex);
    if (impl_->state == Impl::State::started) {
      consumer = impl_->make_consumer(subscription);
      impl_->consumers.push_back(consumer);  // a concurrent stop() stops it too
    }
    impl_->subscriptions.push_back(subscription);
  }
  if (!consumer) return;  // started by start()
  try {
    consumer->start();
  } catch (...) {
    const std::lock_guard lock(impl_->state_mutex);
    std::erase(impl_->consumers, consumer);
    std::erase(impl_->subscriptions, subscription);
    throw;
  }
}

void KafkaAdapter::start() {
  const std::lock_guard lifecycle(impl_->lifecycle);
  {
    const std::lock_guard lock(impl_->state_mutex);
    if (impl_->state == Impl::State::started) return;
  }
  impl_->await_detached();
  const auto& p = impl_->properties;
  auto producer = std::make_unique<detail::Producer>(detail::duplicate(impl_->producer_conf.get()), p.publish_timeout);
  producer->observe(impl_->observer);
  detail::await_cluster(producer->handle(), *producer, impl_->servers, p.connect_timeout);
  // pyfly.messaging.kafka.topics: created (or grown) before any consumer starts.
  detail::apply_declared_topics(producer->handle(), p);
  // A stopped producer has no client left (close() destroyed it): keep only its object.
  {
    const std::lock_guard lock(impl_->producers_mutex);
    impl_->producers.push_back(std::move(producer));
    impl_->producer.store(impl_->producers.back().get(), std::memory_order_release);
  }
  std::vector<std::shared_ptr<detail::Consumer>> starting;
  try {
    if (!p.transactional_id_prefix.empty()) {
      auto transactional = impl_->make_transactional();
      const std::lock_guard lock(impl_->transaction_mutex);
      impl_->transactional = std::move(transactional);
    }
    {
      const std::lock_guard lock(impl_->state_mutex);
      impl_->state = Impl::State::started;
      for (const auto& subscription : impl_->subscriptions) {
        impl_->consumers.push_back(impl_->make_consumer(subscription));
      }
      starting = impl_->consumers;
    }
    for (const auto& consumer : starting) consumer->start();
  } catch (...) {
    impl_->stop_locked();
    throw;
  }
  cppfly::detail::log().info("kafka: adapter started ({}, {} subscription(s))", impl_->servers, starting.size());
}

void KafkaAdapter::stop() {
  std::unique_lock lifecycle(impl_->lifecycle, std::try_to_lock);
  if (lifecycle.owns_lock()) {
    // A handler's own consumer is not waited for (it finishes once the handler returned).
    impl_->stop_locked();
    return;
  }
  // Another thread is stopping: if this is a handler, that stop must not wait for it (its record
  // is then not settled: delivered again).
  const messaging::ListenerContainer::StopFromHandler from_handler;
  lifecycle.lock();
  impl_->stop_locked();
}

void KafkaAdapter::observe(std::shared_ptr<messaging::MessagingObserver> observer) {
  const std::lock_guard lock(impl_->state_mutex);
  if (impl_->state == Impl::State::started) throw BrokerError("observe() must come before start()");
  impl_->observer = std::move(observer);
}

messaging::BrokerStatus KafkaAdapter::status() const {
  messaging::BrokerStatus out;
  std::vector<std::shared_ptr<detail::Consumer>> consumers;
  {
    const std::lock_guard lock(impl_->state_mutex);
    if (impl_->state != Impl::State::started) {
      out.reachable = false;
      out.detail = "the Kafka adapter is not started";
      return out;
    }
    consumers = impl_->consumers;
  }
  // Producers live as long as the adapter (`producers`): reading a stopped one's statistics is safe.
  detail::ClientStatistics producer;
  if (auto* current = impl_->producer.load(std::memory_order_acquire)) producer = current->statistics();
  bool reported = producer.reported;
  bool up = producer.broker_up;
  if (producer.reported) out.producer_queue = static_cast<std::size_t>(std::max<std::int64_t>(0, producer.queued));
  for (const auto& consumer : consumers) {
    const auto stats = consumer->statistics();
    reported = reported || stats.reported;
    up = up || stats.broker_up;
    out.listeners.push_back(consumer->status());
  }
  if (reported) out.reachable = up;
  out.detail = impl_->servers;
  return out;
}

}  // namespace cppfly::kafka
