// Tests for cppfly_config: loading, profiles, environment overrides, validation and messages.
#include <cppfly/config/config.hpp>

#include "support.hpp"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>

#include <unistd.h>

#include <catch2/catch.hpp>

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using cppfly::config::Config;
using cppfly::config::ConfigError;
using cppfly::config::LoadOptions;
using cppfly::config::Origin;
using cppfly::config::Provider;
using namespace cppfly::config::testing;


TEST_CASE("a missing default file gives all defaults", "[config]") {
  TempDir dir;
  LoadOptions options;
  options.path = dir.file("pyfly.yaml");
  options.environment = Env{};
  const Config config = Config::load(options);
  CHECK(config.sources().empty());
  CHECK(config.values().empty());
  CHECK(config.active_profiles().empty());
  REQUIRE(config.warnings().size() == 1);
  CHECK(config.warnings()[0] == "no config file found (looked for " + dir.file("config/pyfly.yaml") + ", " +
                                    dir.file("config/pyfly.toml") + ", " + dir.file("pyfly.yaml") + ", " +
                                    dir.file("pyfly.toml") + "); using defaults");
  const auto& m = config.messaging();
  CHECK(m.provider == Provider::memory);
  CHECK(m.kafka.bootstrap_servers == "localhost:9092");
  CHECK(m.kafka.client_id == "cppfly");
  CHECK(m.kafka.embedded_brokers == 1);
  CHECK(m.kafka.auto_offset_reset == "earliest");
  CHECK(m.kafka.acks == "all");
  CHECK(m.kafka.enable_idempotence);
  CHECK(m.kafka.commit_interval == 1000ms);
  CHECK(m.kafka.connect_timeout == 10000ms);
  CHECK(m.kafka.publish_timeout == 30000ms);
  CHECK(m.kafka.reconnect_backoff_max == 1000ms);
  CHECK(m.kafka.properties.empty());
}

TEST_CASE("an explicitly named missing file is an error", "[config]") {
  TempDir dir;
  const std::string path = dir.file("absent.yaml");
  CHECK(error_of([&] { (void)Config::load(options_for(path)); }) == "config file not found: " + path);
}

TEST_CASE("a directory given as the config file is refused with the reason", "[config]") {
  TempDir dir;
  const std::string path = dir.file("sub");
  fs::create_directories(path);
  const std::string message = error_of([&] { (void)Config::load(options_for(path)); });
  CHECK(message == "cannot read config file " + path + ": it is a directory");
}

TEST_CASE("a file is read and its values keep their origin", "[config]") {
  TempDir dir;
  const std::string path = dir.write("pyfly.yaml",
                                     "pyfly:\n"
                                     "  messaging:\n"
                                     "    provider: kafka\n"
                                     "    kafka:\n"
                                     "      bootstrap-servers: \"broker1:9092,broker2:9092\"\n"
                                     "      client-id: orders\n"
                                     "      embedded-brokers: 3\n"
                                     "      auto-offset-reset: LATEST\n"
                                     "      acks: 1\n"
                                     "      enable-idempotence: off\n");
  const Config config = Config::load(options_for(path));
  REQUIRE(config.sources() == std::vector<std::string>{path});
  const auto& m = config.messaging();
  CHECK(m.provider == Provider::kafka);
  CHECK(m.kafka.bootstrap_servers == "broker1:9092,broker2:9092");
  CHECK(m.kafka.client_id == "orders");
  CHECK(m.kafka.embedded_brokers == 3);
  CHECK(m.kafka.auto_offset_reset == "latest");
  CHECK(m.kafka.acks == "1");
  CHECK_FALSE(m.kafka.enable_idempotence);
  CHECK(config.get("pyfly.messaging.provider") == std::optional<std::string>("kafka"));
  CHECK(config.get("pyfly.messaging.kafka.auto-offset-reset") == std::optional<std::string>("LATEST"));
  CHECK_FALSE(config.get("pyfly.messaging.nothing").has_value());
  const auto& origin = config.values().at("pyfly.messaging.provider").origin;
  CHECK(origin.source == path);
  CHECK(origin.line == 3);
  CHECK(origin.column == 15);
  CHECK(origin.describe() == path + ":3:15");
}

TEST_CASE("provider accepts auto, kafka and memory in any case", "[config]") {
  CHECK(Config::from_string("pyfly: {messaging: {provider: auto}}").messaging().provider == Provider::auto_detect);
  CHECK(Config::from_string("pyfly: {messaging: {provider: kafka}}").messaging().provider == Provider::kafka);
  CHECK(Config::from_string("pyfly: {messaging: {provider: memory}}").messaging().provider == Provider::memory);
  CHECK(Config::from_string("pyfly: {messaging: {provider: KaFkA}}").messaging().provider == Provider::kafka);
  CHECK(to_string(Provider::auto_detect) == "auto");
  CHECK(to_string(Provider::kafka) == "kafka");
  CHECK(to_string(Provider::memory) == "memory");
}

