#include "producer.hpp"

#include <algorithm>
#include <array>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <mutex>
#include <variant>
#include <vector>

#include <cppfly/config/config.hpp>
#include <cppfly/detail/log.hpp>
#include <cppfly/messaging/broker_port.hpp>
#include <cppfly/messaging/trace_context.hpp>

#include "record.hpp"

namespace cppfly::kafka::detail {

using messaging::BrokerError;
using messaging::DeliveryResult;
using Clock = std::chrono::steady_clock;

/// The per-record opaque: owned by librdkafka between producev and the delivery report.
/// The topic is not kept: the report names it (rd_kafka_topic_name).
struct Producer::Delivery {
  /// Completes the record's publish: a promise (publish, future publish_async) or a callback.
  /// Empty until send() sets one (a default promise would allocate its shared state for nothing).
  std::variant<std::monostate, std::promise<DeliveryResult>, messaging::DeliveryCallback> done;
  /// When the record was sent (only with an observer): its publish duration ends at the report.
  std::chrono::steady_clock::time_point sent{};

  // Reports free Delivery objects in bursts (one per produce request, often thousands),
  // more than malloc's per-thread cache holds, and often on another thread than the one that
  // sends (the producer's poll thread). Spare objects are kept per thread and move between
  // threads a batch at a time through a shared depot, so most send()s take a spare with a
  // pointer pop instead of a trip into the allocator.
  static void* operator new(std::size_t size) {
    if (auto* list = spares(); list != nullptr && size == sizeof(Delivery)) {
      if (void* spare = list->pop()) return spare;
    }
    return ::operator new(size);
  }
  static void operator delete(void* block, std::size_t size) noexcept {
    if (auto* list = spares(); list != nullptr && size == sizeof(Delivery) && list->push(block)) return;
    ::operator delete(block);
  }

 private:
  class Spares {
   public:
    Spares() = default;
    Spares(const Spares&) = delete;
    Spares& operator=(const Spares&) = delete;
    ~Spares() {
      gone() = true;  // reports served later on this thread (a static adapter) bypass the list
      while (top_ != nullptr) {
        Node* node = top_;
        top_ = node->next;
        ::operator delete(node);
      }
    }
    /// Trivially destructible, so still readable after ~Spares() on an exiting thread.
    static bool& gone() noexcept {
      thread_local bool flag = false;
      return flag;
    }
    void* pop() noexcept {
      if (top_ == nullptr && !refill()) return nullptr;
      Node* node = top_;
      top_ = node->next;
      --count_;
      return node;
    }
    bool push(void* block) noexcept {
      static_assert(sizeof(Delivery) >= sizeof(Node), "a spare Delivery holds a list link");
      if (count_ == kCapacity && !spill()) return false;
      top_ = ::new (block) Node{top_};
      ++count_;
      return true;
    }

   private:
    static constexpr std::size_t kBatch = 512;
    static constexpr std::size_t kCapacity = 2 * kBatch;
    static constexpr std::size_t kDepotBatches = 64;
    struct Node {
      Node* next;
    };
    struct Batch {
      Node* top;
      std::size_t count;
    };
    struct Depot {
      std::mutex mutex;
      std::vector<Batch> batches;
      Depot() { batches.reserve(kDepotBatches); }
    };
    /// Never destroyed: threads (and their reports) may run after static destructors.
    static Depot& depot() noexcept {
      static Depot* const shared = new Depot;
      return *shared;
    }
    /// An empty list takes a batch from the depot.
    bool refill() noexcept {
      Depot& shared = depot();
      const std::lock_guard lock(shared.mutex);
      if (shared.batches.empty()) return false;
      top_ = shared.batches.back().top;
      count_ = shared.batches.back().count;
      shared.batches.pop_back();
      return true;
    }
    /// A full list hands a batch to the depot; false when the depot is full too.
    bool spill() noexcept {
      Depot& shared = depot();
      const std::lock_guard lock(shared.mutex);
      if (shared.batches.size() == kDepotBatches) return false;
      Batch batch{nullptr, 0};
      while (batch.count < kBatch) {
        Node* node = top_;
        top_ = node->next;
        node->next = batch.top;
        batch.top = node;
        ++batch.count;
      }
      count_ -= kBatch;
      shared.batches.push_back(batch);  // within the reserved capacity: no allocation
      return true;
    }

