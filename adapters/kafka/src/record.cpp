#include "record.hpp"

#include <string>
#include <string_view>

namespace cppfly::kafka::detail {

void read_headers(const void* source, std::vector<messaging::Headers::Entry>& into) {
  const auto* record = static_cast<const rd_kafka_message_t*>(source);
  rd_kafka_headers_t* headers = nullptr;  // owned by the record
  if (rd_kafka_message_headers(record, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR || headers == nullptr) return;
  const char* name = nullptr;
  const void* value = nullptr;
  std::size_t size = 0;
  for (std::size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
       ++i) {
    into.emplace_back(name, value != nullptr ? std::string(static_cast<const char*>(value), size) : std::string());
  }
}

messaging::Message to_message(const rd_kafka_message_t& record) {
  messaging::Message message;
  fill_message(message, record);
  return message;
}

void fill_message(messaging::Message& message, const rd_kafka_message_t& record, bool defer_headers) {
  message.topic.assign(rd_kafka_topic_name(record.rkt));
  if (record.payload != nullptr) {
    message.value.assign(static_cast<const char*>(record.payload), record.len);
  } else {
    message.value.clear();
  }
  if (record.key != nullptr) {
    const std::string_view key(static_cast<const char*>(record.key), record.key_len);
    if (message.key) {
      message.key->assign(key);
    } else {
      message.key.emplace(key);
    }
  } else {
    message.key.reset();
  }
  if (defer_headers) {
    messaging::DeferredHeaders::defer(message.headers, &record, &read_headers);
  } else {
    messaging::DeferredHeaders::read_now(message.headers, &record, &read_headers);
  }
  message.partition = record.partition;
  message.offset = record.offset;
  rd_kafka_timestamp_type_t type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
  const auto timestamp = rd_kafka_message_timestamp(&record, &type);
  message.timestamp_ms = type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : timestamp;
  message.attempt = 1;
}

}  // namespace cppfly::kafka::detail
