"""Process-lifecycle tests for the worker runtime: init failures, parent death, signals, output
capture, health hooks and fd hygiene — real processes, real signals, waits with deadlines."""

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

from bridgepool_worker.testing import PACKAGE_PARENT, WorkerTestCase, process_gone, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXAMPLES = os.environ.get("BRIDGEPOOL_EXAMPLES_DIR") or os.path.join(REPO, "examples")
HANDLERS = os.path.join(EXAMPLES, "handlers.py")
DATA = os.path.join(REPO, "tests", "data")
EDGE = os.path.join(DATA, "edge_cases.py")
TOGGLE = os.path.join(DATA, "healthy_toggle.py")


class InitFailureTest(WorkerTestCase):
    def init_failure(self, handlers, **kwargs):
        """Returns (error, stderr) of a worker that must fail init with exit code 3."""
        worker = self.start(handlers, **kwargs)
        message = worker.recv()
        self.assertEqual(worker.wait(5), 3)
        self.assertTrue(worker.at_eof(5))
        self.assertEqual(set(message), {"id", "event", "error"})
        self.assertEqual((message["id"], message["event"]), (0, "init_failed"))
        error = message["error"]
        self.assertEqual(set(error), {"type", "message", "traceback", "retryable"})
        self.assertIsNone(error["retryable"])
        return error, worker.stderr_text()

    def test_import_error(self):
        path = os.path.join(DATA, "import_error.py")
        error, stderr = self.init_failure(path)
        self.assertEqual(error["type"], "ImportError")
        self.assertIn(path, error["message"])
        self.assertIn("simulated import failure for tests", error["message"])
        self.assertIn("import_error.py", error["traceback"])
        self.assertIn("simulated import failure for tests", stderr)
        self.assertIn("Traceback", stderr)

    def test_syntax_error(self):
        path = os.path.join(DATA, "syntax_error.py")
        error, stderr = self.init_failure(path)
        self.assertEqual(error["type"], "SyntaxError")
        self.assertIn(path, error["message"])
        self.assertIn("SyntaxError", stderr)

    def test_missing_file(self):
        path = os.path.join(DATA, "no_such_handlers.py")
        error, _ = self.init_failure(path)
        self.assertEqual(error["type"], "FileNotFoundError")
        self.assertIn(path, error["message"])

    def test_missing_dotted_module(self):
        error, _ = self.init_failure("no_such_package.handlers")
        self.assertEqual(error["type"], "ModuleNotFoundError")
        self.assertIn("no_such_package.handlers", error["message"])

    def test_one_bad_module_among_good_ones_fails_init(self):
        error, _ = self.init_failure([HANDLERS, os.path.join(DATA, "import_error.py")])
        self.assertEqual(error["type"], "ImportError")

    def test_usage_error_exits_2_with_an_init_failed_frame(self):
        worker = self.start(HANDLERS, command=[sys.executable, "-m", "bridgepool_worker",
                                               "--handlers", HANDLERS])  # no --worker-id
        message = worker.recv()
        self.assertEqual(worker.wait(5), 2)
        self.assertEqual(message["event"], "init_failed")
        self.assertEqual(message["error"]["type"], "UsageError")
        self.assertIn("--worker-id", message["error"]["message"])


class HandlerLoadingTest(WorkerTestCase):
    def test_dotted_module_name(self):
        worker = self.start("healthy_toggle", env={"PYTHONPATH": os.pathsep.join([PACKAGE_PARENT,
                                                                                   DATA])})
        self.assertIn("echo", [c["name"] for c in worker.handshake()["commands"]])

    def test_file_can_import_its_siblings(self):
        directory = tempfile.mkdtemp(prefix="bridgepool-test-")
        self.addCleanup(shutil.rmtree, directory, True)
        with open(os.path.join(directory, "helper_lib.py"), "w") as f:
            f.write("GREETING = 'hello from a sibling'\n")
        with open(os.path.join(directory, "main_handlers.py"), "w") as f:
            f.write(textwrap.dedent("""
                import helper_lib
                from bridgepool_worker import command

                @command("greet", idempotent=True)
                def greet(args, ctx):
                    return helper_lib.GREETING
            """))
        worker = self.ready(os.path.join(directory, "main_handlers.py"))
        self.assertEqual(worker.result("greet"), "hello from a sibling")


