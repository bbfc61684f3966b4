#include "base/install_paths.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace bridgepool::internal {
namespace {

BuildFacts facts() {
  BuildFacts f;
  f.source_dir = "/src/bridgepool";
  f.build_dir = "/src/bridgepool/build";
  f.version = "0.1.0";
  f.configured_prefixes = {"/usr/local", "/usr"};
  f.libdir = "lib";
  f.bindir = "bin";
  f.datadir = "share/bridgepool";
  return f;
}

std::vector<std::string> python_dirs(const std::vector<RuntimeDirs>& candidates) {
  std::vector<std::string> out;
  for (const auto& c : candidates) out.push_back(c.python_dir);
  return out;
}

LoadedBinary shared(std::string path) { return {std::move(path), BinaryKind::kSharedLibrary}; }
LoadedBinary executable(std::string path) { return {std::move(path), BinaryKind::kExecutable}; }

TEST(InstallPaths, BuildTreeBinaryUsesOnlyTheSourceTree) {
  for (const auto& binary : {executable("/src/bridgepool/build/tests/unit_tests"),
                             shared("/src/bridgepool/build/libbridgepool.so.0.1"),
                             executable("/src/bridgepool/build/bridgepool")}) {
    auto c = runtime_candidates(facts(), binary);
    ASSERT_EQ(c.size(), 1u) << binary.path;
    EXPECT_EQ(c[0].python_dir, "/src/bridgepool/python");
    EXPECT_EQ(c[0].examples_dir, "/src/bridgepool/examples");
    EXPECT_EQ(c[0].stamp_file, "");  // the source tree carries no VERSION stamp
  }
}

TEST(InstallPaths, ASiblingBuildDirectoryIsNotTheBuildTree) {
  // /src/bridgepool/build-asan starts with the build dir's name but is not inside it.
  auto c = runtime_candidates(facts(), executable("/src/bridgepool/build-asan/bridgepool"));
  EXPECT_NE(python_dirs(c)[0], "/src/bridgepool/python");
}

TEST(InstallPaths, SharedLibraryLooksOnlyInItsOwnPrefix) {
  auto c = runtime_candidates(facts(), shared("/opt/bp/lib/libbridgepool.so.0.1"));
  EXPECT_EQ(python_dirs(c), std::vector<std::string>{"/opt/bp/share/bridgepool/python"});
  EXPECT_EQ(c[0].examples_dir, "/opt/bp/share/bridgepool/examples");
  EXPECT_EQ(c[0].stamp_file, "/opt/bp/share/bridgepool/VERSION");
}

TEST(InstallPaths, RelocatedPrefixIsFoundRelativeToTheBinary) {
  // The same tree copied from /opt/bp to /home/me/copy: nothing points back to /opt/bp.
  auto c = runtime_candidates(facts(), shared("/home/me/copy/lib/libbridgepool.so.0.1"));
  EXPECT_EQ(python_dirs(c), std::vector<std::string>{"/home/me/copy/share/bridgepool/python"});
}

TEST(InstallPaths, MultiarchLibdirIsStrippedWhole) {
  BuildFacts f = facts();
  f.libdir = "lib/x86_64-linux-gnu";
  auto c = runtime_candidates(f, shared("/usr/lib/x86_64-linux-gnu/libbridgepool.so.0.1"));
  ASSERT_FALSE(c.empty());
  EXPECT_EQ(c[0].python_dir, "/usr/share/bridgepool/python");
}

TEST(InstallPaths, SharedLibraryOutsideALayoutTriesOnlyTheParentOfItsDirectory) {
  auto c = runtime_candidates(facts(), shared("/opt/app/lib64/libbridgepool.so.0.1"));
  EXPECT_EQ(python_dirs(c), std::vector<std::string>{"/opt/app/share/bridgepool/python"});
}

TEST(InstallPaths, ExecutableTriesItsPrefixThenTheConfiguredPrefixes) {
  // A program with the static library inside: its own prefix first, then where the library was
  // configured to be installed (a static library has no location of its own).
  auto c = runtime_candidates(facts(), executable("/opt/app/bin/server"));
  EXPECT_EQ(python_dirs(c), (std::vector<std::string>{"/opt/app/share/bridgepool/python",
                                                      "/usr/local/share/bridgepool/python",
                                                      "/usr/share/bridgepool/python"}));
  for (const auto& d : c) EXPECT_FALSE(d.stamp_file.empty()) << d.python_dir;
}

TEST(InstallPaths, ExecutableInAPrefixThatIsAlsoConfiguredIsListedOnce) {
  auto c = runtime_candidates(facts(), executable("/usr/local/bin/bridgepool"));
  EXPECT_EQ(python_dirs(c), (std::vector<std::string>{"/usr/local/share/bridgepool/python",
                                                      "/usr/share/bridgepool/python"}));
}

TEST(InstallPaths, UnknownBinaryFallsBackToTheConfiguredPrefixes) {
  auto c = runtime_candidates(facts(), std::nullopt);
  EXPECT_EQ(python_dirs(c), (std::vector<std::string>{"/usr/local/share/bridgepool/python",
                                                      "/usr/share/bridgepool/python"}));
}

TEST(InstallPaths, ChooseTakesTheFirstPresentCandidate) {
  auto c = runtime_candidates(facts(), executable("/opt/app/bin/server"));
  std::set<std::string> present = {"/usr/local/share/bridgepool/python",
                                   "/usr/share/bridgepool/python"};
  auto chosen =
      choose_runtime(c, [&](const RuntimeDirs& d) { return present.count(d.python_dir) > 0; });
  ASSERT_TRUE(chosen.has_value());
  EXPECT_EQ(chosen->python_dir, "/usr/local/share/bridgepool/python");
}

TEST(InstallPaths, ChooseFindsNothingWhenNothingIsPresent) {
  // Never some other copy: runtime_dirs() then points workers at kRuntimeNotFound.
  auto c = runtime_candidates(facts(), shared("/opt/bp/lib/libbridgepool.so.0.1"));
  EXPECT_FALSE(choose_runtime(c, [](const RuntimeDirs&) { return false; }).has_value());
}

// runtime_problem() against a real directory tree.
class InstallPathsOnDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/bridgepool-install-paths-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    std::filesystem::create_directories(root_ / "share/bridgepool/python/bridgepool_worker");
    std::ofstream(root_ / "share/bridgepool/python/bridgepool_worker/__init__.py") << "\n";
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  RuntimeDirs candidate() {
    return runtime_candidates(facts(), shared((root_ / "lib/libbridgepool.so.0.1").string()))[0];
  }

