#!/usr/bin/python3
"""Parse a Prometheus text scrape with the real parser and check sample values.

Usage: check_metrics.py SCRAPE_FILE EXPECTATIONS_JSON

EXPECTATIONS_JSON is a list of {"name": sample name, "labels": {...}, "value": number,
"op": "eq" (default) | "gt"}: the sample with exactly that name and label set must exist and
compare as asked. Exit status: 0 all hold, 1 a check failed, 2 the scrape did not parse (or the
arguments are wrong). Uses Debian's python3-prometheus-client (run with /usr/bin/python3).
"""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def parse(text):
    """{(sample name, frozenset(labels)): value} for every sample of every family."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        text = f.read()
    try:
        samples = parse(text)
    except Exception as e:  # the parser raises ValueError and friends on malformed input
        print(f"check_metrics: scrape does not parse: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    failures = []
    for exp in json.loads(argv[2]):
        key = (exp["name"], frozenset(exp.get("labels", {}).items()))
        op = exp.get("op", "eq")
        got = samples.get(key)
        ok = got is not None and (got == exp["value"] if op == "eq" else got > exp["value"])
        if not ok:
            failures.append(f"{exp['name']}{exp.get('labels', {})}: got {got}, want {op} "
                            f"{exp['value']}")
    for f in failures:
        print(f"check_metrics: {f}", file=sys.stderr)
    print(f"check_metrics: {len(samples)} samples parsed, "
          f"{len(failures)} of {len(json.loads(argv[2]))} checks failed", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
