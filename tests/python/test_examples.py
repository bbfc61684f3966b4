"""Tests for the shipped handler modules: examples/handlers.py (echo, sleep, fail, crash, flaky,
compute, whoami, configure, DSPy-like programs) and the misbehaving tests/data/misbehave.py
that the C++ integration tests rely on."""

import hashlib
import json
import os
import signal
import struct
import time
import unittest

from bridgepool_worker.testing import WorkerTestCase

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXAMPLES = os.environ.get("BRIDGEPOOL_EXAMPLES_DIR") or os.path.join(REPO, "examples")
HANDLERS = os.path.join(EXAMPLES, "handlers.py")
MISBEHAVE = os.path.join(REPO, "tests", "data", "misbehave.py")


def expected_output(field: str, inputs: dict) -> str:
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"mock-{field}-{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"


class SimpleCommandsTest(WorkerTestCase):
    handlers = HANDLERS

    def test_echo_returns_args_unchanged(self):
        worker = self.ready()
        args = {"s": "x", "n": 1, "f": 1.5, "l": [1, None, True], "d": {"k": {}}}
        self.assertEqual(worker.result("echo", args), args)

    def test_sleep(self):
        worker = self.ready()
        started = time.monotonic()
        self.assertEqual(worker.result("sleep", {"ms": 30}), {"slept_ms": 30})
        self.assertGreaterEqual(time.monotonic() - started, 0.03)

    def test_sleep_is_slow_only_in_the_worker_named_by_slow_pid(self):
        worker = self.ready()
        started = time.monotonic()
        other = worker.result("sleep", {"ms": 5, "slow_pid": worker.pid + 1, "slow_factor": 20})
        fast_s = time.monotonic() - started
        self.assertEqual(other, {"slept_ms": 5})
        started = time.monotonic()
        slowed = worker.result("sleep", {"ms": 5, "slow_pid": worker.pid, "slow_factor": 20})
        self.assertEqual(slowed, {"slept_ms": 100.0})
        self.assertGreaterEqual(time.monotonic() - started, 0.1)
        self.assertLess(fast_s, 0.1)
        # slow_pid 0 (the bench's "nobody") and a missing factor leave the sleep alone.
        self.assertEqual(worker.result("sleep", {"ms": 1, "slow_pid": 0, "slow_factor": 20}),
                         {"slept_ms": 1})
        self.assertEqual(worker.result("sleep", {"ms": 1, "slow_pid": worker.pid}),
                         {"slept_ms": 1.0})

    def test_submit_echoes_but_is_not_idempotent(self):
        worker = self.ready()
        args = {"slot": 7, "d": {"k": [1, 2]}}
        self.assertEqual(worker.result("submit", args), args)
        commands = {c["name"]: c for c in worker.result("list_commands")["commands"]}
        self.assertFalse(commands["submit"]["idempotent"])
        self.assertTrue(commands["echo"]["idempotent"])

    def test_fail_defaults_and_unknown_types(self):
        worker = self.ready()
        error = self.assertError(worker.call("fail"), "RuntimeError")
        self.assertEqual(error["message"], "requested failure")
        self.assertEqual(self.assertError(worker.call("fail", {"type": "NoSuchError"}),
                                          "RuntimeError")["message"], "requested failure")
        self.assertError(worker.call("fail", {"type": "SystemExit"}), "RuntimeError")
        error = self.assertError(worker.call("fail", {"type": "TimeoutError", "message": "t",
                                                      "retryable": True}), "TimeoutError")
        self.assertEqual((error["message"], error["retryable"]), ("t", True))

    def test_crash_exits_with_the_code_and_sends_nothing(self):
        worker = self.ready()
        worker.request("crash", {"code": 5})
        self.assertTrue(worker.at_eof(5))
        self.assertEqual(worker.wait(5), 5)

    def test_crash_by_signal(self):
        worker = self.ready()
        worker.request("crash", {"signal": int(signal.SIGKILL)})
        self.assertEqual(worker.wait(5), -signal.SIGKILL)

    def test_compute(self):
        worker = self.ready()
        self.assertEqual(worker.result("compute", {"n": 10}),
                         {"n": 10, "value": sum(i * i % 7 for i in range(10))})

    def test_whoami(self):
        worker = self.ready(worker_id="w-who")
        worker.result("ping")
        worker.result("ping")
        self.assertEqual(worker.result("whoami"), {"pid": worker.pid, "worker_id": "w-who",
                                                   "requests_served": 2,
                                                   "handlers_version": "examples-1"})

    def test_configure_is_process_global(self):
        worker = self.ready()
        self.assertEqual(worker.result("get_config"), {"config": {}})
        worker.result("configure", {"model": "mock-lm"}, session_id="a")
        self.assertEqual(worker.result("get_config", session_id="b"),
                         {"config": {"model": "mock-lm"}})


