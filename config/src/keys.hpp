// Relaxed binding: the canonical form of a dotted key (private).
#pragma once

#include <string>
#include <string_view>

namespace cppfly::config::detail {

/// PyFly's relaxed binding: every segment lower case with '_' read as '-' ("Bootstrap_Servers" ->
/// "bootstrap-servers"), except inside the librdkafka pass-through maps, whose property names
/// are kept as written. Used for keys read from files and for every lookup.
std::string canonical_key(std::string_view dotted);

/// PyFly's environment variable for a dotted key: pyfly.messaging.kafka.bootstrap-servers ->
/// PYFLY_MESSAGING_KAFKA_BOOTSTRAP_SERVERS, myapp.name -> PYFLY_MYAPP_NAME.
std::string environment_name(std::string_view key);

}  // namespace cppfly::config::detail