  std::filesystem::path root_;
};

TEST_F(InstallPathsOnDisk, MissingStampIsNotARuntime) {
  EXPECT_EQ(runtime_problem(candidate(), "0.1.0"),
            "no " + (root_ / "share/bridgepool/VERSION").string());
}

TEST_F(InstallPathsOnDisk, StampOfAnotherVersionIsNotARuntime) {
  std::ofstream(root_ / "share/bridgepool/VERSION") << "0.2.0\n";
  EXPECT_EQ(runtime_problem(candidate(), "0.1.0"), "runtime version 0.2.0, library version 0.1.0");
}

TEST_F(InstallPathsOnDisk, MatchingStampAndPackageIsARuntime) {
  std::ofstream(root_ / "share/bridgepool/VERSION") << "0.1.0\n";
  EXPECT_EQ(runtime_problem(candidate(), "0.1.0"), "");
  std::filesystem::remove(root_ / "share/bridgepool/python/bridgepool_worker/__init__.py");
  EXPECT_EQ(runtime_problem(candidate(), "0.1.0"), "no bridgepool_worker package");
}

TEST(InstallPaths, ThisTestBinaryFindsTheSourceTree) {
  // unit_tests is a build-tree executable with the static library linked in.
  auto binary = loaded_binary();
  ASSERT_TRUE(binary.has_value());
  EXPECT_EQ(binary->kind, BinaryKind::kExecutable);
  EXPECT_EQ(runtime_dirs().python_dir, build_facts().source_dir + "/python");
  EXPECT_EQ(runtime_problem(runtime_dirs(), build_facts().version), "");
}

}  // namespace
}  // namespace bridgepool::internal
