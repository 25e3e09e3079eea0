// The management server: Spring Boot's / PyFly's actuator endpoints (health, health/liveness,
// health/readiness, info, prometheus) over HTTP on pyfly.management.server.port. Internal: the
// Application makes, starts and stops it.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include <cppfly/config/properties.hpp>
#include <cppfly/messaging/broker_status.hpp>
#include <cppfly/messaging/prometheus_metrics.hpp>

namespace httplib {
class Server;
}

namespace cppfly::detail {

/// What the endpoints read.
struct ActuatorSources {
  std::function<messaging::BrokerStatus()> status;       ///< the broker's status, read per request
  std::shared_ptr<messaging::PrometheusMetrics> metrics;  ///< null: no prometheus endpoint
  nlohmann::json info;                                    ///< the info endpoint's document
};

/// Health, in Spring Boot's shape: {"status": "UP"|"DOWN", "components": {...}}.
struct Health {
  bool up{true};
  nlohmann::json body;
};

class Actuator {
 public:
  Actuator(config::ManagementProperties properties, ActuatorSources sources);
  /// stop()s.
  ~Actuator();
  Actuator(const Actuator&) = delete;
  Actuator& operator=(const Actuator&) = delete;

  /// Binds the port (throws std::runtime_error naming address, port and key when it cannot) and
  /// serves on a thread of its own. Logs the address (and the port picked, for port 0).
  void start();
  /// Stops serving (requests under way finish) and joins its thread. Idempotent.
  void stop() noexcept;
  /// The port it listens on (after start()).
  [[nodiscard]] int port() const noexcept { return port_; }

  /// The application has started (readiness: ACCEPTING_TRAFFIC) or is stopping (REFUSING_TRAFFIC).
  void set_ready(bool ready) noexcept { ready_.store(ready); }

  /// The documents the endpoints serve (for the endpoints and for tests).
  [[nodiscard]] Health liveness() const;
  [[nodiscard]] Health readiness() const;
  [[nodiscard]] Health health() const;

 private:
  [[nodiscard]] Health readiness_of(const messaging::BrokerStatus& status) const;
  void route();

  config::ManagementProperties properties_;
  ActuatorSources sources_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_{-1};
  std::atomic<bool> ready_{false};
};

}  // namespace cppfly::detail
