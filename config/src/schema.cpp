#include "schema.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>

#include <fmt/format.h>

#include <cppfly/config/secrets.hpp>
#include <cppfly/config/suggest.hpp>

#include "text.hpp"

namespace cppfly::config::detail {
namespace {

enum class Shape { map, scalar, passthrough, ignored, topics };

struct SchemaNode {
  std::string_view name;
  Shape shape;
  std::string_view expected;  ///< what a scalar holds, for "found a map; expected ..." messages
};

constexpr std::string_view kDurationExpected = "a duration such as 500ms, 2s or 1m";

const std::vector<SchemaNode>& messaging_children() {
  static const std::vector<SchemaNode> children{
      {"provider", Shape::scalar, "one of auto, kafka, memory"},
      {"kafka", Shape::map, {}},
      {"listener", Shape::map, {}},
      {"log-payloads", Shape::scalar, "one of true, false, yes, no, on, off"},
      {"rabbitmq", Shape::ignored, {}},
      {"trace-propagation", Shape::scalar, "one of continue, always, off"},
  };
  return children;
}

const std::vector<SchemaNode>& listener_children() {
  static const std::vector<SchemaNode> children{
      {"max-buffered-records", Shape::scalar, "an integer from 1 to 10000000"},
      {"max-buffered-bytes", Shape::scalar, "a number of bytes from 1024 to 17179869184"},
  };
  return children;
}

const std::vector<SchemaNode>& kafka_children() {
  static const std::vector<SchemaNode> children{
      {"bootstrap-servers", Shape::scalar, "a comma-separated list of host:port, or embedded"},
      {"client-id", Shape::scalar, "a client id"},
      {"transactional-id-prefix", Shape::scalar, "a transactional id prefix"},
      {"embedded-brokers", Shape::scalar, "an integer from 1 to 16"},
      {"auto-offset-reset", Shape::scalar, "one of earliest, latest"},
      {"acks", Shape::scalar, "one of all, -1, 0, 1"},
      {"enable-idempotence", Shape::scalar, "one of true, false, yes, no, on, off"},
      {"commit-interval", Shape::scalar, kDurationExpected},
      {"connect-timeout", Shape::scalar, kDurationExpected},
      {"publish-timeout", Shape::scalar, kDurationExpected},
      {"reconnect-backoff-max", Shape::scalar, kDurationExpected},
      {"properties", Shape::passthrough, {}},
      {"producer-properties", Shape::passthrough, {}},
      {"consumer-properties", Shape::passthrough, {}},
      {"topics", Shape::topics, {}},
  };
  return children;
}

constexpr std::string_view kTopicExpected = "a map of topic configs (name: value)";

const std::vector<SchemaNode>& topic_children() {
  static const std::vector<SchemaNode> children{
      {"partitions", Shape::scalar, "an integer from 1 to 2147483647"},
      {"replication-factor", Shape::scalar, "an integer from 1 to 32767"},
      {"config", Shape::passthrough, {}},
      {"grow-partitions", Shape::scalar, "one of true, false, yes, no, on, off"},
  };
  return children;
}

/// Kafka's rule for a topic name: 1 to 249 of [a-zA-Z0-9._-], and neither "." nor "..".
bool valid_topic_name(std::string_view name) {
  if (name.empty() || name.size() > 249 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

/// Children of a schema map, by full dotted path; nullptr when the path is not a schema map.
const std::vector<SchemaNode>* children_of(std::string_view path) {
  if (path == "pyfly.messaging") return &messaging_children();
  if (path == "pyfly.messaging.kafka") return &kafka_children();
  if (path == "pyfly.messaging.listener") return &listener_children();
  return nullptr;
}

std::string child_names(const std::vector<SchemaNode>& children) {
  std::vector<std::string_view> names;
  names.reserve(children.size());
  for (const auto& child : children) names.push_back(child.name);
  return join(names, ", ");
}

bool is_under(std::string_view key, std::string_view prefix) {
  return key.size() > prefix.size() && key.starts_with(prefix) && key[prefix.size()] == '.';
}

[[noreturn]] void expected_map(const Entry& entry, std::string_view what) {
  if (entry.kind == NodeKind::scalar) {
    throw ConfigError(fmt::format("{}: {}: found '{}'; expected {}", entry.value_origin.describe(),
                                  printable(entry.key), printable(shown_value(entry.key, entry.value)), what));
  }
  throw ConfigError(fmt::format("{}: {}: found a list; expected {}", entry.key_origin.describe(),
                                printable(entry.key), what));
}

[[noreturn]] void expected_scalar(const Entry& entry, std::string_view key, std::string_view what,
                                  bool found_list) {
  throw ConfigError(fmt::format("{}: {}: found {}; expected {}", entry.key_origin.describe(), printable(key),
                                found_list ? "a list of maps" : "a map", what));
}

[[noreturn]] void unknown_key(const Entry& entry, std::string_view parent, std::string_view segment,
                              const std::vector<SchemaNode>& children) {
  const std::string unknown = fmt::format("{}.{}", parent, segment);
  std::vector<std::string> names;
  for (const auto& child : children) names.emplace_back(child.name);
  if (const auto best = nearest_name(segment, names)) {
    throw ConfigError(fmt::format("{}: unknown key {}; did you mean {}.{}?", entry.key_origin.describe(),
                                  printable(unknown), parent, *best));
  }
  throw ConfigError(fmt::format("{}: unknown key {}; allowed keys under {}: {}", entry.key_origin.describe(),
                                printable(unknown), parent, child_names(children)));
}

/// An entry at or under pyfly.messaging.kafka.topics (`path`): a map of topic name to
/// {partitions, replication-factor, config, grow-partitions}.
void check_topic_entry(const Entry& entry, const std::string& path, bool last) {
  const auto& fields = topic_children();
  const std::string expected_topic = fmt::format("a map with keys {}", child_names(fields));
  if (last) {
    if (entry.kind == NodeKind::scalar || entry.kind == NodeKind::list) {
      expected_map(entry, fmt::format("a map of topic name: {}", expected_topic));
    }
    return;
  }
  const TopicKey topic = split_topic_key(std::string_view(entry.key).substr(path.size() + 1));
  const std::string topic_path = fmt::format("{}.{}", path, topic.name);
  if (topic.field.empty()) {
    if (entry.kind == NodeKind::map || entry.kind == NodeKind::null) {
      if (!valid_topic_name(topic.name)) {
        throw ConfigError(fmt::format("{}: {}: '{}' is not a valid Kafka topic name (1 to 249 of a-z, A-Z, 0-9, "
                                      "'.', '_', '-')",
                                      entry.key_origin.describe(), printable(path), printable(topic.name)));
      }
      return;
    }
    // "orders: 3", or an unknown field ("orders: {partition: 3}" reads as the key orders.partition).
    const auto dot = topic.name.rfind('.');
    if (dot != std::string::npos) {
      unknown_key(entry, fmt::format("{}.{}", path, topic.name.substr(0, dot)), topic.name.substr(dot + 1), fields);
    }
    expected_map(entry, expected_topic);
  }
  if (topic.field == "config") {
    if (topic.rest.empty() && (entry.kind == NodeKind::scalar || entry.kind == NodeKind::list)) {
      expected_map(entry, kTopicExpected);
    }
    if (!topic.rest.empty() && entry.kind == NodeKind::list) {
      expected_scalar(entry, entry.key, "a topic config value", true);
    }
    return;
  }
  const auto found = std::find_if(fields.begin(), fields.end(),
                                  [&](const SchemaNode& child) { return child.name == topic.field; });
  const std::string field_path = fmt::format("{}.{}", topic_path, topic.field);
  if (!topic.rest.empty()) expected_scalar(entry, field_path, found->expected, false);
  if (entry.kind == NodeKind::map || entry.kind == NodeKind::list) {
    expected_scalar(entry, field_path, found->expected, entry.kind == NodeKind::list);
  }
}

/// Checks one entry against the schema. Returns true when it lies under pyfly.messaging.rabbitmq.
bool check_entry(const Entry& entry) {
  if (entry.key == "pyfly") {
    if (entry.kind == NodeKind::scalar || entry.kind == NodeKind::list) expected_map(entry, "a map (such as messaging:)");
    return false;
  }
  if (entry.key != kMessagingPrefix && !is_under(entry.key, kMessagingPrefix)) return false;

  std::string path(kMessagingPrefix);
  std::string_view rest = std::string_view(entry.key).substr(kMessagingPrefix.size());
  if (!rest.empty()) rest.remove_prefix(1);  // the '.'
  const std::vector<std::string_view> segments =
      rest.empty() ? std::vector<std::string_view>{} : split(rest, '.');

  const std::vector<SchemaNode>* children = children_of(path);
  for (std::size_t i = 0;; ++i) {
    if (i == segments.size()) {
      // The entry is this schema map itself.
      if (entry.kind == NodeKind::scalar || entry.kind == NodeKind::list) {
        expected_map(entry, fmt::format("a map with keys {}", child_names(*children)));
      }
      return false;
    }
    const std::string_view segment = segments[i];
    const auto found = std::find_if(children->begin(), children->end(),
                                    [&](const SchemaNode& child) { return child.name == segment; });
    if (found == children->end()) unknown_key(entry, path, segment, *children);
    path += '.';
    path += found->name;
    const bool last = i + 1 == segments.size();
    switch (found->shape) {
      case Shape::ignored:
        return true;
      case Shape::scalar:
        if (!last) expected_scalar(entry, path, found->expected, false);
        if (entry.kind == NodeKind::map || entry.kind == NodeKind::list) {
          expected_scalar(entry, path, found->expected, entry.kind == NodeKind::list);
        }
        return false;
      case Shape::passthrough:
        if (last && (entry.kind == NodeKind::scalar || entry.kind == NodeKind::list)) {
          expected_map(entry, "a map of librdkafka properties (name: value)");
        }
        if (!last && entry.kind == NodeKind::list) {
          expected_scalar(entry, entry.key, "a property value", true);
        }
        return false;
      case Shape::topics:
        check_topic_entry(entry, path, last);
        return false;
      case Shape::map:
        children = children_of(path);
        break;
    }
  }
}

[[noreturn]] void bad_value(std::string_view key, const ConfigValue& value, std::string_view problem) {
  throw ConfigError(fmt::format("{}: {}: found '{}'; {}", value.origin.describe(), key,
                                printable(shown_value(key, value.value)), problem));
}

const ConfigValue* find(const ValueMap& values, std::string_view key) {
  const auto it = values.find(key);
  return it == values.end() ? nullptr : &it->second;
}

template <std::size_t N>
std::string one_of(std::string_view key, const ConfigValue& value, const std::array<std::string_view, N>& allowed) {
  const std::string normalized = to_lower(trim(value.value));
  for (const auto& candidate : allowed) {
    if (normalized == candidate) return normalized;
  }
  bad_value(key, value, fmt::format("allowed: {}", join(allowed, ", ")));
}

std::chrono::milliseconds duration_value(std::string_view key, const ConfigValue& value) {
  const DurationParse parsed = parse_duration(value.value);
  switch (parsed.status) {
    case DurationParse::Status::ok: return parsed.value;
    case DurationParse::Status::syntax: bad_value(key, value, fmt::format("expected {}", kDurationExpected));
    case DurationParse::Status::fractional:
      bad_value(key, value, fmt::format("expected a whole number of milliseconds, {}", kDurationExpected));
    case DurationParse::Status::not_positive:
      bad_value(key, value, fmt::format("expected a duration greater than zero, {}", kDurationExpected));
    case DurationParse::Status::too_large:
      bad_value(key, value, fmt::format("expected a duration of at most {}ms", std::numeric_limits<std::int32_t>::max()));
  }
  bad_value(key, value, fmt::format("expected {}", kDurationExpected));
}

int int_value(std::string_view key, const ConfigValue& value, int min, int max) {
  const std::string_view text = trim(value.value);
  long long parsed = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), parsed);
  if (text.empty() || error != std::errc{} || end != text.data() + text.size() || parsed < min || parsed > max) {
    bad_value(key, value, fmt::format("expected an integer from {} to {}", min, max));
  }
  return static_cast<int>(parsed);
}

void collect_properties(const ValueMap& values, std::string_view map_key, std::map<std::string, std::string>& out) {
  const std::string prefix = std::string(map_key) + ".";
  for (auto it = values.lower_bound(prefix); it != values.end() && it->first.starts_with(prefix); ++it) {
    out[it->first.substr(prefix.size())] = it->second.value;
  }
}

/// pyfly.messaging.kafka.topics.<name>.*: every topic that has at least one key.
void build_topics(const ValueMap& values, std::map<std::string, TopicProperties>& out) {
  const std::string prefix = std::string(kTopicsKey) + ".";
  for (auto it = values.lower_bound(prefix); it != values.end() && it->first.starts_with(prefix); ++it) {
    const std::string& key = it->first;
    const ConfigValue& value = it->second;
    const TopicKey topic = split_topic_key(std::string_view(key).substr(prefix.size()));
    if (topic.field.empty()) continue;  // refused by check_structure when read from a file
    if (!valid_topic_name(topic.name)) {
      bad_value(key, value, "the topic name is not a valid Kafka topic name (1 to 249 of a-z, A-Z, 0-9, '.', '_', '-')");
    }
    TopicProperties& properties = out[topic.name];
    if (topic.field == "partitions") {
      properties.partitions = int_value(key, value, 1, std::numeric_limits<std::int32_t>::max());
    } else if (topic.field == "replication-factor") {
      properties.replication_factor = int_value(key, value, 1, std::numeric_limits<std::int16_t>::max());
    } else if (topic.field == "grow-partitions") {
      const auto parsed = parse_bool(value.value);
      if (!parsed) bad_value(key, value, "allowed: true, false, yes, no, on, off");
      properties.grow_partitions = *parsed;
    } else if (topic.field == "config" && !topic.rest.empty()) {
      properties.config[topic.rest] = value.value;
    }
  }
}

}  // namespace

TopicKey split_topic_key(std::string_view after_topics) {
  const std::vector<std::string_view> segments = split(after_topics, '.');
  const auto& fields = topic_fields();
  for (std::size_t j = 1; j < segments.size(); ++j) {
    std::string canonical = to_lower(segments[j]);
    std::replace(canonical.begin(), canonical.end(), '_', '-');
    if (std::find(fields.begin(), fields.end(), canonical) == fields.end()) continue;
    std::vector<std::string_view> name(segments.begin(), segments.begin() + static_cast<std::ptrdiff_t>(j));
    std::vector<std::string_view> rest(segments.begin() + static_cast<std::ptrdiff_t>(j) + 1, segments.end());
    return TopicKey{join(name, "."), std::move(canonical), join(rest, ".")};
  }
  return TopicKey{std::string(after_topics), {}, {}};
}

const std::vector<std::string>& topic_fields() {
  static const std::vector<std::string> fields = [] {
    std::vector<std::string> out;
    for (const auto& child : topic_children()) out.emplace_back(child.name);
    return out;
  }();
  return fields;
}

}  // namespace cppfly::config::detail

