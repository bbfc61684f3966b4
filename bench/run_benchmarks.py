#!/usr/bin/env python3
"""Run every bridgepool benchmark in ONE run and print the SPEC §9 comparison table.

In order (floor and bridgepool latency runs are interleaved so that drift on a shared VM hits
both sides of a ratio alike):

  1. floor latency, pinned      pipe_floor --mode latency               (taskset -c 0)
  2. bridgepool ping, pinned    bridgepool bench --workers 1 --concurrency 1 --command ping
  3. floor latency, unpinned
  4. bridgepool ping, unpinned
  5. two-pair floor             pipe_floor --mode throughput --pairs 2          (the §9 floor)
     ... each pair pinned       pipe_floor --mode throughput --pairs 2 --pin-pairs   (info)
  6. bridgepool echo            bridgepool bench --workers 2 --concurrency {2,4,8} --command echo
  7. Python peers               bench/peers.py (ProcessPoolExecutor, multiprocessing.Pool.imap)
  8. resilience overhead        resilience_overhead_bench, pinned and unpinned
  9. metrics                    metrics_bench --mode overhead (pinned, unpinned), --mode scrape
     checkout + checkin         checkout_bench (no I/O; 1 and 2 threads)
     payload sweep              bench/payload_sweep.py: echo of strings and nested objects of
                                64 B .. 1 MB, bridgepool vs multiprocessing imap (issue #11)
     batches                    bench/batch_bench.py: execute_many of 64 items vs imap with
                                chunksize 64 over distinct items (issue #11), and vs the floor
     binary payloads            bench/binary_bench.py: 1 MiB float64 echo as an attachment vs
                                base64-in-JSON vs multiprocessing pickle; attachment_bench: peak
                                RSS growth per side around a 64 MiB echo (copies alive at once)
 10. open loop                  bridgepool bench --rate 1000 (the SLA row)
 11. replacement (issue #10)    per handler module (examples, bench/heavy_handlers.py): the fork
                                floor (bench/fork_floor.py), then replacement_bench per start
                                method and with spares — see bench/replacement_runs.py
 12. SLA set (full mode)        bridgepool bench --rate 1000 --duration 60 --command flaky on 4
                                workers: 1% and 2% of calls crashing + 4% retryable, three
                                consecutive runs each (issue #10: success >= 99.99%, p99 < 20 ms)
 13. failure scenarios          bridgepool bench --rate 1000 --scenario NAME for cascade, timeouts,
                                breaker, slow, fallback (docs/benchmarks.md)

--scenarios-only runs just 12 and 13 (with --smoke: one short run of each crash mix and of each
scenario, the suite's bench_smoke_scenarios). --start-method, --spare-workers and --handlers are
passed to every run of 12 and 13.

Pinning uses `taskset -c 0`; the CPU affinity is inherited, so the Python processes spawned by the
pinned program run on the same CPU.

Verdicts are informational: the exit status is 0 even when a goal is not met (benchmarks are not
tests). It is non-zero when a sub-run fails or prints something that is not a JSON object on its
last line, and, with --smoke, when a sanity check fails (a figure that is not > 0, or bridgepool
`ok` != requests). Standard library only; always run with /usr/bin/python3.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import replacement_runs

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"

PING_GOAL = 1.2          # bridgepool ping p50 <= 1.2x floor p50
PPE_GOAL = 4.0           # echo throughput >= 4x ProcessPoolExecutor
IMAP_GOAL = 1.2          # echo throughput >= 1.2x multiprocessing imap
FLOOR_AIM = 0.5          # aim: >= 50% of the two-pair floor
OVERHEAD_GOAL = 1.02     # resilience layer: < 2% added latency on a successful call
METRICS_GOAL = 1.03      # metrics on the request path: < 3% added latency
SLA_P99_MS = 20.0        # 1000 req/s with 5% injected failures: p99 < 20 ms ...
SLA_SUCCESS = 0.9999     # ... and success after retries >= 99.99%
CHECKOUT_NS = 300.0      # checkout + checkin without I/O, 1 thread: < 300 ns
PAYLOAD_GOAL = 2.0       # issue #11: echo >= 2x multiprocessing imap at every payload size
BATCH_IMAP_GOAL = 1.5    # issue #11: batches of 64 >= 1.5x imap(chunksize=64), distinct items
BATCH_FLOOR_GOAL = 3.0   # ... and >= 3x the unbatched two-pair floor
BINARY_BASE64_GOAL = 10.0  # issue #11: 1 MiB float64 echo as attachment >= 10x base64-in-JSON
BINARY_PICKLE_GOAL = 2.0   # ... and >= 2x multiprocessing (pickle)
COPIES_GOAL = 2.0          # ... and a 64 MiB frame copied at most twice on each side

# (latency requests, floor warm-up, two-pair floor requests, bridgepool echo requests,
#  peer throughput requests, peer latency requests, peer warm-up)
FULL = dict(latency=20000, warmup=500, floor_tp=200000, echo=100000,
            peers=20000, peers_latency=5000, peers_warmup=500, timeout=900,
            overhead_rounds=40, sla_duration=60, metrics_rounds=40, metrics_scrapes=50,
            checkout_pairs=1000000)
SMOKE = dict(latency=300, warmup=50, floor_tp=2000, echo=1000,
             peers=300, peers_latency=100, peers_warmup=50, timeout=60,
             overhead_rounds=2, sla_duration=2, metrics_rounds=2, metrics_scrapes=3,
             checkout_pairs=20000)


# Issue #10's SLA runs: (key, label, flaky args). 1% crashes + 4% retryable is 5% failures of
# which a fifth crash; 2% + 4% is 6% of which a third crash.
SLA_MIXES = (
    ("sla_crash1", "1% crashes + 4% retryable", {"fail_rate": 0.05, "crash_share": 0.2}),
    ("sla_crash2", "2% crashes + 4% retryable", {"fail_rate": 0.06, "crash_share": 1 / 3}),
)
SCENARIOS = ("cascade", "timeouts", "breaker", "slow", "fallback")
# (runs per SLA mix, SLA run seconds, scenario seconds, rate): full runs take the figures.
SCENARIO_FULL = dict(sla_repeats=3, sla_seconds=60, scenario_seconds=60, rate=1000, timeout=300)
SCENARIO_SMOKE = dict(sla_repeats=1, sla_seconds=2, scenario_seconds=2, rate=200, timeout=60)


class Run:
    """One sub-process run: its command line, parsed last-line JSON, or why it failed."""

    def __init__(self, name: str, cmd: list[str], pinned: bool):
        self.name = name
        self.cmd = cmd
        self.pinned = pinned
        self.result: dict | None = None
        self.error: str | None = None
        self.seconds = 0.0

    def to_json(self) -> dict:
        return {"cmd": self.cmd, "pinned": self.pinned, "ok": self.error is None,
                "result": self.result, "error": self.error, "seconds": round(self.seconds, 3)}


def pin_prefix() -> tuple[list[str], object]:
    """How to pin a command to CPU 0: `taskset -c 0`, or sched_setaffinity in the child."""
    if shutil.which("taskset"):
        return ["taskset", "-c", "0"], None
    return [], (lambda: os.sched_setaffinity(0, {0}))


def execute(run: Run, timeout: float, verbose: bool) -> None:
    prefix, preexec = pin_prefix() if run.pinned else ([], None)
    exe = run.cmd[0]
    cmd = prefix + run.cmd
    run.cmd = cmd
    print(f"--> {run.name}: {' '.join(cmd)}", flush=True)
    t0 = time.monotonic()
    if not os.access(exe, os.X_OK):
        run.error = f"{exe} not found or not executable"
        print(f"    FAILED: {run.error}", flush=True)
        return
    try:
        proc = subprocess.run(cmd, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout, preexec_fn=preexec)
    except FileNotFoundError as e:
        run.error = f"cannot run: {e}"
    except subprocess.TimeoutExpired:
        run.error = f"timed out after {timeout:.0f} s"
    else:
        run.seconds = time.monotonic() - t0
        lines = proc.stdout.rstrip("\n").split("\n") if proc.stdout.strip() else []
        if verbose:
            for line in lines[:-1]:
                print(f"    {line}")
        if proc.returncode != 0:
            run.error = f"exit status {proc.returncode}"
        elif not lines:
            run.error = "no output"
        else:
            try:
                obj = json.loads(lines[-1])
            except json.JSONDecodeError as e:
                run.error = f"last line of stdout is not JSON ({e}): {lines[-1][:200]!r}"
            else:
                if isinstance(obj, dict):
                    run.result = obj
                else:
                    run.error = f"last line of stdout is not a JSON object: {lines[-1][:200]!r}"
        if run.error:
            tail = (proc.stderr or "").strip().splitlines()[-15:]
            for line in tail:
                print(f"    stderr: {line}")
    run.seconds = run.seconds or (time.monotonic() - t0)
    status = "ok" if run.error is None else f"FAILED: {run.error}"
    print(f"    {status} ({run.seconds:.1f} s)", flush=True)


def get(obj: dict | None, *path, default=None):
    cur = obj
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return default
        cur = cur[key]
    return cur


def num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def fmt_us(x) -> str:
    return "n/a" if x is None else f"{x:.1f} µs"


def fmt_rate(x) -> str:
    return "n/a" if x is None else f"{x:,.0f}/s"


def best_echo(runs: list[Run]) -> tuple[float | None, Run | None]:
    best, best_run = None, None
    for r in runs:
        v = num(get(r.result, "throughput_per_s"))
        if v is not None and (best is None or v > best):
            best, best_run = v, r
    return best, best_run


def build_table(R: dict[str, Run], echo_runs: list[Run]) -> list[dict]:
    rows: list[dict] = []

    def row(figure, bp, comp, ratio, goal, verdict):
        rows.append(dict(figure=figure, bridgepool=bp, comparison=comp,
                         ratio="n/a" if ratio is None else f"{ratio:.2f}×",
                         ratio_value=ratio, goal=goal, verdict=verdict))

    def lower_is_better(figure, bp, floor, limit, comp_label):
        ratio = bp / floor if bp is not None and floor else None
        verdict = "n/a" if ratio is None else ("met" if ratio <= limit else "NOT met")
        row(figure, fmt_us(bp), f"{fmt_us(floor)} ({comp_label})", ratio, f"≤ {limit}× floor",
            verdict)

    def higher_is_better(figure, bp, comp, limit, comp_label, goal_text):
        ratio = bp / comp if bp is not None and comp else None
        verdict = "n/a" if ratio is None else ("met" if ratio >= limit else "NOT met")
        bp_text = fmt_rate(bp) + (f" (c={conc})" if bp is not None and conc else "")
        row(figure, bp_text, f"{fmt_rate(comp)} ({comp_label})", ratio, goal_text, verdict)

    lower_is_better("ping p50, pinned to 1 CPU",
                    num(get(R["bp_ping_pinned"].result, "latency_us", "p50")),
                    num(get(R["floor_lat_pinned"].result, "latency_us", "p50")),
                    PING_GOAL, "floor, pinned")
    lower_is_better("ping p50, unpinned",
                    num(get(R["bp_ping_unpinned"].result, "latency_us", "p50")),
                    num(get(R["floor_lat_unpinned"].result, "latency_us", "p50")),
                    PING_GOAL, "floor, unpinned")

    echo_best, echo_run = best_echo(echo_runs)
    conc = get(echo_run.result, "concurrency") if echo_run else None
    label = "echo throughput, 2 workers"
    peers = R["peers"].result
    ppe_method = get(peers, "ProcessPoolExecutor", "best_method")
    higher_is_better(label, echo_best, num(get(peers, "ProcessPoolExecutor", "throughput_per_s")),
                     PPE_GOAL, f"ProcessPoolExecutor {ppe_method or ''}".strip(),
                     f"≥ {PPE_GOAL:g}× ProcessPoolExecutor")
    higher_is_better(label, echo_best, num(get(peers, "multiprocessing_imap", "throughput_per_s")),
                     IMAP_GOAL, "multiprocessing imap", f"≥ {IMAP_GOAL:g}× multiprocessing imap")
    higher_is_better(label, echo_best, num(get(R["floor_tp"].result, "throughput_per_s")),
                     FLOOR_AIM, "two-pair floor", f"aim ≥ {FLOOR_AIM:.0%} of two-pair floor")

    # Added latency on a ping: (result prefix, row, with-key, without-key, baseline, goal, text).
    for prefix, what, on, off, baseline, goal, goal_text in (
            ("overhead", "resilience layer", "with_us", "without_us",
             "same pool, layer disabled", OVERHEAD_GOAL, "< 1.02× (2% added)"),
            ("metrics", "metrics on", "on_us", "off_us",
             "same pool, metrics detached", METRICS_GOAL, "< 1.03× (3% added)")):
        for where in ("pinned", "unpinned"):
            res = R[f"{prefix}_{where}"].result
            ratio = num(get(res, "p50_ratio"))
            verdict = "n/a" if ratio is None else ("met" if ratio < goal else "NOT met")
            row(f"{what}, ping p50, {where}", fmt_us(num(get(res, on, "p50"))),
                f"{fmt_us(num(get(res, off, 'p50')))} ({baseline})", ratio, goal_text, verdict)
    ck = R["checkout"].result
    for threads, key in ((1, "1_thread"), (2, "2_threads")):
        pair = num(get(ck, f"states_{key}_ns"))
        registry_only = num(get(ck, f"registry_{key}_ns"))
        text = "n/a" if pair is None else f"{pair:.0f} ns"
        comp = "n/a" if registry_only is None else f"{registry_only:.0f} ns (registry alone)"
        if threads == 1:
            verdict = "n/a" if pair is None else ("met" if pair < CHECKOUT_NS else "NOT met")
            row("checkout + checkin without I/O, 1 thread", text, comp, None,
                f"< {CHECKOUT_NS:g} ns", verdict)
        else:
            row("checkout + checkin without I/O, 2 threads (info)", text, comp, None, "—", "info")
    for r in get(R["payload_sweep"].result, "rows", default=[]) or []:
        ratio = num(r.get("ratio"))
        verdict = "n/a" if ratio is None else ("met" if ratio >= PAYLOAD_GOAL else "NOT met")
        row(f"echo {r.get('shape')} of {r.get('json_bytes', 0):,} B JSON, 2 workers",
            fmt_rate(num(r.get("bridgepool_per_s"))),
            f"{fmt_rate(num(r.get('imap_per_s')))} (multiprocessing imap, chunksize=1)", ratio,
            f"≥ {PAYLOAD_GOAL:g}× imap", verdict)
    def faster_than(figure, rate, comparisons):
        """One row per (comparison rate, its label, goal ratio): rate / comparison >= goal."""
        for comp, comp_label, goal in comparisons:
            ratio = rate / comp if rate is not None and comp else None
            verdict = "n/a" if ratio is None else ("met" if ratio >= goal else "NOT met")
            row(figure, fmt_rate(rate), f"{fmt_rate(comp)} ({comp_label})", ratio,
                f"≥ {goal:g}×", verdict)

    batch = R["batch"].result
    faster_than("echo in batches of 64 (execute_many), 2 workers, items/s",
                num(get(batch, "bridgepool_per_s")), (
                    (num(get(batch, "imap_per_s")), "multiprocessing imap, chunksize=64",
                     BATCH_IMAP_GOAL),
                    (num(get(R["floor_tp"].result, "throughput_per_s")),
                     "two-pair floor, unbatched", BATCH_FLOOR_GOAL)))
    faster_than("echo in batches of 64 to a batch handler (@command(batch=True)), items/s",
                num(get(batch, "batch_handler_per_s")), (
                    (num(get(batch, "imap_per_s")), "multiprocessing imap, chunksize=64",
                     BATCH_IMAP_GOAL),))
    binary = R["binary"].result
    faster_than("echo of a 1 MiB float64 array as an attachment, 2 workers",
                num(get(binary, "attachments_per_s")), (
                    (num(get(binary, "base64_per_s")), "base64 in the JSON", BINARY_BASE64_GOAL),
                    (num(get(binary, "pickle_per_s")), "multiprocessing imap, pickle",
                     BINARY_PICKLE_GOAL)))
    copies = R["copies"].result
    for side in ("host", "worker"):
        n = num(get(copies, f"{side}_copies"))
        verdict = "n/a" if n is None else ("met" if n <= COPIES_GOAL + 0.2 else "NOT met")
        row(f"{get(copies, 'mib', default='?')} MiB echo: {side} peak RSS growth, payloads",
            "n/a" if n is None else f"{n:.2f}",
            f"{num(get(copies, 'round_trip_ms')) or 0:.0f} ms per round trip", None,
            f"≤ {COPIES_GOAL:g} copies", verdict)
    sla = R["sla"].result
    p99 = num(get(sla, "latency_us", "p99"))
    success = num(get(sla, "success_ratio"))
    verdict = "n/a" if p99 is None or success is None else (
        "met" if p99 < SLA_P99_MS * 1000 and success >= SLA_SUCCESS else "NOT met")
    row("1000 req/s, 5% failures: p99 / success", fmt_us(p99),
        "n/a" if success is None else f"success {success:.4%}", None,
        f"p99 < {SLA_P99_MS:g} ms, success ≥ {SLA_SUCCESS:.2%}", verdict)

    # Informational rows (no goal in SPEC §9).
    pp = num(get(R["floor_tp_pinned_pairs"].result, "throughput_per_s"))
    ratio = echo_best / pp if echo_best is not None and pp else None
    row(label + " (info)",
        fmt_rate(echo_best) + (f" (c={conc})" if echo_best is not None and conc else ""),
        f"{fmt_rate(pp)} (two-pair floor, each pair pinned to its own CPU)", ratio, "—", "info")
    bp_p50 = num(get(R["bp_ping_unpinned"].result, "latency_us", "p50"))
    for key, name in (("ProcessPoolExecutor", "ProcessPoolExecutor submit().result()"),
                      ("multiprocessing_imap", "multiprocessing Pool.apply()")):
        peer_p50 = num(get(peers, key, "latency_us", "p50"))
        ratio = bp_p50 / peer_p50 if bp_p50 is not None and peer_p50 else None
        row("ping p50, unpinned (info)", fmt_us(bp_p50), f"{fmt_us(peer_p50)} ({name})", ratio,
            "—", "info")
    for key, label in (("default_limit", "command limit 100"), ("all_commands", "limit 1000")):
        res = get(R["metrics_scrape"].result, key)
        ms, size = num(get(res, "median_ms")), num(get(res, "bytes"))
        text = "n/a" if ms is None or size is None else f"{ms:.2f} ms, {size / 1024:.0f} KiB"
        row(f"scrape, 64 workers, 1000 commands, {label} (info)", text, "—", None, "—", "info")
    return rows


def print_table(rows: list[dict]) -> None:
    cols = [("figure", "figure"), ("bridgepool", "bridgepool"), ("comparison", "comparison"),
            ("ratio", "ratio"), ("goal", "goal"), ("verdict", "verdict")]
    widths = {k: max(len(title), *(len(str(r[k])) for r in rows)) for k, title in cols}
    line = "| " + " | ".join(title.ljust(widths[k]) for k, title in cols) + " |"
    sep = "|" + "|".join("-" * (widths[k] + 2) for k, _ in cols) + "|"
    print(line)
    print(sep)
    for r in rows:
        print("| " + " | ".join(str(r[k]).ljust(widths[k]) for k, _ in cols) + " |")


def print_details(R: dict[str, Run], echo_runs: list[Run]) -> None:
    print("\nDetails (latency in µs: p50 / p90 / p99 / mean):")

    def lat(res):
        l = get(res, "latency_us") or {}
        vals = [num(l.get(k)) for k in ("p50", "p90", "p99", "mean")]
        return " / ".join("n/a" if v is None else f"{v:.1f}" for v in vals)

    for key, label in (("floor_lat_pinned", "floor latency, pinned"),
                       ("floor_lat_unpinned", "floor latency, unpinned"),
                       ("bp_ping_pinned", "bridgepool ping, pinned"),
                       ("bp_ping_unpinned", "bridgepool ping, unpinned")):
        res = R[key].result
        print(f"  {label:<40} {lat(res):<36} {fmt_rate(num(get(res, 'throughput_per_s')))}")
    for key in ("floor_tp", "floor_tp_pinned_pairs"):
        res = R[key].result
        print(f"  {R[key].name:<40} {lat(res):<36} {fmt_rate(num(get(res, 'throughput_per_s')))}")
    for r in echo_runs:
        res = r.result
        errs = get(res, "errors") or {}
        err_text = f"  errors={errs}" if errs else ""
        print(f"  {r.name:<40} "
              f"{lat(res):<36} {fmt_rate(num(get(res, 'throughput_per_s')))}{err_text}")
    peers = R["peers"].result
    ppe = get(peers, "ProcessPoolExecutor") or {}
    print(f"  {'ProcessPoolExecutor map':<40} {'':<36} {fmt_rate(num(ppe.get('map_per_s')))}")
    print(f"  {'ProcessPoolExecutor submit window ' + str(ppe.get('window', '?')):<40} {'':<36} "
          f"{fmt_rate(num(ppe.get('submit_window_per_s')))}")
    print(f"  {'ProcessPoolExecutor submit().result()':<40} {lat(ppe):<36}")
    imap = get(peers, "multiprocessing_imap") or {}
    print(f"  {'multiprocessing imap':<40} {'':<36} {fmt_rate(num(imap.get('throughput_per_s')))}")
    print(f"  {'multiprocessing apply()':<40} {lat(imap):<36}")


def sanity(R: dict[str, Run], echo_runs: list[Run]) -> list[str]:
    """Smoke-mode checks: every figure is a number > 0; bridgepool answered every request."""
    problems: list[str] = []

    def positive(run: Run, *path):
        if run.error:  # already reported as a failed sub-run
            return
        v = num(get(run.result, *path))
        if v is None or not v > 0:
            problems.append(
                f"{run.name}: {'.'.join(path)} = {get(run.result, *path)!r}, expected > 0")

    for key in ("floor_lat_pinned", "floor_lat_unpinned", "floor_tp", "floor_tp_pinned_pairs",
                "bp_ping_pinned", "bp_ping_unpinned"):
        positive(R[key], "latency_us", "p50")
        positive(R[key], "throughput_per_s")
    for r in echo_runs:
        positive(r, "latency_us", "p50")
        positive(r, "throughput_per_s")
    for r in [R["bp_ping_pinned"], R["bp_ping_unpinned"], *echo_runs]:
        if r.error or r.result is None:
            continue
        req, ok = get(r.result, "requests"), get(r.result, "ok")
        if not isinstance(req, int) or req <= 0 or ok != req:
            problems.append(
                f"{r.name}: ok={ok!r} requests={req!r} (errors: {get(r.result, 'errors')})")
    for key in ("metrics_pinned", "metrics_unpinned"):
        positive(R[key], "on_us", "p50")
        positive(R[key], "off_us", "p50")
    for key in ("registry_1_thread_ns", "registry_2_threads_ns", "states_1_thread_ns",
                "states_2_threads_ns"):
        positive(R["checkout"], key)
    sweep_rows = get(R["payload_sweep"].result, "rows", default=[]) or []
    if not R["payload_sweep"].error and not sweep_rows:
        problems.append("payload sweep: no rows")
    for r in sweep_rows:
        for key in ("bridgepool_per_s", "imap_per_s"):
            v = num(r.get(key))
            if v is None or not v > 0:
                problems.append(f"payload sweep {r.get('shape')} {r.get('size')}: {key} = {v!r}")
    for key in ("bridgepool_per_s", "imap_per_s"):
        positive(R["batch"], key)
    for key in ("attachments_per_s", "base64_per_s", "pickle_per_s"):
        positive(R["binary"], key)
    for key in ("host_copies", "worker_copies", "round_trip_ms"):
        positive(R["copies"], key)
    for key in ("default_limit", "all_commands"):
        positive(R["metrics_scrape"], key, "median_ms")
        positive(R["metrics_scrape"], key, "bytes")
    for path in (("ProcessPoolExecutor", "throughput_per_s"),
                 ("ProcessPoolExecutor", "latency_us", "p50"),
                 ("multiprocessing_imap", "throughput_per_s"),
                 ("multiprocessing_imap", "latency_us", "p50")):
        positive(R["peers"], *path)
    return problems


def resilience_config(a) -> dict:
    cfg = dict(SCENARIO_SMOKE if a.smoke else SCENARIO_FULL)
    if a.resilience_seconds is not None:
        cfg["sla_seconds"] = cfg["scenario_seconds"] = a.resilience_seconds
        cfg["timeout"] = max(cfg["timeout"], 5 * a.resilience_seconds)
    return cfg


def resilience_runs(bp_bin: Path, py: str, a) -> tuple[dict[str, list[Run]], dict[str, Run]]:
    """Issue #10's SLA runs (SLA_MIXES, `sla_repeats` consecutive runs each) and one run per
    failure scenario, with the --start-method/--spare-workers/--handlers pass-through."""
    cfg = resilience_config(a)
    extra = ["--start-method", a.start_method, "--spare-workers", str(a.spare_workers)]
    if a.handlers:
        extra += ["--handlers", a.handlers]
    common = [str(bp_bin), "bench", "--workers", "4", "--rate", str(cfg["rate"]), "--python", py,
              "--no-progress", "--json", *extra]
    sla = {key: [Run(f"SLA {label}, run {i + 1}", [
        *common, "--duration", str(cfg["sla_seconds"]), "--command", "flaky", "--distinct-args",
        "--args", json.dumps(args, separators=(",", ":"))], pinned=False)
        for i in range(cfg["sla_repeats"])] for key, label, args in SLA_MIXES}
    scenarios = {name: Run(f"scenario {name}", [
        *common, "--duration", str(cfg["scenario_seconds"]), "--scenario", name], pinned=False)
        for name in SCENARIOS}
    return sla, scenarios


def ms(x) -> str:
    return "n/a" if x is None else f"{x / 1000:.1f} ms"


def whole(x, missing: str = "n/a") -> str:
    """A figure rounded to a whole number, or `missing` when there is none."""
    return missing if num(x) is None else f"{num(x):.0f}"


def scenario_summary(name: str, s: dict | None) -> str:
    """One line of a scenario's own figures for the table."""
    if not isinstance(s, dict):
        return "n/a"
    if name == "cascade":
        waves = " / ".join(whole(w.get("recovery_ms"), "never") for w in s.get("waves", []))
        return (f"back to full throughput after {waves} ms; submit failed "
                f"{get(s, 'submit', 'failed')}, echo failed {get(s, 'echo', 'failed')} "
                f"(retried {get(s, 'echo', 'retried')})")
    if name == "timeouts":
        return (f"others p99 {ms(num(get(s, 'others', 'p99_us')))}; hung "
                f"{get(s, 'hung', 'sent')}; workers replaced {get(s, 'workers_replaced')}")
    if name == "breaker":
        return (f"open after {whole(get(s, 'opened_after_ms'), 'never')} ms, refused "
                f"{get(s, 'refused')} (p99 {whole(get(s, 'refusal_us', 'p99'))} µs), closed "
                f"{whole(get(s, 'closed_after_recovery_ms'), 'never')} ms after recovery; echo "
                f"during p99 {ms(num(get(s, 'others_during', 'p99_us')))}")
    if name == "slow":
        share, blind = num(get(s, "slow_worker_share")), num(get(s, "blind_share"))
        share_text = "n/a" if share is None or blind is None else f"{share:.1%} (blind {blind:.0%})"
        return (f"slow worker's share {share_text}; others p99 meanwhile "
                f"{ms(num(get(s, 'others_during', 'p99_us')))}")
    per_s = get(s, "pool_down", "served_per_s") or {}
    mock_per_s = get(s, "pool_and_bridge_down", "served_per_s", "mock")
    return (f"bridge {per_s.get('bridge', 0):.0f}/s p99 {ms(num(get(s, 'pool_down', 'p99_us')))}, "
            f"mock {mock_per_s or 0:.0f}/s p99 "
            f"{ms(num(get(s, 'pool_and_bridge_down', 'p99_us')))}; pool back after "
            f"{whole(get(s, 'pool_back_after_ms'), 'never')} ms")


