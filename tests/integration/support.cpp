#include "support.hpp"

#include "../kafka/support.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <catch2/catch.hpp>
#include <librdkafka/rdkafka.h>

extern char** environ;

namespace cppfly::integration {
namespace {

using Clock = std::chrono::steady_clock;

int millis_left(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<std::int64_t>(left, 0, 30000));
}

/// A throwaway librdkafka client for metadata and Admin API requests.
class AdminClient {
 public:
  explicit AdminClient(const std::string& servers) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    std::array<char, 512> reason{};
    for (const auto& [name, value] : {std::pair<const char*, std::string>{"bootstrap.servers", servers},
                                      {"client.id", "cppfly-integration-admin"},
                                      {"log_level", "3"}}) {
      if (rd_kafka_conf_set(conf, name, value.c_str(), reason.data(), reason.size()) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        throw std::runtime_error(std::string("admin client: ") + reason.data());
      }
    }
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, reason.data(), reason.size());
    if (rk_ == nullptr) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(std::string("admin client: ") + reason.data());
    }
    queue_ = rd_kafka_queue_new(rk_);
  }
  ~AdminClient() {
    rd_kafka_queue_destroy(queue_);
    rd_kafka_destroy(rk_);
  }
  AdminClient(const AdminClient&) = delete;
  AdminClient& operator=(const AdminClient&) = delete;

  [[nodiscard]] rd_kafka_t* handle() const noexcept { return rk_; }
  [[nodiscard]] rd_kafka_queue_t* queue() const noexcept { return queue_; }

  /// The next result event of `type` on the admin queue (owned by the caller), or nullptr after `timeout`.
  [[nodiscard]] rd_kafka_event_t* await(rd_kafka_event_type_t type, std::chrono::milliseconds timeout) const {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      rd_kafka_event_t* event = rd_kafka_queue_poll(queue_, std::min(millis_left(deadline), 500));
      if (event == nullptr) continue;
      if (rd_kafka_event_type(event) == type) return event;
      rd_kafka_event_destroy(event);
    }
    return nullptr;
  }

 private:
  rd_kafka_t* rk_{nullptr};
  rd_kafka_queue_t* queue_{nullptr};
};

struct EventDeleter {
  void operator()(rd_kafka_event_t* event) const noexcept { rd_kafka_event_destroy(event); }
};
using Event = std::unique_ptr<rd_kafka_event_t, EventDeleter>;

