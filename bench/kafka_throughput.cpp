// kafka_throughput: cppfly's KafkaAdapter against a hand-written librdkafka client, on a real broker.
//
// Run on demand (never a ctest test), against a broker started with scripts/kafka:
//   build/default/bench/kafka_throughput [--messages N] [--rounds R] [--bootstrap HOST:PORT]
//                                        [--parts producer,consumer,rss] [--sides raw,cppfly,future]
//                                        [--window W] [--rss-messages M] [--rss-runs K] [--progress]
//   build/default/bench/kafka_throughput --rss-drain M --topic T [--side cppfly|raw]   (one RSS child)
//   build/default/bench/kafka_throughput --fill M --topic T                            (make a backlog)
// The bootstrap address defaults to $CPPFLY_KAFKA_BOOTSTRAP. --sides picks one side (e.g. to profile it
// under valgrind --tool=callgrind); a ratio is printed only when both ran. --progress prints every
// 100 ms how many records a consumer has seen (it shows librdkafka's prefetch pauses).
//
// Parts, rounds alternating raw, cppfly, raw, cppfly, ... after one warm-up round per side that is
// not counted (producer: N/10 records); medians over the rounds:
//   producer  N 100-byte records, no key, on a fresh topic per round (6 partitions, created with
//             rd_kafka_CreateTopics, deleted after the round). raw: rd_kafka_producev (RD_KAFKA_MSG_F_COPY),
//             rd_kafka_poll(rk, 0) after each record, rd_kafka_flush; delivery reports counted.
//             cppfly: KafkaAdapter::publish_async with a DeliveryCallback for each record (counting
//             its report), then flush(). Beside it, side "future": publish_async's future form, the
//             futures kept in a window of W (default 100,000, librdkafka's queue.buffering.max.messages):
//             before a slot is reused its future is .get(), and the rest are .get() at the end
//             (--window 0: all N futures kept). Rounds go raw, cppfly, future.
//             Both: the producer settings cppfly uses (acks, enable.idempotence, message.timeout.ms,
//             reconnect.backoff.max.ms, taken from config::KafkaProperties' defaults), librdkafka's
//             defaults otherwise; client created and one record delivered before the clock starts.
//   consumer  one topic (6 partitions) filled with N records once; each round drains it in a fresh
//             group. raw: group consumer, rd_kafka_consumer_poll loop, enable.auto.commit=true with the
//             default automatic offset store; timed from rd_kafka_new to the N-th record.
//             cppfly: KafkaAdapter::subscribe(topic, raw-Message handler, group); timed from start() to
//             the N-th record in the handler. Both count records per partition and check the offsets
//             are consecutive from 0 to the partition's end, then wait 1 s for any extra record: a
//             side that did not see exactly the N records has no figure (VOID, exit status 1).
//   rss       peak RSS (VmHWM) of a process that drains an M-record backlog (default 1,000,000; the
//             consumer topic when M == N), each side in its own child process (--rss-drain).
#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <cppfly/config/properties.hpp>
#include <cppfly/kafka/kafka_adapter.hpp>
#include <cppfly/messaging/broker_port.hpp>
#include <cppfly/messaging/trace_context.hpp>

namespace {

using cppfly::config::KafkaProperties;
using cppfly::kafka::KafkaAdapter;
using cppfly::messaging::DeliveryResult;
using cppfly::messaging::Message;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kPayloadBytes = 100;
constexpr int kPartitions = 6;
constexpr double kTargetRatio = 0.95;
constexpr auto kDrainTimeout = std::chrono::seconds(600);
constexpr auto kExtraWait = std::chrono::seconds(1);
constexpr int kAdminTimeoutMs = 60000;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "kafka_throughput: %s\n", what.c_str());
  std::exit(2);
}

// ---- librdkafka handles -------------------------------------------------------------------------

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const noexcept { rd_kafka_destroy(rk); }
};
struct ConfDeleter {
  void operator()(rd_kafka_conf_t* conf) const noexcept { rd_kafka_conf_destroy(conf); }
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* queue) const noexcept { rd_kafka_queue_destroy(queue); }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* event) const noexcept { rd_kafka_event_destroy(event); }
};
struct AdminOptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* options) const noexcept { rd_kafka_AdminOptions_destroy(options); }
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaDeleter>;
using ConfHandle = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
using QueueHandle = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;
using EventHandle = std::unique_ptr<rd_kafka_event_t, EventDeleter>;
using AdminOptionsHandle = std::unique_ptr<rd_kafka_AdminOptions_t, AdminOptionsDeleter>;

void set(rd_kafka_conf_t* conf, const std::string& name, const std::string& value) {
  std::array<char, 512> reason{};
  if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), reason.data(), reason.size()) != RD_KAFKA_CONF_OK) {
    die("librdkafka refused " + name + "=" + value + ": " + reason.data());
  }
}

std::string get(const rd_kafka_conf_t* conf, const char* name) {
  std::array<char, 1024> value{};
  std::size_t size = value.size();
  if (rd_kafka_conf_get(conf, name, value.data(), &size) != RD_KAFKA_CONF_OK) return "?";
  return value.data();
}

std::string millis(std::chrono::milliseconds value) { return std::to_string(value.count()); }

