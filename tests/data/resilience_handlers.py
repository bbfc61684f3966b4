"""Handlers for the resilience integration tests (tests/integration/pool_resilience_test.cc).

State that must survive a worker's death (how many times a command ran) lives in files the
test names in the arguments, so a retry on another worker sees what the first attempt did.

  echo                 idempotent; returns its args and the worker's pid
  crash_once           idempotent; the first call (marker file absent) creates the marker and
                       exits the process; later calls answer {"pid": ...}
  crash_always         idempotent; always exits the process (a poison request)
  crash_unsafe         NOT idempotent; exits the process
  fail_retryable       NOT idempotent; counts calls in "counter"; the first "failures" calls raise
                       an exception marked retryable, then it answers {"calls": n}
  fail_deterministic   raises ValueError (not marked retryable) and counts calls in "counter"
  whoami               idempotent; {"pid": ...}
  sleep                idempotent; sleeps "seconds"

Crash loop: when the environment variable RESILIENCE_IMPORT_MARKER names a file that exists,
importing this module fails — a handler module that crash-loops on every (re)start.
"""

import os
import time

from bridgepool_worker import command

_marker = os.environ.get("RESILIENCE_IMPORT_MARKER")
if _marker and os.path.exists(_marker):
    raise ImportError(f"resilience_handlers: refusing to load while {_marker} exists")


def _bump(path: str) -> int:
    try:
        with open(path) as f:
            n = int(f.read() or "0")
    except FileNotFoundError:
        n = 0
    n += 1
    with open(path, "w") as f:
        f.write(str(n))
    return n


@command("echo", idempotent=True)
def echo(args, ctx):
    return {"args": args, "pid": os.getpid()}


@command("whoami", idempotent=True)
def whoami(args, ctx):
    return {"pid": os.getpid()}


@command("crash_once", idempotent=True)
def crash_once(args, ctx):
    marker = args["marker"]
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os._exit(3)
    return {"pid": os.getpid()}


@command("crash_always", idempotent=True)
def crash_always(args, ctx):
    os._exit(3)


@command("crash_unsafe")
def crash_unsafe(args, ctx):
    if "counter" in args:
        _bump(args["counter"])
    os._exit(3)


class Flaky(RuntimeError):
    retryable = True


@command("fail_retryable")
def fail_retryable(args, ctx):
    n = _bump(args["counter"])
    if n <= int(args.get("failures", 1)):
        raise Flaky(f"transient failure {n}")
    return {"calls": n}


@command("fail_deterministic")
def fail_deterministic(args, ctx):
    _bump(args["counter"])
    raise ValueError("bad input")


@command("sleep", idempotent=True)
def sleep(args, ctx):
    time.sleep(float(args.get("seconds", 0.1)))
    return {"slept": args.get("seconds", 0.1)}
