// The same pyfly.yaml lands a PyFly service and a cppfly service in the same place: search
// locations, placeholders, relaxed binding, pyfly.toml, secrets, providers PyFly has and cppfly not.
#include <cppfly/config/config.hpp>
#include <cppfly/config/secrets.hpp>
#include <cppfly/config/suggest.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "support.hpp"

using namespace std::chrono_literals;
using cppfly::config::Config;
using cppfly::config::LoadOptions;
using cppfly::config::Provider;
using namespace cppfly::config::testing;

namespace {

/// Loads from `dir` as a service started there without --config does.
Config load_in(const TempDir& dir, Env env = {}, std::optional<std::string> profile = std::nullopt) {
  LoadOptions options;
  options.path = dir.file("pyfly.yaml");
  options.environment = std::move(env);
  options.profile = std::move(profile);
  return Config::load(options);
}

}  // namespace

TEST_CASE("config/pyfly.yaml alone is read", "[config][locations]") {
  TempDir dir;
  const std::string file = dir.write("config/pyfly.yaml", "pyfly:\n  messaging:\n    provider: kafka\n");
  const Config config = load_in(dir);
  CHECK(config.sources() == std::vector<std::string>{file});
  CHECK(config.messaging().provider == Provider::kafka);
  CHECK(config.warnings().empty());
}

TEST_CASE("config/ then the folder itself, yaml then toml, later wins key by key", "[config][locations]") {
  TempDir dir;
  const auto a = dir.write("config/pyfly.yaml",
                           "pyfly:\n  messaging:\n    provider: kafka\n    kafka:\n      client-id: from-config-yaml\n"
                           "      acks: all\n");
  const auto b = dir.write("config/pyfly.toml", "[pyfly.messaging.kafka]\nclient-id = \"from-config-toml\"\n");
  const auto c = dir.write("pyfly.yaml", "pyfly:\n  messaging:\n    kafka:\n      bootstrap-servers: root:9092\n");
  const auto d = dir.write("pyfly.toml", "[pyfly.messaging.kafka]\nauto-offset-reset = \"latest\"\n");
  const auto e = dir.write("config/pyfly-dev.yaml", "pyfly:\n  messaging:\n    kafka:\n      client-id: dev-config\n");
  const auto f = dir.write("pyfly-dev.toml", "[pyfly.messaging.kafka]\nconnect-timeout = \"3s\"\n");
  const Config config = load_in(dir, {}, "dev");
  CHECK(config.sources() == std::vector<std::string>{a, b, c, d, e, f});
  const auto& kafka = config.messaging().kafka;
  CHECK(config.messaging().provider == Provider::kafka);
  CHECK(kafka.client_id == "dev-config");
  CHECK(kafka.bootstrap_servers == "root:9092");
  CHECK(kafka.auto_offset_reset == "latest");
  CHECK(kafka.connect_timeout == 3000ms);
}

TEST_CASE("an explicitly named pyfly.yaml is searched beside, a file of any other name is read alone", "[config][locations]") {
  TempDir dir;
  const auto nested = dir.write("config/pyfly.yaml", "pyfly:\n  messaging:\n    provider: kafka\n");
  const auto root = dir.write("pyfly.yaml", "pyfly:\n  messaging:\n    kafka:\n      client-id: root\n");
  const Config searched = Config::load(options_for(root));
  CHECK(searched.sources() == std::vector<std::string>{nested, root});

  const auto other = dir.write("service.yaml", "pyfly:\n  messaging:\n    kafka:\n      client-id: other\n");
  const auto overlay = dir.write("service-prod.yaml", "pyfly:\n  messaging:\n    kafka:\n      acks: \"1\"\n"
                                                      "      enable-idempotence: false\n");
  const Config alone = Config::load(options_for(other, {}, "prod"));
  CHECK(alone.sources() == std::vector<std::string>{other, overlay});
  CHECK(alone.messaging().provider == Provider::memory);
  CHECK(alone.messaging().kafka.acks == "1");
}