// The settings cppfly's adapter gives its clients (adapters/kafka/src/client_config.cpp), from the
// same defaults; everything else is librdkafka's default on both sides.
const KafkaProperties& cppfly_defaults() {
  static const KafkaProperties defaults{};
  return defaults;
}

ConfHandle common_conf(const std::string& bootstrap) {
  ConfHandle conf(rd_kafka_conf_new());
  set(conf.get(), "bootstrap.servers", bootstrap);
  set(conf.get(), "client.id", "kafka-throughput-raw");
  set(conf.get(), "reconnect.backoff.max.ms", millis(cppfly_defaults().reconnect_backoff_max));
  return conf;
}

ConfHandle producer_conf(const std::string& bootstrap) {
  auto conf = common_conf(bootstrap);
  const auto& d = cppfly_defaults();
  set(conf.get(), "acks", d.acks);
  set(conf.get(), "enable.idempotence", d.enable_idempotence ? "true" : "false");
  set(conf.get(), "message.timeout.ms", millis(d.publish_timeout));
  return conf;
}

// The hand-written loop: librdkafka's at-least-once defaults (enable.auto.commit=true, offsets stored
// automatically when poll returns a record), the group/reset/commit-interval values cppfly uses.
ConfHandle consumer_conf(const std::string& bootstrap, const std::string& group) {
  auto conf = common_conf(bootstrap);
  const auto& d = cppfly_defaults();
  set(conf.get(), "group.id", group);
  set(conf.get(), "auto.offset.reset", d.auto_offset_reset);
  set(conf.get(), "auto.commit.interval.ms", millis(d.commit_interval));
  set(conf.get(), "enable.auto.commit", "true");
  // cppfly's consumers prefetch more than librdkafka's default (kQueuedMinMessages in
  // adapters/kafka/src/client_config.hpp); the raw loop gets the same.
  set(conf.get(), "queued.min.messages", "300000");
  return conf;
}

KafkaHandle make_client(rd_kafka_type_t type, ConfHandle conf) {
  std::array<char, 512> reason{};
  KafkaHandle rk(rd_kafka_new(type, conf.get(), reason.data(), reason.size()));
  if (!rk) die(std::string("rd_kafka_new: ") + reason.data());
  (void)conf.release();  // owned by rk now
  return rk;
}

// ---- topics (admin API) -------------------------------------------------------------------------

EventHandle admin_result(rd_kafka_queue_t* queue, rd_kafka_event_type_t type, const std::string& what) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(kAdminTimeoutMs + 5000);
  while (Clock::now() < deadline) {
    EventHandle event(rd_kafka_queue_poll(queue, 1000));
    if (!event || rd_kafka_event_type(event.get()) != type) continue;
    if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      die(what + ": " + rd_kafka_event_error_string(event.get()));
    }
    return event;
  }
  die(what + ": no answer from the cluster");
}

AdminOptionsHandle admin_options(rd_kafka_t* admin, rd_kafka_admin_op_t op) {
  AdminOptionsHandle options(rd_kafka_AdminOptions_new(admin, op));
  std::array<char, 512> reason{};
  if (rd_kafka_AdminOptions_set_operation_timeout(options.get(), kAdminTimeoutMs, reason.data(), reason.size()) !=
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    die(reason.data());
  }
  return options;
}

/// Waits until the topic's metadata shows every partition with a leader.
void await_topic(rd_kafka_t* admin, const std::string& topic, int partitions) {
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    rd_kafka_topic_t* handle = rd_kafka_topic_new(admin, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* metadata = nullptr;
    const auto err = rd_kafka_metadata(admin, 0, handle, &metadata, 5000);
    bool ready = false;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && metadata != nullptr && metadata->topic_cnt == 1) {
      const auto& t = metadata->topics[0];
      ready = t.err == RD_KAFKA_RESP_ERR_NO_ERROR && t.partition_cnt == partitions &&
              std::all_of(t.partitions, t.partitions + t.partition_cnt,
                          [](const rd_kafka_metadata_partition& p) { return p.leader >= 0; });
    }
    if (metadata != nullptr) rd_kafka_metadata_destroy(metadata);
    rd_kafka_topic_destroy(handle);
    if (ready) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  die("topic " + topic + " did not get " + std::to_string(partitions) + " partitions with leaders");
}

void create_topic(rd_kafka_t* admin, const std::string& topic, int partitions = kPartitions) {
  std::array<char, 512> reason{};
  rd_kafka_NewTopic_t* new_topic = rd_kafka_NewTopic_new(topic.c_str(), partitions, 1, reason.data(), reason.size());
  if (new_topic == nullptr) die(reason.data());
  const QueueHandle queue(rd_kafka_queue_new(admin));
  const auto options = admin_options(admin, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_CreateTopics(admin, &new_topic, 1, options.get(), queue.get());
  rd_kafka_NewTopic_destroy(new_topic);
  const auto event = admin_result(queue.get(), RD_KAFKA_EVENT_CREATETOPICS_RESULT, "create topic " + topic);
  std::size_t count = 0;
  const auto* const* results =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event.get()), &count);
  for (std::size_t i = 0; i < count; ++i) {
    if (rd_kafka_topic_result_error(results[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      die("create topic " + topic + ": " + rd_kafka_topic_result_error_string(results[i]));
    }
  }
  await_topic(admin, topic, partitions);
}

void delete_topic(rd_kafka_t* admin, const std::string& topic) {
  rd_kafka_DeleteTopic_t* doomed = rd_kafka_DeleteTopic_new(topic.c_str());
  const QueueHandle queue(rd_kafka_queue_new(admin));
  const auto options = admin_options(admin, RD_KAFKA_ADMIN_OP_DELETETOPICS);
  rd_kafka_DeleteTopics(admin, &doomed, 1, options.get(), queue.get());
  rd_kafka_DeleteTopic_destroy(doomed);
  (void)admin_result(queue.get(), RD_KAFKA_EVENT_DELETETOPICS_RESULT, "delete topic " + topic);
}

std::vector<std::int64_t> high_watermarks(rd_kafka_t* rk, const std::string& topic) {
  std::vector<std::int64_t> high(kPartitions, 0);
  for (int p = 0; p < kPartitions; ++p) {
    std::int64_t low = 0;
    if (const auto err = rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &low, &high[p], 10000);
        err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      die("watermarks of " + topic + ": " + rd_kafka_err2str(err));
    }
  }
  return high;
}

