# Warnings in our own code (never forced on code that consumes the package); errors with
# CPPFLY_WERROR (on in the presets and CI, off by default).
function(cppfly_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  if(CPPFLY_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# Our libraries' private parts: the internal headers (framework/src: logging) and spdlog/fmt.
function(cppfly_internal target)
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/framework/src)
  target_link_libraries(${target} PRIVATE spdlog::spdlog fmt::fmt)
endfunction()
