"""A heavy handler module for the replacement benchmarks (issue #10): slow to import, like real ML
handlers.

At import it either
  * imports scikit-learn (Debian python3-sklearn) and fits a small LogisticRegression on a
    synthetic data set (2,000 samples x 20 features, seeded) — about 1 s on a quiet machine,
    nearly all of it the import of numpy, scipy and sklearn; or, when sklearn cannot be imported,
  * sleeps 1 s and allocates 200 MB (written to, so the pages are really resident) — the same
    start-up cost and a memory footprint for copy-on-write sharing to matter.
Which one happened is in `HEAVY_KIND` ("sklearn" / "sleep+alloc") and in the `info` command.

Commands:
  echo {…}                      returns its args (idempotent)
  predict {"features": [[f0..f19], …]}
                                the model's class for each row (sklearn), or the row sums' sign
                                (fallback); returns {"classes": [...], "kind"} (idempotent)
  info {}                       {"kind", "import_s", "pid", "resident_bytes_allocated"}

Used by bench/replacement_bench (--handlers bench/heavy_handlers.py) and bench/fork_floor.py.
"""

from __future__ import annotations

import os
import time

from bridgepool_worker import command

__version__ = "heavy-1"

_T0 = time.perf_counter()
N_FEATURES = 20
FALLBACK_BYTES = 200 * 1024 * 1024


def _fit_sklearn():
    """A LogisticRegression fitted on seeded synthetic data; raises ImportError without sklearn."""
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(n_samples=2000, n_features=N_FEATURES, random_state=0)
    return LogisticRegression(max_iter=500).fit(x, y)


def _sleep_and_allocate() -> bytes:
    """1 s of import time and 200 MB of written (hence resident) memory."""
    time.sleep(1.0)
    return bytes(range(256)) * (FALLBACK_BYTES // 256)


try:
    MODEL = _fit_sklearn()
    HEAVY_KIND = "sklearn"
    BALLAST = b""
except ImportError:
    MODEL = None
    HEAVY_KIND = "sleep+alloc"
    BALLAST = _sleep_and_allocate()

IMPORT_SECONDS = time.perf_counter() - _T0


@command("echo", idempotent=True)
def echo(args, ctx):
    return args


def _rows(args) -> list[list[float]]:
    """args["features"] as a list of rows of N_FEATURES numbers; ValueError otherwise."""
    rows = args.get("features")
    if not isinstance(rows, list) or not rows:
        raise ValueError("predict needs 'features': a non-empty list of rows")
    for row in rows:
        if not isinstance(row, list) or len(row) != N_FEATURES:
            raise ValueError(f"each row of 'features' must be a list of {N_FEATURES} numbers")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row):
            raise ValueError(f"each row of 'features' must be a list of {N_FEATURES} numbers")
    return rows


@command("predict", idempotent=True)
def predict(args, ctx):
    rows = _rows(args)
    if MODEL is not None:
        classes = [int(c) for c in MODEL.predict(rows)]
    else:
        classes = [1 if sum(row) > 0 else 0 for row in rows]
    return {"classes": classes, "kind": HEAVY_KIND}


@command("info", idempotent=True)
def info(args, ctx):
    return {"kind": HEAVY_KIND, "import_s": IMPORT_SECONDS, "pid": os.getpid(),
            "resident_bytes_allocated": len(BALLAST)}
