#!/usr/bin/env python3
"""The fork floor (SPEC §9, issue #10): how fast can an already-loaded interpreter produce a
worker that answers? No fork server can beat this figure; the pool's fork_server start method is
judged against it (goal: replacement p50 <= max(20 ms, 3x this floor)).

This process imports the bridgepool runtime and the handler module (exactly as a worker or a
zygote would), then N times: writes a framed JSON request on a fresh pipe, calls os.fork(), and
the child re-seeds `random`, reads the request, answers it with the module's `echo` handler on a
second pipe and exits. Measured: from just before os.fork() to the parent having read the whole
reply frame (the reaping of the child is not counted). Standard library only; run it with
/usr/bin/python3.

    fork_floor.py [--handlers FILE] [--python-path DIR] [--forks N] [--warmup N] [--json]

The last line of stdout (with --json) is one JSON object:
{"handlers", "kind", "import_s", "forks", "fork_to_reply_ms": {"p50", "p90", "p99", "max",
"mean"}}; kind is the module's HEAVY_KIND when it has one (bench/heavy_handlers.py), else null.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def frame(obj: dict) -> bytes:
    """A message as the worker protocol frames it: 4-byte big-endian length, then JSON."""
    body = json.dumps(obj, separators=(",", ":")).encode()
    return len(body).to_bytes(4, "big") + body


def read_frame(fd: int) -> dict:
    """Reads one frame from `fd`; EOFError if the pipe closes first."""
    data = b""
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
        chunk = os.read(fd, 65536)
        if not chunk:
            raise EOFError("pipe closed before a whole frame")
        data += chunk
    return json.loads(data[4:4 + int.from_bytes(data[:4], "big")])


def child(request_fd: int, reply_fd: int, echo) -> None:
    """The forked worker: answer one request, then exit without running any cleanup."""
    code = 0
    try:
        random.seed()  # what a fork server must do, so workers do not share a sequence
        request = read_frame(request_fd)
        result = echo(request["args"], None)
        os.write(reply_fd, frame({"id": request["id"], "ok": True, "result": result}))
    except BaseException:  # noqa: BLE001 - the parent sees the missing reply
        code = 1
    os._exit(code)


def one_fork(i: int, echo) -> float:
    """Milliseconds from os.fork() to the child's reply to request i."""
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    os.write(req_w, frame({"id": i, "command": "echo", "args": {"i": i}}))
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(req_w)
        os.close(rep_r)
        child(req_r, rep_w, echo)
    os.close(rep_w)
    try:
        reply = read_frame(rep_r)
        elapsed = (time.perf_counter() - t0) * 1000.0
    finally:
        for fd in (req_r, req_w, rep_r):
            os.close(fd)
        os.waitpid(pid, 0)
    if reply.get("id") != i or reply.get("result") != {"i": i}:
        raise RuntimeError(f"fork {i}: unexpected reply {reply!r}")
    return elapsed


def summary(samples: list[float]) -> dict:
    """Nearest-rank percentiles, as src/telemetry/latency_summary.h computes them."""
    s = sorted(samples)

    def rank(p: float) -> float:
        return s[min(max(math.ceil(p / 100.0 * len(s)), 1), len(s)) - 1]

    return {"p50": rank(50), "p90": rank(90), "p99": rank(99), "max": s[-1],
            "mean": sum(s) / len(s)}


def load(handlers: str, python_path: str):
    """Imports the runtime and the handler module; returns (module, its echo, seconds taken)."""
    sys.path.insert(0, python_path)
    from bridgepool_worker.loader import load_handler_module

    t0 = time.perf_counter()
    module = load_handler_module(handlers)
    seconds = time.perf_counter() - t0
    echo = getattr(module, "echo", None)
    if not callable(echo):
        raise SystemExit(f"fork_floor: {handlers} has no echo(args, ctx) function")
    return module, echo, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--handlers", default=os.path.join(REPO, "examples", "handlers.py"))
    ap.add_argument("--python-path", default=os.path.join(REPO, "python"),
                    help="directory holding the bridgepool_worker package")
    ap.add_argument("--forks", type=int, default=200, help="measured forks (default 200)")
    ap.add_argument("--warmup", type=int, default=5, help="forks before measuring (default 5)")
    ap.add_argument("--json", action="store_true", help="print a JSON object as the last line")
    a = ap.parse_args(argv)
    if a.forks < 1 or a.warmup < 0:
        ap.error("--forks must be >= 1 and --warmup >= 0")
    module, echo, import_s = load(a.handlers, a.python_path)
    for i in range(a.warmup):
        one_fork(i, echo)
    samples = [one_fork(i, echo) for i in range(a.forks)]
    s = summary(samples)
    kind = getattr(module, "HEAVY_KIND", None)
    print(f"fork floor ({os.path.basename(a.handlers)}, {kind or 'plain'}, import "
          f"{import_s:.2f} s), {len(samples)} forks: fork -> reply p50 {s['p50']:.2f} ms, "
          f"p99 {s['p99']:.2f} ms, max {s['max']:.2f} ms")
    if a.json:
        print(json.dumps({"handlers": os.path.abspath(a.handlers), "kind": kind,
                          "import_s": import_s, "forks": len(samples), "fork_to_reply_ms": s}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