class FlakyTest(WorkerTestCase):
    """`flaky`: the injected failures of the open-loop bench (`bridgepool bench --rate`)."""

    handlers = HANDLERS

    def outcome(self, reply: dict) -> str:
        if reply.get("ok"):
            return "ok"
        error = self.assertError(reply, "FlakyError")
        self.assertIs(error["retryable"], True)
        return "error"

    def test_is_declared_idempotent(self):
        worker = self.start()
        commands = {c["name"]: c for c in worker.handshake()["commands"]}
        self.assertIs(commands["flaky"]["idempotent"], True)

    def test_no_failures_echoes_the_args(self):
        worker = self.ready()
        args = {"fail_rate": 0, "data": "abc"}
        for _ in range(50):
            self.assertEqual(worker.result("flaky", args), args)

    def test_failures_that_do_not_crash_are_retryable_exceptions(self):
        worker = self.ready()
        for _ in range(20):
            self.assertEqual(self.outcome(worker.call("flaky", {"fail_rate": 1,
                                                                "crash_share": 0})), "error")

    def test_crashes_exit_with_the_code_and_send_nothing(self):
        worker = self.ready()
        worker.request("flaky", {"fail_rate": 1, "crash_share": 1, "crash_code": 9})
        self.assertTrue(worker.at_eof(5))
        self.assertEqual(worker.wait(5), 9)

    def test_fail_rate_is_a_probability(self):
        # 400 draws at p = 0.25: mean 100, standard deviation ~8.7; 55..145 is over 5 sigma.
        worker = self.ready()
        outcomes = [self.outcome(worker.call("flaky", {"fail_rate": 0.25, "crash_share": 0}))
                    for _ in range(400)]
        self.assertTrue(55 <= outcomes.count("error") <= 145, outcomes.count("error"))

    def test_a_seed_makes_the_sequence_reproducible_and_workers_differ_without_one(self):
        def sequence(worker, args):
            return [self.outcome(worker.call("flaky", args)) for _ in range(64)]

        seeded = {"fail_rate": 0.5, "crash_share": 0, "seed": "s1"}
        first = sequence(self.ready(worker_id="w-1"), seeded)
        self.assertEqual(sequence(self.ready(worker_id="w-2"), seeded), first)
        self.assertEqual(set(first), {"ok", "error"})  # chance of one outcome only: 2^-63
        unseeded = {"fail_rate": 0.5, "crash_share": 0}
        self.assertNotEqual(sequence(self.ready(), unseeded), sequence(self.ready(), unseeded))


class FlakyForkTest(unittest.TestCase):
    def test_forked_copies_of_the_module_draw_different_sequences(self):
        """Workers forked from a fork server share the module's import-time state: flaky's
        generator must be re-seeded in each, or every worker crashes on the same requests."""
        import importlib.util
        import random

        spec = importlib.util.spec_from_file_location("flaky_fork_probe", HANDLERS)
        module = importlib.util.module_from_spec(spec)
        random_state = random.getstate()
        try:
            from bridgepool_worker.registry import default_registry

            commands = dict(default_registry().commands)
            spec.loader.exec_module(module)
        finally:
            default_registry().commands.clear()
            default_registry().commands.update(commands)
            random.setstate(random_state)
        draws = []
        for _ in range(2):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.write(write_end, repr(module._flaky_rng.random()).encode())
                os._exit(0)
            os.close(write_end)
            draws.append(os.read(read_end, 64))
            os.close(read_end)
            os.waitpid(pid, 0)
        self.assertNotEqual(draws[0], draws[1])