TEST_CASE("an unknown provider names file, line, column, key, value and the allowed values", "[config][errors]") {
  TempDir dir;
  const std::string path = dir.write("pyfly.yaml",
                                     "pyfly:\n"
                                     "  messaging:\n"
                                     "    provider: kafak\n");
  CHECK(error_of([&] { (void)Config::load(options_for(path)); }) ==
        path + ":3:15: pyfly.messaging.provider: found 'kafak'; allowed: auto, kafka, memory");
}

TEST_CASE("an unknown key under pyfly.messaging suggests the nearest known key", "[config][errors]") {
  CHECK(error_of_yaml("pyfly:\n"
                      "  messaging:\n"
                      "    provider: kafka\n"
                      "    kafak:\n"
                      "      bootstrap-servers: x:9092\n") ==
        "pyfly.yaml:4:5: unknown key pyfly.messaging.kafak; did you mean pyfly.messaging.kafka?");
  CHECK(error_of_yaml("pyfly:\n"
                      "  messaging:\n"
                      "    kafka:\n"
                      "      bootstrap-server: x:9092\n") ==
        "pyfly.yaml:4:7: unknown key pyfly.messaging.kafka.bootstrap-server; "
        "did you mean pyfly.messaging.kafka.bootstrap-servers?");
  CHECK(error_of_yaml("pyfly:\n"
                      "  messaging:\n"
                      "    kafka:\n"
                      "      publish-timout: 2s\n") ==
        "pyfly.yaml:4:7: unknown key pyfly.messaging.kafka.publish-timout; "
        "did you mean pyfly.messaging.kafka.publish-timeout?");
}

TEST_CASE("an unknown key with nothing close lists the keys allowed at that level", "[config][errors]") {
  CHECK(error_of_yaml("pyfly:\n"
                      "  messaging:\n"
                      "    zookeeper: true\n") ==
        "pyfly.yaml:3:5: unknown key pyfly.messaging.zookeeper; "
        "allowed keys under pyfly.messaging: provider, kafka, listener, log-payloads, rabbitmq, trace-propagation");
}

TEST_CASE("dotted keys are read as nested keys and checked the same way", "[config]") {
  const Config config = Config::from_string("pyfly.messaging.provider: kafka\n"
                                            "pyfly.messaging.kafka.client-id: dotted\n");
  CHECK(config.messaging().provider == Provider::kafka);
  CHECK(config.messaging().kafka.client_id == "dotted");
  CHECK(error_of_yaml("pyfly.messaging.kafak.client-id: x\n") ==
        "pyfly.yaml:1:1: unknown key pyfly.messaging.kafak; did you mean pyfly.messaging.kafka?");
}

TEST_CASE("durations accept milliseconds, seconds and minutes", "[config][durations]") {
  const auto publish_timeout = [](const std::string& value) {
    return Config::from_string("pyfly: {messaging: {kafka: {publish-timeout: \"" + value + "\"}}}")
        .messaging()
        .kafka.publish_timeout;
  };
  CHECK(publish_timeout("1500") == 1500ms);
  CHECK(publish_timeout("250ms") == 250ms);
  CHECK(publish_timeout("2s") == 2000ms);
  CHECK(publish_timeout("1m") == 60000ms);
  CHECK(publish_timeout("1.5s") == 1500ms);
  CHECK(publish_timeout("0.25m") == 15000ms);
  CHECK(publish_timeout(" 3 S ") == 3000ms);

  const Config config = Config::from_string("pyfly:\n"
                                            "  messaging:\n"
                                            "    kafka:\n"
                                            "      commit-interval: 100ms\n"
                                            "      connect-timeout: 5s\n"
                                            "      reconnect-backoff-max: 2m\n");
  CHECK(config.messaging().kafka.commit_interval == 100ms);
  CHECK(config.messaging().kafka.connect_timeout == 5000ms);
  CHECK(config.messaging().kafka.reconnect_backoff_max == 120000ms);
}

