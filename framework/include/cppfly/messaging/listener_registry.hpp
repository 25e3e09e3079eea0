// ListenerRegistry: every listener, service and lifecycle hook the macros declared.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <typeindex>
#include <vector>

#include <cppfly/messaging/broker_port.hpp>
#include <cppfly/messaging/listener_options.hpp>

namespace cppfly {
class Application;
}

namespace cppfly::messaging {

/// Where a declaration stands in the source, for reports.
struct SourceLocation {
  const char* file{""};
  int line{0};
};

/// One listener: a free function, or a member function that needs an instance of `owner`.
struct ListenerDefinition {
  std::string name{};
  ListenerOptions options{};
  SourceLocation location{};
  std::type_index owner{typeid(void)};  ///< typeid(void) for a free function
  std::string owner_name{};
  /// Builds the raw handler; `instance` points to an `owner` (nullptr for free functions).
  std::function<MessageHandler(void* instance)> make_handler{};
  /// Batch listeners: builds the batch handler (then make_handler runs a batch of one record).
  std::function<BatchHandler(void* instance)> make_batch_handler{};

  [[nodiscard]] bool is_member() const noexcept { return owner != typeid(void); }
  [[nodiscard]] bool is_batch() const noexcept { return static_cast<bool>(make_batch_handler); }
};

/// When a lifecycle hook runs.
enum class HookPhase { after_start, before_stop };

struct LifecycleHook {
  std::string name{};
  HookPhase phase{HookPhase::after_start};
  SourceLocation location{};
  std::function<void(Application&)> run{};
};

/// A service class the application constructs (owns) so its member listeners can be bound.
struct ServiceDefinition {
  std::type_index type{typeid(void)};
  std::string name{};
  SourceLocation location{};
  std::function<std::shared_ptr<void>()> create{};
};

/// Holds the declarations. Registration never throws: problems are recorded and reported at start.
class ListenerRegistry {
 public:
  /// The process-wide registry the macros fill; created on first use.
  static ListenerRegistry& global() noexcept;

  void add(ListenerDefinition listener) noexcept;
  void add(LifecycleHook hook) noexcept;
  void add(ServiceDefinition service) noexcept;

  [[nodiscard]] const std::vector<ListenerDefinition>& listeners() const noexcept { return listeners_; }
  [[nodiscard]] const std::vector<LifecycleHook>& hooks() const noexcept { return hooks_; }
  [[nodiscard]] const std::vector<ServiceDefinition>& services() const noexcept { return services_; }
  /// Duplicate names (with both file:line), listeners without a topic, bad options, ...
  [[nodiscard]] const std::vector<std::string>& problems() const noexcept { return problems_; }
  /// One line per listener: name, topics, group, retries, dead-letter topic, where declared.
  [[nodiscard]] std::vector<std::string> describe() const;

 private:
  void record_problem(std::string problem) noexcept;

  std::vector<ListenerDefinition> listeners_;
  std::vector<LifecycleHook> hooks_;
  std::vector<ServiceDefinition> services_;
  std::vector<std::string> problems_;
};

}  // namespace cppfly::messaging
