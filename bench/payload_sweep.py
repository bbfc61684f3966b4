"""Echo throughput by payload size and shape: bridgepool against multiprocessing (issue #11).

For each payload — a string of N bytes ({"data": "xx..."}) and a nested object of about N bytes
of JSON (a list of small records, each a dict with an int, a string, a float and a list) — it
runs, with 2 workers and 2 callers each:

  * bridgepool:  bridgepool bench --workers 2 --concurrency 2 --command echo --args-file F
  * multiprocessing.Pool(2).imap(echo, items, chunksize=1), items distinct objects

and prints requests/s, the ratio and the issue's goal (>= 2x at every size). Sizes 64 B, 1 KB,
10 KB, 100 KB and 1 MB; each run is sized to take about a second. The last line of stdout is
one JSON object (scripts/bench reads it).

  /usr/bin/python3 bench/payload_sweep.py --bridgepool build/bridgepool [--smoke] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time

SIZES = (64, 1024, 10 * 1024, 100 * 1024, 1024 * 1024)
SMOKE_SIZES = (64, 10 * 1024)
GOAL = 2.0
WORKERS = 2


def echo(args: dict) -> dict:
    return args


def string_payload(size: int) -> dict:
    return {"data": "x" * size}


def nested_payload(size: int) -> dict:
    """A list of records whose JSON text is about `size` bytes (at least one record)."""
    records = []
    length = len('{"records":[]}')
    i = 0
    while True:
        rec = {"id": i, "name": f"item-{i}", "score": i * 0.5, "tags": ["a", "b", "c"]}
        step = len(json.dumps(rec, separators=(",", ":"))) + 1
        if records and length + step > size:
            break
        records.append(rec)
        length += step
        i += 1
    return {"records": records}


def requests_for(size: int, smoke: bool) -> int:
    if smoke:
        return 50
    # About a second for bridgepool at the sizes measured so far (50k/s small, ~1k/s at 1 MB).
    return max(300, min(40_000, 400_000_000 // (size * 40 + 10_000)))


def bench_json(binary: str, args: list[str], expect_ok: int) -> dict:
    """Runs `bridgepool bench ARGS --json`; returns its summary, which must count `expect_ok`
    successes (bench/batch_bench.py too)."""
    out = subprocess.run([binary, "bench", *args, "--json", "--no-progress"],
                         capture_output=True, text=True, check=False)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"bridgepool bench failed (exit {out.returncode}): "
                           f"{out.stderr.strip()[-400:]}")
    result = json.loads(lines[-1])
    if result.get("ok") != expect_ok:
        raise RuntimeError(f"bridgepool answered {result.get('ok')} of {expect_ok}: "
                           f"{result.get('errors')}")
    return result


def run_bridgepool(binary: str, python: str, payload: dict, requests: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(payload, f, separators=(",", ":"))
        path = f.name
    try:
        return bench_json(binary, ["--workers", str(WORKERS), "--concurrency", str(WORKERS),
                                   "--requests", str(requests), "--command", "echo",
                                   "--args-file", path, "--python", python], requests)
    finally:
        os.unlink(path)


def run_imap(pool, items: list, chunksize: int = 1) -> float:
    """Echoes `items` through pool.imap; returns items per second (bench/batch_bench.py too)."""
    t0 = time.perf_counter()
    n = sum(1 for _ in pool.imap(echo, items, chunksize=chunksize))
    elapsed = time.perf_counter() - t0
    if n != len(items):
        raise RuntimeError(f"imap returned {n} of {len(items)}")
    return len(items) / elapsed


def parse_bench_args(description: str, argv: list[str] | None, rounds: int | None = None,
                     smoke_help: str = "a short run", extra=None) -> argparse.Namespace:
    """The command line the issue #11 benchmarks share: --bridgepool (checked), --python,
    --smoke and, when `rounds` is given, --rounds (default `rounds`, at least 1). `extra(ap)`
    may add options (bench/batch_bench.py, bench/binary_bench.py)."""
    ap = argparse.ArgumentParser(description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bridgepool", required=True, help="the bridgepool binary (in its build tree)")
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter of the workers")
    ap.add_argument("--smoke", action="store_true", help=smoke_help)
    if rounds is not None:
        ap.add_argument("--rounds", type=int, default=rounds,
                        help=f"alternating rounds (default {rounds})")
    if extra is not None:
        extra(ap)
    a = ap.parse_args(argv)
    if not os.access(a.bridgepool, os.X_OK):
        ap.error(f"--bridgepool: {a.bridgepool} is not an executable")
    if rounds is not None and a.rounds < 1:
        ap.error("--rounds must be at least 1")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_bench_args(__doc__, argv, smoke_help="two sizes, 50 requests each",
                         extra=lambda ap: ap.add_argument(
                             "--json", action="store_true",
                             help="(the JSON line is always printed)"))
    sizes = SMOKE_SIZES if a.smoke else SIZES
    rows = []
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(WORKERS) as pool:
        list(pool.imap(echo, [{}] * 200, chunksize=1))  # both workers up
        for shape, make in (("string", string_payload), ("nested", nested_payload)):
            for size in sizes:
                payload = make(size)
                actual = len(json.dumps(payload, separators=(",", ":")))
                n = requests_for(actual, a.smoke)
                bp = run_bridgepool(a.bridgepool, a.python, payload, n)
                # Distinct objects (a shallow copy each): pickle's memo spans one task only with
                # chunksize=1 anyway, so this is what a caller with distinct arguments sends.
                imap = run_imap(pool, [dict(payload) for _ in range(n)])
                bp_rate = bp["throughput_per_s"]
                ratio = bp_rate / imap if imap > 0 else None
                rows.append({"shape": shape, "size": size, "json_bytes": actual, "requests": n,
                             "bridgepool_per_s": bp_rate,
                             "bridgepool_p50_us": bp["latency_us"]["p50"],
                             "imap_per_s": imap, "ratio": ratio,
                             "goal_met": ratio is not None and ratio >= GOAL})
                print(f"{shape:7s} {actual:>9,d} B  bridgepool {bp_rate:10,.0f}/s "
                      f"(p50 {bp['latency_us']['p50']:9.1f} us)  imap {imap:10,.0f}/s  "
                      f"ratio {ratio:5.2f}x  {'met' if ratio >= GOAL else 'NOT met'}",
                      flush=True)
    print(json.dumps({"goal_ratio": GOAL, "workers": WORKERS, "rows": rows,
                      "all_met": all(r["goal_met"] for r in rows)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