// ---- producer -----------------------------------------------------------------------------------

struct Reports {
  std::int64_t delivered = 0;
  std::int64_t failed = 0;
  rd_kafka_resp_err_t first_error = RD_KAFKA_RESP_ERR_NO_ERROR;
};

void on_report(rd_kafka_t* /*rk*/, const rd_kafka_message_t* message, void* opaque) {
  auto* reports = static_cast<Reports*>(opaque);
  if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++reports->delivered;
  } else {
    if (reports->failed++ == 0) reports->first_error = message->err;
  }
}

void produce_one(rd_kafka_t* rk, const std::string& topic, std::string_view payload) {
  for (;;) {
    const auto err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()),
                                       RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) die(std::string("rd_kafka_producev: ") + rd_kafka_err2str(err));
    rd_kafka_poll(rk, 10);  // wait for delivery reports to make room
  }
  rd_kafka_poll(rk, 0);  // serve delivery reports as they come
}

void flush_all(rd_kafka_t* rk) {
  const auto timeout = cppfly_defaults().publish_timeout + std::chrono::seconds(5);
  if (rd_kafka_flush(rk, static_cast<int>(timeout.count())) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    die("rd_kafka_flush: " + std::to_string(rd_kafka_outq_len(rk)) + " record(s) still queued");
  }
}

KafkaHandle raw_producer(const std::string& bootstrap, Reports& reports) {
  auto conf = producer_conf(bootstrap);
  rd_kafka_conf_set_opaque(conf.get(), &reports);
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &on_report);
  return make_client(RD_KAFKA_PRODUCER, std::move(conf));
}

/// Raw side: messages/s, or nullopt when a record was not delivered.
std::optional<double> produce_raw(const std::string& bootstrap, const std::string& topic, std::int64_t n,
                                  const std::string& payload) {
  Reports reports;
  auto rk = raw_producer(bootstrap, reports);
  produce_one(rk.get(), topic, "warm-up");
  flush_all(rk.get());
  if (reports.delivered != 1) die("raw producer: the warm-up record was not delivered");
  reports = Reports{};

  const auto t0 = Clock::now();
  for (std::int64_t i = 0; i < n; ++i) produce_one(rk.get(), topic, payload);
  flush_all(rk.get());
  const auto t1 = Clock::now();
  rk.reset();
  if (reports.delivered != n || reports.failed != 0) {
    std::fprintf(stderr, "raw producer: %lld delivered, %lld failed (%s), expected %lld\n",
                 static_cast<long long>(reports.delivered), static_cast<long long>(reports.failed),
                 rd_kafka_err2str(reports.first_error), static_cast<long long>(n));
    return std::nullopt;
  }
  return static_cast<double>(n) / std::chrono::duration<double>(t1 - t0).count();
}

KafkaProperties cppfly_properties(const std::string& bootstrap) {
  KafkaProperties properties;
  properties.bootstrap_servers = bootstrap;
  return properties;
}

/// The two asynchronous forms of cppfly's publish: a callback per record, or a future per record.
enum class PublishForm { callback, future };

