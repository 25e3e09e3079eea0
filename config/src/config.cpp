// Config loading: base file, profile files over it, environment overrides, then validation.
#include <cppfly/config/config.hpp>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

#include <fmt/format.h>

#include <cppfly/config/secrets.hpp>

#include "keys.hpp"
#include "placeholders.hpp"
#include "schema.hpp"
#include "text.hpp"
#include "toml_reader.hpp"
#include "yaml_reader.hpp"

extern char** environ;  // NOLINT: POSIX

namespace cppfly::config {

namespace fs = std::filesystem;
using detail::Entry;
using detail::NodeKind;

std::string_view to_string(Provider provider) noexcept {
  switch (provider) {
    case Provider::auto_detect: return "auto";
    case Provider::kafka: return "kafka";
    case Provider::memory: return "memory";
  }
  return "unknown";
}

std::string Origin::describe() const {
  if (line <= 0) return source;
  if (column <= 0) return fmt::format("{}:{}", source, line);
  return fmt::format("{}:{}:{}", source, line, column);
}

std::vector<std::string> Config::describe() const {
  std::vector<std::string> lines;
  lines.reserve(values_.size());
  for (const auto& [key, value] : values_) {
    lines.push_back(fmt::format("{} = {} ({})", key, detail::printable(shown_value(key, value.value)),
                                value.origin.describe()));
  }
  return lines;
}

std::optional<std::string> Config::get(std::string_view key) const {
  const auto it = values_.find(detail::canonical_key(key));
  if (it == values_.end()) return std::nullopt;
  return it->second.value;
}

/// Builds a Config step by step (the friend that fills its private members).
class ConfigBuilder {
 public:
  explicit ConfigBuilder(const LoadOptions& options) : options_(options) {
    if (!options.read_environment) return;
    if (options.environment) {
      environment_.insert(options.environment->begin(), options.environment->end());
      return;
    }
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
      const std::string_view text(*entry);
      const auto eq = text.find('=');
      if (eq == std::string_view::npos) continue;
      environment_.emplace(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
    }
  }

  /// The files PyFly's Config.from_sources reads, or the one file named with --config.
  Config load_files() {
    const fs::path given(options_.path);
    if (options_.path_given) {
      std::error_code ec;
      if (!fs::exists(given, ec)) throw ConfigError(fmt::format("config file not found: {}", options_.path));
      if (!is_pyfly_file(given)) {
        // Any other name: that file alone, with <name>-<profile><ext> beside it.
        apply_file(given);
        apply_profiles([&](const std::string& profile) {
          return std::vector<fs::path>{given.parent_path() /
                                       fmt::format("{}-{}{}", given.stem().string(), profile, given.extension().string())};
        });
        return finish();
      }
    }
    // PyFly's search locations, in merge order (later wins): config/pyfly.{yaml,toml}, then
    // pyfly.{yaml,toml}, then the profile overlays from both folders.
    const fs::path directory = given.parent_path();
    for (const auto& file : candidates(directory, "pyfly")) apply_if_present(file);
    if (config_.sources_.empty()) {
      config_.warnings_.push_back(fmt::format("no config file found (looked for {}); using defaults",
                                              detail::join(candidate_names(directory, "pyfly"), ", ")));
    }
    apply_profiles([&](const std::string& profile) { return candidates(directory, "pyfly-" + profile); });
    return finish();
  }

  /// Base document from text, named `name`.
  Config load_text(std::string_view text, std::string_view name) {
    const std::string source(name);
    apply_text(text, source);
    apply_profiles([&](const std::string& profile) {
      return candidates(fs::path(source).parent_path(), "pyfly-" + profile);
    });
    return finish();
  }

 private:
  static std::string read_file(const std::string& path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      throw ConfigError(fmt::format("cannot read config file {}: it is a directory", path));
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      const int error = errno;
      throw ConfigError(fmt::format("cannot read config file {}: {}", path,
                                    error != 0 ? std::strerror(error) : "open failed"));
    }
    std::ostringstream content;
    content << in.rdbuf();
    if (in.bad()) {
      const int error = errno;
      throw ConfigError(fmt::format("cannot read config file {}: {}", path,
                                    error != 0 ? std::strerror(error) : "read failed"));
    }
    return content.str();
  }

