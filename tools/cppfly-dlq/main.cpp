// cppfly-dlq: inspect and redrive a dead-letter topic, on the service's own pyfly.yaml.
//
//   cppfly-dlq list <dlq-topic>       counts by original topic and exception, oldest and newest
//   cppfly-dlq show <dlq-topic>       the records with their headers (--payloads: values too)
//   cppfly-dlq redrive <dlq-topic>    republishes records to their x-original-topic
//
// Built on the public API only: config::Config::load, kafka::PullConsumer, kafka::KafkaAdapter.
// See docs/operations.md and `cppfly-dlq --help`.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <cppfly/config/config.hpp>
#include <cppfly/kafka/kafka_adapter.hpp>
#include <cppfly/kafka/pull_consumer.hpp>
#include <cppfly/messaging/broker_port.hpp>
#include <cppfly/messaging/dead_letter.hpp>

namespace {

using namespace std::chrono_literals;
using cppfly::messaging::Message;
namespace dlh = cppfly::messaging::dead_letter_headers;

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;
constexpr int kExitHeld = 4;

/// The header a redrive adds (and increments): how many times the record was redriven.
constexpr std::string_view kRedriveCount = "x-redrive-count";

constexpr const char* kUsage = R"(cppfly-dlq: inspect and redrive the records of a dead-letter topic

usage:
  cppfly-dlq list <dlq-topic> [options]
      Counts the records by original topic (x-original-topic) and exception type (x-exception),
      with the oldest and newest dead-letter timestamps.
  cppfly-dlq show <dlq-topic> [--payloads] [--max N] [filters] [options]
      Prints each record: partition, offset, timestamp, key and headers; the value only with
      --payloads (payloads may hold personal data).
  cppfly-dlq redrive <dlq-topic> [--exception TYPE] [--since TIME] [--until TIME] [--max N]
                     [--max-redrives K] [--dry-run] [--group NAME] [options]
      Republishes each selected record to its x-original-topic with its key, value and original
      headers (the x- dead-letter diagnostics removed) and x-redrive-count set to one more than
      the record's own (0 when it has none). A record already redriven K times (--max-redrives,
      default 3) is not sent again but reported: the loop guard. Progress is committed in the
      consumer group cppfly-dlq-redrive-<dlq-topic> (or --group) after each delivered record, so
      an interrupted redrive resumes where it stopped; records not selected by the filters are
      passed over too. --dry-run prints what would be sent and commits nothing.

list and show read each partition from its beginning up to its end offset at start; they commit
nothing. redrive reads up to the end offsets at start as well: records dead-lettered again while
it runs wait for the next redrive.

filters (show, redrive):
  --exception TYPE   only records whose x-exception is TYPE (exactly)
  --since TIME       only records dead-lettered at or after TIME
  --until TIME       only records dead-lettered before TIME
  --max N            at most N records shown or sent
  TIME is ISO-8601 in UTC (2026-11-30, 2026-11-30T13:05:00Z, 2026-11-30T13:05:00.250Z) or
  milliseconds since the epoch (1796043900000); the dead-letter record's own timestamp counts.

options:
  --config PATH      the config file (default: ./pyfly.yaml and PyFly's other locations)
  --profile NAME     the active profile(s), as for a service
  --verbose          the client's log (connections, retries) on stderr
  -h, --help         this text

exit codes:
  0  done
  1  an error while running (a publish or commit failed, the topic does not exist, interrupted)
  2  bad usage or bad configuration
  3  Kafka not reachable (within pyfly.messaging.kafka.connect-timeout)
  4  redrive: some records were not sent: held by the loop guard, or without x-original-topic
)";

/// Bad command line (exit 2).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::atomic<bool> g_interrupted{false};
/// Set once the group is joined and the partitions' ranges are known: a BrokerError after that is
/// an error while running (exit 1), not an unreachable cluster (exit 3).
bool g_connected{false};

extern "C" void on_signal(int /*signal*/) { g_interrupted.store(true); }

// ---- Time ---------------------------------------------------------------------------------------