TEST_CASE("a bad duration is refused with what a duration looks like", "[config][errors][durations]") {
  const std::string prefix = "pyfly.yaml:4:24: pyfly.messaging.kafka.commit-interval: found '";
  const auto error_for = [](const std::string& value) {
    return error_of_yaml("pyfly:\n"
                         "  messaging:\n"
                         "    kafka:\n"
                         "      commit-interval: " + value + "\n");
  };
  CHECK(error_for("soon") == prefix + "soon'; expected a duration such as 500ms, 2s or 1m");
  CHECK(error_for("10h") == prefix + "10h'; expected a duration such as 500ms, 2s or 1m");
  CHECK(error_for("ms") == prefix + "ms'; expected a duration such as 500ms, 2s or 1m");
  CHECK(error_for("0") == prefix + "0'; expected a duration greater than zero, a duration such as 500ms, 2s or 1m");
  CHECK(error_for("-2s") == prefix + "-2s'; expected a duration greater than zero, a duration such as 500ms, 2s or 1m");
  CHECK(error_for("0.5ms") ==
        prefix + "0.5ms'; expected a whole number of milliseconds, a duration such as 500ms, 2s or 1m");
  CHECK(error_for("99999999999999m") == prefix + "99999999999999m'; expected a duration of at most 2147483647ms");
}

TEST_CASE("a bad integer is refused with the allowed range", "[config][errors]") {
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    kafka:\n      embedded-brokers: many\n") ==
        "pyfly.yaml:4:25: pyfly.messaging.kafka.embedded-brokers: found 'many'; expected an integer from 1 to 16");
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    kafka:\n      embedded-brokers: 17\n") ==
        "pyfly.yaml:4:25: pyfly.messaging.kafka.embedded-brokers: found '17'; expected an integer from 1 to 16");
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    kafka:\n      embedded-brokers: 2.5\n") ==
        "pyfly.yaml:4:25: pyfly.messaging.kafka.embedded-brokers: found '2.5'; expected an integer from 1 to 16");
}

TEST_CASE("booleans accept true/false/yes/no/on/off and refuse anything else", "[config][errors]") {
  for (const auto& [text, expected] : std::map<std::string, bool>{
           {"true", true}, {"False", false}, {"yes", true}, {"NO", false}, {"on", true}, {"off", false}}) {
    CAPTURE(text);
    CHECK(Config::from_string("pyfly: {messaging: {kafka: {enable-idempotence: " + text + "}}}")
              .messaging()
              .kafka.enable_idempotence == expected);
  }
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    kafka:\n      enable-idempotence: maybe\n") ==
        "pyfly.yaml:4:27: pyfly.messaging.kafka.enable-idempotence: found 'maybe'; "
        "allowed: true, false, yes, no, on, off");
}

TEST_CASE("log-payloads is off unless set, and only a boolean", "[config][errors]") {
  CHECK_FALSE(Config::from_string("pyfly: {messaging: {provider: memory}}").messaging().log_payloads);
  CHECK(Config::from_string("pyfly: {messaging: {log-payloads: true}}").messaging().log_payloads);
  CHECK(Config::from_string("pyfly: {messaging: {log_payloads: on}}").messaging().log_payloads);
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    log-payloads: sometimes\n") ==
        "pyfly.yaml:3:19: pyfly.messaging.log-payloads: found 'sometimes'; allowed: true, false, yes, no, on, off");
}

TEST_CASE("trace-propagation is continue unless set, and one of continue, always, off", "[config][errors]") {
  CHECK(Config::from_string("pyfly: {messaging: {provider: memory}}").messaging().trace_propagation == "continue");
  CHECK(Config::from_string("pyfly: {messaging: {trace-propagation: always}}").messaging().trace_propagation ==
        "always");
  CHECK(Config::from_string("pyfly: {messaging: {trace_propagation: OFF}}").messaging().trace_propagation == "off");
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    trace-propagation: w3c\n") ==
        "pyfly.yaml:3:24: pyfly.messaging.trace-propagation: found 'w3c'; allowed: continue, always, off");
}

TEST_CASE("other enumerations and strings are checked", "[config][errors]") {
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    kafka:\n      acks: 2\n") ==
        "pyfly.yaml:4:13: pyfly.messaging.kafka.acks: found '2'; allowed: all, -1, 0, 1");
  CHECK(Config::from_string("pyfly: {messaging: {kafka: {acks: -1}}}").messaging().kafka.acks == "-1");
  CHECK(Config::from_string("pyfly: {messaging: {kafka: {acks: ALL}}}").messaging().kafka.acks == "all");
  // Idempotence (on by default) needs acks=all: refused at load, not when the producer starts.
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    kafka:\n      acks: 1\n") ==
        "pyfly.yaml:4:13: pyfly.messaging.kafka.acks: found '1'; allowed with enable-idempotence: true (the "
        "default): all, -1; set enable-idempotence: false for 0 or 1");
  CHECK(Config::from_string("pyfly: {messaging: {kafka: {acks: 0, enable-idempotence: false}}}").messaging().kafka.acks ==
        "0");
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    kafka:\n      auto-offset-reset: newest\n") ==
        "pyfly.yaml:4:26: pyfly.messaging.kafka.auto-offset-reset: found 'newest'; allowed: earliest, latest");
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    kafka:\n      bootstrap-servers: \"  \"\n") ==
        "pyfly.yaml:4:26: pyfly.messaging.kafka.bootstrap-servers: found '  '; "
        "expected a comma-separated list of host:port, or embedded");
}

