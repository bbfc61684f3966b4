# `cpack -G DEB` (from the build directory): two Debian packages, the Debian way.
#   bridgepool      the shared library, the `bridgepool` command, the Python worker runtime and
#                   the example handlers. Depends: python3 plus what dpkg-shlibdeps finds in the
#                   ELF files (libc6, libstdc++6, libgcc-s1, libfmt9, libsimdjson14).
#   bridgepool-dev  headers, libbridgepool.a, the libbridgepool.so link, the CMake package and
#                   bridgepool.pc. Depends: bridgepool of the same version and the -dev packages
#                   of what the public headers include (nlohmann-json3-dev, libexpected-dev), plus
#                   libfmt-dev and libsimdjson-dev for linking the static library.
# Why split: a program linked with bridgepool, or someone who only runs the command, needs none
# of the headers, and nlohmann-json3-dev/libexpected-dev are development packages that have no
# business on a production host. One library package and one -dev package is the usual shape
# (a separate package for the command would add a third package for one small file).
# Installed under /usr (Debian policy keeps packages out of /usr/local); libraries go to
# /usr/${CMAKE_INSTALL_LIBDIR}, where both pkg-config and CMake look.
set(CPACK_PACKAGE_NAME bridgepool)
set(CPACK_PACKAGE_VENDOR "bridgepool")
set(CPACK_PACKAGE_CONTACT "bridgepool maintainers <bridgepool@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "Runs Python code for C++ programs in a pool of long-lived worker processes")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX ${BRIDGEPOOL_PACKAGE_PREFIX})
set(CPACK_GENERATOR DEB)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev)  # not "pycache": the postinst compiles on the target
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
# Debug information stays in the build tree: unstripped, the two packages weigh ~50 MB.
set(CPACK_STRIP_FILES ON)
set(bridgepool_deb_version "${PROJECT_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE}")

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME bridgepool)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS "python3")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
# A shlibs file, so packages linking libbridgepool get "Depends: bridgepool (= <version>)" from
# their own dpkg-shlibdeps run ("=": 0.x minor releases are not ABI-compatible).
# (CPack has no per-component switch for this; only the runtime package holds a shared object.)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY "=")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME bridgepool-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "bridgepool (= ${bridgepool_deb_version}), \
nlohmann-json3-dev (>= 3), libexpected-dev, libfmt-dev, libsimdjson-dev")

# Maintainer scripts: ldconfig and byte-compiling the runtime after install, removing the caches
# before removal. (Supplying a postinst turns off the one CPack writes for ldconfig; its postrm
# with ldconfig is still generated.)
set(bridgepool_deb_datadir "${BRIDGEPOOL_PACKAGE_PREFIX}/${BRIDGEPOOL_INSTALL_DATADIR}")
foreach(script postinst prerm)
  configure_file(${PROJECT_SOURCE_DIR}/packaging/debian/${script}.in
    ${PROJECT_BINARY_DIR}/debian/${script} @ONLY
    FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                     WORLD_READ WORLD_EXECUTE)
endforeach()
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA
  ${PROJECT_BINARY_DIR}/debian/postinst ${PROJECT_BINARY_DIR}/debian/prerm)

include(CPack)
cpack_add_component(runtime DISPLAY_NAME "bridgepool runtime"
  DESCRIPTION "Shared library, bridgepool command and Python worker runtime")
cpack_add_component(dev DISPLAY_NAME "bridgepool development files" DEPENDS runtime
  DESCRIPTION "Headers, static library, CMake package and pkg-config file")
