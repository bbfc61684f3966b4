"""In-process unit tests for the worker runtime's pure parts: the registry, health-check
evaluation, framing helpers, Context, argument parsing and version reporting. No processes."""

import json
import os
import threading
import unittest
from unittest import mock

from bridgepool_worker import Context, RegistrationError
from bridgepool_worker.builtin_commands import rss_mb, run_health_checks
from bridgepool_worker.protocol import HEADER, encode_frame, read_exact, write_all
from bridgepool_worker.registry import BUILTIN_COMMANDS, Registry
from bridgepool_worker.runtime import (
    MAX_UNHEALTHY_CHARS,
    UsageError,
    _exit_code_of,
    _leading_id,
    _unhealthy_reason_of,
    _unparsable_reason,
    clean_reason,
    handlers_version_of,
    parse_args,
)


def handler(args, ctx):
    return args


class RegistryTest(unittest.TestCase):
    def test_decorator_forms(self):
        registry = Registry()

        @registry.command("named", idempotent=True)
        def first(args, ctx):
            return 1

        @registry.command()
        def second(args, ctx):
            return 2

        @registry.command
        def third(args, ctx):
            return 3

        self.assertEqual(sorted(registry.commands), ["named", "second", "third"])
        self.assertIs(registry.commands["named"].func, first)
        self.assertIs(registry.commands["named"].idempotent, True)
        self.assertIs(registry.commands["third"].idempotent, False)
        self.assertEqual(first(None, None), 1)  # the decorator returns the function itself

    def test_duplicate_names_both_registrations(self):
        registry = Registry()
        registry.add_command("x", handler)

        def other(args, ctx):
            return None

        with self.assertRaises(RegistrationError) as caught:
            registry.add_command("x", other)
        self.assertIn("'x' registered twice", str(caught.exception))
        self.assertIn("handler", str(caught.exception))
        self.assertIn("other", str(caught.exception))

    def test_builtin_names_are_reserved(self):
        registry = Registry()
        for name in BUILTIN_COMMANDS:
            with self.subTest(name=name), self.assertRaises(RegistrationError):
                registry.add_command(name, handler)

    def test_invalid_registrations(self):
        registry = Registry()
        for name, func, idempotent in (("", handler, False), (5, handler, False),
                                       ("x", "not callable", False), ("x", handler, 1)):
            with self.subTest(name=name, func=func, idempotent=idempotent):
                with self.assertRaises(RegistrationError):
                    registry.add_command(name, func, idempotent)
        self.assertEqual(registry.commands, {})

    def test_builtin_idempotency(self):
        self.assertEqual({n for n, i in BUILTIN_COMMANDS.items() if i},
                         {"ping", "health_check", "get_stats", "list_commands", "close_session"})


class HealthCheckEvaluationTest(unittest.TestCase):
    def test_outcomes(self):
        def ok():
            return True

        def ok_with_detail():
            return True, "fine"

        def bad():
            return False

        def bad_with_detail():
            return False, "queue full"

        def broken():
            raise OSError("no disk")

        self.assertEqual(run_health_checks([ok, ok_with_detail]), [])
        prefix = f"{__name__}.HealthCheckEvaluationTest.test_outcomes.<locals>."
        self.assertEqual(run_health_checks([ok, bad, bad_with_detail, broken]), [
            prefix + "bad returned false",
            prefix + "bad_with_detail: queue full",
            prefix + "broken raised OSError: no disk",
        ])

    def test_rss_is_plausible(self):
        self.assertGreater(rss_mb(), 1.0)
        self.assertLess(rss_mb(), 10_000.0)


