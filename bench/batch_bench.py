"""Batched echo throughput: bridgepool execute_many against multiprocessing imap (issue #11).

Both sides echo the same ~64-byte items, each distinct ({"s": 40 characters, "i": index}; a
list of one repeated dict would flatter pickle, whose memo sends a repeated object once):

  * bridgepool:  bridgepool bench --workers 2 --concurrency C --batch 64 (C = 2 and 4), so every
                 call is execute_many of 64 items and --requests counts items;
  * the same with --command echo_batch (C = 4): the echo as a batch handler
                 (@command(..., batch=True)), which gets each chunk in one call;
  * multiprocessing.Pool(2).imap(echo, items, chunksize=64).

Rounds alternate the two (the machine's noise hits both alike); the medians are reported with
the ratio against the issue's goal (>= 1.5x imap). The last line of stdout is one JSON object
(scripts/bench reads it; it also compares the batch figure with the unbatched two-pair floor of
the same run).

  /usr/bin/python3 bench/batch_bench.py --bridgepool build/bridgepool [--smoke] [--rounds N]
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import sys

# echo: the function the pool's workers unpickle by name, so it must be importable from here.
from payload_sweep import bench_json, echo, parse_bench_args, run_imap  # noqa: F401

WORKERS = 2
BATCH = 64
GOAL_VS_IMAP = 1.5
TEXT = "0123456789012345678901234567890123456789"


def run_bridgepool(binary: str, python: str, handlers: str, concurrency: int,
                   items: int, command: str = "echo") -> float:
    result = bench_json(binary, [
        "--workers", str(WORKERS), "--concurrency", str(concurrency), "--requests", str(items),
        "--batch", str(BATCH), "--command", command, "--args", json.dumps({"s": TEXT}),
        "--handlers", handlers, "--python", python], items)
    return float(result["throughput_per_s"])


def main(argv: list[str] | None = None) -> int:
    a = parse_bench_args(
        __doc__, argv, rounds=5, smoke_help="one round of 2,000 items",
        extra=lambda ap: ap.add_argument("--handlers", default=None,
                                         help="handlers file (default: the examples')"))
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    handlers = a.handlers or os.path.join(repo, "examples", "handlers.py")
    items = 2_000 if a.smoke else 400_000
    rounds = 1 if a.smoke else a.rounds
    figures: dict[str, list[float]] = {"bridgepool_c2": [], "bridgepool_c4": [], "imap": [],
                                       "batch_handler_c4": []}
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(WORKERS) as pool:
        payload = [{"s": TEXT, "i": i} for i in range(items)]
        run_imap(pool, payload[:2_000], BATCH)  # both workers up
        for r in range(rounds):
            figures["bridgepool_c2"].append(run_bridgepool(a.bridgepool, a.python, handlers, 2,
                                                           items))
            figures["imap"].append(run_imap(pool, payload, BATCH))
            figures["bridgepool_c4"].append(run_bridgepool(a.bridgepool, a.python, handlers, 4,
                                                           items))
            # The same echo as a batch handler (@command(..., batch=True)): a chunk, one call.
            figures["batch_handler_c4"].append(run_bridgepool(a.bridgepool, a.python, handlers,
                                                              4, items, "echo_batch"))
            print(f"round {r + 1}: bridgepool c2 {figures['bridgepool_c2'][-1]:,.0f}/s, "
                  f"c4 {figures['bridgepool_c4'][-1]:,.0f}/s, batch handler c4 "
                  f"{figures['batch_handler_c4'][-1]:,.0f}/s; imap "
                  f"{figures['imap'][-1]:,.0f}/s", flush=True)
    med = {k: statistics.median(v) for k, v in figures.items()}
    best = max(med["bridgepool_c2"], med["bridgepool_c4"])
    ratio = best / med["imap"] if med["imap"] > 0 else None
    handler_ratio = med["batch_handler_c4"] / med["imap"] if med["imap"] > 0 else None
    print(f"median: bridgepool {best:,.0f} items/s, imap(chunksize={BATCH}) "
          f"{med['imap']:,.0f} items/s: {ratio:.2f}x (goal {GOAL_VS_IMAP}x "
          f"{'met' if ratio and ratio >= GOAL_VS_IMAP else 'NOT met'}); with a batch handler "
          f"{med['batch_handler_c4']:,.0f} items/s: {handler_ratio:.2f}x")
    print(json.dumps({"batch": BATCH, "workers": WORKERS, "rounds": rounds, "items": items,
                      "bridgepool_c2_per_s": med["bridgepool_c2"],
                      "bridgepool_c4_per_s": med["bridgepool_c4"],
                      "bridgepool_per_s": best, "imap_per_s": med["imap"], "ratio": ratio,
                      "batch_handler_per_s": med["batch_handler_c4"],
                      "batch_handler_ratio": handler_ratio,
                      "goal_ratio": GOAL_VS_IMAP, "rounds_raw": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