TEST_CASE("placeholders: environment first, then PYFLY_ form, then config keys, then the default", "[config][placeholders]") {
  const std::string yaml =
      "app:\n"
      "  host: cfg-host\n"
      "  port: 9092\n"
      "  address: \"${app.host}:${app.port}\"\n"
      "pyfly:\n"
      "  messaging:\n"
      "    kafka:\n"
      "      bootstrap-servers: \"${KAFKA_BOOTSTRAP:localhost:9092}\"\n"
      "      client-id: \"svc-${app.address}\"\n"
      "      properties:\n"
      "        sasl.username: \"${app.user:guest}\"\n";
  const auto load = [&](Env env) {
    LoadOptions options{.read_environment = true, .environment = std::move(env)};
    return Config::from_string(yaml, "pyfly.yaml", options);
  };
  const Config defaults = load({});
  CHECK(defaults.messaging().kafka.bootstrap_servers == "localhost:9092");
  CHECK(defaults.messaging().kafka.client_id == "svc-cfg-host:9092");
  CHECK(defaults.messaging().kafka.properties.at("sasl.username") == "guest");
  CHECK(defaults.get("app.address") == std::optional<std::string>("cfg-host:9092"));

  const Config from_env = load({{"KAFKA_BOOTSTRAP", "broker:19092"}, {"PYFLY_APP_HOST", "env-host"}});
  CHECK(from_env.messaging().kafka.bootstrap_servers == "broker:19092");
  CHECK(from_env.messaging().kafka.client_id == "svc-env-host:9092");
  // A name as written wins over its PYFLY_ form.
  const Config as_written = load({{"app.host", "literal"}, {"PYFLY_APP_HOST", "env-host"}});
  CHECK(as_written.messaging().kafka.client_id == "svc-literal:9092");
}

TEST_CASE("placeholder errors name file:line, key and the chain", "[config][placeholders][errors]") {
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    kafka:\n      bootstrap-servers: \"${KAFKA_BOOTSTRAP}\"\n") ==
        "pyfly.yaml:4:26: pyfly.messaging.kafka.bootstrap-servers: cannot resolve ${KAFKA_BOOTSTRAP}: no environment "
        "variable KAFKA_BOOTSTRAP or PYFLY_KAFKA_BOOTSTRAP and no config key kafka-bootstrap; give a default as "
        "${KAFKA_BOOTSTRAP:value}");
  CHECK(error_of_yaml("a: ${b}\nb: ${c}\nc: ${a}\n") == "pyfly.yaml:1:4: a: placeholder cycle: a -> b -> c -> a");
  std::string chain;
  for (int i = 0; i < 12; ++i) chain += fmt::format("k{}: ${{k{}}}\n", i, i + 1);
  chain += "k12: end\n";
  CHECK(error_of_yaml(chain) ==
        "pyfly.yaml:1:5: k0: placeholders nested more than 10 levels deep: "
        "k0 -> k1 -> k2 -> k3 -> k4 -> k5 -> k6 -> k7 -> k8 -> k9 -> k10 -> k11");
  // Ten levels resolve.
  std::string ten;
  for (int i = 0; i < 10; ++i) ten += fmt::format("k{}: ${{k{}}}\n", i, i + 1);
  ten += "k10: end\n";
  CHECK(Config::from_string(ten).get("k0") == std::optional<std::string>("end"));
}

TEST_CASE("a value from the environment is taken as it is", "[config][placeholders]") {
  LoadOptions options{.read_environment = true, .environment = Env{{"PYFLY_MESSAGING_KAFKA_CLIENT_ID", "${x}"}}};
  const Config config = Config::from_string("pyfly: {messaging: {kafka: {client-id: a}}}", "pyfly.yaml", options);
  CHECK(config.messaging().kafka.client_id == "${x}");
}

