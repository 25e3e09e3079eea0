// A fetched librdkafka record read into the port's Message. Internal.
#pragma once

#include <vector>

#include <librdkafka/rdkafka.h>

#include <cppfly/messaging/message.hpp>

namespace cppfly::kafka::detail {

/// Appends the headers of `record` (a const rd_kafka_message_t*) to `into`, in order; a header
/// without a value reads as an empty value. The DeferredHeaders reader of a listener's Message.
void read_headers(const void* record, std::vector<messaging::Headers::Entry>& into);

/// An owning Message of `record`: topic, value, key, headers, partition, offset, timestamp.
[[nodiscard]] messaging::Message to_message(const rd_kafka_message_t& record);
/// The same into `message`, every field replaced (attempt 1), its strings' capacity reused. With
/// `defer_headers`, the headers are read from `record` when first used: it must outlive that (or
/// DeferredHeaders::resolve() be called before it goes).
void fill_message(messaging::Message& message, const rd_kafka_message_t& record, bool defer_headers = false);

}  // namespace cppfly::kafka::detail
