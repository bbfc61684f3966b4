"""The fork server ("zygote"): loads the handler modules once, then forks ready workers.

`python3 -m bridgepool_worker --zygote --handlers ... --parent-pid P ...` is started by the
pool (src/process/fork_server.cc) with a SOCK_SEQPACKET unix socket on fd 3 and pipes on 1/2.
It imports the runtime and the handler modules, tells the pool how that went, and from then on
only forks: each new worker is an os.fork() of this already-loaded interpreter, so it is ready
in milliseconds however long the imports took, and shares the zygote's memory copy-on-write.

Messages on the socket, one JSON object per datagram (descriptors ride along as SCM_RIGHTS):
  zygote -> pool  {"event": "ready", "pid": P, "native_threads": N}   loaded; forks from now on
                  {"event": "init_failed", "error": {...}}             an import failed; exits 3
                  {"event": "unsafe", "reason": "..."}                 threads at import; exits 0
                  {"event": "forked", "pid": P} + [pidfd]              answer to a fork request
                  {"event": "fork_failed", "message": "..."}           os.fork() failed
                  {"event": "exited", "pid": P, "code": C | "signal": S}
                                                                       a worker was reaped
  pool -> zygote  {"op": "fork", "args": ["--worker-id", "w7"]} + [request read end, response
                  write end, stdout write end, stderr write end]

Why each step:
  * Threads and sockets: os.fork() copies only the calling thread. A handler module that
    started threads at import (a background loader, a client with a heartbeat) would give every
    worker a copy whose threads are gone and whose locks may be held forever; one that opened a
    socket at import (a database or HTTP connection) would have every worker talk over that one
    connection. The zygote refuses to fork then ("unsafe"), and the pool starts that
    generation's workers with spawn and says so. Native
    threads of C libraries (OpenBLAS) are not Python threads: those libraries register
    pthread_atfork handlers and are counted only for the log (`native_threads`).
  * Reaping: workers are the zygote's children, so it reaps them. On SIGCHLD it looks at each
    exited child without reaping it (waitid WNOWAIT), SIGKILLs the child's process group while
    the dead leader still reserves the group id (what handlers started dies with the worker),
    then reaps it and reports the status, which the pool gives back as the worker's exit status.
  * Host death: the zygote has PR_SET_PDEATHSIG (the runtime sets it first thing). A forked
    worker must not die with the zygote (a replaced zygote leaves its workers serving), so it
    watches the host instead: the zygote opened a pidfd on the host after checking getppid(),
    and each worker blocks a small thread in poll() on it; when the host dies the worker kills
    its own process group. The host's death also closes the worker's pipes, and the EOF may
    win the race with that thread: a worker leaving after EOF without `shutdown` first waits
    up to 200 ms for the host pidfd and, if the host is gone, kills its group the same way.
  * Descriptors: the zygote holds only fds 0-3, its wake-up pipe and the host pidfd. A worker
    closes everything but its five stdio/protocol fds and the host pidfd (fd 5) right after the
    fork, so neither the socket nor another worker's pipes reach it.
  * Randomness: `random` re-seeds itself in a forked child (os.register_at_fork); numpy's
    global generator does not, so the child re-seeds it when numpy.random is loaded. Otherwise
    every worker would draw the same "random" numbers.
  * Memory: gc.freeze() before serving moves everything loaded into a permanent generation, so
    the collector does not touch (and copy-on-write fault) those pages in every worker.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import socket
import sys
import threading
import traceback

from bridgepool_worker.loader import HandlerLoader
from bridgepool_worker.protocol import EXIT_INIT_FAILED, EXIT_OK
from bridgepool_worker.runtime import (
    _exit,
    _message_of,
    load_handlers,
    parse_args,
    prepare_protocol_fds,
    serve_worker,
)

CONTROL_FD = 3
HOST_PIDFD = 5  # where a forked worker keeps the host pidfd
_MAX_MESSAGE = 64 * 1024
_CHILD_FDS = 4  # request read, response write, stdout write, stderr write


class ForkServer:
    """The zygote's state: its socket, the host pidfd, the wake-up pipe and its children."""

    def __init__(self, control: socket.socket, host_pidfd: int, base_args: list[str]) -> None:
        self.control = control
        self.host_pidfd = host_pidfd
        self.base_args = base_args
        self.children: set[int] = set()
        self.wake_read, self.wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def send(self, message: dict, fds: list[int] | None = None) -> None:
        data = json.dumps(message).encode()
        if fds:
            socket.send_fds(self.control, [data], fds)
        else:
            self.control.send(data)

    def serve(self) -> None:  # never returns
        """Forks on request and reaps on SIGCHLD until the pool closes the socket."""
        signal.signal(signal.SIGCHLD, lambda signo, frame: None)
        signal.set_wakeup_fd(self.wake_write)
        poller = select.poll()
        poller.register(self.control.fileno(), select.POLLIN)
        poller.register(self.wake_read, select.POLLIN)
        while True:
            self.reap_children()
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            for fd, _ in events:
                if fd == self.wake_read:
                    self._drain_wakeups()
                elif not self.handle_request():
                    self._finish()

    def handle_request(self) -> bool:
        """One request from the pool; False when the pool closed the socket."""
        try:
            data, fds, _, _ = socket.recv_fds(self.control, _MAX_MESSAGE, _CHILD_FDS)
        except InterruptedError:
            return True
        except OSError:
            return False
        if not data:
            for fd in fds:
                os.close(fd)
            return False
        try:
            request = json.loads(data)
            args = [str(a) for a in request["args"]]
            if request.get("op") != "fork" or len(fds) != _CHILD_FDS:
                raise ValueError(f"expected a fork request with {_CHILD_FDS} descriptors")
        except (ValueError, KeyError, TypeError) as exc:
            for fd in fds:
                os.close(fd)
            self.send({"event": "fork_failed", "message": f"bad request: {exc}"})
            return True
        self.fork_worker(args, fds)
        return True

    def fork_worker(self, args: list[str], fds: list[int]) -> None:
        for stream in (sys.stdout, sys.stderr):  # or the child would write our buffer again
            stream.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            self.send({"event": "fork_failed", "message": f"fork: {exc.strerror}"})
            return
        if pid == 0:
            self._become_worker(args, fds)  # never returns
        for fd in fds:
            os.close(fd)
        self.children.add(pid)
        # The pid is ours and not reaped yet (reaping happens on this thread), so it cannot
        # have been reused: the pidfd names this worker.
        pidfd = os.pidfd_open(pid)
        try:
            self.send({"event": "forked", "pid": pid}, [pidfd])
        finally:
            os.close(pidfd)

    def reap_children(self) -> None:
        """Kills the group of, reaps and reports every child that has exited."""
        while self.children:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            pid = info.si_pid
            try:  # the zombie leader still reserves the group id
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            _, status = os.waitpid(pid, 0)
            self.children.discard(pid)
            report = {"event": "exited", "pid": pid}
            if os.WIFSIGNALED(status):
                report["signal"] = os.WTERMSIG(status)
            else:
                report["code"] = os.waitstatus_to_exitcode(status)
            try:
                self.send(report)
            except OSError:
                pass  # the pool is gone; keep reaping

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self.wake_read, 512):
                pass
        except BlockingIOError:
            pass

    def _finish(self) -> None:  # never returns
        """The pool closed the socket: it is gone or done with us. Workers still running are
        on their own (they watch the host); exit without waiting for them."""
        _exit(EXIT_OK)

    def _become_worker(self, args: list[str], fds: list[int]) -> None:  # never returns
        """In the forked child: this process's own descriptors, signals and group, then serve."""
        try:
            self.control.detach()  # its fd number is about to be reused: never close it
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.setpgid(0, 0)
            _install_fds(fds, self.host_pidfd)
            _reseed_numpy()
            _watch_host(HOST_PIDFD)
            options = parse_args(self.base_args + args)
            prepare_protocol_fds(options.request_fd, options.response_fd)
            serve_worker(options, _LOADER, sentinel_pid=None, before_exit=_end_group_if_host_died)
        except BaseException:
            try:
                traceback.print_exc()
            finally:
                _exit(EXIT_INIT_FAILED)