TEST_CASE("a scalar where a map is expected, and a map where a scalar is expected, are errors", "[config][errors]") {
  CHECK(error_of_yaml("pyfly:\n  messaging: memory\n") ==
        "pyfly.yaml:2:14: pyfly.messaging: found 'memory'; expected a map with keys provider, kafka, listener, log-payloads, rabbitmq, trace-propagation");
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    kafka: localhost:9092\n") ==
        "pyfly.yaml:3:12: pyfly.messaging.kafka: found 'localhost:9092'; expected a map with keys "
        "bootstrap-servers, client-id, transactional-id-prefix, embedded-brokers, auto-offset-reset, acks, enable-idempotence, "
        "commit-interval, connect-timeout, publish-timeout, reconnect-backoff-max, properties, "
        "producer-properties, consumer-properties, topics");
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    provider:\n      name: kafka\n") ==
        "pyfly.yaml:3:5: pyfly.messaging.provider: found a map; expected one of auto, kafka, memory");
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    kafka:\n      properties: lz4\n") ==
        "pyfly.yaml:4:19: pyfly.messaging.kafka.properties: found 'lz4'; "
        "expected a map of librdkafka properties (name: value)");
  CHECK(error_of_yaml("pyfly: on\n") == "pyfly.yaml:1:8: pyfly: found 'on'; expected a map (such as messaging:)");
}

TEST_CASE("YAML syntax errors carry a 1-based line and column", "[config][errors]") {
  TempDir dir;
  const std::string path = dir.write("pyfly.yaml",
                                     "pyfly:\n"
                                     "  messaging:\n"
                                     "    provider: [kafka\n"
                                     "    kafka: {}\n");
  const std::string message = error_of([&] { (void)Config::load(options_for(path)); });
  CHECK(message.rfind(path + ":4:", 0) == 0);
  CHECK(message.find(": invalid YAML: ") != std::string::npos);
  CHECK(message.find('\n') == std::string::npos);

  CHECK(error_of_yaml("a: [1\nb: 2\n") == "pyfly.yaml:2:2: invalid YAML: end of sequence flow not found");
}

TEST_CASE("an empty file or a file of comments is valid, but a top level that is not a map is not", "[config]") {
  TempDir dir;
  const std::string empty = dir.write("empty.yaml", "");
  CHECK(Config::load(options_for(empty)).messaging().provider == Provider::memory);
  const std::string comments = dir.write("comments.yaml", "# nothing here yet\n\n# pyfly: {}\n");
  const Config config = Config::load(options_for(comments));
  CHECK(config.values().empty());
  CHECK(config.sources() == std::vector<std::string>{comments});

  CHECK(error_of_yaml("just text\n") == "pyfly.yaml:1:1: the top level must be a map of keys (such as pyfly:), found a scalar");
  CHECK(error_of_yaml("- a\n- b\n") == "pyfly.yaml:1:1: the top level must be a map of keys (such as pyfly:), found a list");
  CHECK(error_of_yaml("a: 1\n---\nb: 2\n") ==
        "pyfly.yaml:3:1: only one YAML document per file is supported (found a second one)");
}

TEST_CASE("rabbitmq settings are accepted with a warning", "[config]") {
  const Config config = Config::from_string("pyfly:\n"
                                            "  messaging:\n"
                                            "    provider: memory\n"
                                            "    rabbitmq:\n"
                                            "      url: amqp://guest@localhost\n"
                                            "      prefetch: 10\n",
                                            "pyfly.yaml");
  REQUIRE(config.warnings().size() == 1);
  CHECK(config.warnings()[0] ==
        "pyfly.yaml:4:5: pyfly.messaging.rabbitmq is PyFly's RabbitMQ adapter; cppfly ignores it");
  CHECK(config.get("pyfly.messaging.rabbitmq.url") == std::optional<std::string>("amqp://guest@localhost"));
}

