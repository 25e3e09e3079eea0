// cppfly against Kafka clients nobody here wrote, on a real broker (CPPFLY_KAFKA_BOOTSTRAP):
// kcat (librdkafka's command-line client) and Python's confluent-kafka (Debian's
// python3-confluent-kafka, run as a PyFly service would). Each external client runs as a
// subprocess under `timeout`; without the broker, kcat or the Python module a test FAILS.
#include <algorithm>
#include <charconv>
#include <future>
#include <atomic>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <cppfly/application.hpp>
#include <cppfly/messaging/json_codec.hpp>
#include <cppfly/messaging/listener.hpp>
#include <cppfly/messaging/trace_context.hpp>

#include "support.hpp"

namespace {

using namespace cppfly;
using namespace cppfly::integration;
using namespace cppfly::messaging;
using nlohmann::json;

constexpr const char* kPython = "/usr/bin/python3";  // Debian's, with python3-confluent-kafka
const std::string kPyflyClient = std::string(CPPFLY_INTEGRATION_DIR) + "/pyfly_client.py";

/// What PyFly's order service publishes (a dict, json.dumps'ed).
struct PyOrder {
  std::string order_id;
  std::string customer;
  int quantity{};
  double price{};
  std::vector<std::string> tags;
  bool express{};
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(PyOrder, order_id, customer, quantity, price, tags, express)
  friend bool operator==(const PyOrder&, const PyOrder&) = default;
};

std::ostream& operator<<(std::ostream& out, const PyOrder& order) { return out << json(order).dump(); }

/// Bytes as Catch prints them: escapes for anything outside printable ASCII.
std::string printable(const std::string& bytes) {
  std::ostringstream out;
  for (unsigned char c : bytes) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out << c;
    } else {
      constexpr std::string_view hex = "0123456789abcdef";
      out << "\\x" << hex[c >> 4U] << hex[c & 0xFU];
    }
  }
  return out.str();
}

std::string to_hex(const std::string& bytes) {
  std::string out;
  constexpr std::string_view hex = "0123456789abcdef";
  for (unsigned char c : bytes) {
    out += hex[c >> 4U];
    out += hex[c & 0xFU];
  }
  return out;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

/// kcat must be installed; FAILs the test clearly otherwise.
void require_kcat() {
  const auto result = run_process({"kcat", "-V"}, {}, std::chrono::seconds(20));
  INFO(result.describe());
  if (result.exit_code != 0) FAIL("kcat is not usable (install it: scripts/setup kafka, or apt-get install kcat)");
}

/// /usr/bin/python3 must import confluent_kafka; FAILs the test clearly otherwise.
void require_python_client() {
  const auto result = run_process({kPython, kPyflyClient, "check"}, {}, std::chrono::seconds(30));
  INFO(result.describe());
  if (result.exit_code != 0) {
    FAIL(std::string(kPython) + " cannot import confluent_kafka (install Debian's python3-confluent-kafka; the "
                                "pyenv python3 on PATH does not have it)");
  }
}

/// One record for kcat -P: written to a file, so kcat sends the whole file as one value, byte for byte.
struct KcatRecord {
  std::optional<std::string> key;
  std::vector<Headers::Entry> headers;    ///< kcat -H name=value, in order
  std::vector<std::string> null_headers;  ///< kcat -H name: a header with a null value, after the others
  std::string value;
};

void kcat_produce(const std::string& servers, const std::string& topic, const KcatRecord& record) {
  const TempFile file(record.value);
  std::vector<std::string> argv{"kcat", "-P", "-b", servers, "-t", topic, "-p", "0"};
  if (record.key) {
    argv.push_back("-k");
    argv.push_back(*record.key);
  }
  for (const auto& [name, value] : record.headers) {
    argv.push_back("-H");
    argv.push_back(name + "=" + value);
  }
  for (const auto& name : record.null_headers) {
    argv.push_back("-H");
    argv.push_back(name);
  }
  argv.push_back(file.path());
  const auto result = run_process(argv);
  INFO(result.describe());
  REQUIRE(result.exit_code == 0);
}

DeliveryResult deliver(MessageBrokerPort& broker, const std::string& topic, std::string value,
                       PublishOptions options = {}) {
  auto future = broker.publish_async(topic, std::move(value), std::move(options));
  REQUIRE(future.wait_for(kWait) == std::future_status::ready);
  return future.get();
}

/// Every byte value once, in order.
std::string all_bytes() {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  return bytes;
}

/// The flattened ["name", "value", ...] form kcat -J prints headers in.
json flat_headers(const std::vector<Headers::Entry>& headers) {
  json flat = json::array();
  for (const auto& [name, value] : headers) {
    flat.push_back(name);
    flat.push_back(value);
  }
  return flat;
}

}  // namespace

