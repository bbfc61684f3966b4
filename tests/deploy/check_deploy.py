#!/usr/bin/python3
"""Checks deploy/: the Prometheus alert rules and the Grafana dashboard against the project.

1. `promtool check rules` and `promtool test rules` (deploy/prometheus/alerts_test.yml) pass.
2. The alert rules say what the error reporter says: one alert per rule of
   BRIDGEPOOL_ALERT_RULES (include/bridgepool/error_reporter.h), labelled `rule: <name>`, with the
   severity, the raise threshold, `for` (raise_hold) and `keep_firing_for` (clear_hold) of the
   rules table in docs/alerts.md.
3. Every metric named in the rules and in every Grafana panel exists in docs/metrics.md (itself
   generated from the metric tables, so a renamed metric fails here), and every Grafana query is
   valid PromQL (each is written into a recording rule that promtool checks).

Usage: check_deploy.py SOURCE_DIR. Exit 0 ok, 1 a check failed, 77 promtool is missing.
"""
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/bridgepool-alerts.yml"
RULE_TESTS = ROOT / "deploy/prometheus/alerts_test.yml"
GRAFANA = ROOT / "deploy/grafana/bridgepool.json"
# Rules whose value is itself a duration ("seconds a breaker has not been closed"): Prometheus
# says "state not closed" held for raise + raise_hold instead of comparing a value with `raise`.
DURATION_VALUED = {"breaker_open"}
failures = []


def fail(message):
    failures.append(message)
    print(f"not ok: {message}")


def seconds(text):
    """'2 min' / '30 s' / '0' (docs) or '2m' / '30s' (Prometheus) -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h)?\s*", str(text))
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    return float(m.group(1)) * {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]


def promtool(*args):
    run = subprocess.run(["promtool", *args], capture_output=True, text=True)
    if run.returncode != 0:
        fail(f"promtool {' '.join(args)}:\n{run.stdout}{run.stderr}")


def reporter_rules():
    header = (ROOT / "include/bridgepool/error_reporter.h").read_text()
    names = re.findall(r'X\(k\w+, "(\w+)"', header)
    table = {}
    for row in (ROOT / "docs/alerts.md").read_text().splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0].startswith("`") and cells[0].strip("`") in names:
            table[cells[0].strip("`")] = dict(severity=cells[2], raise_=float(cells[3]),
                                              raise_hold=seconds(cells[5]),
                                              clear_hold=seconds(cells[6]))
    if sorted(table) != sorted(names):
        fail(f"docs/alerts.md rules table {sorted(table)} != BRIDGEPOOL_ALERT_RULES {names}")
    return table


def check_alerts(metrics):
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    by_rule = {r["labels"]["rule"]: r for r in rules if "alert" in r}
    for name, want in reporter_rules().items():
        rule = by_rule.get(name)
        if rule is None:
            fail(f"no alert with rule: {name}")
            continue
        if name in DURATION_VALUED:
            want = dict(want, raise_hold=want["raise_hold"] + want["raise_"])
        got = dict(severity=rule["labels"]["severity"],
                   raise_hold=seconds(rule.get("for", "0")),
                   clear_hold=seconds(rule.get("keep_firing_for", "0")))
        for key in got:
            if got[key] != want[key]:
                fail(f"{rule['alert']}: {key} {got[key]} but docs/alerts.md says {want[key]}")
        thresholds = [float(t) for t in re.findall(r">=\s*([\d.]+)", rule["expr"])]
        if name not in DURATION_VALUED and want["raise_"] not in thresholds:
            fail(f"{rule['alert']}: raise threshold {want['raise_']} not in {rule['expr']!r}")
        check_names(rule["alert"], rule["expr"], metrics)
    extra = set(by_rule) - set(reporter_rules())
    if extra:
        fail(f"alerts for rules the reporter does not have: {sorted(extra)}")


def check_names(where, expr, metrics):
    for name in re.findall(r"\bbridgepool_\w+", expr):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in metrics and base not in metrics:
            fail(f"{where}: {name} is not in docs/metrics.md")


def check_grafana(metrics, workdir):
    dashboard = json.loads(GRAFANA.read_text())
    recording = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            check_names(f"panel {panel['title']!r}", target["expr"], metrics)
            expr = (target["expr"].replace("$__rate_interval", "1m").replace("$__range", "1h")
                    .replace("$pool", ".*"))
            recording.append({"record": f"grafana:panel{panel['id']}:{target['refId']}",
                              "expr": expr})
    if not recording:
        fail("the Grafana dashboard has no queries")
    path = Path(workdir) / "grafana_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "grafana", "rules": recording}]}))
    promtool("check", "rules", str(path))
    print(f"ok: {len(recording)} Grafana queries are valid PromQL over documented metrics")


def main():
    if shutil.which("promtool") is None:
        print("SKIPPED: promtool not found (Debian package prometheus; scripts/setup installs it)")
        return 77
    metrics = set(re.findall(r"`(bridgepool_\w+)`", (ROOT / "docs/metrics.md").read_text()))
    promtool("check", "rules", str(RULES))
    promtool("test", "rules", str(RULE_TESTS))
    check_alerts(metrics)
    with tempfile.TemporaryDirectory() as workdir:
        check_grafana(metrics, workdir)
    print(f"{'FAILED' if failures else 'passed'}: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
