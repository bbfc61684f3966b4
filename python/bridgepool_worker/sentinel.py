"""The group sentinel: ends every process a worker leaves behind, however the worker died.

A worker leads its own process group (the pool spawns it with pgid == pid). Processes that
handlers start (os.fork, subprocess, multiprocessing) join that group, but when the worker dies
they are re-parented and live on. The pool kills the group when it reaps a worker, and the
worker's PR_SET_PDEATHSIG kills the worker when the host dies — but after a SIGKILLed host
nobody reaps anything, so the handlers' children would survive as orphans (SPEC §11.7).

The sentinel is a small separate process in the worker's group that holds a pidfd of the worker
and blocks in poll() on it. The pidfd becomes readable when the worker exits for any reason
(SIGKILL from the pool, the parent-death signal, a crash, a normal exit after EOF or
`shutdown`); the sentinel then sends SIGKILL to the whole group, which ends itself too.

How it starts (`start_group_sentinel`, before the handler modules are imported):
  1. The worker opens a pidfd on itself, so the sentinel watches the right process by
     construction: no getppid() re-check, no window in which the worker is already dead (if it
     dies before the sentinel runs, the pidfd is readable at once and the group is killed).
  2. posix_spawn (vfork: no page tables copied) runs this file as a script in a fresh, small
     interpreter — `python3 -I -S sentinel.py --launch PGID` (-I -S: no site, no environment) —
     with the pidfd on fd 3, a pipe on fd 4 and /dev/null on 0-2. No shell is involved (argv
     vectors only, SPEC §8). That launcher forks once (cheap: a bare interpreter, not the
     worker), writes the child's pid to the pipe and exits; the child, now re-parented away
     from the worker, is the sentinel.
  3. After importing the handler modules the worker reaps the launcher (long gone by then) and
     reads the sentinel's pid for `get_stats`.

Why not os.fork() a copy of the worker, as a child with PR_SET_PDEATHSIG:
  * fork() write-protects every page of the worker; each page the worker then writes (Python
    writes reference counts everywhere) costs a copy-on-write fault while the copy lives.
    Measured: +4 to +7 ms of worker CPU during handler import alone. posix_spawn costs the
    worker about 0.3 ms; the sentinel's own start (~10-20 ms CPU) runs in another process.
  * The sentinel is not a child of the worker. Handler code that waits for "all my children"
    (os.wait() until ChildProcessError) or lists them (ps --ppid, psutil) sees exactly the
    children it started; a child sentinel would make such a wait block forever.
  * A pidfd tracks the process, not the thread that forked (PR_SET_PDEATHSIG fires when that
    *thread* exits), and an exec() by the worker does not trigger it.

Safety: the group id cannot be reused while the sentinel lives, because the sentinel is itself a
member of the group (Linux keeps a pid number allocated while any process uses it as its process
group). The sentinel kills only after the pidfd said the worker exited; if anything goes wrong
while it sets itself up it exits without killing. It is not started when the worker does not
lead its own group: killing the group would then hit whoever started us.

It holds no descriptor but the pidfd (the protocol pipes are close-on-exec, the rest it closes),
so the pool's EOF detection is unaffected and it can never be taken for a protocol peer. It
ignores SIGINT, SIGTERM and SIGHUP: its life is tied to the worker's, not to terminal or group
signals. In `ps` it shows as `python3 -I -S .../bridgepool_worker/sentinel.py --launch <worker
pid>` (it is the launcher's forked child).

Limits: a process that leaves the group (setsid(), setpgid(), a daemonising double fork) is not
covered. A sentinel killed from outside (e.g. by the OOM killer) leaves no guard. Needs Linux
5.3+ and Python 3.9+ (os.pidfd_open); elsewhere no sentinel is started.
"""

from __future__ import annotations

import os
import select
import signal
import sys

class StartedSentinel:
    """A sentinel whose launcher may not have been reaped yet.

    `pid()` reaps the launcher and returns the sentinel's pid. The runtime calls it after
    importing the handler modules, by when the launcher has long exited, so start-up never
    waits.
    """

    def __init__(self, launcher: int, read_end: int) -> None:
        self._launcher = launcher
        self._read_end = read_end
        self._pid: int | None = None

    def pid(self) -> int | None:
        """Returns the sentinel's pid, or None if the launcher could not start it. Never raises."""
        if self._read_end < 0:
            return self._pid
        data = b""
        try:
            os.waitpid(self._launcher, 0)
            data = os.read(self._read_end, 32)  # written before the launcher exited
        except OSError as exc:
            _warn(f"cannot learn its pid: {exc}")
        finally:
            os.close(self._read_end)
            self._read_end = -1
        try:
            self._pid = int(data)
        except ValueError:
            _warn(f"the launcher did not report a pid ({data[:40]!r})")
        return self._pid