std::string iso_time(std::int64_t ms) {
  if (ms < 0) return "-";
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[96];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buffer;
}

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// ISO-8601 UTC (date, date and time, optional fraction, optional Z or +00:00) or epoch ms.
std::int64_t parse_time(const std::string& flag, std::string_view text) {
  const auto bad = [&] {
    return UsageError(flag + ": '" + std::string(text) +
                      "' is not a time; expected ISO-8601 UTC (2026-11-30T13:05:00Z) or milliseconds since the epoch");
  };
  if (all_digits(text)) {
    std::int64_t ms = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), ms);
    if (error != std::errc{} || end != text.data() + text.size()) throw bad();
    return ms;
  }
  std::string_view rest = text;
  if (rest.ends_with('Z') || rest.ends_with('z')) {
    rest.remove_suffix(1);
  } else if (rest.ends_with("+00:00")) {
    rest.remove_suffix(6);
  }
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, millis = 0;
  const auto number = [&](std::size_t at, std::size_t digits, int& out) {
    if (rest.size() < at + digits || !all_digits(rest.substr(at, digits))) throw bad();
    std::from_chars(rest.data() + at, rest.data() + at + digits, out);
  };
  number(0, 4, year);
  if (rest.size() < 10 || rest[4] != '-' || rest[7] != '-') throw bad();
  number(5, 2, month);
  number(8, 2, day);
  if (rest.size() > 10) {
    if ((rest[10] != 'T' && rest[10] != 't' && rest[10] != ' ') || rest.size() < 16 || rest[13] != ':') throw bad();
    number(11, 2, hour);
    number(14, 2, minute);
    std::size_t at = 16;
    if (rest.size() > at) {
      if (rest[at] != ':') throw bad();
      number(at + 1, 2, second);
      at += 3;
    }
    if (rest.size() > at) {
      if (rest[at] != '.' || rest.size() == at + 1 || !all_digits(rest.substr(at + 1))) throw bad();
      std::string fraction(rest.substr(at + 1));
      fraction.resize(3, '0');
      std::from_chars(fraction.data(), fraction.data() + 3, millis);
    }
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) throw bad();
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<std::int64_t>(timegm(&tm)) * 1000 + millis;
}

// ---- Command line -------------------------------------------------------------------------------

struct Options {
  std::string command;
  std::string topic;
  cppfly::config::LoadOptions load;
  bool payloads{false};
  std::optional<std::string> exception;
  std::optional<std::int64_t> since;
  std::optional<std::int64_t> until;
  std::optional<std::int64_t> max;
  int max_redrives{3};
  bool dry_run{false};
  std::optional<std::string> group;
  bool verbose{false};
};

std::int64_t parse_count(const std::string& flag, std::string_view text, std::int64_t min) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc{} || end != text.data() + text.size() || value < min) {
    throw UsageError(flag + ": '" + std::string(text) + "' is not a whole number of at least " + std::to_string(min));
  }
  return value;
}

Options parse_arguments(int argc, char** argv) {
  Options options;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    std::optional<std::string> inline_value;
    std::string flag(arg);
    if (arg.starts_with("--") && arg.find('=') != std::string_view::npos) {
      flag = std::string(arg.substr(0, arg.find('=')));
      inline_value = std::string(arg.substr(arg.find('=') + 1));
    }
    const auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) throw UsageError(flag + " needs a value");
      return argv[++i];
    };
    const auto no_value = [&] {
      if (inline_value) throw UsageError(flag + " takes no value");
    };
    if (flag == "--config") {
      options.load.path = value();
      options.load.path_given = true;
    } else if (flag == "--profile") {
      options.load.profile = value();
    } else if (flag == "--payloads") {
      no_value();
      options.payloads = true;
    } else if (flag == "--exception") {
      options.exception = value();
    } else if (flag == "--since") {
      options.since = parse_time(flag, value());
    } else if (flag == "--until") {
      options.until = parse_time(flag, value());
    } else if (flag == "--max") {
      options.max = parse_count(flag, value(), 1);
    } else if (flag == "--max-redrives") {
      options.max_redrives = static_cast<int>(std::min<std::int64_t>(parse_count(flag, value(), 1), 1'000'000));
    } else if (flag == "--dry-run") {
      no_value();
      options.dry_run = true;
    } else if (flag == "--group") {
      options.group = value();
      if (options.group->empty()) throw UsageError("--group needs a non-empty name");
    } else if (flag == "--verbose") {
      no_value();
      options.verbose = true;
    } else if (arg.starts_with("-") && arg.size() > 1) {
      throw UsageError("unknown option '" + std::string(arg) + "'");
    } else {
      positional.emplace_back(arg);
    }
  }
  if (positional.empty()) throw UsageError("a command is needed: list, show or redrive");
  options.command = positional[0];
  if (options.command != "list" && options.command != "show" && options.command != "redrive") {
    throw UsageError("unknown command '" + options.command + "' (list, show, redrive)");
  }
  if (positional.size() != 2) throw UsageError(options.command + " takes one dead-letter topic");
  options.topic = positional[1];
  const bool filters = options.exception || options.since || options.until || options.max;
  if (options.command == "list" && (filters || options.payloads)) {
    throw UsageError("list takes no filters (use show or redrive --dry-run)");
  }
  if (options.command != "show" && options.payloads) throw UsageError("--payloads is for show");
  if (options.command != "redrive" && (options.dry_run || options.group)) {
    throw UsageError("--dry-run and --group are for redrive");
  }
  if (options.since && options.until && *options.since >= *options.until) {
    throw UsageError("--since must be before --until");
  }
  return options;
}

