#!/usr/bin/env bash
# Installs the build into a fresh prefix and uses it the way another project would, with the
# source and build trees hidden (hide_tree.sh):
#   1. examples/consumer built with find_package(bridgepool) (-DCMAKE_PREFIX_PATH=<prefix>);
#   2. the same main.cc built with plain g++ and `pkg-config --cflags --libs bridgepool`;
#   3. the prefix copied elsewhere and the original hidden too: the pkg-config consumer (shared
#      library) and the installed `bridgepool` command (static library inside an installed
#      program) must both find the copy's runtime;
#   4. the copy's VERSION stamp changed and the original visible again: the consumer must fail,
#      saying why, rather than use either runtime.
# Each consumer run must show a pool of two workers whose bridgepool_worker was imported from the
# prefix in use. Usage: install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/hide_tree.sh"

build="$(realpath "$1")"
source_dir="$(realpath "$2")"
if ! can_hide; then
  echo "SKIPPED: cannot create a mount namespace to hide the source tree" >&2
  exit 77
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/bridgepool-install-test.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
case "$tmp/" in
  "$source_dir"/* | "$build"/*) fail "temp dir $tmp lies inside a tree to hide" ;;
esac
HIDDEN_DIRS=("$build" "$source_dir")
hide_other_installs

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log"
cp -r "$source_dir/examples/consumer" "$tmp/consumer-src"
mkdir "$tmp/run" "$tmp/pc"
echo "installed into $prefix ($(elapsed))"

# No installed text file may point back into the trees (binaries carry debug info, so -I).
if grep -rIl -e "$source_dir" -e "$build" "$prefix"; then
  fail "installed files above mention the source or build tree"
fi

# check_run OUTPUT PREFIX: the consumer's output shows its echo calls, two workers, and every
# worker's runtime under PREFIX.
check_run() {
  local out="$1" expected="$2/share/bridgepool/python/bridgepool_worker/__init__.py"
  cat "$out"
  grep -qx "consumer: ok" "$out" || fail "consumer did not report ok"
  [ "$(grep -c '^worker .* runtime ' "$out")" -eq 2 ] || fail "expected two workers"
  if grep '^worker .* runtime ' "$out" | grep -v " runtime $expected\$"; then
    fail "a worker's runtime is not $expected"
  fi
}

# 1. find_package.
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
hidden_run "$tmp" cmake -S consumer-src -B build-cmake "${generator[@]}" \
  -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/cmake.log" || { cat "$tmp/cmake.log"; fail "configure"; }
hidden_run "$tmp" cmake --build build-cmake >>"$tmp/cmake.log" ||
  { cat "$tmp/cmake.log"; fail "build with find_package"; }
hidden_run "$tmp/run" "$tmp/build-cmake/bridgepool_consumer" >"$tmp/out-cmake.txt" ||
  { cat "$tmp/out-cmake.txt"; fail "find_package consumer"; }
check_run "$tmp/out-cmake.txt" "$prefix"
echo "find_package consumer ok ($(elapsed))"

# 2. pkg-config with plain g++ (its default standard: the public headers need no more).
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
flags="$(hidden_run "$tmp" pkg-config --cflags --libs bridgepool)"
echo "pkg-config --cflags --libs bridgepool: $flags"
# shellcheck disable=SC2086  # the flags are meant to be split
hidden_run "$tmp" g++ consumer-src/main.cc -o pc/bridgepool_consumer $flags ||
  fail "build with pkg-config"
cp "$tmp/consumer-src/consumer_handlers.py" "$tmp/pc/"  # the program looks beside itself
LD_LIBRARY_PATH="$prefix/lib" hidden_run "$tmp/run" "$tmp/pc/bridgepool_consumer" \
  >"$tmp/out-pc.txt" || { cat "$tmp/out-pc.txt"; fail "pkg-config consumer"; }
check_run "$tmp/out-pc.txt" "$prefix"
echo "pkg-config consumer ok ($(elapsed))"

# 3. A relocated prefix, with the original hidden as well.
cp -a "$prefix" "$tmp/moved"
HIDDEN_DIRS+=("$prefix")
LD_LIBRARY_PATH="$tmp/moved/lib" hidden_run "$tmp/run" "$tmp/pc/bridgepool_consumer" \
  >"$tmp/out-moved.txt" || { cat "$tmp/out-moved.txt"; fail "consumer of the moved prefix"; }
check_run "$tmp/out-moved.txt" "$tmp/moved"
run_bench "$tmp/run" "$tmp/moved/bin/bridgepool" "$tmp/out-bench.txt"
echo "relocated prefix ok: consumer and the bridgepool command ($(elapsed))"

# 4. The copy's runtime made stale (another VERSION), the original prefix visible again: the
# library must refuse both (the original is another installation) and say why.
echo 0.0.0-stale >"$tmp/moved/share/bridgepool/VERSION"
unset 'HIDDEN_DIRS[-1]'
if LD_LIBRARY_PATH="$tmp/moved/lib" hidden_run "$tmp/run" "$tmp/pc/bridgepool_consumer" \
  >"$tmp/out-stale.txt" 2>&1; then
  cat "$tmp/out-stale.txt"
  fail "consumer ran with a stale runtime or with another installation's"
fi
grep -q "no Python worker runtime for library version" "$tmp/out-stale.txt" ||
  { cat "$tmp/out-stale.txt"; fail "no explanation for the missing runtime"; }
echo "stale runtime refused, original prefix not used ($(elapsed))"
echo "install test passed in $(elapsed)"
