"""The worker process: start-up, handler loading and the request loop (SPEC §2–§4).

Start-up order matters and each step says why:
  1. prctl(PR_SET_PDEATHSIG, SIGKILL), then compare getppid() with the expected parent: the
     kernel kills us if the pool dies, and the re-check catches a pool that died before prctl.
  2. Ignore SIGINT, so a Ctrl-C in the host's terminal reaches only the host.
  3. Check fds 3/4 and make them close-on-exec, so a subprocess started by user code cannot
     hold the protocol pipes open after this worker dies (the pool would miss the EOF).
  4. Start the group sentinel (sentinel.py) if we lead our own process group: when this process
     dies, however, it SIGKILLs the group, so nothing a handler started survives us.
  5. Import the handler modules, each file once (loader.py); any failure becomes an
     `init_failed` frame and exit code 3.
  6. Send the `ready` handshake and serve requests until EOF (exit 0), `shutdown` (exit 0),
     a handler's sys.exit(code) (answered, then exit code), or an oversized frame (exit 4: the
     stream can no longer be trusted).

The request loop (`Runtime.serve`) is the latency-critical path measured against
bench/floor_echo.py: two reads, one json.loads, a dict lookup, the call, one encode, one write.
Everything unusual (short reads, errors, streaming, a pending `shutdown` or worker_unhealthy
mark) leaves the loop for a method; the one flag the loop tests for the last two, `attention`,
replaced the `stopping` test it had before, so a call that marks nothing costs nothing more.
"""

from __future__ import annotations

import gc
import json
import os
import re
import signal
import sys
import time
import types
from types import GeneratorType

from bridgepool_worker.attachments import (
    AttachmentError,
    Collector,
    encode_message,
    frame_pieces,
    make_object_hook,
    split_frame,
)
from bridgepool_worker.batch import close_quietly, run_batch, single_call_of
from bridgepool_worker.builtin_commands import BuiltinCommands, uptime_since
from bridgepool_worker.context import Context
from bridgepool_worker.loader import HandlerLoader, load_handler_module  # noqa: F401 (re-export)
from bridgepool_worker.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_REQUEST_FD,
    DEFAULT_RESPONSE_FD,
    ENCODE_ERRORS,
    EXIT_INIT_FAILED,
    EXIT_OK,
    EXIT_PROTOCOL,
    EXIT_USAGE,
    ATTACHMENTS_FLAG,
    HEADER,
    MAX_FRAME_LIMIT,
    PROTOCOL_VERSION,
    U64_MAX,
    encode_frame,
    encode_json,
    make_chunk_encoder,
    read_exact,
    write_all,
    writev_all,
)
from bridgepool_worker.registry import BUILTIN_COMMANDS, Registry, default_registry
from bridgepool_worker.sentinel import start_group_sentinel

# Error texts are capped so that one huge exception message cannot produce a reply frame larger
# than the pool accepts (64 KiB + 256 KiB is far below the 64 MiB default).
_MAX_MESSAGE_CHARS = 64 * 1024
_MAX_TRACEBACK_CHARS = 256 * 1024
# A `worker_unhealthy` reason is a short diagnosis ("CUDA out of memory"), logged by the pool.
MAX_UNHEALTHY_CHARS = 1024

# The pool writes every request as {"id":<u64>,"command":... with the id first. When a body
# cannot be parsed, `_leading_id` reads the id from its first bytes so that the error reply
# still answers the right request. Bounded work: at most _ID_WINDOW bytes are looked at, by an
# anchored pattern without nested repetition (linear time); digits are capped at 20 (u64).
# Compiled (and cached by `re`) on first use, not at start-up: it is rarely needed.
_ID_WINDOW = 256
_LEADING_ID = (
    rb'[ \t\n\r]*\{[ \t\n\r]*"id"[ \t\n\r]*:[ \t\n\r]*(0|[1-9][0-9]{0,19})[ \t\n\r]*[,}]')


# What _read_attachment_request returns when the pool closed the request pipe.
EOF = object()


class UsageError(Exception):
    """Bad command line or missing protocol fds (exit code 2)."""


# --------------------------------------------------------------------------------------------
# Start-up helpers
# --------------------------------------------------------------------------------------------


