"""Test harness: runs a real worker process and speaks the wire protocol to it, with deadlines.

Used by tests/python and handy for poking at a worker by hand:

    from bridgepool_worker.testing import WorkerProcess

    with WorkerProcess(["examples/handlers.py"]) as worker:
        worker.handshake()
        print(worker.call("echo", {"x": 1}))

The worker gets its protocol pipes as fds 3/4 exactly as the C++ pool passes them (or, with
`default_fds=False`, on arbitrary fds named by --request-fd/--response-fd). Its stdout and
stderr go to temporary files, so a chatty handler can never block on an undrained pipe, and a
test can read what it printed. Every read has a deadline: a broken worker fails a test with
TimeoutError instead of hanging the suite.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest

from bridgepool_worker.attachments import Collector, encode_message, make_object_hook, split_frame
from bridgepool_worker.protocol import ATTACHMENTS_FLAG

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TIMEOUT = 10.0
_HEADER = struct.Struct(">I")


def _high_fd(fd: int) -> int:
    """Moves `fd` to a number >= 10 (close-on-exec), so dup2 onto 3/4 cannot clobber it."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


def frame(payload: bytes) -> bytes:
    """Length-prefixes `payload` (4-byte big-endian)."""
    return _HEADER.pack(len(payload)) + payload


def encode_request(message: object) -> bytes:
    """A request frame; one holding bytes, memoryviews or numpy arrays is an attachment frame
    (protocol 2, attachments.py)."""
    text, _, pieces = encode_message(message, Collector())
    if pieces is None:
        return frame(text)
    return b"".join(bytes(memoryview(p).cast("B")) for p in pieces)


