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

#include "schema.hpp"
#include "text.hpp"
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

std::optional<std::string> Config::get(std::string_view key) const {
  const auto it = values_.find(key);
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

  /// Base file from disk: a missing default file means defaults only.
  Config load_file() {
    const std::string& path = options_.path;
    std::error_code ec;
    const bool exists = fs::exists(path, ec);
    if (exists) {
      apply_file(path);
    } else if (options_.path_given) {
      throw ConfigError(fmt::format("config file not found: {}", path));
    }
    return finish(fs::path(path).parent_path());
  }

  /// Base document from text, named `name`.
  Config load_text(std::string_view yaml, std::string_view name) {
    const std::string source(name);
    apply_text(yaml, source);
    return finish(fs::path(source).parent_path());
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

  void apply_file(const std::string& path) {
    const std::string text = read_file(path);
    apply_text(text, path);
  }

  void apply_text(std::string_view text, const std::string& source) {
    const std::vector<Entry> entries = detail::read_yaml(text, source);
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

  void apply_profiles(const fs::path& directory) {
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
      const std::string path = (directory / fmt::format("pyfly-{}.yaml", profile)).string();
      std::error_code ec;
      if (fs::exists(path, ec)) {
        apply_file(path);
      } else {
        config_.warnings_.push_back(fmt::format("profile '{}': {} not found; nothing to layer", profile, path));
      }
    }
  }

  /// Spring's relaxed binding: pyfly.messaging.kafka.bootstrap-servers -> PYFLY_MESSAGING_KAFKA_BOOTSTRAP_SERVERS.
  static std::string environment_name(std::string_view key) {
    std::string out;
    out.reserve(key.size());
    for (char c : key) {
      if (c == '.' || c == '-' || c == '[') {
        out += '_';
      } else if (c != ']') {
        out += c;
      }
    }
    return detail::to_upper(out);
  }

  void apply_environment() {
    if (environment_.empty()) return;
    std::map<std::string, std::vector<std::string>, std::less<>> by_name;
    const auto add = [&](const std::string& key) {
      auto& keys = by_name[environment_name(key)];
      if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
    };
    for (const auto& key : detail::known_scalar_keys()) add(key);
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

  Config finish(const fs::path& directory) {
    apply_profiles(directory);
    apply_environment();
    config_.messaging_ = detail::build_messaging(config_.values_);
    return std::move(config_);
  }

  const LoadOptions& options_;
  std::map<std::string, std::string, std::less<>> environment_;
  Config config_;
};

Config Config::load(const LoadOptions& options) { return ConfigBuilder(options).load_file(); }

Config Config::from_string(std::string_view yaml, std::string_view name, const LoadOptions& options) {
  return ConfigBuilder(options).load_text(yaml, name);
}

}  // namespace cppfly::config