class FramingTest(unittest.TestCase):
    def pipe(self):
        read_fd, write_fd = os.pipe()
        self.addCleanup(os.close, read_fd)
        self.addCleanup(lambda: _close_quietly(write_fd))
        return read_fd, write_fd

    def test_encode_frame_is_compact_utf8_with_a_big_endian_length(self):
        data = encode_frame({"id": 1, "s": "é"})
        self.assertEqual(data[4:], '{"id":1,"s":"é"}'.encode())
        self.assertEqual(HEADER.unpack(data[:4])[0], len(data) - 4)

    def test_encode_frame_rejects_nan(self):
        with self.assertRaises(ValueError):
            encode_frame({"x": float("nan")})

    def test_read_exact_assembles_and_reports_eof(self):
        read_fd, write_fd = self.pipe()
        write_all(write_fd, b"cdef")
        self.assertEqual(bytes(read_exact(read_fd, 6, b"ab")), b"abcdef")
        write_all(write_fd, b"xyz")
        os.close(write_fd)
        self.assertIsNone(read_exact(read_fd, 5))

    def test_write_all_survives_short_writes(self):
        read_fd, write_fd = self.pipe()
        payload = os.urandom(200_000)  # more than a pipe buffer: several partial writes
        received = bytearray()
        reader = threading.Thread(target=lambda: received.extend(read_exact(read_fd,
                                                                            len(payload))))
        reader.start()
        write_all(write_fd, payload)
        reader.join(10)
        self.assertEqual(bytes(received), payload)


def _close_quietly(fd):
    try:
        os.close(fd)
    except OSError:
        pass


class ContextTest(unittest.TestCase):
    def test_fields_and_defaults_outside_a_runtime(self):
        ctx = Context("s", {"k": 1}, "w-1", 9, 250)
        self.assertEqual((ctx.session_id, ctx.session, ctx.worker_id, ctx.request_id,
                          ctx.deadline_ms), ("s", {"k": 1}, "w-1", 9, 250))
        self.assertEqual(ctx.requests_served, 0)
        self.assertIsNone(ctx.handlers_version)
        with self.assertRaises(AttributeError):
            ctx.typo = 1  # __slots__: a misspelt attribute fails loudly
        self.assertIsNone(ctx.mark_unhealthy("nothing to report to"))

    def test_mark_unhealthy_reaches_the_runtime(self):
        marks = []

        class Runtime:
            def mark_unhealthy(self, reason):
                marks.append(reason)

        Context(None, {}, "w", 1, None, Runtime()).mark_unhealthy("CUDA out of memory")
        self.assertEqual(marks, ["CUDA out of memory"])


class UnparsableRequestTest(unittest.TestCase):
    def test_leading_id(self):
        cases = {
            b'{"id":5,"command":"x"': 5,
            b'{"id":0}': 0,
            b' \r\n\t{\n "id"\t:\r 77 \n, ': 77,
            b'{"id":18446744073709551615,': (1 << 64) - 1,
            b'{"id":18446744073709551616,': None,  # above u64
            b'{"id":999999999999999999999,': None,  # 21 digits
            b'{"id":05,': None,
            b'{"id":-5,': None,
            b'{"id":5.0,': None,
            b'{"id":5e3,': None,
            b'{"id":"5",': None,
            b'{"id":5': None,  # cut off before the separator
            b'{"command":"x","id":5,': None,  # the id must come first
            b'{"ID":5,': None,
            b'[{"id":5,': None,
            b'': None,
            b" " * 250 + b'{"id":5,': None,  # outside the 256-byte window
            b" " * 240 + b'{"id":5,': 5,
        }
        for body, expected in cases.items():
            with self.subTest(body=body[:30]):
                self.assertEqual(_leading_id(body), expected)
                self.assertEqual(_leading_id(bytearray(body)), expected)
        self.assertIsNone(_leading_id(None))  # never raises

    def test_leading_id_is_bounded(self):
        body = b" " * (32 * 1024 * 1024)  # 32 MiB of whitespace: only the window is read
        self.assertIsNone(_leading_id(body))

    def test_reasons(self):
        self.assertEqual(_unparsable_reason(RecursionError("maximum recursion depth")),
                         "nested too deeply")
        try:
            b'{"a":"\xc3\xa9\xfe"}'.decode()
        except UnicodeDecodeError as exc:
            self.assertEqual(_unparsable_reason(exc),
                             "not valid UTF-8 (byte 0xfe at offset 8: invalid start byte)")
        try:
            json.loads("{,}")
        except ValueError as exc:
            self.assertEqual(_unparsable_reason(exc), "not valid JSON (Expecting property name "
                                                      "enclosed in double quotes: line 1 column "
                                                      "2 (char 1))")


