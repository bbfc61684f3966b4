#include "base/install_paths.h"

#include <dlfcn.h>
#include <link.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <system_error>

// Set by CMakeLists.txt on this file only (see there); defaults keep the file compilable alone.
#ifndef BRIDGEPOOL_SOURCE_DIR
#define BRIDGEPOOL_SOURCE_DIR ""
#endif
#ifndef BRIDGEPOOL_BUILD_DIR
#define BRIDGEPOOL_BUILD_DIR ""
#endif
#ifndef BRIDGEPOOL_VERSION
#define BRIDGEPOOL_VERSION ""
#endif
#ifndef BRIDGEPOOL_INSTALL_PREFIX
#define BRIDGEPOOL_INSTALL_PREFIX "/usr/local"
#endif
#ifndef BRIDGEPOOL_PACKAGE_PREFIX
#define BRIDGEPOOL_PACKAGE_PREFIX "/usr"
#endif
#ifndef BRIDGEPOOL_INSTALL_LIBDIR
#define BRIDGEPOOL_INSTALL_LIBDIR "lib"
#endif
#ifndef BRIDGEPOOL_INSTALL_BINDIR
#define BRIDGEPOOL_INSTALL_BINDIR "bin"
#endif
#ifndef BRIDGEPOOL_INSTALL_DATADIR
#define BRIDGEPOOL_INSTALL_DATADIR "share/bridgepool"
#endif

namespace bridgepool::internal {
namespace {

namespace fs = std::filesystem;

// True if `path` is `dir` or lies below it (string comparison on canonical paths).
bool is_within(const std::string& path, const std::string& dir) {
  if (dir.empty() || path.size() <= dir.size()) return false;
  return path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/';
}

RuntimeDirs installed_at(const BuildFacts& facts, const fs::path& prefix, std::string origin) {
  const fs::path data = prefix / facts.datadir;
  return RuntimeDirs{(data / "python").string(), (data / "examples").string(),
                     (data / "VERSION").string(), std::move(origin)};
}

void add_unique(std::vector<RuntimeDirs>& out, RuntimeDirs dirs) {
  for (const auto& d : out) {
    if (d.python_dir == dirs.python_dir) return;
  }
  out.push_back(std::move(dirs));
}

// <P> if `dir` is <P>/<relative> (e.g. /opt/bp/lib with relative "lib" gives /opt/bp).
std::optional<fs::path> strip_suffix(const fs::path& dir, const std::string& relative) {
  fs::path p = dir;
  const fs::path rel = fs::path(relative).lexically_normal();
  std::vector<fs::path> parts(rel.begin(), rel.end());
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (it->empty()) continue;  // a trailing "/" in the relative dir
    if (p.filename() != *it) return std::nullopt;
    p = p.parent_path();
  }
  return p;
}

// The canonical path of `path`, or `path` itself if it cannot be resolved.
std::string canonical_or_same(const std::string& path) {
  std::error_code ec;
  fs::path c = fs::canonical(path, ec);
  return ec ? path : c.string();
}

}  // namespace

BuildFacts build_facts() {
  BuildFacts facts;
  facts.source_dir = BRIDGEPOOL_SOURCE_DIR;
  facts.build_dir = BRIDGEPOOL_BUILD_DIR;
  facts.version = BRIDGEPOOL_VERSION;
  facts.configured_prefixes = {BRIDGEPOOL_INSTALL_PREFIX, BRIDGEPOOL_PACKAGE_PREFIX};
  facts.libdir = BRIDGEPOOL_INSTALL_LIBDIR;
  facts.bindir = BRIDGEPOOL_INSTALL_BINDIR;
  facts.datadir = BRIDGEPOOL_INSTALL_DATADIR;
  return facts;
}

