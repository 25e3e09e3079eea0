#include <cppfly/application.hpp>

#include <cppfly/messaging/broker_factory.hpp>
#include <cppfly/messaging/dead_letter.hpp>
#include <cppfly/messaging/payload_logging.hpp>
#include <cppfly/messaging/span_logger.hpp>
#include <cppfly/messaging/trace_context.hpp>

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string_view>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "actuator.hpp"
#include "cppfly/detail/log.hpp"

namespace cppfly {

namespace {

constexpr int exit_ok = 0;
constexpr int exit_failure = 1;
constexpr int exit_config = 2;
constexpr int exit_broker = 3;

constexpr std::string_view usage =
    "usage: %s [--config PATH] [--profile NAME[,NAME...]]\n"
    "  --config PATH    the PyFly-style YAML or TOML file (default: config/pyfly.yaml, config/pyfly.toml,\n"
    "                   pyfly.yaml, pyfly.toml in the working directory, whichever exist)\n"
    "  --profile NAME   layer pyfly-NAME.yaml/.toml over it (also PYFLY_PROFILES_ACTIVE)\n";

/// Blocks SIGINT/SIGTERM in the calling thread (so in every thread it starts later) and turns them
/// into Application::request_stop() on a thread of its own. That thread keeps taking signals until
/// the stop is over: a second SIGINT/SIGTERM while stopping is logged and does not cut the stop short
/// or change the exit code. Signals still pending when it is released are taken, not delivered, so
/// lifting the mask cannot end the process with the signal's default action after a clean stop.
class StopSignals {
 public:
  explicit StopSignals(Application& app) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, &previous_);
    waiter_ = std::thread([this, &app] {
      bool stopping = false;
      for (;;) {
        int signal = 0;
        if (sigwait(&set_, &signal) != 0) continue;
        if (released_) return;
        const char* name = signal == SIGINT ? "SIGINT" : "SIGTERM";
        if (!stopping) {
          detail::log().info("received {}, stopping", name);
          app.request_stop();
          stopping = true;
        } else {
          detail::log().info("received {} again while stopping; the stop goes on", name);
        }
      }
    });
  }
  ~StopSignals() {
    released_ = true;
    pthread_kill(waiter_.native_handle(), SIGTERM);  // wakes sigwait; the waiter sees released_
    waiter_.join();
    const timespec now{};
    while (sigtimedwait(&set_, nullptr, &now) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  sigset_t set_{};
  sigset_t previous_{};
  std::atomic<bool> released_{false};
  std::thread waiter_;
};

int fail(int code, std::string_view reason) {
  std::fprintf(stderr, "cppfly: %.*s\n", static_cast<int>(reason.size()), reason.data());
  return code;
}

}  // namespace

config::LoadOptions Application::parse_arguments(int argc, char** argv) {
  config::LoadOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value_of = [&](std::string_view flag) -> std::optional<std::string> {
      if (arg == flag) {
        if (i + 1 >= argc) throw config::ConfigError(fmt::format("{} needs a value", flag));
        return std::string(argv[++i]);
      }
      if (arg.starts_with(flag) && arg.size() > flag.size() && arg[flag.size()] == '=')
        return std::string(arg.substr(flag.size() + 1));
      return std::nullopt;
    };
    if (auto path = value_of("--config")) {
      options.path = *path;
      options.path_given = true;
    } else if (auto profile = value_of("--profile")) {
      options.profile = *profile;
    } else {
      throw config::ConfigError(fmt::format("unknown argument '{}' (allowed: --config PATH, --profile NAME)", arg));
    }
  }
  return options;
}

int Application::run(int argc, char** argv) noexcept {
  try {
    for (int i = 1; i < argc; ++i) {
      if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
        std::printf(usage.data(), argc > 0 ? argv[0] : "service");
        return exit_ok;
      }
    }
    std::optional<config::Config> config;
    try {
      config = config::Config::load(parse_arguments(argc, argv));
    } catch (const config::ConfigError& e) {
      return fail(exit_config, e.what());
    }
    Application app(std::move(*config));
    StopSignals signals(app);
    try {
      app.start();
    } catch (const config::ConfigError& e) {
      app.stop();
      return fail(exit_config, e.what());
    } catch (const messaging::BrokerError& e) {
      app.stop();
      return fail(exit_broker, e.what());
    } catch (const std::exception& e) {
      app.stop();
      return fail(exit_failure, e.what());
    }
    app.wait();
    app.stop();
    return app.exit_code();
  } catch (const std::exception& e) {
    return fail(exit_failure, e.what());
  } catch (...) {
    return fail(exit_failure, "unknown error");
  }
}