std::string quote(const std::string& arg) {
  if (!arg.empty() && arg.find_first_of(" \t\n'\"\\$`|&;<>()*?!{}[]") == std::string::npos) return arg;
  std::string quoted = "'";
  for (char c : arg) {
    if (c == '\'') {
      quoted += "'\\''";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      quoted += "\\x";
      constexpr std::string_view hex = "0123456789abcdef";
      quoted += hex[static_cast<unsigned char>(c) >> 4U];
      quoted += hex[static_cast<unsigned char>(c) & 0xFU];
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

}  // namespace

std::string bootstrap_servers() {
  const char* servers = std::getenv("CPPFLY_KAFKA_BOOTSTRAP");
  if (servers == nullptr || *servers == '\0') {
    FAIL("CPPFLY_KAFKA_BOOTSTRAP is not set. These integration tests need a real Apache Kafka broker: start one "
         "with `scripts/kafka start` and run with CPPFLY_KAFKA_BOOTSTRAP=127.0.0.1:19092 (the address it printed). "
         "They fail rather than skip, so that a missing broker never looks like a pass.");
  }
  return servers;
}

std::string unique_name(const std::string& what) {
  static std::mutex mutex;
  static std::mt19937_64 engine{std::random_device{}()};
  const std::lock_guard lock(mutex);
  std::ostringstream name;
  name << "cppfly-integ-" << what << "-" << std::hex << engine();
  return name.str();
}

void create_topic(const std::string& servers, const std::string& topic, int partitions) {
  cppfly::kafka::test::RealCluster(servers).create_topic(topic, partitions);
}

config::Config kafka_config(const std::string& servers, const std::string& extra) {
  return config::Config::from_string("pyfly:\n"
                                     "  messaging:\n"
                                     "    provider: kafka\n"
                                     "    kafka:\n"
                                     "      bootstrap-servers: \"" +
                                         servers +
                                         "\"\n"
                                         "      client-id: cppfly-integration\n"
                                         "      commit-interval: 200ms\n"
                                         "      connect-timeout: 10s\n"
                                         "      publish-timeout: 10s\n"
                                         "      reconnect-backoff-max: 500ms\n" +
                                         extra,
                                     "integration.yaml");
}

std::map<std::string, std::vector<std::int32_t>> wait_for_stable_group(const std::string& servers,
                                                                       const std::string& group, std::size_t members,
                                                                       std::chrono::milliseconds timeout) {
  const AdminClient admin(servers);
  const auto deadline = Clock::now() + timeout;
  std::string last = "no answer";
  while (Clock::now() < deadline) {
    const char* groups[] = {group.c_str()};
    rd_kafka_DescribeConsumerGroups(admin.handle(), groups, 1, nullptr, admin.queue());
    const Event event(admin.await(RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT,
                                  std::chrono::milliseconds(std::max(millis_left(deadline), 1))));
    if (!event) break;
    std::map<std::string, std::vector<std::int32_t>> assignment;
    bool ready = false;
    if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      last = rd_kafka_event_error_string(event.get());
    } else {
      std::size_t count = 0;
      const auto** descriptions =
          rd_kafka_DescribeConsumerGroups_result_groups(rd_kafka_event_DescribeConsumerGroups_result(event.get()),
                                                        &count);
      for (std::size_t i = 0; i < count; ++i) {
        const auto* description = descriptions[i];
        if (const auto* error = rd_kafka_ConsumerGroupDescription_error(description); error != nullptr) {
          last = rd_kafka_error_string(error);
          continue;
        }
        const auto state = rd_kafka_ConsumerGroupDescription_state(description);
        const std::size_t member_count = rd_kafka_ConsumerGroupDescription_member_count(description);
        bool every_member_assigned = true;
        for (std::size_t m = 0; m < member_count; ++m) {
          const auto* member = rd_kafka_ConsumerGroupDescription_member(description, m);
          const auto* partitions = rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(member));
          auto& owned = assignment[rd_kafka_MemberDescription_consumer_id(member)];
          for (int p = 0; partitions != nullptr && p < partitions->cnt; ++p) {
            owned.push_back(partitions->elems[p].partition);
          }
          if (owned.empty()) every_member_assigned = false;
        }
        last = std::string("state ") + rd_kafka_consumer_group_state_name(state) + ", " +
               std::to_string(member_count) + " member(s)";
        ready = state == RD_KAFKA_CONSUMER_GROUP_STATE_STABLE && member_count == members && every_member_assigned;
      }
    }
    if (ready) return assignment;
    std::this_thread::sleep_for(200ms);  // polling the group's state, bounded by the deadline
  }
  throw std::runtime_error("group " + group + " did not become Stable with " + std::to_string(members) +
                           " assigned member(s) within " + std::to_string(timeout.count()) + " ms (last: " + last +
                           ")");
}