namespace cppfly::config {

std::optional<std::string> nearest_name(std::string_view name, const std::vector<std::string>& candidates) {
  const std::string* best = nullptr;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  for (const auto& candidate : candidates) {
    const std::size_t distance = detail::edit_distance(name, candidate);
    if (distance < best_distance) {
      best = &candidate;
      best_distance = distance;
    }
  }
  if (best != nullptr && best_distance < name.size() &&
      best_distance <= std::max<std::size_t>(2, best->size() / 4)) {
    return *best;
  }
  return std::nullopt;
}

}  // namespace cppfly::config

namespace cppfly::config::detail {

const std::vector<std::string>& known_scalar_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> out;
    for (const auto& child : messaging_children()) {
      if (child.shape == Shape::scalar) out.push_back(fmt::format("pyfly.messaging.{}", child.name));
    }
    for (const auto& child : kafka_children()) {
      if (child.shape == Shape::scalar) out.push_back(fmt::format("pyfly.messaging.kafka.{}", child.name));
    }
    for (const auto& child : listener_children()) {
      if (child.shape == Shape::scalar) out.push_back(fmt::format("pyfly.messaging.listener.{}", child.name));
    }
    out.emplace_back("pyfly.context.shutdown-timeout");  // PyFly's, read by the listener containers
    return out;
  }();
  return keys;
}

