// TLS and SASL on the project's own broker (scripts/kafka start: listeners SSL, SASL_PLAINTEXT
// with PLAIN, SASL_PLAINTEXT with SCRAM-SHA-512). Each case runs security_service, a listener
// service built from the public headers, as a real process configured only through
// pyfly.messaging.kafka.properties (the YAML of docs/configuration.md, "TLS and SASL").
//
// Needs CPPFLY_KAFKA_BOOTSTRAP_SSL, CPPFLY_KAFKA_BOOTSTRAP_SASL_PLAIN,
// CPPFLY_KAFKA_BOOTSTRAP_SASL_SCRAM and CPPFLY_KAFKA_CA (scripts/test exports them from the
// broker's run dir); CPPFLY_KAFKA_SASL_USER / CPPFLY_KAFKA_SASL_PASSWORD default to the script's
// cppfly / cppfly-secret. Without them every test here FAILS, on purpose.
#include <chrono>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "support.hpp"

namespace {

using namespace cppfly::integration;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kService = CPPFLY_SECURITY_SERVICE;

/// A wrong password that must never be printed, whatever the log level.
constexpr const char* kWrongPassword = "wrong-pw-5e1d7c9a";

std::string env_or_fail(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    FAIL(std::string(name) +
         " is not set. These tests need the TLS and SASL listeners of the project's broker: run "
         "`scripts/kafka start`, then export CPPFLY_KAFKA_BOOTSTRAP_SSL, CPPFLY_KAFKA_BOOTSTRAP_SASL_PLAIN, "
         "CPPFLY_KAFKA_BOOTSTRAP_SASL_SCRAM from build/kafka/bootstrap-ssl, -sasl-plain, -sasl-scram and "
         "CPPFLY_KAFKA_CA=build/kafka/ca.pem (scripts/test does this).");
  }
  return value;
}

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

std::string sasl_user() { return env_or("CPPFLY_KAFKA_SASL_USER", "cppfly"); }
std::string sasl_password() { return env_or("CPPFLY_KAFKA_SASL_PASSWORD", "cppfly-secret"); }

/// The service's file: provider kafka at `servers`, connect-timeout `connect_timeout_ms`, the
/// given `properties` block (YAML lines under pyfly.messaging.kafka), and the round trip's topic.
std::string service_yaml(const std::string& servers, const std::string& properties, const std::string& topic,
                         int connect_timeout_ms = 10000) {
  return "pyfly:\n"
         "  messaging:\n"
         "    provider: kafka\n"
         "    kafka:\n"
         "      bootstrap-servers: \"" +
         servers +
         "\"\n"
         "      client-id: security-check\n"
         "      connect-timeout: " +
         std::to_string(connect_timeout_ms) +
         "ms\n"
         "      commit-interval: 200ms\n" +
         properties + "security-check:\n  topic: " + topic + "\n  value: " + topic + "-value\n";
}

/// The YAML of docs/configuration.md, "TLS and SASL", with the test broker's CA and user.
std::string tls_properties(const std::string& ca) {
  return "      properties:\n"
         "        security.protocol: SSL\n"
         "        ssl.ca.location: \"" +
         ca + "\"\n";
}

std::string sasl_plain_properties(const std::string& user, const std::string& password) {
  return "      properties:\n"
         "        security.protocol: SASL_PLAINTEXT\n"
         "        sasl.mechanisms: PLAIN\n"
         "        sasl.username: \"" +
         user +
         "\"\n"
         "        sasl.password: \"" +
         password + "\"\n";
}

/// SCRAM-SHA-512 with the password from the environment
/// (PYFLY_MESSAGING_KAFKA_PROPERTIES_SASL_PASSWORD), not from the file.
std::string sasl_scram_properties(const std::string& user) {
  return "      properties:\n"
         "        security.protocol: SASL_PLAINTEXT\n"
         "        sasl.mechanisms: SCRAM-SHA-512\n"
         "        sasl.username: \"" +
         user + "\"\n";
}

struct Run {
  ProcessResult result;
  std::chrono::milliseconds took{};
};

/// Runs security_service with `yaml` as its config file and `env` (NAME=value) added to its environment.
Run run_service(const std::string& yaml, const std::vector<std::string>& env = {}) {
  const TempFile file(yaml);
  std::vector<std::string> argv{"env"};
  argv.insert(argv.end(), env.begin(), env.end());
  argv.insert(argv.end(), {kService, "--config", file.path()});
  const auto start = Clock::now();
  Run run;
  run.result = run_process(argv, {}, 60s);
  run.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  return run;
}