TEST_CASE("kafka properties pass through with their librdkafka names and values as written", "[config]") {
  const Config config = Config::from_string("pyfly:\n"
                                            "  messaging:\n"
                                            "    kafka:\n"
                                            "      properties:\n"
                                            "        compression.type: lz4\n"
                                            "        enable.ssl.certificate.verification: true\n"
                                            "        linger.ms: 5\n"
                                            "        security:\n"
                                            "          protocol: SASL_SSL\n"
                                            "      producer-properties:\n"
                                            "        batch.size: 65536\n"
                                            "      consumer-properties:\n"
                                            "        fetch.min.bytes: 1\n");
  const auto& kafka = config.messaging().kafka;
  CHECK(kafka.properties == std::map<std::string, std::string>{{"compression.type", "lz4"},
                                                               {"enable.ssl.certificate.verification", "true"},
                                                               {"linger.ms", "5"},
                                                               {"security.protocol", "SASL_SSL"}});
  CHECK(kafka.producer_properties == std::map<std::string, std::string>{{"batch.size", "65536"}});
  CHECK(kafka.consumer_properties == std::map<std::string, std::string>{{"fetch.min.bytes", "1"}});
  CHECK(config.get("pyfly.messaging.kafka.properties.compression.type") == std::optional<std::string>("lz4"));
  const auto& origin = config.values().at("pyfly.messaging.kafka.properties.linger.ms").origin;
  CHECK(origin.line == 7);
  CHECK(origin.column == 20);
}

TEST_CASE("lists of scalars are joined with commas", "[config]") {
  const Config config = Config::from_string("pyfly:\n"
                                            "  messaging:\n"
                                            "    kafka:\n"
                                            "      bootstrap-servers:\n"
                                            "        - a:9092\n"
                                            "        - b:9092\n");
  CHECK(config.messaging().kafka.bootstrap_servers == "a:9092,b:9092");
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    kafka:\n      client-id:\n        - name: x\n") ==
        "pyfly.yaml:4:7: pyfly.messaging.kafka.client-id: found a list of maps; expected a client id");
}

TEST_CASE("keys outside pyfly.messaging are stored but not validated", "[config]") {
  const Config config = Config::from_string("pyfly:\n"
                                            "  web:\n"
                                            "    port: 8080\n"
                                            "  data:\n"
                                            "    urls: [x, y]\n"
                                            "myapp:\n"
                                            "  greeting: hello\n"
                                            "  items:\n"
                                            "    - name: one\n"
                                            "    - name: two\n");
  CHECK(config.get("pyfly.web.port") == std::optional<std::string>("8080"));
  CHECK(config.get("pyfly.data.urls") == std::optional<std::string>("x,y"));
  CHECK(config.get("myapp.greeting") == std::optional<std::string>("hello"));
  CHECK(config.get("myapp.items[1].name") == std::optional<std::string>("two"));
  CHECK(config.warnings().empty());
}

TEST_CASE("a profile given as an option layers pyfly-<profile>.yaml over the base", "[config][profiles]") {
  TempDir dir;
  const std::string base = dir.write("pyfly.yaml",
                                     "pyfly:\n"
                                     "  messaging:\n"
                                     "    provider: kafka\n"
                                     "    kafka:\n"
                                     "      client-id: base\n"
                                     "      bootstrap-servers: base:9092\n");
  const std::string test = dir.write("pyfly-test.yaml", "pyfly:\n  messaging:\n    provider: memory\n");
  const std::string local = dir.write("pyfly-local.yaml", "pyfly:\n  messaging:\n    kafka:\n      client-id: local\n");
  const Config config = Config::load(options_for(base, {}, "test, local"));
  CHECK(config.active_profiles() == std::vector<std::string>{"test", "local"});
  CHECK(config.sources() == std::vector<std::string>{base, test, local});
  CHECK(config.messaging().provider == Provider::memory);
  CHECK(config.messaging().kafka.client_id == "local");
  CHECK(config.messaging().kafka.bootstrap_servers == "base:9092");
  CHECK(config.values().at("pyfly.messaging.provider").origin.source == test);
}

TEST_CASE("the profile comes from PYFLY_PROFILES_ACTIVE, else pyfly.profiles.active", "[config][profiles]") {
  TempDir dir;
  const std::string base = dir.write("pyfly.yaml",
                                     "pyfly:\n"
                                     "  profiles:\n"
                                     "    active: dev\n"
                                     "  messaging:\n"
                                     "    provider: auto\n");
  dir.write("pyfly-dev.yaml", "pyfly:\n  messaging:\n    provider: kafka\n");
  dir.write("pyfly-test.yaml", "pyfly:\n  messaging:\n    provider: memory\n");

  SECTION("from the base file") {
    const Config config = Config::load(options_for(base));
    CHECK(config.active_profiles() == std::vector<std::string>{"dev"});
    CHECK(config.messaging().provider == Provider::kafka);
  }
  SECTION("the environment wins over the file") {
    const Config config = Config::load(options_for(base, {{"PYFLY_PROFILES_ACTIVE", "test"}}));
    CHECK(config.active_profiles() == std::vector<std::string>{"test"});
    CHECK(config.messaging().provider == Provider::memory);
  }
  SECTION("the option wins over the environment") {
    const Config config = Config::load(options_for(base, {{"PYFLY_PROFILES_ACTIVE", "test"}}, "dev"));
    CHECK(config.active_profiles() == std::vector<std::string>{"dev"});
    CHECK(config.messaging().provider == Provider::kafka);
  }
  SECTION("an empty option means no profile") {
    const Config config = Config::load(options_for(base, {}, ""));
    CHECK(config.active_profiles().empty());
    CHECK(config.messaging().provider == Provider::auto_detect);
  }
}

