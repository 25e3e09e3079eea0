// Application::run in a real process, stopped by real signals: SIGINT and SIGTERM each stop it
// cleanly with exit code 0, and a second signal while the before-stop hooks run neither cuts the
// stop short nor changes the exit code. The service is signal_service.cpp.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kWait = 30s;

const char* signal_name(int signal) { return signal == SIGINT ? "SIGINT" : "SIGTERM"; }

/// A child process with a pipe on its stdin and one pipe for its stdout and stderr together.
class Child {
 public:
  explicit Child(std::vector<std::string> argv) {
    int in[2];
    int out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, out[1], 2);
    std::vector<char*> args;
    for (auto& arg : argv) args.push_back(arg.data());
    args.push_back(nullptr);
    std::vector<char*> env;  // the test's environment without PYFLY_* overrides
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "PYFLY_", 6) != 0) env.push_back(*e);
    }
    env.push_back(nullptr);
    const int spawned = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), env.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    output_fd_ = out[0];
    if (spawned != 0) {
      pid_ = -1;
      throw std::runtime_error(std::string("posix_spawn: ") + std::strerror(spawned));
    }
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd_ < 0) throw std::runtime_error(std::string("pidfd_open: ") + std::strerror(errno));
  }
  ~Child() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    for (int fd : {stdin_, output_fd_, pidfd_}) {
      if (fd >= 0) ::close(fd);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  /// True once `text` appeared in the output (within `timeout`).
  bool wait_for_output(const std::string& text, std::chrono::milliseconds timeout = kWait) {
    const auto deadline = Clock::now() + timeout;
    while (output_.find(text) == std::string::npos) {
      if (!read_some(deadline)) return false;
    }
    return true;
  }
  void send(int signal) const { REQUIRE(::kill(pid_, signal) == 0); }
  void write_line(const std::string& line) const {
    const std::string text = line + "\n";
    REQUIRE(::write(stdin_, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  }
  /// The wait status once the process has exited (within `timeout`), else nullopt.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout = kWait) {
    const auto deadline = Clock::now() + timeout;
    while (read_some(deadline)) {
    }  // until end of output or the deadline
    pollfd exited{pidfd_, POLLIN, 0};
    if (::poll(&exited, 1, millis_left(deadline)) != 1) return std::nullopt;
    int status = 0;
    if (::waitpid(pid_, &status, 0) != pid_) return std::nullopt;
    status_ = status;
    return status_;
  }
  [[nodiscard]] const std::string& output() const { return output_; }

 private:
  static int millis_left(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
  }
  /// Reads what is there (waiting until the deadline); false at end of output or the deadline.
  bool read_some(Clock::time_point deadline) {
    if (output_fd_ < 0) return false;
    pollfd readable{output_fd_, POLLIN, 0};
    const int ready = ::poll(&readable, 1, millis_left(deadline));
    if (ready < 0 && errno == EINTR) return true;
    if (ready <= 0) return false;
    char buffer[4096];
    const auto n = ::read(output_fd_, buffer, sizeof buffer);
    if (n <= 0) {
      ::close(output_fd_);
      output_fd_ = -1;
      return false;
    }
    output_.append(buffer, static_cast<std::size_t>(n));
    return true;
  }

  pid_t pid_{-1};
  int stdin_{-1};
  int output_fd_{-1};
  int pidfd_{-1};
  std::string output_;
  std::optional<int> status_;
};

Child start_service() { return Child({CPPFLY_SIGNAL_SERVICE, "--config", CPPFLY_SIGNAL_SERVICE_CONFIG}); }

void require_started(Child& child) {
  REQUIRE(child.wait_for_output("service: started"));
  REQUIRE(child.wait_for_output("service: received hello"));
}

void require_clean_exit(Child& child) {
  const auto status = child.wait_exit();
  INFO(child.output());
  REQUIRE(status.has_value());
  REQUIRE(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK(child.output().find("service: before-stop released") != std::string::npos);
  CHECK(child.output().find("stopped") != std::string::npos);
}

}  // namespace

TEST_CASE("Application::run stops cleanly on SIGINT and on SIGTERM: exit code 0", "[application][signals]") {
  const int signal = GENERATE(SIGINT, SIGTERM);
  INFO(signal_name(signal));
  Child child = start_service();
  require_started(child);
  child.send(signal);
  REQUIRE(child.wait_for_output(std::string("received ") + signal_name(signal) + ", stopping"));
  REQUIRE(child.wait_for_output("service: before-stop waiting"));
  child.write_line("go");
  require_clean_exit(child);
}

TEST_CASE("a second signal while stopping does not cut the stop short: exit code 0", "[application][signals]") {
  const auto [first, second] = GENERATE(std::pair{SIGTERM, SIGTERM}, std::pair{SIGINT, SIGTERM},
                                        std::pair{SIGTERM, SIGINT}, std::pair{SIGINT, SIGINT});
  INFO(signal_name(first) << " then " << signal_name(second));
  Child child = start_service();
  require_started(child);
  child.send(first);
  REQUIRE(child.wait_for_output("service: before-stop waiting"));
  // The before-stop hook holds the stop until the second signal has been taken.
  child.send(second);
  REQUIRE(child.wait_for_output(std::string("received ") + signal_name(second) + " again while stopping"));
  child.write_line("go");
  require_clean_exit(child);
}
