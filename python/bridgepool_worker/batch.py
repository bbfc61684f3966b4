"""Batch requests (the pool's execute_many): one handler call per item, answered in parts.

A batch request carries "batch", a JSON array of argument objects, instead of "args":

    {"id": 7, "command": "score", "batch": [{...}, {...}], "session_id": null, "deadline_ms": 900}

The handler runs once per item, in order, each call with its own Context (no session). The
results go back in parts, each

    {"from": k, "results": [r_k, r_k+1, ...], "errors": [[i, error], ...]}

`results` has one entry per item from index k on (null where the item failed); `errors` lists
the failed items by absolute index with the same error object a failed call's reply carries.
Every part but the last travels as a chunk frame ({"id": 7, "chunk": part}); the last one is the
final reply's result ({"id": 7, "ok": true, "result": part}), which also carries
"worker_unhealthy" when a handler set it. A part is sent once it holds PART_BYTES of results or
PART_SECONDS have passed since the previous one: a batch of quick items costs a few frames, a
batch of slow items reports each item as it finishes, and when a worker dies mid-batch the pool
knows which items finished — it retries only the others, and only if the command is idempotent.

A failing item does not fail the batch. An item whose handler calls sys.exit() is answered (its
part is sent at once) and the worker then exits with that code, leaving the rest unanswered. A
streaming handler (a generator) cannot answer a batch item: that item fails.

A batch handler (`@command(name, batch=True)`) takes the chunk whole: `f(items, ctx)` gets the
list of argument objects (one Context for the call, no session) and returns a list of as many
results, in order; an exception instance in that list fails its item alone, with that
exception's error. If it raises, every item of the call fails with that error; a list of the
wrong length, or no list, fails them all with BatchResultError. A single call of such a command
(execute) passes [args] and answers with the one result (`single_call_of`). Items that are not
objects fail alone, before the call, and are not passed.
"""

from __future__ import annotations

import time
from types import GeneratorType

from bridgepool_worker.context import Context
from bridgepool_worker.protocol import ENCODE_ERRORS, HEADER, encode_json, make_chunk_encoder
from bridgepool_worker.protocol import write_all

PART_BYTES = 256 * 1024
PART_SECONDS = 0.005
# Results are encoded this many at a time, in one call of the C encoder (about a third cheaper
# per item than one call each); a group that cannot be encoded whole, or that would not fit the
# frame, is encoded item by item, which finds the failing item and splits the part.
GROUP = 16
# Room in a frame for everything around the results (ids, keys, brackets).
_ENVELOPE_BYTES = 256


