"""Handlers for the fork-server tests (tests/integration/fork_server_test.cc).

  draw {}        {"random": random.random(), "numpy": numpy.random.rand() or None}: forked
                 workers must not share their generators' state
  fds {}         {"fds": {fd: what /proc/self/fd says}} of this worker
  family {}      {"pid", "ppid", "pgid"} of this worker
  say {text}     prints `text` on stdout and stderr, returns {}
  setting {}     the value the init command `remember` stored in this process
  remember {v}   stores v (used as an init command)
  loaded_at {}   the time.time() at which this module was imported (once per zygote)
"""

import os
import random
import sys
import time

from bridgepool_worker import command

try:
    import numpy
except ImportError:  # the numpy check is skipped where python3-numpy is missing
    numpy = None

__version__ = os.environ.get("FORK_CHECKS_VERSION", "1")
LOADED_AT = time.time()
_setting = {"value": None}


@command("draw")
def draw(args, ctx):
    return {"random": random.random(),
            "numpy": float(numpy.random.rand()) if numpy is not None else None}


@command("fds")
def fds(args, ctx):
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[name] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass  # the listing's own descriptor, closed by now
    return {"fds": out}


@command("family")
def family(args, ctx):
    return {"pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgrp()}


@command("say")
def say(args, ctx):
    print(f"out: {args['text']}", flush=True)
    print(f"err: {args['text']}", file=sys.stderr, flush=True)
    return {}


@command("remember")
def remember(args, ctx):
    _setting["value"] = args.get("v")
    return {}


@command("setting")
def setting(args, ctx):
    return {"value": _setting["value"]}


@command("loaded_at")
def loaded_at(args, ctx):
    return {"loaded_at": LOADED_AT}
