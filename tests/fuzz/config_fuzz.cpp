// libFuzzer target: YAML text through config loading and validation (Config::from_string).
// A ConfigError is the expected outcome for bad input; anything else that escapes (another
// exception, a crash, a sanitizer report, a hang or runaway memory) is a finding.
//
//   cmake --preset fuzz && cmake --build --preset fuzz
//   build/fuzz/tests/fuzz/config_fuzz -max_total_time=60 -timeout=5 -rss_limit_mb=2048 \
//       /tmp/corpus tests/fuzz/corpus
#include <cppfly/config/config.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {
std::size_t touched = 0;  // keeps the reads above from being optimized away
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  try {
    const auto config = cppfly::config::Config::from_string(yaml, "pyfly.yaml");
    // Touch what a caller reads after a successful load.
    std::size_t total = 0;
    for (const auto& [key, value] : config.values()) {
      total += key.size() + value.value.size() + value.origin.describe().size();
    }
    for (const auto& warning : config.warnings()) total += warning.size();
    total += config.get("pyfly.messaging.provider").value_or("").size();
    total += config.messaging().kafka.bootstrap_servers.size();
    touched += total;
  } catch (const cppfly::config::ConfigError&) {
    // bad configuration, reported as such: the expected outcome
  }
  return 0;
}
