// peer_producer: the harness's own producer for bench/peers (not a contender).
//
//   peer_producer fill   TOPIC N                   N orders, ids 0..N-1, key = id, 100 bytes each, as fast as it can
//   peer_producer paced  TOPIC N RATE [LINGER_MS [KEYS]]
//                                                  N orders at RATE messages/s, each with header x-sent-us (the
//                                                  producer's clock, epoch µs, taken just before rd_kafka_producev);
//                                                  KEYS > 0: keyed and numbered as in keyed (slow-retry workload)
//   peer_producer keyed  TOPIC N KEYS              N orders as fast as it can, key = "key-" + (id % KEYS), header
//                                                  x-seq = id / KEYS: the records of one key carry 0, 1, 2, ...
// Env PEER_BOOTSTRAP (default 127.0.0.1:49092). acks=all; fill and keyed batch (linger.ms=10); keyed
// records (keyed, paced with KEYS) go through the idempotent producer, which keeps them in order.
// paced: linger.ms=LINGER_MS, default 5 (librdkafka's default, and cppfly's). With linger.ms=0 every
// record of a 5,000 msg/s stream is an acks=all produce request of its own; a broker on 2 shared cores
// falls behind on those, and every consumer's p99 then measures the broker's backlog, not the consumer.
// The harness runs the stream twice: linger.ms=5 (workload latency) and linger.ms=1 (latency-linger1).
// Prints one JSON line: {"count": acknowledged, "errors": n, "first_ms": .., "last_ms": ..}.
#include <librdkafka/rdkafka.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "peer_common.hpp"

namespace {

struct Acks {
  std::int64_t ok = 0;
  std::int64_t errors = 0;
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
  auto* acks = static_cast<Acks*>(opaque);
  if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++acks->ok;
  } else if (acks->errors++ == 0) {
    std::fprintf(stderr, "peer_producer: delivery failed: %s\n", rd_kafka_err2str(message->err));
  }
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: peer_producer fill TOPIC N | peer_producer paced TOPIC N RATE [LINGER_MS] | "
               "peer_producer keyed TOPIC N KEYS\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) usage();
  const std::string mode = argv[1];
  const std::string topic = argv[2];
  const std::int64_t n = std::stoll(argv[3]);
  const bool paced = mode == "paced";
  const bool keyed = mode == "keyed";
  if (!paced && !keyed && mode != "fill") usage();
  if ((paced || keyed) && argc < 5) usage();
  const double rate = paced ? std::stod(argv[4]) : 0.0;
  const std::string linger_ms = paced ? (argc > 5 ? std::string(argv[5]) : std::string("5")) : std::string("10");
  const std::int64_t keys = keyed ? std::stoll(argv[4]) : (paced && argc > 6 ? std::stoll(argv[6]) : 0);
  if (keyed && keys <= 0) usage();

  Acks acks;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::array<char, 512> error{};
  for (auto [name, value] : {std::pair<const char*, std::string>{"bootstrap.servers", peers::env("PEER_BOOTSTRAP", "127.0.0.1:49092")},
                             {"client.id", "peer-producer"},
                             {"acks", "all"},
                             {"linger.ms", linger_ms},
                             {"queue.buffering.max.messages", "1000000"}}) {
    if (rd_kafka_conf_set(conf, name, value.c_str(), error.data(), error.size()) != RD_KAFKA_CONF_OK) {
      std::fprintf(stderr, "peer_producer: %s\n", error.data());
      return 2;
    }
  }
  // Keyed records must stay in order within their key: without idempotence a batch retried after a
  // transient error (a fresh topic's first requests) lands behind later ones (seen: hundreds of records
  // of a 5,000-record fill out of order). The idempotent producer keeps order across retries.
  if (keys > 0 && rd_kafka_conf_set(conf, "enable.idempotence", "true", error.data(), error.size()) != RD_KAFKA_CONF_OK) {
    std::fprintf(stderr, "peer_producer: %s\n", error.data());
    return 2;
  }
  rd_kafka_conf_set_dr_msg_cb(conf, &on_delivery);
  rd_kafka_conf_set_opaque(conf, &acks);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error.data(), error.size());
  if (rk == nullptr) {
    std::fprintf(stderr, "peer_producer: %s\n", error.data());
    return 2;
  }

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const std::int64_t first_ms = peers::now_ms();
  for (std::int64_t id = 0; id < n; ++id) {
    const std::string value = peers::order_json(id);
    const std::string key = keys > 0 ? "key-" + std::to_string(id % keys) : std::to_string(id);
    if (paced) {
      const auto due = start + std::chrono::nanoseconds(static_cast<std::int64_t>(static_cast<double>(id) * 1e9 / rate));
      if (Clock::now() < due) std::this_thread::sleep_until(due);
    }
    for (;;) {
      rd_kafka_resp_err_t err;
      if (paced && keys > 0) {
        const std::string seq = std::to_string(id / keys);
        const std::string sent = std::to_string(peers::now_us());
        err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_KEY(key.data(), key.size()),
                                RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                RD_KAFKA_V_HEADER(peers::kSeqHeader, seq.data(), static_cast<ssize_t>(seq.size())),
                                RD_KAFKA_V_HEADER(peers::kSentHeader, sent.data(), static_cast<ssize_t>(sent.size())),
                                RD_KAFKA_V_END);
      } else if (paced) {
        const std::string sent = std::to_string(peers::now_us());
        err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_KEY(key.data(), key.size()),
                                RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                RD_KAFKA_V_HEADER(peers::kSentHeader, sent.data(), static_cast<ssize_t>(sent.size())),
                                RD_KAFKA_V_END);
      } else if (keyed) {
        const std::string seq = std::to_string(id / keys);
        err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_KEY(key.data(), key.size()),
                                RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                RD_KAFKA_V_HEADER(peers::kSeqHeader, seq.data(), static_cast<ssize_t>(seq.size())),
                                RD_KAFKA_V_END);
      } else {
        err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_KEY(key.data(), key.size()),
                                RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_END);
      }
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        std::fprintf(stderr, "peer_producer: %s\n", rd_kafka_err2str(err));
        return 1;
      }
      rd_kafka_poll(rk, 10);
    }
    rd_kafka_poll(rk, 0);
  }
  rd_kafka_flush(rk, 120000);
  const std::int64_t last_ms = peers::now_ms();
  rd_kafka_destroy(rk);
  std::printf("{\"count\":%lld,\"errors\":%lld,\"first_ms\":%lld,\"last_ms\":%lld}\n", static_cast<long long>(acks.ok),
              static_cast<long long>(acks.errors), static_cast<long long>(first_ms), static_cast<long long>(last_ms));
  return acks.ok == n ? 0 : 1;
}
