#include <cppfly/messaging/in_memory_broker.hpp>

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

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

/// One group of one topic: its members and the round-robin cursor (shared across snapshots).
struct Group {
  std::string name;
  std::vector<MessageHandler> members;
  std::shared_ptr<std::atomic<std::uint64_t>> next = std::make_shared<std::atomic<std::uint64_t>>(0);
};

}  // namespace

/// The subscribers of one topic (immutable once published in a snapshot) and its offset counter.
struct InMemoryMessageBroker::Topic {
  std::string name;
  std::vector<MessageHandler> broadcast;
  std::vector<Group> groups;
  std::shared_ptr<std::atomic<std::int64_t>> next_offset = std::make_shared<std::atomic<std::int64_t>>(0);
};

struct InMemoryMessageBroker::Routes {
  std::unordered_map<std::string, std::shared_ptr<const Topic>, StringHash, std::equal_to<>> topics;
};

InMemoryMessageBroker::InMemoryMessageBroker(InMemoryBrokerOptions options)
    : options_(options), routes_(std::make_shared<const Routes>()) {}

InMemoryMessageBroker::~InMemoryMessageBroker() = default;

void InMemoryMessageBroker::start() {
  running_.store(true, std::memory_order_release);
  detail::log().debug("in-memory broker started");
}

void InMemoryMessageBroker::stop() {
  stopping_.store(true);
  const bool was_running = running_.exchange(false);
  {
    // Deliveries this thread is inside of (stop() called from a handler) cannot finish first.
    std::unique_lock lock(idle_mutex_);
    idle_.wait(lock, [this] { return in_flight_.load() <= deliveries_on_this_thread; });
  }
  stopping_.store(false);
  if (was_running) detail::log().debug("in-memory broker stopped");
}

void InMemoryMessageBroker::subscribe(std::string_view topic, MessageHandler handler,
                                      std::optional<std::string> group) {
  if (!handler) throw BrokerError("subscribe to '" + std::string(topic) + "': the handler is empty");
  std::lock_guard lock(routes_mutex_);
  auto routes = std::make_shared<Routes>(*routes_);
  auto found = routes->topics.find(topic);
  auto updated = found != routes->topics.end() ? std::make_shared<Topic>(*found->second) : std::make_shared<Topic>();
  updated->name = std::string(topic);
  if (!group) {
    updated->broadcast.push_back(std::move(handler));
  } else {
    auto it = std::find_if(updated->groups.begin(), updated->groups.end(),
                           [&](const Group& g) { return g.name == *group; });
    if (it == updated->groups.end()) {
      updated->groups.push_back(Group{.name = *group, .members = {}});
      it = std::prev(updated->groups.end());
    }
    it->members.push_back(std::move(handler));
  }
  routes->topics.insert_or_assign(std::string(topic), std::move(updated));
  routes_ = std::move(routes);
}

std::shared_ptr<const InMemoryMessageBroker::Topic> InMemoryMessageBroker::find_or_add_topic(std::string_view topic) {
  std::lock_guard lock(routes_mutex_);
  auto found = routes_->topics.find(topic);
  if (found != routes_->topics.end()) return found->second;
  auto routes = std::make_shared<Routes>(*routes_);
  auto created = std::make_shared<Topic>();
  created->name = std::string(topic);
  routes->topics.emplace(std::string(topic), created);
  routes_ = std::move(routes);
  return created;
}

void InMemoryMessageBroker::deliver(std::string_view topic, std::string value, PublishOptions options,
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
  std::shared_ptr<const Topic> route;
  {
    std::lock_guard lock(routes_mutex_);
    auto found = routes_->topics.find(topic);
    if (found != routes_->topics.end()) route = found->second;
  }
  if (!route) route = find_or_add_topic(topic);

  Message message{.topic = route->name,
                  .value = std::move(value),
                  .key = std::move(options.key),
                  .headers = std::move(options.headers),
                  .partition = options.partition.value_or(0),
                  .offset = route->next_offset->fetch_add(1, std::memory_order_relaxed),
                  .timestamp_ms = now_ms()};
  if (result != nullptr) *result = {.topic = message.topic, .partition = message.partition, .offset = message.offset};
  if (options_.record_published) {
    std::lock_guard lock(record_mutex_);
    record_.push_back(message);
  }

  // Every subscriber gets its delivery even when an earlier one throws; the first error comes out.
  std::exception_ptr first_error;
  auto call = [&](const MessageHandler& handler) {
    try {
      handler(message);
    } catch (...) {
      if (!first_error) first_error = std::current_exception();
    }
  };
  for (const auto& handler : route->broadcast) call(handler);
  for (const auto& group : route->groups) {
    auto index = group.next->fetch_add(1, std::memory_order_relaxed) % group.members.size();
    call(group.members[index]);
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

std::vector<Message> InMemoryMessageBroker::published() const {
  std::lock_guard lock(record_mutex_);
  return record_;
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