const std::vector<std::string>& passthrough_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> out;
    for (const auto& child : kafka_children()) {
      if (child.shape == Shape::passthrough) out.push_back(fmt::format("pyfly.messaging.kafka.{}", child.name));
    }
    return out;
  }();
  return keys;
}

void check_structure(const std::vector<Entry>& entries, std::vector<std::string>& warnings) {
  bool rabbit_warned = false;
  for (const auto& entry : entries) {
    if (check_entry(entry) && !rabbit_warned) {
      warnings.push_back(fmt::format("{}: {}", entry.key_origin.describe(), kRabbitWarning));
      rabbit_warned = true;
    }
  }
}

MessagingProperties build_messaging(const ValueMap& values) {
  MessagingProperties out;
  if (const auto* v = find(values, "pyfly.messaging.provider")) {
    if (to_lower(trim(v->value)) == "rabbitmq") {
      bad_value("pyfly.messaging.provider", *v,
                "cppfly has no RabbitMQ adapter (PyFly's rabbitmq provider is Python-only); "
                "available providers: auto, kafka, memory");
    }
    const std::string name =
        one_of(std::string_view("pyfly.messaging.provider"), *v, std::array<std::string_view, 3>{"auto", "kafka", "memory"});
    out.provider = name == "auto" ? Provider::auto_detect : name == "kafka" ? Provider::kafka : Provider::memory;
  }
  if (const auto* v = find(values, "pyfly.messaging.log-payloads")) {
    const auto parsed = parse_bool(v->value);
    if (!parsed) bad_value("pyfly.messaging.log-payloads", *v, "allowed: true, false, yes, no, on, off");
    out.log_payloads = *parsed;
  }
  if (const auto* v = find(values, "pyfly.messaging.trace-propagation")) {
    out.trace_propagation = one_of(std::string_view("pyfly.messaging.trace-propagation"), *v,
                                   std::array<std::string_view, 3>{"continue", "always", "off"});
  }
  KafkaProperties& kafka = out.kafka;
  if (const auto* v = find(values, "pyfly.messaging.kafka.bootstrap-servers")) {
    const std::string_view servers = trim(v->value);
    if (servers.empty()) {
      bad_value("pyfly.messaging.kafka.bootstrap-servers", *v,
                "expected a comma-separated list of host:port, or embedded");
    }
    kafka.bootstrap_servers = std::string(servers);
  }
  if (const auto* v = find(values, "pyfly.messaging.kafka.client-id")) kafka.client_id = v->value;
  if (const auto* v = find(values, "pyfly.messaging.kafka.transactional-id-prefix")) {
    kafka.transactional_id_prefix = std::string(trim(v->value));
  }
  if (const auto* v = find(values, "pyfly.messaging.kafka.embedded-brokers")) {
    kafka.embedded_brokers = int_value("pyfly.messaging.kafka.embedded-brokers", *v, 1, 16);
  }
  if (const auto* v = find(values, "pyfly.messaging.kafka.auto-offset-reset")) {
    kafka.auto_offset_reset = one_of(std::string_view("pyfly.messaging.kafka.auto-offset-reset"), *v,
                                     std::array<std::string_view, 2>{"earliest", "latest"});
  }
  if (const auto* v = find(values, "pyfly.messaging.kafka.acks")) {
    kafka.acks = one_of(std::string_view("pyfly.messaging.kafka.acks"), *v,
                        std::array<std::string_view, 4>{"all", "-1", "0", "1"});
  }
  if (const auto* v = find(values, "pyfly.messaging.kafka.enable-idempotence")) {
    const auto parsed = parse_bool(v->value);
    if (!parsed) bad_value("pyfly.messaging.kafka.enable-idempotence", *v, "allowed: true, false, yes, no, on, off");
    kafka.enable_idempotence = *parsed;
  }
  if (kafka.enable_idempotence && kafka.acks != "all" && kafka.acks != "-1") {
    // librdkafka refuses this pair only when the producer is created; refuse it before anything starts.
    const auto* v = find(values, "pyfly.messaging.kafka.acks");
    bad_value("pyfly.messaging.kafka.acks", *v,
              "allowed with enable-idempotence: true (the default): all, -1; set enable-idempotence: false for 0 or 1");
  }
  if (!kafka.transactional_id_prefix.empty() && !kafka.enable_idempotence) {
    // Kafka's transactions are built on the idempotent producer.
    bad_value("pyfly.messaging.kafka.enable-idempotence", *find(values, "pyfly.messaging.kafka.enable-idempotence"),
              "transactions (transactional-id-prefix) need enable-idempotence: true");
  }
  const std::array<std::pair<std::string_view, std::chrono::milliseconds*>, 4> durations{{
      {"pyfly.messaging.kafka.commit-interval", &kafka.commit_interval},
      {"pyfly.messaging.kafka.connect-timeout", &kafka.connect_timeout},
      {"pyfly.messaging.kafka.publish-timeout", &kafka.publish_timeout},
      {"pyfly.messaging.kafka.reconnect-backoff-max", &kafka.reconnect_backoff_max},
  }};
  for (const auto& [key, target] : durations) {
    if (const auto* v = find(values, key)) *target = duration_value(key, *v);
  }
  auto& listener = out.listener;
  if (const auto* v = find(values, "pyfly.messaging.listener.max-buffered-records")) {
    listener.max_buffered_records =
        static_cast<std::size_t>(int_value("pyfly.messaging.listener.max-buffered-records", *v, 1, 10000000));
  }
  if (const auto* v = find(values, "pyfly.messaging.listener.max-buffered-bytes")) {
    std::uint64_t bytes = 0;
    const auto text = trim(v->value);
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), bytes);
    if (ec != std::errc{} || end != text.data() + text.size() || bytes < 1024 || bytes > (std::uint64_t{1} << 34U)) {
      bad_value("pyfly.messaging.listener.max-buffered-bytes", *v, "allowed: a number of bytes from 1024 to 17179869184");
    }
    listener.max_buffered_bytes = static_cast<std::size_t>(bytes);
  }
  // PyFly's key: how long a stop waits for running work.
  if (const auto* v = find(values, "pyfly.context.shutdown-timeout")) {
    listener.shutdown_timeout = duration_value("pyfly.context.shutdown-timeout", *v);
  }
  collect_properties(values, "pyfly.messaging.kafka.properties", kafka.properties);
  collect_properties(values, "pyfly.messaging.kafka.producer-properties", kafka.producer_properties);
  collect_properties(values, "pyfly.messaging.kafka.consumer-properties", kafka.consumer_properties);
  build_topics(values, kafka.topics);
  return out;
}

