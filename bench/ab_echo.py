"""Echo throughput of two (or more) bridgepool builds at several caller counts, in alternating
rounds, so drift on a shared VM hits every build alike; prints medians (min-max) and the
c/c_min ratios. Used for issue #11's hand-off figures (docs/benchmarks.md).

  /usr/bin/python3 bench/ab_echo.py --rounds 9 before=OLD/build/bridgepool after=build/bridgepool

Each binary must sit in its build tree (it finds the Python runtime from there).
"""

import argparse
import json
import statistics
import subprocess
import sys


def run_once(binary: str, concurrency: int, requests: int, workers: int, payload: str,
             python: str) -> dict:
    out = subprocess.run(
        [binary, "bench", "--workers", str(workers), "--concurrency", str(concurrency),
         "--requests", str(requests), "--command", "echo", "--args", payload,
         "--python", python, "--json", "--no-progress"],
        capture_output=True, text=True, check=False)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        sys.exit(f"ab_echo: {binary} failed (exit {out.returncode}): {out.stderr[-500:]}")
    return json.loads(lines[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("builds", nargs="+", help="NAME=PATH of a bridgepool binary")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--requests", type=int, default=60000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", default="2,4,8")
    ap.add_argument("--payload-bytes", type=int, default=64)
    ap.add_argument("--python", default="/usr/bin/python3")
    a = ap.parse_args()
    builds = {}
    for spec in a.builds:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            ap.error(f"expected NAME=PATH, got {spec!r}")
        builds[name] = path
    counts = [int(c) for c in a.concurrency.split(",")]
    if a.rounds < 1 or not counts or min(counts) < 1:
        ap.error("--rounds and every --concurrency must be >= 1")
    payload = json.dumps({"data": "x" * a.payload_bytes}, separators=(",", ":"))
    rates: dict[tuple[str, int], list[float]] = {}
    waits: dict[tuple[str, int], list[float]] = {}
    for _ in range(a.rounds):
        for name, binary in builds.items():
            for c in counts:
                d = run_once(binary, c, a.requests, a.workers, payload, a.python)
                rates.setdefault((name, c), []).append(d["throughput_per_s"])
                if "queue_wait_us" in d:
                    waits.setdefault((name, c), []).append(d["queue_wait_us"]["p99"])
    base = counts[0]
    result = {}
    for name in builds:
        med = {c: statistics.median(rates[(name, c)]) for c in counts}
        cells = [f"c={c} {med[c]:,.0f} ({min(rates[(name, c)]):,.0f}-{max(rates[(name, c)]):,.0f})"
                 for c in counts]
        ratios = [f"c{c}/c{base} {med[c] / med[base]:.2f}" for c in counts[1:]]
        print(f"{name}: " + "  ".join(cells + ratios))
        result[name] = {"median_per_s": med,
                        "queue_wait_p99_us": {c: statistics.median(waits[(name, c)])
                                              for c in counts if (name, c) in waits}}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
