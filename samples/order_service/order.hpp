// The order pipeline's messages and the tally the sample prints at the end.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace order_service {

struct Order {
  std::string id;
  std::string customer;
  std::string item;
  int quantity{};
  double amount{};
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(Order, id, customer, item, quantity, amount)
};

/// What each step did, so the sample can tell the story and know when the pipeline is done.
class Tally {
 public:
  static Tally& get();

  void record(const std::string& step, const std::string& line);
  [[nodiscard]] int count(const std::string& step) const;
  /// Waits (bounded) until every order has been reserved, invoiced, and paid or dead-lettered.
  bool wait_until_done(int orders, std::chrono::milliseconds timeout);
  [[nodiscard]] std::vector<std::string> lines() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, int> counts_;
  std::vector<std::string> lines_;
};

}  // namespace order_service