    Node* top_{nullptr};
    std::size_t count_{0};
  };
  /// This thread's list; nullptr once the thread's list has been destroyed.
  static Spares* spares() noexcept {
    if (Spares::gone()) return nullptr;
    thread_local Spares list;
    return &list;
  }
};

namespace {

/// Extra time publish() waits beyond message.timeout.ms before giving up on a report
/// librdkafka has not sent (it always should).
constexpr std::chrono::milliseconds kReportGrace{5000};

bool is_purge(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT;
}

/// W3C trace context: a record published without a `traceparent` gets one (see trace_context.hpp).
void add_trace(HeadersHandle& headers, const messaging::Headers& given) {
  const auto span = messaging::trace_for_publish(given);
  if (!span) return;
  if (!headers) headers.reset(rd_kafka_headers_new(2));
  const std::string traceparent = span->traceparent();
  const auto add = [&](std::string_view name, std::string_view value) {
    rd_kafka_header_add(headers.get(), name.data(), static_cast<ssize_t>(name.size()), value.data(),
                        static_cast<ssize_t>(value.size()));
  };
  add(messaging::kTraceparentHeader, traceparent);
  if (!span->tracestate().empty() && !given.contains(messaging::kTracestateHeader)) {
    add(messaging::kTracestateHeader, span->tracestate());
  }
}

}  // namespace

Producer::Producer(ConfHandle conf, std::chrono::milliseconds publish_timeout)
    : ClientContext("producer"), publish_timeout_(publish_timeout) {
  install_context(conf.get(), this);
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &Producer::on_delivery);
  std::array<char, 512> reason{};
  rk_.reset(rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), reason.data(), reason.size()));
  if (!rk_) {
    throw config::ConfigError(std::string("pyfly.messaging.kafka: librdkafka refused the producer configuration: ") +
                              masked(reason.data()));
  }
  conf.release();  // owned by rk_ now
  poller_ = std::thread([this] { poll_loop(); });
}

Producer::~Producer() { close(publish_timeout_); }

void Producer::poll_loop() noexcept {
  // Delivery reports are served where the records were produced: send() serves the ready
  // ones after each record (so librdkafka's and our per-record memory is freed on the
  // thread that allocated it). This thread serves them when nobody is sending: records
  // published last, and publishers that only wait. While sends keep coming it stays out
  // of the way, looking again every kStepAside.
  constexpr std::chrono::milliseconds kStepAside{1};
  std::uint64_t seen = sends_.load(std::memory_order_relaxed);
  while (polling_.load(std::memory_order_acquire)) {
    const std::uint64_t now = sends_.load(std::memory_order_relaxed);
    if (now != seen) {
      seen = now;
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, kStepAside, [this] { return !polling_.load(std::memory_order_acquire); });
      continue;
    }
    rd_kafka_poll(rk_.get(), 100);  // serves delivery reports, errors, logs
  }
}

