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

    @property
    def handlers_version(self) -> str | None:
        """The version reported in the handshake (`__version__` or `--version-tag`)."""
        return self._runtime.handlers_version if self._runtime is not None else None

    def __repr__(self) -> str:
        return (
            f"Context(request_id={self.request_id}, session_id={self.session_id!r}, "
            f"worker_id={self.worker_id!r}, deadline_ms={self.deadline_ms})"
        )
