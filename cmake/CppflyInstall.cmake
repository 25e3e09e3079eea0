# cmake --install: headers, static libraries and a CMake package (find_package(cppfly CONFIG)).
include(CMakePackageConfigHelpers)

set(CPPFLY_INSTALL_TARGETS cppfly_port cppfly_config cppfly_framework cppfly_memory cppfly_messaging)
if(CPPFLY_WITH_KAFKA)
  list(APPEND CPPFLY_INSTALL_TARGETS cppfly_kafka)
endif()

install(TARGETS ${CPPFLY_INSTALL_TARGETS} EXPORT cppflyTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
# The command-line tools (built with the Kafka adapter): bin/cppfly-dlq.
if(TARGET cppfly-dlq)
  install(TARGETS cppfly-dlq RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
foreach(dir config/include framework/include adapters/memory/include adapters/kafka/include application/include)
  if(EXISTS ${PROJECT_SOURCE_DIR}/${dir}/cppfly)
    install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir}/cppfly DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  endif()
endforeach()

set(CPPFLY_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/cppfly)
install(EXPORT cppflyTargets NAMESPACE cppfly:: DESTINATION ${CPPFLY_CMAKE_DIR})
configure_package_config_file(cmake/cppflyConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/cppflyConfig.cmake INSTALL_DESTINATION ${CPPFLY_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/cppflyConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/cppflyConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/cppflyConfigVersion.cmake
  DESTINATION ${CPPFLY_CMAKE_DIR})
