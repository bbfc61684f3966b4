"""The Python helpers of the replacement benchmarks (issue #10): bench/heavy_handlers.py served by
a real worker (its commands, its refusal of bad input), and bench/fork_floor.py's measurement and
percentiles. One heavy worker start (≈1-3 s: it imports scikit-learn or sleeps 1 s)."""

import contextlib
import io
import os
import shutil
import sys
import tempfile
import unittest

from bridgepool_worker.testing import WorkerTestCase

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BENCH = os.path.join(REPO, "bench")
HEAVY = os.path.join(BENCH, "heavy_handlers.py")
sys.path.insert(0, BENCH)

import fork_floor  # noqa: E402  (bench/ is not a package)


class HeavyHandlersTest(WorkerTestCase):
    handlers = [HEAVY]

    def test_commands_and_bad_input(self):
        worker = self.ready()  # one worker for every check: each start costs a heavy import
        info = worker.result("info")
        self.assertIn(info["kind"], ("sklearn", "sleep+alloc"))
        self.assertEqual(info["pid"], worker.pid)
        self.assertGreater(info["import_s"], 0)
        expected_ballast = 0 if info["kind"] == "sklearn" else 200 * 1024 * 1024
        self.assertEqual(info["resident_bytes_allocated"], expected_ballast)
        self.assertEqual(worker.result("echo", {"a": [1, 2]}), {"a": [1, 2]})
        rows = [[1.0] * 20, [-1.0] * 20]
        reply = worker.result("predict", {"features": rows})
        self.assertEqual(reply["kind"], info["kind"])
        self.assertEqual(len(reply["classes"]), 2)
        self.assertTrue(all(c in (0, 1) for c in reply["classes"]))
        for bad, message in (({}, "non-empty list of rows"),
                             ({"features": []}, "non-empty list of rows"),
                             ({"features": [[1.0] * 19]}, "list of 20 numbers"),
                             ({"features": [[True] * 20]}, "list of 20 numbers"),
                             ({"features": [["x"] * 20]}, "list of 20 numbers")):
            with self.subTest(args=bad):
                error = self.assertError(worker.call("predict", bad), "ValueError")
                self.assertIn(message, error["message"])


class ForkFloorTest(unittest.TestCase):
    def test_summary_is_nearest_rank_like_latency_summary_h(self):
        s = fork_floor.summary([float(v) for v in range(100, 0, -1)])
        self.assertEqual((s["p50"], s["p90"], s["p99"], s["max"]), (50.0, 90.0, 99.0, 100.0))
        self.assertAlmostEqual(s["mean"], 50.5)
        one = fork_floor.summary([7.0])
        self.assertEqual((one["p50"], one["p99"], one["max"]), (7.0, 7.0, 7.0))

    def test_one_fork_answers_with_the_modules_echo_and_leaves_no_child(self):
        # A module of its own (registering no commands in this process's runtime registry).
        directory = tempfile.mkdtemp(prefix="bridgepool-test-")
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "floor_probe_handlers.py")
        with open(path, "w") as f:
            f.write("def echo(args, ctx):\n    return args\n")
        module, echo, seconds = fork_floor.load(path, os.path.join(REPO, "python"))
        self.assertGreater(seconds, 0)
        self.assertIs(echo, module.echo)
        elapsed = fork_floor.one_fork(3, echo)
        self.assertGreater(elapsed, 0)
        with self.assertRaises(ChildProcessError):  # the child was reaped by one_fork
            os.waitpid(-1, os.WNOHANG)

    def test_bad_counts_are_refused(self):
        with self.assertRaises(SystemExit) as cm, contextlib.redirect_stderr(io.StringIO()) as err:
            fork_floor.main(["--forks", "0"])
        self.assertIn("--forks must be >= 1", err.getvalue())
        self.assertEqual(cm.exception.code, 2)  # argparse's usage error


if __name__ == "__main__":
    unittest.main()
