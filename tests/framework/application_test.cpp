// Application: config → broker → listeners → start → hooks → stop, and the broker factory.
#include <catch2/catch.hpp>

#include <cppfly/application.hpp>
#include <cppfly/messaging/broker_factory.hpp>
#include <cppfly/messaging/in_memory_broker.hpp>
#include <cppfly/messaging/listener.hpp>

#include "null_port.hpp"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <atomic>
#include <fstream>
#include <thread>

using namespace cppfly;
using namespace cppfly::messaging;
using namespace std::chrono_literals;

namespace {

config::Config memory_config() { return config::Config::from_string("pyfly:\n  messaging:\n    provider: memory\n"); }

InMemoryMessageBroker& memory(Application& app) { return dynamic_cast<InMemoryMessageBroker&>(app.broker()); }

struct Order {
  std::string id;
  int quantity{};
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(Order, id, quantity)
};

/// Runs Application::run with these arguments; returns the exit code and what it wrote to stderr.
std::pair<int, std::string> run_app(std::vector<std::string> args) {
  std::vector<char*> argv;
  std::string program = "service";
  argv.push_back(program.data());
  for (auto& a : args) argv.push_back(a.data());
  std::fflush(stderr);
  auto path = std::filesystem::temp_directory_path() / ("cppfly-stderr-" + std::to_string(::getpid()));
  FILE* capture = std::fopen(path.c_str(), "w+");
  int saved = ::dup(2);
  ::dup2(::fileno(capture), 2);
  int code = Application::run(static_cast<int>(argv.size()), argv.data());
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::fclose(capture);
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::filesystem::remove(path);
  return {code, text};
}

struct TempDir {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("cppfly-app-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
    return (path / name).string();
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

}  // namespace

TEST_CASE("application binds listeners, decodes typed payloads and dead-letters failures", "[application]") {
  ListenerRegistry registry;
  std::vector<Order> received;
  registry.add(make_listener("inventory", [&](const Order& o) { received.push_back(o); },
                             {.topic = "orders", .group_id = "inventory", .dead_letter_topic = "orders-dlq"}));
  Application app(memory_config(), registry);
  app.start();
  auto& broker = memory(app);
  broker.publish("orders", R"({"id":"A","quantity":2})");
  broker.publish("orders", R"({"id":"B"})");  // no quantity: cannot decode
  REQUIRE(received.size() == 1);
  CHECK(received[0].id == "A");
  auto dlq = broker.published("orders-dlq");
  REQUIRE(dlq.size() == 1);
  CHECK(dlq[0].value == R"({"id":"B"})");
  CHECK(dlq[0].headers.get("x-exception") == std::optional<std::string_view>("cppfly::messaging::PayloadDecodeError"));
  app.stop();
  CHECK_FALSE(broker.running());
}

TEST_CASE("application: a listener with concurrency 3 gets each message of its group once", "[application]") {
  ListenerRegistry registry;
  int calls = 0;
  registry.add(make_listener("worker", [&](const Message&) { ++calls; },
                             {.topic = "jobs", .group_id = "workers", .concurrency = 3}));
  Application app(memory_config(), registry);
  app.start();
  for (int i = 0; i < 6; ++i) app.broker().publish("jobs", "j");
  CHECK(calls == 6);  // each message once
}

TEST_CASE("application runs after-start hooks once started and before-stop hooks while the broker runs",
          "[application]") {
  ListenerRegistry registry;
  std::vector<std::string> events;
  registry.add(make_listener("log", [&](const Message& m) { events.push_back("got " + m.value); }, {.topic = "t"}));
  registry.add(LifecycleHook{.name = "hello", .phase = HookPhase::after_start, .location = {}, .run = [&](Application& a) {
                               events.push_back("after start");
                               a.broker().publish("t", "from start hook");
                             }});
  registry.add(LifecycleHook{.name = "bye", .phase = HookPhase::before_stop, .location = {}, .run = [&](Application& a) {
                               events.push_back("before stop");
                               a.broker().publish("t", "from stop hook");
                             }});
  Application app(memory_config(), registry);
  app.start();
  app.stop();
  app.stop();  // idempotent
  CHECK(events == std::vector<std::string>{"after start", "got from start hook", "before stop", "got from stop hook"});
}

TEST_CASE("application wait() returns after request_stop from another thread", "[application]") {
  ListenerRegistry registry;
  Application app(memory_config(), registry);
  app.start();
  std::thread stopper([&] { app.request_stop(); });
  app.wait();  // returns: request_stop has been called (or is called) on the other thread
  stopper.join();
  app.stop();
  CHECK_FALSE(app.running());
}

TEST_CASE("application refuses to start with registration problems, naming them", "[application]") {
  ListenerRegistry registry;
  registry.add(make_listener("x", [](const Message&) {}, {.group_id = "g"}));
  Application app(memory_config(), registry);
  CHECK_THROWS_WITH(app.start(), Catch::Contains("listener 'x'") && Catch::Contains("names no topic"));
  CHECK_FALSE(app.running());
}

TEST_CASE("broker factory: auto picks kafka when available, else memory, and refuses an unknown adapter", "[factory]") {
  BrokerFactory only_memory;
  only_memory.add("memory", [](const config::MessagingProperties&) { return std::make_unique<InMemoryMessageBroker>(); });
  CHECK(only_memory.resolve(config::Provider::auto_detect) == "memory");
  CHECK(only_memory.resolve(config::Provider::kafka) == "kafka");
  config::MessagingProperties kafka_props;
  kafka_props.provider = config::Provider::kafka;
  CHECK_THROWS_WITH(only_memory.create(kafka_props),
                    Catch::Contains("'kafka' is not available in this build") && Catch::Contains("available: memory"));

  BrokerFactory with_kafka = only_memory;
  with_kafka.add("kafka", [](const config::MessagingProperties&) { return std::make_unique<InMemoryMessageBroker>(); });
  CHECK(with_kafka.resolve(config::Provider::auto_detect) == "kafka");

  auto builtin = BrokerFactory::with_builtin_adapters();
  CHECK(builtin.has("memory"));
  CHECK(builtin.has("kafka") == CPPFLY_TEST_HAS_KAFKA);
  config::MessagingProperties defaults;
  CHECK(dynamic_cast<InMemoryMessageBroker*>(builtin.create(defaults).get()) != nullptr);  // default: memory
}

TEST_CASE("Application::run: bad config ends in one line on stderr and exit code 2", "[application][config]") {
  TempDir dir;
  SECTION("misspelt provider") {
    auto path = dir.write("pyfly.yaml", "pyfly:\n  messaging:\n    provider: kafak\n");
    auto [code, err] = run_app({"--config", path});
    CHECK(code == 2);
    CHECK_THAT(err, Catch::StartsWith("cppfly: ") && Catch::Contains("pyfly.yaml:3:15") &&
                        Catch::Contains("auto, kafka, memory"));
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  }
  SECTION("missing file") {
    auto [code, err] = run_app({"--config", (dir.path / "nope.yaml").string()});
    CHECK(code == 2);
    CHECK_THAT(err, Catch::Contains("nope.yaml"));
  }
  SECTION("unknown argument") {
    auto [code, err] = run_app({"--verbose"});
    CHECK(code == 2);
    CHECK_THAT(err, Catch::Contains("unknown argument '--verbose'"));
  }
  SECTION("option without a value") {
    auto [code, err] = run_app({"--profile"});
    CHECK(code == 2);
    CHECK_THAT(err, Catch::Contains("--profile needs a value"));
  }
}

TEST_CASE("Application(argc, argv) loads the config as run() does", "[application][config]") {
  TempDir dir;
  auto path = dir.write("svc.yaml",
                        "pyfly:\n  messaging:\n    provider: memory\norder-service:\n  timeout-ms: 250\n");
  dir.write("svc-fast.yaml", "order-service:\n  timeout-ms: 50\n");
  auto argv_of = [](std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return argv;
  };
  ListenerRegistry registry;
  SECTION("--config PATH") {
    std::vector<std::string> args{"service", "--config", path};
    auto argv = argv_of(args);
    Application app(static_cast<int>(argv.size()), argv.data(), registry);
    CHECK(app.config().get("order-service.timeout-ms") == "250");
    CHECK(app.config().messaging().provider == config::Provider::memory);
    REQUIRE(app.config().sources().size() == 1);
    CHECK_THAT(app.config().sources()[0], Catch::EndsWith("svc.yaml"));
  }
  SECTION("--config=PATH --profile NAME") {
    std::vector<std::string> args{"service", "--config=" + path, "--profile", "fast"};
    auto argv = argv_of(args);
    Application app(static_cast<int>(argv.size()), argv.data(), registry);
    CHECK(app.config().get("order-service.timeout-ms") == "50");
  }
  SECTION("an unknown argument throws ConfigError") {
    std::vector<std::string> args{"service", "--config", path, "--verbose"};
    auto argv = argv_of(args);
    CHECK_THROWS_AS(Application(static_cast<int>(argv.size()), argv.data(), registry), config::ConfigError);
    CHECK_THROWS_WITH(Application(static_cast<int>(argv.size()), argv.data(), registry),
                      Catch::Contains("unknown argument '--verbose'"));
  }
  SECTION("a missing config file throws ConfigError") {
    std::vector<std::string> args{"service", "--config", (dir.path / "nope.yaml").string()};
    auto argv = argv_of(args);
    CHECK_THROWS_AS(Application(static_cast<int>(argv.size()), argv.data(), registry), config::ConfigError);
  }
}

TEST_CASE("a config error raised by the broker names where its key was set", "[application][config]") {
  /// A broker whose start() refuses a property, as the Kafka adapter does.
  struct RefusingBroker : cppfly_test::NullPort {
    void start() override {
      throw config::ConfigError("pyfly.messaging.kafka.properties.compression.type: librdkafka refused it",
                                "pyfly.messaging.kafka.properties.compression.type");
    }
  };
  ListenerRegistry registry;
  Application app(config::Config::from_string("pyfly:\n  messaging:\n    kafka:\n      properties:\n"
                                              "        compression.type: zstdd\n",
                                              "svc.yaml"),
                  registry);
  app.use_broker(std::make_unique<RefusingBroker>());
  CHECK_THROWS_WITH(app.start(), Catch::StartsWith("svc.yaml:5:27: pyfly.messaging.kafka.properties.compression.type"));
}

TEST_CASE("application stopped and started again delivers each message once per listener", "[application]") {
  ListenerRegistry registry;
  int broadcast = 0, grouped = 0;
  registry.add(make_listener("all", [&](const Message&) { ++broadcast; }, {.topic = "t"}));
  registry.add(make_listener("one", [&](const Message&) { ++grouped; }, {.topic = "t", .group_id = "g"}));
  Application app(memory_config(), registry);
  app.start();
  app.broker().publish("t", "1");
  app.stop();
  app.start();
  app.broker().publish("t", "2");
  CHECK(broadcast == 2);
  CHECK(grouped == 2);
  auto& broker = memory(app);
  app.stop();
  CHECK_FALSE(broker.running());
}

TEST_CASE("application stop cuts a retry wait short and leaves the message unsettled", "[application][retry]") {
  ListenerRegistry registry;
  std::atomic<int> calls{0};
  registry.add(make_listener(
      "flaky",
      [&](const Message&) {
        ++calls;
        throw std::runtime_error("down");
      },
      {.topic = "t", .group_id = "g", .retries = 5, .retry_delay = 60s, .dead_letter_topic = "t-dlq"}));
  Application app(memory_config(), registry);
  app.start();
  std::exception_ptr outcome;
  std::thread publisher([&] {
    try {
      app.broker().publish("t", "x");  // the memory broker delivers inline: the retries run here
    } catch (...) {
      outcome = std::current_exception();
    }
  });
  while (calls.load() == 0) std::this_thread::yield();
  const auto start = std::chrono::steady_clock::now();
  app.stop();  // waits for the delivery in flight, which no longer waits 60 s for its retry
  publisher.join();
  CHECK(std::chrono::steady_clock::now() - start < 30s);
  CHECK_FALSE(outcome);  // dropped unsettled (on Kafka: delivered again after a restart)
  CHECK(calls.load() == 1);
  CHECK(memory(app).published("t-dlq").empty());
}
