// Where the Python worker runtime (`bridgepool_worker/`) and the example handlers live, for a
// library that may be running from its build tree, from an install prefix, or from a prefix that
// was copied elsewhere. config.cc's default_python_path() and default_handlers() ask this file;
// $BRIDGEPOOL_PYTHONPATH / $BRIDGEPOOL_HANDLERS still override it there.
//
// The search starts from the binary that holds this code, found with dladdr(): the shared
// library itself, or the executable when the static library was linked into a program.
//   1. A binary inside the build tree uses the source tree (python/, examples/) and nothing
//      else: a developer's build must never pick up an installed copy.
//   2. Otherwise the binary's own prefix: <P>/<libdir>/libbridgepool.so or <P>/<bindir>/prog
//      gives <P>/share/bridgepool/python; then the parent of the binary's directory, for libdirs
//      such as lib64. Relative lookups are what make a relocated (copied) prefix work.
//   3. Only for an executable (a static library has no location of its own): the prefixes the
//      library was configured for (CMAKE_INSTALL_PREFIX, then the Debian package's /usr).
// A shared library never looks beyond its own prefix: if it was copied elsewhere, finding the
// runtime of the installation it was copied from would be finding another installation's.
// Every installed candidate must carry <P>/share/bridgepool/VERSION equal to this library's
// version, so a runtime of another release (a half-done upgrade, an old install) is never used.
// When no candidate is acceptable, runtime_dirs() says so once on stderr, naming each place and
// why it was refused, and returns kRuntimeNotFound as python_dir: workers then fail to import
// bridgepool_worker and Pool::start fails, instead of running whatever copy is at hand.
//
// runtime_candidates() and choose_runtime() are pure (unit-tested); the rest touches the system.
// Thread-safety: all functions may be called from any thread.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace bridgepool::internal {

// One place the runtime may be.
struct RuntimeDirs {
  std::string python_dir;    // the directory holding bridgepool_worker/ (a PYTHONPATH entry)
  std::string examples_dir;  // the directory holding the example handlers.py
  std::string stamp_file;    // VERSION file that must hold the library's version; empty: none
  std::string origin;        // why this candidate, for diagnostics ("build tree", "prefix of ...")

  bool operator==(const RuntimeDirs&) const = default;
};

enum class BinaryKind { kSharedLibrary, kExecutable };

// The file this code was loaded from (canonical path) and what kind of file it is.
struct LoadedBinary {
  std::string path;
  BinaryKind kind = BinaryKind::kExecutable;
};

// Facts fixed when the library was compiled. Directories are relative to a prefix.
struct BuildFacts {
  std::string source_dir;  // canonical
  std::string build_dir;   // canonical
  std::string version;     // PROJECT_VERSION, compared with an installation's VERSION file
  std::vector<std::string> configured_prefixes;
  std::string libdir = "lib";
  std::string bindir = "bin";
  std::string datadir = "share/bridgepool";
};

// This library's compile-time facts.
BuildFacts build_facts();

// The candidates, most trusted first, for `binary` (nullopt: dladdr could not tell). Pure.
std::vector<RuntimeDirs> runtime_candidates(const BuildFacts& facts,
                                            const std::optional<LoadedBinary>& binary);

// The first candidate that `present` accepts; nullopt if none. Pure given `present`.
std::optional<RuntimeDirs> choose_runtime(const std::vector<RuntimeDirs>& candidates,
                                          const std::function<bool(const RuntimeDirs&)>& present);

// Why `dirs` cannot serve as this library's runtime ("" if it can): it must hold
// bridgepool_worker/__init__.py and, when it names a stamp file, that file must hold `version`.
// Reads the file system.
std::string runtime_problem(const RuntimeDirs& dirs, const std::string& version);

// python_dir of runtime_dirs() when no runtime was found: a directory that does not exist.
inline constexpr const char* kRuntimeNotFound = "/nonexistent/bridgepool-python-runtime-not-found";

// The binary holding this code (dladdr on a function of this file); nullopt if unknown.
std::optional<LoadedBinary> loaded_binary();

// The runtime for this process: candidates from loaded_binary(), checked with
// runtime_problem(). Computed once, then cached.
const RuntimeDirs& runtime_dirs();

}  // namespace bridgepool::internal