def sla_ok(res: dict | None) -> bool | None:
    p99, success = num(get(res, "latency_us", "p99")), num(get(res, "success_ratio"))
    if p99 is None or success is None:
        return None
    return p99 < SLA_P99_MS * 1000 and success >= SLA_SUCCESS


def resilience_table(sla: dict[str, list[Run]], scenarios: dict[str, Run],
                     rate: int) -> list[dict]:
    rows: list[dict] = []
    for key, label, _ in SLA_MIXES:
        runs = sla[key]
        texts = [f"{ms(num(get(r.result, 'latency_us', 'p99')))} / "
                 f"{(num(get(r.result, 'success_ratio')) or 0):.4%}" for r in runs]
        oks = [sla_ok(r.result) for r in runs]
        verdict = "n/a" if None in oks else ("met" if all(oks) else "NOT met")
        rows.append(dict(figure=f"{rate} req/s, {label}: p99 / success, {len(runs)} "
                                f"consecutive run(s)",
                         bridgepool=", ".join(texts), comparison="—", ratio="n/a",
                         ratio_value=None, goal=f"each: p99 < {SLA_P99_MS:g} ms, success ≥ "
                                                f"{SLA_SUCCESS:.2%}", verdict=verdict))
    for name, run in scenarios.items():
        s = get(run.result, "scenario")
        passed = get(s, "sla", "pass")
        rows.append(dict(figure=f"scenario {name}", bridgepool=scenario_summary(name, s),
                         comparison=f"SLA on {get(s, 'sla', 'subject') or '?'}", ratio="n/a",
                         ratio_value=None, goal="SLA verdict",
                         verdict="n/a" if passed is None else ("met" if passed else "NOT met")))
    return rows


