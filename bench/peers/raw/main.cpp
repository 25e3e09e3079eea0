// peer_raw: the hand-written librdkafka contender of bench/peers: what a user writes without a
// framework. A high-level consumer loop (rd_kafka_consumer_poll, librdkafka's defaults: offsets
// stored when poll returns a record and auto-committed every 5 s), nlohmann::json parsed into the
// same Order struct; or a producer (rd_kafka_producev + flush, librdkafka's defaults).
//
//   PEER_MODE=consume|publish PEER_TOPIC=t PEER_COUNT=N PEER_BOOTSTRAP=host:port peer_raw
//
// Protocol and report line: bench/peers/common/peer_common.hpp.
#include <librdkafka/rdkafka.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "peer_common.hpp"

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "peer_raw: %s\n", what.c_str());
  std::exit(2);
}

rd_kafka_conf_t* make_conf(const std::string& bootstrap) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::array<char, 512> error{};
  auto set = [&](const char* name, const std::string& value) {
    if (rd_kafka_conf_set(conf, name, value.c_str(), error.data(), error.size()) != RD_KAFKA_CONF_OK) die(error.data());
  };
  set("bootstrap.servers", bootstrap);
  set("client.id", "peer-raw");
  return conf;
}

int consume(const std::string& bootstrap, const std::string& topic, std::int64_t n) {
  peers::Tally tally(n, !peers::env("PEER_LATENCY_FILE", "").empty());
  rd_kafka_conf_t* conf = make_conf(bootstrap);
  std::array<char, 512> error{};
  for (auto [name, value] : {std::pair{"group.id", "bench"}, std::pair{"auto.offset.reset", "earliest"}}) {
    if (rd_kafka_conf_set(conf, name, value, error.data(), error.size()) != RD_KAFKA_CONF_OK) die(error.data());
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error.data(), error.size());
  if (rk == nullptr) die(error.data());
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
  if (auto err = rd_kafka_subscribe(rk, topics); err != RD_KAFKA_RESP_ERR_NO_ERROR) die(rd_kafka_err2str(err));
  rd_kafka_topic_partition_list_destroy(topics);

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(peers::env_int("PEER_TIMEOUT_S", 900));
  while (tally.count() < n && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* record = rd_kafka_consumer_poll(rk, 100);
    if (record == nullptr) continue;
    if (record->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (record->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) std::fprintf(stderr, "peer_raw: %s\n", rd_kafka_message_errstr(record));
      rd_kafka_message_destroy(record);
      continue;
    }
    try {
      const auto order = nlohmann::json::parse(static_cast<const char*>(record->payload),
                                               static_cast<const char*>(record->payload) + record->len)
                             .get<peers::Order>();
      std::optional<std::int64_t> sent;
      rd_kafka_headers_t* headers = nullptr;
      const void* value = nullptr;
      std::size_t size = 0;
      if (rd_kafka_message_headers(record, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR &&
          rd_kafka_header_get_last(headers, peers::kSentHeader, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        sent = peers::parse_int(value, size);
      }
      tally.record(order.id, sent);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "peer_raw: bad record at offset %lld: %s\n", static_cast<long long>(record->offset), e.what());
    }
    rd_kafka_message_destroy(record);
  }
  tally.report(peers::env("PEER_LATENCY_FILE", ""));
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return tally.count() == n ? 0 : 1;
}

struct Acks {
  std::int64_t ok = 0;
  std::int64_t errors = 0;
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
  auto* acks = static_cast<Acks*>(opaque);
  if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++acks->ok;
  } else if (acks->errors++ == 0) {
    std::fprintf(stderr, "peer_raw: delivery failed: %s\n", rd_kafka_err2str(message->err));
  }
}

int publish(const std::string& bootstrap, const std::string& topic, std::int64_t n) {
  const std::int64_t start_ms = peers::now_ms();
  Acks acks;
  rd_kafka_conf_t* conf = make_conf(bootstrap);
  rd_kafka_conf_set_dr_msg_cb(conf, &on_delivery);
  rd_kafka_conf_set_opaque(conf, &acks);
  std::array<char, 512> error{};
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error.data(), error.size());
  if (rk == nullptr) die(error.data());

  const std::int64_t first_ms = peers::now_ms();
  for (std::int64_t id = 0; id < n; ++id) {
    peers::Order order = peers::make_order(id);
    order.note.assign(8, 'x');  // ~100 bytes, as the consumed orders
    const std::string value = nlohmann::json(order).dump();
    const std::string key = std::to_string(id);
    for (;;) {
      const auto err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                         RD_KAFKA_V_KEY(key.data(), key.size()),
                                         RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) die(rd_kafka_err2str(err));
      rd_kafka_poll(rk, 10);  // back-pressure: serve delivery reports
    }
    rd_kafka_poll(rk, 0);
  }
  rd_kafka_flush(rk, 60000);
  const std::int64_t last_ms = peers::now_ms();
  rd_kafka_destroy(rk);
  std::printf("{\"count\":%lld,\"errors\":%lld,\"start_ms\":%lld,\"first_ms\":%lld,\"last_ms\":%lld}\n",
              static_cast<long long>(acks.ok), static_cast<long long>(acks.errors), static_cast<long long>(start_ms),
              static_cast<long long>(first_ms), static_cast<long long>(last_ms));
  std::fflush(stdout);
  return acks.ok == n ? 0 : 1;
}

}  // namespace

int main() {
  const std::string bootstrap = peers::env("PEER_BOOTSTRAP", "127.0.0.1:49092");
  const std::string topic = peers::env("PEER_TOPIC", "peers-orders");
  const std::int64_t n = peers::env_int("PEER_COUNT", 1000000);
  return peers::env("PEER_MODE", "consume") == "publish" ? publish(bootstrap, topic, n) : consume(bootstrap, topic, n);
}
