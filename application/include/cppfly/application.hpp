// Application: load config, build the broker, bind listeners, start, wait for SIGINT/SIGTERM, stop.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <typeindex>
#include <unordered_map>
#include <vector>

#include <cppfly/config/config.hpp>
#include <cppfly/messaging/broker_port.hpp>
#include <cppfly/messaging/listener_registry.hpp>
#include <cppfly/messaging/observer.hpp>
#include <cppfly/messaging/retry_policy.hpp>

namespace cppfly {

namespace detail {
class Actuator;
}

/// A problem that keeps the application from starting (bad registrations, unbound services, ...).
class ApplicationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Application {
 public:
  /// The whole lifecycle for main(): --config PATH, --profile NAME. Returns the exit code:
  /// 0 after a clean stop; 2 bad usage or config; 3 the broker could not start; 1 anything else.
  static int run(int argc, char** argv) noexcept;

  /// Parses --config / --profile and loads the configuration (throws config::ConfigError).
  static config::LoadOptions parse_arguments(int argc, char** argv);

  explicit Application(config::Config config,
                       messaging::ListenerRegistry& registry = messaging::ListenerRegistry::global());
  /// The configuration as run() loads it, in one line: `Application app(argc, argv);` reads
  /// --config PATH / --profile NAME (parse_arguments, then config::Config::load). Throws
  /// config::ConfigError for bad usage or bad config; --help is run()'s alone.
  Application(int argc, char** argv,
              messaging::ListenerRegistry& registry = messaging::ListenerRegistry::global());
  ~Application();
  Application(const Application&) = delete;
  Application& operator=(const Application&) = delete;

  /// Binds the member listeners of T to an instance the caller owns (call before start()).
  template <class T>
  void bind(T& instance) {
    bind_instance(typeid(T), &instance);
  }
  /// Uses this broker instead of the configured one (call before start()).
  void use_broker(std::unique_ptr<messaging::MessageBrokerPort> broker);
  /// Tells `observer` of every publish through the broker and every handler attempt of the bound
  /// listeners (OpenTelemetry spans, custom metrics). Call before the first start().
  void add_observer(std::shared_ptr<messaging::MessagingObserver> observer);

  /// Builds the broker (if not given), binds every listener, starts the broker, runs the after-start hooks.
  void start();
  /// Runs the before-stop hooks and stops the broker (flushes, commits). Idempotent.
  void stop();
  /// Asks wait() to return; safe from any thread, hooks and handlers included. Application::run
  /// then stops and returns `exit_code` (a service that finished its work may end itself this way).
  void request_stop(int exit_code = 0) noexcept;
  /// Blocks until request_stop() (Application::run also maps SIGINT/SIGTERM to it).
  void wait();

  /// The broker (built from the config on first use).
  [[nodiscard]] messaging::MessageBrokerPort& broker();
  [[nodiscard]] const config::Config& config() const noexcept { return config_; }
  [[nodiscard]] bool running() const noexcept { return running_; }
  /// The management server's port while it runs (pyfly.management.server.port, or the free port
  /// picked for 0); -1 when there is none.
  [[nodiscard]] int management_port() const noexcept;
  /// The code given to request_stop() (0 when stopped by a signal).
  [[nodiscard]] int exit_code() const noexcept;

 private:
  void bind_instance(std::type_index type, void* instance);
  void bind_listeners();
  void run_hooks(messaging::HookPhase phase);
  void make_actuator();
  [[nodiscard]] config::ConfigError located(const config::ConfigError& error) const;

  config::Config config_;
  messaging::ListenerRegistry& registry_;
  std::unique_ptr<messaging::MessageBrokerPort> broker_;
  std::shared_ptr<messaging::ObserverList> observers_{std::make_shared<messaging::ObserverList>()};
  std::unique_ptr<detail::Actuator> actuator_;  ///< pyfly.management: made at the first start()
  std::unordered_map<std::type_index, void*> instances_;
  std::vector<std::shared_ptr<void>> owned_services_;
  bool running_{false};
  bool bound_{false};
  bool stopped_{false};
  mutable std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stop_requested_{false};
  int exit_code_{0};
};

}  // namespace cppfly