// ---- Reading a topic up to its end offsets at start ---------------------------------------------

std::string text_or_dash(const Message& m, std::string_view header) {
  const auto value = m.headers.get(header);
  return value ? std::string(*value) : std::string("-");
}

/// Escapes control characters and bytes that are not ASCII for a one-line terminal view.
std::string printable(std::string_view text, std::size_t max = 4096) {
  std::string out;
  for (const char c : text) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\\') {
      out += "\\\\";
    } else if (byte >= 0x20 && byte < 0x7f) {
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", byte);
      out += hex;
    }
  }
  return out;
}

/// Progress on stderr, only when it is a terminal.
class Progress {
 public:
  Progress(std::string label, std::int64_t total) : label_(std::move(label)), total_(total), tty_(isatty(2) != 0) {}
  void update(std::int64_t done, const std::string& detail) {
    if (!tty_) return;
    const auto now = std::chrono::steady_clock::now();
    if (done < total_ && now - last_ < 100ms) return;
    last_ = now;
    constexpr int kWidth = 30;
    const int filled = total_ > 0 ? static_cast<int>(kWidth * std::min(done, total_) / total_) : kWidth;
    std::fprintf(stderr, "\r%s [%s%s] %lld/%lld %s\x1b[K", label_.c_str(), std::string(filled, '#').c_str(),
                 std::string(kWidth - filled, '.').c_str(), static_cast<long long>(done),
                 static_cast<long long>(total_), detail.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }
  void finish() {
    if (drawn_) std::fprintf(stderr, "\n");
    drawn_ = false;
  }

 private:
  std::string label_;
  std::int64_t total_;
  bool tty_;
  bool drawn_{false};
  std::chrono::steady_clock::time_point last_{};
};

struct Range {
  std::int64_t start{0};  ///< first offset to read
  std::int64_t end{0};    ///< the high watermark at start: read up to it, not beyond
};

/// One pass over a topic's partitions, each from its start (the beginning, or the group's
/// committed offset) up to its end offset when the pass began.
class Reader {
 public:
  /// Joins the group and waits (at most `join_bound`) for the assignment; records polled meanwhile
  /// are kept for run(). Throws std::runtime_error when the topic does not exist, the assignment
  /// does not come, or another member holds some of the partitions.
  Reader(cppfly::kafka::PullConsumer& consumer, std::string topic, bool from_committed,
         std::chrono::milliseconds join_bound, std::chrono::milliseconds idle_bound)
      : consumer_(consumer), topic_(std::move(topic)), idle_(idle_bound) {
    const int partitions = consumer_.partition_count(topic_);
    if (partitions < 0) throw std::runtime_error("topic '" + topic_ + "' does not exist");
    const auto deadline = std::chrono::steady_clock::now() + join_bound;
    while (partitions > 0 && consumer_.assignment().empty()) {
      if (g_interrupted.load()) throw std::runtime_error("interrupted while joining the group");
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("no partition of " + topic_ + " was assigned within " +
                                 std::to_string(join_bound.count() / 1000) + " s");
      }
      for (auto& record : consumer_.poll(200ms, 1)) early_.push_back(std::move(record));
    }
    if (static_cast<int>(consumer_.assignment().size()) != partitions) {
      throw std::runtime_error("the group holds " + std::to_string(consumer_.assignment().size()) + " of the " +
                               std::to_string(partitions) + " partitions of " + topic_ +
                               ": another member is using it (run one redrive of a topic at a time)");
    }
    for (int p = 0; p < partitions; ++p) {
      const auto [low, high] = consumer_.watermarks(topic_, p);
      const std::int64_t start = from_committed ? std::max(consumer_.committed(topic_, p), low) : low;
      ranges_[p] = Range{start, high};
      if (start < high) pending_.insert(p);
    }
    g_connected = true;
  }