class ProgramsTest(WorkerTestCase):
    handlers = HANDLERS

    def test_create_execute_list_delete(self):
        worker = self.ready()
        created = worker.result("create_program", {"signature": "question, context -> answer"},
                                session_id="s")
        self.assertEqual(created, {"program_id": "prog-1", "inputs": ["question", "context"],
                                   "outputs": ["answer"]})
        self.assertEqual(worker.result("create_program", {"signature": "a -> b, c"},
                                       session_id="s")["program_id"], "prog-2")
        self.assertEqual(worker.result("create_program", {"signature": "a -> b",
                                                          "program_id": "custom"},
                                       session_id="s")["program_id"], "custom")
        self.assertEqual(worker.result("list_programs", session_id="s"),
                         {"programs": ["custom", "prog-1", "prog-2"]})

        inputs = {"question": "2+2?", "context": "math"}
        executed = worker.result("execute_program", {"program_id": "prog-1",
                                                     "inputs": dict(inputs, extra="ignored")},
                                 session_id="s")
        self.assertEqual(executed, {"program_id": "prog-1",
                                    "outputs": {"answer": expected_output("answer", inputs)}})
        self.assertEqual(worker.result("delete_program", {"program_id": "prog-1"},
                                       session_id="s"), {"deleted": True})
        self.assertEqual(worker.result("delete_program", {"program_id": "prog-1"},
                                       session_id="s"), {"deleted": False})
        self.assertEqual(worker.result("list_programs", session_id="s")["programs"],
                         ["custom", "prog-2"])

    def test_outputs_are_deterministic_across_workers(self):
        outputs = []
        for worker_id in ("w-a", "w-b"):
            worker = self.ready(worker_id=worker_id)
            worker.result("create_program", {"signature": "q -> a, b"}, session_id="s")
            outputs.append(worker.result("execute_program",
                                         {"program_id": "prog-1", "inputs": {"q": "hi"}},
                                         session_id="s")["outputs"])
        self.assertEqual(outputs[0], outputs[1])
        self.assertEqual(outputs[0], {"a": expected_output("a", {"q": "hi"}),
                                      "b": expected_output("b", {"q": "hi"})})

    def test_programs_are_isolated_per_session(self):
        worker = self.ready()
        worker.result("create_program", {"signature": "q -> a"}, session_id="s1")
        self.assertEqual(worker.result("list_programs", session_id="s2"), {"programs": []})
        error = self.assertError(worker.call("execute_program", {"program_id": "prog-1",
                                                                 "inputs": {"q": 1}},
                                             session_id="s2"), "KeyError")
        self.assertEqual(error["message"], "program not found: prog-1")

    def test_errors(self):
        worker = self.ready()
        error = self.assertError(worker.call("create_program", {"signature": "q -> a"}),
                                 "ValueError")
        self.assertEqual(error["message"], "programs need a session")
        self.assertError(worker.call("create_program", {"signature": "no arrow"},
                                     session_id="s"), "ValueError")
        self.assertError(worker.call("create_program", {"signature": "q, -> a"},
                                     session_id="s"), "ValueError")
        worker.result("create_program", {"signature": "q, r -> a"}, session_id="s")
        error = self.assertError(worker.call("execute_program",
                                             {"program_id": "prog-1", "inputs": {"q": 1}},
                                             session_id="s"), "ValueError")
        self.assertIn("r", error["message"])

    def test_close_session_forgets_the_programs(self):
        worker = self.ready()
        worker.result("create_program", {"signature": "q -> a"}, session_id="s")
        worker.result("close_session", session_id="s")
        self.assertEqual(worker.result("list_programs", session_id="s"), {"programs": []})


class MisbehaveTest(WorkerTestCase):
    """The raw frames the C++ integration tests are built on, byte for byte."""

    handlers = MISBEHAVE

    def test_garbage_frame(self):
        worker = self.ready()
        worker.request("garbage", {"then": "reply"}, request_id=4)
        self.assertEqual(worker.recv_bytes(), b"this is not json{{")
        self.assertEqual(worker.recv(), {"id": 4, "ok": True, "result": {"then": "reply"}})

    def test_garbage_then_hang_sends_only_the_garbage(self):
        worker = self.ready()
        worker.request("garbage", {"seconds": 5})
        self.assertEqual(worker.recv_bytes(), b"this is not json{{")
        with self.assertRaises(TimeoutError):
            worker.recv_bytes(timeout=0.1)

    def test_wrong_id(self):
        worker = self.ready()
        worker.request("wrong_id", {"then": "exit"}, request_id=7)
        self.assertEqual(worker.recv(), {"id": 1007, "ok": True, "result": "wrong id"})
        self.assertTrue(worker.at_eof(5))
        self.assertEqual(worker.wait(5), 0)

    def test_truncated(self):
        worker = self.ready()
        worker.request("truncated")
        self.assertIsNone(worker.recv_bytes())  # EOF inside the frame
        self.assertEqual(worker.wait(5), 0)

    def test_oversized_header_only(self):
        worker = self.ready()
        worker.request("oversized", {"seconds": 5})
        self.assertEqual(struct.unpack(">I", worker.read_raw(4))[0], 0x7FFFFFF0)
        with self.assertRaises(TimeoutError):  # the header, then nothing while it sleeps
            worker.read_raw(1, timeout=0.1)

    def test_echo_control(self):
        worker = self.ready()
        self.assertEqual(worker.result("echo", {"a": 1}), {"a": 1})


if __name__ == "__main__":
    unittest.main()