/// cppfly side: messages/s, or nullopt when a record was not delivered. Callback form: every record
/// is published with a callback counting its report, then flush() waits for the last one. Future
/// form: window > 0 keeps at most that many futures (a ring; the oldest is .get() before its slot
/// is reused); 0 keeps every future.
std::optional<double> produce_cppfly(const std::string& bootstrap, const std::string& topic, std::int64_t n,
                                     const std::string& payload, std::int64_t window, PublishForm form) {
  KafkaAdapter adapter(cppfly_properties(bootstrap));
  adapter.start();
  adapter.publish(topic, "warm-up");
  std::int64_t delivered = 0;
  std::int64_t failed = 0;
  std::string first_error;
  const auto t0 = Clock::now();
  if (form == PublishForm::callback) {
    // Reports run on the publishing thread or the producer's poll thread: count atomically.
    std::atomic<std::int64_t> ok{0};
    std::atomic<std::int64_t> bad{0};
    const auto count = [&ok, &bad](const cppfly::messaging::DeliveryReport& report) {
      (report.ok() ? ok : bad).fetch_add(1, std::memory_order_relaxed);
    };
    for (std::int64_t i = 0; i < n; ++i) adapter.publish_async(topic, std::string(payload), {}, count);
    if (!adapter.flush(std::chrono::minutes(2))) first_error = "flush timed out";
    delivered = ok.load();
    failed = bad.load();
  } else {
    const auto slots = static_cast<std::size_t>(window > 0 ? std::min(window, n) : n);
    std::vector<std::future<DeliveryResult>> futures(slots);
    const auto settle = [&](std::future<DeliveryResult>& future) {
      if (!future.valid()) return;
      try {
        if (future.get().offset >= 0) ++delivered;
      } catch (const std::exception& e) {
        if (failed++ == 0) first_error = e.what();
      }
    };
    for (std::int64_t i = 0; i < n; ++i) {
      auto& slot = futures[static_cast<std::size_t>(i) % slots];
      settle(slot);
      slot = adapter.publish_async(topic, std::string(payload));
    }
    // The rest, oldest first.
    for (std::size_t k = 0; k < slots; ++k) settle(futures[(static_cast<std::size_t>(n) + k) % slots]);
  }
  const auto t1 = Clock::now();
  adapter.stop();
  if (delivered != n || failed != 0) {
    std::fprintf(stderr, "cppfly producer: %lld delivered, %lld failed (%s), expected %lld\n",
                 static_cast<long long>(delivered), static_cast<long long>(failed), first_error.c_str(),
                 static_cast<long long>(n));
    return std::nullopt;
  }
  return static_cast<double>(n) / std::chrono::duration<double>(t1 - t0).count();
}

/// Fills a (new) topic with n records of the payload; returns each partition's end offset.
std::vector<std::int64_t> fill_topic(rd_kafka_t* admin, const std::string& bootstrap, const std::string& topic,
                                     std::int64_t n, const std::string& payload) {
  create_topic(admin, topic);
  Reports reports;
  auto rk = raw_producer(bootstrap, reports);
  for (std::int64_t i = 0; i < n; ++i) produce_one(rk.get(), topic, payload);
  flush_all(rk.get());
  if (reports.delivered != n || reports.failed != 0) die("filling " + topic + ": not every record was delivered");
  auto high = high_watermarks(rk.get(), topic);
  std::int64_t total = 0;
  for (auto h : high) total += h;
  if (total != n) die("filling " + topic + ": the partitions hold " + std::to_string(total) + " records");
  return high;
}

// ---- consumer -----------------------------------------------------------------------------------

/// What a consumer saw: records per partition, and whether each partition's offsets were 0, 1, 2, ...
class Tally {
 public:
  void see(std::int32_t partition, std::int64_t offset, std::size_t bytes) noexcept {
    if (partition < 0 || partition >= kPartitions || offset != next_[static_cast<std::size_t>(partition)]) {
      ++anomalies_;
    } else {
      next_[static_cast<std::size_t>(partition)] = offset + 1;
    }
    bytes_ += bytes;
    const auto seen = count_.load(std::memory_order_relaxed) + 1;
    count_.store(seen, std::memory_order_release);
    if (seen == target_) {
      done_at_ = Clock::now();
      const std::lock_guard lock(mutex_);
      done_ = true;
      done_cv_.notify_all();
    }
  }
  void expect(std::int64_t n) noexcept { target_ = n; }
  [[nodiscard]] std::int64_t count() const noexcept { return count_.load(std::memory_order_acquire); }
  /// Waits (bounded) for the n-th record; false on timeout.
  bool await_target(Clock::duration timeout) {
    std::unique_lock lock(mutex_);
    return done_cv_.wait_for(lock, timeout, [this] { return done_; });
  }
  [[nodiscard]] Clock::time_point done_at() const noexcept { return done_at_; }
  /// Exactly the records 0 .. high[p]-1 of every partition, each once.
  [[nodiscard]] bool exact(const std::vector<std::int64_t>& high, std::string& why) const {
    std::int64_t total = 0;
    for (auto h : high) total += h;
    if (count() != total) why = "saw " + std::to_string(count()) + " records, expected " + std::to_string(total);
    if (anomalies_ != 0) why += (why.empty() ? "" : "; ") + std::to_string(anomalies_) + " out-of-sequence offsets";
    for (std::size_t p = 0; p < high.size(); ++p) {
      if (next_[p] != high[p]) {
        why += (why.empty() ? "" : "; ") + ("partition " + std::to_string(p) + " ended at " +
                                            std::to_string(next_[p]) + " of " + std::to_string(high[p]));
      }
    }
    if (why.empty() && bytes_ != static_cast<std::uint64_t>(total) * kPayloadBytes) why = "wrong byte count";
    return why.empty();
  }

 private:
  std::array<std::int64_t, kPartitions> next_{};
  std::int64_t anomalies_ = 0;
  std::uint64_t bytes_ = 0;
  std::atomic<std::int64_t> count_{0};
  std::int64_t target_ = -1;
  Clock::time_point done_at_{};
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
};

/// --progress: print how many records a consumer has seen, every 100 ms (to see stalls).
bool g_progress = false;

class Progress {
 public:
  Progress(const char* side, const Tally& tally) {
    if (!g_progress) return;
    sampler_ = std::thread([this, side, &tally] {
      const auto t0 = Clock::now();
      std::unique_lock lock(mutex_);
      while (!cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return stop_; })) {
        std::fprintf(stderr, "progress %s %6.0f ms %lld\n", side,
                     std::chrono::duration<double, std::milli>(Clock::now() - t0).count(),
                     static_cast<long long>(tally.count()));
      }
    });
  }
  ~Progress() {
    if (!sampler_.joinable()) return;
    {
      const std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    sampler_.join();
  }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread sampler_;
};