TEST_CASE("a missing profile file is a warning, and profile files are validated", "[config][profiles]") {
  TempDir dir;
  const std::string base = dir.write("pyfly.yaml", "pyfly:\n  messaging:\n    provider: kafka\n");
  const Config config = Config::load(options_for(base, {}, "staging"));
  CHECK(config.active_profiles() == std::vector<std::string>{"staging"});
  CHECK(config.messaging().provider == Provider::kafka);
  CHECK(has_warning(config, "profile 'staging': " + dir.file("config/pyfly-staging.yaml") + " or " +
                                dir.file("config/pyfly-staging.toml") + " or " + dir.file("pyfly-staging.yaml") +
                                " or " + dir.file("pyfly-staging.toml") + " not found; nothing to layer"));

  const std::string bad = dir.write("pyfly-bad.yaml", "pyfly:\n  messaging:\n    providr: memory\n");
  CHECK(error_of([&] { (void)Config::load(options_for(base, {}, "bad")); }) ==
        bad + ":3:5: unknown key pyfly.messaging.providr; did you mean pyfly.messaging.provider?");
}

TEST_CASE("environment variables override keys by relaxed name", "[config][environment]") {
  TempDir dir;
  const std::string base = dir.write("pyfly.yaml",
                                     "pyfly:\n"
                                     "  messaging:\n"
                                     "    provider: memory\n"
                                     "    kafka:\n"
                                     "      properties:\n"
                                     "        compression.type: gzip\n"
                                     "  web:\n"
                                     "    base-path: /api\n");
  const Config config = Config::load(options_for(base, {
                                                           {"PYFLY_MESSAGING_PROVIDER", "kafka"},
                                                           {"PYFLY_MESSAGING_KAFKA_BOOTSTRAP_SERVERS", "env:9092"},
                                                           {"PYFLY_MESSAGING_KAFKA_PUBLISH_TIMEOUT", "5s"},
                                                           {"PYFLY_MESSAGING_KAFKA_PROPERTIES_COMPRESSION_TYPE", "lz4"},
                                                           {"PYFLY_MESSAGING_KAFKA_PROPERTIES_LINGER_MS", "20"},
                                                           {"PYFLY_MESSAGING_KAFKA_PRODUCER_PROPERTIES_BATCH_SIZE", "1024"},
                                                           {"PYFLY_MESSAGING_KAFKA_CONSUMER_PROPERTIES_FETCH_MAX_BYTES", "10"},
                                                           {"PYFLY_WEB_BASE_PATH", "/v2"},
                                                           {"PYFLY_MESSAGING_KAFKA_BOOTSTRAP", "typo:9092"},
                                                           {"PYFLY_SOMETHING_ELSE", "x"},
                                                           {"HOME", "/root"},
                                                       }));
  const auto& m = config.messaging();
  CHECK(m.provider == Provider::kafka);
  CHECK(m.kafka.bootstrap_servers == "env:9092");
  CHECK(m.kafka.publish_timeout == 5000ms);
  CHECK(m.kafka.properties ==
        std::map<std::string, std::string>{{"compression.type", "lz4"}, {"linger.ms", "20"}});
  CHECK(m.kafka.producer_properties == std::map<std::string, std::string>{{"batch.size", "1024"}});
  CHECK(m.kafka.consumer_properties == std::map<std::string, std::string>{{"fetch.max.bytes", "10"}});
  CHECK(config.get("pyfly.web.base-path") == std::optional<std::string>("/v2"));
  const auto& origin = config.values().at("pyfly.messaging.provider").origin;
  CHECK(origin.describe() == "environment variable PYFLY_MESSAGING_PROVIDER");
  CHECK(origin.line == 0);
  REQUIRE(config.warnings().size() == 2);  // the unknown variable, and lz4 that PyFly cannot read
  CHECK(has_warning(config, "environment variable PYFLY_MESSAGING_KAFKA_BOOTSTRAP matches no pyfly.messaging key"));
  CHECK(has_warning(config, "lz4 is not readable by a PyFly consumer"));
}

