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

/// Propagation set for one test, and back to the default (continue) after.
struct Propagation {
  explicit Propagation(TracePropagation mode) { set_trace_propagation(mode); }
  ~Propagation() { set_trace_propagation(TracePropagation::continued); }
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

TEST_CASE("propagation: a publish under a trace gets a child span, a given traceparent stays, and only 'always' "
          "starts traces",
          "[trace]") {
  REQUIRE(trace_propagation() == TracePropagation::continued);  // the default
  Headers untraced;
  propagate_trace(untraced);  // continue: no trace around, none started
  CHECK(untraced.empty());
  CHECK(current_trace() == nullptr);

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
    CHECK(span_a->span_id() != parent.span_id());  // (a header names its own span only, not its parent)
    CHECK(span_a->span_id() != span_b->span_id());
    CHECK(a.get(kTracestateHeader) == std::optional<std::string_view>("congo=t61rcWkgMzE"));

    Headers given{{"traceparent", "00-11111111111111111111111111111111-2222222222222222-01"}};
    propagate_trace(given);
    CHECK(given.size() == 1);
    CHECK(given.get("traceparent") == std::optional<std::string_view>("00-11111111111111111111111111111111-2222222222222222-01"));

    {
      const Propagation off(TracePropagation::off);
      Headers none;
      propagate_trace(none);
      CHECK(none.empty());
    }
  }
  CHECK(current_trace() == nullptr);

  // A record's handling: the record's traceparent is the parent, made once for the whole scope.
  Message record{.topic = "orders", .value = "v"};
  record.headers.add("traceparent", std::string(kExample));
  Message plain{.topic = "orders", .value = "v"};
  {
    const TraceScope handling(record);
    const TraceContext* span = current_trace();
    REQUIRE(span != nullptr);
    CHECK(span->trace_id() == "0af7651916cd43dd8448eb211c80319c");
    CHECK(span->parent_span_id() == "b7ad6b7169203331");
    CHECK(current_trace() == span);
    {
      const TraceScope batch(TraceScope::NewTrace{});  // continue: a batch is under no trace
      CHECK(current_trace() == nullptr);
      const TraceScope untraced_record(plain);
      CHECK(current_trace() == nullptr);
    }
    CHECK(current_trace() == span);
  }

  const Propagation always(TracePropagation::always);
  Headers first;
  Headers second;
  propagate_trace(first);
  propagate_trace(second);
  REQUIRE(TraceContext::from(first));
  REQUIRE(TraceContext::from(second));
  CHECK(TraceContext::from(first)->parent_span_id().empty());
  CHECK(TraceContext::from(first)->trace_id() != TraceContext::from(second)->trace_id());
  {
    const TraceScope untraced_record(plain);  // always: its handling starts a trace, shared by its publishes
    const TraceContext* span = current_trace();
    REQUIRE(span != nullptr);
    CHECK(span->parent_span_id().empty());
    Headers out;
    propagate_trace(out);
    REQUIRE(TraceContext::from(out));
    CHECK(TraceContext::from(out)->trace_id() == span->trace_id());
    CHECK(TraceContext::from(out)->span_id() != span->span_id());
  }
  {
    const TraceScope batch(TraceScope::NewTrace{});
    REQUIRE(current_trace() != nullptr);
    CHECK(current_trace()->parent_span_id().empty());
  }
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
  broker->publish("orders", "o2");  // no traceparent, and propagation "continue": no trace anywhere in its chain
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

  // The second chain carries exactly the headers given: none.
  CHECK(seen["orders"][1].headers.empty());
  CHECK(seen["enriched"][1].headers.empty());
  CHECK(seen["shipments"][2].headers.empty());
  CHECK(seen["shipments"][3].headers.empty());

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
  CHECK(std::count_if(consumes.begin(), consumes.end(), [](const std::string& line) {
          return field(line, "trace") == "-";  // the second chain's handlings: under no trace
        }) == 4);
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

namespace {

/// in -> "forward" republishes to out; what the records of `in` and `out` carried, with `yaml_mode`.
std::pair<Message, Message> forward_once(const std::string& yaml_mode, const Headers& given) {
  ListenerRegistry registry;
  std::vector<Message> seen;
  MessageBrokerPort* broker = nullptr;
  registry.add(make_listener("forward", [&](const Message& m) {
    seen.push_back(m);
    broker->publish("out", m.value);
  }, {.topic = "in", .group_id = "forward"}));
  registry.add(make_listener("sink", [&](const Message& m) { seen.push_back(m); }, {.topic = "out", .group_id = "sink"}));
  const Propagation restore(TracePropagation::continued);  // the Application sets it for the process: back after
  Application app(config::Config::from_string("pyfly:\n  messaging:\n    provider: memory\n    trace-propagation: " +
                                              yaml_mode + "\n"),
                  registry);
  app.start();
  broker = &app.broker();
  broker->publish("in", "x", {.headers = given});
  app.stop();
  REQUIRE(seen.size() == 2);
  return {seen[0], seen[1]};
}

}  // namespace

TEST_CASE("trace-propagation off: records carry exactly the headers given", "[trace][memory]") {
  const auto [in, out] = forward_once("off", {{"traceparent", std::string(kExample)}});
  CHECK(in.headers.size() == 1);
  CHECK(out.headers.empty());  // the handling had a parent, but nothing is written
}

TEST_CASE("trace-propagation always: a publish under no trace starts one, carried down the chain", "[trace][memory]") {
  const auto [in, out] = forward_once("always", {});
  const auto first = TraceContext::from(in.headers);
  const auto second = TraceContext::from(out.headers);
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->trace_id() == second->trace_id());
  CHECK(first->span_id() != second->span_id());
}
