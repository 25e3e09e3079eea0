#include <cppfly/messaging/trace_context.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <random>
#include <thread>

#include <cppfly/messaging/message.hpp>

namespace cppfly::messaging {
namespace {

std::atomic<TracePropagation> propagation{TracePropagation::continued};

/// What the spec asks a participant to pass on at least; a longer tracestate loses whole list members from its end.
constexpr std::size_t kTracestateLimit = 512;

thread_local TraceScope* innermost = nullptr;

std::mt19937_64& generator() {
  thread_local std::mt19937_64 engine = [] {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device(),
                       static_cast<unsigned>(std::hash<std::thread::id>{}(std::this_thread::get_id())),
                       static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count())};
    return std::mt19937_64(seed);
  }();
  return engine;
}

/// Random bytes, never all zero (an all-zero id is invalid).
template <std::size_t N>
void randomize(std::array<std::uint8_t, N>& bytes) {
  auto& engine = generator();
  do {
    for (std::size_t i = 0; i < N; i += 8) {
      const std::uint64_t word = engine();
      std::memcpy(bytes.data() + i, &word, std::min<std::size_t>(8, N - i));
    }
  } while (std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b == 0; }));
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case is not allowed in traceparent
}

/// Reads 2*N lower-case hex digits into `out`; false on any other character.
template <std::size_t N>
bool read_hex(std::string_view text, std::array<std::uint8_t, N>& out) {
  for (std::size_t i = 0; i < N; ++i) {
    const int high = hex_digit(text[2 * i]);
    const int low = hex_digit(text[2 * i + 1]);
    if (high < 0 || low < 0) return false;
    out[i] = static_cast<std::uint8_t>((high << 4) | low);
  }
  return true;
}

template <std::size_t N>
void append_hex(std::string& out, const std::array<std::uint8_t, N>& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (const std::uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4U]);
    out.push_back(kDigits[b & 0xfU]);
  }
}

template <std::size_t N>
bool all_zero(const std::array<std::uint8_t, N>& bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b == 0; });
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

/// At most kTracestateLimit bytes, cut between list members.
std::string bounded_tracestate(std::string_view tracestate) {
  tracestate = trim(tracestate);
  while (tracestate.size() > kTracestateLimit) {
    const auto comma = tracestate.rfind(',');
    if (comma == std::string_view::npos) return {};
    tracestate = trim(tracestate.substr(0, comma));
  }
  return std::string(tracestate);
}

}  // namespace

std::optional<TraceContext> TraceContext::parse(std::string_view traceparent, std::string_view tracestate) {
  // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55 characters.
  traceparent = trim(traceparent);
  if (traceparent.size() < 55) return std::nullopt;
  std::array<std::uint8_t, 1> version{};
  if (!read_hex(traceparent.substr(0, 2), version) || version[0] == 0xff) return std::nullopt;
  // Version 00 is exactly 55 long; a later version may append fields after a '-'.
  if (version[0] == 0 ? traceparent.size() != 55 : (traceparent.size() > 55 && traceparent[55] != '-')) {
    return std::nullopt;
  }
  if (traceparent[2] != '-' || traceparent[35] != '-' || traceparent[52] != '-') return std::nullopt;
  TraceContext context;
  std::array<std::uint8_t, 1> flags{};
  if (!read_hex(traceparent.substr(3, 32), context.trace_) || !read_hex(traceparent.substr(36, 16), context.span_) ||
      !read_hex(traceparent.substr(53, 2), flags)) {
    return std::nullopt;
  }
  if (all_zero(context.trace_) || all_zero(context.span_)) return std::nullopt;
  context.flags_ = static_cast<std::uint8_t>(flags[0] & 1U);  // only "sampled" is defined
  context.tracestate_ = bounded_tracestate(tracestate);
  return context;
}

std::optional<TraceContext> TraceContext::from(const Headers& headers) {
  const auto traceparent = headers.get(kTraceparentHeader);
  if (!traceparent) return std::nullopt;
  return parse(*traceparent, headers.get(kTracestateHeader).value_or(std::string_view{}));
}

TraceContext TraceContext::start() {
  TraceContext context;
  randomize(context.trace_);
  randomize(context.span_);
  context.flags_ = 1;
  return context;
}

TraceContext TraceContext::child() const {
  TraceContext context = *this;
  context.parent_ = span_;
  randomize(context.span_);
  return context;
}

std::string TraceContext::traceparent() const {
  std::string out;
  out.reserve(55);
  out.append("00-");
  append_hex(out, trace_);
  out.push_back('-');
  append_hex(out, span_);
  out.append(flags_ != 0 ? "-01" : "-00");
  return out;
}

std::string TraceContext::trace_id() const {
  std::string out;
  append_hex(out, trace_);
  return out;
}

std::string TraceContext::span_id() const {
  std::string out;
  append_hex(out, span_);
  return out;
}

std::string TraceContext::parent_span_id() const {
  std::string out;
  if (!all_zero(parent_)) append_hex(out, parent_);
  return out;
}

TraceScope::TraceScope(TraceContext context) noexcept
    : resolved_(true), context_(std::move(context)), previous_(innermost) {
  innermost = this;
}

TraceScope::TraceScope(const Message& record) noexcept : record_(&record), previous_(innermost) { innermost = this; }

TraceScope::TraceScope(NewTrace /*unused*/) noexcept : previous_(innermost) { innermost = this; }

TraceScope::~TraceScope() { innermost = previous_; }

const TraceContext* current_trace() {
  TraceScope* scope = innermost;
  if (scope == nullptr) return nullptr;
  if (!scope->resolved_) {
    scope->resolved_ = true;
    std::optional<TraceContext> parent;
    if (scope->record_ != nullptr) parent = TraceContext::from(scope->record_->headers);
    if (parent) {
      scope->context_ = parent->child();
    } else if (trace_propagation() == TracePropagation::always) {
      scope->context_ = TraceContext::start();
    }
  }
  return scope->context_ ? &*scope->context_ : nullptr;
}

std::optional<TraceContext> trace_for_publish(const Headers& headers) {
  const TracePropagation mode = trace_propagation();
  if (mode == TracePropagation::off) return std::nullopt;
  if (mode == TracePropagation::continued && innermost == nullptr) return std::nullopt;  // the cheap common case
  if (headers.contains(kTraceparentHeader)) return std::nullopt;
  if (const TraceContext* parent = current_trace(); parent != nullptr) return parent->child();
  if (mode == TracePropagation::always) return TraceContext::start();
  return std::nullopt;
}

void propagate_trace(Headers& headers) {
  const auto span = trace_for_publish(headers);
  if (!span) return;
  headers.add(std::string(kTraceparentHeader), span->traceparent());
  if (!span->tracestate().empty() && !headers.contains(kTracestateHeader)) {
    headers.add(std::string(kTracestateHeader), span->tracestate());
  }
}

void set_trace_propagation(TracePropagation mode) noexcept { propagation.store(mode, std::memory_order_relaxed); }

TracePropagation trace_propagation() noexcept { return propagation.load(std::memory_order_relaxed); }

}  // namespace cppfly::messaging
