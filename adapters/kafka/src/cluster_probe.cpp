#include "cluster_probe.hpp"

#include <algorithm>
#include <cctype>
#include <thread>

#include <cppfly/detail/log.hpp>
#include <cppfly/messaging/broker_port.hpp>

#include "client_config.hpp"
#include "handles.hpp"

namespace cppfly::kafka::detail {
namespace {

/// The one-line reason for a failed TLS handshake or SASL login: what was tried (mechanism,
/// user, CA) and on which broker, then librdkafka's own words. No secret is in either.
std::string security_reason(rd_kafka_t* rk, const ClientContext::Failure& failure, const std::string& servers,
                            std::chrono::milliseconds took) {
  const rd_kafka_conf_t* conf = rd_kafka_conf(rk);
  std::string protocol = get_property(conf, "security.protocol");
  for (char& c : protocol) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::string after = " (after " + std::to_string(took.count()) + " ms): " + failure.text;
  if (failure.code == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
    std::string mechanism = get_property(conf, "sasl.mechanisms");
    if (mechanism.empty()) mechanism = "GSSAPI";
    std::string user = get_property(conf, "sasl.username");
    const std::string who = user.empty() || mechanism == "GSSAPI" || mechanism == "OAUTHBEARER"
                                ? std::string()
                                : " of user '" + user + "'";
    return "Kafka at " + servers + " refused the SASL " + mechanism + " login" + who + " over " + protocol + after;
  }
  std::string ca = get_property(conf, "ssl.ca.location");
  if (ca.empty()) ca = get_property(conf, "ssl.ca.pem").empty() ? "the system's CA certificates" : "ssl.ca.pem";
  return "TLS handshake with Kafka at " + servers + " failed (" + protocol + ", trusting " + ca + ")" + after;
}

}  // namespace

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
    // A refused login or an untrusted certificate does not heal by waiting: say so at once.
    if (const auto failure = context.security_failure(); failure.code != RD_KAFKA_RESP_ERR_NO_ERROR) {
      const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
      throw messaging::BrokerError(security_reason(rk, failure, servers, took));
    }
    if (err != RD_KAFKA_RESP_ERR__TIMED_OUT) {
      // An answer that came early (e.g. a refused connection): do not spin; librdkafka
      // reconnects with its own backoff meanwhile.
      std::this_thread::sleep_for(std::min(std::chrono::milliseconds{100}, left));
    }
  }
  if (const auto failure = context.security_failure(); failure.code != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw messaging::BrokerError(security_reason(rk, failure, servers, timeout));
  }
  std::string reason = context.last_error();
  if (reason.empty()) reason = rd_kafka_err2str(err);
  throw messaging::BrokerError("cannot reach Kafka at " + servers + " within " + std::to_string(timeout.count()) +
                               " ms: " + reason);
}

}  // namespace cppfly::kafka::detail
