#include <cppfly/messaging/in_memory_broker.hpp>
#include <cppfly/messaging/trace_context.hpp>

#include <chrono>
#include <algorithm>
#include <exception>
#include <functional>
#include <optional>
#include <unordered_map>
#include <vector>

#include "cppfly/detail/log.hpp"

namespace cppfly::messaging {

namespace {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

/// Deliveries under way on this thread (a handler that publishes nests them).
thread_local int deliveries_on_this_thread = 0;

/// Route generations: every change of any broker's routes takes a new one.
std::atomic<std::uint64_t> route_generations{0};

/// This thread's last route and its broker's generation then (the route is kept alive by the broker's
/// all_routes_ while that generation is current). Trivial: no per-access thread-local set-up.
struct RouteCache {
  std::uint64_t generation;
  const void* route;
};
thread_local RouteCache route_cache{0, nullptr};

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

using Container = std::shared_ptr<ListenerContainer>;

/// One group of one topic: its members' containers and the round-robin cursor (shared across snapshots).
struct Group {
  std::string name;
  std::vector<Container> members;
  std::shared_ptr<std::atomic<std::uint64_t>> next = std::make_shared<std::atomic<std::uint64_t>>(0);
};

/// Adds `container` to `topic`'s broadcast list or to its group.
template <class Topic>
void add_member(Topic& topic, const std::optional<std::string>& group, Container container) {
  if (!group) {
    topic.broadcast.push_back(std::move(container));
    return;
  }
  auto it = std::find_if(topic.groups.begin(), topic.groups.end(), [&](const Group& g) { return g.name == *group; });
  if (it == topic.groups.end()) {
    topic.groups.push_back(Group{.name = *group, .members = {}});
    it = std::prev(topic.groups.end());
  }
  it->members.push_back(std::move(container));
}

}  // namespace

/// The subscribers of one topic (immutable once published in a snapshot) and its offset counter.
struct InMemoryMessageBroker::Topic {
  std::string name;
  std::vector<Container> broadcast;
  std::vector<Group> groups;
  std::shared_ptr<std::atomic<std::int64_t>> next_offset = std::make_shared<std::atomic<std::int64_t>>(0);
};

struct InMemoryMessageBroker::Routes {
  std::unordered_map<std::string, std::shared_ptr<const Topic>, StringHash, std::equal_to<>> topics;
};

InMemoryMessageBroker::InMemoryMessageBroker(InMemoryBrokerOptions options)
    : options_(options), routes_(std::make_shared<const Routes>()) {
  routes_generation_.store(route_generations.fetch_add(1) + 1);
}

InMemoryMessageBroker::~InMemoryMessageBroker() = default;

std::shared_ptr<ListenerContainer> InMemoryMessageBroker::make_container(const Subscription& subscription) {
  auto container = std::make_shared<ListenerContainer>(
      subscription, *this,
      ContainerRuntime{.inline_execution = !options_.threaded, .block_when_full = true, .assign_on_offer = true});
  container->start();
  return container;
}

void InMemoryMessageBroker::start() {
  if (running_.load()) return;
  {
    // Containers are made anew at each start (a stopped one stays stopped).
    std::lock_guard lock(routes_mutex_);
    std::unordered_map<std::string, std::shared_ptr<Topic>> topics;
    for (const auto& [name, topic] : routes_->topics) {
      auto fresh = std::make_shared<Topic>();
      fresh->name = topic->name;
      fresh->next_offset = topic->next_offset;
      topics.emplace(name, std::move(fresh));
    }
    for (const auto& subscription : subscriptions_) {
      auto& topic = topics[subscription.topic];
      if (!topic) {
        topic = std::make_shared<Topic>();
        topic->name = subscription.topic;
      }
      add_member(*topic, subscription.group, make_container(subscription));
    }
    auto routes = std::make_shared<Routes>();
    // No delivery is under way (stop() waited for them; a publish refused before start() holds no
    // route): the routes of earlier runs can go.
    if (in_flight_.load() == 0) all_routes_.clear();
    for (auto& [name, topic] : topics) {
      all_routes_.push_back(topic);
      routes->topics.emplace(name, std::move(topic));
    }
    routes_ = std::move(routes);
    routes_generation_.store(route_generations.fetch_add(1) + 1);
    running_.store(true, std::memory_order_release);
  }
  detail::log().debug("in-memory broker started");
}

void InMemoryMessageBroker::stop() {
  const ListenerContainer::StopFromHandler from_handler;
  stopping_.store(true);
  const bool was_running = running_.exchange(false);
  // Containers first: a record waiting to be retried stops waiting (it is dropped, not settled).
  std::shared_ptr<const Routes> routes;
  {
    std::lock_guard lock(routes_mutex_);
    routes = routes_;
  }
  for (const auto& [name, topic] : routes->topics) {
    for (const auto& container : topic->broadcast) container->stop();
    for (const auto& group : topic->groups) {
      for (const auto& container : group.members) container->stop();
    }
  }
  {
    // Deliveries this thread is inside of (stop() called from a handler) cannot finish first.
    std::unique_lock lock(idle_mutex_);
    idle_.wait(lock, [this] { return in_flight_.load() <= deliveries_on_this_thread; });
  }
  stopping_.store(false);
  if (was_running) detail::log().debug("in-memory broker stopped");
}

void InMemoryMessageBroker::subscribe(Subscription subscription) {
  if (!subscription.handler && !subscription.batch_handler) throw BrokerError("subscribe to '" + subscription.topic + "': the handler is empty");
  ListenerContainer::check(subscription);
  if (subscription.group && subscription.group->empty()) subscription.group.reset();  // "" means none, as in PyFly
  std::lock_guard lock(routes_mutex_);
  auto routes = std::make_shared<Routes>(*routes_);
  auto found = routes->topics.find(subscription.topic);
  auto updated = found != routes->topics.end() ? std::make_shared<Topic>(*found->second) : std::make_shared<Topic>();
  updated->name = subscription.topic;
  if (running_.load()) add_member(*updated, subscription.group, make_container(subscription));
  all_routes_.push_back(updated);
  routes->topics.insert_or_assign(subscription.topic, std::move(updated));
  routes_ = std::move(routes);
  routes_generation_.store(route_generations.fetch_add(1) + 1);
  subscriptions_.push_back(std::move(subscription));
}

std::shared_ptr<const InMemoryMessageBroker::Topic> InMemoryMessageBroker::find_or_add_topic(std::string_view topic) {
  std::lock_guard lock(routes_mutex_);
  auto found = routes_->topics.find(topic);
  if (found != routes_->topics.end()) return found->second;
  auto routes = std::make_shared<Routes>(*routes_);
  auto created = std::make_shared<Topic>();
  created->name = std::string(topic);
  all_routes_.push_back(created);
  routes->topics.emplace(std::string(topic), created);
  routes_ = std::move(routes);
  routes_generation_.store(route_generations.fetch_add(1) + 1);
  return created;
}

void InMemoryMessageBroker::deliver(std::string_view topic, std::string&& value, PublishOptions&& options,
                                    DeliveryResult* result) {
  propagate_trace(options.headers);
  if (!observer_) {
    dispatch(topic, std::move(value), std::move(options), result);
    return;
  }
  // Told once the subscribers were served. Only a refused publish is a failure: an exception a
  // subscriber's handler let out is not the publish's.
  const auto started = std::chrono::steady_clock::now();
  const Headers headers = options.headers;
  const auto tell = [&](bool ok) {
    observer_->on_publish(
        {.topic = topic, .ok = ok, .duration = std::chrono::steady_clock::now() - started, .headers = &headers});
  };
  const bool refused = !running_.load();  // dispatch() throws
  try {
    dispatch(topic, std::move(value), std::move(options), result);
  } catch (...) {
    tell(!refused);
    throw;
  }
  tell(true);
}

void InMemoryMessageBroker::dispatch(std::string_view topic, std::string&& value, PublishOptions&& options,
                                     DeliveryResult* result) {
  // Counted before running_ is read (both sequentially consistent): stop() either refuses this
  // delivery or waits for it.
  in_flight_.fetch_add(1);
  ++deliveries_on_this_thread;
  struct Done {
    InMemoryMessageBroker& broker;
    ~Done() {
      --deliveries_on_this_thread;
      broker.in_flight_.fetch_sub(1);
      if (broker.stopping_.load()) {
        std::lock_guard lock(broker.idle_mutex_);
        broker.idle_.notify_all();
      }
    }
  } done{*this};
  if (!running_.load()) {
    throw BrokerError("in-memory broker: cannot publish to '" + std::string(topic) +
                      "' before start() (or after stop())");
  }
  // The route: this thread's last one while the routes did not change, else looked up.
  const Topic* route = nullptr;
  if (route_cache.generation == routes_generation_.load() && route_cache.route != nullptr &&
      static_cast<const Topic*>(route_cache.route)->name == topic) {
    route = static_cast<const Topic*>(route_cache.route);
  } else {
    std::uint64_t generation = 0;
    {
      std::lock_guard lock(routes_mutex_);
      generation = routes_generation_.load();
      auto found = routes_->topics.find(topic);
      if (found != routes_->topics.end()) route = found->second.get();
    }
    if (route != nullptr) {
      route_cache.generation = generation;
      route_cache.route = route;
    } else {
      route = find_or_add_topic(topic).get();  // a new generation: looked up again next time
    }
  }

  Message message{.topic = route->name,
                  .value = std::move(value),
                  .key = std::move(options.key),
                  .headers = std::move(options.headers),
                  .partition = options.partition.value_or(0),
                  .offset = route->next_offset->fetch_add(1, std::memory_order_relaxed),
                  .timestamp_ms = now_ms()};
  if (result != nullptr) {
    result->topic = route->name;
    result->partition = message.partition;
    result->offset = message.offset;
  }
  if (options_.record_published) {
    std::lock_guard lock(record_mutex_);
    record_.push_back(message);
    if (options_.max_published > 0 && record_.size() > options_.max_published) record_.pop_front();
  }

  // Every subscriber gets its delivery even when an earlier one throws; the first error comes out.
  std::exception_ptr first_error;
  auto call = [&](ListenerContainer& container) {
    try {
      container.deliver(message);
    } catch (...) {
      if (!first_error) first_error = std::current_exception();
    }
  };
  for (const auto& container : route->broadcast) call(*container);
  for (const auto& group : route->groups) {
    auto index = group.next->fetch_add(1, std::memory_order_relaxed) % group.members.size();
    call(*group.members[index]);
  }
  if (first_error) std::rethrow_exception(first_error);
}

DeliveryResult InMemoryMessageBroker::publish(std::string_view topic, std::string_view value, PublishOptions options) {
  DeliveryResult result;
  deliver(topic, std::string(value), std::move(options), &result);
  return result;
}

void InMemoryMessageBroker::publish_async(std::string_view topic, std::string value, PublishOptions options,
                                          DeliveryCallback done) {
  DeliveryResult result;
  std::optional<BrokerError> error;
  try {
    deliver(topic, std::move(value), std::move(options), &result);
  } catch (const BrokerError& e) {
    error.emplace(e);
  } catch (const std::exception& e) {
    error.emplace(e.what());
  } catch (...) {
    error.emplace("publish to '" + std::string(topic) + "' failed: unknown error");
  }
  const DeliveryReport report{error ? topic : std::string_view(result.topic), result.partition, result.offset,
                              error ? &*error : nullptr};
  try {
    if (done) done(report);
  } catch (const std::exception& e) {
    detail::log().error("delivery callback for '{}' threw: {}", topic, e.what());
  } catch (...) {
    detail::log().error("delivery callback for '{}' threw", topic);
  }
}

bool InMemoryMessageBroker::flush(std::chrono::milliseconds /*timeout*/) { return true; }

void InMemoryMessageBroker::transaction(const std::function<void(TransactionalPublisher&)>& body) {
  struct Pending final : TransactionalPublisher {
    struct Record {
      std::string topic;
      std::string value;
      PublishOptions options;
    };
    std::vector<Record> records;
    void publish(std::string_view topic, std::string_view value, PublishOptions options) override {
      propagate_trace(options.headers);  // here: the publisher's trace, not the commit's
      records.push_back({std::string(topic), std::string(value), std::move(options)});
    }
    bool flush(std::chrono::milliseconds /*timeout*/) override { return true; }  // held until the commit
  };
  const std::lock_guard lock(transaction_mutex_);
  if (!running_.load()) throw BrokerError("in-memory broker: cannot begin a transaction before start() (or after stop())");
  Pending pending;
  body(pending);  // an exception aborts: nothing was delivered
  for (auto& record : pending.records) deliver(record.topic, std::move(record.value), std::move(record.options), nullptr);
}

std::future<DeliveryResult> InMemoryMessageBroker::publish_async(std::string_view topic, std::string value,
                                                                 PublishOptions options) {
  std::promise<DeliveryResult> promise;
  try {
    DeliveryResult result;
    deliver(topic, std::move(value), std::move(options), &result);
    promise.set_value(std::move(result));
  } catch (...) {
    promise.set_exception(std::current_exception());
  }
  return promise.get_future();
}

void InMemoryMessageBroker::observe(std::shared_ptr<MessagingObserver> observer) {
  if (running_.load()) throw BrokerError("in-memory broker: observe() must come before start()");
  observer_ = std::move(observer);
}

BrokerStatus InMemoryMessageBroker::status() const {
  BrokerStatus status{.reachable = running_.load(), .detail = "in-memory", .producer_queue = 0, .listeners = {}};
  std::shared_ptr<const Routes> routes;
  {
    std::lock_guard lock(routes_mutex_);
    routes = routes_;
  }
  const auto add = [&](const ListenerContainer& container) {
    const Subscription& s = container.subscription();
    std::string name = s.container.failure.listener_name;
    if (name.empty()) name.append("'").append(s.topic).append("'");
    status.listeners.push_back({.listener = std::move(name),
                                .topic = s.topic,
                                .group = s.group.value_or(""),
                                .buffered = container.buffered(),
                                .retries_waiting = container.retries_waiting(),
                                .assigned = 1,
                                .lag = {}});
  };
  for (const auto& [name, topic] : routes->topics) {
    for (const auto& container : topic->broadcast) add(*container);
    for (const auto& group : topic->groups) {
      for (const auto& container : group.members) add(*container);
    }
  }
  return status;
}

std::vector<Message> InMemoryMessageBroker::published() const {
  std::lock_guard lock(record_mutex_);
  return {record_.begin(), record_.end()};
}

std::vector<Message> InMemoryMessageBroker::published(std::string_view topic) const {
  std::lock_guard lock(record_mutex_);
  std::vector<Message> out;
  for (const auto& m : record_)
    if (m.topic == topic) out.push_back(m);
  return out;
}

void InMemoryMessageBroker::clear_published() {
  std::lock_guard lock(record_mutex_);
  record_.clear();
}

}  // namespace cppfly::messaging
