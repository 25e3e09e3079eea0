// ListenerRegistry and make_listener: what is recorded, what is reported.
#include <catch2/catch.hpp>

#include <cppfly/messaging/listener.hpp>

using namespace cppfly::messaging;

TEST_CASE("registry lists what it holds", "[registry]") {
  ListenerRegistry registry;
  registry.add(make_listener("audit", [](const Message&) {},
                             {.topic = "orders", .topics = {"payments", "orders"}, .group_id = "audit", .retries = 2,
                              .dead_letter_topic = "audit-dlq"}));
  REQUIRE(registry.listeners().size() == 1);
  CHECK(registry.listeners()[0].options.all_topics() == std::vector<std::string>{"orders", "payments"});
  CHECK(registry.problems().empty());
  auto lines = registry.describe();
  REQUIRE(lines.size() == 1);
  CHECK_THAT(lines[0], Catch::Contains("audit topics=[orders,payments] group=audit retries=2") &&
                           Catch::Contains("dead_letter=audit-dlq") && Catch::Contains("ordering=partition"));
}

TEST_CASE("registry reports bad registrations instead of throwing", "[registry]") {
  ListenerRegistry registry;
  registry.add(make_listener("no_topic", [](const Message&) {}, {.group_id = "g"}));
  registry.add(make_listener("negative", [](const Message&) {}, {.topic = "t", .retries = -1}));
  registry.add(make_listener("wide", [](const Message&) {}, {.topic = "t", .concurrency = 5000}));
  registry.add(make_listener("loop", [](const Message&) {}, {.topic = "t", .dead_letter_topic = "t"}));
  registry.add(make_listener("loop", [](const Message&) {}, {.topic = "u"}));
  const auto& problems = registry.problems();
  REQUIRE(problems.size() == 5);
  CHECK_THAT(problems[0], Catch::Contains("'no_topic'") && Catch::Contains("names no topic"));
  CHECK_THAT(problems[1], Catch::Contains("retries must be >= 0"));
  CHECK_THAT(problems[2], Catch::Contains("concurrency 5000 is more than 1024"));
  CHECK_THAT(problems[3], Catch::Contains("dead_letter_topic 't' is also a topic"));
  CHECK_THAT(problems[4], Catch::Contains("two listeners are named 'loop'"));
}

TEST_CASE("make_listener decodes by the callable's parameter", "[registry][codec]") {
  std::vector<std::string> seen;
  auto raw = make_listener("raw", [&](const Message& m) { seen.push_back("raw:" + m.value); }, {.topic = "t"});
  auto json = make_listener("json", [&](const nlohmann::json& j) { seen.push_back("json:" + j.at("a").dump()); },
                            {.topic = "t"});
  auto typed = make_listener("typed", [&](const std::map<std::string, int>& m, const Message& msg) {
    seen.push_back("typed:" + std::to_string(m.at("a")) + "@" + msg.topic);
  }, {.topic = "t"});
  Message message{.topic = "t", .value = R"({"a":5})"};
  raw.make_handler(nullptr)(message);
  json.make_handler(nullptr)(message);
  typed.make_handler(nullptr)(message);
  CHECK(seen == std::vector<std::string>{R"(raw:{"a":5})", "json:5", "typed:5@t"});
  CHECK_THROWS_AS(typed.make_handler(nullptr)(Message{.topic = "t", .value = "nope"}), PayloadDecodeError);
}
