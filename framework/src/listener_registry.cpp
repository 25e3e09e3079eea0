#include <cppfly/messaging/listener.hpp>
#include <cppfly/messaging/listener_registry.hpp>

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "type_name.hpp"

namespace cppfly::messaging {

namespace {

std::string at(const SourceLocation& location) { return fmt::format("{}:{}", location.file, location.line); }

}  // namespace

std::vector<std::string> ListenerOptions::all_topics() const {
  std::vector<std::string> out;
  auto add = [&](const std::string& t) {
    if (!t.empty() && std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  };
  add(topic);
  for (const auto& t : topics) add(t);
  return out;
}

ListenerRegistry& ListenerRegistry::global() noexcept {
  static ListenerRegistry registry;  // created on first use: no static-initialization-order trap
  return registry;
}

void ListenerRegistry::record_problem(std::string problem) noexcept {
  try {
    problems_.push_back(std::move(problem));
  } catch (...) {
    // Out of memory while recording: start() will fail for other reasons.
  }
}

void ListenerRegistry::add(ListenerDefinition listener) noexcept {
  try {
    const auto where = at(listener.location);
    for (const auto& other : listeners_) {
      if (other.name == listener.name) {
        record_problem(fmt::format("two listeners are named '{}': {} and {}", listener.name, at(other.location), where));
      }
    }
    const auto& o = listener.options;
    if (o.all_topics().empty()) record_problem(fmt::format("listener '{}' at {} names no topic", listener.name, where));
    if (o.retries < 0) record_problem(fmt::format("listener '{}' at {}: retries must be >= 0", listener.name, where));
    if (o.retry_delay.count() < 0)
      record_problem(fmt::format("listener '{}' at {}: retry_delay must be >= 0", listener.name, where));
    if (o.concurrency < 1)
      record_problem(fmt::format("listener '{}' at {}: concurrency must be >= 1", listener.name, where));
    if (o.concurrency > 1024)
      record_problem(fmt::format("listener '{}' at {}: concurrency {} is more than 1024 (each is a thread)",
                                 listener.name, where, o.concurrency));
    if (listener.is_batch()) {
      if (o.ordering != Ordering::partition)
        record_problem(fmt::format("listener '{}' at {} is a batch listener: its batches are one partition's records "
                                   "in offset order, so its ordering must be partition (not {})",
                                   listener.name, where, to_string(o.ordering)));
      if (o.transactional)
        record_problem(fmt::format("listener '{}' at {}: a batch listener cannot be transactional", listener.name, where));
      if (o.batch_max_records < 1)
        record_problem(fmt::format("listener '{}' at {}: batch_max_records must be >= 1", listener.name, where));
      if (o.batch_max_wait.count() < 0)
        record_problem(fmt::format("listener '{}' at {}: batch_max_wait must be >= 0", listener.name, where));
    }
    for (const auto& topic : o.all_topics()) {
      if (topic == o.dead_letter_topic)
        record_problem(fmt::format("listener '{}' at {}: dead_letter_topic '{}' is also a topic it listens to",
                                   listener.name, where, topic));
    }
    if (listener.is_member() && listener.owner_name.empty()) listener.owner_name = cppfly::detail::demangle(listener.owner.name());
    listeners_.push_back(std::move(listener));
  } catch (...) {
    record_problem("a listener could not be registered (out of memory)");
  }
}

void ListenerRegistry::add(LifecycleHook hook) noexcept {
  try {
    hooks_.push_back(std::move(hook));
  } catch (...) {
    record_problem("a lifecycle hook could not be registered (out of memory)");
  }
}

void ListenerRegistry::add(ServiceDefinition service) noexcept {
  try {
    for (const auto& other : services_) {
      if (other.type == service.type) {
        record_problem(fmt::format("service '{}' is declared twice: {} and {}", service.name, at(other.location),
                                   at(service.location)));
        return;
      }
    }
    services_.push_back(std::move(service));
  } catch (...) {
    record_problem("a service could not be registered (out of memory)");
  }
}

std::vector<std::string> ListenerRegistry::describe() const {
  std::vector<std::string> lines;
  for (const auto& l : listeners_) {
    const auto& o = l.options;
    const std::string batch =
        l.is_batch() ? fmt::format(" batch_max_records={} batch_max_wait={}ms", o.batch_max_records, o.batch_max_wait.count())
                     : std::string();
    lines.push_back(fmt::format("{} topics=[{}] group={} retries={} retry_delay={}ms dead_letter={} concurrency={} ordering={}{} ({})",
                                l.name, fmt::join(o.all_topics(), ","), o.group_id.empty() ? "-" : o.group_id,
                                o.retries, o.retry_delay.count(), o.dead_letter_topic.empty() ? "-" : o.dead_letter_topic,
                                o.concurrency, to_string(o.ordering), batch, at(l.location)));
  }
  return lines;
}

namespace detail {

void ListenerRegistrar::register_listener(const char* name, ListenerOptions options, const char* file, int line,
                                          const std::type_info& owner,
                                          std::function<MessageHandler(void*)> make,
                                          std::function<BatchHandler(void*)> make_batch) noexcept {
  try {
    ListenerDefinition listener{.name = name,
                                .options = std::move(options),
                                .location = {file, line},
                                .owner = owner,
                                .owner_name = {},
                                .make_handler = std::move(make),
                                .make_batch_handler = std::move(make_batch)};
    ListenerRegistry::global().add(std::move(listener));
  } catch (...) {
    // add() records its own problems; building the definition itself can only fail on allocation.
  }
}

HookRegistrar::HookRegistrar(const char* name, HookPhase phase, void (*function)(Application&), const char* file,
                             int line) noexcept {
  try {
    ListenerRegistry::global().add(LifecycleHook{.name = name, .phase = phase, .location = {file, line}, .run = function});
  } catch (...) {
  }
}

}  // namespace detail

}  // namespace cppfly::messaging