TEST_CASE("interop: kcat -> cppfly: key, value and headers arrive byte for byte", "[kafka][real][interop][kcat]") {
  const auto servers = bootstrap_servers();
  require_kcat();
  const auto topic = unique_name("kcat-in");
  create_topic(servers, topic, 1);

  Collector<Message> received;
  ListenerRegistry registry;
  registry.add(make_listener("raw", [received](const Message& message) { received.add(message); },
                             {.topic = topic, .group_id = unique_name("raw")}));
  Application app(kafka_config(servers), registry);
  app.start();

  const std::vector<KcatRecord> records{
      {.key = "order-1 \xE2\x9C\x93",
       .headers = {{"h1", "v1"},
                   {"h2", "v2"},
                   {"trace", "t\xC3\xBCrkiye \xF0\x9F\x9A\x80"},
                   {"dup", "x"},
                   {"dup", "y"},
                   {"eq", "a=b"}},
       .null_headers = {},
       .value = "hello\x01 w\xC3\xB6rld \xE2\x9C\x93\nline two\n"},
      {.key = "", .headers = {{"h1", "v1"}}, .null_headers = {}, .value = R"({"id":2})"},
      {.key = std::nullopt, .headers = {}, .null_headers = {}, .value = all_bytes()},
  };
  for (const auto& record : records) kcat_produce(servers, topic, record);

  INFO("received so far: " << received.size());
  REQUIRE(received.wait_for_count(records.size()));
  const auto messages = received.items();
  REQUIRE(messages.size() == records.size());
  for (std::size_t i = 0; i < records.size(); ++i) {
    INFO("record " << i);
    const auto& message = messages[i];
    CHECK(message.topic == topic);
    CHECK(message.partition == 0);
    CHECK(message.offset == static_cast<std::int64_t>(i));
    CHECK(printable(message.value) == printable(records[i].value));
    CHECK(message.value == records[i].value);
    CHECK(message.key.has_value() == records[i].key.has_value());
    if (message.key && records[i].key) CHECK(printable(*message.key) == printable(*records[i].key));
    CHECK(message.headers.entries() == records[i].headers);
  }
  app.stop();
}

TEST_CASE("interop: kcat -> cppfly: a header without a value arrives as an empty value", "[kafka][real][interop][kcat]") {
  const auto servers = bootstrap_servers();
  require_kcat();
  const auto topic = unique_name("kcat-null-header");
  create_topic(servers, topic, 1);

  Collector<Message> received;
  ListenerRegistry registry;
  registry.add(make_listener("raw", [received](const Message& message) { received.add(message); },
                             {.topic = topic, .group_id = unique_name("raw")}));
  Application app(kafka_config(servers), registry);
  app.start();
  kcat_produce(servers, topic, {.key = "k", .headers = {{"before", "1"}}, .null_headers = {"flag"}, .value = "v"});
  REQUIRE(received.wait_for_count(1));
  const auto message = received.items().front();
  const std::vector<Headers::Entry> expected{{"before", "1"}, {"flag", ""}};
  CHECK(message.headers.entries() == expected);
  app.stop();
}

