# The library, built once and linked two ways.
#
# Every source is compiled once, position-independent, into an OBJECT library; the shared and the
# static library are both made from those objects. Installed, they are libbridgepool.so and
# libbridgepool.a, imported as bridgepool::bridgepool and bridgepool::bridgepool_static.
#
# Usage requirements: the public headers (include/) need nlohmann_json and tl-expected, so those
# are PUBLIC; fmt and simdjson are used only inside the library (no public header includes them),
# so they are PRIVATE, and src/ is never part of a library's interface. Code of this project
# that reaches into src/ (the command, tests, benchmarks, fuzzers) links bridgepool_internal or
# bridgepool_internal_headers instead.

# Relative directories of an installation. They must stay relative: the library finds its Python
# runtime as <prefix>/${BRIDGEPOOL_INSTALL_DATADIR}/python relative to where it was loaded from.
set(BRIDGEPOOL_INSTALL_DATADIR "${CMAKE_INSTALL_DATADIR}/bridgepool")
foreach(dir CMAKE_INSTALL_LIBDIR CMAKE_INSTALL_BINDIR CMAKE_INSTALL_INCLUDEDIR
            CMAKE_INSTALL_DATADIR)
  if(IS_ABSOLUTE "${${dir}}")
    message(FATAL_ERROR "${dir}=${${dir}} must be relative to the prefix (relocatable install)")
  endif()
endforeach()
# The prefix of the Debian package (cmake/BridgepoolPackage.cmake). Compiled into the library
# with CMAKE_INSTALL_PREFIX as the places a statically linked program looks last.
set(BRIDGEPOOL_PACKAGE_PREFIX "/usr")

# Headers and dependencies for code inside this project: src/ and include/ on the path.
add_library(bridgepool_internal_headers INTERFACE)
target_include_directories(bridgepool_internal_headers INTERFACE
  ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(bridgepool_internal_headers INTERFACE
  nlohmann_json::nlohmann_json fmt::fmt simdjson::simdjson tl::expected Threads::Threads)

file(GLOB BRIDGEPOOL_CORE_SOURCES CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/src/base/*.cc ${PROJECT_SOURCE_DIR}/src/wire/*.cc
  ${PROJECT_SOURCE_DIR}/src/process/*.cc ${PROJECT_SOURCE_DIR}/src/worker/*.cc
  ${PROJECT_SOURCE_DIR}/src/pool/*.cc ${PROJECT_SOURCE_DIR}/src/resilience/*.cc
  ${PROJECT_SOURCE_DIR}/src/telemetry/*.cc)
add_library(bridgepool_objects OBJECT ${BRIDGEPOOL_CORE_SOURCES})
set_target_properties(bridgepool_objects PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_link_libraries(bridgepool_objects PRIVATE bridgepool_internal_headers)
if(BRIDGEPOOL_PCH)
  target_precompile_headers(bridgepool_objects PRIVATE
    <nlohmann/json.hpp> <fmt/format.h> <tl/expected.hpp> <chrono> <functional> <map> <memory>
    <mutex> <string> <vector>)
endif()

# What src/base/install_paths.cc needs to know about this build, on that one file only (a change
# of prefix recompiles one file). Canonical paths: the library compares them with the canonical
# path of the binary it was loaded from.
file(REAL_PATH "${PROJECT_SOURCE_DIR}" bridgepool_real_source_dir)
file(REAL_PATH "${PROJECT_BINARY_DIR}" bridgepool_real_build_dir)
set_source_files_properties(${PROJECT_SOURCE_DIR}/src/base/install_paths.cc PROPERTIES
  COMPILE_DEFINITIONS "\
BRIDGEPOOL_SOURCE_DIR=\"${bridgepool_real_source_dir}\";\
BRIDGEPOOL_BUILD_DIR=\"${bridgepool_real_build_dir}\";\
BRIDGEPOOL_VERSION=\"${PROJECT_VERSION}\";\
BRIDGEPOOL_INSTALL_PREFIX=\"${CMAKE_INSTALL_PREFIX}\";\
BRIDGEPOOL_PACKAGE_PREFIX=\"${BRIDGEPOOL_PACKAGE_PREFIX}\";\
BRIDGEPOOL_INSTALL_LIBDIR=\"${CMAKE_INSTALL_LIBDIR}\";\
BRIDGEPOOL_INSTALL_BINDIR=\"${CMAKE_INSTALL_BINDIR}\";\
BRIDGEPOOL_INSTALL_DATADIR=\"${BRIDGEPOOL_INSTALL_DATADIR}\"")

add_library(bridgepool_shared SHARED $<TARGET_OBJECTS:bridgepool_objects>)
add_library(bridgepool_static STATIC $<TARGET_OBJECTS:bridgepool_objects>)
# 0.x releases make no ABI promise between minor versions, so the soname carries the minor
# version too: libbridgepool.so.0.1.
set_target_properties(bridgepool_shared PROPERTIES
  OUTPUT_NAME bridgepool EXPORT_NAME bridgepool
  VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
set_target_properties(bridgepool_static PROPERTIES
  OUTPUT_NAME bridgepool EXPORT_NAME bridgepool_static)
foreach(lib bridgepool_shared bridgepool_static)
  target_include_directories(${lib} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  # The library is C++20 inside; its public headers ask only for C++17 (the consumer test builds
  # against them with g++'s default, gnu++17, so this stays true).
  target_compile_features(${lib} PUBLIC cxx_std_17)
  target_link_libraries(${lib}
    PUBLIC nlohmann_json::nlohmann_json tl::expected Threads::Threads
    PRIVATE fmt::fmt simdjson::simdjson ${CMAKE_DL_LIBS})
endforeach()
add_library(bridgepool::bridgepool ALIAS bridgepool_shared)
add_library(bridgepool::bridgepool_static ALIAS bridgepool_static)

# Tests, benchmarks and the command: the static library plus src/ on the include path. Static, so
# build-tree programs run without a library path and behave like the installed command.
add_library(bridgepool_internal INTERFACE)
target_link_libraries(bridgepool_internal INTERFACE bridgepool_static bridgepool_internal_headers)
# The name every internal target used before the split; kept so branches in flight still
# configure. New code links bridgepool_internal.
add_library(bridgepool_core ALIAS bridgepool_internal)