/// The lines of `text` that start with "cppfly: " (Application::run's one-line reasons).
std::vector<std::string> reason_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("cppfly: ")) lines.push_back(line);
  }
  return lines;
}

void require_round_trip(const Run& run, const std::string& topic) {
  INFO(run.result.describe() << "\nstdout:\n" << run.result.out);
  CHECK_FALSE(run.result.timed_out);
  CHECK(run.result.exit_code == 0);
  CHECK(run.result.out.find("round trip ok: " + topic + "-value") != std::string::npos);
}

/// The process failed at start within connect-timeout + margin, with one "cppfly:" line holding
/// every string of `expected`, and `secret` printed nowhere.
void require_clear_failure(const Run& run, int connect_timeout_ms, const std::vector<std::string>& expected,
                           const std::string& secret) {
  const std::string all = run.result.out + run.result.err;
  INFO(run.result.describe() << "\nstdout:\n" << run.result.out.substr(0, 4000) << "\ntook " << run.took.count()
                             << " ms");
  CHECK_FALSE(run.result.timed_out);
  CHECK(run.result.exit_code != 0);
  CHECK(run.took < std::chrono::milliseconds(connect_timeout_ms) + 3s);
  const auto reasons = reason_lines(run.result.err);
  REQUIRE(reasons.size() == 1);
  for (const auto& part : expected) CHECK_THAT(reasons.front(), Catch::Matchers::Contains(part));
  CHECK(all.find("round trip") == std::string::npos);
  if (!secret.empty()) CHECK(all.find(secret) == std::string::npos);
}

/// A CA nobody signed the broker's certificate with (Debian's openssl), in a temp file.
std::string other_ca_pem() {
  const TempFile key("");
  const TempFile cert("");
  const auto made = run_process({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                                 "/CN=not the broker's CA", "-keyout", key.path(), "-out", cert.path()},
                                {}, 30s);
  INFO(made.describe());
  REQUIRE(made.exit_code == 0);
  const auto read = run_process({"cat", cert.path()}, {}, 10s);
  REQUIRE(read.exit_code == 0);
  REQUIRE(read.out.find("BEGIN CERTIFICATE") != std::string::npos);
  return read.out;
}

}  // namespace

TEST_CASE("security: TLS with ssl.ca.location: a listener service publishes and receives", "[kafka][real][security]") {
  const auto servers = env_or_fail("CPPFLY_KAFKA_BOOTSTRAP_SSL");
  const auto ca = env_or_fail("CPPFLY_KAFKA_CA");
  const auto topic = unique_name("tls");
  require_round_trip(run_service(service_yaml(servers, tls_properties(ca), topic)), topic);
}

TEST_CASE("security: SASL PLAIN: a listener service publishes and receives", "[kafka][real][security]") {
  const auto servers = env_or_fail("CPPFLY_KAFKA_BOOTSTRAP_SASL_PLAIN");
  const auto topic = unique_name("sasl-plain");
  require_round_trip(run_service(service_yaml(servers, sasl_plain_properties(sasl_user(), sasl_password()), topic)),
                     topic);
}

TEST_CASE("security: SASL SCRAM-SHA-512 (password from the environment): a listener service publishes and receives",
          "[kafka][real][security]") {
  const auto servers = env_or_fail("CPPFLY_KAFKA_BOOTSTRAP_SASL_SCRAM");
  const auto topic = unique_name("sasl-scram");
  require_round_trip(run_service(service_yaml(servers, sasl_scram_properties(sasl_user()), topic),
                                 {"PYFLY_MESSAGING_KAFKA_PROPERTIES_SASL_PASSWORD=" + sasl_password()}),
                     topic);
}