TEST_CASE("interop: cppfly -> kcat: records read back identical (kcat -J)", "[kafka][real][interop][kcat]") {
  const auto servers = bootstrap_servers();
  require_kcat();
  const auto topic = unique_name("kcat-out");
  create_topic(servers, topic, 1);

  ListenerRegistry registry;  // a publisher only
  Application app(kafka_config(servers), registry);
  app.start();

  struct Sent {
    std::optional<std::string> key;
    std::vector<Headers::Entry> headers;
    std::string value;
  };
  const std::vector<Sent> sent{
      {"k-1 \xE2\x9C\x93",
       {{"h1", "v1"}, {"h2", "v=2"}, {"dup", "x"}, {"dup", "y"}, {"trace", "\xC3\xBC \xF0\x9F\x9A\x80"}, {"empty", ""}},
       "hello\x01 w\xC3\xB6rld \xE2\x9C\x93\n{\"n\":1}"},
      {"", {}, "empty key"},
      {std::nullopt, {{"only", "one"}}, "no key"},
  };
  for (const auto& record : sent) {
    Headers headers;
    for (const auto& [name, value] : record.headers) headers.add(name, value);
    const auto result = deliver(app.broker(), topic, record.value, {.key = record.key, .headers = headers});
    CHECK(result.partition == 0);
  }
  app.stop();

  const auto result = run_process({"kcat", "-C", "-b", servers, "-t", topic, "-o", "beginning", "-c",
                                   std::to_string(sent.size()), "-e", "-J"});
  INFO(result.describe());
  REQUIRE(result.exit_code == 0);
  const auto lines = lines_of(result.out);
  REQUIRE(lines.size() == sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    INFO("kcat line " << i << ": " << lines[i]);
    const json record = json::parse(lines[i]);
    CHECK(record["topic"] == topic);
    CHECK(record["offset"] == i);
    CHECK(record["payload"] == sent[i].value);
    if (sent[i].key) {
      CHECK(record["key"] == *sent[i].key);
    } else {
      CHECK(record["key"].is_null());
    }
    if (sent[i].headers.empty()) {
      CHECK_FALSE(record.contains("headers"));
    } else {
      CHECK(record["headers"] == flat_headers(sent[i].headers));
    }
  }
}

TEST_CASE("interop: cppfly -> kcat: an empty value stays an empty value, not a null (tombstone)",
          "[kafka][real][interop][kcat]") {
  const auto servers = bootstrap_servers();
  require_kcat();
  const auto topic = unique_name("kcat-empty");
  create_topic(servers, topic, 1);
  ListenerRegistry registry;
  Application app(kafka_config(servers), registry);
  app.start();
  deliver(app.broker(), topic, "", {.key = "k"});
  app.stop();

  // %S: the value's length (-1 for a null value).
  const auto result =
      run_process({"kcat", "-C", "-b", servers, "-t", topic, "-o", "beginning", "-c", "1", "-e", "-f", "%k|%S\n"});
  INFO(result.describe());
  REQUIRE(result.exit_code == 0);
  CHECK(result.out == "k|0\n");
}

TEST_CASE("interop: cppfly -> kcat: binary keys and values byte for byte", "[kafka][real][interop][kcat]") {
  const auto servers = bootstrap_servers();
  require_kcat();
  const auto topic = unique_name("kcat-binary");
  create_topic(servers, topic, 1);
  ListenerRegistry registry;
  Application app(kafka_config(servers), registry);
  app.start();
  const std::string key("\x00\xff key \x01", 8);
  const std::string value = all_bytes() + "\n" + all_bytes();
  deliver(app.broker(), topic, value, {.key = key});
  app.stop();

  // %K / %S: key and value lengths in text, so the raw bytes can be cut out exactly.
  const auto result = run_process(
      {"kcat", "-C", "-b", servers, "-t", topic, "-o", "beginning", "-c", "1", "-e", "-f", "%K|%k|%S|%s|end"});
  INFO(result.describe());
  REQUIRE(result.exit_code == 0);
  const std::string& out = result.out;
  auto read_length = [&](std::size_t& at) {
    const auto bar = out.find('|', at);
    REQUIRE(bar != std::string::npos);
    long length = -2;
    std::from_chars(out.data() + at, out.data() + bar, length);
    at = bar + 1;
    return length;
  };
  std::size_t at = 0;
  const long key_length = read_length(at);
  REQUIRE(key_length == static_cast<long>(key.size()));
  CHECK(to_hex(out.substr(at, key.size())) == to_hex(key));
  at += key.size() + 1;
  const long value_length = read_length(at);
  REQUIRE(value_length == static_cast<long>(value.size()));
  CHECK(to_hex(out.substr(at, value.size())) == to_hex(value));
  CHECK(out.substr(at + value.size()) == "|end");
}

