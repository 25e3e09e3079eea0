#include <cppfly/messaging/observer.hpp>

namespace cppfly::messaging {

std::string_view to_string(ConsumeOutcome outcome) noexcept {
  switch (outcome) {
    case ConsumeOutcome::success: return "success";
    case ConsumeOutcome::retried: return "retried";
    case ConsumeOutcome::dead_lettered: return "dead_lettered";
    case ConsumeOutcome::skipped: return "skipped";
  }
  return "unknown";
}

void ObserverList::add(std::shared_ptr<MessagingObserver> observer) {
  if (observer) observers_.push_back(std::move(observer));
}

void ObserverList::on_publish(const PublishEvent& event) noexcept {
  for (const auto& o : observers_) o->on_publish(event);
}

void ObserverList::on_consume_start(const ConsumeEvent& event) noexcept {
  for (const auto& o : observers_) o->on_consume_start(event);
}

void ObserverList::on_consume_end(const ConsumeEndEvent& event) noexcept {
  for (const auto& o : observers_) o->on_consume_end(event);
}

void ObserverList::on_commit(const CommitEvent& event) noexcept {
  for (const auto& o : observers_) o->on_commit(event);
}

}  // namespace cppfly::messaging
