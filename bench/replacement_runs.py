"""The replacement part of scripts/bench (issue #10): which sub-runs, and the rows they give.

For each handler module — the examples (examples/handlers.py) and a heavy one
(bench/heavy_handlers.py: scikit-learn fitted at import, or sleep + 200 MB) — in this order:

  fork floor               bench/fork_floor.py: os.fork() of the loaded interpreter -> reply
  replacement, <method>    build/bench/replacement_bench --start-method <method> for each start
                           method (default spawn, fork-server): kill -> replacement ready,
                           kill -> full capacity, pool start with N workers, PSS per worker
  replacement, spares      the same with --spare-workers S on the last start method (no pool
                           start: the time to a full pool does not change with spares)

Goals (issue #10): with fork-server, kill -> replacement p50 <= max(20 ms, 3x the fork floor's
p50) for both modules; with spares, kill -> full capacity p50 <= 5 ms. Everything else (spawn's
figures, PSS, pool start) is reported as information, fork-server compared with spawn.

run_benchmarks.py turns plan() into its Run objects, runs them, and adds rows() to its table.
Run alone, this file runs only these sub-runs and prints their rows (same options as
run_benchmarks.py where they apply):

    /usr/bin/python3 bench/replacement_runs.py [--smoke] [--build-dir DIR] [--python P]
        [--start-methods spawn,fork-server] [--spares N] [--json-out FILE]

Standard library only.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODULES = (("examples", REPO / "examples" / "handlers.py"),
           ("heavy", REPO / "bench" / "heavy_handlers.py"))
FLOOR_FACTOR = 3.0      # fork_server replacement p50 <= max(FLOOR_MIN_MS, 3x fork floor p50)
FLOOR_MIN_MS = 20.0
SPARES_GOAL_MS = 5.0    # with spares: kill -> full capacity p50 <= 5 ms

# (forks, kills, pool-start workers) per module; smoke keeps the heavy module to the fork server
# without spares, whose replacements are fast once it exists (spawn, and a spawned spare, would
# import sklearn on every kill).
FULL = {"examples": (200, 30, 8), "heavy": (100, 30, 8)}
SMOKE = {"examples": (20, 3, 2), "heavy": (10, 2, 2)}
SMOKE_HEAVY_METHODS = ("fork-server",)


def key(module: str, what: str) -> str:
    return f"repl_{module}_{what}"


def plan(build: Path, py: str, smoke: bool, methods: list[str],
         spares: int) -> list[tuple[str, str, list[str]]]:
    """(result key, display name, command) for every sub-run, in the order to run them."""
    bench = str(build / "bench" / "replacement_bench")
    runs = []
    for module, path in MODULES:
        forks, kills, start = (SMOKE if smoke else FULL)[module]
        runs.append((key(module, "floor"), f"fork floor, {module} handlers", [
            py, str(REPO / "bench" / "fork_floor.py"), "--handlers", str(path),
            "--forks", str(forks), "--json"]))
        module_methods = [m for m in methods
                          if not (smoke and module == "heavy" and m not in SMOKE_HEAVY_METHODS)]
        common = [bench, "--handlers", str(path), "--kills", str(kills), "--python", py, "--json"]
        for method in module_methods:
            runs.append((key(module, method), f"replacement, {module} handlers, {method}",
                         common + ["--start-method", method, "--start-workers", str(start)]))
        if spares > 0 and module_methods and not (smoke and module == "heavy"):
            method = module_methods[-1]
            runs.append((key(module, "spares"),
                         f"replacement, {module} handlers, {method} + {spares} spare(s)",
                         common + ["--start-method", method, "--spare-workers", str(spares),
                                   "--start-workers", "0"]))
    return runs


def _get(obj, *path):
    for k in path:
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return obj if isinstance(obj, (int, float)) and not isinstance(obj, bool) else None


def _ms(x) -> str:
    return "n/a" if x is None else f"{x:.1f} ms"


def _mib(x) -> str:
    return "n/a" if x is None else f"{x:.1f} MiB"


def _ratio_row(figure, value, comp, comp_label, unit_fmt):
    ratio = value / comp if value is not None and comp else None
    return dict(figure=figure, bridgepool=unit_fmt(value), comparison=f"{unit_fmt(comp)} "
                f"({comp_label})", ratio="n/a" if ratio is None else f"{ratio:.2f}×",
                ratio_value=ratio, goal="—", verdict="info")


def _replacement_rows(module: str, res: dict, methods: list[str], spares: int) -> list[dict]:
    rows = []
    floor = _get(res.get(key(module, "floor")), "fork_to_reply_ms", "p50")
    limit = None if floor is None else max(FLOOR_MIN_MS, FLOOR_FACTOR * floor)
    goal = f"≤ max({FLOOR_MIN_MS:g} ms, {FLOOR_FACTOR:g}× floor)" + (
        "" if limit is None else f" = {limit:.1f} ms")
    for method in (m for m in methods if key(module, m) in res):  # as planned for this module
        p50 = _get(res.get(key(module, method)), "replacement_ms", "p50")
        row = _ratio_row(f"kill → replacement p50, {module}, {method}", p50, floor,
                         "fork floor p50", _ms)
        if method == "fork-server":
            row["goal"] = goal
            row["verdict"] = ("n/a" if p50 is None or limit is None
                              else "met" if p50 <= limit else "NOT met")
        rows.append(row)
    if key(module, "spares") in res:
        run = res[key(module, "spares")]
        p50 = _get(run, "full_capacity_ms", "p50")
        method = (run or {}).get("start_method", "?")
        rows.append(dict(figure=f"kill → full capacity p50, {module}, {method} + {spares} spare(s)",
                         bridgepool=_ms(p50), comparison="—", ratio="n/a", ratio_value=None,
                         goal=f"≤ {SPARES_GOAL_MS:g} ms",
                         verdict="n/a" if p50 is None else
                         "met" if p50 <= SPARES_GOAL_MS else "NOT met"))
    return rows


def _start_and_memory_rows(module: str, res: dict, methods: list[str]) -> list[dict]:
    """Pool start and PSS per worker for each start method; other methods against spawn when
    spawn ran too (information rows)."""
    rows = []
    spawn = res.get(key(module, "spawn"))
    for method in (m for m in methods if key(module, m) in res):
        run = res[key(module, method)]
        n = _get(run, "pool_start", "workers")
        for what, path, fmt in (
                (f"pool start, {n} workers, all ready", ("pool_start", "ready_ms"), _ms),
                ("PSS per worker (mean)", ("pool_start", "worker_pss_mib", "mean"), _mib),
                ("PSS of the whole process tree", ("pool_start", "tree_pss_mib"), _mib)):
            figure = f"{what}, {module}, {method} (info)"
            if method == "spawn" or spawn is None:
                rows.append(dict(figure=figure, bridgepool=fmt(_get(run, *path)), comparison="—",
                                 ratio="n/a", ratio_value=None, goal="—", verdict="info"))
            else:
                rows.append(_ratio_row(figure, _get(run, *path), _get(spawn, *path), "spawn", fmt))
    return rows


def rows(res: dict, methods: list[str], spares: int) -> list[dict]:
    """The table rows from the results (key -> last-line JSON, or None for a failed run)."""
    out = []
    for module, _ in MODULES:
        out += _replacement_rows(module, res, methods, spares)
        out += _start_and_memory_rows(module, res, methods)
    return out


def details(res: dict) -> list[str]:
    """One line per sub-run: every percentile it printed, pool start and memory."""
    lines = []
    for k, r in res.items():
        if r is None:
            continue
        if "fork_to_reply_ms" in r:
            s = r["fork_to_reply_ms"]
            lines.append(f"{k:<28} fork->reply p50/p99/max {s['p50']:.2f}/{s['p99']:.2f}/"
                         f"{s['max']:.2f} ms (import {r.get('import_s', 0):.2f} s, "
                         f"kind {r.get('kind')})")
            continue
        a, b = r.get("replacement_ms", {}), r.get("full_capacity_ms", {})
        text = (f"{k:<28} replacement p50/p99/max {_ms(a.get('p50'))}/{_ms(a.get('p99'))}/"
                f"{_ms(a.get('max'))}; full capacity {_ms(b.get('p50'))}/{_ms(b.get('p99'))}/"
                f"{_ms(b.get('max'))}")
        ps = r.get("pool_start")
        if ps:
            text += (f"; start {ps['workers']} in {ps['ready_ms']:.0f} ms, PSS/worker "
                     f"{ps['worker_pss_mib']['mean']:.1f} MiB (RSS "
                     f"{ps['worker_rss_mib']['mean']:.1f}), tree {ps['tree_pss_mib']:.1f} MiB")
        info = r.get("handlers_info")
        if isinstance(info, dict):
            text += f"; heavy kind {info.get('kind')}, import {info.get('import_s', 0):.2f} s"
        lines.append(text)
    return lines


def sanity(res: dict) -> list[str]:
    """Smoke checks: every latency figure > 0, pool start measured where asked for."""
    problems = []
    for k, r in res.items():
        if r is None:
            continue  # reported as a failed sub-run
        paths = ([("fork_to_reply_ms", "p50")] if "fork_to_reply_ms" in r else
                 [("replacement_ms", "p50"), ("full_capacity_ms", "p50")])
        if "pool_start" in r:
            paths += [("pool_start", "ready_ms"), ("pool_start", "worker_pss_mib", "mean")]
        for path in paths:
            v = _get(r, *path)
            if v is None or not v > 0:
                problems.append(f"{k}: {'.'.join(path)} = {v!r}, expected > 0")
        if k.startswith(key("heavy", "")) and "fork_to_reply_ms" not in r:
            kind = (r.get("handlers_info") or {}).get("kind")
            if kind not in ("sklearn", "sleep+alloc"):
                problems.append(f"{k}: heavy handlers' info kind = {kind!r}")
    return problems


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import time

    import run_benchmarks as rb

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--start-methods", default="spawn,fork-server")
    ap.add_argument("--spares", type=int, default=1)
    ap.add_argument("--json-out", metavar="FILE")
    a = ap.parse_args(argv)
    methods = [m.strip() for m in a.start_methods.split(",") if m.strip()]
    if not methods or any(m not in ("spawn", "fork-server") for m in methods) or a.spares < 0:
        ap.error("--start-methods must list spawn and/or fork-server; --spares must be >= 0")
    print(f"replacement benchmarks, load average {rb.load_average()}", flush=True)
    started = time.monotonic()
    runs = {k: rb.Run(name, cmd, pinned=False) for k, name, cmd in
            plan(rb.resolve_build_dir(a.build_dir), a.python, a.smoke, methods, a.spares)}
    for run in runs.values():
        rb.execute(run, 120 if a.smoke else 1800, False)
    res = {k: r.result for k, r in runs.items()}
    print()
    rb.print_table(rows(res, methods, a.spares))
    for line in details(res):
        print(f"  {line}")
    problems = sanity(res) if a.smoke else []
    failures = [f"{r.name}: {r.error}" for r in runs.values() if r.error]
    for p in failures + problems:
        print(f"FAILED: {p}")
    print(f"Total time {time.monotonic() - started:.1f} s, load average now {rb.load_average()}")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({k: r.to_json() for k, r in runs.items()}, f, indent=2, ensure_ascii=False)
    return 1 if failures or problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
