// JSON codec: typed decoding and its failure path.
#include <catch2/catch.hpp>

#include <cppfly/messaging/json_codec.hpp>

using namespace cppfly::messaging;

namespace {
struct Order {
  std::string id;
  double amount{};
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(Order, id, amount)
};
}  // namespace

TEST_CASE("codec: encode then decode a typed value round-trips", "[codec]") {
  Message m{.topic = "orders", .value = encode_json(Order{.id = "A-1", .amount = 12.5})};
  CHECK(m.value == R"({"amount":12.5,"id":"A-1"})");
  auto order = decode_json<Order>(m);
  CHECK(order.id == "A-1");
  CHECK(order.amount == 12.5);
}

TEST_CASE("codec: invalid JSON is a PayloadDecodeError naming the topic", "[codec]") {
  Message m{.topic = "orders", .value = "{not json"};
  CHECK_THROWS_AS(parse_json(m), PayloadDecodeError);
  CHECK_THROWS_WITH(decode_json<Order>(m), Catch::Contains("orders") && Catch::Contains("parse"));
}

TEST_CASE("codec: valid JSON of the wrong shape is a PayloadDecodeError", "[codec]") {
  CHECK_THROWS_AS(decode_json<Order>(Message{.topic = "orders", .value = R"({"id":"A"})"}), PayloadDecodeError);
  CHECK_THROWS_AS(decode_json<Order>(Message{.topic = "orders", .value = R"({"id":7,"amount":1})"}),
                  PayloadDecodeError);
  CHECK_THROWS_AS(decode_json<Order>(Message{.topic = "orders", .value = "[1,2]"}), PayloadDecodeError);
}
