#!/usr/bin/env python3
"""The Python peers of the bridgepool benchmarks (SPEC §9), standard library only.

Runs the same small JSON-like echo that `bridgepool bench --command echo` runs, with 2 worker
processes, through:

  * concurrent.futures.ProcessPoolExecutor(max_workers=2)
      - executor.map(echo, items, chunksize=1)
      - submit() with a window of in-flight futures
    the faster of the two is reported as "ProcessPoolExecutor" (both are printed);
  * multiprocessing.Pool(2).imap(echo, items, chunksize=1).

Latency mode (always run as well): sequential round trips at concurrency 1 —
`executor.submit(echo, {}).result()` and `pool.apply(echo, ({},))` — p50/p90/p99/mean in µs.

Every pool is started and warmed (all workers up, code paths hot) before anything is timed.
The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import multiprocessing
import os
import sys
import time

WORKERS = 2


def echo(args: dict) -> dict:
    """The handler under test: returns its argument unchanged (pickled both ways)."""
    return args


def percentiles(samples_us: list[float]) -> dict:
    s = sorted(samples_us)
    n = len(s)

    def rank(q: float) -> float:
        idx = min(max(int(q * n + 0.999999), 1), n)
        return s[idx - 1]

    return {
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "max": s[-1],
        "mean": sum(s) / n,
    }


def make_items(n: int, payload_bytes: int) -> list[dict]:
    data = "x" * payload_bytes
    return [{"data": data} for _ in range(n)]


def check(results: list, n: int, payload_bytes: int) -> None:
    if len(results) != n:
        raise RuntimeError(f"expected {n} results, got {len(results)}")
    for r in results:
        if len(r["data"]) != payload_bytes:
            raise RuntimeError("echoed payload has the wrong size")


def warm_executor(ex: concurrent.futures.ProcessPoolExecutor, payload_bytes: int, n: int) -> None:
    # ProcessPoolExecutor starts workers lazily (one per submit while fewer than max_workers
    # are idle); a burst of work makes sure both are up and every code path has run once.
    items = make_items(n, payload_bytes)
    check(list(ex.map(echo, items, chunksize=1)), n, payload_bytes)
    for item in items[: min(n, 200)]:
        ex.submit(echo, item).result()


def bench_executor_map(ex, items, payload_bytes) -> float:
    t0 = time.perf_counter()
    results = list(ex.map(echo, items, chunksize=1))
    dt = time.perf_counter() - t0
    check(results, len(items), payload_bytes)
    return len(items) / dt


def bench_executor_window(ex, items, payload_bytes, window: int) -> float:
    results = []
    inflight: collections.deque = collections.deque()
    t0 = time.perf_counter()
    for item in items:
        if len(inflight) >= window:
            results.append(inflight.popleft().result())
        inflight.append(ex.submit(echo, item))
    while inflight:
        results.append(inflight.popleft().result())
    dt = time.perf_counter() - t0
    check(results, len(items), payload_bytes)
    return len(items) / dt


def bench_imap(pool, items, payload_bytes) -> float:
    t0 = time.perf_counter()
    results = list(pool.imap(echo, items, chunksize=1))
    dt = time.perf_counter() - t0
    check(results, len(items), payload_bytes)
    return len(items) / dt


def latency(call, n: int) -> dict:
    samples = []
    arg: dict = {}
    for _ in range(n):
        t0 = time.perf_counter_ns()
        r = call(arg)
        samples.append((time.perf_counter_ns() - t0) / 1000.0)
        if r != arg:
            raise RuntimeError("latency echo returned the wrong value")
    return percentiles(samples)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20000,
                    help="echo round trips per throughput figure")
    ap.add_argument("--payload-bytes", type=int, default=64, help="length of the echoed string")
    ap.add_argument("--latency-requests", type=int, default=None,
                    help="sequential round trips for the latency figures "
                         "(default: min(requests, 5000))")
    ap.add_argument("--window", type=int, default=8,
                    help="in-flight futures for the submit-window variant (default 8)")
    ap.add_argument("--warmup", type=int, default=500, help="warm-up round trips per pool")
    ap.add_argument("--json", action="store_true",
                    help="accepted for symmetry; the JSON line is always printed")
    a = ap.parse_args(argv)
    if a.requests < 1 or a.payload_bytes < 0 or a.window < 1 or a.warmup < 1:
        ap.error("--requests, --window and --warmup must be >= 1, --payload-bytes >= 0")
    lat_n = a.latency_requests if a.latency_requests is not None else min(a.requests, 5000)
    lat_n = max(lat_n, 1)

    method = multiprocessing.get_start_method()
    items = make_items(a.requests, a.payload_bytes)
    out: dict = {
        "requests": a.requests,
        "payload_bytes": a.payload_bytes,
        "workers": WORKERS,
        "latency_requests": lat_n,
        "start_method": method,
        "python": sys.version.split()[0],
        "cpus_allowed": len(os.sched_getaffinity(0)),
    }

    # --- concurrent.futures.ProcessPoolExecutor --------------------------------------------
    with concurrent.futures.ProcessPoolExecutor(max_workers=WORKERS) as ex:
        warm_executor(ex, a.payload_bytes, a.warmup)
        map_per_s = bench_executor_map(ex, items, a.payload_bytes)
        window_per_s = bench_executor_window(ex, items, a.payload_bytes, a.window)
        ppe_lat = latency(lambda arg: ex.submit(echo, arg).result(), lat_n)
    best_method = "map" if map_per_s >= window_per_s else f"submit_window_{a.window}"
    out["ProcessPoolExecutor"] = {
        "map_per_s": map_per_s,
        "submit_window_per_s": window_per_s,
        "window": a.window,
        "throughput_per_s": max(map_per_s, window_per_s),
        "best_method": best_method,
        "latency_us": ppe_lat,
    }
    print(f"ProcessPoolExecutor(2) map(chunksize=1):      {map_per_s:10.0f} round trips/s")
    print(f"ProcessPoolExecutor(2) submit, window {a.window:<3d}:   "
          f"{window_per_s:10.0f} round trips/s")
    print(f"ProcessPoolExecutor(2) submit().result() latency: p50={ppe_lat['p50']:.1f} us "
          f"p90={ppe_lat['p90']:.1f} p99={ppe_lat['p99']:.1f} mean={ppe_lat['mean']:.1f}")

    # --- multiprocessing.Pool.imap -----------------------------------------------------------
    with multiprocessing.Pool(WORKERS) as pool:
        warm = make_items(a.warmup, a.payload_bytes)
        check(list(pool.imap(echo, warm, chunksize=1)), a.warmup, a.payload_bytes)
        imap_per_s = bench_imap(pool, items, a.payload_bytes)
        mp_lat = latency(lambda arg: pool.apply(echo, (arg,)), lat_n)
        pool.close()
        pool.join()
    out["multiprocessing_imap"] = {"throughput_per_s": imap_per_s, "latency_us": mp_lat}
    print(f"multiprocessing.Pool(2) imap(chunksize=1):    {imap_per_s:10.0f} round trips/s")
    print(f"multiprocessing.Pool(2) apply() latency:      p50={mp_lat['p50']:.1f} us "
          f"p90={mp_lat['p90']:.1f} p99={mp_lat['p99']:.1f} mean={mp_lat['mean']:.1f}")

    print(json.dumps(out, sort_keys=True))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
