"""Command-level tests for the worker runtime: built-ins, handler errors, sessions, streaming,
serialisation failures and shutdown, each against a real worker process."""

import os
import shutil
import tempfile
import textwrap
import unittest

from bridgepool_worker.testing import WorkerTestCase, encode_request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXAMPLES = os.environ.get("BRIDGEPOOL_EXAMPLES_DIR") or os.path.join(REPO, "examples")
HANDLERS = os.path.join(EXAMPLES, "handlers.py")
EDGE = os.path.join(REPO, "tests", "data", "edge_cases.py")


class CommandTestCase(WorkerTestCase):
    handlers = [HANDLERS, EDGE]


class BuiltinCommandsTest(CommandTestCase):
    def test_ping(self):
        worker = self.ready()
        worker.request("ping", request_id=77)
        self.assertEqual(worker.recv(), {"id": 77, "ok": True, "result": "pong"})

    def test_unknown_command_names_it_and_lists_the_available_ones(self):
        worker = self.ready()
        error = self.assertError(worker.call("frobnicate"), "UnknownCommand")
        self.assertIn("'frobnicate'", error["message"])
        for name in ("echo", "ping", "shutdown", "counter"):
            self.assertIn(name, error["message"])
        self.assertIsNone(error["traceback"])
        self.assertIs(error["retryable"], False)
        self.assertEqual(worker.result("ping"), "pong")

    def test_get_stats_counts_exactly(self):
        worker = self.ready(worker_id="w-stats")
        worker.result("echo", {})
        worker.call("fail", {})
        worker.call("no_such_command")
        worker.result("counter", {}, session_id="s-1")
        worker.result("counter", {}, session_id="s-2")
        stats = worker.result("get_stats")
        self.assertEqual(set(stats), {"pid", "worker_id", "uptime_s", "requests_served", "errors",
                                      "sessions", "rss_mb", "commands", "handlers_version"})
        self.assertEqual(stats["pid"], worker.pid)
        self.assertEqual(stats["worker_id"], "w-stats")
        self.assertEqual(stats["requests_served"], 5)  # answered before this get_stats
        self.assertEqual(stats["errors"], 2)  # fail + unknown command
        self.assertEqual(stats["sessions"], 2)
        self.assertEqual(stats["handlers_version"], "examples-1")
        self.assertEqual(stats["commands"]["echo"], 1)
        self.assertEqual(stats["commands"]["fail"], 1)
        self.assertEqual(stats["commands"]["counter"], 2)
        self.assertEqual(stats["commands"]["get_stats"], 1)
        self.assertEqual(stats["commands"]["ping"], 0)
        self.assertNotIn("no_such_command", stats["commands"])
        self.assertIsInstance(stats["uptime_s"], float)
        self.assertGreater(stats["rss_mb"], 1.0)
        self.assertEqual(worker.result("get_stats")["requests_served"], 6)

    def test_health_check_without_hooks_is_healthy(self):
        worker = self.ready(worker_id="w-h")
        worker.result("ping")
        health = worker.result("health_check")
        self.assertEqual(set(health), {"status", "pid", "worker_id", "uptime_s",
                                       "requests_served", "rss_mb", "detail"})
        self.assertEqual(health["status"], "healthy")
        self.assertEqual(health["pid"], worker.pid)
        self.assertEqual(health["worker_id"], "w-h")
        self.assertEqual(health["requests_served"], 1)
        self.assertEqual(health["detail"], [])
        self.assertIsInstance(health["uptime_s"], float)
        self.assertIsInstance(health["rss_mb"], float)

    def test_list_commands_is_sorted_and_marks_builtins(self):
        worker = self.ready(HANDLERS)
        commands = worker.result("list_commands")["commands"]
        names = [c["name"] for c in commands]
        self.assertEqual(names, sorted(names))
        by_name = {c["name"]: c for c in commands}
        self.assertEqual(by_name["ping"], {"name": "ping", "idempotent": True, "builtin": True})
        self.assertEqual(by_name["shutdown"],
                         {"name": "shutdown", "idempotent": False, "builtin": True})
        self.assertEqual(by_name["echo"], {"name": "echo", "idempotent": True, "builtin": False})
        self.assertEqual(by_name["crash"],
                         {"name": "crash", "idempotent": False, "builtin": False})

    def test_shutdown_replies_then_exits_0_and_answers_nothing_after(self):
        worker = self.ready()
        # One write, so the ping is already queued when shutdown runs: it must not be answered.
        worker.send_raw(encode_request({"id": 5, "command": "shutdown"})
                        + encode_request({"id": 6, "command": "ping"}))
        self.assertEqual(worker.recv(), {"id": 5, "ok": True, "result": {"shutting_down": True}})
        self.assertTrue(worker.at_eof(5))
        self.assertEqual(worker.wait(5), 0)

    def test_shutdown_is_not_held_up_by_a_non_daemon_thread(self):
        worker = self.ready()
        self.assertEqual(worker.result("start_thread"), {"started": True})
        worker.result("shutdown")
        self.assertEqual(worker.wait(5), 0)

    def test_eof_is_not_held_up_by_a_non_daemon_thread(self):
        worker = self.ready()
        worker.result("start_thread")
        worker.close_requests()
        self.assertEqual(worker.wait(5), 0)