class _Parts:
    """The part being filled and its sending; `first` is the index of its first item.

    `results` holds encoded JSON segments, each one item's result or a comma-joined group of
    them; `count` is how many items they answer. Results not yet encoded wait in `pending`
    (with their indices), so that a group of them is encoded in one pass (`flush_pending`).
    """

    __slots__ = ("runtime", "rid", "name", "results", "errors", "first", "count", "size",
                 "sent_at", "pending", "pending_at", "encode", "item_limit")

    def __init__(self, runtime, rid: int, name: str) -> None:
        self.runtime = runtime
        self.rid = rid
        self.name = name
        self.results: list[bytes] = []
        self.errors: list = []
        self.first = 0
        self.count = 0
        self.size = 0
        self.sent_at = time.monotonic()
        self.pending: list = []
        self.pending_at: list[int] = []
        self.encode = make_chunk_encoder()
        self.item_limit = runtime.max_frame_bytes - _ENVELOPE_BYTES

    def add_result(self, index: int, result: object) -> None:
        self.pending.append(result)
        self.pending_at.append(index)
        if len(self.pending) >= GROUP:
            self.flush_pending()

    def flush_pending(self) -> None:
        """Encodes the waiting results into the part: one pass for the group if it encodes and
        fits, else item by item."""
        pending = self.pending
        if not pending:
            return
        try:
            text = "".join(self.encode(pending, 0)).encode()
        except ENCODE_ERRORS:
            self.encode = make_chunk_encoder()  # the failed one may hold stale markers
            text = None
        if text is not None and self.size + len(text) <= self.item_limit:
            self.results.append(text[1:-1])  # the list's items, without its brackets
            self.count += len(pending)
            self.size += len(text)
        else:
            for index, result in zip(self.pending_at, pending):
                self._add_one(index, result)
        self.pending = []
        self.pending_at = []

    def _add_one(self, index: int, result: object) -> None:
        runtime = self.runtime
        try:
            text = "".join(self.encode(result, 0)).encode()
        except ENCODE_ERRORS as exc:
            self.encode = make_chunk_encoder()
            self._add_error_now(index, runtime.error_body(
                "SerializationError", f"result of item {index} of command {self.name!r} is not "
                f"JSON-serialisable: {type(exc).__name__}: {exc}", retryable=False))
            return
        if len(text) > self.item_limit:
            self._add_error_now(index, runtime.error_body(
                "SerializationError", f"result of item {index} of command {self.name!r} "
                f"encodes to {len(text)} bytes, more than the {runtime.max_frame_bytes}-byte "
                f"frame limit", retryable=False))
            return
        if self.size + len(text) > self.item_limit:
            self._send_filled()  # this result would not fit in the frame
        self.results.append(text)
        self.count += 1
        self.size += len(text) + 1

    def add_error(self, index: int, error: dict) -> None:
        self.flush_pending()  # the items before it keep their place
        self._add_error_now(index, error)

    def _add_error_now(self, index: int, error: dict) -> None:
        self.results.append(b"null")
        self.count += 1
        self.errors.append([index, error])
        self.size += 4 + len(error["message"]) + len(error["traceback"] or "")

    def body(self) -> bytes:
        errors = encode_json(self.errors).encode("utf-8", "replace") if self.errors else b"[]"
        return (b'{"from":%d,"results":[' % self.first + b",".join(self.results) +
                b'],"errors":' + errors + b"}")

    def send_chunk(self) -> None:
        """Sends everything answered so far as a chunk frame and starts the next part."""
        self.flush_pending()
        self._send_filled()

    def _send_filled(self) -> None:
        body = b'{"id":%d,"chunk":' % self.rid + self.body() + b"}"
        write_all(self.runtime.response_fd, HEADER.pack(len(body)) + body)
        self.first += self.count
        self.results = []
        self.errors = []
        self.count = 0
        self.size = 0
        self.sent_at = time.monotonic()

    def send_final(self, count: int) -> None:
        """The final reply: the last part as the result; counts the batch's items as served."""
        self.flush_pending()
        runtime = self.runtime
        head = runtime._head(self.rid, True)
        body = encode_json(head).encode()[:-1] + b',"result":' + self.body() + b"}"
        runtime.requests_served += count - 1  # _send counts one
        runtime._send(body, head.get("worker_unhealthy"))


class BatchResultError(Exception):
    """A batch handler's return value is not a list of one result per item."""


def _results_of(name: str, results: object, count: int) -> list:
    if type(results) not in (list, tuple):
        raise BatchResultError(f"batch handler {name!r} must return a list of {count} results, "
                               f"got {type(results).__name__}")
    if len(results) != count:
        raise BatchResultError(f"batch handler {name!r} returned {len(results)} results for "
                               f"{count} items")
    return results


def single_call_of(name: str, func):
    """The handler a single call (execute) of batch command `name` runs: `func([args], ctx)`,
    answered with the one result (raised if it is an exception)."""

    def call_one(args, ctx):
        (result,) = _results_of(name, func([args], ctx), 1)
        if isinstance(result, BaseException):
            raise result
        return result

    return call_one


