// The framework's logger ("cppfly"), shared by the framework and the adapters. Internal.
#pragma once

#include <memory>

#include <spdlog/cfg/env.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace cppfly::detail {

/// The "cppfly" logger, created on first use. SPDLOG_LEVEL=debug (or cppfly=debug) raises verbosity.
inline spdlog::logger& log() {
  static const std::shared_ptr<spdlog::logger> logger = [] {
    if (auto existing = spdlog::get("cppfly")) return existing;
    auto created = spdlog::stderr_color_mt("cppfly");
    created->set_pattern("%H:%M:%S.%e %^%-5l%$ [%n] %v");
    spdlog::cfg::load_env_levels();
    return created;
  }();
  return *logger;
}

}  // namespace cppfly::detail
