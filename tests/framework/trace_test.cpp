// W3C trace context: parsing and writing traceparent, scopes, propagation into publishes, and the
// span log, end to end across two listeners on the in-memory broker.
#include <catch2/catch.hpp>

#include <cppfly/application.hpp>
#include <cppfly/messaging/in_memory_broker.hpp>
#include <cppfly/messaging/listener.hpp>
#include <cppfly/messaging/span_logger.hpp>
#include <cppfly/messaging/trace_context.hpp>

#include <spdlog/sinks/ringbuffer_sink.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "cppfly/detail/log.hpp"

using namespace cppfly;
using namespace cppfly::messaging;

namespace {

constexpr std::string_view kExample = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// Propagation switched for one test, and back on after.
struct Propagation {
  explicit Propagation(bool on) { set_trace_propagation(on); }
  ~Propagation() { set_trace_propagation(true); }
  Propagation(const Propagation&) = delete;
  Propagation& operator=(const Propagation&) = delete;
};

/// Debug lines of the "cppfly" logger, kept for the test's lifetime.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000)), level_(cppfly::detail::log().level()) {
    sink_->set_pattern("%v");
    cppfly::detail::log().sinks().push_back(sink_);
    cppfly::detail::log().set_level(spdlog::level::debug);
  }
  ~LogCapture() {
    auto& sinks = cppfly::detail::log().sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    cppfly::detail::log().set_level(level_);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  [[nodiscard]] std::vector<std::string> lines_starting(std::string_view prefix) const {
    std::vector<std::string> out;
    for (auto& line : sink_->last_formatted()) {
      if (line.rfind(prefix, 0) == 0) out.push_back(line);
    }
    return out;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  spdlog::level::level_enum level_;
};

/// The value of `name=` in a span line.
std::string field(const std::string& line, const std::string& name) {
  const std::regex pattern("(?:^| )" + name + "=([^ ]*)");
  std::smatch match;
  if (!std::regex_search(line, match, pattern)) return {};
  return match[1];
}

}  // namespace