def _run_whole(runtime, rid: int, name: str, func, items: list, request: dict,
               parts: "_Parts") -> None:
    """A batch handler's chunk: one call for every item that is an object, then each item's
    outcome into the parts, in order."""
    outcomes: list = [None] * len(items)  # (True, result) or (False, error body)
    valid: list = []
    at: list[int] = []
    for index, args in enumerate(items):
        if args is None:
            args = {}
        if type(args) is not dict:
            outcomes[index] = (False, runtime.error_body(
                "InvalidArguments", f"item {index} of the batch of {name!r} must be a JSON "
                f"object, got {type(args).__name__}", retryable=False))
        else:
            valid.append(args)
            at.append(index)
    if valid:
        ctx = Context(None, {}, runtime.worker_id, rid, request.get("deadline_ms"), runtime)
        try:
            results = _results_of(name, func(valid, ctx), len(valid))
        except SystemExit as exc:
            error, code = runtime.system_exit_body(exc)
            for index in at:
                outcomes[index] = (False, error)
            _fill(parts, outcomes)
            _send_and_exit(runtime, parts, code)
        except BaseException as exc:  # noqa: BLE001 - every item of the call fails with it
            error = runtime.exception_body(exc)
            results = None
            for index in at:
                outcomes[index] = (False, error)
        if results is not None:
            for index, result in zip(at, results):
                if isinstance(result, BaseException):
                    outcomes[index] = (False, runtime.exception_body(result))
                elif type(result) is GeneratorType:
                    close_quietly(result)
                    outcomes[index] = (False, runtime.error_body(
                        "SerializationError", f"batch handler {name!r} returned a generator for "
                        f"item {index}", retryable=False))
                else:
                    outcomes[index] = (True, result)
    _fill(parts, outcomes)


def _fill(parts: "_Parts", outcomes: list) -> None:
    """Each item's (ok, result or error body) into the parts, in order."""
    for index, (ok, value) in enumerate(outcomes):
        if ok:
            parts.add_result(index, value)
        else:
            parts.add_error(index, value)


def _send_and_exit(runtime, parts: "_Parts", code: int) -> None:  # never returns
    """After sys.exit() in a handler: what is answered goes out now, then the worker exits."""
    try:
        parts.send_chunk()
    except OSError:
        pass  # the pool is gone; exit all the same
    runtime.exit_now(code)


def run_batch(runtime, rid: int, name: str, entry: tuple, items: object, request: dict) -> bool:
    """Answers one batch request; returns True when the worker must stop (`shutdown`)."""
    if type(items) is not list:
        runtime._send_error(rid, "InvalidArguments",
                            f"batch of {name!r} must be a JSON array of argument objects, got "
                            f"{type(items).__name__}", retryable=False)
        return False
    runtime.calls[name] += len(items)
    whole = runtime.batch_handlers.get(name)
    if whole is not None:
        parts = _Parts(runtime, rid, name)
        _run_whole(runtime, rid, name, whole, items, request, parts)
        parts.send_final(len(items))
        return runtime.stopping
    func, builtin = entry
    part_limit = min(PART_BYTES, runtime.max_frame_bytes // 2)
    monotonic = time.monotonic
    deadline_ms = request.get("deadline_ms")
    worker_id = runtime.worker_id
    parts = _Parts(runtime, rid, name)
    add_result = parts.add_result
    last = len(items) - 1
    for index, args in enumerate(items):
        if args is None:
            args = {}
        if type(args) is not dict:
            parts.add_error(index, runtime.error_body(
                "InvalidArguments", f"item {index} of the batch of {name!r} must be a JSON "
                f"object, got {type(args).__name__}", retryable=False))
        else:
            try:
                if builtin:
                    result = func(args, request)
                else:
                    result = func(args, Context(None, {}, worker_id, rid, deadline_ms, runtime))
            except SystemExit as exc:
                error, code = runtime.system_exit_body(exc)
                parts.add_error(index, error)
                _send_and_exit(runtime, parts, code)
            except BaseException as exc:  # noqa: BLE001 - reported as the item's error
                parts.add_error(index, runtime.exception_body(exc))
            else:
                if type(result) is GeneratorType:
                    close_quietly(result)
                    parts.add_error(index, runtime.error_body(
                        "InvalidArguments", f"command {name!r} streams its reply (it yields "
                        "chunks), which a batch item cannot; call it on its own", retryable=False))
                else:
                    add_result(index, result)
        # The size counts encoded results only: at most GROUP - 1 wait unencoded.
        if index != last and (parts.size >= part_limit or
                              monotonic() - parts.sent_at >= PART_SECONDS):
            parts.send_chunk()
    parts.send_final(len(items))
    return runtime.stopping


def close_quietly(chunks: GeneratorType) -> None:
    """Closes a handler's generator whose reply is already an error (its own errors too)."""
    try:
        chunks.close()
    except BaseException:  # noqa: BLE001 - the reply is already being failed
        pass