std::vector<RuntimeDirs> runtime_candidates(const BuildFacts& facts,
                                            const std::optional<LoadedBinary>& binary) {
  std::vector<RuntimeDirs> out;
  if (binary && is_within(binary->path, facts.build_dir)) {
    const fs::path source(facts.source_dir);
    out.push_back({(source / "python").string(), (source / "examples").string(), "",
                   "build tree " + facts.build_dir});
    return out;
  }
  if (binary) {
    const fs::path dir = fs::path(binary->path).parent_path();
    const std::string& own =
        binary->kind == BinaryKind::kSharedLibrary ? facts.libdir : facts.bindir;
    if (auto prefix = strip_suffix(dir, own)) {
      add_unique(out, installed_at(facts, *prefix, "prefix of " + binary->path));
    }
    add_unique(out, installed_at(facts, dir.parent_path(), "parent of " + dir.string()));
    if (binary->kind == BinaryKind::kSharedLibrary) return out;
  }
  for (const auto& prefix : facts.configured_prefixes) {
    if (prefix.empty()) continue;
    add_unique(out, installed_at(facts, prefix, "configured prefix " + prefix));
  }
  return out;
}

std::optional<RuntimeDirs> choose_runtime(const std::vector<RuntimeDirs>& candidates,
                                          const std::function<bool(const RuntimeDirs&)>& present) {
  for (const auto& c : candidates) {
    if (present(c)) return c;
  }
  return std::nullopt;
}

std::string runtime_problem(const RuntimeDirs& dirs, const std::string& version) {
  std::error_code ec;
  if (!fs::is_regular_file(fs::path(dirs.python_dir) / "bridgepool_worker" / "__init__.py", ec)) {
    return "no bridgepool_worker package";
  }
  if (dirs.stamp_file.empty()) return "";
  std::ifstream stamp(dirs.stamp_file);
  std::string line;
  if (!std::getline(stamp, line)) return "no " + dirs.stamp_file;
  if (line != version) return "runtime version " + line + ", library version " + version;
  return "";
}

std::optional<LoadedBinary> loaded_binary() {
  // dladdr1(RTLD_DL_LINKMAP) names the object that holds this function. The main program's link
  // map has an empty name (dladdr would substitute argv[0], which may be relative or a bare
  // name found through PATH), so for it the kernel's /proc/self/exe is used instead.
  Dl_info info{};
  link_map* map = nullptr;
  void* self = reinterpret_cast<void*>(&loaded_binary);
  if (dladdr1(self, &info, reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP) == 0 || !map) {
    return std::nullopt;
  }
  if (map->l_name && map->l_name[0] != '\0') {
    return LoadedBinary{canonical_or_same(map->l_name), BinaryKind::kSharedLibrary};
  }
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return std::nullopt;
  return LoadedBinary{exe.string(), BinaryKind::kExecutable};
}

namespace {

RuntimeDirs find_runtime() {
  const BuildFacts facts = build_facts();
  const auto candidates = runtime_candidates(facts, loaded_binary());
  auto chosen = choose_runtime(
      candidates, [&](const RuntimeDirs& d) { return runtime_problem(d, facts.version).empty(); });
  if (chosen) return *chosen;
  // Once per process, and only when the default location is asked for: a pool is about to fail
  // to start its workers, and this says why. The Logger is per pool and not reachable here.
  std::string looked;
  for (const auto& c : candidates) {
    looked += "\n  " + c.python_dir + " (" + c.origin + "): " + runtime_problem(c, facts.version);
  }
  std::fprintf(stderr,
               "bridgepool: no Python worker runtime for library version %s; looked in:%s\n"
               "  set BRIDGEPOOL_PYTHONPATH or PoolConfig::python_path\n",
               facts.version.c_str(), looked.c_str());
  RuntimeDirs none;
  none.python_dir = kRuntimeNotFound;
  none.examples_dir = candidates.empty() ? "" : candidates.front().examples_dir;
  none.origin = "not found";
  return none;
}

}  // namespace

const RuntimeDirs& runtime_dirs() {
  static const RuntimeDirs dirs = find_runtime();
  return dirs;
}

}  // namespace bridgepool::internal
