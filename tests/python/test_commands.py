"""Command-level tests for the worker runtime: built-ins, handler errors, sessions, streaming,
serialisation failures and shutdown, each against a real worker process."""

import os
import shutil
import signal
import tempfile
import textwrap
import unittest

from bridgepool_worker.testing import WorkerTestCase, encode_request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXAMPLES = os.environ.get("BRIDGEPOOL_EXAMPLES_DIR") or os.path.join(REPO, "examples")
HANDLERS = os.path.join(EXAMPLES, "handlers.py")
EDGE = os.path.join(REPO, "tests", "data", "edge_cases.py")


def write_module(test, source: str, name: str = "extra_handlers.py") -> str:
    """Writes a handler module into a fresh directory removed when `test` ends."""
    directory = tempfile.mkdtemp(prefix="bridgepool-test-")
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(source))
    test.addCleanup(shutil.rmtree, directory, True)
    return path


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
                                      "sessions", "rss_mb", "commands", "handlers_version",
                                      "unhealthy_marks", "last_unhealthy", "sentinel_pid"})
        self.assertEqual((stats["unhealthy_marks"], stats["last_unhealthy"]), (0, None))
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


class BaseExceptionTest(CommandTestCase):
    """Every BaseException a handler raises is reported like an exception and the worker goes
    on; SystemExit is reported, then honoured with its exit code."""

    def test_base_exceptions_are_reported_and_the_worker_keeps_serving(self):
        worker = self.ready()
        cases = (("KeyboardInterrupt", "", "KeyboardInterrupt"),
                 ("KeyboardInterrupt", "stop", "KeyboardInterrupt: stop"),
                 ("CancelledError", "task cancelled",
                  "asyncio.exceptions.CancelledError: task cancelled"),
                 ("GeneratorExit", "closing", "GeneratorExit: closing"),
                 ("CustomBase", "custom base", "edge_cases.CustomBase: custom base"))
        for name, message, last_line in cases:
            with self.subTest(type=name, message=message):
                error = self.assertError(
                    worker.call("raise_base", {"type": name, "message": message}), name)
                self.assertEqual(error["message"], message)
                self.assertIsNone(error["retryable"])
                self.assertTrue(error["traceback"].startswith("Traceback (most recent call"))
                self.assertIn("in raise_base", error["traceback"])
                self.assertEqual(error["traceback"].rstrip("\n").splitlines()[-1], last_line)
        error = self.assertError(worker.call("raise_base", {"type": "CustomBase",
                                                            "retryable": True}), "CustomBase")
        self.assertIs(error["retryable"], True)
        self.assertEqual(worker.result("whoami")["pid"], worker.pid)
        self.assertEqual(worker.result("get_stats")["errors"], len(cases) + 1)

    def test_in_a_stream(self):
        worker = self.ready()
        chunks, reply = worker.call_stream("stream_then_raise",
                                           {"type": "KeyboardInterrupt", "count": 2})
        self.assertEqual(chunks, [{"i": 0}, {"i": 1}])
        error = self.assertError(reply, "KeyboardInterrupt")
        self.assertIn("stream_then_raise", error["traceback"])
        chunks, reply = worker.call_stream("stream_then_raise",
                                           {"type": "GeneratorExit", "count": 0})
        self.assertEqual(chunks, [])
        self.assertError(reply, "GeneratorExit")
        self.assertEqual(worker.result("ping"), "pong")

    def test_sys_exit_replies_then_exits_with_the_code(self):
        for code, expected_exit, shown in ((7, 7, "7"), (None, 0, "None"), (0, 0, "0"),
                                           ("bye", 1, "'bye'"), (300, 44, "300")):
            with self.subTest(code=code):
                worker = self.ready()
                rid = worker.request("sys_exit", {} if code is None else {"code": code})
                reply = worker.recv()
                error = self.assertError(reply, "SystemExit", request_id=rid)
                self.assertEqual(error["message"],
                                 f"the handler called sys.exit({shown}); the worker exits with "
                                 f"code {expected_exit}")
                self.assertIn("sys.exit(", error["traceback"])
                self.assertIsNone(error["retryable"])
                self.assertTrue(worker.at_eof(5))
                self.assertEqual(worker.wait(5), expected_exit)
                if code == "bye":
                    self.assertEqual(worker.stderr_text(), "bye\n")  # as the interpreter does

    def test_sys_exit_in_a_stream_replies_after_the_chunks_then_exits(self):
        worker = self.ready()
        chunks, reply = worker.call_stream("stream_then_raise",
                                           {"type": "SystemExit", "code": 5, "count": 1})
        self.assertEqual(chunks, [{"i": 0}])
        self.assertEqual(self.assertError(reply, "SystemExit")["message"],
                         "the handler called sys.exit(5); the worker exits with code 5")
        self.assertEqual(worker.wait(5), 5)

    def test_sigint_during_a_handler_is_ignored(self):
        worker = self.ready()
        rid = worker.request("sleep", {"ms": 200})
        os.kill(worker.pid, signal.SIGINT)
        self.assertEqual(worker.recv(), {"id": rid, "ok": True, "result": {"slept_ms": 200}})

    def test_a_health_check_raising_a_base_exception_is_a_failing_check(self):
        path = write_module(self, """
            from bridgepool_worker import health_check

            @health_check
            def gpu():
                raise KeyboardInterrupt("probe interrupted")
        """)
        worker = self.ready(path)
        health = worker.result("health_check")
        self.assertEqual((health["status"], health["detail"]),
                         ("unhealthy", ["extra_handlers.gpu raised KeyboardInterrupt: "
                                        "probe interrupted"]))


