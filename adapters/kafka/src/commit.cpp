#include "commit.hpp"

#include <algorithm>

#include "handles.hpp"

namespace cppfly::kafka::detail {

rd_kafka_resp_err_t commit_stored_offsets(rd_kafka_t* rk, std::chrono::milliseconds timeout) {
  return commit_offsets(rk, nullptr, timeout);
}

rd_kafka_resp_err_t commit_offsets(rd_kafka_t* rk, const rd_kafka_topic_partition_list_t* offsets,
                                   std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const QueueHandle queue(rd_kafka_queue_new(rk));
  const auto err = rd_kafka_commit_queue(rk, offsets, queue.get(), nullptr, nullptr);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return err;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return RD_KAFKA_RESP_ERR__TIMED_OUT;
    const EventHandle event(rd_kafka_queue_poll(queue.get(), static_cast<int>(std::min<std::int64_t>(left, 100))));
    if (event && rd_kafka_event_type(event.get()) == RD_KAFKA_EVENT_OFFSET_COMMIT) {
      return rd_kafka_event_error(event.get());
    }
  }
}

}  // namespace cppfly::kafka::detail
