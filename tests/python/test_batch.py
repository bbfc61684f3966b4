"""Batch requests (bridgepool_worker/batch.py): one handler call per item, answered in parts.

Real worker processes over real pipes, like test_protocol.py.
"""

import os
import time
import unittest

from bridgepool_worker.testing import WorkerTestCase

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EDGE = os.path.join(REPO, "tests", "data", "edge_cases.py")


class BatchCase(WorkerTestCase):
    handlers = EDGE

    def batch(self, worker, items, command="item", request_id=41, timeout=10.0):
        """Sends a batch; returns (parts sent as chunks, final reply)."""
        worker.send({"id": request_id, "command": command, "batch": items,
                     "session_id": None, "deadline_ms": None})
        deadline = time.monotonic() + timeout
        parts = []
        while True:
            message = worker.recv(max(deadline - time.monotonic(), 0.001))
            self.assertEqual(message["id"], request_id, message)
            if "chunk" in message:
                parts.append(message["chunk"])
                continue
            return parts, message

    def merged(self, parts, reply, count):
        """Every item's (result, error) from the parts and the final reply, checked contiguous."""
        everything = parts + [reply["result"]]
        out = []
        for part in everything:
            self.assertEqual(part["from"], len(out), everything)
            errors = dict((i, e) for i, e in part["errors"])
            for offset, result in enumerate(part["results"]):
                index = part["from"] + offset
                out.append((result, errors.get(index)))
        self.assertEqual(len(out), count)
        return out


class BatchTest(BatchCase):
    def test_each_item_runs_once_in_order(self):
        worker = self.ready()
        parts, reply = self.batch(worker, [{"value": i} for i in range(100)])
        self.assertTrue(reply["ok"])
        out = self.merged(parts, reply, 100)
        self.assertEqual([r["value"] for r, _ in out], list(range(100)))
        self.assertTrue(all(e is None for _, e in out))
        stats = worker.result("get_stats")
        self.assertEqual(stats["commands"]["item"], 100)
        self.assertEqual(stats["requests_served"], 100)  # the items (get_stats is counted after)

    def test_a_failing_item_fails_alone_with_its_own_error(self):
        worker = self.ready()
        items = [{"value": 0}, {"raise": "bad item"}, {"value": 2}, None, 7]
        parts, reply = self.batch(worker, items)
        out = self.merged(parts, reply, 5)
        self.assertEqual(out[0][0]["value"], 0)
        self.assertIsNone(out[1][0])
        self.assertEqual(out[1][1]["type"], "ValueError")
        self.assertEqual(out[1][1]["message"], "bad item")
        self.assertIn("Traceback", out[1][1]["traceback"])
        self.assertEqual(out[2][0]["value"], 2)
        self.assertEqual(out[3][0]["value"], None)  # null args: {}
        self.assertEqual(out[4][1]["type"], "InvalidArguments")
        self.assertIn("item 4", out[4][1]["message"])
        self.assertEqual(worker.result("ping"), "pong")  # the worker goes on

    def test_slow_items_are_reported_as_each_finishes(self):
        worker = self.ready()
        parts, reply = self.batch(worker, [{"value": i, "sleep_ms": 20} for i in range(4)])
        self.assertEqual(len(parts), 3)  # every item but the last as its own part
        out = self.merged(parts, reply, 4)
        self.assertEqual([r["value"] for r, _ in out], [0, 1, 2, 3])

    def test_large_results_are_split_into_parts_below_the_frame_limit(self):
        worker = self.ready(extra_args=["--max-frame-bytes", str(300_000)])
        _, reply_small = self.batch(worker, [{"bytes": 100}], command="big", request_id=1)
        self.assertEqual(len(reply_small["result"]["results"][0]), 100)
        parts, reply = self.batch(worker, [{"bytes": 100_000}] * 5, command="big", request_id=2)
        self.assertGreaterEqual(len(parts), 2)
        out = self.merged(parts, reply, 5)
        self.assertTrue(all(len(r) == 100_000 and e is None for r, e in out))
        parts, too_big = self.batch(worker, [{"bytes": 400_000}, {"bytes": 5}], command="big",
                                    request_id=3)
        out = self.merged(parts, too_big, 2)
        self.assertEqual(out[0][1]["type"], "SerializationError")
        self.assertIn("frame limit", out[0][1]["message"])
        self.assertEqual(out[1][0], "xxxxx")

    def test_sys_exit_answers_its_item_then_the_worker_exits_with_the_rest_unanswered(self):
        worker = self.ready()
        worker.send({"id": 9, "command": "item", "deadline_ms": None,
                     "batch": [{"value": 0}, {"exit": 3}, {"value": 2}]})
        part = worker.recv()
        self.assertEqual(part["id"], 9)
        self.assertEqual(part["chunk"]["from"], 0)
        self.assertEqual(len(part["chunk"]["results"]), 2)
        self.assertEqual(part["chunk"]["errors"][0][0], 1)
        self.assertEqual(part["chunk"]["errors"][0][1]["type"], "SystemExit")
        self.assertTrue(worker.at_eof())
        self.assertEqual(worker.process.wait(timeout=5), 3)

    def test_a_crash_mid_batch_leaves_the_reported_items_reported(self):
        worker = self.ready()
        worker.send({"id": 4, "command": "item", "deadline_ms": None,
                     "batch": [{"value": 0, "sleep_ms": 10}, {"value": 1, "sleep_ms": 10},
                               {"crash": 9}]})
        first = worker.recv()["chunk"]
        second = worker.recv()["chunk"]
        self.assertEqual((first["from"], second["from"]), (0, 1))
        self.assertTrue(worker.at_eof())

    def test_a_mark_goes_out_with_the_final_reply(self):
        worker = self.ready()
        parts, reply = self.batch(worker, [{"value": 0}, {"mark": "GPU lost"}, {"value": 2}])
        self.assertEqual(reply["worker_unhealthy"], "GPU lost")
        self.assertEqual(len(self.merged(parts, reply, 3)), 3)
        self.assertNotIn("worker_unhealthy", worker.call("ping"))

    def test_unencodable_and_streaming_items_fail_alone(self):
        worker = self.ready()
        parts, reply = self.batch(worker, [{"surrogate": True}, {"stream": True}, {"value": "ok"}])
        out = self.merged(parts, reply, 3)
        self.assertEqual(out[0][1]["type"], "SerializationError")
        self.assertEqual(out[1][1]["type"], "InvalidArguments")
        self.assertIn("streams", out[1][1]["message"])
        self.assertEqual(out[2][0]["value"], "ok")

    def test_malformed_batches_are_refused_whole(self):
        worker = self.ready()
        _, reply = self.batch(worker, {"not": "a list"})
        self.assertError(reply, "InvalidArguments", 41)
        _, unknown = self.batch(worker, [{}], command="no_such_command", request_id=5)
        self.assertError(unknown, "UnknownCommand", 5)
        parts, empty = self.batch(worker, [], request_id=6)
        self.assertEqual((parts, empty["result"]), ([], {"from": 0, "results": [], "errors": []}))


