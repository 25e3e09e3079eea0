// cppfly-dlq (tools/cppfly-dlq) on a real Apache Kafka broker named by CPPFLY_KAFKA_BOOTSTRAP:
// a poison record dead-lettered by a listener, redriven once its handler is fixed, is handled
// once; a record that keeps failing stops at the loop guard; a redrive killed with SIGKILL
// half-way resumes without sending a record twice. The tool runs as its own process.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <cppfly/application.hpp>
#include <cppfly/kafka/kafka_adapter.hpp>
#include <cppfly/kafka/pull_consumer.hpp>
#include <cppfly/messaging/dead_letter.hpp>
#include <cppfly/messaging/listener.hpp>

#include "support.hpp"

namespace cppfly_dlq_test {
/// The failure the test handlers throw: x-exception names it.
class Poison : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
}  // namespace cppfly_dlq_test

namespace {

using namespace cppfly;
using namespace cppfly::integration;
using namespace cppfly::messaging;
namespace dlh = cppfly::messaging::dead_letter_headers;
using Catch::Matchers::Contains;

const std::string kTool = CPPFLY_DLQ_TOOL;

/// The tool's config: the same pyfly.yaml keys a service reads.
std::string tool_yaml(const std::string& servers) {
  return "pyfly:\n  messaging:\n    provider: kafka\n    kafka:\n      bootstrap-servers: \"" + servers +
         "\"\n      connect-timeout: 10s\n";
}

ProcessResult dlq(const TempFile& config, std::vector<std::string> args) {
  std::vector<std::string> argv{kTool};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--config", config.path()});
  return run_process(argv);
}

std::string header(const Message& m, std::string_view name) {
  const auto value = m.headers.get(name);
  return value ? std::string(*value) : "<none>";
}

/// Every record of `topic` (all partitions) read from the beginning by a fresh group, until
/// `count` came (bounded), then the high watermarks say whether more exist.
std::vector<Message> read_all(const std::string& servers, const std::string& topic, std::size_t count) {
  auto properties = kafka_config(servers).messaging().kafka;
  properties.auto_offset_reset = "earliest";
  kafka::PullConsumer consumer(properties, unique_name("reader"), {topic});
  std::vector<Message> out;
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
    for (auto& m : consumer.poll(500ms)) out.push_back(std::move(m));
  }
  std::int64_t total = 0;
  for (int p = 0; p < consumer.partition_count(topic); ++p) {
    const auto [low, high] = consumer.watermarks(topic, p);
    total += high - low;
  }
  CHECK(total == static_cast<std::int64_t>(out.size()));
  return out;
}

std::size_t count_of(const std::vector<Message>& messages, const std::string& value) {
  return static_cast<std::size_t>(
      std::count_if(messages.begin(), messages.end(), [&](const Message& m) { return m.value == value; }));
}

}  // namespace