class SameHandlersFileTwiceTest(WorkerTestCase):
    """One file named twice, in any spelling, is loaded once; two files still conflict."""

    def tmpdir(self) -> str:
        directory = tempfile.mkdtemp(prefix="bridgepool-test-")
        self.addCleanup(shutil.rmtree, directory, True)
        return directory

    def assertLoadsOnce(self, handlers, env=None, version="examples-1"):
        worker = self.start(handlers, env=env)
        hello = worker.handshake()
        names = [c["name"] for c in hello["commands"]]
        self.assertEqual(len(names), len(set(names)), names)
        self.assertEqual(hello["handlers_version"], version)  # not "examples-1+examples-1"
        self.assertEqual(worker.result("echo", {"x": 1}), {"x": 1})
        return names

    def test_the_same_path_twice(self):
        names = self.assertLoadsOnce([HANDLERS, HANDLERS])
        self.assertIn("create_program", names)

    def test_relative_and_absolute_paths(self):
        dotted = os.path.join(os.path.dirname(HANDLERS), ".", "handlers.py")
        self.assertLoadsOnce([os.path.relpath(HANDLERS), HANDLERS, dotted])

    def test_a_symlink_and_a_hard_link(self):
        directory = self.tmpdir()
        symlink = os.path.join(directory, "linked_handlers.py")
        os.symlink(os.path.abspath(HANDLERS), symlink)
        self.assertLoadsOnce([HANDLERS, symlink])
        self.assertLoadsOnce([symlink, HANDLERS])
        copy = os.path.join(directory, "toggle_copy.py")
        try:
            os.link(TOGGLE, copy)
        except OSError as exc:  # another file system: nothing to test here
            self.skipTest(f"cannot hard-link: {exc}")
        self.assertLoadsOnce([TOGGLE, copy], version=None)

    def test_a_dotted_module_and_its_path_in_either_order(self):
        env = {"PYTHONPATH": os.pathsep.join([PACKAGE_PARENT, DATA])}
        self.assertLoadsOnce(["healthy_toggle", TOGGLE], env=env, version=None)
        self.assertLoadsOnce([TOGGLE, "healthy_toggle"], env=env, version=None)
        self.assertLoadsOnce(["healthy_toggle", "healthy_toggle"], env=env, version=None)

    def test_a_file_a_sibling_already_imported(self):
        directory = self.tmpdir()
        with open(os.path.join(directory, "base_handlers.py"), "w") as f:
            f.write(textwrap.dedent("""
                from bridgepool_worker import command

                @command("echo", idempotent=True)
                def echo(args, ctx):
                    return args
            """))
        with open(os.path.join(directory, "more_handlers.py"), "w") as f:
            f.write(textwrap.dedent("""
                import base_handlers
                from bridgepool_worker import command

                @command("twice")
                def twice(args, ctx):
                    return base_handlers.echo(args, ctx)
            """))
        base, more = (os.path.join(directory, f"{n}_handlers.py") for n in ("base", "more"))
        for order in ([more, base], [base, more]):
            with self.subTest(order=[os.path.basename(p) for p in order]):
                names = self.assertLoadsOnce(order, version=None)
                self.assertIn("twice", names)

    def test_two_different_files_with_the_same_command_still_fail(self):
        directory = self.tmpdir()
        copy = os.path.join(directory, "handlers_copy.py")
        shutil.copyfile(HANDLERS, copy)  # same text, another file
        worker = self.start([HANDLERS, copy])
        message = worker.recv()
        self.assertEqual(worker.wait(5), 3)
        self.assertEqual((message["event"], message["error"]["type"]),
                         ("init_failed", "RegistrationError"))
        self.assertIn("registered twice", message["error"]["message"])


class ParentDeathTest(WorkerTestCase):
    # The middle process starts a worker whose request pipe (fd 3) is the read end of a pipe
    # the *test* holds open: when the middle dies the worker sees no EOF, so only the kernel's
    # parent-death signal can end it.
    MIDDLE = textwrap.dedent("""
        import fcntl, os, subprocess, sys
        handlers, request_read = sys.argv[1], int(sys.argv[2])
        high = lambda fd: fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        request_read = high(request_read)
        response_read, response_write = (high(fd) for fd in os.pipe())
        def onto_3_and_4():
            os.dup2(request_read, 3)
            os.dup2(response_write, 4)
        env = dict(os.environ, BRIDGEPOOL_PARENT_PID=str(os.getpid()))
        worker = subprocess.Popen(
            [sys.executable, "-m", "bridgepool_worker", "--handlers", handlers,
             "--worker-id", "w-orphan"],
            env=env, stdin=subprocess.DEVNULL, pass_fds=(3, 4), preexec_fn=onto_3_and_4)
        os.read(response_read, 65536)  # the handshake: prctl has run by now
        print(worker.pid, flush=True)
        worker.wait()
    """)

    def test_worker_dies_within_a_second_of_its_parent_being_killed(self):
        request_read, request_write = os.pipe()
        self.addCleanup(os.close, request_write)  # held open for the whole test: no EOF
        env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT)
        env.pop("BRIDGEPOOL_PARENT_PID", None)
        middle = subprocess.Popen([sys.executable, "-c", self.MIDDLE, HANDLERS, str(request_read)],
                                  env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                  pass_fds=(request_read,))
        os.close(request_read)
        self.addCleanup(middle.wait, 10)
        self.addCleanup(middle.kill)
        self.addCleanup(middle.stdout.close)
        ready, _, _ = select.select([middle.stdout], [], [], 10)
        self.assertTrue(ready, "middle process did not report its worker in 10 s")
        worker_pid = int(middle.stdout.readline())
        self.addCleanup(lambda: process_gone(worker_pid) or os.kill(worker_pid, signal.SIGKILL))
        self.assertFalse(process_gone(worker_pid))

        middle.kill()
        middle.wait(5)
        self.assertTrue(wait_until(lambda: process_gone(worker_pid), timeout=1.0),
                        f"worker {worker_pid} survived its parent by more than 1 s")

    def test_worker_exits_at_once_if_its_expected_parent_is_already_gone(self):
        not_our_parent = os.getppid()  # the test runner's parent, certainly not the worker's
        worker = self.start(HANDLERS, extra_args=["--parent-pid", str(not_our_parent)])
        self.assertTrue(worker.at_eof(5))  # no handshake: it never started serving
        self.assertEqual(worker.wait(5), 0)
        self.assertIn("is gone", worker.stderr_text())

    def test_parent_pid_from_the_environment(self):
        worker = self.start(HANDLERS, env={"BRIDGEPOOL_PARENT_PID": "1"})
        self.assertTrue(worker.at_eof(5))
        self.assertEqual(worker.wait(5), 0)