  [[nodiscard]] std::size_t partitions() const { return ranges_.size(); }
  [[nodiscard]] std::int64_t total() const {
    std::int64_t total = 0;
    for (const auto& [p, range] : ranges_) total += std::max<std::int64_t>(0, range.end - range.start);
    return total;
  }

  /// Hands each record to `each` (false: stop) until every partition reached its end. Bounded:
  /// when no record comes for the idle bound while a partition is not done, throws. Returns
  /// false when SIGINT or SIGTERM stopped it.
  template <typename Each>
  bool run(Each&& each) {
    auto last_record = std::chrono::steady_clock::now();
    std::vector<Message> records = std::move(early_);
    for (;;) {
      for (const auto& record : records) {
        if (!pending_.contains(record.partition)) continue;
        const Range& range = ranges_[record.partition];
        if (record.offset < range.start) continue;
        if (record.offset >= range.end) {
          done(record.partition);
          continue;
        }
        if (!each(record)) return true;
        if (record.offset + 1 >= range.end) done(record.partition);
      }
      if (pending_.empty()) return true;
      if (g_interrupted.load()) return false;
      records = consumer_.poll(200ms, 1);
      if (!records.empty()) {
        last_record = std::chrono::steady_clock::now();
      } else if (std::chrono::steady_clock::now() - last_record > idle_) {
        std::string which;
        for (const int p : pending_) which += (which.empty() ? "" : ", ") + std::to_string(p);
        throw std::runtime_error("no record came for " + std::to_string(idle_.count() / 1000) +
                                 " s while partition(s) " + which + " of " + topic_ +
                                 " were not read to their end offset");
      }
    }
  }

 private:
  void done(int partition) {
    pending_.erase(partition);
    consumer_.pause(topic_, partition);  // nothing beyond the end is fetched (or stored)
  }

  cppfly::kafka::PullConsumer& consumer_;
  std::string topic_;
  std::chrono::milliseconds idle_;
  std::map<int, Range> ranges_;
  std::set<int> pending_;
  std::vector<Message> early_;
};

std::string reader_group() {
  std::random_device random;
  return "cppfly-dlq-read-" + std::to_string(::getpid()) + "-" + std::to_string(random());
}

std::chrono::milliseconds idle_bound(const cppfly::config::KafkaProperties& kafka) {
  return std::max<std::chrono::milliseconds>(kafka.connect_timeout, 15s);
}

/// Joining waits for a member that was killed (an interrupted redrive) to time out of the group.
std::chrono::milliseconds join_bound(const cppfly::config::KafkaProperties& kafka) {
  return std::max<std::chrono::milliseconds>(kafka.connect_timeout, 60s);
}

bool selected(const Options& options, const Message& m) {
  if (options.exception && text_or_dash(m, dlh::exception) != *options.exception) return false;
  if (options.since && m.timestamp_ms < *options.since) return false;
  if (options.until && m.timestamp_ms >= *options.until) return false;
  return true;
}

// ---- list ---------------------------------------------------------------------------------------