class HandlerErrorTest(CommandTestCase):
    def test_exception_becomes_an_error_reply_and_the_worker_survives(self):
        worker = self.ready()
        reply = worker.call("fail", {"type": "ValueError", "message": "bad input"})
        error = self.assertError(reply, "ValueError")
        self.assertEqual(error["message"], "bad input")
        self.assertIsNone(error["retryable"])
        self.assertTrue(error["traceback"].startswith("Traceback (most recent call last):"))
        self.assertIn("handlers.py", error["traceback"])
        self.assertIn("ValueError: bad input", error["traceback"])
        self.assertNotIn("runtime.py", error["traceback"])  # the runtime's frame is cut off
        self.assertEqual(worker.result("echo", {"still": "alive"}), {"still": "alive"})

    def test_retryable_attribute_is_reported_only_when_it_is_a_bool(self):
        worker = self.ready()
        self.assertIs(worker.call("fail", {"retryable": True})["error"]["retryable"], True)
        for value, expected in ((True, True), (False, False), ("yes", None), (None, None)):
            with self.subTest(retryable=value):
                error = self.assertError(worker.call("raise_custom", {"retryable": value}),
                                         "CustomError")
                self.assertIs(error["retryable"], expected)
                self.assertEqual(error["message"], "custom failure")

    def test_key_error_message_has_no_extra_quotes(self):
        worker = self.ready()
        error = self.assertError(worker.call("raise_keyerror"), "KeyError")
        self.assertEqual(error["message"], "program not found: p-9")

    def test_sys_exit_in_a_handler_ends_the_worker_without_a_reply(self):
        worker = self.ready()
        worker.request("sys_exit", {"code": 7})
        self.assertTrue(worker.at_eof(5))
        self.assertEqual(worker.wait(5), 7)


class SerialisationTest(CommandTestCase):
    def test_results_that_are_not_json_become_serialization_errors(self):
        worker = self.ready()
        for command in ("unserialisable", "nan", "surrogate", "circular"):
            with self.subTest(command=command):
                error = self.assertError(worker.call(command), "SerializationError")
                self.assertIn(repr(command), error["message"])
                self.assertIs(error["retryable"], False)
                # Nested containers still encode after a failure halfway through one.
                nested = {"inner": [1, 2, {"deep": [{"x": None}]}]}
                self.assertEqual(worker.result("echo", nested), nested)
        self.assertIn("Circular reference", worker.call("circular")["error"]["message"])


