#include "cluster_probe.hpp"

#include <algorithm>
#include <thread>

#include <cppfly/detail/log.hpp>
#include <cppfly/messaging/broker_port.hpp>

#include "handles.hpp"

namespace cppfly::kafka::detail {

void await_cluster(rd_kafka_t* rk, const ClientContext& context, const std::string& servers,
                   std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  // Short attempts, so a broker that comes up late is noticed soon and the deadline holds.
  constexpr std::chrono::milliseconds kAttempt{1000};
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
  for (;;) {
    const auto now = Clock::now();
    if (now >= deadline) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    const auto attempt = std::max(std::min(left, kAttempt), std::chrono::milliseconds{1});
    const rd_kafka_metadata_t* raw = nullptr;
    err = rd_kafka_metadata(rk, 0, nullptr, &raw, static_cast<int>(attempt.count()));
    const MetadataHandle metadata(raw);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && metadata && metadata->broker_cnt > 0) {
      const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
      cppfly::detail::log().info("kafka: connected to {} ({} broker(s), {} ms)", servers, metadata->broker_cnt,
                                 took.count());
      return;
    }
    if (err != RD_KAFKA_RESP_ERR__TIMED_OUT) {
      // An answer that came early (e.g. a refused connection): do not spin; librdkafka
      // reconnects with its own backoff meanwhile.
      std::this_thread::sleep_for(std::min(std::chrono::milliseconds{100}, left));
    }
  }
  std::string reason = context.last_error();
  if (reason.empty()) reason = rd_kafka_err2str(err);
  throw messaging::BrokerError("cannot reach Kafka at " + servers + " within " + std::to_string(timeout.count()) +
                               " ms: " + reason);
}

}  // namespace cppfly::kafka::detail