struct Drained {
  std::optional<double> rate;  ///< messages/s; nullopt: not exactly the records of the topic (void)
  double seconds = 0;
};

Drained verdict(const char* side, const Tally& tally, const std::vector<std::int64_t>& high, Clock::time_point t0,
                bool reached) {
  std::string why;
  if (!reached) why = "timed out; ";
  if (!tally.exact(high, why) || !reached) {
    std::fprintf(stderr, "%s consumer: VOID: %s\n", side, why.c_str());
    return {};
  }
  const double seconds = std::chrono::duration<double>(tally.done_at() - t0).count();
  return {static_cast<double>(tally.count()) / seconds, seconds};
}

void subscribe_raw(rd_kafka_t* rk, const std::string& topic) {
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
  const auto err = rd_kafka_subscribe(rk, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) die(std::string("rd_kafka_subscribe: ") + rd_kafka_err2str(err));
}

/// One poll of the hand-written loop: false when nothing came.
bool poll_raw(rd_kafka_t* rk, Tally& tally, int timeout_ms) {
  rd_kafka_message_t* record = rd_kafka_consumer_poll(rk, timeout_ms);
  if (record == nullptr) return false;
  if (record->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    tally.see(record->partition, record->offset, record->len);
  } else if (record->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    std::fprintf(stderr, "raw consumer: %s\n", rd_kafka_message_errstr(record));
  }
  rd_kafka_message_destroy(record);
  return true;
}

Drained consume_raw(const std::string& bootstrap, const std::string& topic, const std::string& group,
                    const std::vector<std::int64_t>& high) {
  Tally tally;
  std::int64_t n = 0;
  for (auto h : high) n += h;
  tally.expect(n);
  auto conf = consumer_conf(bootstrap, group);

  const Progress progress("raw", tally);
  const auto t0 = Clock::now();
  auto rk = make_client(RD_KAFKA_CONSUMER, std::move(conf));
  subscribe_raw(rk.get(), topic);
  const auto deadline = t0 + kDrainTimeout;
  while (tally.count() < n && Clock::now() < deadline) poll_raw(rk.get(), tally, 100);
  const bool reached = tally.count() >= n;
  // Anything beyond the n-th record would be a duplicate.
  const auto extra_until = Clock::now() + kExtraWait;
  while (reached && Clock::now() < extra_until) poll_raw(rk.get(), tally, 100);
  rd_kafka_consumer_close(rk.get());
  rk.reset();
  return verdict("raw", tally, high, t0, reached);
}

Drained consume_cppfly(const std::string& bootstrap, const std::string& topic, const std::string& group,
                       const std::vector<std::int64_t>& high) {
  Tally tally;
  std::int64_t n = 0;
  for (auto h : high) n += h;
  tally.expect(n);
  KafkaAdapter adapter(cppfly_properties(bootstrap));
  adapter.subscribe(
      topic, [&tally](const Message& m) { tally.see(m.partition, m.offset, m.value.size()); }, group);

  const Progress progress("cppfly", tally);
  const auto t0 = Clock::now();
  adapter.start();
  const bool reached = tally.await_target(kDrainTimeout);
  std::this_thread::sleep_for(kExtraWait);  // anything beyond the n-th record would be a duplicate
  adapter.stop();
  return verdict("cppfly", tally, high, t0, reached);
}

// ---- peak RSS (child process) -------------------------------------------------------------------

std::int64_t status_kb(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  const std::string_view name(field);
  while (std::getline(status, line)) {
    if (line.starts_with(name) && line.size() > name.size() && line[name.size()] == ':') {
      return std::strtoll(line.c_str() + name.size() + 1, nullptr, 10);
    }
  }
  return -1;
}

/// --rss-drain: drain `topic` (which holds exactly n records) in a fresh group, print VmHWM.
int rss_drain(const std::string& bootstrap, const std::string& topic, std::int64_t n, const std::string& side) {
  const auto admin = make_client(RD_KAFKA_PRODUCER, common_conf(bootstrap));
  const auto high = high_watermarks(admin.get(), topic);
  std::int64_t total = 0;
  for (auto h : high) total += h;
  if (total != n) die("--rss-drain: " + topic + " holds " + std::to_string(total) + " records, not " + std::to_string(n));
  const std::int64_t rss_before = status_kb("VmRSS");
  const std::string group = "kafka-throughput-rss-" + side + "-" + std::to_string(::getpid());
  Drained drained;
  if (side == "raw") {
    drained = consume_raw(bootstrap, topic, group, high);
  } else if (side == "cppfly") {
    drained = consume_cppfly(bootstrap, topic, group, high);
  } else {
    die("--side must be raw or cppfly");
  }
  if (!drained.rate) return 1;
  std::printf("RSS side=%s messages=%lld vmhwm_kb=%lld rss_before_kb=%lld seconds=%.3f msgs_per_s=%.0f\n",
              side.c_str(), static_cast<long long>(n), static_cast<long long>(status_kb("VmHWM")),
              static_cast<long long>(rss_before), drained.seconds, *drained.rate);
  return 0;
}