# (flag, attribute, type or None for a switch, repeatable, default). Parsed by hand: argparse
# (and the gettext it imports) cost a worker ~1 ms of its start-up for this fixed command line.
_OPTIONS = (
    ("--handlers", "handlers", str, True, None),
    ("--worker-id", "worker_id", str, False, None),
    ("--zygote", "zygote", None, False, False),
    ("--parent-pid", "parent_pid", int, False, None),
    ("--request-fd", "request_fd", int, False, DEFAULT_REQUEST_FD),
    ("--response-fd", "response_fd", int, False, DEFAULT_RESPONSE_FD),
    ("--max-frame-bytes", "max_frame_bytes", int, False, DEFAULT_MAX_FRAME_BYTES),
    ("--version-tag", "version_tag", str, False, None),
)
_USAGE = ("usage: python3 -m bridgepool_worker --handlers PATH_OR_MODULE [--handlers ...] "
          "(--worker-id ID | --zygote) [--parent-pid PID] [--request-fd FD] [--response-fd FD] "
          "[--max-frame-bytes N] [--version-tag TAG]\n"
          "Serves length-prefixed JSON requests on fds 3/4; with --zygote, forks such workers "
          "on request (zygote.py). --parent-pid defaults to $BRIDGEPOOL_PARENT_PID.\n")


def _read_options(argv: list[str]) -> types.SimpleNamespace:
    """The options of `argv` with their defaults; UsageError for anything else."""
    table = {flag: (attr, kind, many) for flag, attr, kind, many, _ in _OPTIONS}
    options = types.SimpleNamespace(**{attr: default for _, attr, _, _, default in _OPTIONS})
    i = 0
    while i < len(argv):
        flag, eq, inline = argv[i].partition("=")
        if flag in ("-h", "--help"):
            sys.stdout.write(_USAGE)
            raise SystemExit(0)
        if flag not in table:
            raise UsageError(f"unrecognized arguments: {' '.join(argv[i:])}")
        attr, kind, many = table[flag]
        i += 1
        if kind is None:
            setattr(options, attr, True)
            continue
        if not eq:
            if i >= len(argv):
                raise UsageError(f"argument {flag}: expected one argument")
            inline, i = argv[i], i + 1
        try:
            value = kind(inline)
        except ValueError:
            raise UsageError(f"argument {flag}: invalid int value: {inline!r}") from None
        if many:
            setattr(options, attr, (getattr(options, attr) or []) + [value])
        else:
            setattr(options, attr, value)
    return options


def parse_args(argv: list[str] | None) -> types.SimpleNamespace:
    """Parses the command line; raises UsageError with a one-line reason."""
    options = _read_options(sys.argv[1:] if argv is None else list(argv))
    if not options.handlers:
        raise UsageError("the following arguments are required: --handlers")
    if options.worker_id is None and not options.zygote:
        raise UsageError("the following arguments are required: --worker-id")
    if options.parent_pid is None:
        env_pid = os.environ.get("BRIDGEPOOL_PARENT_PID")
        if env_pid:
            try:
                options.parent_pid = int(env_pid)
            except ValueError:
                raise UsageError(f"BRIDGEPOOL_PARENT_PID is not a pid: {env_pid!r}") from None
    if not 1 <= options.max_frame_bytes <= MAX_FRAME_LIMIT:  # 31 bits of the header
        raise UsageError(f"--max-frame-bytes must be in [1, {MAX_FRAME_LIMIT}], "
                         f"got {options.max_frame_bytes}")
    if options.request_fd == options.response_fd:
        raise UsageError("--request-fd and --response-fd must differ")
    return options