TEST_CASE("interop: kcat -> cppfly: compressed batches (gzip, snappy, lz4, zstd) and a 700 KB value",
          "[kafka][real][interop][kcat]") {
  const auto servers = bootstrap_servers();
  require_kcat();
  const auto topic = unique_name("kcat-codecs");
  create_topic(servers, topic, 1);

  Collector<Message> received;
  ListenerRegistry registry;
  registry.add(make_listener("raw", [received](const Message& message) { received.add(message); },
                             {.topic = topic, .group_id = unique_name("raw")}));
  Application app(kafka_config(servers), registry);
  app.start();

  const std::vector<std::string> codecs{"gzip", "snappy", "lz4", "zstd"};
  std::vector<std::string> expected;
  std::string text;
  for (int i = 0; i < 4000; ++i) text += "line " + std::to_string(i) + " \xE2\x9C\x93 compressible\n";
  for (const auto& codec : codecs) {
    const std::string value = codec + ":" + text;
    const TempFile file(value);
    const auto result = run_process({"kcat", "-P", "-b", servers, "-t", topic, "-p", "0", "-z", codec, "-k", codec,
                                     "-H", "codec=" + codec, file.path()});
    INFO(result.describe());
    REQUIRE(result.exit_code == 0);
    expected.push_back(value);
  }
  std::string large;
  std::uint64_t state = 0x9E3779B97F4A7C15ULL;  // xorshift: incompressible bytes, reproducible
  while (large.size() < 700 * 1024) {
    state ^= state << 13U;
    state ^= state >> 7U;
    state ^= state << 17U;
    large.push_back(static_cast<char>(state & 0xFFU));
  }
  {
    const TempFile file(large);
    const auto result = run_process({"kcat", "-P", "-b", servers, "-t", topic, "-p", "0", "-k", "large", file.path()});
    INFO(result.describe());
    REQUIRE(result.exit_code == 0);
    expected.push_back(large);
  }

  INFO("received so far: " << received.size());
  REQUIRE(received.wait_for_count(expected.size()));
  app.stop();
  const auto messages = received.items();
  REQUIRE(messages.size() == expected.size());
  for (std::size_t i = 0; i < codecs.size(); ++i) {
    INFO("codec " << codecs[i]);
    CHECK(messages[i].key == std::optional<std::string>(codecs[i]));
    CHECK(messages[i].headers.get("codec") == std::optional<std::string_view>(codecs[i]));
    CHECK(messages[i].value.size() == expected[i].size());
    CHECK(messages[i].value == expected[i]);
  }
  CHECK(messages.back().value.size() == large.size());
  CHECK(messages.back().value == large);
}

TEST_CASE("interop: cppfly with compression set through pyfly properties -> kcat and Python read it",
          "[kafka][real][interop][kcat][python]") {
  const auto servers = bootstrap_servers();
  require_kcat();
  require_python_client();
  const auto topic = unique_name("zstd-out");
  create_topic(servers, topic, 1);

  // Pass-through librdkafka properties, as a PyFly config would carry them.
  const auto config = kafka_config(servers,
                                   "      producer-properties:\n"
                                   "        compression.type: zstd\n"
                                   "        linger.ms: 20\n");
  ListenerRegistry registry;
  Application app(config, registry);
  app.start();
  std::vector<PyOrder> orders;
  std::vector<std::future<DeliveryResult>> deliveries;
  for (int i = 0; i < 50; ++i) {
    orders.push_back({"Z-" + std::to_string(i), "Zo\xC3\xAB", i, i * 1.5, {"zstd"}, i % 2 == 0});
    deliveries.push_back(app.broker().publish_async(topic, encode_json(orders.back()), {.key = orders.back().order_id}));
  }
  for (auto& delivery : deliveries) {
    REQUIRE(delivery.wait_for(kWait) == std::future_status::ready);
    delivery.get();
  }
  app.stop();

  const auto kcat = run_process({"kcat", "-C", "-b", servers, "-t", topic, "-o", "beginning", "-c",
                                 std::to_string(orders.size()), "-e", "-J"});
  INFO(kcat.describe());
  REQUIRE(kcat.exit_code == 0);
  const auto lines = lines_of(kcat.out);
  REQUIRE(lines.size() == orders.size());
  for (std::size_t i = 0; i < orders.size(); ++i) {
    const json record = json::parse(lines[i]);
    CHECK(record["key"] == orders[i].order_id);
    CHECK(json::parse(record["payload"].get<std::string>()).get<PyOrder>() == orders[i]);
  }

  const auto python = run_process({kPython, kPyflyClient, "consume", servers, topic, unique_name("py-group"),
                                   std::to_string(orders.size()), "40"});
  INFO(python.describe());
  REQUIRE(python.exit_code == 0);
  const auto consumed = lines_of(python.out);
  REQUIRE(consumed.size() == orders.size());
  for (std::size_t i = 0; i < orders.size(); ++i) {
    const json record = json::parse(consumed[i]);
    CHECK(record["key"] == orders[i].order_id);
    CHECK(record["payload"].get<PyOrder>() == orders[i]);
  }
}

