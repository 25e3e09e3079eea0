// Config: the merged pyfly.yaml / pyfly.toml files, profile overlays and environment, read as PyFly reads them.
#pragma once

#include <map>
#include <utility>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <cppfly/config/properties.hpp>

namespace cppfly::config {

/// Bad configuration. what() is one line: "<file>:<line>:<col>: <key>: <problem>; allowed: ...".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  /// An error about one key (dotted); Application prefixes it with where the key was set.
  ConfigError(const std::string& message, std::string key) : std::runtime_error(message), key_(std::move(key)) {}
  /// The dotted key the error is about, when known.
  [[nodiscard]] const std::string& key() const noexcept { return key_; }

 private:
  std::string key_;
};

/// Where a value came from, for error messages.
struct Origin {
  std::string source;  ///< file path, or "environment variable NAME"
  int line{0};         ///< 1-based; 0 when unknown
  int column{0};       ///< 1-based; 0 when unknown
  [[nodiscard]] std::string describe() const;  ///< "file:line:col" or "environment variable X"
};

/// One scalar setting, by its dotted key ("pyfly.messaging.provider").
struct ConfigValue {
  std::string value;
  Origin origin;
};

/// How to find the files and which environment to read.
/// Not given: PyFly's search locations in the folder of `path` (config/pyfly.yaml, config/pyfly.toml,
/// pyfly.yaml, pyfly.toml, later wins; then pyfly-<profile>.yaml/.toml from both folders); none
/// found means "all defaults". Given (--config): a file named pyfly.yaml or pyfly.toml is searched
/// beside the same way; any other file is read alone, with <name>-<profile><ext> beside it.
struct LoadOptions {
  std::string path{"pyfly.yaml"};        ///< where to look (see above)
  bool path_given{false};                ///< true: `path` was named explicitly and must exist
  std::optional<std::string> profile{};  ///< --profile; else PYFLY_PROFILES_ACTIVE; else pyfly.profiles.active
  bool read_environment{true};           ///< apply PYFLY_* overrides
  /// Environment to read (tests); empty and read_environment: the process environment.
  std::optional<std::map<std::string, std::string>> environment{};
};

/// The merged settings. Scalars are kept flat under canonical dotted keys (kebab case, lower case);
/// lists join with ","; ${...} placeholders are resolved.
class Config {
 public:
  /// Loads base file, the profile file(s) over it, then environment overrides; validates.
  /// Throws ConfigError (one clear line) on any problem.
  static Config load(const LoadOptions& options = {});
  /// Parses text as if it were the file `name` (TOML when `name` ends in .toml, else YAML), with
  /// profile overlays from name's folder; for tests and embedded configs. Validates.
  static Config from_string(std::string_view yaml, std::string_view name = "<string>",
                            const LoadOptions& options = {.read_environment = false});

  /// The value of a dotted key (relaxed: bootstrap_servers finds bootstrap-servers).
  [[nodiscard]] std::optional<std::string> get(std::string_view key) const;
  /// Every value as "key = value (origin)", secrets shown as ***: for logs and diagnostics.
  [[nodiscard]] std::vector<std::string> describe() const;
  [[nodiscard]] const std::map<std::string, ConfigValue, std::less<>>& values() const noexcept { return values_; }
  /// The profiles that were applied, in order.
  [[nodiscard]] const std::vector<std::string>& active_profiles() const noexcept { return profiles_; }
  /// The files that were read, in order.
  [[nodiscard]] const std::vector<std::string>& sources() const noexcept { return sources_; }
  /// Typed view of pyfly.messaging (validated at load).
  [[nodiscard]] const MessagingProperties& messaging() const noexcept { return messaging_; }
  /// Typed view of pyfly.management (validated at load).
  [[nodiscard]] const ManagementProperties& management() const noexcept { return management_; }
  /// Warnings found while loading (keys PyFly knows that cppfly ignores, ...).
  [[nodiscard]] const std::vector<std::string>& warnings() const noexcept { return warnings_; }

 private:
  std::map<std::string, ConfigValue, std::less<>> values_;
  std::vector<std::string> profiles_;
  std::vector<std::string> sources_;
  std::vector<std::string> warnings_;
  MessagingProperties messaging_;
  ManagementProperties management_;
  friend class ConfigBuilder;
};

}  // namespace cppfly::config
