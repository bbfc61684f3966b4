"""Wire-protocol tests for the worker runtime: handshake, framing, malformed input, limits, EOF.

Every test starts a real worker process (bridgepool_worker.testing.WorkerProcess) and speaks
the protocol over real pipes on fds 3/4; every read has a deadline.
"""

import json
import os
import struct
import sys
import time
import unittest

from bridgepool_worker.protocol import U64_MAX
from bridgepool_worker.testing import WorkerTestCase, frame

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXAMPLES = os.environ.get("BRIDGEPOOL_EXAMPLES_DIR") or os.path.join(REPO, "examples")
HANDLERS = os.path.join(EXAMPLES, "handlers.py")
DATA = os.path.join(REPO, "tests", "data")
EDGE = os.path.join(DATA, "edge_cases.py")
FLOOR = os.path.join(REPO, "bench", "floor_echo.py")

EXAMPLE_COMMANDS = [
    ("close_session", True), ("compute", True), ("configure", False), ("crash", False),
    ("create_program", False), ("delete_program", False), ("echo", True), ("echo_batch", True),
    ("execute_program", False), ("fail", False), ("flaky", True), ("get_config", True),
    ("get_stats", True), ("health_check", True), ("list_commands", True), ("list_programs", True),
    ("ping", True), ("shutdown", False), ("sleep", True), ("spam", False), ("stream", False),
    ("submit", False), ("whoami", True),
]


class ExamplesTestCase(WorkerTestCase):
    handlers = HANDLERS


class HandshakeTest(ExamplesTestCase):
    def test_handshake_has_every_field_and_the_full_command_list(self):
        worker = self.start(worker_id="w-7")
        hello = worker.handshake()
        self.assertEqual(hello["id"], 0)
        self.assertEqual(hello["event"], "ready")
        self.assertEqual(hello["protocol"], 2)
        self.assertEqual(hello["pid"], worker.pid)
        self.assertEqual(hello["worker_id"], "w-7")
        self.assertEqual(hello["handlers_version"], "examples-1")
        self.assertEqual([(c["name"], c["idempotent"]) for c in hello["commands"]],
                         EXAMPLE_COMMANDS)
        self.assertEqual(set(hello), {"id", "event", "protocol", "pid", "worker_id", "commands",
                                      "handlers_version"})

    def test_version_tag_is_used_only_when_the_module_has_no_version(self):
        tagged = self.ready(os.path.join(DATA, "healthy_toggle.py"),
                            extra_args=["--version-tag", "v9"])
        self.assertEqual(tagged.result("get_stats")["handlers_version"], "v9")
        untagged = self.start(os.path.join(DATA, "healthy_toggle.py"))
        self.assertIsNone(untagged.handshake()["handlers_version"])
        module_wins = self.start(HANDLERS, extra_args=["--version-tag", "v9"])
        self.assertEqual(module_wins.handshake()["handlers_version"], "examples-1")

    def test_explicit_request_and_response_fds(self):
        worker = self.ready(default_fds=False)
        self.assertEqual(worker.result("ping"), "pong")


