#include "actuator.hpp"

#include <httplib.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "cppfly/detail/log.hpp"

namespace cppfly::detail {

namespace {

using nlohmann::json;

const char* status_text(bool up) { return up ? "UP" : "DOWN"; }

json component(bool up, json details = nullptr) {
  json c{{"status", status_text(up)}};
  if (!details.is_null()) c["details"] = std::move(details);
  return c;
}

/// Spring Boot answers a DOWN health with 503.
void send_health(httplib::Response& response, const Health& health) {
  response.status = health.up ? 200 : 503;
  response.set_content(health.body.dump(), "application/vnd.spring-boot.actuator.v3+json");
}

}  // namespace

Actuator::Actuator(config::ManagementProperties properties, ActuatorSources sources)
    : properties_(std::move(properties)), sources_(std::move(sources)) {}

Actuator::~Actuator() { stop(); }

Health Actuator::liveness() const {
  // The process answers, so its threads run; the broker's troubles are readiness', not liveness'.
  const bool up = true;
  return {up, json{{"status", status_text(up)}, {"components", {{"livenessState", component(up)}}}}};
}

Health Actuator::readiness_of(const messaging::BrokerStatus& status) const {
  json components = json::object();
  const bool accepting = ready_.load();
  components["readinessState"] = component(accepting, {{"state", accepting ? "ACCEPTING_TRAFFIC" : "REFUSING_TRAFFIC"}});

  // Reachable, or not known to be unreachable (an adapter that cannot tell).
  const bool broker_up = status.reachable.value_or(true);
  json broker_details{{"reachable", status.reachable ? json(*status.reachable) : json("unknown")}};
  if (!status.detail.empty()) broker_details["servers"] = status.detail;
  components["broker"] = component(broker_up, std::move(broker_details));

  // Every listener has partitions, or nothing to do.
  bool listeners_up = true;
  json listeners = json::object();
  bool lag_up = true;
  json partitions = json::object();
  for (const auto& l : status.listeners) {
    const bool up = !l.assigned || *l.assigned > 0 || l.buffered == 0;
    listeners_up = listeners_up && up;
    json details{{"status", status_text(up)}, {"topic", l.topic}, {"buffered", l.buffered},
                 {"retriesWaiting", l.retries_waiting}};
    if (!l.group.empty()) details["group"] = l.group;
    if (l.assigned) details["assignedPartitions"] = *l.assigned;
    std::string key = l.listener;
    if (listeners.contains(key)) key.append("/").append(l.topic);
    listeners[key] = std::move(details);
    for (const auto& p : l.lag) {
      const bool over = properties_.readiness_max_lag && p.lag > *properties_.readiness_max_lag;
      lag_up = lag_up && !over;
      partitions[fmt::format("{}/{}-{}", l.listener, p.topic, p.partition)] = p.lag;
    }
  }
  components["listeners"] = component(listeners_up, std::move(listeners));
  json lag_details{{"partitions", std::move(partitions)}};
  lag_details["maxLag"] = properties_.readiness_max_lag ? json(*properties_.readiness_max_lag) : json(nullptr);
  components["lag"] = component(lag_up, std::move(lag_details));

  const bool up = accepting && broker_up && listeners_up && lag_up;
  return {up, json{{"status", status_text(up)}, {"components", std::move(components)}}};
}

Health Actuator::readiness() const { return readiness_of(sources_.status()); }

Health Actuator::health() const {
  Health ready = readiness();
  const Health live = liveness();
  json components = std::move(ready.body["components"]);
  components["livenessState"] = live.body["components"]["livenessState"];
  const bool up = ready.up && live.up;
  return {up, json{{"status", status_text(up)}, {"components", std::move(components)},
                   {"groups", json::array({"liveness", "readiness"})}}};
}

void Actuator::route() {
  const std::string base = properties_.base_path;
  auto& s = *server_;
  const auto guarded = [](auto handler) {
    return [handler](const httplib::Request& request, httplib::Response& response) {
      try {
        handler(request, response);
      } catch (const std::exception& e) {
        response.status = 500;
        response.set_content(json{{"error", e.what()}}.dump(), "application/json");
      }
    };
  };
  json links = json::object();
  const auto link = [&](const std::string& id, const std::string& path) {
    links[id] = {{"href", path}, {"templated", false}};
  };
  if (properties_.exposes("health")) {
    s.Get(base + "/health", guarded([this](const auto&, auto& r) { send_health(r, health()); }));
    s.Get(base + "/health/liveness", guarded([this](const auto&, auto& r) { send_health(r, liveness()); }));
    s.Get(base + "/health/readiness", guarded([this](const auto&, auto& r) { send_health(r, readiness()); }));
    link("health", base + "/health");
    link("health-path", base + "/health/{*path}");
  }
  if (properties_.exposes("info")) {
    s.Get(base + "/info", guarded([this](const auto&, auto& r) {
            r.set_content(sources_.info.dump(), "application/vnd.spring-boot.actuator.v3+json");
          }));
    link("info", base + "/info");
  }
  if (properties_.exposes("prometheus") && sources_.metrics) {
    s.Get(base + "/prometheus", guarded([this](const auto&, auto& r) {
            r.set_content(sources_.metrics->render(sources_.status()), messaging::PrometheusMetrics::content_type);
          }));
    link("prometheus", base + "/prometheus");
  }
  link("self", base.empty() ? "/" : base);
  const json index{{"_links", links}};
  s.Get(base.empty() ? "/" : base, [index](const auto&, auto& r) {
    r.set_content(index.dump(), "application/vnd.spring-boot.actuator.v3+json");
  });
}

void Actuator::start() {
  if (server_) return;
  server_ = std::make_unique<httplib::Server>();
  server_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  // SO_REUSEADDR (a restart rebinds at once) but not httplib's default SO_REUSEPORT: a port that
  // another process listens on must be refused, not shared.
  server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  route();
  const auto& address = properties_.address;
  errno = 0;
  if (properties_.port == 0) {
    port_ = server_->bind_to_any_port(address);
  } else {
    port_ = server_->bind_to_port(address, properties_.port) ? properties_.port : -1;
  }
  if (port_ <= 0) {
    const int error = errno;
    server_.reset();
    std::string reason = error == EADDRINUSE ? "the port is in use" : error != 0 ? std::strerror(error) : "bind failed";
    throw std::runtime_error(fmt::format("management server: cannot listen on {}:{}: {} (pyfly.management.server.port; "
                                         "-1 turns the server off, 0 picks a free port)",
                                         address, properties_.port, reason));
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // stop() only ends a server that runs: wait (bounded) until it does.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!server_->is_running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  log().info("management server: http://{}:{}{} ({})", address, port_, properties_.base_path,
             properties_.port == 0 ? "a free port, pyfly.management.server.port: 0" : "pyfly.management.server.port");
}

void Actuator::stop() noexcept {
  if (!server_) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
  port_ = -1;
}

}  // namespace cppfly::detail
