#!/usr/bin/env python3
"""Worker start time: from spawning `python3 -m bridgepool_worker` to reading its `ready`
handshake, the way the pool starts workers (own process group, pipes on fds 3/4, stdout and
stderr to /dev/null). Standard library only.

    bench/worker_start.py --count 50 [--handlers examples/handlers.py]
        [--runtime DIR [--runtime DIR2 ...]]

Each --runtime is a directory holding a `bridgepool_worker` package (default: this checkout's
python/); with several, each round starts one worker of each, in a shuffled order (seeded), so
that machine load and order effects hit all alike.

Wall time depends on machine load, so each start also records CPU time, which depends much less
on it: the worker's own CPU time up to the handshake and, if the worker reports a group
sentinel in `get_stats` (asked after the handshake, not timed), the sentinel's CPU time once it
waits in poll() (/proc/PID/schedstat: nanoseconds on the CPU). Then it closes the request pipe
and waits for the exit. The last line of stdout is one JSON object: {runtime: {"wall":
{"p50_ms", "p90_ms", "mean_ms", "min_ms", "max_ms", "count"}, "worker_cpu": {...},
"sentinel_cpu": {...} or null}}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


def settled_cpu_seconds(sentinel: int) -> float:
    """The sentinel's CPU time once it sleeps in poll() on the worker's pidfd (its start
    overlaps the worker's, so at `ready` it may still be the shell's child or starting up)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{sentinel}/cmdline", "rb") as f:
                python = not f.read().startswith(b"/bin/sh")
            with open(f"/proc/{sentinel}/wchan") as f:
                if python and "poll" in f.read():
                    break
        except OSError:
            break
        time.sleep(0.002)
    return cpu_seconds(sentinel)


def read_frame(fd: int) -> dict:
    data = b""
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
        ready, _, _ = select.select([fd], [], [], 10)
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            raise RuntimeError(f"worker sent no complete frame (got {data[:200]!r})")
        data += chunk
    return json.loads(data[4:])


def start_once(python: str, runtime: str, handlers: str) -> tuple[float, float, float | None]:
    """Returns (seconds from Popen to a complete `ready` frame, the worker's CPU seconds by
    then, the sentinel's CPU seconds or None)."""
    child_in, request_w = os.pipe()
    response_r, child_out = os.pipe()

    def prepare():  # in the child, between fork and exec
        os.setpgid(0, 0)
        os.dup2(child_in, 3)
        os.dup2(child_out, 4)

    env = dict(os.environ, PYTHONPATH=runtime, BRIDGEPOOL_PARENT_PID=str(os.getpid()))
    t0 = time.perf_counter()
    process = subprocess.Popen(
        [python, "-m", "bridgepool_worker", "--handlers", handlers, "--worker-id", "w-bench"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        pass_fds=(3, 4), preexec_fn=prepare)
    os.close(child_in)
    os.close(child_out)
    try:
        hello = read_frame(response_r)
        elapsed = time.perf_counter() - t0
        worker_cpu = cpu_seconds(process.pid)
        if hello.get("event") != "ready":
            raise RuntimeError(f"not a ready handshake: {hello}")
        request = json.dumps({"id": 1, "command": "get_stats"}).encode()
        os.write(request_w, len(request).to_bytes(4, "big") + request)
        sentinel = read_frame(response_r)["result"].get("sentinel_pid")
        return elapsed, worker_cpu, settled_cpu_seconds(sentinel) if sentinel else None
    finally:
        os.close(request_w)  # EOF: the worker exits 0
        os.close(response_r)
        process.wait(10)


def summary(samples: list[float]) -> dict:
    s = sorted(x * 1000.0 for x in samples)

    def pct(p: float) -> float:
        return round(s[min(len(s) - 1, int(p / 100.0 * len(s)))], 2)

    return {"p50_ms": pct(50), "p90_ms": pct(90), "mean_ms": round(sum(s) / len(s), 2),
            "min_ms": round(s[0], 2), "max_ms": round(s[-1], 2), "count": len(s)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--handlers", default=os.path.join(REPO, "examples", "handlers.py"))
    parser.add_argument("--runtime", action="append", default=None)
    parser.add_argument("--python", default="/usr/bin/python3")
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    runtimes = options.runtime or [os.path.join(REPO, "python")]
    for runtime in runtimes:  # warm the page cache and .pyc files; not timed
        start_once(options.python, runtime, options.handlers)
    samples: dict[str, list[tuple]] = {r: [] for r in runtimes}
    order = list(runtimes)
    shuffle = random.Random(options.seed).shuffle
    for _ in range(options.count):
        shuffle(order)
        for runtime in order:
            samples[runtime].append(start_once(options.python, runtime, options.handlers))
    result = {}
    for runtime, rows in samples.items():
        sentinel = [r[2] for r in rows if r[2] is not None]
        result[runtime] = {"wall": summary([r[0] for r in rows]),
                           "worker_cpu": summary([r[1] for r in rows]),
                           "sentinel_cpu": summary(sentinel) if sentinel else None}
        line = [f"{runtime}:"]
        for key, stats in result[runtime].items():
            if stats is not None:
                line.append(f"{key} p50 {stats['p50_ms']} p90 {stats['p90_ms']} ms;")
        print(" ".join(line) + f" n={options.count}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