TEST_CASE("interop: Python (PyFly-style producer) -> cppfly typed listener", "[kafka][real][interop][python]") {
  const auto servers = bootstrap_servers();
  require_python_client();
  const auto topic = unique_name("py-orders");
  create_topic(servers, topic, 2);

  struct Received {
    PyOrder order;
    Message message;
  };
  Collector<Received> received;
  ListenerRegistry registry;
  registry.add(make_listener(
      "orders", [received](const PyOrder& order, const Message& message) { received.add({order, message}); },
      {.topic = topic, .group_id = unique_name("orders"), .dead_letter_topic = topic + "-dlq"}));
  Application app(kafka_config(servers), registry);
  app.start();

  // What the Python side sends: json.dumps(payload) (ASCII-escaped by default, so "ë" and an emoji
  // travel as \u escapes, the emoji as a surrogate pair), plus a field this service does not know.
  const std::vector<PyOrder> orders{
      {"A-1", "Zo\xC3\xAB \xF0\x9F\x9A\x80", 3, 19.99, {"gift", "fragile"}, true},
      {"A-2", "Bob", 1, 0.5, {}, false},
      {"A-3", "\xE5\xB1\xB1\xE7\x94\xB0", 12, 1e6, {"bulk"}, false},
      {"A-4", "quote \" backslash \\ tab \t", 7, -2.25, {"x"}, true},
      {"A-5", "no key", 2, 3.0, {}, false},  // published without a key
  };
  auto key_of = [](const PyOrder& order) {
    return order.order_id == "A-5" ? std::nullopt : std::optional<std::string>(order.order_id);
  };
  const std::vector<Headers::Entry> headers{
      {"content-type", "application/json"}, {"x-pyfly-event", "OrderPlaced"}, {"trace", "\xC3\xBC-42"}};
  std::string input;
  for (const auto& order : orders) {
    json payload = order;
    payload["source"] = "pyfly";
    json line{{"key", key_of(order) ? json(*key_of(order)) : json(nullptr)}, {"headers", json::array()},
              {"payload", payload}};
    for (const auto& [name, value] : headers) line["headers"].push_back({name, value});
    input += line.dump() + "\n";
  }
  const auto produced = run_process({kPython, kPyflyClient, "produce", servers, topic}, input);
  INFO(produced.describe());
  REQUIRE(produced.exit_code == 0);
  std::map<std::string, std::pair<std::int32_t, std::int64_t>> placed;  // order id → (partition, offset)
  for (const auto& line : lines_of(produced.out)) {
    const json result = json::parse(line);
    const auto index = result["index"].get<std::size_t>();
    REQUIRE(index < orders.size());
    placed[orders[index].order_id] = {result["partition"].get<std::int32_t>(), result["offset"].get<std::int64_t>()};
  }
  REQUIRE(placed.size() == orders.size());

  INFO("received so far: " << received.size());
  REQUIRE(received.wait_for_count(orders.size()));
  app.stop();
  std::map<std::string, Received> by_id;
  for (const auto& item : received.items()) by_id.emplace(item.order.order_id, item);
  REQUIRE(by_id.size() == orders.size());
  for (const auto& order : orders) {
    INFO("order " << order.order_id);
    REQUIRE(by_id.contains(order.order_id));
    const auto& got = by_id.at(order.order_id);
    CHECK(got.order == order);
    CHECK(got.message.key == key_of(order));
    CHECK(got.message.headers.entries() == headers);
    CHECK(got.message.partition == placed.at(order.order_id).first);
    CHECK(got.message.offset == placed.at(order.order_id).second);
    // Python's json.dumps escapes non-ASCII: the value on the wire is pure ASCII.
    CHECK(std::all_of(got.message.value.begin(), got.message.value.end(),
                      [](char c) { return static_cast<unsigned char>(c) < 0x80; }));
  }
}