class WorkerUnhealthyTest(CommandTestCase):
    """ctx.mark_unhealthy() and exceptions flagged `worker_unhealthy` add a top-level
    "worker_unhealthy" field to the call's final reply, ok or not."""

    def test_a_mark_on_an_ok_reply_then_the_next_reply_is_clean(self):
        worker = self.ready()
        worker.request("mark", {"reasons": ["CUDA out of memory"]}, request_id=3)
        self.assertEqual(worker.recv_bytes(),
                         b'{"id":3,"ok":true,"worker_unhealthy":"CUDA out of memory",'
                         b'"result":{"marked":1}}')
        worker.request("echo", {"a": 1}, request_id=4)
        self.assertEqual(worker.recv_bytes(), b'{"id":4,"ok":true,"result":{"a":1}}')
        stats = worker.result("get_stats")
        self.assertEqual((stats["unhealthy_marks"], stats["last_unhealthy"]),
                         (1, "CUDA out of memory"))
        self.assertEqual(stats["errors"], 0)

    def test_the_first_mark_of_a_call_wins(self):
        worker = self.ready()
        reply = worker.call("mark", {"reasons": ["first", "second"]})
        self.assertEqual(reply["worker_unhealthy"], "first")
        self.assertEqual(worker.result("get_stats")["unhealthy_marks"], 1)

    def test_a_mark_then_an_exception_or_an_unserialisable_result(self):
        worker = self.ready()
        reply = worker.call("mark", {"reasons": ["bad state"], "then": "raise"})
        self.assertEqual(self.assertError(reply, "ValueError")["message"], "failed after marking")
        self.assertEqual(reply["worker_unhealthy"], "bad state")
        reply = worker.call("mark", {"reasons": ["worse state"], "then": "set"})
        self.assertError(reply, "SerializationError")
        self.assertEqual(reply["worker_unhealthy"], "worse state")
        self.assertEqual(set(reply), {"id", "ok", "worker_unhealthy", "error"})
        stats = worker.result("get_stats")
        self.assertEqual((stats["unhealthy_marks"], stats["last_unhealthy"]), (2, "worse state"))

    def test_flagged_exceptions(self):
        worker = self.ready()
        cases = (({"flag": "GPU fell off the bus"}, "GPU fell off the bus"),
                 ({"flag": True}, "UnhealthyError: device lost"),
                 ({"flag": 1}, "UnhealthyError: device lost"),
                 ({"on": "class"}, "ClassFlaggedError: device lost"))
        for args, reason in cases:
            with self.subTest(args=args):
                reply = worker.call("raise_unhealthy", args)
                self.assertEqual(reply["worker_unhealthy"], reason)
                self.assertEqual(reply["error"]["message"], "device lost")
        for flag in (False, "", None, 0):
            with self.subTest(flag=flag):
                reply = worker.call("raise_unhealthy", {"flag": flag})
                self.assertError(reply, "UnhealthyError")
                self.assertNotIn("worker_unhealthy", reply)
        self.assertEqual(worker.result("get_stats")["unhealthy_marks"], len(cases))

    def test_a_mark_in_a_stream_is_on_the_final_reply_only(self):
        worker = self.ready()
        rid = worker.request("stream_mark", {"reason": "driver wedged"})
        self.assertEqual([worker.recv() for _ in range(3)],
                         [{"id": rid, "chunk": {"i": 0}}, {"id": rid, "chunk": {"i": 1}},
                          {"id": rid, "ok": True, "worker_unhealthy": "driver wedged",
                           "result": {"done": True}}])

    def test_reasons_are_strings_of_at_most_1024_characters(self):
        worker = self.ready()
        cases = (("x" * 5000, "x" * 1021 + "..."), ("é" * 1024, "é" * 1024), (42, "42"),
                 ("", "marked unhealthy (no reason given)"))
        for reason, expected in cases:
            with self.subTest(reason=str(reason)[:10]):
                self.assertEqual(worker.call("mark", {"reasons": [reason]})["worker_unhealthy"],
                                 expected)

    def test_shutdown_still_stops_after_a_mark(self):
        worker = self.ready()
        worker.result("mark", {"reasons": ["r"]})
        worker.send_raw(encode_request({"id": 8, "command": "shutdown"})
                        + encode_request({"id": 9, "command": "ping"}))
        self.assertEqual(worker.recv(), {"id": 8, "ok": True, "result": {"shutting_down": True}})
        self.assertTrue(worker.at_eof(5))
        self.assertEqual(worker.wait(5), 0)


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
        return write_module(self, source)

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
