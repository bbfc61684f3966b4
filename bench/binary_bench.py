"""Echo of a 1 MiB float64 array (issue #11): attachments against base64-in-JSON and against
multiprocessing (pickle), 2 workers, in the same run.

  * attachments:  bridgepool bench --command echo_array, the array sent as {"dtype", "shape",
                  "data"} (a binary value: the handler gets a numpy.ndarray, returns it);
  * base64:       bridgepool bench --command echo_base64_array, the same bytes as base64 text in
                  the JSON (the handler decodes it into numpy and encodes its reply the same way);
  * pickle:       multiprocessing.Pool(2).imap(echo_array, arrays, chunksize=1).

Both bridgepool runs use 2 callers (bench/array_handlers.py). Rounds alternate the three and
the medians are reported with the issue's goals: attachments >= 10x base64 and >= 2x pickle.
The last line of stdout is one JSON object (scripts/bench reads it).

  /usr/bin/python3 bench/binary_bench.py --bridgepool build/bridgepool [--smoke] [--rounds N]
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time

import numpy

from payload_sweep import bench_json, parse_bench_args

WORKERS = 2
VALUES = 128 * 1024  # float64: 1 MiB
GOAL_VS_BASE64 = 10.0
GOAL_VS_PICKLE = 2.0


def echo_array(array):
    return array


def run_bridgepool(binary: str, python: str, handlers: str, command: str, args: dict,
                   requests: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(args, f, separators=(",", ":"))
        path = f.name
    try:
        result = bench_json(binary, [
            "--workers", str(WORKERS), "--concurrency", str(WORKERS), "--requests",
            str(requests), "--command", command, "--args-file", path, "--handlers", handlers,
            "--python", python], requests)
    finally:
        os.unlink(path)
    return float(result["throughput_per_s"])


def run_pickle(pool, array, requests: int) -> float:
    t0 = time.perf_counter()
    n = sum(1 for _ in pool.imap(echo_array, [array] * requests, chunksize=1))
    elapsed = time.perf_counter() - t0
    if n != requests:
        raise RuntimeError(f"imap returned {n} of {requests}")
    return requests / elapsed


def main(argv: list[str] | None = None) -> int:
    a = parse_bench_args(__doc__, argv, rounds=3, smoke_help="one round of 20 requests each")
    here = os.path.dirname(os.path.abspath(__file__))
    handlers = os.path.join(here, "array_handlers.py")
    array = numpy.arange(VALUES, dtype="<f8") * 0.5
    text = base64.b64encode(array.tobytes()).decode("ascii")
    attachment_args = {"a": {"dtype": "<f8", "shape": [VALUES], "data": {"$base64": text}}}
    base64_args = {"a": text}
    rounds = 1 if a.smoke else a.rounds
    fast_n, slow_n = (20, 20) if a.smoke else (1500, 150)
    rates = {"attachments": [], "base64": [], "pickle": []}
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(WORKERS) as pool:
        list(pool.imap(echo_array, [array] * 20, chunksize=1))  # both workers up
        for _ in range(rounds):
            rates["attachments"].append(run_bridgepool(
                a.bridgepool, a.python, handlers, "echo_array", attachment_args, fast_n))
            rates["base64"].append(run_bridgepool(
                a.bridgepool, a.python, handlers, "echo_base64_array", base64_args, slow_n))
            rates["pickle"].append(run_pickle(pool, array, fast_n))
    med = {k: statistics.median(v) for k, v in rates.items()}
    vs_base64 = med["attachments"] / med["base64"]
    vs_pickle = med["attachments"] / med["pickle"]
    print(f"1 MiB float64 echo, {WORKERS} workers: attachments {med['attachments']:,.0f}/s, "
          f"base64-in-JSON {med['base64']:,.0f}/s ({vs_base64:.1f}x, goal {GOAL_VS_BASE64:g}x), "
          f"multiprocessing pickle {med['pickle']:,.0f}/s ({vs_pickle:.2f}x, goal "
          f"{GOAL_VS_PICKLE:g}x)", flush=True)
    print(json.dumps({"bytes": VALUES * 8, "workers": WORKERS, "rounds": rounds,
                      "attachments_per_s": med["attachments"], "base64_per_s": med["base64"],
                      "pickle_per_s": med["pickle"], "vs_base64": vs_base64,
                      "vs_pickle": vs_pickle, "goal_vs_base64": GOAL_VS_BASE64,
                      "goal_vs_pickle": GOAL_VS_PICKLE,
                      "goal_met": vs_base64 >= GOAL_VS_BASE64 and vs_pickle >= GOAL_VS_PICKLE}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
