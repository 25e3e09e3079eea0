// W3C trace context (https://www.w3.org/TR/trace-context/) carried in record headers: a consumed
// record's `traceparent` is the parent of its handling, and every publish made while handling it
// carries a `traceparent` of the same trace with a new span id (`tracestate` is passed on as is).
// Whether a publish with no trace around it starts one is pyfly.messaging.trace-propagation's choice.
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

  friend bool operator==(const TraceContext&, const TraceContext&) = default;

 private:
  TraceContext() = default;
  std::array<std::uint8_t, 16> trace_{};
  std::array<std::uint8_t, 8> span_{};
  std::array<std::uint8_t, 8> parent_{};  ///< all zero: none
  std::uint8_t flags_{0};
  std::string tracestate_;
};

/// pyfly.messaging.trace-propagation: which published records get a `traceparent`.
enum class TracePropagation {
  off,        ///< none: records carry exactly the headers given
  continued,  ///< "continue" (the default): those published under a trace (handling a record that had one, or a TraceScope)
  always,     ///< every one: a publish with no trace around it starts one, and so does handling a record without one
};

/// The span of the work this thread is doing: the handling of the record a listener runs, or what a
/// TraceScope set; nullptr outside both, and for work under no trace (a record without a valid
/// traceparent, unless propagation is `always`: then that work starts a trace). A handling's span is
/// made on first use, as a child of the record's traceparent.
[[nodiscard]] const TraceContext* current_trace();

/// Sets this thread's current trace for its lifetime and restores the previous one after.
class TraceScope {
 public:
  /// Work under `context`: publishes in this scope are children of it (as a handler's are of its record).
  explicit TraceScope(TraceContext context) noexcept;
  /// The handling of `record` (which must outlive the scope): its span is a child of the record's
  /// traceparent, made when first needed.
  explicit TraceScope(const Message& record) noexcept;
  /// Work that belongs to no one record (a batch of several): under no trace, or (`always`) a new
  /// trace, made when first needed.
  struct NewTrace {};
  explicit TraceScope(NewTrace) noexcept;
  ~TraceScope();
  TraceScope(const TraceScope&) = delete;
  TraceScope& operator=(const TraceScope&) = delete;

 private:
  friend const TraceContext* current_trace();
  const Message* record_{nullptr};
  bool resolved_{false};  ///< context_ is what it will be
  std::optional<TraceContext> context_;
  TraceScope* previous_{nullptr};
};

/// For adapters, on each record about to be published without a `traceparent`: its span (a child of
/// current_trace(), or with `always` the first span of a new trace); nullopt when it gets none.
[[nodiscard]] std::optional<TraceContext> trace_for_publish(const Headers& headers);
/// The same, written into `headers`: `traceparent`, and `tracestate` unless they already have one.
void propagate_trace(Headers& headers);

/// pyfly.messaging.trace-propagation for this process (`continue` unless set; the Application sets it
/// from its config).
void set_trace_propagation(TracePropagation mode) noexcept;
[[nodiscard]] TracePropagation trace_propagation() noexcept;

}  // namespace cppfly::messaging
