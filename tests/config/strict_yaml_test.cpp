// YAML that a strict parser refuses is refused here too, with file:line, and hostile documents
// (alias cycles, alias bombs) end in one clear error at once instead of a crash or a hang.
#include <cppfly/config/config.hpp>

#include <chrono>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "support.hpp"

using cppfly::config::Config;
using namespace cppfly::config::testing;

namespace {

/// The error of loading `yaml`. The bound is no speed target (docs/reliability.md has the time a
/// service takes to refuse such a file); it tells "refused after bounded work" from the minutes an
/// unbounded expansion ran before, even in a sanitizer build.
std::string quick_error_of(const std::string& yaml) {
  const auto start = std::chrono::steady_clock::now();
  std::string error = error_of_yaml(yaml);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
  return error;
}

}  // namespace

TEST_CASE("a duplicate key is refused with both places", "[config][strict]") {
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    provider: memory\n    provider: kafka\n") ==
        "pyfly.yaml:4:5: pyfly.messaging.provider: duplicate key (first set at pyfly.yaml:3:5)");
  CHECK(error_of_yaml("pyfly:\n  messaging: {}\npyfly:\n  x: 1\n") ==
        "pyfly.yaml:3:1: pyfly: duplicate key (first set at pyfly.yaml:1:1)");
  CHECK(error_of_yaml("pyfly.messaging.provider: memory\npyfly:\n  messaging:\n    provider: kafka\n") ==
        "pyfly.yaml:4:5: pyfly.messaging.provider: duplicate key (first set at pyfly.yaml:1:1)");
}

TEST_CASE("an unterminated quoted string is refused even at the end of the file", "[config][strict]") {
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    provider: \"memory\n") ==
        "pyfly.yaml:3:15: pyfly.messaging.provider: invalid YAML: the quoted string is never closed (missing \")");
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    provider: 'memory\n") ==
        "pyfly.yaml:3:15: pyfly.messaging.provider: invalid YAML: the quoted string is never closed (missing ')");
  CHECK(error_of_yaml("a: [\"x\", \"y\n") != "");
  // Closed ones, with escaped quotes inside, are fine.
  const Config config = Config::from_string("a: \"say \\\"hi\\\"\"\nb: 'it''s'\nc: \"multi\n  line\"\n");
  CHECK(config.get("a") == std::optional<std::string>("say \"hi\""));
  CHECK(config.get("b") == std::optional<std::string>("it's"));
  CHECK(config.get("c") == std::optional<std::string>("multi line"));
}

TEST_CASE("a tab used for indentation is refused with its line", "[config][strict]") {
  CHECK(error_of_yaml("pyfly:\n  messaging:\n    provider: kafka\n\tfoo: 1\n") ==
        "pyfly.yaml:4:1: invalid YAML: illegal tab when looking for indentation");
  CHECK(error_of_yaml("pyfly:\n\tmessaging: x\n").starts_with("pyfly.yaml:2:"));
}

TEST_CASE("an alias that refers back to its own anchor is refused at once", "[config][strict]") {
  CHECK(quick_error_of("pyfly:\n  messaging: &m\n    kafka: *m\n") ==
        "pyfly.yaml:3:5: pyfly.messaging.kafka.kafka.kafka.kafka.kafka.kafka.kafka.kafka.kafka.kafka.kafk...: "
        "nested more than 64 levels deep (an alias that refers to its own anchor?)");
  CHECK(quick_error_of("other: &o\n  inner: *o\n").find("nested more than 64 levels deep") != std::string::npos);
  CHECK(quick_error_of("list: &l\n  - *l\n").find("nested more than 64 levels deep") != std::string::npos);
}

TEST_CASE("a billion-laughs alias expansion is refused at once", "[config][strict]") {
  std::string yaml = "a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n";
  for (int level = 1; level <= 9; ++level) {
    const std::string previous = fmt::format("*a{}", level - 1);
    yaml += fmt::format("a{0}: &a{0} [", level);
    for (int i = 0; i < 9; ++i) yaml += (i > 0 ? ", " : "") + previous;
    yaml += "]\n";
  }
  const std::string error = quick_error_of(yaml);
  CHECK(error.find("the document expands to more than") != std::string::npos);
  // The same as maps.
  std::string maps = "m0: &m0 {a: lol, b: lol, c: lol, d: lol, e: lol, f: lol, g: lol, h: lol, i: lol}\n";
  for (int level = 1; level <= 9; ++level) {
    const std::string previous = fmt::format("*m{}", level - 1);
    maps += fmt::format("m{0}: &m{0} {{", level);
    for (int i = 0; i < 9; ++i) maps += std::string(i > 0 ? ", " : "") + char('a' + i) + ": " + previous;
    maps += "}\n";
  }
  CHECK(quick_error_of(maps).find("the document expands to more than 10000 keys") != std::string::npos);
}

TEST_CASE("a stray ',' that stops yaml-cpp's parser from advancing is refused instead of hanging", "[config][strict]") {
  CHECK(quick_error_of(",\n") ==
        "pyfly.yaml:1:1: invalid YAML: the parser cannot get past this point (a stray ',' or other flow indicator "
        "outside [ ] or { }?)");
  CHECK(quick_error_of("# a comment\n,\n").starts_with("pyfly.yaml:2:1: invalid YAML: "));
  // Several documents still get their own message.
  CHECK(error_of_yaml("a: 1\n---\nb: 2\n").find("only one YAML document per file") != std::string::npos);
}
