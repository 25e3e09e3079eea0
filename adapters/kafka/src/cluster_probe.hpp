// start()'s reachability check. Internal.
#pragma once

#include <chrono>
#include <string>

#include "client_context.hpp"

namespace cppfly::kafka::detail {

/// Requests cluster metadata through `rk` until a broker answers or `timeout` passes;
/// then throws messaging::BrokerError("cannot reach Kafka at <servers> within <N> ms: <reason>").
/// A refused SASL login or a failed TLS handshake (reported through `context`) ends the wait at
/// once with a BrokerError naming the mechanism (or the CA) and the broker. Never blocks much
/// longer than `timeout`.
void await_cluster(rd_kafka_t* rk, const ClientContext& context, const std::string& servers,
                   std::chrono::milliseconds timeout);

}  // namespace cppfly::kafka::detail
