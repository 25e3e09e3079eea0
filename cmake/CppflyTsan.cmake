# ThreadSanitizer builds with the Kafka adapter: every executable gets tests/tsan/c11_threads.cpp,
# which routes librdkafka's C11 threads, mutexes and condition variables through the pthread
# functions TSan intercepts (why: see that file). Included last by the top-level CMakeLists.txt.
if(NOT (CPPFLY_WITH_KAFKA AND CMAKE_CXX_FLAGS MATCHES "-fsanitize=thread"))
  return()
endif()

add_library(cppfly_tsan_c11_threads OBJECT ${PROJECT_SOURCE_DIR}/tests/tsan/c11_threads.cpp)
cppfly_warnings(cppfly_tsan_c11_threads)

function(cppfly_tsan_link_executables dir)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  foreach(target IN LISTS targets)
    get_target_property(type ${target} TYPE)
    if(type STREQUAL "EXECUTABLE")
      target_link_libraries(${target} PRIVATE cppfly_tsan_c11_threads)
    endif()
  endforeach()
  get_property(subdirectories DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(subdirectory IN LISTS subdirectories)
    cppfly_tsan_link_executables(${subdirectory})
  endforeach()
endfunction()
cppfly_tsan_link_executables(${PROJECT_SOURCE_DIR})
