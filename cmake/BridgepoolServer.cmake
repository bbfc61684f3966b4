# bridgepool_server: the HTTP layer of `bridgepool serve` (src/server/), an internal static
# library linked into the command and the tests; not installed, not part of libbridgepool.
#
# cpp-httplib is Debian's compiled libcpp-httplib.so (pkg-config only, no CMake package);
# toml++ is the header-only tomlplusplus. The dashboard page src/server/dashboard/index.html is
# embedded at build time: a generated .cc holds its bytes, regenerated whenever the page changes.
find_package(PkgConfig REQUIRED)
pkg_check_modules(CPP_HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
find_package(tomlplusplus REQUIRED)

set(BRIDGEPOOL_DASHBOARD_HTML "${PROJECT_SOURCE_DIR}/src/server/dashboard/index.html")
set(BRIDGEPOOL_DASHBOARD_CC "${PROJECT_BINARY_DIR}/generated/dashboard_asset.cc")
add_custom_command(
  OUTPUT ${BRIDGEPOOL_DASHBOARD_CC}
  COMMAND ${CMAKE_COMMAND} -DINPUT=${BRIDGEPOOL_DASHBOARD_HTML} -DOUTPUT=${BRIDGEPOOL_DASHBOARD_CC}
          -DSYMBOL=kDashboardHtml -DNAMESPACE=bridgepool::server
          -P ${PROJECT_SOURCE_DIR}/cmake/EmbedFile.cmake
  DEPENDS ${BRIDGEPOOL_DASHBOARD_HTML} ${PROJECT_SOURCE_DIR}/cmake/EmbedFile.cmake
  COMMENT "Embedding the dashboard page"
  VERBATIM)

file(GLOB BRIDGEPOOL_SERVER_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/server/*.cc)
add_library(bridgepool_server STATIC ${BRIDGEPOOL_SERVER_SOURCES} ${BRIDGEPOOL_DASHBOARD_CC})
target_link_libraries(bridgepool_server
  PUBLIC bridgepool_internal PkgConfig::CPP_HTTPLIB tomlplusplus::tomlplusplus)
if(BRIDGEPOOL_PCH)
  target_precompile_headers(bridgepool_server PRIVATE
    <httplib.h> <nlohmann/json.hpp> <fmt/format.h> <tl/expected.hpp> <string> <vector>)
endif()
