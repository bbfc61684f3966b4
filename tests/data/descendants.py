"""Handlers that start processes, for the group-sentinel tests (tests/python/test_sentinel.py).

  fork_sleeper {}     os.fork(); the child sleeps 60 s (holding the inherited protocol pipes,
                      like careless handler code would); returns {"pid"}
  popen_sleeper {}    subprocess.Popen(["sleep", "60"]); returns {"pid"}
  mp_sleeper {}       a multiprocessing Process (fork context) sleeping 60 s; returns {"pid"}
  fork_and_reap {}    forks a child that exits 5 at once, reaps it; returns {"pid","status"}
  wait_any {}         os.waitpid(-1, WNOHANG): {"children": false} if this worker has no child
  group {}            {"pid","pgid"} of the worker
"""

import multiprocessing
import os
import subprocess
import time

from bridgepool_worker import command

_kept = []  # Popen/Process objects, kept so that no finaliser reaps or warns about them


@command("fork_sleeper")
def fork_sleeper(args, ctx):
    pid = os.fork()
    if pid == 0:
        try:
            time.sleep(60)
        finally:
            os._exit(0)
    return {"pid": pid}


@command("popen_sleeper")
def popen_sleeper(args, ctx):
    process = subprocess.Popen(["sleep", "60"])
    _kept.append(process)
    return {"pid": process.pid}


@command("mp_sleeper")
def mp_sleeper(args, ctx):
    process = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
    process.start()
    _kept.append(process)
    return {"pid": process.pid}


@command("fork_and_reap")
def fork_and_reap(args, ctx):
    pid = os.fork()
    if pid == 0:
        os._exit(5)
    _, status = os.waitpid(pid, 0)
    return {"pid": pid, "status": os.waitstatus_to_exitcode(status)}


@command("wait_any")
def wait_any(args, ctx):
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return {"children": False}
    return {"children": True, "exited": pid}


@command("group")
def group(args, ctx):
    return {"pid": os.getpid(), "pgid": os.getpgrp()}