struct RssResult {
  std::int64_t vmhwm_kb = -1;
  std::int64_t before_kb = -1;
};

/// Runs this program as a --rss-drain child and reads its result line.
std::optional<RssResult> run_rss_child(const std::string& self, const std::string& bootstrap,
                                       const std::string& topic, std::int64_t n, const std::string& side) {
  const std::string command = "'" + self + "' --rss-drain " + std::to_string(n) + " --topic '" + topic +
                              "' --bootstrap '" + bootstrap + "' --side " + side;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) die("cannot run " + command);
  std::optional<RssResult> result;
  std::array<char, 512> line{};
  while (std::fgets(line.data(), static_cast<int>(line.size()), pipe) != nullptr) {
    long long hwm = 0;
    long long before = 0;
    if (std::sscanf(line.data(), "RSS side=%*s messages=%*d vmhwm_kb=%lld rss_before_kb=%lld", &hwm, &before) == 2) {
      result = RssResult{hwm, before};
    }
    std::fputs(line.data(), stdout);
  }
  if (::pclose(pipe) != 0) return std::nullopt;
  return result;
}

// ---- driver -------------------------------------------------------------------------------------

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

[[noreturn]] void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--messages N] [--rounds R] [--bootstrap HOST:PORT] [--parts producer,consumer,rss]\n"
               "          [--sides raw,cppfly,future] [--window W] [--rss-messages M] [--rss-runs K] [--trace-always] [--progress]\n"
               "       %s --rss-drain M --topic T [--side cppfly|raw] [--bootstrap HOST:PORT]\n"
               "       %s --fill M --topic T [--bootstrap HOST:PORT]\n",
               argv0, argv0, argv0);
  std::exit(2);
}

std::int64_t parse_positive(const char* text, const char* argv0) {
  std::int64_t v = 0;
  const std::string_view s(text);
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || v <= 0) usage(argv0);
  return v;
}

struct Side {
  const char* name;
  bool enabled;
  std::vector<double> rates{};
  int void_rounds = 0;

  void record(const std::optional<double>& rate) {
    if (rate) {
      rates.push_back(*rate);
    } else {
      ++void_rounds;
    }
  }
};

struct Part {
  const char* name;
  Side raw{"raw", true};
  Side cppfly{"cppfly", true};  ///< producer: the callback form of publish_async
  Side future{"future", false};  ///< producer only: the future form, beside it
};

void print_round(const char* part, std::int64_t round, const char* side, const std::optional<double>& rate,
                 double seconds = 0) {
  if (!rate) {
    std::printf("%-8s round %2lld  %-6s  VOID\n", part, static_cast<long long>(round), side);
  } else if (seconds > 0) {
    std::printf("%-8s round %2lld  %-6s  %12.0f msg/s  (%.3f s)\n", part, static_cast<long long>(round), side, *rate,
                seconds);
  } else {
    std::printf("%-8s round %2lld  %-6s  %12.0f msg/s\n", part, static_cast<long long>(round), side, *rate);
  }
  std::fflush(stdout);
}

void print_settings(const std::string& bootstrap) {
  const auto p = producer_conf(bootstrap);
  const auto c = consumer_conf(bootstrap, "settings");
  std::printf("librdkafka %s; payload %zu bytes, no key; topics with %d partitions, replication 1\n",
              rd_kafka_version_str(), kPayloadBytes, kPartitions);
  std::printf("producer (both sides):");
  for (const char* name : {"acks", "enable.idempotence", "message.timeout.ms", "reconnect.backoff.max.ms", "linger.ms",
                           "batch.num.messages", "batch.size", "queue.buffering.max.messages",
                           "queue.buffering.max.kbytes", "compression.type"}) {
    std::printf(" %s=%s", name, get(p.get(), name).c_str());
  }
  std::printf("\nconsumer (both sides):");
  for (const char* name : {"auto.offset.reset", "auto.commit.interval.ms", "enable.auto.commit",
                           "partition.assignment.strategy", "queued.max.messages.kbytes", "queued.min.messages",
                           "fetch.max.bytes", "max.partition.fetch.bytes", "fetch.wait.max.ms"}) {
    std::printf(" %s=%s", name, get(c.get(), name).c_str());
  }
  std::printf("\nconsumer offsets: raw enable.auto.offset.store=%s; cppfly enable.auto.offset.store=false "
              "(the offset is stored after the handler returned)\n\n",
              get(c.get(), "enable.auto.offset.store").c_str());
}

}  // namespace

