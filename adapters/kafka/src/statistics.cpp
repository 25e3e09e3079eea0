#include "statistics.hpp"

#include <charconv>
#include <string>

#include <nlohmann/json.hpp>

namespace cppfly::kafka::detail {

ClientStatistics parse_statistics(std::string_view json) {
  const auto doc = nlohmann::json::parse(json);
  ClientStatistics out;
  out.reported = true;
  out.at = std::chrono::steady_clock::now();
  out.queued = doc.value("msg_cnt", std::int64_t{0});
  if (const auto brokers = doc.find("brokers"); brokers != doc.end() && brokers->is_object()) {
    for (const auto& [name, broker] : brokers->items()) {
      if (broker.value("nodeid", -1) >= 0 && broker.value("state", std::string()) == "UP") out.broker_up = true;
    }
  }
  if (const auto topics = doc.find("topics"); topics != doc.end() && topics->is_object()) {
    for (const auto& [topic, t] : topics->items()) {
      const auto partitions = t.find("partitions");
      if (partitions == t.end() || !partitions->is_object()) continue;
      for (const auto& [id, p] : partitions->items()) {
        const std::int32_t partition = p.value("partition", -1);
        if (partition < 0 || p.value("fetch_state", std::string("none")) == "none") continue;
        ++out.assigned;
        // Behind the stored position where there is one (a consumer that uses librdkafka's offset
        // store), else behind the committed one (the listener consumers commit the container's
        // position themselves).
        std::int64_t lag = p.value("consumer_lag_stored", std::int64_t{-1});
        if (lag < 0) lag = p.value("consumer_lag", std::int64_t{-1});
        if (lag >= 0) out.lag.push_back({.topic = topic, .partition = partition, .lag = lag});
      }
    }
  }
  return out;
}

}  // namespace cppfly::kafka::detail
