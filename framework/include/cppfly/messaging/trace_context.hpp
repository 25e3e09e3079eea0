// W3C trace context (https://www.w3.org/TR/trace-context/) carried in record headers: a consumed
// record's `traceparent` is the parent of its handling, and every publish made while handling it
// carries a `traceparent` of the same trace with a new span id (`tracestate` is passed on as is).
// A publish outside any handling starts a new trace. Switched by pyfly.messaging.trace-propagation.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cppfly::messaging {

class Headers;
struct Message;

inline constexpr std::string_view kTraceparentHeader = "traceparent";
inline constexpr std::string_view kTracestateHeader = "tracestate";

/// One span's place in a trace: trace id, span id, the parent's span id, flags and tracestate.
class TraceContext {
 public:
  /// Reads a `traceparent` value (and its `tracestate`); nullopt when it is not valid W3C trace
  /// context (wrong length, upper-case or non-hex digits, version ff, an all-zero id).
  [[nodiscard]] static std::optional<TraceContext> parse(std::string_view traceparent, std::string_view tracestate = {});
  /// The context a record's headers carry, if valid.
  [[nodiscard]] static std::optional<TraceContext> from(const Headers& headers);
  /// A new trace: random trace and span ids, sampled.
  [[nodiscard]] static TraceContext start();

  /// A span of the same trace under this one: new span id, this span as its parent, same flags and tracestate.
  [[nodiscard]] TraceContext child() const;

  /// `00-<trace id>-<span id>-<flags>`, the header's value.
  [[nodiscard]] std::string traceparent() const;
  [[nodiscard]] const std::string& tracestate() const noexcept { return tracestate_; }
  [[nodiscard]] std::string trace_id() const;        ///< 32 lower-case hex digits
  [[nodiscard]] std::string span_id() const;         ///< 16 lower-case hex digits
  [[nodiscard]] std::string parent_span_id() const;  ///< 16 hex digits; empty for a trace's first span
  [[nodiscard]] bool sampled() const noexcept { return (flags_ & 1U) != 0; }
  /// Writes `traceparent` and, when not empty, `tracestate` into `headers`, replacing what was there.
  void inject(Headers& headers) const;

  friend bool operator==(const TraceContext&, const TraceContext&) = default;

 private:
  TraceContext() = default;
  std::array<std::uint8_t, 16> trace_{};
  std::array<std::uint8_t, 8> span_{};
  std::array<std::uint8_t, 8> parent_{};  ///< all zero: none
  std::uint8_t flags_{0};
  std::string tracestate_;
};

/// The span of the work this thread is doing: the handling of the record a listener runs, or what a
/// TraceScope set; nullptr outside both. A handling's span is made on first use, as a child of the
/// record's traceparent (or a new trace when it has none).
[[nodiscard]] const TraceContext* current_trace();

/// Sets this thread's current trace for its lifetime and restores the previous one after.
class TraceScope {
 public:
  /// Work under `context`: publishes in this scope are children of it (as a handler's are of its record).
  explicit TraceScope(TraceContext context) noexcept;
  /// The handling of `record` (which must outlive the scope): its span is a child of the record's
  /// traceparent, made when first needed.
  explicit TraceScope(const Message& record) noexcept;
  /// Work that belongs to no record (a batch of several): a new trace, made when first needed.
  struct NewTrace {};
  explicit TraceScope(NewTrace) noexcept;
  ~TraceScope();
  TraceScope(const TraceScope&) = delete;
  TraceScope& operator=(const TraceScope&) = delete;

 private:
  friend const TraceContext* current_trace();
  const Message* record_{nullptr};
  std::optional<TraceContext> context_;
  TraceScope* previous_{nullptr};
};

/// For adapters, on each record about to be published: when propagation is on and `headers` carry no
/// `traceparent`, the record's span (a child of current_trace(), or the first span of a new trace); else nullopt.
[[nodiscard]] std::optional<TraceContext> trace_for_publish(const Headers& headers);
/// The same, written into `headers`: `traceparent`, and `tracestate` unless they already have one.
void propagate_trace(Headers& headers);

/// pyfly.messaging.trace-propagation (on unless set off; the Application sets it from its config).
void set_trace_propagation(bool on) noexcept;
[[nodiscard]] bool trace_propagation() noexcept;

}  // namespace cppfly::messaging
