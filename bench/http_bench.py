#!/usr/bin/env python3
"""HTTP throughput of `bridgepool serve` against its peers, in ONE run.

  1. bridgepool serve --workers 2: echo through POST /v1/execute, driven by wrk (http_post.lua)
  2. gunicorn, 2 sync workers, the same JSON echo (bench/wsgi_echo.py), driven by the same wrk
  3. bridgepool bench --workers 2 --concurrency C: the library's own throughput, no HTTP

Prints req/s, p50/p99 latency and the ratios against the goals (HTTP >= 3x gunicorn, HTTP >=
0.5x the library's bench). The runs alternate (serve, gunicorn, bench, repeated --rounds times;
the best of each is compared) so that drift on a shared machine hits every side alike.
--smoke: one short round, and a non-zero exit unless every figure is > 0 (ctest bench_smoke_http).
Benchmarks are not tests: without --smoke the exit status is 0 whatever the ratios.
Standard library only; run with /usr/bin/python3 (gunicorn is Debian's python3-gunicorn).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
GUNICORN_GOAL = 3.0
BENCH_GOAL = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def to_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, a) -> dict:
    cmd = ["wrk", f"-t{a.threads}", f"-c{a.connections}", f"-d{a.duration}s", "--latency",
           "-s", str(BENCH / "http_post.lua"), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=a.duration + 60).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    if not (rate and p50 and p99):
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    return {"req_per_s": float(rate.group(1)), "p50_ms": to_ms(p50.group(1)),
            "p99_ms": to_ms(p99.group(1)), "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": sock.group(1) if sock else ""}


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bench_serve(a) -> dict:
    env = dict(os.environ, BRIDGEPOOL_PYTHON=a.python)
    proc = subprocess.Popen([str(a.cli), "serve", "--listen", "127.0.0.1:0", "--workers", "2",
                             "--log-level", "warn"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        m = re.match(r"bridgepool serve: listening on (http://\S+)", line)
        if not m:
            raise RuntimeError(f"bridgepool serve did not start: {line!r}")
        return run_wrk(m.group(1) + "/v1/execute", a)
    finally:
        stop(proc)


def bench_gunicorn(a) -> dict:
    port = free_port()
    proc = subprocess.Popen([a.python, "-m", "gunicorn", "-w", "2", "-k", "sync", "-b",
                             f"127.0.0.1:{port}", "--chdir", str(BENCH), "--log-level", "warning",
                             "wsgi_echo:app"])
    try:
        wait_port(port, 30)
        return run_wrk(f"http://127.0.0.1:{port}/v1/execute", a)
    finally:
        stop(proc)


def bench_library(a) -> dict:
    requests = max(1000, int(a.duration * 20000))
    out = subprocess.run([str(a.cli), "bench", "--workers", "2", "--concurrency",
                          str(a.connections), "--requests", str(requests), "--command", "echo",
                          "--args", '{"x":1,"s":"hello"}', "--python", a.python, "--json",
                          "--no-progress"], capture_output=True, text=True, timeout=600).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    lat = summary["latency_us"]
    return {"req_per_s": summary["throughput_per_s"], "p50_ms": lat["p50"] / 1000.0,
            "p99_ms": lat["p99"] / 1000.0, "non_2xx": sum(summary["errors"].values())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default=str(REPO / "build"))
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    a = ap.parse_args(argv)
    if a.smoke:
        a.duration, a.rounds = 1, 1
    a.duration = max(1, int(a.duration))
    a.cli = Path(a.build_dir) / "bridgepool"
    for tool in ("wrk",):
        if not shutil.which(tool):
            print(f"http_bench: {tool} is not installed", file=sys.stderr)
            return 1
    runs = {"serve": [], "gunicorn": [], "bench": []}
    for _ in range(a.rounds):
        runs["serve"].append(bench_serve(a))
        runs["gunicorn"].append(bench_gunicorn(a))
        runs["bench"].append(bench_library(a))
    best = {k: max(v, key=lambda r: r["req_per_s"]) for k, v in runs.items()}
    print(f"HTTP echo, 2 workers, wrk -t{a.threads} -c{a.connections} -d{a.duration}s, "
          f"best of {a.rounds}{' (SMOKE)' if a.smoke else ''}")
    print(f"{'':28} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    names = {"serve": "bridgepool serve (HTTP)", "gunicorn": "gunicorn sync (HTTP)",
             "bench": "bridgepool bench (library)"}
    for key, label in names.items():
        r = best[key]
        print(f"{label:28} {r['req_per_s']:10.0f} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f}")
    vs_gunicorn = best["serve"]["req_per_s"] / best["gunicorn"]["req_per_s"]
    vs_bench = best["serve"]["req_per_s"] / best["bench"]["req_per_s"]
    print(f"serve / gunicorn  {vs_gunicorn:5.2f}x  (goal >= {GUNICORN_GOAL}x: "
          f"{'met' if vs_gunicorn >= GUNICORN_GOAL else 'NOT met'})")
    print(f"serve / bench     {vs_bench:5.2f}x  (goal >= {BENCH_GOAL}x: "
          f"{'met' if vs_bench >= BENCH_GOAL else 'NOT met'})")
    if a.json:
        print(json.dumps({"runs": runs, "best": best, "serve_vs_gunicorn": vs_gunicorn,
                          "serve_vs_bench": vs_bench}))
    if a.smoke:
        bad = [k for k, r in best.items() if not r["req_per_s"] > 0 or r["non_2xx"]]
        if bad:
            print(f"http_bench smoke: failed for {bad}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