TEST_CASE("relaxed binding: kebab, snake and any case name one key", "[config][relaxed]") {
  const Config config = Config::from_string(
      "PyFly:\n"
      "  Messaging:\n"
      "    PROVIDER: kafka\n"
      "    kafka:\n"
      "      bootstrap_servers: snake:9092\n"
      "      Client_Id: snake-id\n"
      "      producer_properties:\n"
      "        linger.ms: 5\n");
  CHECK(config.messaging().provider == Provider::kafka);
  CHECK(config.messaging().kafka.bootstrap_servers == "snake:9092");
  CHECK(config.messaging().kafka.client_id == "snake-id");
  CHECK(config.messaging().kafka.producer_properties == std::map<std::string, std::string>{{"linger.ms", "5"}});
  CHECK(config.get("pyfly.messaging.kafka.bootstrap-servers") == std::optional<std::string>("snake:9092"));
  CHECK(config.get("pyfly.messaging.kafka.bootstrap_servers") == std::optional<std::string>("snake:9092"));
  CHECK(config.values().contains("pyfly.messaging.kafka.client-id"));
  // One key twice under two spellings is a duplicate; messages use the kebab form.
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    kafka:\n      bootstrap-servers: a:1\n      bootstrap_servers: b:2\n") ==
        "pyfly.yaml:5:7: pyfly.messaging.kafka.bootstrap-servers: duplicate key (first set at pyfly.yaml:4:7)");
  // A later file's snake spelling overrides an earlier kebab one.
  TempDir dir;
  dir.write("config/pyfly.yaml", "pyfly:\n  messaging:\n    kafka:\n      bootstrap-servers: first:1\n");
  dir.write("pyfly.yaml", "pyfly:\n  messaging:\n    kafka:\n      bootstrap_servers: second:2\n");
  CHECK(load_in(dir).messaging().kafka.bootstrap_servers == "second:2");
}

TEST_CASE("pyfly.toml is read like pyfly.yaml, errors with file:line:column", "[config][toml]") {
  const Config config = Config::from_string(
      "[pyfly.messaging]\n"
      "provider = \"kafka\"\n"
      "[pyfly.messaging.kafka]\n"
      "bootstrap-servers = \"${BOOT:toml:9092}\"\n"
      "embedded-brokers = 3\n"
      "enable-idempotence = true\n"
      "[pyfly.messaging.kafka.properties]\n"
      "\"compression.type\" = \"gzip\"\n"
      "\"linger.ms\" = 7\n"
      "[pyfly.profiles]\n"
      "active = [\"a\", \"b\"]\n",
      "pyfly.toml");
  CHECK(config.messaging().provider == Provider::kafka);
  CHECK(config.messaging().kafka.bootstrap_servers == "toml:9092");
  CHECK(config.messaging().kafka.embedded_brokers == 3);
  CHECK(config.messaging().kafka.properties ==
        std::map<std::string, std::string>{{"compression.type", "gzip"}, {"linger.ms", "7"}});
  CHECK(config.get("pyfly.profiles.active") == std::optional<std::string>("a,b"));
  CHECK(config.values().at("pyfly.messaging.provider").origin.describe() == "pyfly.toml:2:12");

  CHECK(error_of_yaml("[pyfly.messaging]\nprovider = \"kafak\"\n", "pyfly.toml") ==
        "pyfly.toml:2:12: pyfly.messaging.provider: found 'kafak'; allowed: auto, kafka, memory");
  CHECK(error_of_yaml("[pyfly.messaging]\nprovider = kafka\n", "pyfly.toml").starts_with("pyfly.toml:2:12: invalid TOML: "));
  CHECK(error_of_yaml("[pyfly.messaging]\nprovider = \"a\"\nprovider = \"b\"\n", "pyfly.toml")
            .starts_with("pyfly.toml:3:12: invalid TOML: "));
  CHECK(error_of_yaml("[pyfly.messaging]\nkafak = 1\n", "pyfly.toml") ==
        "pyfly.toml:2:1: unknown key pyfly.messaging.kafak; did you mean pyfly.messaging.kafka?");
}

TEST_CASE("provider rabbitmq says cppfly has no RabbitMQ adapter", "[config][errors]") {
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    provider: rabbitmq\n") ==
        "pyfly.yaml:3:15: pyfly.messaging.provider: found 'rabbitmq'; cppfly has no RabbitMQ adapter (PyFly's "
        "rabbitmq provider is Python-only); available providers: auto, kafka, memory");
}