class SignalTest(WorkerTestCase):
    handlers = HANDLERS

    def test_sigint_is_ignored(self):
        worker = self.ready()
        os.kill(worker.pid, signal.SIGINT)
        time.sleep(0.05)  # give a (wrongly) default SIGINT a chance to land
        self.assertEqual(worker.result("ping"), "pong")

    def test_sigterm_keeps_its_default_action(self):
        worker = self.ready()
        os.kill(worker.pid, signal.SIGTERM)
        self.assertEqual(worker.wait(5), -signal.SIGTERM)


class OutputCaptureTest(WorkerTestCase):
    handlers = [HANDLERS, EDGE]

    def test_stdout_and_stderr_spam_never_touch_the_protocol(self):
        worker = self.ready()
        lines, width = 3000, 100  # ~300 KiB per stream: far past one pipe buffer
        self.assertEqual(worker.result("spam", {"lines": lines, "width": width}, timeout=20),
                         {"printed": lines})
        self.assertEqual(worker.result("ping"), "pong")
        out = worker.stdout_text().splitlines()
        err = worker.stderr_text().splitlines()
        self.assertEqual(len(out), lines)
        self.assertEqual(len(err), lines)
        self.assertEqual(out[0], "stdout 0 ".ljust(width, "x"))
        self.assertEqual(err[-1], f"stderr {lines - 1} ".ljust(width, "y"))
        self.assertTrue(all(len(line) == width for line in out))

    def test_print_without_flush_reaches_stdout_before_the_reply(self):
        worker = self.ready()
        worker.result("print_line", {"text": "line-buffered please"})
        self.assertEqual(worker.stdout_text(), "line-buffered please\n")

    def test_protocol_fds_are_not_inherited_by_subprocesses(self):
        worker = self.ready()
        self.assertEqual(worker.result("protocol_fds"),
                         {"request_inheritable": False, "response_inheritable": False})


class HealthHookTest(WorkerTestCase):
    def test_health_flips_with_the_marker_file(self):
        directory = tempfile.mkdtemp(prefix="bridgepool-test-")
        self.addCleanup(shutil.rmtree, directory, True)
        marker = os.path.join(directory, "unhealthy")
        worker = self.ready(TOGGLE, env={"BRIDGEPOOL_TEST_UNHEALTHY_FILE": marker})
        self.assertEqual(worker.result("health_check")["status"], "healthy")
        open(marker, "w").close()
        health = worker.result("health_check")
        self.assertEqual(health["status"], "unhealthy")
        self.assertEqual(len(health["detail"]), 1)
        self.assertIn("unhealthy marker file exists", health["detail"][0])
        self.assertIn("marker_file_absent", health["detail"][0])
        os.remove(marker)
        health = worker.result("health_check")
        self.assertEqual((health["status"], health["detail"]), ("healthy", []))

    def test_raising_and_false_hooks_are_reported_one_line_each(self):
        directory = tempfile.mkdtemp(prefix="bridgepool-test-")
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "hooks.py")
        with open(path, "w") as f:
            f.write(textwrap.dedent("""
                from bridgepool_worker import health_check

                @health_check
                def database():
                    raise ConnectionError("db down")

                @health_check
                def disk():
                    return False

                @health_check
                def cache():
                    return (True, "warm")
            """))
        worker = self.ready(path)
        health = worker.result("health_check")
        self.assertEqual(health["status"], "unhealthy")
        self.assertEqual(health["detail"], ["hooks.database raised ConnectionError: db down",
                                            "hooks.disk returned false"])


if __name__ == "__main__":
    unittest.main()