class UnhealthyReasonTest(unittest.TestCase):
    def test_clean_reason(self):
        self.assertEqual(MAX_UNHEALTHY_CHARS, 1024)
        self.assertEqual(clean_reason("CUDA out of memory"), "CUDA out of memory")
        self.assertEqual(clean_reason("a" * 1025), "a" * 1021 + "...")
        self.assertEqual(clean_reason("a" * 1024), "a" * 1024)
        self.assertEqual(clean_reason(""), "marked unhealthy (no reason given)")
        self.assertEqual(clean_reason(ValueError("bad")), "bad")
        self.assertEqual(clean_reason("bad \ud800 text"), "bad ? text")

        class Unprintable:
            def __str__(self):
                raise RuntimeError("no")

        self.assertEqual(clean_reason(Unprintable()), "<unprintable Unprintable object>")

    def test_flagged_exceptions(self):
        class Flagged(RuntimeError):
            worker_unhealthy = True

        class Broken(RuntimeError):
            @property
            def worker_unhealthy(self):
                raise RuntimeError("property fails")

        plain = ValueError("x")
        self.assertIsNone(_unhealthy_reason_of(plain))
        plain.worker_unhealthy = "lost device"
        self.assertEqual(_unhealthy_reason_of(plain), "lost device")
        self.assertEqual(_unhealthy_reason_of(Flagged("oom")), "Flagged: oom")
        flagged_key_error = type("LostKey", (KeyError,), {"worker_unhealthy": 1})("k-1")
        self.assertEqual(_unhealthy_reason_of(flagged_key_error), "LostKey: k-1")  # no quotes
        self.assertIsNone(_unhealthy_reason_of(Broken("x")))
        falsy = ValueError("x")
        falsy.worker_unhealthy = ""
        self.assertIsNone(_unhealthy_reason_of(falsy))

    def test_exit_codes_follow_the_interpreter(self):
        with mock.patch("sys.stderr"):
            for code, expected in ((None, 0), (0, 0), (7, 7), (True, 1), (256, 0), (-1, 255),
                                   (1 << 70, 0), ("message", 1), ([1], 1)):
                with self.subTest(code=code):
                    self.assertEqual(_exit_code_of(SystemExit(code)), expected)


class CommandLineTest(unittest.TestCase):
    def test_defaults(self):
        with mock.patch.dict(os.environ):
            os.environ.pop("BRIDGEPOOL_PARENT_PID", None)
            options = parse_args(["--handlers", "h.py", "--worker-id", "w"])
        self.assertEqual((options.handlers, options.worker_id, options.request_fd,
                          options.response_fd, options.max_frame_bytes, options.parent_pid,
                          options.version_tag), (["h.py"], "w", 3, 4, 67108864, None, None))

    def test_parent_pid_from_the_environment(self):
        with mock.patch.dict(os.environ, {"BRIDGEPOOL_PARENT_PID": "321"}):
            self.assertEqual(parse_args(["--handlers", "h", "--worker-id", "w"]).parent_pid, 321)

    def test_repeated_handlers_and_options(self):
        options = parse_args(["--handlers", "a.py", "--handlers", "pkg.b", "--worker-id", "w",
                              "--parent-pid", "12", "--max-frame-bytes", "100",
                              "--version-tag", "v1", "--request-fd", "7", "--response-fd", "8"])
        self.assertEqual((options.handlers, options.parent_pid, options.max_frame_bytes,
                          options.version_tag, options.request_fd, options.response_fd),
                         (["a.py", "pkg.b"], 12, 100, "v1", 7, 8))

    def test_usage_errors(self):
        for argv in (["--worker-id", "w"], ["--handlers", "h.py"],
                     ["--handlers", "h.py", "--worker-id", "w", "--max-frame-bytes", "0"],
                     ["--handlers", "h.py", "--worker-id", "w", "--parent-pid", "x"],
                     ["--handlers", "h.py", "--worker-id", "w", "--request-fd", "4"]):
            with self.subTest(argv=argv), self.assertRaises(UsageError):
                parse_args(argv)

    def test_handlers_version(self):
        class Module:
            pass

        with_version, without = Module(), Module()
        with_version.__version__ = "2.0"
        self.assertEqual(handlers_version_of([without, with_version], "tag"), "2.0")
        self.assertEqual(handlers_version_of([with_version, with_version], None), "2.0+2.0")
        self.assertEqual(handlers_version_of([without], "tag"), "tag")
        self.assertIsNone(handlers_version_of([without], None))


if __name__ == "__main__":
    unittest.main()
