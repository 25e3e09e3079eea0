#include <catch2/catch.hpp>

#include <cppfly/messaging.hpp>

CPPFLY_MESSAGE_LISTENER(handle_order, (const cppfly::messaging::Message&), {.topic = "orders"}) {}

TEST_CASE("two listeners with one name are reported with both file:line, and start is refused", "[registry]") {
  const auto& problems = cppfly::messaging::ListenerRegistry::global().problems();
  REQUIRE(problems.size() == 1);
  CHECK_THAT(problems[0], Catch::Contains("two listeners are named 'handle_order'") &&
                              Catch::Contains("duplicate_listener_a.cpp:5") &&
                              Catch::Contains("duplicate_listener_b.cpp:5"));
  cppfly::Application app(cppfly::config::Config::from_string("pyfly: {messaging: {provider: memory}}"));
  CHECK_THROWS_WITH(app.start(), Catch::Contains("two listeners are named 'handle_order'"));
}
