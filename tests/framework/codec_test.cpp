// JSON codec: typed decoding and its failure path.
#include <catch2/catch.hpp>

#include <cppfly/messaging/json_codec.hpp>
#include <cppfly/messaging/payload_logging.hpp>

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

TEST_CASE("codec: a parse error quotes the payload only when payload logging is on", "[codec][payloads]") {
  const Message m{.topic = "orders", .value = R"({"card":"4111-1111", oops})"};
  auto text_of = [&] {
    try {
      (void)parse_json(m);
    } catch (const PayloadDecodeError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  set_log_payloads(false);
  const std::string off = text_of();
  CHECK_THAT(off, Catch::Contains("orders") && Catch::Contains("parse error") &&
                      Catch::Contains("payload: <26 bytes, not logged>"));
  CHECK_THAT(off, !Catch::Contains("4111") && !Catch::Contains("oops"));
  set_log_payloads(true);
  const std::string on = text_of();
  set_log_payloads(false);
  CHECK_THAT(on, Catch::Contains(R"('{"card":"4111-1111", oops}')"));
}

TEST_CASE("codec: payloads in logs are cut and escaped", "[codec][payloads]") {
  set_log_payloads(false);
  CHECK(payload_for_log("secret") == "<6 bytes, not logged>");
  set_log_payloads(true);
  CHECK(payload_for_log("a'b\\c\n\xC3\xA9") == "'a\\x27b\\x5cc\\x0a\\xc3\\xa9'");
  const std::string big(1000, 'x');
  CHECK(payload_for_log(big) == "'" + std::string(kPayloadLogLimit, 'x') + "'... (1000 bytes)");
  set_log_payloads(false);
}