TEST_CASE("traceparent: a valid value is read and written back unchanged", "[trace]") {
  const auto context = TraceContext::parse(kExample, "congo=t61rcWkgMzE");
  REQUIRE(context);
  CHECK(context->trace_id() == "0af7651916cd43dd8448eb211c80319c");
  CHECK(context->span_id() == "b7ad6b7169203331");
  CHECK(context->parent_span_id().empty());
  CHECK(context->sampled());
  CHECK(context->traceparent() == kExample);
  CHECK(context->tracestate() == "congo=t61rcWkgMzE");
  CHECK_FALSE(TraceContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")->sampled());
  // A later version may add fields after a '-'; only the known part is read, and 00 is written.
  const auto later = TraceContext::parse("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra");
  REQUIRE(later);
  CHECK(later->traceparent() == kExample);
  // Flags other than "sampled" are not defined in version 00: they are not passed on.
  CHECK(TraceContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03")->traceparent() == kExample);
}

TEST_CASE("traceparent: invalid values are ignored", "[trace]") {
  const char* invalid[] = {
      "",
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",        // no flags
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",   // version 00 has nothing after flags
      "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",    // a later version's extra needs a '-'
      "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",     // version ff is invalid
      "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",     // upper case
      "00-00000000000000000000000000000000-b7ad6b7169203331-01",     // all-zero trace id
      "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",     // all-zero span id
      "00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01",     // separators
      "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",     // not hex
      "0x-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",     // version not hex
  };
  for (const char* value : invalid) {
    INFO(value);
    CHECK_FALSE(TraceContext::parse(value));
  }
}

TEST_CASE("tracestate: passed on as is, cut between list members past 512 bytes", "[trace]") {
  std::string members;
  for (int i = 0; i < 40; ++i) {
    if (i > 0) members.push_back(',');
    members.append("vendor").append(std::to_string(i)).append("=value-value");
  }
  REQUIRE(members.size() > 512);
  const auto context = TraceContext::parse(kExample, members);
  REQUIRE(context);
  CHECK(context->tracestate().size() <= 512);
  CHECK(members.rfind(context->tracestate(), 0) == 0);  // a prefix of the original ...
  CHECK(members[context->tracestate().size()] == ',');  // ... ending where a member ended
}

TEST_CASE("a child span keeps the trace, flags and tracestate, with a new span id under its parent", "[trace]") {
  const auto parent = TraceContext::parse(kExample, "congo=t61rcWkgMzE");
  REQUIRE(parent);
  const TraceContext child = parent->child();
  CHECK(child.trace_id() == parent->trace_id());
  CHECK(child.span_id() != parent->span_id());
  CHECK(child.parent_span_id() == parent->span_id());
  CHECK(child.sampled());
  CHECK(child.tracestate() == "congo=t61rcWkgMzE");
  CHECK(TraceContext::parse(child.traceparent()).has_value());
}

TEST_CASE("new traces have distinct random ids", "[trace]") {
  std::set<std::string> traces;
  std::set<std::string> spans;
  for (int i = 0; i < 1000; ++i) {
    const TraceContext context = TraceContext::start();
    traces.insert(context.trace_id());
    spans.insert(context.span_id());
    CHECK(context.sampled());
    CHECK(TraceContext::parse(context.traceparent()) == TraceContext::parse(context.traceparent()));
  }
  CHECK(traces.size() == 1000);
  CHECK(spans.size() == 1000);
}

TEST_CASE("propagation: outside a scope a publish starts a trace, inside it is a child, a given traceparent stays",
          "[trace]") {
  Headers first;
  Headers second;
  propagate_trace(first);
  propagate_trace(second);
  REQUIRE(TraceContext::from(first));
  REQUIRE(TraceContext::from(second));
  CHECK(TraceContext::from(first)->trace_id() != TraceContext::from(second)->trace_id());

  const auto parent = *TraceContext::parse(kExample, "congo=t61rcWkgMzE");
  {
    const TraceScope scope(parent);
    REQUIRE(current_trace() != nullptr);
    CHECK(*current_trace() == parent);
    Headers a;
    Headers b;
    propagate_trace(a);
    propagate_trace(b);
    const auto span_a = TraceContext::from(a);
    const auto span_b = TraceContext::from(b);
    REQUIRE(span_a);
    REQUIRE(span_b);
    CHECK(span_a->trace_id() == parent.trace_id());
    CHECK(span_b->trace_id() == parent.trace_id());
    CHECK(span_a->span_id() != span_b->span_id());
    CHECK(a.get(kTracestateHeader) == std::optional<std::string_view>("congo=t61rcWkgMzE"));

    Headers given{{"traceparent", "00-11111111111111111111111111111111-2222222222222222-01"}};
    propagate_trace(given);
    CHECK(given.size() == 1);
    CHECK(given.get("traceparent") == std::optional<std::string_view>("00-11111111111111111111111111111111-2222222222222222-01"));
  }
  CHECK(current_trace() == nullptr);

  // A record's handling: the record's traceparent is the parent, made once for the whole scope.
  Message record{.topic = "orders", .value = "v"};
  record.headers.add("traceparent", std::string(kExample));
  {
    const TraceScope handling(record);
    const TraceContext* span = current_trace();
    REQUIRE(span != nullptr);
    CHECK(span->trace_id() == "0af7651916cd43dd8448eb211c80319c");
    CHECK(span->parent_span_id() == "b7ad6b7169203331");
    CHECK(current_trace() == span);
    {
      const TraceScope nested(TraceScope::NewTrace{});
      REQUIRE(current_trace() != nullptr);
      CHECK(current_trace()->trace_id() != span->trace_id());
    }
    CHECK(current_trace() == span);
  }

  const Propagation off(false);
  Headers none;
  propagate_trace(none);
  CHECK(none.empty());
}

TEST_CASE("trace context end to end: two listeners in a chain, spans logged at debug level", "[trace][memory]") {
  const LogCapture log;
  ListenerRegistry registry;
  std::mutex mutex;
  std::map<std::string, std::vector<Message>> seen;
  const auto keep = [&](const Message& m) {
    const std::lock_guard lock(mutex);
    seen[m.topic].push_back(m);
  };
  MessageBrokerPort* broker = nullptr;
  registry.add(make_listener("enrich", [&](const Message& m) {
    keep(m);
    broker->publish("enriched", m.value + "+e");
  }, {.topic = "orders", .group_id = "enrich"}));
  registry.add(make_listener("ship", [&](const Message& m) {
    keep(m);
    broker->publish("shipments", m.value + "+s1");
    broker->publish("shipments", m.value + "+s2");
  }, {.topic = "enriched", .group_id = "ship"}));
  registry.add(make_listener("archive", keep, {.topic = "shipments", .group_id = "archive"}));
  Application app(config::Config::from_string("pyfly:\n  messaging:\n    provider: memory\n"), registry);
  app.start();  // the "cppfly" logger is at debug level: the Application logs spans with its own SpanLogger
  broker = &app.broker();

  broker->publish("orders", "o1", {.headers = {{"traceparent", std::string(kExample)}, {"tracestate", "congo=t61"}}});
  broker->publish("orders", "o2");  // no traceparent: the publish starts a trace
  app.stop();

  REQUIRE(seen["orders"].size() == 2);
  REQUIRE(seen["enriched"].size() == 2);
  REQUIRE(seen["shipments"].size() == 4);
  const auto origin = TraceContext::from(seen["orders"][0].headers);
  const auto enriched = TraceContext::from(seen["enriched"][0].headers);
  const auto s1 = TraceContext::from(seen["shipments"][0].headers);
  const auto s2 = TraceContext::from(seen["shipments"][1].headers);
  REQUIRE(origin);
  REQUIRE(enriched);
  REQUIRE(s1);
  REQUIRE(s2);
  CHECK(origin->traceparent() == kExample);
  for (const auto* span : {&*enriched, &*s1, &*s2}) {
    CHECK(span->trace_id() == origin->trace_id());
    CHECK(span->tracestate() == "congo=t61");
  }
  const std::set<std::string> span_ids{origin->span_id(), enriched->span_id(), s1->span_id(), s2->span_id()};
  CHECK(span_ids.size() == 4);

  // The second chain is a trace of its own, shared down the chain.
  const auto other = TraceContext::from(seen["orders"][1].headers);
  REQUIRE(other);
  CHECK(other->trace_id() != origin->trace_id());
  CHECK(TraceContext::from(seen["enriched"][1].headers)->trace_id() == other->trace_id());
  CHECK(TraceContext::from(seen["shipments"][2].headers)->trace_id() == other->trace_id());

  // The span log: each handling is a child of its record's span, and the records it published are
  // children of the handling (the handling's span id is not in any header: it is only the parent).
  const auto consumes = log.lines_starting("span consume ");
  const auto publishes = log.lines_starting("span publish ");
  REQUIRE(consumes.size() == 8);
  REQUIRE(publishes.size() == 8);
  std::map<std::string, std::string> handling_of;  // listener -> its consume line, first chain
  for (const auto& line : consumes) {
    if (field(line, "trace") != origin->trace_id()) continue;
    CHECK(field(line, "outcome") == "success");
    handling_of[field(line, "listener")] = line;
  }
  REQUIRE(handling_of.size() == 3);
  CHECK(field(handling_of["enrich"], "parent") == origin->span_id());
  CHECK(field(handling_of["ship"], "parent") == enriched->span_id());
  const std::string archive_parent = field(handling_of["archive"], "parent");
  CHECK((archive_parent == s1->span_id() || archive_parent == s2->span_id()));
  std::set<std::string> published_spans;
  for (const auto& line : publishes) {
    if (field(line, "trace") == origin->trace_id()) published_spans.insert(field(line, "span"));
  }
  CHECK(published_spans ==
        std::set<std::string>{origin->span_id(), enriched->span_id(), s1->span_id(), s2->span_id()});
}

TEST_CASE("trace-propagation off: publishes carry no traceparent", "[trace][memory]") {
  ListenerRegistry registry;
  std::vector<Message> seen;
  MessageBrokerPort* broker = nullptr;
  registry.add(make_listener("forward", [&](const Message& m) { broker->publish("out", m.value); },
                             {.topic = "in", .group_id = "forward"}));
  registry.add(make_listener("sink", [&](const Message& m) { seen.push_back(m); }, {.topic = "out", .group_id = "sink"}));
  struct Restore {  // the Application switches it off for the process: back on after the test
    ~Restore() { set_trace_propagation(true); }
  } const restore;
  Application app(
      config::Config::from_string("pyfly:\n  messaging:\n    provider: memory\n    trace-propagation: false\n"), registry);
  CHECK_FALSE(trace_propagation());
  app.start();
  broker = &app.broker();
  broker->publish("in", "x");
  app.stop();
  REQUIRE(seen.size() == 1);
  CHECK_FALSE(seen[0].headers.contains("traceparent"));
}