void Producer::on_delivery(rd_kafka_t* rk, const rd_kafka_message_t* message, void* /*opaque*/) noexcept {
  std::unique_ptr<Delivery> delivery(static_cast<Delivery*>(message->_private));
  if (!delivery) return;
  const char* topic = rd_kafka_topic_name(message->rkt);
  if (auto* self = static_cast<Producer*>(ClientContext::of(rk)); self != nullptr && self->observer_) {
    messaging::Headers headers;  // read from the record only when the observer looks
    messaging::DeferredHeaders::defer(headers, message, &read_headers);
    self->observer_->on_publish({.topic = topic,
                                 .ok = message->err == RD_KAFKA_RESP_ERR_NO_ERROR,
                                 .duration = std::chrono::steady_clock::now() - delivery->sent,
                                 .headers = &headers});
    messaging::DeferredHeaders::forget(headers);
  }
  try {
    std::optional<BrokerError> error;
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Not rd_kafka_message_errstr(): for a delivery report, payload is the record's value.
      std::string reason = rd_kafka_err2str(message->err);
      auto* self = static_cast<Producer*>(ClientContext::of(rk));
      if (message->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT && self != nullptr) {
        reason += " after " + std::to_string(self->publish_timeout_.count()) + " ms";
        if (auto last = self->last_error(); !last.empty()) reason += " (last broker error: " + last + ")";
      }
      if (is_purge(message->err)) {
        reason = "not delivered before the producer stopped (" + reason + ")";
        cppfly::detail::log().warn("kafka producer: a record for '{}' was not delivered before stop and is dropped",
                                   topic);
      }
      error.emplace("publish to '" + std::string(topic) + "' failed: " + reason);
    }
    if (auto* promise = std::get_if<std::promise<DeliveryResult>>(&delivery->done)) {
      if (error) {
        promise->set_exception(std::make_exception_ptr(*error));
      } else {
        promise->set_value(DeliveryResult{topic, message->partition, message->offset});
      }
      return;
    }
    auto* callback = std::get_if<messaging::DeliveryCallback>(&delivery->done);
    if (callback == nullptr || !*callback) return;
    (*callback)(messaging::DeliveryReport{topic, message->partition, message->offset, error ? &*error : nullptr});
  } catch (const std::exception& e) {  // nothing may escape into librdkafka
    cppfly::detail::log().error("kafka producer: delivery callback for '{}' threw: {}", topic, e.what());
  } catch (...) {
    cppfly::detail::log().error("kafka producer: delivery callback for '{}' threw", topic);
  }
}

namespace {

/// A NUL-terminated copy of a topic name for librdkafka, on the stack for names of the
/// usual length (Kafka limits names to 249 characters).
class TopicName {
 public:
  explicit TopicName(std::string_view topic) {
    if (topic.size() < inline_.size()) {
      topic.copy(inline_.data(), topic.size());
      inline_[topic.size()] = '\0';
      name_ = inline_.data();
    } else {
      long_ = topic;
      name_ = long_.c_str();
    }
  }
  TopicName(const TopicName&) = delete;
  TopicName& operator=(const TopicName&) = delete;
  [[nodiscard]] const char* c_str() const noexcept { return name_; }

 private:
  std::array<char, 256> inline_;
  std::string long_;
  const char* name_;
};

}  // namespace

std::future<DeliveryResult> Producer::send(std::string_view topic, std::string_view value,
                                           const messaging::PublishOptions& options) {
  auto delivery = std::make_unique<Delivery>();
  auto future = delivery->done.emplace<std::promise<DeliveryResult>>().get_future();
  enqueue(topic, value, options, delivery);
  return future;
}

void Producer::send(std::string_view topic, std::string_view value, const messaging::PublishOptions& options,
                    messaging::DeliveryCallback& done) {
  auto delivery = std::make_unique<Delivery>();
  delivery->done.emplace<messaging::DeliveryCallback>(std::move(done));
  try {
    enqueue(topic, value, options, delivery);
  } catch (...) {
    done = std::move(std::get<messaging::DeliveryCallback>(delivery->done));  // not queued: the caller's again
    throw;
  }
}

/// Counts a call that uses the client (send, flush) for its duration: close() waits for it.
class Producer::Visit {
 public:
  explicit Visit(Producer& producer) : producer_(producer) {
    // close() sets closed_ and then waits for sending_ to drop to 0 (both sequentially
    // consistent): a call that saw closed_ false is counted before close() looks.
    producer_.sending_.fetch_add(1);
  }
  ~Visit() {
    if (producer_.sending_.fetch_sub(1) == 1 && producer_.closed_.load()) {
      const std::lock_guard lock(producer_.mutex_);
      producer_.wake_.notify_all();
    }
  }
  Visit(const Visit&) = delete;
  Visit& operator=(const Visit&) = delete;

 private:
  Producer& producer_;
};

