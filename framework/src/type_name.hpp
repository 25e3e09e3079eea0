// Readable (demangled) C++ type names for logs and dead-letter headers. Internal.
#pragma once

#include <string>
#include <typeinfo>

namespace cppfly::detail {

[[nodiscard]] std::string demangle(const char* mangled);
[[nodiscard]] inline std::string type_name(const std::type_info& type) { return demangle(type.name()); }

}  // namespace cppfly::detail
