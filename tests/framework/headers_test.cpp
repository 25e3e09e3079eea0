// Headers: deferred reading (what the Kafka adapter uses) and the copies that must not
// depend on the record.
#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <vector>

#include <cppfly/messaging/message.hpp>

using namespace cppfly::messaging;

namespace {

/// A stand-in for a broker record: its headers, and how often they were read.
struct Record {
  std::vector<Headers::Entry> headers;
  int reads{0};
};

void read_record(const void* source, std::vector<Headers::Entry>& into) {
  auto* record = static_cast<Record*>(const_cast<void*>(source));  // NOLINT: test bookkeeping
  ++record->reads;
  into.insert(into.end(), record->headers.begin(), record->headers.end());
}

}  // namespace

TEST_CASE("headers: deferred headers are read on first use, once", "[headers]") {
  Record record{.headers = {{"trace", "t-1"}, {"trace", "t-2"}, {"empty", ""}}};
  Headers headers{{"stale", "from the last record"}};
  DeferredHeaders::defer(headers, &record, &read_record);
  CHECK(record.reads == 0);
  CHECK(headers.get("trace") == "t-2");
  CHECK(headers.size() == 3);
  CHECK_FALSE(headers.contains("stale"));
  CHECK(record.reads == 1);
  DeferredHeaders::forget(headers);
  CHECK(headers.size() == 3);  // already read: forgetting the record keeps them
}

TEST_CASE("headers: a record whose headers nobody reads is never parsed", "[headers]") {
  Record record{.headers = {{"trace", "t-1"}}};
  Headers headers;
  DeferredHeaders::defer(headers, &record, &read_record);
  DeferredHeaders::forget(headers);
  CHECK(record.reads == 0);
  CHECK(headers.empty());
}

TEST_CASE("headers: a copy reads the record, so it outlives it", "[headers]") {
  Message kept;
  {
    Record record{.headers = {{"content-type", "application/json"}}};
    Message message{.topic = "orders", .value = "{}"};
    DeferredHeaders::defer(message.headers, &record, &read_record);
    kept = message;  // what a handler does to keep a message
    Message constructed(message);
    CHECK(constructed.headers == kept.headers);
    DeferredHeaders::forget(message.headers);
    CHECK(record.reads == 1);
  }
  CHECK(kept.headers.get("content-type") == "application/json");
}

TEST_CASE("headers: add and set on deferred headers keep the record's", "[headers]") {
  Record record{.headers = {{"a", "1"}, {"b", "2"}}};
  Headers headers;
  DeferredHeaders::defer(headers, &record, &read_record);
  headers.set("b", "3");
  headers.add("c", "4");
  CHECK(headers == Headers{{"a", "1"}, {"b", "3"}, {"c", "4"}});
}

TEST_CASE("headers: threads sharing a const message read the record once", "[headers]") {
  Record record{.headers = {{"trace", "t-1"}}};
  Message message;
  DeferredHeaders::defer(message.headers, &record, &read_record);
  const Message& shared = message;
  std::vector<std::thread> readers;
  std::vector<int> seen(4, 0);
  for (std::size_t i = 0; i < seen.size(); ++i) {
    readers.emplace_back([&, i] { seen[i] = shared.headers.get("trace") == "t-1" ? 1 : 0; });
  }
  for (auto& reader : readers) reader.join();
  CHECK(seen == std::vector<int>(4, 1));
  CHECK(record.reads == 1);
}