TEST_CASE("cppfly-dlq: a poison record redriven after its handler is fixed is handled once",
          "[kafka][real][dlq-tool]") {
  const auto servers = bootstrap_servers();
  const auto topic = unique_name("orders");
  const auto dead_topic = topic + "-dlq";
  create_topic(servers, topic, 1);
  create_topic(servers, dead_topic, 1);
  const TempFile config(tool_yaml(servers));

  std::atomic<bool> fixed{false};
  Collector<Message> handled;
  Collector<Message> dead;
  ListenerRegistry registry;
  registry.add(make_listener(
      "orders",
      [&fixed, handled](const Message& m) {
        if (m.value == "poison" && !fixed.load()) throw cppfly_dlq_test::Poison("cannot handle poison yet");
        handled.add(m);
      },
      {.topic = topic, .group_id = unique_name("orders"), .retries = 1, .retry_delay = 0ms,
       .dead_letter_topic = dead_topic}));
  registry.add(make_listener("dlq-reader", [dead](const Message& m) { dead.add(m); },
                             {.topic = dead_topic, .group_id = unique_name("dlq-reader")}));
  Application app(kafka_config(servers), registry);
  app.start();
  app.broker().publish(topic, "poison", {.key = "order-1", .headers = {{"trace-id", "t-1"}}});
  app.broker().publish(topic, "fine-1", {.key = "order-2"});
  REQUIRE(dead.wait_for_count(1));
  REQUIRE(handled.wait_until([](const auto& seen) { return count_of(seen, "fine-1") == 1; }));
  CHECK(header(dead.items()[0], dlh::exception) == "cppfly_dlq_test::Poison");

  const auto listed = dlq(config, {"list", dead_topic});
  INFO(listed.describe() << "\n" << listed.out);
  CHECK(listed.exit_code == 0);
  CHECK_THAT(listed.out, Contains(dead_topic + ": 1 dead letter(s) in 1 partition(s)"));
  CHECK_THAT(listed.out, Contains("cppfly_dlq_test::Poison"));

  const auto shown = dlq(config, {"show", dead_topic});
  CHECK(shown.exit_code == 0);
  CHECK_THAT(shown.out, Contains("  x-original-topic: " + topic));
  CHECK_THAT(shown.out, Contains("  trace-id: t-1"));
  CHECK_THAT(shown.out, Contains("value: 6 bytes (--payloads shows it)"));
  CHECK_FALSE(shown.out.find("value (") != std::string::npos);
  CHECK_THAT(dlq(config, {"show", dead_topic, "--payloads"}).out, Contains("value (6 bytes): poison"));

  fixed = true;
  const auto redriven = dlq(config, {"redrive", dead_topic});
  INFO(redriven.describe() << "\n" << redriven.out);
  REQUIRE(redriven.exit_code == 0);
  CHECK_THAT(redriven.out, Contains("1 sent, 0 held by the loop guard"));
  REQUIRE(handled.wait_until([](const auto& seen) { return count_of(seen, "poison") == 1; }));

  // Once: a record published after it arrives, and the poison record came only once before it.
  app.broker().publish(topic, "fine-2", {.key = "order-2"});
  REQUIRE(handled.wait_until([](const auto& seen) { return count_of(seen, "fine-2") == 1; }));
  const auto seen = handled.items();
  CHECK(count_of(seen, "poison") == 1);
  const auto poison = *std::find_if(seen.begin(), seen.end(), [](const Message& m) { return m.value == "poison"; });
  CHECK(poison.key == std::optional<std::string>("order-1"));
  CHECK(header(poison, "trace-id") == "t-1");
  CHECK(header(poison, "x-redrive-count") == "1");
  for (const auto name : {dlh::original_topic, dlh::exception, dlh::exception_message, dlh::retry_count,
                          dlh::original_offset, dlh::original_partition, dlh::original_group}) {
    CHECK_FALSE(poison.headers.contains(name));
  }

  // Run again: the group's progress says the record was redriven; nothing is sent twice.
  const auto again = dlq(config, {"redrive", dead_topic});
  CHECK(again.exit_code == 0);
  CHECK_THAT(again.out, Contains("0 sent"));
  app.stop();
  CHECK(dead.size() == 1);
}

TEST_CASE("cppfly-dlq: a record that keeps failing is redriven --max-redrives times, then held and reported",
          "[kafka][real][dlq-tool]") {
  const auto servers = bootstrap_servers();
  const auto topic = unique_name("payments");
  const auto dead_topic = topic + "-dlq";
  create_topic(servers, topic, 1);
  create_topic(servers, dead_topic, 1);
  const TempFile config(tool_yaml(servers));

  Collector<Message> attempts;
  Collector<Message> dead;
  ListenerRegistry registry;
  registry.add(make_listener(
      "payments",
      [attempts](const Message& m) {
        attempts.add(m);
        if (m.value == "always-bad") throw cppfly_dlq_test::Poison("still failing");
      },
      {.topic = topic, .group_id = unique_name("payments"), .retries = 0, .dead_letter_topic = dead_topic}));
  registry.add(make_listener("dlq-reader", [dead](const Message& m) { dead.add(m); },
                             {.topic = dead_topic, .group_id = unique_name("dlq-reader")}));
  Application app(kafka_config(servers), registry);
  app.start();
  app.broker().publish(topic, "always-bad", {.key = "p-1"});
  REQUIRE(dead.wait_for_count(1));
  CHECK_FALSE(dead.items()[0].headers.contains("x-redrive-count"));

  for (int round = 1; round <= 2; ++round) {
    const auto run = dlq(config, {"redrive", dead_topic, "--max-redrives", "2"});
    INFO("round " << round << ": " << run.describe() << "\n" << run.out);
    REQUIRE(run.exit_code == 0);
    CHECK_THAT(run.out, Contains("1 sent, 0 held"));
    // Dead-lettered again by the listener: x-redrive-count survives, the x- diagnostics are new.
    REQUIRE(dead.wait_for_count(static_cast<std::size_t>(round) + 1));
    const auto again = dead.items().back();
    CHECK(header(again, "x-redrive-count") == std::to_string(round));
    CHECK(header(again, dlh::original_topic) == topic);
    CHECK(header(again, dlh::exception) == "cppfly_dlq_test::Poison");
    CHECK(header(again, dlh::retry_count) == "0");
    CHECK(std::count_if(again.headers.begin(), again.headers.end(),
                        [](const auto& h) { return h.first == "x-redrive-count" || h.first == dlh::exception; }) == 2);
  }

  const auto guarded = dlq(config, {"redrive", dead_topic, "--max-redrives", "2"});
  INFO(guarded.describe() << "\n" << guarded.out);
  CHECK(guarded.exit_code == 4);
  CHECK_THAT(guarded.out, Contains("was redriven 2 time(s) already (--max-redrives 2); not sent"));
  CHECK_THAT(guarded.out, Contains("0 sent, 1 held by the loop guard"));

  // Not sent again: a record published after the run is the next one the listener sees.
  app.broker().publish(topic, "fine", {.key = "p-2"});
  REQUIRE(attempts.wait_until([](const auto& seen) { return count_of(seen, "fine") == 1; }));
  CHECK(count_of(attempts.items(), "always-bad") == 3);  // the first attempt and two redrives
  app.stop();
  CHECK(dead.size() == 3);

  const auto listed = dlq(config, {"list", dead_topic});
  CHECK(listed.exit_code == 0);
  CHECK_THAT(listed.out, Contains(dead_topic + ": 3 dead letter(s)"));
}