class FramingTest(ExamplesTestCase):
    def test_requests_written_back_to_back_are_answered_in_order(self):
        worker = self.ready()
        batch = b"".join(
            frame(json.dumps({"id": i, "command": "echo", "args": {"n": i}}).encode())
            for i in (11, 12, 13))
        worker.send_raw(batch)
        for i in (11, 12, 13):
            self.assertEqual(worker.recv(), {"id": i, "ok": True, "result": {"n": i}})

    def test_a_frame_trickling_in_byte_by_byte_is_reassembled(self):
        worker = self.ready()
        data = frame(b'{"id":5,"command":"echo","args":{"a":"b"}}')
        for i in range(0, len(data), 7):
            worker.send_raw(data[i:i + 7])
            time.sleep(0.002)
        self.assertEqual(worker.recv(), {"id": 5, "ok": True, "result": {"a": "b"}})

    def test_multi_megabyte_request_and_reply(self):
        worker = self.ready()
        text = "abcdefgh" * (3 * 1024 * 1024 // 8)
        reply = worker.call("echo", {"text": text}, timeout=20)
        self.assertEqual(reply["result"]["text"], text)

    def test_non_ascii_text_travels_as_utf8(self):
        worker = self.ready()
        worker.request("echo", {"s": "héllo ✓ 😀"}, request_id=3)
        payload = worker.recv_bytes()
        self.assertIn("héllo ✓ 😀".encode(), payload)  # not \u escapes
        self.assertEqual(json.loads(payload),
                         {"id": 3, "ok": True, "result": {"s": "héllo ✓ 😀"}})

    def test_replies_are_compact_json(self):
        worker = self.ready()
        worker.request("echo", {"a": [1, 2]}, request_id=9)
        self.assertEqual(worker.recv_bytes(), b'{"id":9,"ok":true,"result":{"a":[1,2]}}')

    def test_frame_of_exactly_the_maximum_size_is_accepted(self):
        worker = self.ready(extra_args=["--max-frame-bytes", "1024"])
        prefix = b'{"id":1,"command":"echo","args":{"pad":"'
        suffix = b'"}}'
        body = prefix + b"p" * (1024 - len(prefix) - len(suffix)) + suffix
        self.assertEqual(len(body), 1024)
        worker.send_raw(frame(body))
        self.assertIs(worker.recv()["ok"], True)

    def test_declared_frame_over_the_limit_exits_4_with_a_stderr_line(self):
        worker = self.ready(extra_args=["--max-frame-bytes", "1024"])
        worker.send_raw(struct.pack(">I", 1025))
        self.assertEqual(worker.wait(5), 4)
        self.assertTrue(worker.at_eof(5))
        self.assertIn("1025", worker.stderr_text())

    def test_huge_declared_frame_with_default_limit_exits_4_without_allocating(self):
        worker = self.ready()
        worker.send_raw(struct.pack(">I", 0x7FFFFFFF) + b"{")
        self.assertEqual(worker.wait(5), 4)

    def test_reply_over_the_limit_becomes_a_serialization_error(self):
        worker = self.ready(EDGE, extra_args=["--max-frame-bytes", "4096"])
        reply = worker.call("big", {"bytes": 10000})
        self.assertError(reply, "SerializationError")
        self.assertIn("4096", reply["error"]["message"])
        self.assertEqual(worker.result("ping"), "pong")


class MalformedRequestTest(ExamplesTestCase):
    def reply_to_raw(self, payload: bytes):
        worker = self.ready()
        worker.send_raw(frame(payload))
        reply = worker.recv()
        self.assertEqual(worker.result("ping"), "pong")  # the worker keeps serving
        return reply

    def test_invalid_json(self):
        reply = self.reply_to_raw(b"this is not json{{")
        self.assertError(reply, "ProtocolError", request_id=0)
        self.assertIn("not valid JSON", reply["error"]["message"])

    def test_empty_frame(self):
        self.assertError(self.reply_to_raw(b""), "ProtocolError", request_id=0)

    def test_invalid_utf8_outside_any_readable_id_is_a_protocol_error(self):
        reply = self.reply_to_raw(b'{"command":"\xff","id":1}')
        self.assertError(reply, "ProtocolError", request_id=0)

    def test_json_that_is_not_an_object(self):
        reply = self.reply_to_raw(b"[1,2,3]")
        self.assertError(reply, "ProtocolError", request_id=0)
        self.assertIn("list", reply["error"]["message"])

    def test_missing_command_keeps_the_recoverable_id(self):
        reply = self.reply_to_raw(b'{"id":42}')
        self.assertError(reply, "ProtocolError", request_id=42)
        self.assertIn("'command'", reply["error"]["message"])

    def test_command_that_is_not_a_string(self):
        self.assertError(self.reply_to_raw(b'{"id":43,"command":7}'), "ProtocolError",
                         request_id=43)

    def test_ids_that_are_not_u64_are_answered_with_id_0(self):
        for bad in (b'"7"', b"-1", b"true", b"1.5", b"18446744073709551616", b"null"):
            with self.subTest(id=bad):
                reply = self.reply_to_raw(b'{"id":' + bad + b',"command":"ping"}')
                self.assertError(reply, "ProtocolError", request_id=0)

    def test_largest_u64_id_is_echoed(self):
        worker = self.ready()
        worker.send_raw(frame(b'{"id":18446744073709551615,"command":"ping"}'))
        self.assertEqual(worker.recv(), {"id": 18446744073709551615, "ok": True,
                                         "result": "pong"})

    def test_session_id_of_the_wrong_type(self):
        self.assertError(self.reply_to_raw(b'{"id":44,"command":"echo","session_id":5}'),
                         "ProtocolError", request_id=44)

    def test_missing_or_null_args_become_an_empty_object(self):
        worker = self.ready()
        worker.send_raw(frame(b'{"id":1,"command":"echo"}'))
        self.assertEqual(worker.recv(), {"id": 1, "ok": True, "result": {}})
        worker.send_raw(frame(b'{"id":2,"command":"echo","args":null}'))
        self.assertEqual(worker.recv(), {"id": 2, "ok": True, "result": {}})

    def test_args_that_are_not_an_object(self):
        reply = self.reply_to_raw(b'{"id":45,"command":"echo","args":[1]}')
        self.assertError(reply, "InvalidArguments", request_id=45)
        self.assertIs(reply["error"]["retryable"], False)


class UnparsableRequestTest(ExamplesTestCase):
    """A body json cannot parse is answered for its own id when the id comes first (as the
    pool writes it): InvalidArguments, not retryable, and the worker goes on serving."""

    def unparsable(self, rid: int, reason: str) -> dict:
        return {"id": rid, "ok": False,
                "error": {"type": "InvalidArguments",
                          "message": f"request could not be parsed: {reason}",
                          "traceback": None, "retryable": False}}

    @staticmethod
    def nested(rid: int, depth: int) -> bytes:
        return (b'{"id":%d,"command":"echo","args":{"deep":' % rid + b"[" * depth
                + b"]" * depth + b'},"session_id":null,"deadline_ms":null}')

    def test_args_nested_2000_and_100000_deep_then_a_normal_request(self):
        worker = self.ready()
        for rid, depth in ((21, 2000), (22, 100_000)):
            with self.subTest(depth=depth):
                worker.send_raw(frame(self.nested(rid, depth)))
                self.assertEqual(worker.recv(), self.unparsable(rid, "nested too deeply"))
        worker.send_raw(frame(b'{"id":23,"command":"echo","args":{"s":"ok \xc3\xa9\xff"}}'))
        offset = len(b'{"id":23,"command":"echo","args":{"s":"ok \xc3\xa9')
        self.assertEqual(worker.recv(), self.unparsable(
            23, f"not valid UTF-8 (byte 0xff at offset {offset}: invalid start byte)"))
        self.assertEqual(worker.call("echo", {"after": [1, 2]}, request_id=24),
                         {"id": 24, "ok": True, "result": {"after": [1, 2]}})
        stats = worker.result("get_stats")
        self.assertEqual((stats["errors"], stats["commands"]["echo"]), (3, 1))

    def test_whitespace_around_the_id_and_the_largest_id(self):
        worker = self.ready()
        for rid, head in ((31, b' \n\t{ "id" :\r\n31 ,'), (U64_MAX, b'{"id":%d,' % U64_MAX),
                          (0, b'{"id":0,')):
            with self.subTest(head=head):
                worker.send_raw(frame(head + b'"command":"echo","args":' + b"[" * 5000))
                self.assertEqual(worker.recv(), self.unparsable(rid, "nested too deeply"))
        self.assertEqual(worker.result("ping"), "pong")

    def test_plain_json_syntax_error_after_a_readable_id(self):
        worker = self.ready()
        worker.send_raw(frame(b'{"id":41,"command":"echo","args":{bad}}'))
        self.assertEqual(worker.recv(), self.unparsable(
            41, "not valid JSON (Expecting property name enclosed in double quotes: "
                "line 1 column 35 (char 34))"))
        self.assertEqual(worker.result("ping"), "pong")

    def test_no_readable_id_keeps_the_id_0_protocol_error(self):
        worker = self.ready()
        for body in (b"[" * 3000,  # not an object
                     b'{"command":"echo","id":51,"args":' + b"[" * 3000,  # id not first
                     b'{"id":18446744073709551616,"args":' + b"[" * 3000,  # not a u64
                     b'{"id":051,"args":' + b"[" * 3000,  # not a JSON number
                     b'{"id":5.1,"args":' + b"[" * 3000,
                     b'{"id":-5,"args":' + b"[" * 3000,
                     b'{"id":"5","args":' + b"[" * 3000,
                     b" " * 300 + b'{"id":5,"args":' + b"[" * 3000):  # beyond the window
            with self.subTest(body=body[:40]):
                worker.send_raw(frame(body))
                reply = worker.recv()
                self.assertError(reply, "ProtocolError", request_id=0)
                self.assertTrue(reply["error"]["message"].startswith(
                    "request frame is not valid JSON: "), reply)
        self.assertEqual(worker.result("ping"), "pong")


class EndOfInputTest(ExamplesTestCase):
    def test_eof_makes_the_worker_exit_0(self):
        worker = self.ready()
        worker.close_requests()
        self.assertEqual(worker.wait(5), 0)
        self.assertTrue(worker.at_eof(5))
        self.assertEqual(worker.stderr_text(), "")

    def test_eof_inside_a_frame_makes_the_worker_exit_0(self):
        worker = self.ready()
        worker.send_raw(struct.pack(">I", 100) + b"0123456789")
        worker.close_requests()
        self.assertEqual(worker.wait(5), 0)

    def test_eof_inside_a_header_makes_the_worker_exit_0(self):
        worker = self.ready()
        worker.send_raw(b"\x00\x00")
        worker.close_requests()
        self.assertEqual(worker.wait(5), 0)


class FloorEchoTest(ExamplesTestCase):
    def test_floor_echo_answers_like_the_worker_and_exits_on_eof(self):
        floor = self.start(command=[sys.executable, FLOOR])
        floor.send_raw(frame(b'{"id":3,"command":"ping","args":{"x":[1]}}'))
        self.assertEqual(floor.recv(), {"id": 3, "ok": True, "result": {"x": [1]}})
        floor.close_requests()
        self.assertEqual(floor.wait(5), 0)


if __name__ == "__main__":
    unittest.main()
