// The management server on the in-memory broker, through a real HTTP client: endpoints, exposure,
// base path, Spring Boot's health shape, a port in use, start and stop with the Application.
#include <catch2/catch.hpp>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <cppfly/application.hpp>
#include <cppfly/messaging/listener.hpp>

#include <stdexcept>
#include <string>

using namespace cppfly;
using namespace cppfly::messaging;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

config::Config with_management(const std::string& management) {
  return config::Config::from_string("pyfly:\n  messaging:\n    provider: memory\n  management:\n" + management);
}

struct Reply {
  int status{0};
  std::string body;
  std::string content_type;
};

Reply get(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5);
  client.set_read_timeout(5);
  auto result = client.Get(path);
  if (!result) return {-1, httplib::to_string(result.error()), {}};
  return {result->status, result->body, result->get_header_value("Content-Type")};
}

ListenerRegistry one_listener() {
  ListenerRegistry registry;
  registry.add(make_listener("billing", [](const Message& m) {
    if (m.value == "poison") throw std::runtime_error("bad");
  }, {.topic = "orders", .group_id = "billing", .retries = 1, .retry_delay = 1ms, .dead_letter_topic = "orders-dlq"}));
  return registry;
}

}  // namespace

TEST_CASE("the actuator serves health, liveness, readiness and info on a free port", "[actuator]") {
  auto registry = one_listener();
  Application app(with_management("    server: {port: 0, address: 127.0.0.1}\n"), registry);
  CHECK(app.management_port() == -1);
  app.start();
  const int port = app.management_port();
  REQUIRE(port > 0);

  const Reply health = get(port, "/actuator/health");
  CHECK(health.status == 200);
  CHECK(health.content_type == "application/vnd.spring-boot.actuator.v3+json");
  const json h = json::parse(health.body);
  CHECK(h["status"] == "UP");
  CHECK(h["components"]["broker"]["status"] == "UP");
  CHECK(h["components"]["readinessState"]["status"] == "UP");
  CHECK(h["components"]["livenessState"]["status"] == "UP");
  CHECK(h["components"]["listeners"]["details"]["billing"]["topic"] == "orders");
  CHECK(h["groups"] == json::array({"liveness", "readiness"}));

  CHECK(json::parse(get(port, "/actuator/health/liveness").body)["status"] == "UP");
  const Reply ready = get(port, "/actuator/health/readiness");
  CHECK(ready.status == 200);
  CHECK(json::parse(ready.body)["status"] == "UP");

  const json info = json::parse(get(port, "/actuator/info").body);
  CHECK(info["build"]["name"] == "cppfly");
  CHECK_FALSE(info["build"]["version"].get<std::string>().empty());
  REQUIRE(info["listeners"].size() == 1);
  CHECK(info["listeners"][0]["name"] == "billing");
  CHECK(info["listeners"][0]["topics"] == json::array({"orders"}));
  CHECK(info["listeners"][0]["deadLetterTopic"] == "orders-dlq");

  // Not exposed by default (PyFly's default exposure: health,info).
  CHECK(get(port, "/actuator/prometheus").status == 404);
  const json links = json::parse(get(port, "/actuator").body)["_links"];
  CHECK(links.contains("health"));
  CHECK_FALSE(links.contains("prometheus"));

  app.stop();
  CHECK(app.management_port() == -1);
  CHECK(get(port, "/actuator/health").status == -1);  // nothing listens any more
}

TEST_CASE("exposure include/exclude and the base path decide what is served", "[actuator]") {
  auto registry = one_listener();
  Application app(with_management("    server: {port: 0, address: 127.0.0.1}\n"
                                  "    endpoints.web.base-path: /manage\n"
                                  "    endpoints.web.exposure: {include: '*', exclude: info}\n"),
                  registry);
  app.start();
  const int port = app.management_port();
  app.broker().publish("orders", "fine");
  app.broker().publish("orders", "poison");
  CHECK(get(port, "/manage/health").status == 200);
  CHECK(get(port, "/manage/info").status == 404);
  CHECK(get(port, "/actuator/health").status == 404);
  const Reply metrics = get(port, "/manage/prometheus");
  CHECK(metrics.status == 200);
  CHECK(metrics.content_type == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(metrics.body.find(R"(cppfly_records_handled_total{listener="billing",topic="orders",group="billing",outcome="success"} 1)") !=
        std::string::npos);
  CHECK(metrics.body.find(R"(cppfly_records_handled_total{listener="billing",topic="orders",group="billing",outcome="dead_lettered"} 1)") !=
        std::string::npos);
  CHECK(metrics.body.find(R"(cppfly_published_total{topic="orders-dlq"} 1)") != std::string::npos);
  app.stop();
}

TEST_CASE("readiness is DOWN (503) while the application is not accepting traffic", "[actuator]") {
  ListenerRegistry registry;
  int port = -1;
  Reply during_stop;
  registry.add(LifecycleHook{.name = "probe",
                            .phase = HookPhase::before_stop,
                            .run = [&](Application&) { during_stop = get(port, "/actuator/health/readiness"); }});
  Application app(with_management("    server: {port: 0, address: 127.0.0.1}\n"), registry);
  app.start();
  port = app.management_port();
  CHECK(get(port, "/actuator/health/readiness").status == 200);
  app.stop();
  CHECK(during_stop.status == 503);
  const json body = json::parse(during_stop.body);
  CHECK(body["status"] == "DOWN");
  CHECK(body["components"]["readinessState"]["details"]["state"] == "REFUSING_TRAFFIC");
}

TEST_CASE("a management port in use is a clear start error", "[actuator]") {
  ListenerRegistry registry;
  Application first(with_management("    server: {port: 0, address: 127.0.0.1}\n"), registry);
  first.start();
  const int taken = first.management_port();
  Application second(with_management("    server: {port: " + std::to_string(taken) + ", address: 127.0.0.1}\n"),
                     registry);
  CHECK_THROWS_WITH(second.start(), Catch::Contains("management server: cannot listen on 127.0.0.1:" +
                                                    std::to_string(taken) + ": the port is in use") &&
                                        Catch::Contains("pyfly.management.server.port"));
  CHECK_FALSE(second.running());
  first.stop();
}

TEST_CASE("port -1 or no pyfly.management section: no management server", "[actuator]") {
  ListenerRegistry registry;
  Application off(with_management("    server: {port: -1}\n"), registry);
  off.start();
  CHECK(off.management_port() == -1);
  off.stop();
  Application none(config::Config::from_string("pyfly:\n  messaging:\n    provider: memory\n"), registry);
  none.start();
  CHECK(none.management_port() == -1);
  none.stop();
}
