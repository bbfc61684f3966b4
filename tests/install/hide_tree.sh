# Sourced by the install tests. Runs commands in a private mount namespace in which the source
# tree, the build tree (and whatever else is listed) are empty, read-only tmpfs mounts: anything
# that still reaches into them (a compiled-in path, an include directory in an exported target, a
# runtime found through the source tree) fails, instead of passing by accident.
#
# As root, `unshare --mount`; otherwise an unprivileged user namespace (`--map-root-user`). When
# neither is allowed (a container without CAP_SYS_ADMIN and without user namespaces), the tests
# exit 77, which CTest reports as skipped: running them with the trees visible would prove
# nothing about an installation.

# can_hide: returns 0 if hidden_run can work here.
can_hide() {
  unshare --mount --propagation private true 2>/dev/null ||
    unshare --user --map-root-user --mount --propagation private true 2>/dev/null
}

# hidden_run WORKDIR COMMAND...: runs COMMAND from WORKDIR with every directory of the array
# HIDDEN_DIRS replaced by an empty tmpfs, and without the environment variables that would point
# bridgepool at a runtime. List a build tree before the source tree that contains it: the other
# order would need a mount point inside an already empty tmpfs.
hidden_run() {
  local workdir="$1"
  shift
  local ns=(unshare --mount --propagation private)
  "${ns[@]}" true 2>/dev/null || ns=(unshare --user --map-root-user --mount --propagation private)
  local hidden
  hidden="$(IFS=:; echo "${HIDDEN_DIRS[*]}")"
  # cd / before mounting and into WORKDIR after it, so no process keeps a working directory
  # inside a hidden tree (a cwd keeps the old directory reachable through relative paths).
  HIDDEN="$hidden" "${ns[@]}" \
    env -u PYTHONPATH -u BRIDGEPOOL_PYTHONPATH -u BRIDGEPOOL_HANDLERS -u BRIDGEPOOL_PYTHON \
    bash -c '
      set -euo pipefail
      workdir="$1"; shift
      IFS=: read -r -a hidden <<<"$HIDDEN"
      cd /
      for dir in "${hidden[@]}"; do
        [ -d "$dir" ] || continue  # inside a directory hidden already
        mount -t tmpfs -o ro,size=4k,mode=0555 bridgepool-hidden "$dir"
        if [ -n "$(ls -A "$dir")" ]; then echo "hide_tree: $dir still visible" >&2; exit 1; fi
      done
      cd "$workdir"
      exec "$@"' hidden_run "$workdir" "$@"
}

# fail MESSAGE: prints it and exits 1.
fail() {
  echo "FAILED: $*" >&2
  exit 1
}

# elapsed: seconds since the script started, for the step log.
elapsed() {
  echo "$SECONDS s"
}

# hide_other_installs: adds any system-wide bridgepool runtime to HIDDEN_DIRS, so a run can only
# succeed with the runtime of the installation under test.
hide_other_installs() {
  local dir
  for dir in /usr/share/bridgepool /usr/local/share/bridgepool; do
    [ -d "$dir" ] && HIDDEN_DIRS+=("$dir")
  done
  return 0
}

# run_bench WORKDIR COMMAND_PATH OUTPUT: runs `bridgepool bench` (2 workers, 200 echo requests of
# the installed example handlers) hidden, and checks every request succeeded on 2 workers.
run_bench() {
  local workdir="$1" command="$2" out="$3"
  hidden_run "$workdir" "$command" bench --workers 2 --concurrency 2 --requests 200 --json \
    >"$out" 2>&1 || { cat "$out"; fail "$command bench"; }
  tail -1 "$out" | /usr/bin/python3 -c '
import json, sys
j = json.loads(sys.stdin.read())
assert j["ok"] == 200 and j["workers"]["started"] == 2, j' || { cat "$out"; fail "bench result"; }
  head -1 "$out"
}