class WorkerProcess:
    """One worker subprocess plus the test's ends of its request and response pipes.

    `command` runs another program (e.g. bench/floor_echo.py) on the same pipes instead.
    With `own_process_group` (the default, as the C++ pool does it) the worker leads its own
    process group, so its group sentinel runs; without it the worker stays in the test's group
    and starts no sentinel.
    """

    def __init__(self, handlers, worker_id: str = "w-test", *, extra_args=(), env=None,
                 default_fds: bool = True, python: str = sys.executable,
                 parent_pid_env: bool = True, start: bool = True, command=None,
                 own_process_group: bool = True):
        self.handlers = [handlers] if isinstance(handlers, str) else list(handlers)
        self.worker_id = worker_id
        self.extra_args = list(extra_args)
        self.env_overrides = dict(env or {})
        self.default_fds = default_fds
        self.python = python
        self.parent_pid_env = parent_pid_env
        self.command = list(command) if command else None  # replaces the worker command line
        self.own_process_group = own_process_group
        self.process: subprocess.Popen | None = None
        self.request_fd = -1  # our write end
        self.response_fd = -1  # our read end
        self._buffer = bytearray()
        self._next_id = 1
        self._stdout = tempfile.TemporaryFile()
        self._stderr = tempfile.TemporaryFile()
        if start:
            self.start()

    # -- lifecycle ------------------------------------------------------------------------------

    def command_line(self, child_request_fd: int = 3, child_response_fd: int = 4) -> list[str]:
        if self.command is not None:
            return list(self.command)
        cmd = [self.python, "-m", "bridgepool_worker", "--worker-id", self.worker_id]
        for spec in self.handlers:
            cmd += ["--handlers", spec]
        if not self.default_fds:
            cmd += ["--request-fd", str(child_request_fd),
                    "--response-fd", str(child_response_fd)]
        return cmd + self.extra_args

    def environment(self) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
        env.pop("BRIDGEPOOL_PARENT_PID", None)
        if self.parent_pid_env:
            env["BRIDGEPOOL_PARENT_PID"] = str(os.getpid())
        env.update(self.env_overrides)
        return env

    def start(self) -> None:
        child_in, self.request_fd = (_high_fd(fd) for fd in os.pipe())
        self.response_fd, child_out = (_high_fd(fd) for fd in os.pipe())
        default_fds, own_group = self.default_fds, self.own_process_group

        def prepare_child():  # runs in the child between fork and exec
            if own_group:
                os.setpgid(0, 0)
            if default_fds:
                os.dup2(child_in, 3)  # dup2 leaves the copies inheritable
                os.dup2(child_out, 4)

        try:
            if default_fds:
                command_line, pass_fds = self.command_line(), (3, 4)
            else:
                command_line = self.command_line(child_in, child_out)
                pass_fds = (child_in, child_out)
            self.process = subprocess.Popen(
                command_line, env=self.environment(), stdin=subprocess.DEVNULL,
                stdout=self._stdout, stderr=self._stderr, pass_fds=pass_fds,
                preexec_fn=prepare_child)
        except BaseException:
            self.close_requests()
            os.close(self.response_fd)
            self.response_fd = -1
            raise
        finally:
            os.close(child_in)
            os.close(child_out)

    @property
    def pid(self) -> int:
        return self.process.pid

    def close_requests(self) -> None:
        """Closes our end of the request pipe: the worker sees EOF."""
        if self.request_fd >= 0:
            os.close(self.request_fd)
            self.request_fd = -1

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Returns the exit code (negative: killed by that signal); TimeoutError if still alive."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"worker {self.pid} still running after {timeout}s") from None

    def kill(self) -> None:
        """SIGKILLs a running worker (its whole process group if it leads one) and reaps it."""
        if self.process is not None and self.process.poll() is None:
            try:
                if self.own_process_group:
                    os.killpg(self.process.pid, signal.SIGKILL)  # not yet reaped: id not reused
                else:
                    os.kill(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(DEFAULT_TIMEOUT)

    def close(self) -> None:
        self.kill()
        self.close_requests()
        if self.response_fd >= 0:
            os.close(self.response_fd)
            self.response_fd = -1
        self._stdout.close()
        self._stderr.close()

    def __enter__(self) -> "WorkerProcess":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- captured output -----------------------------------------------------------------------

    def stdout_text(self) -> str:
        self._stdout.seek(0)
        return self._stdout.read().decode("utf-8", "replace")

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    # -- protocol ------------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.request_fd, view):]

    def send(self, message: object) -> None:
        self.send_raw(encode_request(message))

    def request(self, command: str, args=None, *, session_id=None, deadline_ms=None,
                request_id: int | None = None) -> int:
        """Sends one request; returns its id (ids count up from 1 unless given)."""
        if request_id is None:
            request_id = self._next_id
            self._next_id += 1
        self.send({"id": request_id, "command": command, "args": args,
                   "session_id": session_id, "deadline_ms": deadline_ms})
        return request_id

    def _fill(self, need: int, deadline: float) -> bool:
        """Buffers at least `need` bytes; False on EOF. TimeoutError past the deadline."""
        while len(self._buffer) < need:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete frame from worker within the deadline "
                                   f"(have {len(self._buffer)} of {need} bytes)")
            ready, _, _ = select.select([self.response_fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self.response_fd, 1 << 20)
            if not chunk:
                return False
            self._buffer += chunk
        return True

    def read_raw(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Returns the next `count` raw bytes of the response stream (fewer only at EOF)."""
        self._fill(count, time.monotonic() + timeout)
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def recv_frame(self, timeout: float = DEFAULT_TIMEOUT) -> tuple[bool, bytes] | None:
        """(is an attachment frame, payload) of the next frame, or None on EOF."""
        deadline = time.monotonic() + timeout
        if not self._fill(4, deadline):
            return None
        header = _HEADER.unpack_from(self._buffer)[0]
        size = header & ~ATTACHMENTS_FLAG
        if not self._fill(4 + size, deadline):
            return None
        payload = bytes(self._buffer[4:4 + size])
        del self._buffer[:4 + size]
        return bool(header & ATTACHMENTS_FLAG), payload

    def recv_bytes(self, timeout: float = DEFAULT_TIMEOUT) -> bytes | None:
        """Returns the next frame's payload, or None on EOF (at a frame boundary or not)."""
        received = self.recv_frame(timeout)
        return None if received is None else received[1]

    def recv(self, timeout: float = DEFAULT_TIMEOUT) -> dict:
        """Returns the next frame decoded (attachments as memoryviews, arrays as numpy arrays);
        EOFError if the worker closed its response pipe."""
        received = self.recv_frame(timeout)
        if received is None:
            raise EOFError("worker closed its response pipe")
        attachments, payload = received
        if not attachments:
            return json.loads(payload)
        text, buffers = split_frame(bytearray(payload))
        return json.loads(text, object_hook=make_object_hook(buffers))

    def at_eof(self, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """True if the response pipe reaches EOF with no further bytes within `timeout`."""
        return self.recv_bytes(timeout) is None

    def handshake(self, timeout: float = DEFAULT_TIMEOUT) -> dict:
        message = self.recv(timeout)
        if message.get("event") != "ready":
            raise AssertionError(f"expected a ready handshake, got {message}")
        return message

    def call_stream(self, command: str, args=None, *, timeout: float = DEFAULT_TIMEOUT,
                    **kwargs) -> tuple[list, dict]:
        """Sends a request; returns (chunk values, final reply), checking every frame's id."""
        request_id = self.request(command, args, **kwargs)
        deadline = time.monotonic() + timeout
        chunks = []
        while True:
            message = self.recv(max(deadline - time.monotonic(), 0.001))
            if message.get("id") != request_id:
                raise AssertionError(f"reply id {message.get('id')} != request id "
                                     f"{request_id}: {message}")
            if "chunk" in message:
                chunks.append(message["chunk"])
                continue
            return chunks, message

    def call(self, command: str, args=None, **kwargs) -> dict:
        """Sends a request and returns its final reply (chunk frames are not expected)."""
        chunks, reply = self.call_stream(command, args, **kwargs)
        if chunks:
            raise AssertionError(f"unexpected chunk frames for {command}: {chunks}")
        return reply

    def result(self, command: str, args=None, **kwargs):
        """Calls `command` and returns its result; AssertionError if the reply is an error."""
        reply = self.call(command, args, **kwargs)
        if reply.get("ok") is not True:
            raise AssertionError(f"{command} failed: {reply}")
        return reply["result"]


def process_gone(pid: int) -> bool:
    """True if `pid` no longer exists or is a zombie (dead, waiting to be reaped by someone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # Field 3 follows the parenthesised command name, which may itself contain spaces.
            state = stat.read().rsplit(b")", 1)[1].split()[0]
        return state in (b"Z", b"X")
    except FileNotFoundError:
        return True
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


def wait_until(predicate, timeout: float, interval: float = 0.005) -> bool:
    """Polls `predicate` until it is true or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(interval)


class WorkerTestCase(unittest.TestCase):
    """A TestCase whose workers are always killed and closed when the test ends.

    Subclasses set `handlers` (a path or module, or a list) as the default for start()/ready().
    """

    handlers = None

    def start(self, handlers=None, **kwargs) -> WorkerProcess:
        """Starts a worker; the handshake is left unread."""
        worker = WorkerProcess(handlers if handlers is not None else self.handlers, **kwargs)
        self.addCleanup(worker.close)
        return worker

    def ready(self, handlers=None, **kwargs) -> WorkerProcess:
        """Starts a worker and reads its `ready` handshake."""
        worker = self.start(handlers, **kwargs)
        worker.handshake()
        return worker

    def assertError(self, reply: dict, error_type: str, request_id: int | None = None) -> dict:
        """Asserts `reply` is ok:false with this error type (and id); returns its error."""
        self.assertIs(reply.get("ok"), False, reply)
        error = reply["error"]
        self.assertEqual(error["type"], error_type, reply)
        self.assertEqual(set(error), {"type", "message", "traceback", "retryable"}, reply)
        if request_id is not None:
            self.assertEqual(reply["id"], request_id, reply)
        return error
