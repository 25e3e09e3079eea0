// Declared topics (pyfly.messaging.kafka.topics): created at start when missing, grown when asked.
// Internal.
#pragma once

#include <cppfly/config/properties.hpp>

#include "handles.hpp"

namespace cppfly::kafka::detail {

class EmbeddedCluster;

/// Spring's KafkaAdmin for pyfly.messaging.kafka.topics, through `rk` (a connected client):
///  - a missing topic is created with its partitions, replication factor and configs (absent
///    numbers: the broker's defaults); every missing topic is validated by the broker first
///    (validate-only), so a refused one leaves none of them created;
///  - an existing topic with fewer partitions than declared is grown when grow-partitions is true,
///    else a warning is logged; its configs and replication factor are left as they are;
///  - a value the broker refuses throws config::ConfigError naming the key
///    (pyfly.messaging.kafka.topics.<name>.config.<config>, .partitions, .replication-factor);
///    no answer within connect-timeout, or no right to create, throws messaging::BrokerError.
/// Does nothing for bootstrap-servers "embedded" (see declare_embedded_topics).
void apply_declared_topics(rd_kafka_t* rk, const config::KafkaProperties& properties);

/// The embedded cluster: librdkafka 2.0.2's mock cluster answers no Admin API request, so the
/// declared topics are made in the mock directly, with their partitions, as soon as it exists
/// (before a subscribe() would make them with the default count). Configs, replication factor
/// and grow-partitions apply on a real cluster only (a warning says so).
void declare_embedded_topics(const config::KafkaProperties& properties, EmbeddedCluster& embedded);

}  // namespace cppfly::kafka::detail