TEST_CASE("interop: cppfly -> Python consumer: key, headers and JSON payload", "[kafka][real][interop][python]") {
  const auto servers = bootstrap_servers();
  require_python_client();
  const auto topic = unique_name("cpp-orders");
  create_topic(servers, topic, 2);

  ListenerRegistry registry;
  Application app(kafka_config(servers), registry);
  app.start();
  const std::vector<PyOrder> orders{
      {"C-1", "Zo\xC3\xAB \xF0\x9F\x9A\x80", 3, 19.99, {"gift", "fragile"}, true},
      {"C-2", "Bob", 1, 0.1, {}, false},
      {"C-3", "\xE5\xB1\xB1\xE7\x94\xB0", 12, 1e6, {"bulk"}, false},
      {"C-4", "line\nbreak \x01 control", 7, -2.25, {"x"}, true},
  };
  const std::vector<Headers::Entry> headers{
      {"content-type", "application/json"}, {"x-cppfly-event", "OrderPlaced"}, {"trace", "\xE2\x9C\x93"}, {"empty", ""}};
  std::map<std::string, DeliveryResult> placed;
  for (const auto& order : orders) {
    Headers h;
    for (const auto& [name, value] : headers) h.add(name, value);
    placed[order.order_id] = deliver(app.broker(), topic, encode_json(order), {.key = order.order_id, .headers = h});
  }
  app.stop();

  const auto consumed = run_process({kPython, kPyflyClient, "consume", servers, topic, unique_name("py-group"),
                                     std::to_string(orders.size()), "40"});
  INFO(consumed.describe());
  REQUIRE(consumed.exit_code == 0);
  std::map<std::string, json> by_key;
  for (const auto& line : lines_of(consumed.out)) {
    const json record = json::parse(line);
    by_key[record["key"].get<std::string>()] = record;
  }
  REQUIRE(by_key.size() == orders.size());
  for (const auto& order : orders) {
    INFO("order " << order.order_id);
    REQUIRE(by_key.contains(order.order_id));
    const json& record = by_key.at(order.order_id);
    CHECK(record["payload"] == json(order));
    CHECK(record["payload"].get<PyOrder>() == order);
    CHECK(record["value_hex"] == to_hex(encode_json(order)));
    json expected_headers = json::array();
    for (const auto& [name, value] : headers) expected_headers.push_back({name, value});
    CHECK(record["headers"] == expected_headers);
    CHECK(record["partition"] == placed.at(order.order_id).partition);
    CHECK(record["offset"] == placed.at(order.order_id).offset);
  }
}

TEST_CASE("interop: cppfly -> PyFly's header view: strings, last of a repeated name, hex for bytes",
          "[kafka][real][interop][python]") {
  const auto servers = bootstrap_servers();
  require_python_client();
  const auto topic = unique_name("cpp-to-pyfly-headers");
  create_topic(servers, topic, 1);

  ListenerRegistry registry;
  Application app(kafka_config(servers), registry);
  app.start();
  Headers headers;
  headers.add("content-type", "application/json");
  headers.add("tag", "first");
  headers.add("tag", "second");          // PyFly keeps the last value of a repeated name
  headers.add("bytes", "\xff\xfe\x01");  // not UTF-8: PyFly shows its hex text
  headers.add("utf8", "\xC3\xBC");
  headers.add("empty", "");
  (void)deliver(app.broker(), topic, R"({"id":"H-1"})", {.key = "H-1", .headers = headers});
  app.stop();

  const auto consumed =
      run_process({kPython, kPyflyClient, "consume-pyfly", servers, topic, unique_name("py-group"), "1", "40"});
  INFO(consumed.describe());
  REQUIRE(consumed.exit_code == 0);
  const auto lines = lines_of(consumed.out);
  REQUIRE(lines.size() == 1);
  const json record = json::parse(lines[0]);
  CHECK(record["headers"] == json{{"content-type", "application/json"},
                                  {"tag", "second"},
                                  {"bytes", "fffe01"},
                                  {"utf8", "\xC3\xBC"},
                                  {"empty", ""}});
  CHECK(record["payload"] == json{{"id", "H-1"}});
}