def set_parent_death_signal() -> bool:
    """Asks the kernel to SIGKILL us when our parent dies; returns whether that worked.

    Caveat for the pool: the signal fires when the *thread* that spawned us exits, not the
    process, so workers must be spawned from a thread that lives as long as the pool.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1  # <linux/prctl.h>
        # prctl is variadic and takes unsigned longs: pass c_ulong so that no 32-bit int with
        # undefined upper register bits reaches the kernel.
        zero = ctypes.c_ulong(0)
        rc = libc.prctl(ctypes.c_int(pr_set_pdeathsig), ctypes.c_ulong(signal.SIGKILL),
                        zero, zero, zero)
        return rc == 0
    except (OSError, AttributeError):
        return False


def prepare_protocol_fds(request_fd: int, response_fd: int) -> None:
    """Checks the protocol fds are open; makes them close-on-exec and blocking."""
    for fd, role in ((request_fd, "request"), (response_fd, "response")):
        try:
            os.fstat(fd)
        except OSError as exc:
            raise UsageError(
                f"{role} fd {fd} is not open ({exc.strerror}); bridgepool_worker must be "
                f"started by a pool that passes its request/response pipes as fds "
                f"{DEFAULT_REQUEST_FD}/{DEFAULT_RESPONSE_FD}"
            ) from None
        # Not inheritable: a grandchild holding the response pipe would keep the pool from
        # seeing EOF when we die; one holding the request pipe would hide EPIPE from it.
        os.set_inheritable(fd, False)
        # Blocking: if the pool created the pipes with O_NONBLOCK, our ends would inherit it
        # and every read would raise BlockingIOError instead of waiting.
        os.set_blocking(fd, True)


def make_stdout_line_buffered() -> None:
    """stdout is a pipe to the pool's log capture; line buffering makes each print() arrive
    promptly (stderr is line-buffered already since Python 3.9)."""
    stream = sys.stdout
    if stream is not None and hasattr(stream, "reconfigure"):
        try:
            stream.reconfigure(line_buffering=True)
        except (OSError, ValueError):
            pass


def handlers_version_of(modules: list, version_tag: str | None) -> str | None:
    """`__version__` of the handler modules ('+'-joined if several), else the tag, else None."""
    versions = [str(m.__version__) for m in modules if getattr(m, "__version__", None) is not None]
    if versions:
        return "+".join(versions)
    return version_tag


def _send_best_effort(fd: int, message: dict) -> None:
    try:
        write_all(fd, encode_frame(message))
    except OSError:
        pass  # nobody is listening; the exit code still tells the story


def fail_init(response_fd: int, spec: str, exc: BaseException) -> None:  # never returns
    """Reports a handler import failure as `init_failed` on fd 4 and stderr; exits 3."""
    import traceback  # only on this failure path: it costs every worker ~1.5 ms to import

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    message = f"cannot load handlers {spec!r}: {type(exc).__name__}: {_message_of(exc)}"
    try:
        sys.stderr.write(text)
        sys.stderr.write(f"bridgepool_worker: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
    _send_best_effort(response_fd, {
        "id": 0,
        "event": "init_failed",
        "error": {"type": type(exc).__name__, "message": message, "traceback": text,
                  "retryable": None},
    })
    _exit(EXIT_INIT_FAILED)


def _exit(code: int) -> None:  # never returns
    """Flushes user output, then leaves without waiting for anything else.

    os._exit rather than sys.exit: a non-daemon thread started by user code must not keep a
    worker alive after EOF or `shutdown` (an orphan spinning forever is SPEC §11.7). The cost
    is that atexit hooks do not run.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    # Under scripts/coverage (coverage.py started in this process): os._exit skips the atexit
    # hook that would save the measurement, so save it here. Never loads coverage itself.
    coverage = sys.modules.get("coverage")
    if coverage is not None:
        try:
            measurement = coverage.Coverage.current()
            if measurement is not None:
                measurement.stop()
                measurement.save()
        except Exception:  # a coverage problem must not change how a worker exits
            pass
    os._exit(code)


# --------------------------------------------------------------------------------------------
# Error replies
# --------------------------------------------------------------------------------------------


def _message_of(exc: BaseException) -> str:
    """str(exc), except that a KeyError's single string argument is given without the quotes
    str() adds (KeyError("program not found: p") → "program not found: p")."""
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__} object>"