TEST_CASE("security: a wrong SASL PLAIN password ends the service within connect-timeout with one line naming PLAIN "
          "and the broker, and the password is printed nowhere, even at debug level",
          "[kafka][real][security]") {
  const auto servers = env_or_fail("CPPFLY_KAFKA_BOOTSTRAP_SASL_PLAIN");
  const auto topic = unique_name("sasl-plain-wrong");
  constexpr int kConnectTimeout = 8000;
  SECTION("at the default log level") {
    const auto run =
        run_service(service_yaml(servers, sasl_plain_properties(sasl_user(), kWrongPassword), topic, kConnectTimeout));
    require_clear_failure(run, kConnectTimeout, {"SASL PLAIN", servers, "user '" + sasl_user() + "'"}, kWrongPassword);
  }
  SECTION("with SPDLOG_LEVEL=debug and librdkafka's debug=all") {
    const auto run = run_service(
        service_yaml(servers, sasl_plain_properties(sasl_user(), kWrongPassword) + "        debug: all\n", topic,
                     kConnectTimeout),
        {"SPDLOG_LEVEL=debug"});
    // The debug output is there (so the check below looks at something) ...
    CHECK_THAT(run.result.err, Catch::Matchers::Contains("librdkafka") && Catch::Matchers::Contains("SASL"));
    // ... and the configuration librdkafka was given, with the secret masked.
    require_clear_failure(run, kConnectTimeout, {"SASL PLAIN", servers}, kWrongPassword);
  }
}

TEST_CASE("security: a wrong SASL SCRAM-SHA-512 password ends the service within connect-timeout with one line "
          "naming SCRAM-SHA-512 and the broker, and the password is printed nowhere, even at debug level",
          "[kafka][real][security]") {
  const auto servers = env_or_fail("CPPFLY_KAFKA_BOOTSTRAP_SASL_SCRAM");
  const auto topic = unique_name("sasl-scram-wrong");
  constexpr int kConnectTimeout = 8000;
  const auto run =
      run_service(service_yaml(servers, sasl_scram_properties(sasl_user()) + "        debug: all\n", topic,
                               kConnectTimeout),
                  {"SPDLOG_LEVEL=debug", std::string("PYFLY_MESSAGING_KAFKA_PROPERTIES_SASL_PASSWORD=") + kWrongPassword});
  CHECK_THAT(run.result.err, Catch::Matchers::Contains("librdkafka") && Catch::Matchers::Contains("SCRAM"));
  require_clear_failure(run, kConnectTimeout, {"SASL SCRAM-SHA-512", servers, "user '" + sasl_user() + "'"},
                        kWrongPassword);
}

TEST_CASE("security: a CA that did not sign the broker's certificate ends the service within connect-timeout with "
          "one clear TLS line",
          "[kafka][real][security]") {
  const auto servers = env_or_fail("CPPFLY_KAFKA_BOOTSTRAP_SSL");
  const TempFile wrong_ca(other_ca_pem());
  const auto topic = unique_name("tls-wrong-ca");
  constexpr int kConnectTimeout = 8000;
  const auto run = run_service(service_yaml(servers, tls_properties(wrong_ca.path()), topic, kConnectTimeout));
  require_clear_failure(run, kConnectTimeout, {"TLS handshake", servers, wrong_ca.path(), "certificate verify failed"},
                        "");
}

TEST_CASE("security: a misspelled sasl.password is refused at start with the nearest property and its place, never "
          "its value",
          "[kafka][real][security]") {
  const auto servers = env_or_fail("CPPFLY_KAFKA_BOOTSTRAP_SASL_PLAIN");
  const auto topic = unique_name("sasl-misspelled");
  const std::string properties = "      properties:\n"
                                 "        security.protocol: SASL_PLAINTEXT\n"
                                 "        sasl.mechanisms: PLAIN\n"
                                 "        sasl.username: \"" +
                                 sasl_user() +
                                 "\"\n"
                                 "        sasl.pasword: \"" +
                                 std::string(kWrongPassword) + "\"\n";
  const auto run = run_service(service_yaml(servers, properties, topic));
  const std::string all = run.result.out + run.result.err;
  INFO(run.result.describe());
  CHECK(run.result.exit_code == 2);
  const auto reasons = reason_lines(run.result.err);
  REQUIRE(reasons.size() == 1);
  // file:line:column of the key (line 13 of the file service_yaml writes), the key, the suggestion.
  CHECK_THAT(reasons.front(), Catch::Matchers::Contains(":13:") &&
                                  Catch::Matchers::Contains("pyfly.messaging.kafka.properties.sasl.pasword: librdkafka "
                                                            "has no property sasl.pasword; did you mean sasl.password?"));
  CHECK(all.find(kWrongPassword) == std::string::npos);
}
