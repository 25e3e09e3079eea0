// Test helpers for the Kafka adapter: bounded waiting, unique names, test clusters
// (librdkafka's mock cluster, or a real broker named by CPPFLY_KAFKA_BOOTSTRAP).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <cppfly/config/properties.hpp>
#include <cppfly/kafka/kafka_adapter.hpp>
#include <cppfly/kafka/pull_consumer.hpp>
#include <cppfly/messaging/message.hpp>

namespace cppfly::kafka::test {

using namespace std::chrono_literals;
using messaging::Message;

/// The default bound for anything a test waits for.
inline constexpr std::chrono::seconds kWait{30};

/// "cppfly-test-<what>-<random>": topic and group names that never collide across runs.
std::string unique_name(const std::string& what);

/// Collects what a handler received; waits with a deadline (never sleep-and-hope).
/// The handler holds the state by shared_ptr, so an Inbox may die before the adapter.
class Inbox {
 public:
  Inbox();
  /// A handler that records each message; `fault` (optional) runs after recording and
  /// may throw to simulate a failing handler.
  [[nodiscard]] messaging::MessageHandler handler(std::function<void(const Message&)> fault = {}) const;

  /// Waits until `done(messages)` holds, at most `timeout`. False on timeout.
  bool wait_until(const std::function<bool(const std::vector<Message>&)>& done,
                  std::chrono::milliseconds timeout = kWait) const;
  /// Waits until at least `count` messages arrived.
  bool wait_for_count(std::size_t count, std::chrono::milliseconds timeout = kWait) const;
  /// Waits until a message with each of these values arrived.
  bool wait_for_values(const std::set<std::string>& values, std::chrono::milliseconds timeout = kWait) const;

  [[nodiscard]] std::vector<Message> messages() const;
  [[nodiscard]] std::vector<std::string> values() const;  ///< in arrival order
  [[nodiscard]] std::size_t size() const;

 private:
  struct State {
    mutable std::mutex mutex;
    std::condition_variable changed;
    std::vector<Message> messages;
  };
  std::shared_ptr<State> state_;
};

/// Sentinels: one record per partition, published after the records under test. Since
/// order holds per partition, once a consumer has every sentinel it has seen everything
/// published before them: "nothing more is coming" without a quiet period.
std::set<std::string> sentinel_values(const std::string& tag, int partitions);
std::set<std::string> publish_sentinels(KafkaAdapter& adapter, const std::string& topic, const std::string& tag,
                                        int partitions);
bool is_sentinel(const std::string& value);
/// The values that are not sentinels, in arrival order.
std::vector<std::string> payloads(const Inbox& inbox);

/// Adapter settings for tests: short timeouts, commit timer 200 ms.
config::KafkaProperties test_properties(const std::string& bootstrap_servers);

/// How many partitions `topic` has (metadata request through a throwaway client); -1 if unknown.
int partition_count(const std::string& bootstrap_servers, const std::string& topic);

/// A cluster the scenarios run against.
class TestCluster {
 public:
  virtual ~TestCluster() = default;
  [[nodiscard]] virtual std::string bootstrap_servers() const = 0;
  /// Creates the topic and waits until its partitions have leaders.
  virtual void create_topic(const std::string& topic, int partitions) = 0;
  /// A name for messages ("mock cluster", "real broker at ...").
  [[nodiscard]] virtual std::string describe() const = 0;
  /// Real Kafka accepts a commit from the current generation while a rebalance is being
  /// prepared, so the revoke-time commit makes a rebalance duplicate-free; librdkafka
  /// 2.0.2's mock coordinator refuses it (REBALANCE_IN_PROGRESS): records handled since
  /// the last timer commit are delivered again (at-least-once still holds).
  [[nodiscard]] virtual bool commits_during_rebalance() const { return true; }
  /// Real Kafka hides an aborted transaction's records from read_committed consumers; librdkafka
  /// 2.0.2's mock cluster runs transactions (init, commit, abort) but hands them out anyway.
  [[nodiscard]] virtual bool filters_aborted_transactions() const { return true; }
  /// Adapter settings for this cluster (test_properties(bootstrap_servers())).
  [[nodiscard]] virtual config::KafkaProperties properties() const { return test_properties(bootstrap_servers()); }
};

/// librdkafka's mock cluster, owned by the test (so it outlives the adapters under test
/// and faults can be injected).
class MockCluster final : public TestCluster {
 public:
  explicit MockCluster(int brokers = 1);
  ~MockCluster() override;
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;
  [[nodiscard]] std::string bootstrap_servers() const override;
  void create_topic(const std::string& topic, int partitions) override;
  [[nodiscard]] std::string describe() const override { return "mock cluster at " + bootstrap_servers(); }
  /// test_properties() plus session.timeout.ms=6000: librdkafka 2.0.2's mock coordinator
  /// holds a rejoin for a whole session timeout after the last member left (the adapter
  /// does the same for "embedded").
  [[nodiscard]] config::KafkaProperties properties() const override;
  [[nodiscard]] bool commits_during_rebalance() const override { return false; }
  [[nodiscard]] bool filters_aborted_transactions() const override { return false; }
  /// Every broker stops accepting connections (and drops the open ones).
  void all_brokers_down();
  /// The next `count` Produce requests fail with the librdkafka error code `error`.
  void fail_produce_requests(int error, int count);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The real broker named by CPPFLY_KAFKA_BOOTSTRAP (topics through the Admin API).
class RealCluster final : public TestCluster {
 public:
  explicit RealCluster(std::string bootstrap_servers) : servers_(std::move(bootstrap_servers)) {}
  [[nodiscard]] std::string bootstrap_servers() const override { return servers_; }
  void create_topic(const std::string& topic, int partitions) override;
  [[nodiscard]] std::string describe() const override { return "real broker at " + servers_; }

 private:
  std::string servers_;
};

}  // namespace cppfly::kafka::test
