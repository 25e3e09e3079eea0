# Warnings in our own code (never forced on code that consumes the package); errors with
# CPPFLY_WERROR (on in the presets and CI, off by default).
function(cppfly_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  if(CPPFLY_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# Our libraries' private parts: the internal headers and spdlog/fmt. framework/src holds the
# framework's logger (cppfly/detail/log.hpp), shared by the framework, the adapters and application/;
# it is a PRIVATE include directory of in-tree targets only: never installed, never in an exported
# interface.
function(cppfly_internal target)
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/framework/src)
  target_link_libraries(${target} PRIVATE spdlog::spdlog fmt::fmt)
endfunction()