bool Producer::flush(std::chrono::milliseconds timeout) {
  const Visit visit(*this);
  if (closed_.load()) return true;  // close() delivers or fails every record itself
  return rd_kafka_flush(rk_.get(), static_cast<int>(timeout.count())) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

void Producer::enqueue(std::string_view topic, std::string_view value, const messaging::PublishOptions& options,
                       std::unique_ptr<Delivery>& delivery) {
  if (!observer_) {
    enqueue_record(topic, value, options, delivery);
    return;
  }
  delivery->sent = std::chrono::steady_clock::now();
  try {
    enqueue_record(topic, value, options, delivery);
  } catch (...) {  // refused before it was queued: no delivery report will come
    observer_->on_publish({.topic = topic, .ok = false, .duration = std::chrono::steady_clock::now() - delivery->sent});
    throw;
  }
}

void Producer::enqueue_record(std::string_view topic, std::string_view value, const messaging::PublishOptions& options,
                              std::unique_ptr<Delivery>& delivery) {
  const Visit visit(*this);
  // Only a change matters to the poll thread: a plain store, not a read-modify-write.
  sends_.store(sends_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (closed_.load()) {
    throw BrokerError("publish to '" + std::string(topic) + "' failed: the Kafka adapter is stopped");
  }

  const TopicName name(topic);

  HeadersHandle headers;
  if (!options.headers.empty()) {
    headers.reset(rd_kafka_headers_new(options.headers.size() + 1));
    for (const auto& [header, header_value] : options.headers) {
      rd_kafka_header_add(headers.get(), header.data(), static_cast<ssize_t>(header.size()), header_value.data(),
                          static_cast<ssize_t>(header_value.size()));
    }
  }
  add_trace(headers, options.headers);
  const void* key = options.key ? options.key->data() : nullptr;
  const std::size_t key_size = options.key ? options.key->size() : 0;
  const std::int32_t partition = options.partition.value_or(RD_KAFKA_PARTITION_UA);

  std::optional<Clock::time_point> deadline;  // taken when the queue is first found full
  for (;;) {
    // librdkafka's macros cast away const; RD_KAFKA_MSG_F_COPY copies key and value (one
    // allocation with the record; handing the caller's string over instead measured no faster).
    const auto err = rd_kafka_producev(
        rk_.get(), RD_KAFKA_V_TOPIC(name.c_str()), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),  // NOLINT(cppcoreguidelines-pro-type-const-cast)
        RD_KAFKA_V_KEY(key, key_size), RD_KAFKA_V_HEADERS(headers.get()), RD_KAFKA_V_OPAQUE(delivery.get()),
        RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      (void)headers.release();   // owned by the message now
      (void)delivery.release();  // owned by librdkafka until the delivery report
      // Serve the reports that are ready on this thread, as a hand-written producer loop
      // does: memory librdkafka and send() allocated here is then freed here too.
      rd_kafka_poll(rk_.get(), 0);
      return;
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      if (!deadline) deadline = Clock::now() + publish_timeout_;
      if (Clock::now() < *deadline) {
        // Back-pressure: serve delivery reports until there is room.
        rd_kafka_poll(rk_.get(), 10);
        continue;
      }
    }
    std::string reason = rd_kafka_err2str(err);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      reason = "the local queue stayed full for " + std::to_string(publish_timeout_.count()) + " ms (" + reason + ")";
    } else if (err == RD_KAFKA_RESP_ERR__FATAL) {
      fatal_ = true;
      std::array<char, 512> fatal{};
      rd_kafka_fatal_error(rk_.get(), fatal.data(), fatal.size());
      reason += std::string(": ") + fatal.data();
    } else if (err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION) {
      reason += " (partition " + std::to_string(partition) + ")";
    }
    throw BrokerError("publish to '" + std::string(topic) + "' failed: " + reason);
  }
}

DeliveryResult Producer::await(std::future<DeliveryResult>& delivery, std::string_view topic) const {
  if (delivery.wait_for(publish_timeout_ + kReportGrace) != std::future_status::ready) {
    throw BrokerError("publish to '" + std::string(topic) + "' failed: no delivery report within " +
                      std::to_string((publish_timeout_ + kReportGrace).count()) + " ms");
  }
  return delivery.get();
}

namespace {

/// Takes ownership of a librdkafka error object: its message, and its kind.
struct TxnError {
  explicit TxnError(rd_kafka_error_t* error) : error_(error) {}
  ~TxnError() {
    if (error_ != nullptr) rd_kafka_error_destroy(error_);
  }
  TxnError(const TxnError&) = delete;
  TxnError& operator=(const TxnError&) = delete;
  explicit operator bool() const noexcept { return error_ != nullptr; }
  [[nodiscard]] std::string text() const { return rd_kafka_error_string(error_); }
  [[nodiscard]] bool retriable() const { return rd_kafka_error_is_retriable(error_) != 0; }
  [[nodiscard]] bool requires_abort() const { return rd_kafka_error_txn_requires_abort(error_) != 0; }
  [[nodiscard]] bool fatal() const { return rd_kafka_error_is_fatal(error_) != 0; }

