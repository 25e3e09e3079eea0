// pyfly.management: the actuator's keys (PyFly's, which are Spring Boot's), defaults and errors.
#include <catch2/catch.hpp>

#include "support.hpp"

using namespace cppfly::config;
using namespace cppfly::config::testing;

TEST_CASE("without a pyfly.management section the management server is off", "[config][management]") {
  const auto config = Config::from_string("pyfly:\n  messaging:\n    provider: memory\n");
  const auto& m = config.management();
  CHECK_FALSE(m.configured);
  CHECK_FALSE(m.enabled());
  CHECK(m.port == 9090);
  CHECK(m.base_path == "/actuator");
  CHECK(m.exposes("health"));
  CHECK(m.exposes("info"));
  CHECK_FALSE(m.exposes("prometheus"));
  CHECK_FALSE(m.readiness_max_lag);
}

TEST_CASE("any pyfly.management key turns the server on, with PyFly's defaults for the rest", "[config][management]") {
  const auto config = Config::from_string(
      "pyfly:\n  management:\n    endpoints:\n      web:\n        exposure:\n          include: health,prometheus\n");
  const auto& m = config.management();
  CHECK(m.enabled());
  CHECK(m.port == 9090);
  CHECK(m.address == "0.0.0.0");
  CHECK(m.exposes("prometheus"));
  CHECK_FALSE(m.exposes("info"));
}

TEST_CASE("management keys are read, lists and * included", "[config][management]") {
  const auto config = Config::from_string(
      "pyfly:\n"
      "  management:\n"
      "    server: {port: 0, address: 127.0.0.1}\n"
      "    endpoints.web.base-path: /manage/\n"
      "    endpoints.web.exposure: {include: ['*'], exclude: info}\n"
      "    health.readiness.max_lag: 500\n");
  const auto& m = config.management();
  CHECK(m.enabled());
  CHECK(m.port == 0);
  CHECK(m.address == "127.0.0.1");
  CHECK(m.base_path == "/manage");
  CHECK(m.exposes("health"));
  CHECK(m.exposes("prometheus"));
  CHECK_FALSE(m.exposes("info"));
  CHECK(m.readiness_max_lag == 500);
  CHECK_FALSE(Config::from_string("pyfly:\n  management:\n    server:\n      port: -1\n").management().enabled());
}

TEST_CASE("bad management values name file, line, key and what is allowed", "[config][management][errors]") {
  TempDir dir;
  const auto error_for = [&](const std::string& yaml) {
    const std::string path = dir.write("pyfly.yaml", yaml);
    return std::make_pair(path, error_of([&] { (void)Config::load(options_for(path)); }));
  };
  {
    const auto [path, error] = error_for("pyfly:\n  management:\n    server:\n      port: 70000\n");
    CHECK(error == path + ":4:13: pyfly.management.server.port: found '70000'; allowed: a port from 1 to 65535, 0 "
                          "(a free port, logged) or -1 (no management server)");
  }
  {
    const auto [path, error] = error_for("pyfly:\n  management:\n    server:\n      port: http\n");
    CHECK(error.find("pyfly.management.server.port: found 'http'") != std::string::npos);
  }
  {
    const auto [path, error] =
        error_for("pyfly:\n  management:\n    endpoints:\n      web:\n        exposure:\n          include: health,metrics\n");
    CHECK(error == path + ":6:20: pyfly.management.endpoints.web.exposure.include: found 'health,metrics'; 'metrics' "
                          "is no endpoint of cppfly's; allowed: a comma-separated list of health, info, prometheus, or *");
  }
  {
    const auto [path, error] = error_for("pyfly:\n  management:\n    endpoints.web.base-path: actuator\n");
    CHECK(error.find(path + ":3:30: pyfly.management.endpoints.web.base-path: found 'actuator'; allowed: a path "
                            "starting with '/'") == 0);
  }
  {
    const auto [path, error] = error_for("pyfly:\n  management:\n    health.readiness.max-lag: -5\n");
    CHECK(error == path + ":3:31: pyfly.management.health.readiness.max-lag: found '-5'; allowed: a number of "
                          "records, 0 or more (readiness is DOWN above it)");
  }
  {
    const auto [path, error] = error_for("pyfly:\n  management:\n    server:\n      port:\n        value: 1\n");
    CHECK(error.find("pyfly.management.server.port: found a map; expected a value") != std::string::npos);
  }
}

TEST_CASE("PYFLY_MANAGEMENT_* environment variables override the file", "[config][management]") {
  TempDir dir;
  const std::string path = dir.write("pyfly.yaml", "pyfly:\n  management:\n    server:\n      port: 9191\n");
  const auto config = Config::load(options_for(path, {{"PYFLY_MANAGEMENT_SERVER_PORT", "0"},
                                                      {"PYFLY_MANAGEMENT_HEALTH_READINESS_MAX_LAG", "7"}}));
  CHECK(config.management().port == 0);
  CHECK(config.management().readiness_max_lag == 7);
}