def _capped(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"... [truncated {len(text) - limit} characters]"


def _retryable_of(exc: BaseException) -> bool | None:
    try:
        value = getattr(exc, "retryable", None)
    except Exception:
        return None
    return value if type(value) is bool else None


def _leading_id(body) -> int | None:
    """The request id written first in `body` (bytes or bytearray), or None; never raises."""
    try:
        match = re.match(_LEADING_ID, bytes(body[:_ID_WINDOW]))
        if match is None:
            return None
        rid = int(match.group(1))
        return rid if rid <= U64_MAX else None
    except Exception:
        return None


def _unparsable_reason(exc: BaseException) -> str:
    """Why json.loads(body.decode()) failed, for the error message."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, UnicodeDecodeError):
        try:
            byte = exc.object[exc.start]
            return f"not valid UTF-8 (byte 0x{byte:02x} at offset {exc.start}: {exc.reason})"
        except Exception:
            return "not valid UTF-8"
    return f"not valid JSON ({_message_of(exc)})"


def _unhealthy_reason_of(exc: BaseException) -> str | None:
    """The reason an exception marks its worker unhealthy, or None.

    A truthy `worker_unhealthy` attribute (on the class or the instance) marks it: a string is
    the reason, any other truthy value (True) means "<Type>: <message>".
    """
    try:
        flag = getattr(exc, "worker_unhealthy", None)
        if not flag:
            return None
    except Exception:
        return None
    if isinstance(flag, str):
        return flag
    return f"{type(exc).__name__}: {_message_of(exc)}"


def clean_reason(reason: object) -> str:
    """A reason as a non-empty string of at most MAX_UNHEALTHY_CHARS that encodes as UTF-8."""
    try:
        text = reason if type(reason) is str else str(reason)
    except Exception:
        text = f"<unprintable {type(reason).__name__} object>"
    if not text:
        text = "marked unhealthy (no reason given)"
    if len(text) > MAX_UNHEALTHY_CHARS:
        text = text[:MAX_UNHEALTHY_CHARS - 3] + "..."
    # Lone surrogates cannot be sent as UTF-8: '?' instead, so the reply always gets through.
    return text.encode("utf-8", "replace").decode("utf-8")


def _exit_code_of(exc: SystemExit) -> int:
    """The process exit code sys.exit(code) asks for, as the interpreter would compute it:
    None → 0, an int → that int, anything else → 1 (after printing it to stderr)."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF  # what the kernel keeps of it (-1 → 255); os._exit takes no bigint
    try:
        sys.stderr.write(f"{code}\n")
    except Exception:
        pass
    return 1


def _format_traceback(exc: BaseException) -> str | None:
    # Skip the first frame: it is the runtime line that called the handler, not user code.
    tb = exc.__traceback__
    if tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    try:
        import traceback  # loaded at the first error reply, not at start-up (see fail_init)

        return "".join(traceback.format_exception(type(exc), exc, tb))
    except Exception:
        return None


# --------------------------------------------------------------------------------------------
# The runtime
# --------------------------------------------------------------------------------------------


class Runtime:
    """One worker's command table, sessions and counters, and its request loop.

    Single-threaded: everything runs on the thread that calls `serve()`, except that
    `mark_unhealthy` may also be called from a thread a handler started (the mark then goes out
    with the next reply).
    """

    def __init__(self, registry: Registry, worker_id: str, *,
                 request_fd: int = DEFAULT_REQUEST_FD,
                 response_fd: int = DEFAULT_RESPONSE_FD,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 handlers_version: str | None = None,
                 sentinel_pid: int | None = None) -> None:
        self.registry = registry
        self.worker_id = worker_id
        self.handlers_version = handlers_version
        self.sentinel_pid = sentinel_pid  # the group sentinel (sentinel.py), if one runs
        self.started = time.monotonic()
        self.requests_served = 0  # every request answered, errors and built-ins included
        self.errors = 0  # replies with ok: false
        self.unhealthy_marks = 0  # replies that carried `worker_unhealthy`
        self.last_unhealthy: str | None = None  # the reason the last such reply carried
        self.sessions: dict[str, dict] = {}
        self.stopping = False  # set by `shutdown`; the loop exits after writing its reply
        # True while the next final reply needs the slow path: `stopping`, or a
        # `worker_unhealthy` reason waiting to be sent. The hot loop tests only this flag.
        self.attention = False
        self._unhealthy: str | None = None  # the pending reason; the first mark of a call wins
        self._request_fd = request_fd
        self._response_fd = response_fd
        self._max_frame_bytes = max_frame_bytes
        # Gathers the binary values of the message being encoded (attachments.py).
        self._collector = Collector()
        self._pipe_grown = False  # see _grow_response_pipe
        # name -> (handler, is_builtin). Built-ins take (args, request), user handlers (args, ctx).
        dispatch = {name: (func, True) for name, func in BuiltinCommands(self).table().items()}
        # Batch handlers (`@command(..., batch=True)`) answer a single call through a wrapper
        # that passes [args]; execute_many's chunks reach them whole (batch.py).
        self.batch_handlers = {}
        for name, spec in registry.commands.items():
            if spec.batch:
                self.batch_handlers[name] = spec.func
                dispatch[name] = (single_call_of(name, spec.func), False)
            else:
                dispatch[name] = (spec.func, False)
        self._dispatch = dispatch
        self._idempotent = dict(BUILTIN_COMMANDS)
        self._idempotent.update((n, s.idempotent) for n, s in registry.commands.items())
        self.calls = {name: 0 for name in dispatch}  # per command, known commands only

    @property
    def response_fd(self) -> int:
        return self._response_fd

    @property
    def max_frame_bytes(self) -> int:
        return self._max_frame_bytes

    def uptime_s(self) -> float:
        return uptime_since(self.started)

    def request_stop(self) -> None:
        """Makes the loop exit (code 0) after writing the current reply (`shutdown`)."""
        self.stopping = True
        self.attention = True

    def mark_unhealthy(self, reason: object) -> None:
        """Makes the next final reply carry `"worker_unhealthy": reason` (see Context).

        The first reason wins until a reply has carried it; later marks before that reply are
        counted in neither `unhealthy_marks` nor the reply.
        """
        if self._unhealthy is None:
            self._unhealthy = clean_reason(reason)
            self.attention = True

    def command_list(self) -> list[tuple[str, bool]]:
        """(name, idempotent) for every command, built-ins included, sorted by name."""
        return sorted(self._idempotent.items())

    def handshake(self) -> dict:
        return {
            "id": 0,
            "event": "ready",
            "protocol": PROTOCOL_VERSION,
            "pid": os.getpid(),
            "worker_id": self.worker_id,
            "commands": [{"name": n, "idempotent": i} for n, i in self.command_list()],
            "handlers_version": self.handlers_version,
        }

    def send_ready(self) -> None:
        write_all(self._response_fd, encode_frame(self.handshake()))

    def serve(self) -> int:
        """Answers requests until EOF or `shutdown`; returns the exit code (0).

        Raises BrokenPipeError if the pool closed the response pipe; exits the process with
        code 4 on an oversized frame.

        Longer than a function should be, on purpose: this is the path the latency benchmark
        measures, so everything it touches is a local and every common step is inline (a
        Python call costs ~50 ns); anything unusual leaves through a `self._...` method.
        """
        read = os.read
        write = os.write
        loads = json.loads
        collector = self._collector
        encode = make_chunk_encoder(collector)
        join = "".join
        pack = HEADER.pack
        from_bytes = int.from_bytes
        request_fd = self._request_fd
        response_fd = self._response_fd
        max_frame = self._max_frame_bytes
        dispatch = self._dispatch
        calls = self.calls
        sessions = self.sessions
        worker_id = self.worker_id
        generator = GeneratorType
        context = Context
        while True:
            header = read(request_fd, 4)
            if len(header) != 4:
                header = read_exact(request_fd, 4, header)
                if header is None:
                    return EXIT_OK  # EOF: the pool is gone or done with us
            size = from_bytes(header, "big")
            if size > max_frame:  # an attachment frame (its flag bit is set) or too large
                request = self._read_attachment_request(size)
                if request is None:
                    continue  # answered already
                if request is EOF:
                    return EXIT_OK
            else:
                body = read(request_fd, size)
                if len(body) != size:
                    body = read_exact(request_fd, size, body)
                    if body is None:
                        return EXIT_OK  # EOF inside a frame: same as EOF
                try:
                    request = loads(body.decode())  # str: skips json's encoding sniffing
                except (ValueError, RecursionError) as exc:  # UnicodeDecodeError: a ValueError
                    self._reply_unparsable(body, exc)
                    continue
            if type(request) is not dict:
                self._send_error(0, "ProtocolError",
                                 f"request must be a JSON object, got {type(request).__name__}")
                continue
            rid = request.get("id")
            name = request.get("command")
            session_id = request.get("session_id")
            if (type(rid) is not int or type(name) is not str or not 0 <= rid <= U64_MAX
                    or (session_id is not None and type(session_id) is not str)):
                self._reject_envelope(request)
                continue
            entry = dispatch.get(name)
            if entry is None:
                self._reply_unknown_command(rid, name)
                continue
            args = request.get("args")
            if args is None:
                batch = request.get("batch")
                if batch is not None:  # execute_many: one handler call per item (batch.py)
                    if run_batch(self, rid, name, entry, batch, request):
                        return EXIT_OK
                    continue
                args = {}
            elif type(args) is not dict:
                self._send_error(rid, "InvalidArguments",
                                 f"args of {name!r} must be a JSON object, "
                                 f"got {type(args).__name__}", retryable=False)
                continue

            calls[name] += 1
            func, builtin = entry
            try:
                if builtin:
                    result = func(args, request)
                else:
                    if session_id is None:
                        session = {}
                    else:
                        session = sessions.get(session_id)
                        if session is None:
                            session = sessions[session_id] = {}
                    result = func(args, context(session_id, session, worker_id, rid,
                                                request.get("deadline_ms"), self))
            except BaseException as exc:  # KeyboardInterrupt, SystemExit... too (no cost if none)
                self._reply_exception(rid, exc)
                continue
            if type(result) is generator:
                self._stream(rid, name, result)
                continue
            if self.attention:  # shutdown or a worker_unhealthy mark: rare, out of line
                if self._reply_flagged(rid, name, result):
                    return EXIT_OK
                continue

            try:
                out = join(encode({"id": rid, "ok": True, "result": result}, 0)).encode()
            except ENCODE_ERRORS as exc:
                collector.clear()
                encode = make_chunk_encoder(collector)  # the failed one may hold stale markers
                self._reply_unserialisable(rid, name, "result", exc)
                continue
            if collector.buffers:  # bytes or arrays in the result: an attachment frame
                self._send_encoded(rid, name, "result", out)
                continue
            if len(out) > max_frame:
                self._reply_too_large(rid, name, "result", len(out))
                continue
            frame = pack(len(out)) + out
            written = write(response_fd, frame)
            if written != len(frame):  # the pipe is full: a large reply
                self._grow_response_pipe()
                write_all(response_fd, frame[written:])
            self.requests_served += 1

    # -- slow paths ---------------------------------------------------------------------------

    def _head(self, rid: int, ok: bool) -> dict:
        """The start of a final reply: id, ok and, if a mark is pending, worker_unhealthy."""
        head = {"id": rid, "ok": ok}
        if self._unhealthy is not None:
            head["worker_unhealthy"] = self._unhealthy
        return head

    def _send(self, body: bytes, carried: str | None = None, pieces: list | None = None) -> None:
        """Writes one final reply frame and counts the request as served; `carried` is the
        worker_unhealthy reason the body holds (from `_head`), now delivered. `pieces`: the
        frame is an attachment frame (from `_encode`), written as these pieces instead."""
        if pieces is None:
            write_all(self._response_fd, HEADER.pack(len(body)) + body)
        else:
            self._grow_response_pipe()
            writev_all(self._response_fd, pieces)
        self.requests_served += 1
        if carried is not None:
            self.unhealthy_marks += 1
            self.last_unhealthy = carried
            if self._unhealthy is carried:  # not replaced meanwhile by a thread's later mark
                self._unhealthy = None
            self.attention = self.stopping or self._unhealthy is not None

    def _encode(self, message: dict) -> tuple[bytes, int, list | None]:
        """attachments.encode_message with this runtime's collector; raises one of
        ENCODE_ERRORS if the message cannot be sent."""
        return encode_message(message, self._collector)

    def _send_encoded(self, rid: int, name: str, what: str, text: bytes) -> None:
        """The hot loop's reply whose encoding gathered binary values: an attachment frame."""
        buffers = self._collector.buffers
        self._collector.clear()
        size, pieces = frame_pieces(text, buffers)
        if size > self._max_frame_bytes:
            self._reply_too_large(rid, name, what, size)
            return
        self._send(text, None, pieces)

    def _reply_ok(self, rid: int, name: str, result: object) -> None:
        message = self._head(rid, True)
        message["result"] = result
        try:
            body, size, pieces = self._encode(message)
        except ENCODE_ERRORS as exc:
            self._reply_unserialisable(rid, name, "result", exc)
            return
        if size > self._max_frame_bytes:
            self._reply_too_large(rid, name, "result", size)
            return
        self._send(body, message.get("worker_unhealthy"), pieces)

    def _reply_flagged(self, rid: int, name: str, result: object) -> bool:
        """The ok reply when `attention` is set; returns True if the loop must stop now."""
        self._reply_ok(rid, name, result)
        return self.stopping

    def error_body(self, error_type: str, message: str, traceback_text: str | None = None,
                   retryable: bool | None = None) -> dict:
        """The "error" object of a reply (texts capped), counted in `errors`."""
        self.errors += 1
        return {
            "type": error_type,
            "message": _capped(message, _MAX_MESSAGE_CHARS),
            "traceback": _capped(traceback_text, _MAX_TRACEBACK_CHARS),
            "retryable": retryable,
        }

    def exception_body(self, exc: BaseException) -> dict:
        """The "error" object for anything a handler raised; honours a worker_unhealthy mark
        on the exception. SystemExit is the caller's to honour (see `system_exit_body`)."""
        reason = _unhealthy_reason_of(exc)
        if reason is not None:
            self.mark_unhealthy(reason)
        return self.error_body(type(exc).__name__, _message_of(exc), _format_traceback(exc),
                               _retryable_of(exc))

    def system_exit_body(self, exc: SystemExit) -> tuple[dict, int]:
        """The "error" object answering a handler's sys.exit(), and the exit code to use."""
        code = _exit_code_of(exc)
        return self.error_body("SystemExit",
                               f"the handler called sys.exit({exc.code!r:.200}); the worker "
                               f"exits with code {code}", _format_traceback(exc),
                               _retryable_of(exc)), code

    def _send_error(self, rid: int, error_type: str, message: str,
                    traceback_text: str | None = None, retryable: bool | None = None) -> None:
        self.send_error_body(rid, self.error_body(error_type, message, traceback_text, retryable))

    def _reply_exception(self, rid: int, exc: BaseException) -> None:
        """Reports anything a handler raised, BaseException included; the worker goes on —
        except after SystemExit, which is answered and then honoured."""
        if isinstance(exc, SystemExit):
            reason = _unhealthy_reason_of(exc)
            if reason is not None:
                self.mark_unhealthy(reason)
            self._reply_system_exit(rid, exc)
        self.send_error_body(rid, self.exception_body(exc))

    def send_error_body(self, rid: int, error: dict) -> None:
        """Writes the final `ok: false` reply carrying `error` (see `error_body`)."""
        message = self._head(rid, False)
        message["error"] = error
        # Exception text may hold lone surrogates, which UTF-8 cannot encode; "replace" turns
        # them into '?' so the error itself always gets through.
        body = encode_json(message).encode("utf-8", "replace")
        self._send(body, message.get("worker_unhealthy"))

    def _reply_system_exit(self, rid: int, exc: SystemExit) -> None:  # never returns
        """The handler asked for the process to end: answer the request, then exit with the
        code sys.exit() was given (the pool sees the reply, then the exit)."""
        error, code = self.system_exit_body(exc)
        try:
            self.send_error_body(rid, error)
        except OSError:
            pass  # the pool is gone; exit all the same
        _exit(code)

    def exit_now(self, code: int) -> None:  # never returns
        _exit(code)

    def _reply_unparsable(self, body, exc: BaseException) -> None:
        """Answers a request body that json cannot parse (nested too deeply, not UTF-8, not
        JSON): InvalidArguments for its own id if the id can be read from the first bytes (the
        worker can go on: the frame boundary is intact), else a ProtocolError with id 0."""
        rid = _leading_id(body)
        if rid is None:
            self._send_error(0, "ProtocolError", f"request frame is not valid JSON: {exc}")
            return
        self._send_error(rid, "InvalidArguments",
                         f"request could not be parsed: {_unparsable_reason(exc)}",
                         retryable=False)

    def _reply_unserialisable(self, rid: int, name: str, what: str, exc: Exception) -> None:
        self._send_error(rid, "SerializationError",
                         f"{what} of command {name!r} is not JSON-serialisable: "
                         f"{type(exc).__name__}: {_message_of(exc)}", retryable=False)

    def _reply_too_large(self, rid: int, name: str, what: str, size: int) -> None:
        self._send_error(rid, "SerializationError",
                         f"{what} of command {name!r} encodes to {size} bytes, more than the "
                         f"{self._max_frame_bytes}-byte frame limit", retryable=False)

    def _reply_unknown_command(self, rid: int, name: str) -> None:
        available = ", ".join(sorted(self._dispatch))
        self._send_error(rid, "UnknownCommand",
                         f"unknown command {name!r}; available commands: {available}",
                         retryable=False)

    def _reject_envelope(self, request: dict) -> None:
        """Replies ProtocolError to a JSON object that is not a well-formed request."""
        rid = request.get("id")
        id_ok = type(rid) is int and 0 <= rid <= U64_MAX
        problems = []
        if not id_ok:
            problems.append(f"'id' must be an unsigned 64-bit integer, got {rid!r:.80}")
        if type(request.get("command")) is not str:
            problems.append(f"'command' must be a string, got {request.get('command')!r:.80}")
        session_id = request.get("session_id")
        if session_id is not None and type(session_id) is not str:
            problems.append(f"'session_id' must be a string or null, got {session_id!r:.80}")
        self._send_error(rid if id_ok else 0, "ProtocolError",
                         "malformed request: " + "; ".join(problems), retryable=False)

    def _stream(self, rid: int, name: str, chunks: GeneratorType) -> None:
        """Sends each yielded value as a chunk frame, then the final reply.

        The final result is the generator's return value. An exception inside the generator
        or an unserialisable chunk ends the stream with an `ok: false` reply.
        """
        max_frame = self._max_frame_bytes
        while True:
            try:
                value = next(chunks)
            except StopIteration as stop:
                result = stop.value
                break
            except BaseException as exc:
                self._reply_exception(rid, exc)
                return
            try:
                body, size, pieces = self._encode({"id": rid, "chunk": value})
            except ENCODE_ERRORS as exc:
                close_quietly(chunks)
                self._reply_unserialisable(rid, name, "chunk", exc)
                return
            if size > max_frame:
                close_quietly(chunks)
                self._reply_too_large(rid, name, "chunk", size)
                return
            if pieces is None:
                write_all(self._response_fd, HEADER.pack(len(body)) + body)
            else:
                self._grow_response_pipe()
                writev_all(self._response_fd, pieces)
        self._reply_ok(rid, name, result)

    def _grow_response_pipe(self) -> None:
        """Before a large reply: the response pipe grows to 1 MiB (the default pipe-max-size),
        so the frame crosses in 1 MiB writes, each one wake-up of the pool, instead of 64 KiB
        ones. Once; best effort (past the user's pipe quota the kernel refuses, and 64 KiB
        works). The pool grows both pipes itself when it sends a large request."""
        if self._pipe_grown:
            return
        self._pipe_grown = True
        try:
            import fcntl

            fcntl.fcntl(self._response_fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
        except (OSError, ImportError):
            pass

    def _read_attachment_request(self, size: int):
        """Reads the attachment frame whose header is `size` and returns its request (a dict
        whose values may be memoryviews and arrays: attachments.py), EOF, or None when it was
        answered with an error here. Exits (code 4) on a frame over the limit."""
        length = size & ~ATTACHMENTS_FLAG
        if not size & ATTACHMENTS_FLAG or length > self._max_frame_bytes:
            self._frame_too_large(length)
        payload = read_exact(self._request_fd, length)
        if payload is None:
            return EOF
        try:
            text, buffers = split_frame(payload)
        except AttachmentError as exc:
            # The frame's boundary is intact, but not what it holds: no request id to answer.
            self._send_error(0, "ProtocolError", f"malformed attachment frame: {exc}")
            return None
        try:
            return json.loads(text.decode(), object_hook=make_object_hook(buffers))
        except AttachmentError as exc:
            rid = _leading_id(text)
            if rid is None:
                self._send_error(0, "ProtocolError", f"malformed attachment frame: {exc}")
            else:
                self._send_error(rid, "InvalidArguments", f"request attachments: {exc}",
                                 retryable=False)
        except (ValueError, RecursionError) as exc:
            self._reply_unparsable(text, exc)
        return None

    def _frame_too_large(self, size: int) -> None:  # never returns
        # We will not allocate `size` bytes, and we cannot skip them without reading them: the
        # stream is no longer trustworthy, so exit with a code the pool recognises.
        try:
            sys.stderr.write(f"bridgepool_worker[{self.worker_id}]: request frame declares "
                             f"{size} bytes, more than --max-frame-bytes={self._max_frame_bytes}; "
                             f"exiting (code {EXIT_PROTOCOL})\n")
        except (OSError, ValueError, AttributeError):
            pass
        _exit(EXIT_PROTOCOL)


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:  # never returns
    """Runs a worker process to completion (see the module docstring for the order).

    With `--zygote` the process becomes a fork server instead (zygote.py): it loads the handler
    modules once and forks ready-to-serve workers on request.
    """
    set_parent_death_signal()  # first: the window in which a dying pool leaves us behind
    given = sys.argv[1:] if argv is None else list(argv)
    try:
        options = parse_args(given)
    except UsageError as exc:
        # The response fd is unknown when parsing failed: report on the default one only if
        # the command line did not name another (fd 4 could then be anything).
        named = any(a.startswith("--response-fd") for a in given)
        _usage_failure(None if named else DEFAULT_RESPONSE_FD, str(exc))
    if options.parent_pid is not None and os.getppid() != options.parent_pid:
        # The pool died before prctl took effect; nobody would ever talk to us.
        sys.stderr.write(f"bridgepool_worker[{options.worker_id}]: parent {options.parent_pid} "
                         f"is gone (parent is now {os.getppid()}); exiting\n")
        _exit(EXIT_OK)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    make_stdout_line_buffered()
    if options.zygote:
        from bridgepool_worker.zygote import serve_forks

        serve_forks(options, [a for a in given if a != "--zygote"])  # never returns
    try:
        prepare_protocol_fds(options.request_fd, options.response_fd)
    except UsageError as exc:
        _usage_failure(options.response_fd, str(exc))
    # Before any handler code runs, so that it guards whatever handlers start, even at import;
    # its interpreter starts while the handler modules are imported.
    sentinel = start_group_sentinel()
    loader = HandlerLoader()
    load_handlers(loader, options.handlers, lambda spec, exc: fail_init(options.response_fd,
                                                                        spec, exc))
    sentinel_pid = sentinel.pid() if sentinel is not None else None  # reaps the launcher
    # Objects alive now (modules, handlers) live for the whole process: move them out of the
    # collector's generations so later collections do not scan them again and again.
    gc.freeze()
    serve_worker(options, loader, sentinel_pid)


def load_handlers(loader: HandlerLoader, specs: list[str], on_failure) -> None:
    """Imports every handler module; the first failure goes to `on_failure(spec, exc)`, which
    does not return."""
    for spec in specs:
        try:
            loader.load(spec)
        except BaseException as exc:  # SyntaxError, SystemExit at import, anything
            on_failure(spec, exc)


def serve_worker(options: types.SimpleNamespace, loader: HandlerLoader,
                 sentinel_pid: int | None, before_exit=None) -> None:  # never returns
    """Handshake, then the request loop until EOF or `shutdown`; exits with its code.
    `before_exit(runtime)`, if given, runs last (a forked worker's host-death check)."""
    runtime = Runtime(default_registry(), options.worker_id,
                      request_fd=options.request_fd, response_fd=options.response_fd,
                      max_frame_bytes=options.max_frame_bytes,
                      handlers_version=handlers_version_of(loader.modules, options.version_tag),
                      sentinel_pid=sentinel_pid)
    try:
        runtime.send_ready()
        code = runtime.serve()
    except BrokenPipeError:
        code = EXIT_OK  # the pool closed our response pipe: it is gone or done with us
    if before_exit is not None:
        before_exit(runtime)
    _exit(code)


def _usage_failure(response_fd: int | None, message: str) -> None:  # never returns
    """Reports a usage error on stderr and, if the fd is open, as `init_failed`; exits 2."""
    sys.stderr.write(f"bridgepool_worker: usage error: {message}\n")
    if response_fd is None:
        _exit(EXIT_USAGE)
    try:
        os.fstat(response_fd)
    except OSError:
        _exit(EXIT_USAGE)
    _send_best_effort(response_fd, {
        "id": 0,
        "event": "init_failed",
        "error": {"type": "UsageError", "message": message, "traceback": None,
                  "retryable": None},
    })
    _exit(EXIT_USAGE)