TEST_CASE("interop: W3C trace context from kcat through two cppfly listeners, read back with kcat",
          "[kafka][real][interop][kcat][trace]") {
  const auto servers = bootstrap_servers();
  require_kcat();
  const auto in = unique_name("trace-in");
  const auto mid = unique_name("trace-mid");
  const auto out = unique_name("trace-out");
  for (const auto& topic : {in, mid, out}) create_topic(servers, topic, 1);

  // in -> "enrich" publishes one record to mid -> "ship" publishes two records to out.
  std::atomic<MessageBrokerPort*> broker{nullptr};
  Collector<Message> handled;
  ListenerRegistry registry;
  registry.add(make_listener("enrich", [&broker, handled, mid](const Message& m) {
    handled.add(m);
    (void)broker.load()->publish(mid, m.value + " enriched", {.key = m.key});
  }, {.topic = in, .group_id = unique_name("enrich")}));
  registry.add(make_listener("ship", [&broker, handled, out](const Message& m) {
    handled.add(m);
    (void)broker.load()->publish(out, m.value + " parcel 1", {.key = m.key});
    (void)broker.load()->publish(out, m.value + " parcel 2", {.key = m.key});
  }, {.topic = mid, .group_id = unique_name("ship")}));
  Application app(kafka_config(servers), registry);
  broker = &app.broker();
  app.start();

  const std::string trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  const std::string parent = "00f067aa0ba902b7";
  kcat_produce(servers, in,
               {.key = "order-9",
                .headers = {{"traceparent", "00-" + trace_id + "-" + parent + "-01"}, {"tracestate", "rojo=00f067aa0ba902b7"}},
                .null_headers = {},
                .value = "order 9"});
  INFO("handled so far: " << handled.size());
  REQUIRE(handled.wait_for_count(2));
  app.stop();

  /// The records of `topic` as kcat reads them: (traceparent, tracestate) of each.
  const auto read = [&](const std::string& topic, std::size_t count) {
    const auto result = run_process(
        {"kcat", "-C", "-b", servers, "-t", topic, "-o", "beginning", "-c", std::to_string(count), "-e", "-J"});
    INFO(result.describe());
    REQUIRE(result.exit_code == 0);
    std::vector<std::pair<std::string, std::string>> contexts;
    for (const auto& line : lines_of(result.out)) {
      const json record = json::parse(line);
      std::map<std::string, std::string> headers;
      const json& flat = record["headers"];
      for (std::size_t i = 0; i + 1 < flat.size(); i += 2) headers[flat[i].get<std::string>()] = flat[i + 1].get<std::string>();
      contexts.emplace_back(headers["traceparent"], headers["tracestate"]);
    }
    return contexts;
  };
  const auto enriched = read(mid, 1);
  const auto parcels = read(out, 2);
  REQUIRE(enriched.size() == 1);
  REQUIRE(parcels.size() == 2);
  std::set<std::string> spans{parent};
  for (const auto& [traceparent, tracestate] : {enriched[0], parcels[0], parcels[1]}) {
    INFO("traceparent " << traceparent << ", tracestate " << tracestate);
    const auto context = TraceContext::parse(traceparent, tracestate);
    REQUIRE(context);
    CHECK(context->trace_id() == trace_id);  // the same trace all the way
    CHECK(context->sampled());
    CHECK(tracestate == "rojo=00f067aa0ba902b7");
    spans.insert(context->span_id());
  }
  CHECK(spans.size() == 4);  // each publish is a span of its own
}