int main(int argc, char** argv) {
  std::int64_t messages = 1'000'000;
  std::int64_t rounds = 5;
  std::int64_t rss_messages = 1'000'000;
  std::int64_t rss_runs = 3;
  std::int64_t window = 100'000;  // = librdkafka's queue.buffering.max.messages default
  std::int64_t rss_drain_n = 0;
  std::int64_t fill_n = 0;
  std::string topic;
  std::string side = "cppfly";
  std::string parts = "producer,consumer,rss";
  std::string sides = "raw,cppfly,future";
  const char* env_bootstrap = std::getenv("CPPFLY_KAFKA_BOOTSTRAP");
  std::string bootstrap = env_bootstrap != nullptr ? env_bootstrap : "";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg(argv[i]);
    const bool has_value = i + 1 < argc;
    if (arg == "--messages" && has_value) {
      messages = parse_positive(argv[++i], argv[0]);
    } else if (arg == "--rounds" && has_value) {
      rounds = parse_positive(argv[++i], argv[0]);
    } else if (arg == "--bootstrap" && has_value) {
      bootstrap = argv[++i];
    } else if (arg == "--parts" && has_value) {
      parts = argv[++i];
    } else if (arg == "--sides" && has_value) {
      sides = argv[++i];
    } else if (arg == "--rss-messages" && has_value) {
      rss_messages = parse_positive(argv[++i], argv[0]);
    } else if (arg == "--rss-runs" && has_value) {
      rss_runs = parse_positive(argv[++i], argv[0]);
    } else if (arg == "--rss-drain" && has_value) {
      rss_drain_n = parse_positive(argv[++i], argv[0]);
    } else if (arg == "--fill" && has_value) {
      fill_n = parse_positive(argv[++i], argv[0]);
    } else if (arg == "--topic" && has_value) {
      topic = argv[++i];
    } else if (arg == "--window" && has_value) {
      window = std::strtoll(argv[++i], nullptr, 10);
      if (window < 0) usage(argv[0]);
    } else if (arg == "--trace-always") {
      // trace-propagation: always, a W3C traceparent on every record cppfly publishes (raw librdkafka
      // sends none). By default (continue) a publish under no trace adds nothing: both sides send the same bytes.
      cppfly::messaging::set_trace_propagation(cppfly::messaging::TracePropagation::always);
    } else if (arg == "--progress") {
      g_progress = true;
    } else if (arg == "--side" && has_value) {
      side = argv[++i];
    } else {
      usage(argv[0]);
    }
  }
  if (bootstrap.empty()) die("no broker: pass --bootstrap HOST:PORT or set CPPFLY_KAFKA_BOOTSTRAP");
  const std::string payload(kPayloadBytes, 'x');

  if (rss_drain_n > 0) {
    if (topic.empty()) usage(argv[0]);
    return rss_drain(bootstrap, topic, rss_drain_n, side);
  }
  const auto admin = make_client(RD_KAFKA_PRODUCER, common_conf(bootstrap));
  if (fill_n > 0) {
    if (topic.empty()) usage(argv[0]);
    (void)fill_topic(admin.get(), bootstrap, topic, fill_n, payload);
    std::printf("filled %s with %lld records\n", topic.c_str(), static_cast<long long>(fill_n));
    return 0;
  }

  const auto wants = [](std::string_view list, std::string_view item) {  // item is in the comma-separated list
    while (!list.empty()) {
      const auto comma = list.find(',');
      if (list.substr(0, comma) == item) return true;
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
    return false;
  };
  const std::string prefix = "kafka-throughput-" + std::to_string(::getpid());
  Part producer{"producer"};
  Part consumer{"consumer"};
  for (Part* part : {&producer, &consumer}) {
    part->raw.enabled = wants(sides, "raw");
    part->cppfly.enabled = wants(sides, "cppfly");
  }
  producer.future.enabled = wants(sides, "future");
  std::printf("kafka_throughput: %lld messages x %lld rounds per side (raw, cppfly alternating), broker %s, "
              "publish_async window %lld%s\n",
              static_cast<long long>(messages), static_cast<long long>(rounds), bootstrap.c_str(),
              static_cast<long long>(window), window == 0 ? " (every future kept)" : "");
  print_settings(bootstrap);
  bool all_valid = true;

  if (wants(parts, "producer")) {
    // Warm-up (not in the results): the broker's first topics, producer ids, JIT, page cache.
    const auto produce = [&](Side* s, const std::string& t, std::int64_t n) {
      if (s == &producer.raw) return produce_raw(bootstrap, t, n, payload);
      return produce_cppfly(bootstrap, t, n, payload, window,
                            s == &producer.future ? PublishForm::future : PublishForm::callback);
    };
    for (Side* s : {&producer.raw, &producer.cppfly, &producer.future}) {
      if (!s->enabled) continue;
      const std::string t = prefix + "-produce-warm-up-" + s->name;
      create_topic(admin.get(), t);
      (void)produce(s, t, std::max<std::int64_t>(1, messages / 10));
      delete_topic(admin.get(), t);
    }
    for (std::int64_t r = 1; r <= rounds; ++r) {
      for (Side* s : {&producer.raw, &producer.cppfly, &producer.future}) {
        if (!s->enabled) continue;
        const std::string t = prefix + "-produce-" + s->name + "-" + std::to_string(r);
        create_topic(admin.get(), t);
        const auto rate = produce(s, t, messages);
        delete_topic(admin.get(), t);
        s->record(rate);
        print_round("producer", r, s->name, rate);
      }
    }
  }

  std::string consume_topic;
  std::vector<std::int64_t> consume_high;
  if (wants(parts, "consumer")) {
    consume_topic = prefix + "-consume";
    consume_high = fill_topic(admin.get(), bootstrap, consume_topic, messages, payload);
    // Warm-up (not in the results): the group coordinator, the topic in the page cache.
    for (Side* s : {&consumer.raw, &consumer.cppfly}) {
      if (!s->enabled) continue;
      const std::string group = prefix + "-warm-up-" + s->name;
      (void)(s == &consumer.raw ? consume_raw(bootstrap, consume_topic, group, consume_high)
                                : consume_cppfly(bootstrap, consume_topic, group, consume_high));
    }
    for (std::int64_t r = 1; r <= rounds; ++r) {
      for (Side* s : {&consumer.raw, &consumer.cppfly}) {
        if (!s->enabled) continue;
        const std::string group = prefix + "-" + s->name + "-" + std::to_string(r);
        const auto drained = s == &consumer.raw ? consume_raw(bootstrap, consume_topic, group, consume_high)
                                                : consume_cppfly(bootstrap, consume_topic, group, consume_high);
        s->record(drained.rate);
        print_round("consumer", r, s->name, drained.rate, drained.seconds);
      }
    }
  }

  std::vector<double> rss_raw;
  std::vector<double> rss_cppfly;
  std::vector<double> rss_before;
  if (wants(parts, "rss")) {
    std::string rss_topic = consume_topic;
    if (rss_topic.empty() || rss_messages != messages) {
      rss_topic = prefix + "-backlog";
      (void)fill_topic(admin.get(), bootstrap, rss_topic, rss_messages, payload);
    }
    std::array<char, 4096> self{};
    const auto len = ::readlink("/proc/self/exe", self.data(), self.size() - 1);
    if (len <= 0) die("cannot find /proc/self/exe");
    for (std::int64_t r = 0; r < rss_runs; ++r) {
      for (const char* s : {"raw", "cppfly"}) {
        if (!wants(sides, s)) continue;
        const auto result = run_rss_child(std::string(self.data(), static_cast<std::size_t>(len)), bootstrap,
                                          rss_topic, rss_messages, s);
        if (!result) {
          std::printf("rss      run %lld  %-6s  VOID\n", static_cast<long long>(r + 1), s);
          all_valid = false;
          continue;
        }
        (std::string_view(s) == "raw" ? rss_raw : rss_cppfly).push_back(static_cast<double>(result->vmhwm_kb));
        rss_before.push_back(static_cast<double>(result->before_kb));
      }
    }
    if (rss_topic != consume_topic) delete_topic(admin.get(), rss_topic);
  }
  if (!consume_topic.empty()) delete_topic(admin.get(), consume_topic);

  // Summary.
  std::printf("\n%-9s %14s %14s %8s %8s\n", "part", "raw msg/s", "cppfly msg/s", "ratio", "target");
  for (Part* part : {&producer, &consumer}) {
    if (part->raw.void_rounds + part->cppfly.void_rounds > 0) all_valid = false;
    if (part->raw.rates.empty() && part->cppfly.rates.empty()) continue;
    const double raw = part->raw.rates.empty() ? 0 : median(part->raw.rates);
    const double cpp = part->cppfly.rates.empty() ? 0 : median(part->cppfly.rates);
    const bool both = raw > 0 && cpp > 0;
    const double ratio = both ? cpp / raw : 0;
    std::array<char, 16> ratio_text{"-"};
    if (both) std::snprintf(ratio_text.data(), ratio_text.size(), "%.3f", ratio);
    std::printf("%-9s %14.0f %14.0f %8s %8s\n", part->name, raw, cpp, ratio_text.data(),
                both ? (ratio >= kTargetRatio ? "met" : "MISSED") : "-");
    std::printf("BENCH kafka_throughput part=%s messages=%lld rounds=%lld raw_median_msgs_per_s=%.0f "
                "cppfly_median_msgs_per_s=%.0f ratio=%.3f void_rounds=%d\n",
                part->name, static_cast<long long>(messages), static_cast<long long>(rounds), raw, cpp, ratio,
                part->raw.void_rounds + part->cppfly.void_rounds);
  }
  if (!producer.future.rates.empty() && !producer.raw.rates.empty()) {
    if (producer.future.void_rounds > 0) all_valid = false;
    const double raw = median(producer.raw.rates);
    const double future = median(producer.future.rates);
    std::printf("%-9s %14.0f %14.0f %8.3f %8s  (publish_async's future form, beside the callback form above)\n",
                "producer", raw, future, future / raw, "-");
    std::printf("BENCH kafka_throughput part=producer-future messages=%lld rounds=%lld raw_median_msgs_per_s=%.0f "
                "cppfly_median_msgs_per_s=%.0f ratio=%.3f void_rounds=%d\n",
                static_cast<long long>(messages), static_cast<long long>(rounds), raw, future, future / raw,
                producer.future.void_rounds);
  }
  if (!rss_raw.empty() || !rss_cppfly.empty()) {
    const double raw = rss_raw.empty() ? 0 : median(rss_raw);
    const double cpp = rss_cppfly.empty() ? 0 : median(rss_cppfly);
    std::printf("peak RSS draining %lld records (VmHWM, median of %lld runs): raw %.1f MiB, cppfly %.1f MiB "
                "(RSS before consuming: %.1f MiB)\n",
                static_cast<long long>(rss_messages), static_cast<long long>(rss_runs), raw / 1024, cpp / 1024,
                rss_before.empty() ? 0 : median(rss_before) / 1024);
    std::printf("BENCH kafka_throughput part=rss messages=%lld raw_vmhwm_kb=%.0f cppfly_vmhwm_kb=%.0f\n",
                static_cast<long long>(rss_messages), raw, cpp);
  }
  if (!all_valid) std::printf("some figures are VOID (see above)\n");
  return all_valid ? 0 : 1;
}