namespace {

constexpr std::string_view kManagementPrefix = "pyfly.management";
constexpr std::string_view kPortKey = "pyfly.management.server.port";
constexpr std::string_view kAddressKey = "pyfly.management.server.address";
constexpr std::string_view kBasePathKey = "pyfly.management.endpoints.web.base-path";
constexpr std::string_view kIncludeKey = "pyfly.management.endpoints.web.exposure.include";
constexpr std::string_view kExcludeKey = "pyfly.management.endpoints.web.exposure.exclude";
constexpr std::string_view kMaxLagKey = "pyfly.management.health.readiness.max-lag";
constexpr std::array<std::string_view, 3> kEndpoints{"health", "info", "prometheus"};

/// A comma-separated list of endpoint ids ("*" for all), each one cppfly has.
std::vector<std::string> endpoint_list(std::string_view key, const ConfigValue& value) {
  std::vector<std::string> out;
  for (const auto part : split(value.value, ',')) {
    const std::string id = to_lower(trim(part));
    if (id.empty()) continue;
    if (id != "*" && std::find(kEndpoints.begin(), kEndpoints.end(), id) == kEndpoints.end()) {
      bad_value(key, value, fmt::format("'{}' is no endpoint of cppfly's; allowed: a comma-separated list of "
                                        "health, info, prometheus, or *", printable(id)));
    }
    out.push_back(id);
  }
  return out;
}

}  // namespace