int run_list(const Options& options, const cppfly::config::KafkaProperties& kafka) {
  cppfly::kafka::PullConsumer consumer(kafka, reader_group(), {options.topic});
  Reader reader(consumer, options.topic, false, join_bound(kafka), idle_bound(kafka));
  struct Count {
    std::int64_t records{0};
    std::int64_t oldest{-1};
    std::int64_t newest{-1};
  };
  std::map<std::pair<std::string, std::string>, Count> counts;
  Count all;
  const auto add = [](Count& c, std::int64_t ts) {
    ++c.records;
    if (ts >= 0 && (c.oldest < 0 || ts < c.oldest)) c.oldest = ts;
    if (ts >= 0 && ts > c.newest) c.newest = ts;
  };
  Progress progress("list " + options.topic, reader.total());
  const bool complete = reader.run([&](const Message& m) {
    add(counts[{text_or_dash(m, dlh::original_topic), text_or_dash(m, dlh::exception)}], m.timestamp_ms);
    add(all, m.timestamp_ms);
    progress.update(all.records, "");
    return true;
  });
  progress.finish();
  std::printf("%s: %lld dead letter(s) in %zu partition(s)\n", options.topic.c_str(),
              static_cast<long long>(all.records), reader.partitions());
  if (all.records == 0) return complete ? kExitOk : kExitError;
  std::printf("oldest %s, newest %s\n\n", iso_time(all.oldest).c_str(), iso_time(all.newest).c_str());
  std::size_t topic_width = std::string_view("original topic").size();
  std::size_t exception_width = std::string_view("exception").size();
  for (const auto& [key, count] : counts) {
    topic_width = std::max(topic_width, key.first.size());
    exception_width = std::max(exception_width, key.second.size());
  }
  std::printf("%-*s  %-*s  %8s  %-24s  %s\n", static_cast<int>(topic_width), "original topic",
              static_cast<int>(exception_width), "exception", "records", "oldest", "newest");
  for (const auto& [key, count] : counts) {
    std::printf("%-*s  %-*s  %8lld  %-24s  %s\n", static_cast<int>(topic_width), printable(key.first).c_str(),
                static_cast<int>(exception_width), printable(key.second).c_str(),
                static_cast<long long>(count.records), iso_time(count.oldest).c_str(), iso_time(count.newest).c_str());
  }
  if (!complete) {
    std::fprintf(stderr, "cppfly-dlq: interrupted: the counts above are partial\n");
    return kExitError;
  }
  return kExitOk;
}

// ---- show ---------------------------------------------------------------------------------------

int run_show(const Options& options, const cppfly::config::KafkaProperties& kafka) {
  cppfly::kafka::PullConsumer consumer(kafka, reader_group(), {options.topic});
  Reader reader(consumer, options.topic, false, join_bound(kafka), idle_bound(kafka));
  std::int64_t shown = 0;
  std::int64_t read = 0;
  const bool complete = reader.run([&](const Message& m) {
    ++read;
    if (!selected(options, m)) return true;
    ++shown;
    std::printf("%s [%d] @ %lld  %s  key=%s\n", m.topic.c_str(), m.partition, static_cast<long long>(m.offset),
                iso_time(m.timestamp_ms).c_str(), m.key ? ("\"" + printable(*m.key) + "\"").c_str() : "(none)");
    for (const auto& [name, value] : m.headers) {
      std::printf("  %s: %s\n", printable(name).c_str(), printable(value).c_str());
    }
    if (options.payloads) {
      std::printf("  value (%zu bytes): %s\n", m.value.size(), printable(m.value).c_str());
    } else {
      std::printf("  value: %zu bytes (--payloads shows it)\n", m.value.size());
    }
    std::printf("\n");
    return !options.max || shown < *options.max;
  });
  std::printf("%lld record(s) shown of %lld read\n", static_cast<long long>(shown), static_cast<long long>(read));
  if (!complete) {
    std::fprintf(stderr, "cppfly-dlq: interrupted\n");
    return kExitError;
  }
  return kExitOk;
}

// ---- redrive ------------------------------------------------------------------------------------

/// The record's x-redrive-count (0 when absent or not a number).
int redrive_count(const Message& m) {
  const auto value = m.headers.get(kRedriveCount);
  if (!value) return 0;
  int count = 0;
  const auto [end, error] = std::from_chars(value->data(), value->data() + value->size(), count);
  return error == std::errc{} && end == value->data() + value->size() && count >= 0 ? count : 0;
}

/// What is sent: the original headers without the dead-letter diagnostics, x-redrive-count + 1.
cppfly::messaging::PublishOptions redrive_options(const Message& m, int count) {
  static constexpr std::string_view kDiagnostics[] = {dlh::original_topic,     dlh::exception,
                                                      dlh::exception_message,  dlh::original_partition,
                                                      dlh::original_offset,    dlh::original_timestamp,
                                                      dlh::original_group,     dlh::retry_count,
                                                      kRedriveCount};
  cppfly::messaging::PublishOptions out{.key = m.key, .headers = {}, .partition = std::nullopt};
  for (const auto& [name, value] : m.headers) {
    if (std::find(std::begin(kDiagnostics), std::end(kDiagnostics), name) == std::end(kDiagnostics)) {
      out.headers.add(name, value);
    }
  }
  out.headers.add(std::string(kRedriveCount), std::to_string(count));
  return out;
}

