// A bounded commit of a consumer's stored offsets. Internal.
#pragma once

#include <chrono>

#include <librdkafka/rdkafka.h>

namespace cppfly::kafka::detail {

/// Commits the offsets stored in `rk` (a consumer) and waits for the broker's answer at most
/// `timeout` (librdkafka's synchronous commit waits without a bound when no coordinator answers).
/// RD_KAFKA_RESP_ERR__NO_OFFSET: nothing new to commit; __TIMED_OUT: no answer in time.
rd_kafka_resp_err_t commit_stored_offsets(rd_kafka_t* rk, std::chrono::milliseconds timeout);

/// The same for the given `offsets` (with their metadata) instead of the stored ones.
rd_kafka_resp_err_t commit_offsets(rd_kafka_t* rk, const rd_kafka_topic_partition_list_t* offsets,
                                   std::chrono::milliseconds timeout);

}  // namespace cppfly::kafka::detail