TEST_CASE("a bad value from the environment names the variable", "[config][environment][errors]") {
  TempDir dir;
  const std::string base = dir.write("pyfly.yaml", "pyfly:\n  messaging:\n    provider: kafka\n");
  CHECK(error_of([&] { (void)Config::load(options_for(base, {{"PYFLY_MESSAGING_PROVIDER", "x"}})); }) ==
        "environment variable PYFLY_MESSAGING_PROVIDER: pyfly.messaging.provider: found 'x'; "
        "allowed: auto, kafka, memory");
}

TEST_CASE("the environment is ignored when read_environment is false", "[config][environment]") {
  TempDir dir;
  const std::string base = dir.write("pyfly.yaml", "pyfly:\n  messaging:\n    provider: kafka\n");
  LoadOptions options = options_for(base, {{"PYFLY_MESSAGING_PROVIDER", "memory"}, {"PYFLY_PROFILES_ACTIVE", "x"}});
  options.read_environment = false;
  const Config config = Config::load(options);
  CHECK(config.messaging().provider == Provider::kafka);
  CHECK(config.active_profiles().empty());
}

TEST_CASE("rabbitmq environment variables warn instead of being reported as unknown", "[config][environment]") {
  const Config config = Config::from_string("", "pyfly.yaml",
                                            {.read_environment = true,
                                             .environment = Env{{"PYFLY_MESSAGING_RABBITMQ_URL", "amqp://x"}}});
  REQUIRE(config.warnings().size() == 1);
  CHECK(config.warnings()[0] ==
        "environment variable PYFLY_MESSAGING_RABBITMQ_URL: "
        "pyfly.messaging.rabbitmq is PyFly's RabbitMQ adapter; cppfly ignores it");
}

TEST_CASE("Origin describes files and environment variables", "[config]") {
  CHECK(Origin{"pyfly.yaml", 4, 5}.describe() == "pyfly.yaml:4:5");
  CHECK(Origin{"environment variable PYFLY_X", 0, 0}.describe() == "environment variable PYFLY_X");
}

TEST_CASE("error messages are one line even when the value is not", "[config][errors]") {
  const std::string message = error_of_yaml("pyfly:\n  messaging:\n    provider: \"kaf\\nka\"\n");
  CHECK(message == "pyfly.yaml:3:15: pyfly.messaging.provider: found 'kaf\\nka'; allowed: auto, kafka, memory");
}

TEST_CASE("declared topics: partitions, replication factor, topic configs and grow-partitions", "[config][topics]") {
  const Config config = Config::from_string(
      "pyfly:\n"
      "  messaging:\n"
      "    kafka:\n"
      "      topics:\n"
      "        orders:\n"
      "          partitions: 6\n"
      "          replication_factor: 1\n"
      "          grow-partitions: yes\n"
      "          config:\n"
      "            retention.ms: 604800000\n"
      "            cleanup.policy: compact\n"
      "        Orders.V2_events:\n"
      "          Partitions: 3\n"
      "        audit: {grow_partitions: false}\n");
  const auto& topics = config.messaging().kafka.topics;
  REQUIRE(topics.size() == 3);
  const auto& orders = topics.at("orders");
  CHECK(orders.partitions == 6);
  CHECK(orders.replication_factor == 1);
  CHECK(orders.grow_partitions);
  CHECK(orders.config == std::map<std::string, std::string>{{"retention.ms", "604800000"}, {"cleanup.policy", "compact"}});
  // A topic name is kept as written (case, dots, underscores); its fields read relaxed.
  const auto& v2 = topics.at("Orders.V2_events");
  CHECK(v2.partitions == 3);
  CHECK_FALSE(v2.replication_factor.has_value());
  CHECK_FALSE(v2.grow_partitions);
  CHECK(v2.config.empty());
  CHECK_FALSE(topics.at("audit").partitions.has_value());
  CHECK(config.get("pyfly.messaging.kafka.topics.orders.config.retention.ms") == "604800000");
  CHECK(config.get("pyfly.messaging.kafka.topics.Orders.V2_events.partitions") == "3");
  CHECK(Config::from_string("pyfly: {messaging: {kafka: {}}}").messaging().kafka.topics.empty());
}