_LOADER = HandlerLoader()


def _install_fds(fds: list[int], host_pidfd: int) -> None:
    """0 = /dev/null, 1/2 = this worker's output pipes, 3/4 = its protocol pipes, 5 = the host
    pidfd; everything else closed (the zygote's socket and pipes, other workers' nothing)."""
    # Every source above the targets first, so that no dup2 below overwrites one still needed.
    request, response, out, err, host = (_dup_high(fd) for fd in (*fds, host_pidfd))
    devnull = os.open(os.devnull, os.O_RDONLY)
    for source, target in ((devnull, 0), (out, 1), (err, 2), (request, 3), (response, 4)):
        os.dup2(source, target)
    os.dup2(host, HOST_PIDFD, inheritable=False)  # a subprocess must not get it
    os.closerange(HOST_PIDFD + 1, _max_fd())


def _dup_high(fd: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (OSError, ValueError):
        return 65536


def _reseed_numpy() -> None:
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()  # fresh entropy from the OS for the legacy global generator


def _watch_host(host_pidfd: int) -> None:
    """A daemon thread that kills this worker's group when the host exits."""

    def watch() -> None:
        try:
            select.select([host_pidfd], [], [])
        except OSError:
            return
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="bridgepool-host-watch", daemon=True).start()


# How long a worker that saw EOF without `shutdown` waits to learn whether its host is dying: a
# dying process closes its descriptors a moment before its pidfd becomes readable.
_HOST_DEATH_PATIENCE_S = 0.2


