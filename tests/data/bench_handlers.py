"""Handlers for the `bridgepool bench` tests (tests/integration/cli_bench_test.cc).

The tests send SIGINT/SIGTERM to the bench process and then check that no process it caused is
left alive: the workers, and the helper processes their handlers started. Every process this
module starts is recorded as a line "<worker pid> <helper pid>" in the file named by the
environment variable BENCH_INTERRUPT_PIDS, so the test knows what to look for.

  spawn_sleeper   idempotent; starts `sleep 60` (in the worker's process group, like any helper
                  process a handler might start), records it, then sleeps args["hold_ms"] (default
                  0) before answering, so a request can be in flight when the signal arrives;
                  answers {"worker": pid, "helper": pid}
  fail_odd        not idempotent; raises ValueError on the 1st, 3rd, 5th ... call this worker
                  serves and answers {"n": n} on the others: half the requests of a one-worker
                  run fail, deterministically

Slow start-up: when BENCH_INTERRUPT_SLOW_IMPORT_S is set, importing the module starts and records
a `sleep 60` helper and then sleeps that many seconds, so the pool's start-up can be interrupted
while the workers are still importing.
"""

import os
import subprocess
import time

from bridgepool_worker import command

_PIDS = os.environ.get("BENCH_INTERRUPT_PIDS")


def _start_helper() -> int:
    helper = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if _PIDS:
        # One short write per line with O_APPEND: lines from concurrent workers do not interleave.
        fd = os.open(_PIDS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getpid()} {helper.pid}\n".encode())
        finally:
            os.close(fd)
    return helper.pid


_slow = os.environ.get("BENCH_INTERRUPT_SLOW_IMPORT_S")
if _slow:
    _start_helper()
    time.sleep(float(_slow))


@command("spawn_sleeper", idempotent=True)
def spawn_sleeper(args, ctx):
    helper = _start_helper()
    time.sleep(float(args.get("hold_ms", 0)) / 1000.0)
    return {"worker": os.getpid(), "helper": helper}


_calls = 0


@command("fail_odd")
def fail_odd(args, ctx):
    global _calls
    _calls += 1
    if _calls % 2 == 1:
        raise ValueError(f"call {_calls} is odd")
    return {"n": _calls}