const std::vector<std::string>& management_keys() {
  static const std::vector<std::string> keys{std::string(kPortKey),      std::string(kAddressKey),
                                             std::string(kBasePathKey),  std::string(kIncludeKey),
                                             std::string(kExcludeKey),   std::string(kMaxLagKey)};
  return keys;
}

ManagementProperties build_management(const ValueMap& values) {
  ManagementProperties out;
  const std::string prefix = std::string(kManagementPrefix).append(".");
  for (auto it = values.lower_bound(prefix); it != values.end() && it->first.starts_with(prefix); ++it) {
    out.configured = true;
    // A map where one of these keys wants a value ("port: {x: 1}" reads as port.x).
    for (const auto& key : management_keys()) {
      if (it->first.size() > key.size() && it->first.starts_with(key) && it->first[key.size()] == '.') {
        throw ConfigError(fmt::format("{}: {}: found a map; expected a value", it->second.origin.describe(), key));
      }
    }
  }
  if (const auto* v = find(values, kPortKey)) {
    const std::string_view text = trim(v->value);
    long long port = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || port < -1 || port > 65535) {
      bad_value(kPortKey, *v, "allowed: a port from 1 to 65535, 0 (a free port, logged) or -1 (no management server)");
    }
    out.port = static_cast<int>(port);
  }
  if (const auto* v = find(values, kAddressKey)) {
    const std::string_view address = trim(v->value);
    if (address.empty() || address.find_first_of(" /") != std::string_view::npos) {
      bad_value(kAddressKey, *v, "allowed: an IP address or host name to listen on, such as 127.0.0.1 or 0.0.0.0");
    }
    out.address = std::string(address);
  }
  if (const auto* v = find(values, kBasePathKey)) {
    std::string path(trim(v->value));
    const bool valid_chars = std::all_of(path.begin(), path.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' || c == '-' ||
             c == '_' || c == '.';
    });
    if (!path.starts_with('/') || !valid_chars || path.find("//") != std::string::npos) {
      bad_value(kBasePathKey, *v, "allowed: a path starting with '/' of letters, digits, '-', '_', '.' and '/' (such as /actuator)");
    }
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    out.base_path = path == "/" ? std::string() : path;
  }
  if (const auto* v = find(values, kIncludeKey)) out.include = endpoint_list(kIncludeKey, *v);
  if (const auto* v = find(values, kExcludeKey)) out.exclude = endpoint_list(kExcludeKey, *v);
  if (const auto* v = find(values, kMaxLagKey)) {
    const std::string_view text = trim(v->value);
    std::int64_t lag = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), lag);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || lag < 0) {
      bad_value(kMaxLagKey, *v, "allowed: a number of records, 0 or more (readiness is DOWN above it)");
    }
    out.readiness_max_lag = lag;
  }
  return out;
}

