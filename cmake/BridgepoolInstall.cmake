# What `cmake --install` puts under a prefix, by component:
#   runtime  lib/libbridgepool.so.<soversion>, bin/bridgepool, share/bridgepool/{python,examples}
#            and share/bridgepool/VERSION (the stamp the library checks before using a runtime)
#   dev      include/bridgepool/*.h, lib/libbridgepool.{a,so}, lib/cmake/bridgepool/ (the CMake
#            package: bridgepool::bridgepool, bridgepool::bridgepool_static) and
#            lib/pkgconfig/bridgepool.pc
#   pycache  byte-compiles the runtime after a plain `cmake --install` (not part of the .deb,
#            whose postinst does it instead)
# Every file is placed relative to the prefix, so an installed tree can be copied elsewhere.
include(CMakePackageConfigHelpers)

set(bridgepool_cmake_dir "${CMAKE_INSTALL_LIBDIR}/cmake/bridgepool")

install(TARGETS bridgepool_shared EXPORT bridgepool-targets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT dev)
install(TARGETS bridgepool_static EXPORT bridgepool-static-targets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(TARGETS bridgepool RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
# `cmake --install --strip` (and cpack, CPACK_STRIP_FILES) strips executables and shared
# libraries only; the static library's debug information would be most of bridgepool-dev.
if(CMAKE_STRIP)
  set(bridgepool_archive "${CMAKE_INSTALL_LIBDIR}/$<TARGET_FILE_NAME:bridgepool_static>")
  install(CODE "
    if(CMAKE_INSTALL_DO_STRIP)
      execute_process(COMMAND \"${CMAKE_STRIP}\" --strip-debug
        \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${bridgepool_archive}\")
    endif()" COMPONENT dev)
endif()

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/bridgepool
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev FILES_MATCHING PATTERN "*.h")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/python/bridgepool_worker
  DESTINATION ${BRIDGEPOOL_INSTALL_DATADIR}/python COMPONENT runtime
  FILES_MATCHING PATTERN "*.py" PATTERN "__pycache__" EXCLUDE)
file(GLOB bridgepool_example_handlers CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/*.py)
install(FILES ${bridgepool_example_handlers}
  DESTINATION ${BRIDGEPOOL_INSTALL_DATADIR}/examples COMPONENT runtime)
file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/VERSION CONTENT "@PROJECT_VERSION@\n" @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/VERSION
  DESTINATION ${BRIDGEPOOL_INSTALL_DATADIR} COMPONENT runtime)

# Workers start faster from .pyc files, and a root-owned prefix is not writable by the workers
# that would otherwise write them. Skipped under DESTDIR (staged installs: the .pyc files would
# record the staging paths; packagers compile on the target, as the .deb's postinst does).
# The interpreter workers use by default (PoolConfig's default_python()): /usr/bin/python3 first,
# so the caches carry its version tag rather than that of some python3 earlier in PATH.
find_program(BRIDGEPOOL_INSTALL_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
find_program(BRIDGEPOOL_INSTALL_PYTHON NAMES python3)
if(BRIDGEPOOL_INSTALL_PYTHON)
  install(CODE "
    if(\"\$ENV{DESTDIR}\" STREQUAL \"\")
      execute_process(COMMAND \"${BRIDGEPOOL_INSTALL_PYTHON}\" -m compileall -q
        \"\${CMAKE_INSTALL_PREFIX}/${BRIDGEPOOL_INSTALL_DATADIR}\" OUTPUT_QUIET)
    endif()" COMPONENT pycache)
endif()

# The CMake package. The shared and the static library are exported separately: the static one's
# link interface names fmt::fmt (used inside the library), which only static consumers need, so
# bridgepool-config.cmake loads it only when fmt can be found.
install(EXPORT bridgepool-targets NAMESPACE bridgepool::
  DESTINATION ${bridgepool_cmake_dir} COMPONENT dev)
install(EXPORT bridgepool-static-targets NAMESPACE bridgepool::
  DESTINATION ${bridgepool_cmake_dir} COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/packaging/bridgepool-config.cmake.in
  ${PROJECT_BINARY_DIR}/bridgepool-config.cmake INSTALL_DESTINATION ${bridgepool_cmake_dir}
  PATH_VARS BRIDGEPOOL_INSTALL_DATADIR)
# 0.x: minor versions are not compatible with each other (see the soname).
write_basic_package_version_file(${PROJECT_BINARY_DIR}/bridgepool-config-version.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/bridgepool-config.cmake
              ${PROJECT_BINARY_DIR}/bridgepool-config-version.cmake
  DESTINATION ${bridgepool_cmake_dir} COMPONENT dev)

# pkg-config. The prefix is computed from the .pc file's own location (${pcfiledir}), so the file
# stays right when the prefix is copied elsewhere.
file(RELATIVE_PATH bridgepool_pc_to_prefix
  "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
set(bridgepool_pc_dl "")
if(CMAKE_DL_LIBS)
  set(bridgepool_pc_dl "-l${CMAKE_DL_LIBS}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/packaging/bridgepool.pc.in
  ${PROJECT_BINARY_DIR}/bridgepool.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/bridgepool.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