 private:
  rd_kafka_error_t* error_;
};

int millis(std::chrono::milliseconds timeout) { return static_cast<int>(std::max<std::int64_t>(1, timeout.count())); }

}  // namespace

void Producer::init_transactions(std::chrono::milliseconds timeout) {
  const Visit visit(*this);
  if (closed_.load()) throw BrokerError("cannot start transactions: the Kafka adapter is stopped");
  const TxnError error(rd_kafka_init_transactions(rk_.get(), millis(timeout)));
  if (error) {
    if (error.fatal()) fatal_ = true;
    throw BrokerError("cannot start transactions within " + std::to_string(timeout.count()) + " ms: " + error.text());
  }
}

void Producer::begin_transaction() {
  const Visit visit(*this);
  if (closed_.load()) throw BrokerError("cannot begin a transaction: the Kafka adapter is stopped");
  const TxnError error(rd_kafka_begin_transaction(rk_.get()));
  if (error) {
    if (error.fatal()) fatal_ = true;
    throw BrokerError("cannot begin a transaction: " + error.text());
  }
}

void Producer::commit_transaction(std::chrono::milliseconds timeout) {
  const Visit visit(*this);
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    const TxnError error(rd_kafka_commit_transaction(rk_.get(), millis(left)));
    if (!error) return;
    if (error.retriable() && Clock::now() < deadline) continue;
    if (error.requires_abort()) {
      const std::string reason = error.text();
      abort_transaction(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()) +
                        std::chrono::milliseconds(1000));
      throw BrokerError("transaction aborted: the commit failed: " + reason);
    }
    if (error.fatal()) fatal_ = true;
    throw BrokerError("transaction commit failed: " + error.text());
  }
}

void Producer::abort_transaction(std::chrono::milliseconds timeout) {
  const Visit visit(*this);
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    const TxnError error(rd_kafka_abort_transaction(rk_.get(), millis(left)));
    if (!error) return;
    if (error.retriable() && Clock::now() < deadline) continue;
    if (error.fatal()) fatal_ = true;
    throw BrokerError("transaction abort failed: " + error.text());
  }
}

void Producer::send_offsets_to_transaction(const rd_kafka_topic_partition_list_t& offsets,
                                           const rd_kafka_consumer_group_metadata_t& group,
                                           std::chrono::milliseconds timeout) {
  const Visit visit(*this);
  const TxnError error(rd_kafka_send_offsets_to_transaction(rk_.get(), &offsets, &group, millis(timeout)));
  if (error) {
    if (error.fatal()) fatal_ = true;
    throw BrokerError("cannot add the consumed offsets to the transaction: " + error.text());
  }
}

Producer*& current_transaction() noexcept {
  thread_local Producer* transaction = nullptr;
  return transaction;
}

void Producer::close(std::chrono::milliseconds flush_timeout) noexcept {
  try {
    if (closed_.exchange(true)) return;
    {
      // Calls already inside send() finish first (each bounded by publish_timeout).
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return sending_.load() == 0; });
    }
    auto& log = cppfly::detail::log();
    if (rd_kafka_flush(rk_.get(), static_cast<int>(flush_timeout.count())) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      log.warn("kafka producer: {} record(s) were still undelivered after {} ms at stop; dropping them",
               rd_kafka_outq_len(rk_.get()), flush_timeout.count());
      rd_kafka_purge(rk_.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      // Serve the purged records' reports so every future is fulfilled.
      rd_kafka_flush(rk_.get(), 5000);
    }
    {
      const std::lock_guard lock(mutex_);
      polling_.store(false, std::memory_order_release);
    }
    wake_.notify_all();
    if (poller_.joinable()) poller_.join();
    rk_.reset();
  } catch (const std::exception& e) {
    cppfly::detail::log().error("kafka producer: error while closing: {}", e.what());
  } catch (...) {
    cppfly::detail::log().error("kafka producer: unknown error while closing");
  }
}

}  // namespace cppfly::kafka::detail