TEST_CASE("cppfly-dlq: a redrive killed with SIGKILL half-way resumes without sending a record twice",
          "[kafka][real][dlq-tool]") {
  const auto servers = bootstrap_servers();
  const auto target = unique_name("target");
  const auto dead_topic = unique_name("many-dlq");
  create_topic(servers, target, 1);
  create_topic(servers, dead_topic, 3);
  const TempFile config(tool_yaml(servers));
  constexpr int kRecords = 150;
  constexpr int kBeforeKill = 60;
  {
    kafka::KafkaAdapter producer(kafka_config(servers).messaging().kafka);
    producer.start();
    for (int i = 0; i < kRecords; ++i) {
      // std::string(...).append(...): GCC 12 at -O3 mis-warns (-Wrestrict) about "v" + std::to_string(i).
      const std::string number = std::to_string(i);
      producer.publish_async(dead_topic, std::string("v").append(number),
                             {.key = std::string("k").append(number),
                              .headers = {{"x-original-topic", target}, {"x-exception", "Boom"}}});
    }
    REQUIRE(producer.flush(kWait));
    producer.stop();
  }

  // The first run pauses (test aid) once 60 records are sent and committed; it is killed there,
  // its consumer holding fetched records it never sent.
  // Everything the child needs is made before fork(): it only calls dup2, open and execve.
  std::vector<std::string> env{"CPPFLY_DLQ_TEST_PAUSE_AFTER=" + std::to_string(kBeforeKill)};
  for (char** e = environ; *e != nullptr; ++e) {
    if (!std::string_view(*e).starts_with("CPPFLY_DLQ_TEST_PAUSE_AFTER=")) env.emplace_back(*e);
  }
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args{kTool, "redrive", dead_topic, "--config", config.path()};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int err_pipe[2];
  REQUIRE(::pipe2(err_pipe, O_CLOEXEC) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::dup2(err_pipe[1], 2);
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(err_pipe[1]);
  std::string err;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (err.find("test pause after") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    pollfd fd{err_pipe[0], POLLIN, 0};
    if (::poll(&fd, 1, 500) <= 0) continue;
    char buffer[512];
    const auto n = ::read(err_pipe[0], buffer, sizeof buffer);
    if (n <= 0) break;
    err.append(buffer, static_cast<std::size_t>(n));
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(err_pipe[0]);
  INFO("first run's stderr: " << err);
  REQUIRE(err.find("test pause after 60 sent") != std::string::npos);
  CHECK(WIFSIGNALED(status));

  const auto first = read_all(servers, target, kBeforeKill);
  CHECK(first.size() == static_cast<std::size_t>(kBeforeKill));

  const auto resumed = dlq(config, {"redrive", dead_topic});
  INFO(resumed.describe() << "\n" << resumed.out);
  REQUIRE(resumed.exit_code == 0);
  CHECK_THAT(resumed.out, Contains(std::to_string(kRecords - kBeforeKill) + " sent, 0 held"));

  const auto all = read_all(servers, target, kRecords);
  std::set<std::string> values;
  for (const auto& m : all) {
    values.insert(m.value);
    CHECK(header(m, "x-redrive-count") == "1");
    CHECK(m.key == std::optional<std::string>("k" + m.value.substr(1)));
  }
  CHECK(all.size() == static_cast<std::size_t>(kRecords));
  CHECK(values.size() == static_cast<std::size_t>(kRecords));  // every record, none twice
}

TEST_CASE("cppfly-dlq: usage errors, an unreachable broker and a missing topic have their exit codes",
          "[kafka][real][dlq-tool]") {
  const auto servers = bootstrap_servers();
  const TempFile config(tool_yaml(servers));
  const auto help = run_process({kTool, "--help"});
  CHECK(help.exit_code == 0);
  CHECK_THAT(help.out, Contains("exit codes:"));
  CHECK(dlq(config, {"redrive"}).exit_code == 2);
  CHECK(dlq(config, {"redrive", "t", "--since", "yesterday"}).exit_code == 2);
  CHECK_THAT(dlq(config, {"redrive", "t", "--since", "yesterday"}).err, Contains("--since: 'yesterday' is not a time"));
  CHECK(dlq(config, {"list", "t", "--payloads"}).exit_code == 2);
  CHECK(run_process({kTool, "list", "t", "--config", "/nonexistent/pyfly.yaml"}).exit_code == 2);

  const auto missing = dlq(config, {"list", unique_name("no-such-topic")});
  CHECK(missing.exit_code == 1);
  CHECK_THAT(missing.err, Contains("does not exist"));

  const TempFile nowhere("pyfly:\n  messaging:\n    kafka:\n      bootstrap-servers: \"127.0.0.1:1\"\n"
                         "      connect-timeout: 1s\n");
  const auto unreachable = run_process({kTool, "list", "t", "--config", nowhere.path()});
  CHECK(unreachable.exit_code == 3);
  CHECK_THAT(unreachable.err, Contains("cannot reach Kafka at 127.0.0.1:1"));
}

TEST_CASE("cppfly-dlq: --exception, --since and --until select records, and a dry run sends and commits nothing",
          "[kafka][real][dlq-tool]") {
  const auto servers = bootstrap_servers();
  const auto target = unique_name("filtered");
  const auto dead_topic = unique_name("filtered-dlq");
  create_topic(servers, target, 1);
  create_topic(servers, dead_topic, 1);
  const TempFile config(tool_yaml(servers));
  kafka::KafkaAdapter producer(kafka_config(servers).messaging().kafka);
  producer.start();
  const auto publish = [&](const std::string& value, const std::string& exception) {
    producer.publish(dead_topic, value, {.headers = {{"x-original-topic", target}, {"x-exception", exception}}});
  };
  publish("early-a", "A");
  publish("early-b", "B");
  // A boundary strictly after the early records' timestamps (ms) and at or before the late ones'.
  const auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  const auto boundary = now_ms() + 1;
  while (now_ms() < boundary) std::this_thread::sleep_for(1ms);  // the clock passes the boundary
  publish("late-a", "A");
  publish("late-b", "B");
  producer.stop();

  // The boundary as ISO-8601 UTC with milliseconds.
  const std::time_t seconds = static_cast<std::time_t>(boundary / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char iso[64];
  std::snprintf(iso, sizeof iso, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(boundary % 1000));

  const auto since = dlq(config, {"show", dead_topic, "--since", iso, "--payloads"});
  INFO(since.describe() << "\n" << since.out);
  CHECK(since.exit_code == 0);
  CHECK_THAT(since.out, Contains("value (6 bytes): late-a") && Contains("value (6 bytes): late-b"));
  CHECK_THAT(since.out, Contains("2 record(s) shown of 4 read"));

  const auto until = dlq(config, {"show", dead_topic, "--until", std::to_string(boundary), "--exception", "B",
                                  "--payloads"});
  CHECK(until.exit_code == 0);
  CHECK_THAT(until.out, Contains("value (7 bytes): early-b") && Contains("1 record(s) shown of 4 read"));

  const auto dry = dlq(config, {"redrive", dead_topic, "--exception", "A", "--dry-run"});
  INFO(dry.out);
  CHECK(dry.exit_code == 0);
  CHECK_THAT(dry.out, Contains("2 would be sent, 0 held by the loop guard (--max-redrives 3), 0 without "
                               "x-original-topic, 2 not selected; nothing committed"));
  const auto one = dlq(config, {"redrive", dead_topic, "--exception", "A", "--max", "1"});
  CHECK(one.exit_code == 0);
  CHECK_THAT(one.out, Contains("1 sent") && Contains("stopped at --max 1"));
  const auto rest = dlq(config, {"redrive", dead_topic, "--exception", "A"});
  CHECK(rest.exit_code == 0);
  CHECK_THAT(rest.out, Contains("1 sent, 0 held by the loop guard (--max-redrives 3), 0 without x-original-topic, "
                                "2 not selected"));
  const auto sent = read_all(servers, target, 2);
  REQUIRE(sent.size() == 2);
  CHECK(sent[0].value == "early-a");
  CHECK(sent[1].value == "late-a");
}