class BatchHandlerTest(BatchCase):
    """`@command(..., batch=True)`: the chunk in one call, results and errors per item."""

    def test_one_call_answers_every_item_in_order(self):
        worker = self.ready()
        items = [{"value": i} for i in range(40)]
        parts, reply = self.batch(worker, items, command="score_batch")
        out = self.merged(parts, reply, 40)
        self.assertEqual([r["value"] for r, _ in out], list(range(40)))
        self.assertEqual({r["calls"] for r, _ in out}, {40})  # one call for all of them

    def test_an_exception_in_the_returned_list_fails_its_item_alone(self):
        worker = self.ready()
        items = [{"value": 0}, {"value": 1, "fail": True}, 7, {"value": 3}]
        parts, reply = self.batch(worker, items, command="score_batch")
        out = self.merged(parts, reply, 4)
        self.assertEqual(out[0][0]["calls"], 3)  # the non-object item was not passed
        self.assertEqual(out[1][1]["type"], "ValueError")
        self.assertEqual(out[1][1]["message"], "bad item 1")
        self.assertEqual(out[2][1]["type"], "InvalidArguments")
        self.assertEqual(out[3][0]["value"], 3)

    def test_a_raise_or_a_wrong_length_fails_every_item_of_the_call(self):
        worker = self.ready()
        for marker, error_type in (("raise_all", "RuntimeError"), ("short", "BatchResultError")):
            with self.subTest(marker):
                parts, reply = self.batch(worker, [{"value": 0}, {"value": 1, marker: True}],
                                          command="score_batch")
                out = self.merged(parts, reply, 2)
                self.assertEqual([e["type"] for _, e in out], [error_type, error_type])
        self.assertEqual(worker.result("ping"), "pong")

    def test_sys_exit_answers_the_items_then_the_worker_exits(self):
        worker = self.ready()
        worker.send({"id": 9, "command": "score_batch", "deadline_ms": None,
                     "batch": [7, {"value": 0}, {"exit": True}], "session_id": None})
        part = worker.recv()["chunk"]  # sent at once, as a chunk; no final reply follows
        self.assertEqual(part["results"], [None, None, None])
        self.assertEqual([(i, e["type"]) for i, e in part["errors"]],
                         [(0, "InvalidArguments"), (1, "SystemExit"), (2, "SystemExit")])
        self.assertTrue(worker.at_eof(5))
        self.assertEqual(worker.wait(5), 3)

    def test_a_single_call_passes_one_item_and_gets_its_result(self):
        worker = self.ready()
        self.assertEqual(worker.result("score_batch", {"value": 5})["calls"], 1)
        self.assertEqual(self.assertError(worker.call("score_batch", {"value": 5, "fail": 1}),
                                          "ValueError")["message"], "bad item 5")
        self.assertError(worker.call("score_batch", {"short": 1}), "BatchResultError")

    def test_a_batch_handler_cannot_stream(self):
        from bridgepool_worker.registry import RegistrationError, Registry

        def gen(items, ctx):
            yield items

        with self.assertRaises(RegistrationError):
            Registry().add_command("g", gen, batch=True)
        with self.assertRaises(RegistrationError):
            Registry().add_command("g", lambda items, ctx: items, batch="yes")


if __name__ == "__main__":
    unittest.main()
