"""The built-in commands every worker answers, whatever handler modules it loaded (SPEC §3).

`ping`, `health_check`, `get_stats`, `list_commands`, `close_session` and `shutdown`. Their
names are reserved (see `registry.BUILTIN_COMMANDS`). Unlike user handlers they are called as
`f(args, request)` with the raw request dict, so `ping` — the command the latency benchmark
measures — costs one call and no Context.
"""

from __future__ import annotations

import os
import time
from bridgepool_worker.errors import InvalidArguments
from bridgepool_worker.registry import BUILTIN_COMMANDS

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float:
    """Resident set size in MiB: /proc/self/statm field 2 (pages) × page size.

    Example: 3000 resident pages × 4096 B = 12,288,000 B = 11.719 MiB. Falls back to the peak
    RSS from getrusage where /proc is missing (not Linux).
    """
    try:
        fd = os.open("/proc/self/statm", os.O_RDONLY)
        try:
            fields = os.read(fd, 256).split()
        finally:
            os.close(fd)
        return round(int(fields[1]) * _PAGE_SIZE / 1048576.0, 3)
    except (OSError, IndexError, ValueError):
        try:
            import resource

            return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 3)
        except (ImportError, OSError):
            return 0.0


def _check_name(func) -> str:
    module = getattr(func, "__module__", None) or "?"
    return f"{module}.{getattr(func, '__qualname__', None) or repr(func)}"


def run_health_checks(checks) -> list[str]:
    """Runs each registered check; returns one detail string per failing check.

    A check fails when it returns a false value (or `(False, detail)`) or raises.
    """
    failures = []
    for check in checks:
        name = _check_name(check)
        try:
            outcome = check()
        except SystemExit:
            raise  # the check asked for the process to end: the runtime answers, then exits
        except BaseException as exc:  # a check that raises is a failing check, not a dead worker
            failures.append(f"{name} raised {type(exc).__name__}: {exc}")
            continue
        detail = None
        if isinstance(outcome, tuple):
            healthy = bool(outcome[0]) if outcome else False
            if len(outcome) > 1 and outcome[1] is not None:
                detail = str(outcome[1])
        else:
            healthy = bool(outcome)
        if not healthy:
            failures.append(f"{name}: {detail}" if detail else f"{name} returned false")
    return failures


class BuiltinCommands:
    """Bound built-in handlers for one runtime; `table()` feeds the runtime's dispatch dict."""

    def __init__(self, runtime) -> None:  # a runtime.Runtime
        self._runtime = runtime

    def table(self) -> dict:
        """Returns {name: handler(args, request)} for every built-in command."""
        return {
            "ping": self.ping,
            "health_check": self.health_check,
            "get_stats": self.get_stats,
            "list_commands": self.list_commands,
            "close_session": self.close_session,
            "shutdown": self.shutdown,
        }

    @staticmethod
    def ping(args, request):
        return "pong"

    def health_check(self, args, request):
        rt = self._runtime
        failures = run_health_checks(rt.registry.health_checks)
        return {
            "status": "unhealthy" if failures else "healthy",
            "pid": os.getpid(),
            "worker_id": rt.worker_id,
            "uptime_s": rt.uptime_s(),
            "requests_served": rt.requests_served,
            "rss_mb": rss_mb(),
            "detail": failures,
        }

    def get_stats(self, args, request):
        rt = self._runtime
        return {
            "pid": os.getpid(),
            "worker_id": rt.worker_id,
            "uptime_s": rt.uptime_s(),
            "requests_served": rt.requests_served,
            "errors": rt.errors,
            "sessions": len(rt.sessions),
            "rss_mb": rss_mb(),
            "commands": dict(sorted(rt.calls.items())),
            "handlers_version": rt.handlers_version,
            "unhealthy_marks": rt.unhealthy_marks,
            "last_unhealthy": rt.last_unhealthy,
            "sentinel_pid": rt.sentinel_pid,
        }

    def list_commands(self, args, request):
        rt = self._runtime
        return {
            "commands": [
                {"name": name, "idempotent": idempotent, "builtin": name in BUILTIN_COMMANDS}
                for name, idempotent in rt.command_list()
            ]
        }

    def close_session(self, args, request):
        session_id = args.get("session_id")
        if session_id is None:
            session_id = request.get("session_id")
        if session_id is not None and not isinstance(session_id, str):
            raise InvalidArguments(
                f"session_id must be a string, got {type(session_id).__name__}"
            )
        closed = session_id is not None and self._runtime.sessions.pop(session_id, None) is not None
        return {"closed": closed, "session_id": session_id}

    def shutdown(self, args, request):
        # The runtime writes this reply, then sees `stopping` and exits 0.
        self._runtime.request_stop()
        return {"shutting_down": True}


def uptime_since(started: float) -> float:
    """Seconds since `started` (a time.monotonic() value), to the microsecond."""
    return round(time.monotonic() - started, 6)