class SessionTest(CommandTestCase):
    def test_session_state_persists_per_session_and_is_isolated(self):
        worker = self.ready()
        self.assertEqual([worker.result("counter", session_id="a")["n"] for _ in range(3)],
                         [1, 2, 3])
        self.assertEqual(worker.result("counter", session_id="b"), {"n": 1, "session_id": "b"})
        self.assertEqual(worker.result("counter", session_id="a")["n"], 4)

    def test_calls_without_a_session_get_a_fresh_dict_each_time(self):
        worker = self.ready()
        for _ in range(2):
            self.assertEqual(worker.result("counter"), {"n": 1, "session_id": None})
        self.assertEqual(worker.result("get_stats")["sessions"], 0)

    def test_context_carries_the_request_fields(self):
        worker = self.ready(worker_id="w-ctx")
        request_id = worker.request("context", session_id="s-9", deadline_ms=1500)
        reply = worker.recv()
        self.assertEqual(reply["result"], {"session_id": "s-9", "worker_id": "w-ctx",
                                           "request_id": request_id, "deadline_ms": 1500,
                                           "session_keys": []})

    def test_close_session_drops_the_state(self):
        worker = self.ready()
        worker.result("counter", session_id="a")
        worker.result("counter", session_id="a")
        worker.result("counter", session_id="b")
        self.assertEqual(worker.result("close_session", session_id="a"),
                         {"closed": True, "session_id": "a"})
        self.assertEqual(worker.result("close_session", session_id="a"),
                         {"closed": False, "session_id": "a"})
        self.assertEqual(worker.result("counter", session_id="a")["n"], 1)
        self.assertEqual(worker.result("counter", session_id="b")["n"], 2)

    def test_close_session_by_argument_wins_over_the_request_session(self):
        worker = self.ready()
        worker.result("counter", session_id="a")
        self.assertEqual(worker.result("close_session", {"session_id": "a"}, session_id="z"),
                         {"closed": True, "session_id": "a"})
        self.assertEqual(worker.result("close_session"), {"closed": False, "session_id": None})
        self.assertEqual(worker.result("get_stats")["sessions"], 0)
        self.assertError(worker.call("close_session", {"session_id": 5}), "InvalidArguments")


class StreamingTest(CommandTestCase):
    def test_chunks_then_the_return_value(self):
        worker = self.ready()
        chunks, reply = worker.call_stream("stream", {"count": 4})
        self.assertEqual(chunks, [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 3}])
        self.assertEqual(reply["ok"], True)
        self.assertEqual(reply["result"], {"count": 4})

    def test_zero_chunks(self):
        worker = self.ready()
        chunks, reply = worker.call_stream("stream", {"count": 0})
        self.assertEqual((chunks, reply["result"]), ([], {"count": 0}))

    def test_generator_that_raises_ends_with_an_error_reply(self):
        worker = self.ready()
        chunks, reply = worker.call_stream("stream_then_fail", {"count": 2})
        self.assertEqual(chunks, [{"i": 0}, {"i": 1}])
        error = self.assertError(reply, "ValueError")
        self.assertEqual(error["message"], "stream broke")
        self.assertIn("stream_then_fail", error["traceback"])
        self.assertEqual(worker.result("ping"), "pong")

    def test_unserialisable_chunk_ends_the_stream(self):
        worker = self.ready()
        chunks, reply = worker.call_stream("stream_bad_chunk")
        self.assertEqual(chunks, [{"fine": True}])
        self.assertIn("chunk", self.assertError(reply, "SerializationError")["message"])
        self.assertEqual(worker.result("ping"), "pong")


class RegistrationFailureTest(WorkerTestCase):
    def write_module(self, source: str) -> str:
        directory = tempfile.mkdtemp(prefix="bridgepool-test-")
        path = os.path.join(directory, "extra_handlers.py")
        with open(path, "w") as f:
            f.write(textwrap.dedent(source))
        self.addCleanup(shutil.rmtree, directory, True)
        return path

    def init_failure(self, handlers):
        worker = self.start(handlers)
        message = worker.recv()
        self.assertEqual(worker.wait(5), 3)
        self.assertEqual(message["event"], "init_failed")
        return message["error"]

    def test_the_same_command_in_two_modules_fails_init(self):
        extra = self.write_module("""
            from bridgepool_worker import command

            @command("echo")
            def my_echo(args, ctx):
                return args
        """)
        error = self.init_failure([HANDLERS, extra])
        self.assertEqual(error["type"], "RegistrationError")
        self.assertIn("'echo' registered twice", error["message"])
        self.assertIn("extra_handlers.py", error["message"])

    def test_a_builtin_name_cannot_be_taken(self):
        extra = self.write_module("""
            from bridgepool_worker import command

            @command("ping")
            def my_ping(args, ctx):
                return "mine"
        """)
        error = self.init_failure(extra)
        self.assertEqual(error["type"], "RegistrationError")
        self.assertIn("reserved", error["message"])


if __name__ == "__main__":
    unittest.main()
