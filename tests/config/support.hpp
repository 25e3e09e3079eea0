// Shared helpers of the config tests: temporary folders, load options, error messages.
#pragma once

#include <cppfly/config/config.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>

#include <unistd.h>

namespace cppfly::config::testing {

namespace fs = std::filesystem;

/// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device random;
    path_ = fs::temp_directory_path() /
            ("cppfly-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
             std::to_string(random()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  /// Writes `text` to `name` and returns the full path.
  std::string write(const std::string& name, const std::string& text) const {
    const fs::path file = path_ / name;
    fs::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary);
    out << text;
    return file.string();
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

using Env = std::map<std::string, std::string>;

inline LoadOptions options_for(const std::string& path, Env env = {}, std::optional<std::string> profile = std::nullopt) {
  LoadOptions options;
  options.path = path;
  options.path_given = true;
  options.profile = std::move(profile);
  options.read_environment = true;
  options.environment = std::move(env);
  return options;
}

/// The message of the ConfigError `action` throws ("" when it throws nothing).
inline std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "";
}

inline std::string error_of_yaml(const std::string& yaml, const std::string& name = "pyfly.yaml") {
  return error_of([&] { (void)Config::from_string(yaml, name); });
}

inline bool has_warning(const Config& config, const std::string& text) {
  for (const auto& warning : config.warnings()) {
    if (warning.find(text) != std::string::npos) return true;
  }
  return false;
}

}  // namespace cppfly::config::testing