Application::Application(config::Config config, messaging::ListenerRegistry& registry)
    : config_(std::move(config)), registry_(registry) {
  messaging::set_log_payloads(config_.messaging().log_payloads);
  const std::string& tracing = config_.messaging().trace_propagation;
  messaging::set_trace_propagation(tracing == "off"      ? messaging::TracePropagation::off
                                   : tracing == "always" ? messaging::TracePropagation::always
                                                         : messaging::TracePropagation::continued);
}

Application::Application(int argc, char** argv, messaging::ListenerRegistry& registry)
    : Application(config::Config::load(parse_arguments(argc, argv)), registry) {}

Application::~Application() {
  try {
    stop();
  } catch (const std::exception& e) {
    detail::log().error("stop failed: {}", e.what());
  } catch (...) {
    detail::log().error("stop failed");
  }
}

void Application::bind_instance(std::type_index type, void* instance) {
  if (running_) throw ApplicationError("bind() must come before start()");
  instances_.insert_or_assign(type, instance);
}

void Application::use_broker(std::unique_ptr<messaging::MessageBrokerPort> broker) {
  if (running_) throw ApplicationError("use_broker() must come before start()");
  broker_ = std::move(broker);
}

void Application::add_observer(std::shared_ptr<messaging::MessagingObserver> observer) {
  if (bound_) throw ApplicationError("add_observer() must come before the first start()");
  observers_->add(std::move(observer));
}

config::ConfigError Application::located(const config::ConfigError& error) const {
  const auto& values = config_.values();
  if (error.key().empty()) return error;
  // A pass-through property is set under its own key; else take the nearest enclosing key that was set.
  std::string key = error.key();
  while (!key.empty()) {
    if (auto it = values.find(key); it != values.end()) {
      return config::ConfigError(it->second.origin.describe() + ": " + error.what(), error.key());
    }
    const auto dot = key.rfind('.');
    if (dot == std::string::npos) break;
    key.resize(dot);
  }
  return error;
}

messaging::MessageBrokerPort& Application::broker() {
  if (!broker_) {
    try {
      broker_ = messaging::BrokerFactory::with_builtin_adapters().create(config_.messaging());
    } catch (const config::ConfigError& e) {
      throw located(e);
    }
  }
  return *broker_;
}

void Application::bind_listeners() {
  std::vector<std::string> problems = registry_.problems();
  // Member listeners need an instance: one the caller bound, or a CPPFLY_SERVICE the application owns.
  for (const auto& listener : registry_.listeners()) {
    if (!listener.is_member() || instances_.contains(listener.owner)) continue;
    auto service = std::find_if(registry_.services().begin(), registry_.services().end(),
                                [&](const auto& s) { return s.type == listener.owner; });
    if (service == registry_.services().end()) {
      problems.push_back(fmt::format("listener '{}' ({}:{}) needs an instance of {}: call app.bind(instance) before "
                                     "start(), or declare CPPFLY_SERVICE({})",
                                     listener.name, listener.location.file, listener.location.line,
                                     listener.owner_name, listener.owner_name));
      continue;
    }
    owned_services_.push_back(service->create());
    instances_.emplace(listener.owner, owned_services_.back().get());
  }
  if (!problems.empty()) throw ApplicationError(fmt::format("{}", fmt::join(problems, "; ")));

  auto& port = broker();
  const auto& bounds = config_.messaging().listener;
  for (const auto& listener : registry_.listeners()) {
    const auto& options = listener.options;
    void* instance = listener.is_member() ? instances_.at(listener.owner) : nullptr;
    const messaging::ContainerOptions container{
        .ordering = options.ordering,
        .concurrency = options.concurrency,
        .failure = {.retry = {.retries = options.retries, .delay = options.retry_delay, .backoff = options.backoff},
                    .dead_letter_topic = options.dead_letter_topic,
                    .listener_name = listener.name,
                    .group = options.group_id},
        .max_buffered_records = bounds.max_buffered_records,
        .max_buffered_bytes = bounds.max_buffered_bytes,
        .shutdown_timeout = bounds.shutdown_timeout,
        .transactional = options.transactional,
        .batch_max_records = options.batch_max_records,
        .batch_max_wait = options.batch_max_wait,
        .observer = observers_->empty() ? nullptr : observers_};
    auto handler = listener.make_handler(instance);
    messaging::BatchHandler batch_handler;
    if (listener.is_batch()) batch_handler = listener.make_batch_handler(instance);
    std::optional<std::string> group;
    if (!options.group_id.empty()) group = options.group_id;
    for (const auto& topic : options.all_topics()) {
      port.subscribe(messaging::Subscription{
          .topic = topic, .handler = handler, .group = group, .container = container, .batch_handler = batch_handler});
    }
  }
  detail::log().info("{} listener(s) bound", registry_.listeners().size());
  for (const auto& line : registry_.describe()) detail::log().info("  {}", line);
}