/// Test aid (the test suite's interrupted-redrive test): after this many records sent and
/// committed, the tool says so on stderr and waits to be killed.
std::optional<std::int64_t> test_pause_after() {
  const char* value = std::getenv("CPPFLY_DLQ_TEST_PAUSE_AFTER");
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::strtoll(value, nullptr, 10);
}

int run_redrive(const Options& options, const cppfly::config::KafkaProperties& kafka) {
  const std::string group = options.group.value_or("cppfly-dlq-redrive-" + options.topic);
  cppfly::kafka::PullConsumer consumer(kafka, group, {options.topic});
  // Where this group stopped last time (or the beginning), up to the end offsets now.
  Reader reader(consumer, options.topic, true, join_bound(kafka), idle_bound(kafka));
  std::unique_ptr<cppfly::kafka::KafkaAdapter> producer;
  if (!options.dry_run && reader.total() > 0) {
    producer = std::make_unique<cppfly::kafka::KafkaAdapter>(kafka);
    producer->start();
  }
  const auto pause_after = test_pause_after();
  std::int64_t sent = 0, held = 0, unroutable = 0, passed = 0, read = 0;
  std::map<int, std::int64_t> uncommitted;  ///< partition → next offset, passed-over records not yet committed
  const auto commit_passed = [&] {
    if (options.dry_run) return;
    for (const auto& [p, next] : uncommitted) consumer.commit(options.topic, p, next);
    uncommitted.clear();
  };
  const auto where = [](const Message& m) {
    return m.topic + " [" + std::to_string(m.partition) + "] @ " + std::to_string(m.offset);
  };
  Progress progress(std::string(options.dry_run ? "dry run " : "redrive ") + options.topic, reader.total());
  std::string failure;
  bool stopped_at_max = false;
  bool complete = false;
  try {
    complete = reader.run([&](const Message& m) {
      ++read;
      const auto detail = [&] {
        return "sent " + std::to_string(sent) + "  held " + std::to_string(held + unroutable) + "  passed " +
               std::to_string(passed);
      };
      if (!selected(options, m)) {
        ++passed;
        uncommitted[m.partition] = m.offset + 1;
        progress.update(read, detail());
        return true;
      }
      const auto destination = m.headers.get(dlh::original_topic);
      const int count = redrive_count(m);
      if (!destination || destination->empty()) {
        ++unroutable;
        progress.finish();
        std::printf("held: %s has no %s header; not sent\n", where(m).c_str(), std::string(dlh::original_topic).c_str());
        uncommitted[m.partition] = m.offset + 1;
        return true;
      }
      if (count >= options.max_redrives) {
        ++held;
        progress.finish();
        std::printf("held: %s (%s, %s) was redriven %d time(s) already (--max-redrives %d); not sent\n",
                    where(m).c_str(), printable(*destination).c_str(), text_or_dash(m, dlh::exception).c_str(), count,
                    options.max_redrives);
        uncommitted[m.partition] = m.offset + 1;
        return true;
      }
      if (options.dry_run) {
        ++sent;
        std::printf("would redrive: %s to %s (%s, x-redrive-count %d)\n", where(m).c_str(),
                    printable(*destination).c_str(), text_or_dash(m, dlh::exception).c_str(), count + 1);
      } else {
        // Sent, acknowledged (acks=all), then committed: a crash between the two re-sends this record once.
        producer->publish(*destination, m.value, redrive_options(m, count + 1));
        consumer.commit(options.topic, m.partition, m.offset + 1);
        uncommitted.erase(m.partition);
        ++sent;
        if (pause_after && sent == *pause_after) {
          progress.finish();
          std::fprintf(stderr, "cppfly-dlq: test pause after %lld sent (CPPFLY_DLQ_TEST_PAUSE_AFTER)\n",
                       static_cast<long long>(sent));
          std::fflush(stderr);
          for (;;) std::this_thread::sleep_for(1s);  // until killed
        }
      }
      progress.update(read, detail());
      if (options.max && sent >= *options.max) {
        stopped_at_max = true;
        return false;
      }
      return true;
    });
  } catch (const std::exception& e) {
    failure = e.what();
  }
  progress.finish();
  try {
    commit_passed();
  } catch (const std::exception& e) {
    if (failure.empty()) failure = e.what();
  }
  if (producer) producer->stop();
  std::printf("%s %s: %lld %s, %lld held by the loop guard (--max-redrives %d), %lld without %s, %lld not selected",
              options.dry_run ? "dry run of redrive" : "redrive", options.topic.c_str(), static_cast<long long>(sent),
              options.dry_run ? "would be sent" : "sent", static_cast<long long>(held), options.max_redrives,
              static_cast<long long>(unroutable), std::string(dlh::original_topic).c_str(),
              static_cast<long long>(passed));
  if (options.dry_run) {
    std::printf("; nothing committed\n");
  } else {
    std::printf("; progress in group %s\n", group.c_str());
  }
  if (stopped_at_max) std::printf("stopped at --max %lld; the next redrive goes on from here\n",
                                  static_cast<long long>(*options.max));
  if (!failure.empty()) {
    std::fprintf(stderr, "cppfly-dlq: redrive stopped: %s\n", failure.c_str());
    return kExitError;
  }
  if (!complete) {
    std::fprintf(stderr, "cppfly-dlq: interrupted; the next redrive goes on from here\n");
    return kExitError;
  }
  return held + unroutable > 0 ? kExitHeld : kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--help" || std::string_view(argv[i]) == "-h") {
      std::fputs(kUsage, stdout);
      return kExitOk;
    }
  }
  Options options;
  cppfly::config::KafkaProperties kafka;
  try {
    options = parse_arguments(argc, argv);
    const auto config = cppfly::config::Config::load(options.load);
    for (const auto& warning : config.warnings()) std::fprintf(stderr, "cppfly-dlq: warning: %s\n", warning.c_str());
    kafka = config.messaging().kafka;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "cppfly-dlq: %s (see cppfly-dlq --help)\n", e.what());
    return kExitUsage;
  } catch (const cppfly::config::ConfigError& e) {
    std::fprintf(stderr, "cppfly-dlq: %s\n", e.what());
    return kExitUsage;
  }
  if (kafka.bootstrap_servers == "embedded") {
    std::fprintf(stderr,
                 "cppfly-dlq: pyfly.messaging.kafka.bootstrap-servers is 'embedded': the embedded cluster lives in "
                 "its service's process; point the tool at a Kafka cluster\n");
    return kExitUsage;
  }
  // The tool is not the service: it neither creates the declared topics nor needs a reset policy.
  kafka.topics.clear();
  kafka.auto_offset_reset = "earliest";
  // A killed run's member leaves the group after this (Kafka's minimum), so the next run
  // resumes within seconds instead of the 45 s default.
  const auto user_set = [&kafka](const std::string& name) {
    return kafka.properties.contains(name) || kafka.consumer_properties.contains(name);
  };
  if (!user_set("session.timeout.ms")) {
    kafka.consumer_properties["session.timeout.ms"] = "6000";
    if (!user_set("heartbeat.interval.ms")) kafka.consumer_properties["heartbeat.interval.ms"] = "1000";
  }
  // The client's log (logger "cppfly", read from SPDLOG_LEVEL when it is made): errors only,
  // unless --verbose or SPDLOG_LEVEL says otherwise.
  if (!options.verbose) ::setenv("SPDLOG_LEVEL", "error", 0);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  try {
    if (options.command == "list") return run_list(options, kafka);
    if (options.command == "show") return run_show(options, kafka);
    return run_redrive(options, kafka);
  } catch (const cppfly::config::ConfigError& e) {
    std::fprintf(stderr, "cppfly-dlq: %s\n", e.what());
    return kExitUsage;
  } catch (const cppfly::messaging::BrokerError& e) {
    // Before the group was joined: the cluster did not answer (or refused the login).
    std::fprintf(stderr, "cppfly-dlq: %s\n", e.what());
    return g_connected ? kExitError : kExitUnreachable;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cppfly-dlq: %s\n", e.what());
    return kExitError;
  }
}
