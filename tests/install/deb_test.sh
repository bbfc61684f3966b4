#!/usr/bin/env bash
# Builds the Debian packages with `cpack -G DEB` from the build tree and checks them:
#   - Depends of bridgepool (python3 and the shared-library packages dpkg-shlibdeps found) and of
#     bridgepool-dev (bridgepool of the same version and the headers' -dev packages);
#   - the file lists: runtime files in bridgepool, development files in bridgepool-dev, nothing
#     in both;
#   - both unpacked into a throwaway root (dpkg -x) give a working installation: the packaged
#     `bridgepool` command runs a pool of two workers with the packaged runtime, with the source
#     and build trees hidden (hide_tree.sh).
# Usage: deb_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/hide_tree.sh"

build="$(realpath "$1")"
source_dir="$(realpath "$2")"
for tool in cpack dpkg-deb dpkg-shlibdeps file; do
  command -v "$tool" >/dev/null || { echo "SKIPPED: $tool not installed" >&2; exit 77; }
done
if ! can_hide; then
  echo "SKIPPED: cannot create a mount namespace to hide the source tree" >&2
  exit 77
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/bridgepool-deb-test.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
HIDDEN_DIRS=("$build" "$source_dir")
hide_other_installs

(cd "$build" && cpack -G DEB -B "$tmp/pkg" >"$tmp/cpack.log" 2>&1) ||
  { cat "$tmp/cpack.log"; fail "cpack"; }
runtime=("$tmp"/pkg/bridgepool_*.deb)
dev=("$tmp"/pkg/bridgepool-dev_*.deb)
[ -f "${runtime[0]}" ] && [ -f "${dev[0]}" ] || { ls "$tmp/pkg"; fail "expected two packages"; }
echo "built $(basename "${runtime[0]}") and $(basename "${dev[0]}") ($(elapsed))"

# has_dep DEPENDS PACKAGE: DEPENDS (a Depends field) names PACKAGE.
has_dep() {
  tr ',' '\n' <<<"$1" | sed 's/^ *//' | grep -q "^$2\( \|$\)"
}
version="$(dpkg-deb -f "${runtime[0]}" Version)"
depends="$(dpkg-deb -f "${runtime[0]}" Depends)"
echo "bridgepool Depends: $depends"
for p in python3 libc6 libstdc++6 libgcc-s1 libfmt9 libsimdjson14; do
  has_dep "$depends" "$p" || fail "bridgepool does not depend on $p"
done
dev_depends="$(dpkg-deb -f "${dev[0]}" Depends)"
echo "bridgepool-dev Depends: $dev_depends"
grep -q "bridgepool (= $version)" <<<"$dev_depends" ||
  fail "bridgepool-dev does not depend on bridgepool (= $version)"
for p in nlohmann-json3-dev libexpected-dev libfmt-dev libsimdjson-dev; do
  has_dep "$dev_depends" "$p" || fail "bridgepool-dev does not depend on $p"
done

# Control files: a shlibs entry for packages that link libbridgepool, ldconfig after install.
dpkg-deb -I "${runtime[0]}" shlibs | grep -q "^libbridgepool [0-9.]* bridgepool (= $version)" ||
  fail "bridgepool has no shlibs entry for libbridgepool"
dpkg-deb -I "${runtime[0]}" postinst | grep -q "^ *ldconfig" || fail "postinst runs no ldconfig"

# File lists: `dpkg-deb -c` prints "./usr/..." in the last column; symlinks end in " -> target".
dpkg-deb -c "${runtime[0]}" | awk '{print $6}' | sed 's|^\./|/|' | sort >"$tmp/runtime.list"
dpkg-deb -c "${dev[0]}" | awk '{print $6}' | sed 's|^\./|/|' | sort >"$tmp/dev.list"
expect() {  # expect LIST PATH-REGEX
  grep -qE "^$2\$" "$1" || fail "$(basename "$1" .list) package lacks $2"
}
expect "$tmp/runtime.list" "/usr/bin/bridgepool"
expect "$tmp/runtime.list" "/usr/lib/(.*/)?libbridgepool\.so\.[0-9.]+"
for module in __init__ __main__ runtime protocol; do
  expect "$tmp/runtime.list" "/usr/share/bridgepool/python/bridgepool_worker/$module\.py"
done
expect "$tmp/runtime.list" "/usr/share/bridgepool/examples/handlers\.py"
expect "$tmp/runtime.list" "/usr/share/bridgepool/VERSION"
expect "$tmp/dev.list" "/usr/include/bridgepool/pool\.h"
expect "$tmp/dev.list" "/usr/lib/(.*/)?libbridgepool\.a"
expect "$tmp/dev.list" "/usr/lib/(.*/)?libbridgepool\.so"
expect "$tmp/dev.list" "/usr/lib/(.*/)?cmake/bridgepool/bridgepool-config\.cmake"
expect "$tmp/dev.list" "/usr/lib/(.*/)?pkgconfig/bridgepool\.pc"
if grep -E '(/include/|\.a$|/cmake/|\.pc$|__pycache__)' "$tmp/runtime.list"; then
  fail "development files or byte-code caches in the runtime package"
fi
if comm -12 <(grep -v '/$' "$tmp/runtime.list") <(grep -v '/$' "$tmp/dev.list") | grep .; then
  fail "files in both packages"
fi

# Unpack into a throwaway root and run the packaged command from it.
dpkg -x "${runtime[0]}" "$tmp/root"
dpkg -x "${dev[0]}" "$tmp/root"
[ "$(cat "$tmp/root/usr/share/bridgepool/VERSION")" = "${version%-*}" ] || fail "VERSION stamp"
mkdir "$tmp/run"
run_bench "$tmp/run" "$tmp/root/usr/bin/bridgepool" "$tmp/bench.txt"
echo "packaged command ran a pool of 2 from $tmp/root/usr"
echo "deb test passed in $(elapsed)"