def resilience_sanity(sla: dict[str, list[Run]], scenarios: dict[str, Run]) -> list[str]:
    """Smoke-mode checks: every request of every run accounted for; scenarios report figures."""
    problems = []
    for run in [*(r for runs in sla.values() for r in runs), *scenarios.values()]:
        if run.error or run.result is None:
            continue
        if get(run.result, "sent") != get(run.result, "requests"):
            problems.append(f"{run.name}: sent {get(run.result, 'sent')!r} of "
                            f"{get(run.result, 'requests')!r}")
    for name, run in scenarios.items():
        if run.result is not None and get(run.result, "scenario", "name") != name:
            problems.append(f"{run.name}: no scenario figures in its JSON")
    return problems


def build_type(build_dir: Path) -> str | None:
    cache = build_dir / "CMakeCache.txt"
    try:
        for line in cache.read_text(errors="replace").splitlines():
            if line.startswith("CMAKE_BUILD_TYPE:"):
                return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return None


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def resolve_build_dir(arg: str) -> Path:
    p = Path(arg)
    if p.is_absolute():
        return p
    if (Path.cwd() / p).exists():
        return (Path.cwd() / p).resolve()
    return REPO / p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build", help="CMake build directory (default: build)")
    ap.add_argument("--python", default="/usr/bin/python3",
                    help="Python interpreter for the workers and echo peers "
                         "(default: /usr/bin/python3)")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny request counts (whole run well under 30 s) plus sanity assertions")
    ap.add_argument("--json-out", metavar="FILE",
                    help="also write every raw result and the table here")
    ap.add_argument("--payload-bytes", type=int, default=64,
                    help="length of the echoed string in the throughput runs (default: 64)")
    ap.add_argument("--concurrency", default="2,4,8",
                    help="bridgepool echo concurrencies to try; the best is compared "
                         "(default: 2,4,8)")
    ap.add_argument("--latency-requests", type=int,
                    help="override: sequential requests per latency run")
    ap.add_argument("--throughput-requests", type=int,
                    help="override: requests per bridgepool echo run")
    ap.add_argument("--floor-requests", type=int, help="override: requests for the two-pair floor")
    ap.add_argument("--peer-requests", type=int, help="override: requests per Python peer figure")
    ap.add_argument("--floor-script", default=str(BENCH_DIR / "floor_echo.py"),
                    help="the Python side of the floor (default: bench/floor_echo.py)")
    ap.add_argument("--start-methods", default="spawn,fork-server",
                    help="start methods compared by the replacement runs "
                         "(default: spawn,fork-server)")
    ap.add_argument("--spares", type=int, default=1,
                    help="spare workers in the replacement run with spares (0: no such run; "
                         "default: 1)")
    ap.add_argument("--scenarios-only", action="store_true",
                    help="run only issue #10's SLA runs and the failure scenarios")
    ap.add_argument("--start-method", default="fork-server", choices=("spawn", "fork-server"),
                    help="SLA and scenario runs: how workers start (default: fork-server)")
    ap.add_argument("--spare-workers", type=int, default=0,
                    help="SLA and scenario runs: warm spare processes (default: 0)")
    ap.add_argument("--handlers", metavar="FILE",
                    help="SLA and scenario runs: handler module (default: the examples)")
    ap.add_argument("--resilience-seconds", type=int, metavar="S",
                    help="SLA and scenario runs: seconds each (default: 60, smoke 2); shorter "
                         "runs for a contended machine")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="echo every sub-run's human-readable output")
    a = ap.parse_args(argv)

    cfg = dict(SMOKE if a.smoke else FULL)
    for opt, key in (("latency_requests", "latency"), ("throughput_requests", "echo"),
                     ("floor_requests", "floor_tp"), ("peer_requests", "peers")):
        if getattr(a, opt) is not None:
            if getattr(a, opt) < 1:
                ap.error(f"--{opt.replace('_', '-')} must be >= 1")
            cfg[key] = getattr(a, opt)
    try:
        concurrencies = [int(c) for c in a.concurrency.split(",") if c.strip()]
    except ValueError:
        ap.error("--concurrency must be a comma-separated list of integers")
    if not concurrencies or min(concurrencies) < 1:
        ap.error("--concurrency must list integers >= 1")
    if a.payload_bytes < 0:
        ap.error("--payload-bytes must be >= 0")
    methods = [m.strip() for m in a.start_methods.split(",") if m.strip()]
    if not methods or any(m not in ("spawn", "fork-server") for m in methods):
        ap.error("--start-methods must list spawn and/or fork-server, comma-separated")
    if a.spares < 0:
        ap.error("--spares must be >= 0")
    if a.spare_workers < 0:
        ap.error("--spare-workers must be >= 0")
    if a.resilience_seconds is not None and a.resilience_seconds < 1:
        ap.error("--resilience-seconds must be >= 1")

    build = resolve_build_dir(a.build_dir)
    floor_bin = build / "bench" / "pipe_floor"
    bp_bin = build / "bridgepool"
    floor_echo = Path(a.floor_script).resolve()
    py = a.python

    started = time.monotonic()
    smoke_note = " (SMOKE: tiny counts, figures are not meaningful)" if a.smoke else ""
    print(f"bridgepool benchmarks{smoke_note}")
    now = datetime.datetime.now().isoformat(timespec='seconds')
    print(f"  date {now}  commit {git_commit() or '?'}"
          f"  host {platform.node()}  cpus {os.cpu_count()}  python {py}")
    print(f"  load average {load_average()} (other processes move every figure; see uptime)")
    btype = build_type(build)
    print(f"  build dir {build}  CMAKE_BUILD_TYPE={btype or '?'}")
    if btype and btype not in ("Release", "RelWithDebInfo"):
        print(f"  WARNING: {btype} build — bridgepool figures will be pessimistic")
    if not os.access(py, os.X_OK):
        print(f"  WARNING: python {py} is not executable")
    for path in (floor_bin, bp_bin):
        if not path.exists():
            print(f"  WARNING: {path} does not exist (build it: cmake --build {build})")
    print(flush=True)

    payload = "x" * a.payload_bytes
    N = cfg["latency"]
    floor_lat = [str(floor_bin), "--mode", "latency", "--requests", str(N),
                 "--warmup", str(cfg["warmup"]), "--python", py, "--script", str(floor_echo),
                 "--json"]
    bp_ping = [str(bp_bin), "bench", "--workers", "1", "--concurrency", "1", "--requests", str(N),
               "--command", "ping", "--python", py, "--json"]
    R: dict[str, Run] = {
        "floor_lat_pinned": Run("floor latency, pinned", floor_lat, pinned=True),
        "bp_ping_pinned": Run("bridgepool ping, pinned", bp_ping, pinned=True),
        "floor_lat_unpinned": Run("floor latency, unpinned", floor_lat, pinned=False),
        "bp_ping_unpinned": Run("bridgepool ping, unpinned", bp_ping, pinned=False),
        "floor_tp": Run("two-pair floor", [
            str(floor_bin), "--mode", "throughput", "--pairs", "2",
            "--requests", str(cfg["floor_tp"]),
            "--warmup", str(cfg["warmup"]), "--payload-bytes", str(a.payload_bytes),
            "--python", py, "--script", str(floor_echo), "--json"], pinned=False),
        "floor_tp_pinned_pairs": Run("two-pair floor, each pair pinned", [
            str(floor_bin), "--mode", "throughput", "--pairs", "2", "--pin-pairs",
            "--requests", str(cfg["floor_tp"]), "--warmup", str(cfg["warmup"]),
            "--payload-bytes", str(a.payload_bytes), "--python", py, "--script", str(floor_echo),
            "--json"], pinned=False),
    }
    echo_runs = [Run(f"bridgepool echo, concurrency {c}", [
        str(bp_bin), "bench", "--workers", "2", "--concurrency", str(c),
        "--requests", str(cfg["echo"]),
        "--command", "echo", "--args", json.dumps({"data": payload}, separators=(",", ":")),
        "--python", py, "--json"], pinned=False) for c in concurrencies]
    R["peers"] = Run("Python peers", [
        py, str(BENCH_DIR / "peers.py"), "--requests", str(cfg["peers"]),
        "--payload-bytes", str(a.payload_bytes), "--latency-requests", str(cfg["peers_latency"]),
        "--warmup", str(cfg["peers_warmup"])], pinned=False)

    overhead_bin = build / "bench" / "resilience_overhead_bench"
    R["overhead_pinned"] = Run("resilience overhead, pinned", [
        str(overhead_bin), "--pin", "--rounds", str(cfg["overhead_rounds"]), "--python", py,
        "--json"], pinned=False)
    R["overhead_unpinned"] = Run("resilience overhead, unpinned", [
        str(overhead_bin), "--rounds", str(cfg["overhead_rounds"]), "--python", py, "--json"],
        pinned=False)
    metrics_bin = build / "bench" / "metrics_bench"
    R["metrics_pinned"] = Run("metrics overhead, pinned", [
        str(metrics_bin), "--mode", "overhead", "--pin", "--rounds", str(cfg["metrics_rounds"]),
        "--python", py, "--json"], pinned=False)
    R["metrics_unpinned"] = Run("metrics overhead, unpinned", [
        str(metrics_bin), "--mode", "overhead", "--rounds", str(cfg["metrics_rounds"]),
        "--python", py, "--json"], pinned=False)
    R["checkout"] = Run("checkout + checkin without I/O", [
        str(build / "bench" / "checkout_bench"), "--iterations", str(cfg["checkout_pairs"]),
        "--json"], pinned=False)
    R["payload_sweep"] = Run("payload sweep", [
        py, str(BENCH_DIR / "payload_sweep.py"), "--bridgepool", str(bp_bin), "--python", py,
        *(["--smoke"] if a.smoke else [])], pinned=False)
    R["batch"] = Run("batches", [
        py, str(BENCH_DIR / "batch_bench.py"), "--bridgepool", str(bp_bin), "--python", py,
        *(["--smoke"] if a.smoke else [])], pinned=False)
    R["binary"] = Run("binary payloads", [
        py, str(BENCH_DIR / "binary_bench.py"), "--bridgepool", str(bp_bin), "--python", py,
        *(["--smoke"] if a.smoke else [])], pinned=False)
    R["copies"] = Run("64 MiB echo: copies", [
        str(build / "bench" / "attachment_bench"), "--mib", "8" if a.smoke else "64",
        "--rounds", "1" if a.smoke else "3", "--python", py, "--json"], pinned=False)
    R["metrics_scrape"] = Run("metrics scrape cost", [
        str(metrics_bin), "--mode", "scrape", "--scrapes", str(cfg["metrics_scrapes"]), "--json"],
        pinned=False)
    # SPEC §9: 1000 req/s, 5% failures: 90% of them retryable Python exceptions, 10% crashes
    # (5 worker deaths a second). See docs/benchmarks.md for heavier crash mixes.
    R["sla"] = Run("open loop 1000 req/s, 5% failures", [
        str(bp_bin), "bench", "--workers", "4", "--rate", "1000", "--duration",
        str(cfg["sla_duration"]), "--command", "flaky", "--args",
        '{"fail_rate":0.05,"crash_share":0.1}', "--python", py, "--json"], pinned=False)

    repl_keys = []
    for key, name, cmd in replacement_runs.plan(build, py, a.smoke, methods, a.spares):
        R[key] = Run(name, cmd, pinned=False)
        repl_keys.append(key)

    core = not a.scenarios_only  # the SPEC §9 table and the replacement runs
    resilience = a.scenarios_only or not a.smoke  # issue #10: SLA set and failure scenarios
    sla_runs, scenario_runs = resilience_runs(bp_bin, py, a)
    order = [R["floor_lat_pinned"], R["bp_ping_pinned"], R["floor_lat_unpinned"],
             R["bp_ping_unpinned"], R["floor_tp"], R["floor_tp_pinned_pairs"], *echo_runs,
             R["peers"], R["overhead_pinned"], R["overhead_unpinned"], R["metrics_pinned"],
             R["metrics_unpinned"], R["metrics_scrape"], R["checkout"], R["payload_sweep"],
             R["batch"], R["binary"], R["copies"], R["sla"],
             *(R[k] for k in repl_keys)] if core else []
    for run in order:
        execute(run, cfg["timeout"], a.verbose)
    extra = [*(r for runs in sla_runs.values() for r in runs), *scenario_runs.values()]
    if resilience:
        timeout = resilience_config(a)["timeout"]
        for run in extra:
            execute(run, timeout, a.verbose)
        order += extra

    repl_results = {k: R[k].result for k in repl_keys} if core else {}
    rows = build_table(R, echo_runs) if core else []
    rows += replacement_runs.rows(repl_results, methods, a.spares) if core else []
    rate = resilience_config(a)["rate"]
    rows += resilience_table(sla_runs, scenario_runs, rate) if resilience else []
    print()
    print_table(rows)
    if core:
        print_details(R, echo_runs)
        for line in replacement_runs.details(repl_results):
            print(f"  {line}")

    failures = [f"{r.name}: {r.error}" for r in order if r.error]
    problems = []
    if a.smoke:
        problems += (sanity(R, echo_runs) + replacement_runs.sanity(repl_results)) if core else []
        problems += resilience_sanity(sla_runs, scenario_runs) if resilience else []
    elapsed = time.monotonic() - started
    print(f"\nTotal time {elapsed:.1f} s, load average now {load_average()}. Verdicts are "
          f"informational; ratios are bridgepool / comparison.")
    if failures:
        print("\nFAILED sub-runs:")
        for f in failures:
            print(f"  {f}")
    if problems:
        print("\nSmoke sanity check failures:")
        for p in problems:
            print(f"  {p}")

    if a.json_out:
        report = {
            "smoke": a.smoke, "config": cfg, "payload_bytes": a.payload_bytes,
            "concurrencies": concurrencies, "start_methods": methods, "spares": a.spares,
            "python": py, "build_dir": str(build), "load_average": load_average(),
            "build_type": btype, "commit": git_commit(), "cpus": os.cpu_count(),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "runs": {k: r.to_json() for k, r in R.items()} if core else {},
            "sla_runs": {k: [r.to_json() for r in runs] for k, runs in sla_runs.items()}
            if resilience else {},
            "scenario_runs": {k: r.to_json() for k, r in scenario_runs.items()}
            if resilience else {},
            "echo_runs": [r.to_json() for r in echo_runs],
            "table": rows, "failures": failures, "sanity_problems": problems,
            "seconds": round(elapsed, 3),
        }
        Path(a.json_out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        print(f"Wrote {a.json_out}")
    return 1 if failures or problems else 0


if __name__ == "__main__":
    sys.exit(main())