def start_group_sentinel() -> StartedSentinel | None:
    """Starts the sentinel for this process's group; returns a handle, or None if none started.

    Call before handler modules are imported, and call `pid()` on the handle before serving
    requests (it reaps a child of this process). None means: no pidfd_open (not Linux 5.3+ /
    Python 3.9+), this process does not lead its own group, or a system call failed (then a
    line goes to stderr). Never raises.
    """
    if not hasattr(os, "pidfd_open") or not sys.executable:
        return None
    worker = os.getpid()
    if os.getpgrp() != worker:
        return None
    opened = []
    try:
        import fcntl

        # Everything above fd 4 and close-on-exec, so that the dup2s below onto 0-4 never
        # clobber a source (with --request-fd elsewhere, 3 and 4 may be free).
        def high(fd: int) -> int:
            opened.append(fd)
            moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5)
            opened[-1] = moved
            os.close(fd)
            return moved

        watch = high(os.pidfd_open(worker))
        read_end, write_end = (high(fd) for fd in os.pipe())
        launcher = os.posix_spawn(
            sys.executable, [sys.executable, "-I", "-S", os.path.abspath(__file__), "--launch",
                             str(worker)],
            os.environ,
            file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                          (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                          (os.POSIX_SPAWN_DUP2, 1, 2),
                          (os.POSIX_SPAWN_DUP2, watch, 3),
                          (os.POSIX_SPAWN_DUP2, write_end, 4)])
    except (OSError, ImportError, AttributeError) as exc:
        _warn(f"cannot start it: {exc}")
        for fd in opened:
            os.close(fd)
        return None
    os.close(watch)
    os.close(write_end)
    return StartedSentinel(launcher, read_end)


def _warn(message: str) -> None:
    try:
        sys.stderr.write(f"bridgepool_worker: no group sentinel ({message}); processes started "
                         f"by handlers may outlive this worker\n")
    except (OSError, ValueError, AttributeError):
        pass


# --------------------------------------------------------------------------------------------
# The sentinel process itself: `python3 -I -S sentinel.py <pgid>`, the worker's pidfd on fd 3.
# --------------------------------------------------------------------------------------------


def watch_and_kill(group: int, pidfd: int = 3) -> None:  # never returns
    """Waits until the process behind `pidfd` exits, then SIGKILLs process group `group`."""
    try:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        # Whatever a careless launcher left open (the pid pipe is closed already).
        os.closerange(pidfd + 1, max(os.sysconf("SC_OPEN_MAX"), 1024))
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        while not poller.poll():  # no timeout: returns once the worker has exited
            pass
    except BaseException:
        os._exit(1)  # no guard from now on, but never a kill while the worker may be alive
    try:
        os.killpg(group, signal.SIGKILL)  # the group's leftovers and this process
    finally:
        os._exit(0)


def launch(group: int, pidfd: int = 3, pid_pipe: int = 4) -> None:  # never returns
    """The launcher: forks the sentinel, reports its pid on `pid_pipe`, exits.

    The fork re-parents the sentinel away from the worker (to init or the nearest subreaper)
    once this process exits, so the worker's own children are exactly those its handlers start.
    """
    try:
        child = os.fork()
    except OSError:
        os._exit(1)
    if child == 0:
        os.close(pid_pipe)
        watch_and_kill(group, pidfd)
    try:
        os.write(pid_pipe, str(child).encode())
    finally:
        os._exit(0)


if __name__ == "__main__":
    args = sys.argv[1:]
    launching = bool(args) and args[0] == "--launch"
    if launching:
        args = args[1:]
    try:
        _group = int(args[0])
    except (IndexError, ValueError):
        os._exit(2)
    if _group <= 1 or os.getpgrp() != _group:
        os._exit(2)  # not inside the group it was asked to guard: do nothing
    if launching:
        launch(_group)
    watch_and_kill(_group)