  /// pyfly.yaml, pyfly.toml (and --config pyfly.yml): PyFly searches beside such a file.
  static bool is_pyfly_file(const fs::path& path) {
    const std::string extension = path.extension().string();
    return path.stem() == "pyfly" && (extension == ".yaml" || extension == ".toml");
  }

  /// <dir>/config/<stem>.yaml, .toml, then <dir>/<stem>.yaml, .toml.
  static std::vector<fs::path> candidates(const fs::path& directory, const std::string& stem) {
    std::vector<fs::path> out;
    for (const fs::path& folder : {directory / "config", directory}) {
      for (const char* extension : {".yaml", ".toml"}) out.push_back(folder / (stem + extension));
    }
    return out;
  }

  static std::vector<std::string> candidate_names(const fs::path& directory, const std::string& stem) {
    std::vector<std::string> names;
    for (const auto& path : candidates(directory, stem)) names.push_back(path.string());
    return names;
  }

  bool apply_if_present(const fs::path& path) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return false;
    apply_file(path);
    return true;
  }

  void apply_file(const fs::path& path) {
    const std::string text = read_file(path.string());
    apply_text(text, path.string());
  }

  static bool is_toml(std::string_view source) { return source.ends_with(".toml"); }

  void apply_text(std::string_view text, const std::string& source) {
    const std::vector<Entry> entries = is_toml(source) ? detail::read_toml(text, source) : detail::read_yaml(text, source);
    detail::check_structure(entries, config_.warnings_);
    config_.sources_.push_back(source);
    overlay(entries);
  }

  /// Layers one document's entries over the values so far (later files win, key by key).
  void overlay(const std::vector<Entry>& entries) {
    auto& values = config_.values_;
    for (const auto& entry : entries) {
      switch (entry.kind) {
        case NodeKind::scalar:
          erase_items(entry.key);
          values.insert_or_assign(entry.key, ConfigValue{entry.value, entry.value_origin});
          break;
        case NodeKind::null:
          values.erase(entry.key);  // "key:" with nothing: back to the default
          break;
        case NodeKind::list:
          values.erase(entry.key);
          erase_items(entry.key);  // a list replaces the previous list as a whole
          break;
        case NodeKind::map:
          values.erase(entry.key);
          break;
      }
    }
  }

  void erase_items(const std::string& key) {
    auto& values = config_.values_;
    const std::string prefix = key + "[";
    for (auto it = values.lower_bound(prefix); it != values.end() && it->first.starts_with(prefix);) {
      it = values.erase(it);
    }
  }

  std::optional<std::string> profile_setting() const {
    if (options_.profile) return options_.profile;
    if (const auto it = environment_.find("PYFLY_PROFILES_ACTIVE");
        it != environment_.end() && !detail::trim(it->second).empty()) {
      return it->second;
    }
    return get(detail::kProfilesKey);
  }

  std::optional<std::string> get(std::string_view key) const {
    const auto it = config_.values_.find(key);
    if (it == config_.values_.end()) return std::nullopt;
    return it->second.value;
  }

  /// Layers each active profile's files (from `files_of(profile)`) over what was read so far.
  template <typename FilesOf>
  void apply_profiles(FilesOf files_of) {
    const auto setting = profile_setting();
    if (!setting) return;
    std::set<std::string, std::less<>> seen;
    for (const auto piece : detail::split(*setting, ',')) {
      const std::string profile(detail::trim(piece));
      if (profile.empty() || !seen.insert(profile).second) continue;
      if (profile.find('/') != std::string::npos || profile.find('\\') != std::string::npos) {
        throw ConfigError(fmt::format("{}: invalid profile name '{}' (a profile is a plain name such as dev)",
                                      detail::kProfilesKey, detail::printable(profile)));
      }
      config_.profiles_.push_back(profile);
      const std::vector<fs::path> files = files_of(profile);
      bool found = false;
      for (const auto& file : files) found = apply_if_present(file) || found;
      if (!found) {
        std::vector<std::string> names;
        for (const auto& file : files) names.push_back(file.string());
        config_.warnings_.push_back(
            fmt::format("profile '{}': {} not found; nothing to layer", profile, detail::join(names, " or ")));
      }
    }
  }

  void apply_environment() {
    if (environment_.empty()) return;
    std::map<std::string, std::vector<std::string>, std::less<>> by_name;
    const auto add = [&](const std::string& key) {
      auto& keys = by_name[detail::environment_name(key)];
      if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
    };
    for (const auto& key : detail::known_scalar_keys()) add(key);
    for (const auto& key : detail::management_keys()) add(key);
    add(std::string(detail::kProfilesKey));
    for (const auto& [key, value] : config_.values_) add(key);

    struct PropertyPrefix {
      std::string_view variable;
      std::string_view key;
    };
    static constexpr PropertyPrefix kPropertyPrefixes[] = {
        {"PYFLY_MESSAGING_KAFKA_PRODUCER_PROPERTIES_", "pyfly.messaging.kafka.producer-properties"},
        {"PYFLY_MESSAGING_KAFKA_CONSUMER_PROPERTIES_", "pyfly.messaging.kafka.consumer-properties"},
        {"PYFLY_MESSAGING_KAFKA_PROPERTIES_", "pyfly.messaging.kafka.properties"},
    };

    bool rabbit_warned = false;
    for (const auto& [name, value] : environment_) {
      if (!name.starts_with("PYFLY_")) continue;
      const Origin origin{fmt::format("environment variable {}", name), 0, 0};
      if (const auto it = by_name.find(name); it != by_name.end()) {
        for (const auto& key : it->second) config_.values_.insert_or_assign(key, ConfigValue{value, origin});
        continue;
      }
      bool matched = false;
      for (const auto& prefix : kPropertyPrefixes) {
        if (name.size() > prefix.variable.size() && name.starts_with(prefix.variable)) {
          std::string property = detail::to_lower(std::string_view(name).substr(prefix.variable.size()));
          for (char& c : property) {
            if (c == '_') c = '.';
          }
          config_.values_.insert_or_assign(fmt::format("{}.{}", prefix.key, property), ConfigValue{value, origin});
          matched = true;
          break;
        }
      }
      if (matched) continue;
      if (name == "PYFLY_MESSAGING_RABBITMQ" || name.starts_with("PYFLY_MESSAGING_RABBITMQ_")) {
        if (!rabbit_warned) config_.warnings_.push_back(fmt::format("{}: {}", origin.describe(), detail::kRabbitWarning));
        rabbit_warned = true;
        continue;
      }
      if (name.starts_with("PYFLY_MESSAGING_")) {
        config_.warnings_.push_back(
            fmt::format("environment variable {} matches no pyfly.messaging key; ignored", name));
      }
    }
  }

  Config finish() {
    apply_environment();
    detail::resolve_placeholders(config_.values_, environment_);
    config_.messaging_ = detail::build_messaging(config_.values_);
    config_.management_ = detail::build_management(config_.values_);
    warn_about_codecs_pyfly_cannot_read();
    return std::move(config_);
  }

  /// A file shared with a PyFly service may set a codec its consumer cannot decode: pyfly[kafka]
  /// installs aiokafka without lz4, snappy or zstd, and its consumer stops on such a batch.
  void warn_about_codecs_pyfly_cannot_read() {
    for (const std::string_view section : {"properties", "producer-properties"}) {
      for (const std::string_view name : {"compression.type", "compression.codec"}) {
        const std::string key = fmt::format("pyfly.messaging.kafka.{}.{}", section, name);
        const auto it = config_.values_.find(key);
        if (it == config_.values_.end()) continue;
        const std::string codec = detail::to_lower(detail::trim(it->second.value));
        if (codec == "lz4" || codec == "snappy" || codec == "zstd") {
          config_.warnings_.push_back(fmt::format(
              "{}: {}: {} is not readable by a PyFly consumer (pyfly[kafka] installs no {} library); gzip or none "
              "is read by both",
              it->second.origin.describe(), key, codec, codec));
        }
      }
    }
  }

  const LoadOptions& options_;
  std::map<std::string, std::string, std::less<>> environment_;
  Config config_;
};

Config Config::load(const LoadOptions& options) { return ConfigBuilder(options).load_files(); }

Config Config::from_string(std::string_view yaml, std::string_view name, const LoadOptions& options) {
  return ConfigBuilder(options).load_text(yaml, name);
}

}  // namespace cppfly::config

namespace cppfly::config {

bool ManagementProperties::exposes(std::string_view id) const {
  const auto has = [&](const std::vector<std::string>& list) {
    return std::find(list.begin(), list.end(), id) != list.end() || std::find(list.begin(), list.end(), "*") != list.end();
  };
  return has(include) && !has(exclude);
}

}  // namespace cppfly::config
