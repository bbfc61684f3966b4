"""The `ctx` object handed to every user command handler as its second argument.

It carries what a handler may need to know about the current call (request id, deadline,
session) and a few read-only facts about the worker. One is built per user-command call; the
built-in commands, `ping` above all, never pay for it.
"""

from __future__ import annotations


class Context:
    """Per-call information for a handler `f(args, ctx)`.

    Attributes:
      session_id:  the request's session id, or None.
      session:     a dict kept inside this worker per session id across calls (removed by
                   `close_session`); for a call without a session, a fresh empty dict.
      worker_id:   the id the pool gave this worker (`--worker-id`).
      request_id:  the request's id (u64).
      deadline_ms: the request's deadline as sent by the pool, or None.

    Methods:
      mark_unhealthy(reason): says this worker process can no longer be trusted (e.g.
                   "CUDA out of memory", a wedged driver, a corrupted global). The call's reply
                   is delivered as usual (ok or error) and carries `"worker_unhealthy": reason`;
                   the pool then counts a checkin error for this worker (degraded, probed again
                   soon, replaced at its `max_checkin_failures`). Raising an exception whose
                   class or instance has a truthy `worker_unhealthy` attribute does the same (a
                   string is the reason; True means "<Type>: <message>").
    """

    __slots__ = ("session_id", "session", "worker_id", "request_id", "deadline_ms", "_runtime")

    def __init__(self, session_id, session, worker_id, request_id, deadline_ms, runtime=None):
        self.session_id = session_id
        self.session = session
        self.worker_id = worker_id
        self.request_id = request_id
        self.deadline_ms = deadline_ms
        self._runtime = runtime

    @property
    def requests_served(self) -> int:
        """Requests this worker answered before the current one (0 outside a runtime)."""
        return self._runtime.requests_served if self._runtime is not None else 0

    def mark_unhealthy(self, reason: str) -> None:
        """Marks this worker unhealthy; the reply to the current call reports `reason`.

        `reason` should be a short string (others are converted with str()); it is cut to
        1024 characters. The first mark of a call wins. A mark made after the call's reply was
        sent (from a thread the handler started) goes out with the next reply. Outside a
        runtime (a Context built by hand in a unit test) it does nothing.
        """
        if self._runtime is not None:
            self._runtime.mark_unhealthy(reason)

    @property
    def handlers_version(self) -> str | None:
        """The version reported in the handshake (`__version__` or `--version-tag`)."""
        return self._runtime.handlers_version if self._runtime is not None else None

    def __repr__(self) -> str:
        return (
            f"Context(request_id={self.request_id}, session_id={self.session_id!r}, "
            f"worker_id={self.worker_id!r}, deadline_ms={self.deadline_ms})"
        )