DurationParse parse_duration(std::string_view text) {
  using Status = DurationParse::Status;
  text = trim(text);
  bool negative = false;
  if (!text.empty() && text.front() == '-') {
    negative = true;
    text.remove_prefix(1);
  }
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  std::size_t pos = 0;
  while (pos < text.size() && is_digit(text[pos])) ++pos;
  const std::string_view whole = text.substr(0, pos);
  std::string_view fraction;
  if (whole.empty()) return {Status::syntax, {}};
  if (pos < text.size() && text[pos] == '.') {
    const std::size_t start = ++pos;
    while (pos < text.size() && is_digit(text[pos])) ++pos;
    fraction = text.substr(start, pos - start);
    if (fraction.empty()) return {Status::syntax, {}};
  }
  const std::string unit = to_lower(trim(text.substr(pos)));
  std::int64_t factor = 0;
  if (unit.empty() || unit == "ms") {
    factor = 1;
  } else if (unit == "s") {
    factor = 1000;
  } else if (unit == "m") {
    factor = 60'000;
  } else {
    return {Status::syntax, {}};
  }

  // Integer arithmetic only: whole * factor + fraction * factor / 10^digits, which must be whole.
  const std::string_view significant_whole = [&] {
    std::string_view w = whole;
    while (w.size() > 1 && w.front() == '0') w.remove_prefix(1);
    return w;
  }();
  while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
  if (significant_whole.size() > 12) return {negative ? Status::not_positive : Status::too_large, {}};
  if (fraction.size() > 9) return {Status::fractional, {}};
  std::int64_t whole_value = 0;
  for (char c : significant_whole) whole_value = whole_value * 10 + (c - '0');
  std::int64_t fraction_value = 0;
  std::int64_t scale = 1;
  for (char c : fraction) {
    fraction_value = fraction_value * 10 + (c - '0');
    scale *= 10;
  }
  if ((fraction_value * factor) % scale != 0) return {Status::fractional, {}};
  const std::int64_t total = whole_value * factor + fraction_value * factor / scale;
  if (negative || total <= 0) return {Status::not_positive, {}};
  if (total > std::numeric_limits<std::int32_t>::max()) return {Status::too_large, {}};
  return {Status::ok, std::chrono::milliseconds(total)};
}

std::optional<bool> parse_bool(std::string_view text) {
  const std::string value = to_lower(trim(text));
  if (value == "true" || value == "yes" || value == "on") return true;
  if (value == "false" || value == "no" || value == "off") return false;
  return std::nullopt;
}

std::size_t edit_distance(std::string_view a_in, std::string_view b_in) {
  const std::string a = to_lower(a_in);
  const std::string b = to_lower(b_in);
  const std::size_t n = a.size();
  const std::size_t m = b.size();
  // Three rolling rows: i-2, i-1, i.
  std::vector<std::size_t> before(m + 1), previous(m + 1), current(m + 1);
  for (std::size_t j = 0; j <= m; ++j) previous[j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        current[j] = std::min(current[j], before[j - 2] + 1);
      }
    }
    std::swap(before, previous);
    std::swap(previous, current);
  }
  return previous[m];
}

}  // namespace cppfly::config::detail