namespace {

/// The group's committed offset and metadata for one partition (-1, "": none), through the Admin API.
std::pair<std::int64_t, std::string> committed(const std::string& servers, const std::string& group,
                                               const std::string& topic, std::int32_t partition) {
  const AdminClient admin(servers);
  rd_kafka_topic_partition_list_t* partitions = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(partitions, topic.c_str(), partition);
  rd_kafka_ListConsumerGroupOffsets_t* request = rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), partitions);
  rd_kafka_topic_partition_list_destroy(partitions);
  rd_kafka_ListConsumerGroupOffsets(admin.handle(), &request, 1, nullptr, admin.queue());
  rd_kafka_ListConsumerGroupOffsets_destroy(request);
  const Event event(admin.await(RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT, kWait));
  if (!event) throw std::runtime_error("no ListConsumerGroupOffsets result for " + group);
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error("ListConsumerGroupOffsets " + group + ": " + rd_kafka_event_error_string(event.get()));
  }
  std::size_t count = 0;
  const auto** groups =
      rd_kafka_ListConsumerGroupOffsets_result_groups(rd_kafka_event_ListConsumerGroupOffsets_result(event.get()),
                                                      &count);
  for (std::size_t i = 0; i < count; ++i) {
    if (const auto* error = rd_kafka_group_result_error(groups[i]); error != nullptr) {
      throw std::runtime_error("ListConsumerGroupOffsets " + group + ": " + rd_kafka_error_string(error));
    }
    const auto* offsets = rd_kafka_group_result_partitions(groups[i]);
    for (int p = 0; offsets != nullptr && p < offsets->cnt; ++p) {
      const auto& entry = offsets->elems[p];
      if (topic == entry.topic && entry.partition == partition) {
        if (entry.offset < 0) return {-1, {}};
        return {entry.offset, entry.metadata != nullptr
                                  ? std::string(static_cast<const char*>(entry.metadata), entry.metadata_size)
                                  : std::string()};
      }
    }
  }
  return {-1, {}};
}

}  // namespace

std::int64_t committed_offset(const std::string& servers, const std::string& group, const std::string& topic,
                              std::int32_t partition) {
  return committed(servers, group, topic, partition).first;
}

std::string committed_metadata(const std::string& servers, const std::string& group, const std::string& topic,
                               std::int32_t partition) {
  return committed(servers, group, topic, partition).second;
}

void commit_offset(const std::string& servers, const std::string& group, const std::string& topic,
                   std::int32_t partition, std::int64_t offset, const std::string& metadata) {
  const AdminClient admin(servers);
  rd_kafka_topic_partition_list_t* partitions = rd_kafka_topic_partition_list_new(1);
  auto* entry = rd_kafka_topic_partition_list_add(partitions, topic.c_str(), partition);
  entry->offset = offset;
  if (!metadata.empty()) {
    entry->metadata = std::malloc(metadata.size());
    std::memcpy(entry->metadata, metadata.data(), metadata.size());
    entry->metadata_size = metadata.size();
  }
  rd_kafka_AlterConsumerGroupOffsets_t* request = rd_kafka_AlterConsumerGroupOffsets_new(group.c_str(), partitions);
  rd_kafka_topic_partition_list_destroy(partitions);
  rd_kafka_AlterConsumerGroupOffsets(admin.handle(), &request, 1, nullptr, admin.queue());
  rd_kafka_AlterConsumerGroupOffsets_destroy(request);
  const Event event(admin.await(RD_KAFKA_EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT, kWait));
  if (!event) throw std::runtime_error("no AlterConsumerGroupOffsets result for " + group);
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error("AlterConsumerGroupOffsets " + group + ": " + rd_kafka_event_error_string(event.get()));
  }
  std::size_t count = 0;
  const auto** groups =
      rd_kafka_AlterConsumerGroupOffsets_result_groups(rd_kafka_event_AlterConsumerGroupOffsets_result(event.get()),
                                                       &count);
  for (std::size_t i = 0; i < count; ++i) {
    if (const auto* error = rd_kafka_group_result_error(groups[i]); error != nullptr) {
      throw std::runtime_error("AlterConsumerGroupOffsets " + group + ": " + rd_kafka_error_string(error));
    }
    const auto* offsets = rd_kafka_group_result_partitions(groups[i]);
    for (int p = 0; offsets != nullptr && p < offsets->cnt; ++p) {
      if (offsets->elems[p].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw std::runtime_error("AlterConsumerGroupOffsets " + group + ": " + rd_kafka_err2str(offsets->elems[p].err));
      }
    }
  }
}

std::string ProcessResult::describe() const {
  std::ostringstream text;
  text << "`" << command << "` ";
  if (timed_out) {
    text << "timed out";
  } else {
    text << "exited with " << exit_code;
  }
  text << "; stderr: " << (err.empty() ? "(empty)" : err);
  return text.str();
}