TEST_CASE("declared topics: bad values are refused with file, line, key and what is allowed", "[config][errors][topics]") {
  const std::string head = "pyfly:\n  messaging:\n    kafka:\n      topics:\n        orders:\n";
  CHECK(error_of_yaml(head + "          partitions: 0\n") ==
        "pyfly.yaml:6:23: pyfly.messaging.kafka.topics.orders.partitions: found '0'; expected an integer from 1 to "
        "2147483647");
  CHECK(error_of_yaml(head + "          partitions: three\n") ==
        "pyfly.yaml:6:23: pyfly.messaging.kafka.topics.orders.partitions: found 'three'; expected an integer from 1 "
        "to 2147483647");
  CHECK(error_of_yaml(head + "          partitions: 1.5\n") ==
        "pyfly.yaml:6:23: pyfly.messaging.kafka.topics.orders.partitions: found '1.5'; expected an integer from 1 to "
        "2147483647");
  CHECK(error_of_yaml(head + "          replication-factor: 40000\n") ==
        "pyfly.yaml:6:31: pyfly.messaging.kafka.topics.orders.replication-factor: found '40000'; expected an integer "
        "from 1 to 32767");
  CHECK(error_of_yaml(head + "          grow-partitions: sometimes\n") ==
        "pyfly.yaml:6:28: pyfly.messaging.kafka.topics.orders.grow-partitions: found 'sometimes'; allowed: true, "
        "false, yes, no, on, off");
  CHECK(error_of_yaml(head + "          partition: 3\n") ==
        "pyfly.yaml:6:11: unknown key pyfly.messaging.kafka.topics.orders.partition; did you mean "
        "pyfly.messaging.kafka.topics.orders.partitions?");
  CHECK(error_of_yaml(head + "          config: compact\n") ==
        "pyfly.yaml:6:19: pyfly.messaging.kafka.topics.orders.config: found 'compact'; expected a map of topic "
        "configs (name: value)");
  CHECK(error_of_yaml(head + "          partitions: {count: 3}\n") ==
        "pyfly.yaml:6:11: pyfly.messaging.kafka.topics.orders.partitions: found a map; expected an integer from 1 to "
        "2147483647");
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    kafka:\n      topics:\n        orders: 3\n") ==
        "pyfly.yaml:5:17: pyfly.messaging.kafka.topics.orders: found '3'; expected a map with keys partitions, "
        "replication-factor, config, grow-partitions");
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    kafka:\n      topics: orders\n") ==
        "pyfly.yaml:4:15: pyfly.messaging.kafka.topics: found 'orders'; expected a map of topic name: a map with keys "
        "partitions, replication-factor, config, grow-partitions");
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    kafka:\n      topics:\n        \"bad topic\":\n          partitions: 1\n") ==
        "pyfly.yaml:5:9: pyfly.messaging.kafka.topics: 'bad topic' is not a valid Kafka topic name (1 to 249 of a-z, "
        "A-Z, 0-9, '.', '_', '-')");
}

TEST_CASE("declared topics: an environment variable overrides a declared value", "[config][topics]") {
  TempDir dir;
  const auto path = dir.write("pyfly.yaml", "pyfly:\n  messaging:\n    kafka:\n      topics:\n        orders:\n"
                                            "          partitions: 2\n");
  const Config config = Config::load(options_for(path, Env{{"PYFLY_MESSAGING_KAFKA_TOPICS_ORDERS_PARTITIONS", "4"}}));
  CHECK(config.messaging().kafka.topics.at("orders").partitions == 4);
}

TEST_CASE("listener bounds and PyFly's shutdown timeout are read, from files and the environment", "[config]") {
  const auto config = Config::from_string("pyfly:\n  messaging:\n    listener:\n      max-buffered-records: 500\n"
                                          "      max_buffered_bytes: 1048576\n  context:\n    shutdown-timeout: 5s\n");
  CHECK(config.messaging().listener.max_buffered_records == 500);
  CHECK(config.messaging().listener.max_buffered_bytes == 1048576);
  CHECK(config.messaging().listener.shutdown_timeout == std::chrono::seconds(5));
  CHECK(Config::from_string("pyfly: {}\n").messaging().listener.shutdown_timeout == std::chrono::seconds(30));

  const auto overridden = Config::from_string(
      "pyfly: {}\n", "pyfly.yaml",
      LoadOptions{.read_environment = true, .environment = std::map<std::string, std::string>{
                                                {"PYFLY_CONTEXT_SHUTDOWN_TIMEOUT", "2s"}}});
  CHECK(overridden.messaging().listener.shutdown_timeout == std::chrono::seconds(2));

  CHECK_THROWS_WITH(Config::from_string("pyfly:\n  messaging:\n    listener:\n      max-buffered-records: 0\n"),
                    Catch::Contains("pyfly.messaging.listener.max-buffered-records"));
  CHECK_THROWS_WITH(Config::from_string("pyfly:\n  messaging:\n    listener:\n      max-buffered-bytes: 64MiB\n"),
                    Catch::Contains("a number of bytes from 1024"));
}