void Application::run_hooks(messaging::HookPhase phase) {
  for (const auto& hook : registry_.hooks()) {
    if (hook.phase != phase) continue;
    if (phase == messaging::HookPhase::after_start) {
      hook.run(*this);  // a failing start hook fails start()
      continue;
    }
    try {
      hook.run(*this);
    } catch (const std::exception& e) {
      detail::log().error("before-stop hook '{}' failed: {}", hook.name, e.what());
    }
  }
}

void Application::start() {
  if (running_) return;
  if (!config_.sources().empty()) detail::log().info("config: read {}", fmt::join(config_.sources(), ", "));
  for (const auto& warning : config_.warnings()) detail::log().warn("config: {}", warning);
  if (detail::log().should_log(spdlog::level::debug)) {
    for (const auto& line : config_.describe()) detail::log().debug("config: {}", line);
  }
  if (!bound_) {
    make_actuator();
    // Spans as debug lines when the "cppfly" logger is at debug level (SPDLOG_LEVEL=debug or cppfly=debug).
    if (detail::log().should_log(spdlog::level::debug)) observers_->add(std::make_shared<messaging::SpanLogger>());
    if (!observers_->empty()) broker().observe(observers_);
    bind_listeners();  // once: adapters keep their subscriptions across stop() and start()
    bound_ = true;
  }
  if (actuator_) {
    try {
      actuator_->start();  // before the broker: a port in use fails the start at once
    } catch (const std::exception& e) {
      throw ApplicationError(e.what());
    }
  }
  try {
    broker().start();
  } catch (const config::ConfigError& e) {
    if (actuator_) actuator_->stop();
    throw located(e);
  } catch (...) {
    if (actuator_) actuator_->stop();
    throw;
  }
  running_ = true;
  stopped_ = false;
  run_hooks(messaging::HookPhase::after_start);
  if (actuator_) actuator_->set_ready(true);
}

void Application::make_actuator() {
  const auto& management = config_.management();
  if (!management.enabled()) return;
  detail::ActuatorSources sources;
  if (management.exposes("prometheus")) {
    sources.metrics = std::make_shared<messaging::PrometheusMetrics>();
    observers_->add(sources.metrics);
  }
  auto& port = broker();
  sources.status = [&port] { return port.status(); };
  nlohmann::json listeners = nlohmann::json::array();
  for (const auto& l : registry_.listeners()) {
    const auto& o = l.options;
    listeners.push_back({{"name", l.name},
                         {"topics", o.all_topics()},
                         {"group", o.group_id},
                         {"retries", o.retries},
                         {"deadLetterTopic", o.dead_letter_topic},
                         {"concurrency", o.concurrency},
                         {"ordering", std::string(to_string(o.ordering))}});
  }
  std::string provider(to_string(config_.messaging().provider));
  sources.info = {{"build", {{"name", "cppfly"}, {"version", CPPFLY_VERSION}, {"compiler", __VERSION__}}},
                  {"messaging", {{"provider", provider}}},
                  {"listeners", std::move(listeners)}};
  actuator_ = std::make_unique<detail::Actuator>(management, std::move(sources));
}

int Application::management_port() const noexcept { return actuator_ ? actuator_->port() : -1; }

void Application::stop() {
  if (!running_ || stopped_) return;
  stopped_ = true;
  if (actuator_) actuator_->set_ready(false);  // readiness: REFUSING_TRAFFIC while stopping
  run_hooks(messaging::HookPhase::before_stop);
  broker_->stop();
  if (actuator_) actuator_->stop();
  running_ = false;
  detail::log().info("stopped");
}

void Application::request_stop(int exit_code) noexcept {
  {
    std::lock_guard lock(stop_mutex_);
    if (!stop_requested_) exit_code_ = exit_code;
    stop_requested_ = true;
  }
  stop_cv_.notify_all();
}

int Application::exit_code() const noexcept {
  std::lock_guard lock(stop_mutex_);
  return exit_code_;
}

void Application::wait() {
  std::unique_lock lock(stop_mutex_);
  stop_cv_.wait(lock, [this] { return stop_requested_; });
}

}  // namespace cppfly