TEST_CASE("secrets: PyFly's rule decides, and they show as ***", "[config][secrets]") {
  using cppfly::config::is_sensitive_key;
  using cppfly::config::shown_value;
  for (const char* key : {"sasl.password", "ssl.key.password", "ssl.keystore.password", "ssl.key.pem",
                          "sasl.oauthbearer.client.secret", "sasl.oauthbearer.config", "pyfly.db.passwd",
                          "my.api_key", "my.API-KEY", "x.token", "aws.credentials", "pyfly.security.private-key",
                          "key", "pyfly.signing.key", "pyfly.jwt.signing_key", "oauth.client_secret"}) {
    INFO(key);
    CHECK(is_sensitive_key(key));
  }
  for (const char* key : {"bootstrap.servers", "sasl.username", "sasl.mechanism", "ssl.ca.location", "keystore.type",
                          "pyfly.messaging.kafka.client-id", "monkey.business"}) {
    INFO(key);
    CHECK_FALSE(is_sensitive_key(key));
  }
  CHECK(shown_value("sasl.password", "hunter2") == "***");
  CHECK(shown_value("url", "postgres://app:hunter2@db:5432/x") == "postgres://app:***@db:5432/x");
  CHECK(shown_value("url", "https://example.org/path?a=b") == "https://example.org/path?a=b");
  CHECK(shown_value("url", "user@host") == "user@host");
}

TEST_CASE("secrets never appear in errors or in the config's description", "[config][secrets]") {
  const std::string secret = "s3cr3t-Value";
  // A misspelled key is reported by name; its value is not echoed.
  const std::string error = error_of_yaml("pyfly:\n  messaging:\n    kafka:\n      sasl-password: " + secret + "\n");
  CHECK(error.starts_with("pyfly.yaml:4:7: unknown key pyfly.messaging.kafka.sasl-password; "));
  CHECK(error.find(secret) == std::string::npos);
  const Config config = Config::from_string("pyfly:\n  messaging:\n    kafka:\n      properties:\n"
                                            "        sasl.password: " + secret + "\n"
                                            "        sasl.username: alice\n"
                                            "app:\n  db-url: \"postgres://u:" + secret + "@db/x\"\n");
  bool saw_password = false;
  for (const auto& line : config.describe()) {
    INFO(line);
    CHECK(line.find(secret) == std::string::npos);
    if (line.starts_with("pyfly.messaging.kafka.properties.sasl.password = *** (")) saw_password = true;
  }
  CHECK(saw_password);
  CHECK(config.describe().size() == config.values().size());
  CHECK(config.messaging().kafka.properties.at("sasl.password") == secret);  // the value itself is intact
}

TEST_CASE("nearest_name suggests a close name and nothing for a far one", "[config]") {
  const std::vector<std::string> names{"sasl.password", "sasl.username", "ssl.ca.location"};
  CHECK(cppfly::config::nearest_name("sasl.pasword", names) == std::optional<std::string>("sasl.password"));
  CHECK_FALSE(cppfly::config::nearest_name("zookeeper.connect", names).has_value());
}

TEST_CASE("a codec a PyFly consumer cannot decode is warned about, gzip is not", "[config]") {
  const Config lz4 = Config::from_string("pyfly:\n  messaging:\n    kafka:\n      producer-properties:\n"
                                         "        compression.type: lz4\n");
  REQUIRE(lz4.warnings().size() == 1);
  CHECK(lz4.warnings()[0] ==
        "<string>:5:27: pyfly.messaging.kafka.producer-properties.compression.type: lz4 is not readable by a PyFly "
        "consumer (pyfly[kafka] installs no lz4 library); gzip or none is read by both");
  const Config gzip = Config::from_string("pyfly:\n  messaging:\n    kafka:\n      properties:\n"
                                          "        compression.type: gzip\n");
  CHECK(gzip.warnings().empty());
}

TEST_CASE("transactional-id-prefix turns transactions on and needs idempotence", "[config]") {
  CHECK(Config::from_string("pyfly: {messaging: {kafka: {transactional_id_prefix: orders-tx-}}}")
            .messaging()
            .kafka.transactional_id_prefix == "orders-tx-");
  CHECK(Config::from_string("pyfly: {messaging: {kafka: {}}}").messaging().kafka.transactional_id_prefix.empty());
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    kafka:\n      transactional-id-prefix: tx-\n"
                      "      enable-idempotence: false\n      acks: 1\n") ==
        "pyfly.yaml:5:27: pyfly.messaging.kafka.enable-idempotence: found 'false'; transactions "
        "(transactional-id-prefix) need enable-idempotence: true");
}