def _end_group_if_host_died(runtime) -> None:
    """A worker leaving after EOF (not `shutdown`) may be leaving because its host died; then
    nobody else will end what its handlers started (the zygote died with the host), so it kills
    its own group, itself included. A living host never waits: `shutdown` comes first."""
    patience = 0.0 if runtime.stopping else _HOST_DEATH_PATIENCE_S
    try:
        dead, _, _ = select.select([HOST_PIDFD], [], [], patience)
    except OSError:
        return
    if dead:
        os.killpg(0, signal.SIGKILL)


def serve_forks(options, base_args: list[str]) -> None:  # never returns
    """The zygote's main: check the host, load the handlers, report, then fork on request."""
    try:
        control = socket.socket(fileno=CONTROL_FD)
    except OSError as exc:
        sys.stderr.write(f"bridgepool_worker: --zygote needs its control socket on fd "
                         f"{CONTROL_FD}: {exc.strerror}\n")
        _exit(2)
    host_pidfd = os.pidfd_open(os.getppid())
    if options.parent_pid is not None and os.getppid() != options.parent_pid:
        _exit(EXIT_OK)  # the host died between the check in main() and pidfd_open
    server = ForkServer(control, host_pidfd, base_args)

    def failed(spec: str, exc: BaseException) -> None:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        message = f"cannot load handlers {spec!r}: {type(exc).__name__}: {_message_of(exc)}"
        sys.stderr.write(text)
        server.send({"event": "init_failed",
                     "error": {"type": type(exc).__name__, "message": message,
                               "traceback": text, "retryable": None}})
        _exit(EXIT_INIT_FAILED)

    sockets_before = _socket_fds()
    load_handlers(_LOADER, options.handlers, failed)
    reason = _fork_hazard(_socket_fds() - sockets_before)
    if reason is not None:
        server.send({"event": "unsafe", "reason": reason})
        _exit(EXIT_OK)
    gc.freeze()
    server.send({"event": "ready", "pid": os.getpid(), "native_threads": _native_threads()})
    server.serve()


def _socket_fds() -> set[int]:
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                found.add(int(name))
        except OSError:
            continue  # the listing's own descriptor, closed by now
    return found


def _fork_hazard(new_sockets: set[int]) -> str | None:
    """Why forking this process would be wrong, or None: Python threads the handler modules
    started (a child gets none of them, and the locks they held stay held), or sockets they
    opened (every worker would share one connection: interleaved bytes, stolen replies)."""
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if threads:
        return (f"the handler modules started {len(threads)} thread(s) at import "
                f"({', '.join(sorted(threads)[:5])}); a forked worker would get none of them")
    if new_sockets:
        return (f"the handler modules opened {len(new_sockets)} socket(s) at import (fd "
                f"{', '.join(map(str, sorted(new_sockets)[:5]))}); forked workers would share "
                f"them")
    return None


def _native_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1