ProcessResult run_process(const std::vector<std::string>& argv, const std::string& input,
                          std::chrono::seconds timeout) {
  static const bool sigpipe_ignored = [] {
    ::signal(SIGPIPE, SIG_IGN);  // a child that exits early must not kill the test through its stdin pipe
    return true;
  }();
  (void)sigpipe_ignored;

  ProcessResult result;
  std::vector<std::string> full{"timeout", "--kill-after=5", std::to_string(timeout.count())};
  full.insert(full.end(), argv.begin(), argv.end());
  for (const auto& arg : argv) {
    if (!result.command.empty()) result.command += ' ';
    result.command += quote(arg);
  }

  std::array<int, 2> in{-1, -1};
  std::array<int, 2> out{-1, -1};
  std::array<int, 2> err{-1, -1};
  auto close_fd = [](int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  };
  if (::pipe2(in.data(), O_CLOEXEC) != 0 || ::pipe2(out.data(), O_CLOEXEC) != 0 ||
      ::pipe2(err.data(), O_CLOEXEC) != 0) {
    const int saved = errno;
    for (auto* fds : {&in, &out, &err}) {
      close_fd((*fds)[0]);
      close_fd((*fds)[1]);
    }
    throw std::runtime_error(std::string("pipe: ") + std::strerror(saved));
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  std::vector<char*> args;
  for (auto& arg : full) args.push_back(arg.data());
  args.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = ::posix_spawnp(&pid, "timeout", &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close_fd(in[0]);
  close_fd(out[1]);
  close_fd(err[1]);
  if (spawned != 0) {
    close_fd(in[1]);
    close_fd(out[0]);
    close_fd(err[0]);
    throw std::runtime_error("cannot start `" + result.command + "`: " + std::strerror(spawned));
  }

  // Feed stdin and drain stdout/stderr together (no pipe can fill up and block the child).
  std::size_t written = 0;
  if (input.empty()) close_fd(in[1]);
  const auto deadline = Clock::now() + timeout + 15s;
  std::array<char, 65536> buffer{};
  while (out[0] >= 0 || err[0] >= 0) {
    if (Clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      result.timed_out = true;
      break;
    }
    std::vector<pollfd> fds;
    if (in[1] >= 0) fds.push_back({in[1], POLLOUT, 0});
    if (out[0] >= 0) fds.push_back({out[0], POLLIN, 0});
    if (err[0] >= 0) fds.push_back({err[0], POLLIN, 0});
    if (::poll(fds.data(), fds.size(), std::min(millis_left(deadline), 1000)) < 0 && errno != EINTR) break;
    for (const auto& fd : fds) {
      if (fd.revents == 0) continue;
      if (fd.fd == in[1]) {
        const auto n = ::write(in[1], input.data() + written, input.size() - written);
        if (n > 0) written += static_cast<std::size_t>(n);
        if (n < 0 || written == input.size()) close_fd(in[1]);
        continue;
      }
      const auto n = ::read(fd.fd, buffer.data(), buffer.size());
      if (n > 0) {
        (fd.fd == out[0] ? result.out : result.err).append(buffer.data(), static_cast<std::size_t>(n));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        close_fd(fd.fd == out[0] ? out[0] : err[0]);
      }
    }
  }
  close_fd(in[1]);
  close_fd(out[0]);
  close_fd(err[0]);

  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  // coreutils timeout: 124 when the time ran out, 137 when it had to SIGKILL.
  if (result.exit_code == 124 || result.exit_code == 137) result.timed_out = true;
  return result;
}

TempFile::TempFile(const std::string& content) {
  const auto directory = std::filesystem::temp_directory_path();
  for (;;) {
    path_ = (directory / unique_name("file")).string();
    const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      throw std::runtime_error("cannot create " + path_ + ": " + std::strerror(errno));
    }
    std::size_t done = 0;
    while (done < content.size()) {
      const auto n = ::write(fd, content.data() + done, content.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        ::close(fd);
        throw std::runtime_error("cannot write " + path_ + ": " + std::strerror(errno));
      }
      done += static_cast<std::size_t>(n);
    }
    ::close(fd);
    return;
  }
}

TempFile::~TempFile() {
  std::error_code ignored;
  std::filesystem::remove(path_, ignored);
}

}  // namespace cppfly::integration
