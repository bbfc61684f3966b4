"""Binary attachments (protocol 2, bridgepool_worker/attachments.py): bytes, memoryviews and numpy
arrays next to the JSON, in requests, replies and stream chunks; malformed frames and limits.

Real worker processes over real pipes, like test_protocol.py.
"""

import os
import struct
import unittest

from bridgepool_worker.attachments import ALIGNMENT, MAX_ATTACHMENTS, frame_pieces, split_frame
from bridgepool_worker.protocol import ATTACHMENTS_FLAG
from bridgepool_worker.testing import WorkerTestCase

try:
    import numpy
except ImportError:  # the array tests need Debian's python3-numpy (scripts/setup installs it)
    numpy = None

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EDGE = os.path.join(REPO, "tests", "data", "edge_cases.py")


def attachment_frame(text: bytes, buffers, *, count=None, sizes=None, trailing=b"") -> bytes:
    """An attachment frame as the pool writes it, optionally with a lying table."""
    _, pieces = frame_pieces(text, buffers)
    payload = b"".join(bytes(p) for p in pieces[1:]) + trailing
    if count is not None or sizes is not None:
        sizes = sizes if sizes is not None else [len(b) for b in buffers]
        count = count if count is not None else len(sizes)
        table = struct.pack(">II", len(text), count) + b"".join(struct.pack(">Q", s)
                                                                for s in sizes)
        payload = table + payload[8 + 8 * len(buffers):]
    return struct.pack(">I", ATTACHMENTS_FLAG | len(payload)) + payload


def request_text(rid, command="binary_kinds", args='{"a":{"$attachment":0}}') -> bytes:
    return (f'{{"id":{rid},"command":"{command}","args":{args},"session_id":null,'
            f'"deadline_ms":null}}').encode()


class LayoutTest(unittest.TestCase):
    def test_buffers_are_aligned_and_the_frame_splits_back_exactly(self):
        buffers = [b"a" * 3, b"", b"b" * 100, bytearray(b"c")]
        size, pieces = frame_pieces(b'{"x":1}', buffers)
        payload = bytearray(b"".join(bytes(p) for p in pieces[1:]))
        self.assertEqual(len(payload), size)
        self.assertEqual(struct.unpack(">I", pieces[0])[0], ATTACHMENTS_FLAG | size)
        text, views = split_frame(payload)
        self.assertEqual(text, b'{"x":1}')
        self.assertEqual([bytes(v) for v in views], [bytes(b) for b in buffers])
        offset = 0
        for index, piece in enumerate(pieces[1:], start=1):
            if index >= 4 and index % 2 == 0:  # header, table, JSON, then padding + buffer
                self.assertEqual(offset % ALIGNMENT, 0)
            offset += memoryview(piece).nbytes


class AttachmentRequestTest(WorkerTestCase):
    handlers = EDGE

    def test_a_handler_receives_writable_memoryviews_without_a_copy(self):
        worker = self.ready()
        kinds = worker.result("binary_kinds", {"a": b"\x00\x01\x02\x03rest", "b": b"",
                                               "c": "text"})
        self.assertEqual(kinds["a"], {"type": "memoryview", "nbytes": 8, "readonly": False,
                                      "head": "00010203"})
        self.assertEqual(kinds["b"]["nbytes"], 0)
        self.assertEqual(kinds["c"], {"type": "str"})
        self.assertEqual(worker.result("ping"), "pong")  # plain frames still work after

    def test_echo_round_trips_bytes_of_every_size_up_to_a_few_megabytes(self):
        worker = self.ready()
        for size in (0, 1, 63, 64, 65, 65536, 3 * 1024 * 1024 + 7):
            with self.subTest(size=size):
                data = os.urandom(size)
                result = worker.result("echo_binary", {"data": data, "n": size})
                self.assertIsInstance(result["data"], memoryview)
                self.assertEqual(bytes(result["data"]), data)
                self.assertEqual(result["n"], size)

    def test_any_object_with_the_buffer_protocol_is_sent_as_its_bytes(self):
        worker = self.ready()
        result = worker.result("buffer_kinds")
        self.assertEqual(bytes(result["array"]), bytes(__import__("array").array("i", [1, 2])))
        self.assertEqual(bytes(result["strided"]), b"ace")
        self.assertError(worker.call("unserialisable"), "SerializationError")  # a set: no buffer

    def test_replies_carry_bytes_and_many_buffers(self):
        worker = self.ready()
        result = worker.result("bytes_out", {"size": 300, "count": 50})
        self.assertEqual(len(result["data"]), 50)
        self.assertTrue(all(bytes(d) == bytes(range(256)) + bytes(range(44))
                            for d in result["data"]))

    def test_more_buffers_than_a_frame_may_hold_is_a_serialization_error(self):
        worker = self.ready()
        reply = worker.call("bytes_out", {"size": 1, "count": MAX_ATTACHMENTS + 1})
        error = self.assertError(reply, "SerializationError")
        self.assertIn(str(MAX_ATTACHMENTS), error["message"])
        self.assertEqual(len(worker.result("bytes_out", {"count": 3})["data"]), 3)

    def test_a_reply_over_the_frame_limit_is_a_serialization_error(self):
        worker = self.ready(EDGE, extra_args=["--max-frame-bytes", "4096"])
        error = self.assertError(worker.call("bytes_out", {"size": 5000}), "SerializationError")
        self.assertIn("4096", error["message"])
        self.assertEqual(bytes(worker.result("bytes_out", {"size": 100})["data"][0]),
                         bytes(range(100)))

    def test_stream_chunks_and_the_final_result_carry_bytes(self):
        worker = self.ready()
        chunks, reply = worker.call_stream("stream_bytes", {"count": 3})
        self.assertEqual([(c["i"], bytes(c["data"])) for c in chunks],
                         [(0, b"\0\0\0"), (1, b"\1\1\1"), (2, b"\2\2\2")])
        self.assertEqual(bytes(reply["result"]), b"end")

    def test_batch_items_cannot_return_bytes(self):
        worker = self.ready()
        worker.send({"id": 5, "command": "bytes_out", "batch": [{"size": 3}, {"size": 0}],
                     "session_id": None, "deadline_ms": None})
        reply = worker.recv()
        self.assertTrue(reply["ok"], reply)
        errors = dict(reply["result"]["errors"])
        self.assertEqual(sorted(errors), [0, 1])
        self.assertEqual(errors[0]["type"], "SerializationError")


class MalformedAttachmentFrameTest(WorkerTestCase):
    handlers = EDGE

    def assertServes(self, worker):
        self.assertEqual(worker.result("ping"), "pong")

    def test_a_marker_naming_no_buffer_is_invalid_arguments_for_that_request(self):
        worker = self.ready()
        for marker in ("1", "-1", '"0"', "0.5", "true"):
            with self.subTest(marker=marker):
                text = request_text(7, args=f'{{"a":{{"$attachment":{marker}}}}}')
                worker.send_raw(attachment_frame(text, [b"x"]))
                error = self.assertError(worker.recv(), "InvalidArguments", 7)
                self.assertIn("names no attachment", error["message"])
                self.assertServes(worker)

    def test_lying_tables_are_protocol_errors_and_the_worker_goes_on(self):
        worker = self.ready()
        text = request_text(8)
        cases = {
            "count 0": attachment_frame(text, [b"abc"], count=0, sizes=[]),
            "count over the limit": attachment_frame(text, [b"abc"], count=MAX_ATTACHMENTS + 1),
            "size past the end": attachment_frame(text, [b"abc"], sizes=[1000]),
            "size near 2^64": attachment_frame(text, [b"abc"], sizes=[(1 << 64) - 1]),
            "trailing bytes": attachment_frame(text, [b"abc"], trailing=b"zz"),
            "no table": struct.pack(">I", ATTACHMENTS_FLAG | 3) + b"abc",
        }
        for name, data in cases.items():
            with self.subTest(name):
                worker.send_raw(data)
                error = self.assertError(worker.recv(), "ProtocolError", 0)
                self.assertIn("attachment", error["message"])
                self.assertServes(worker)

    def test_a_json_length_past_the_frame_is_a_protocol_error(self):
        worker = self.ready()
        payload = struct.pack(">II", 1 << 30, 1) + struct.pack(">Q", 0) + b"{}"
        worker.send_raw(struct.pack(">I", ATTACHMENTS_FLAG | len(payload)) + payload)
        self.assertError(worker.recv(), "ProtocolError", 0)
        self.assertServes(worker)

    def test_an_attachment_frame_over_the_limit_ends_the_worker_with_code_4(self):
        worker = self.ready(EDGE, extra_args=["--max-frame-bytes", "4096"])
        worker.send_raw(struct.pack(">I", ATTACHMENTS_FLAG | 4097) + b"\0" * 16)
        self.assertEqual(worker.wait(5), 4)

    def test_the_json_of_an_attachment_frame_is_checked_like_any_other(self):
        worker = self.ready()
        worker.send_raw(attachment_frame(b'{"id":9,"command":', [b"x"]))
        self.assertError(worker.recv(), "InvalidArguments", 9)
        worker.send_raw(attachment_frame(b'[1,2]', [b"x"]))
        self.assertError(worker.recv(), "ProtocolError", 0)
        self.assertServes(worker)


@unittest.skipIf(numpy is None, "numpy is not installed")
class ArrayTest(WorkerTestCase):
    handlers = EDGE

    def test_an_array_object_reaches_the_handler_as_an_aligned_numpy_array(self):
        worker = self.ready()
        values = numpy.arange(12, dtype="<f8").reshape(3, 4)
        kinds = worker.result("binary_kinds", {"m": values, "i": numpy.arange(5, dtype="<i4")})
        self.assertEqual(kinds["m"], {"type": "ndarray", "dtype": "<f8", "shape": [3, 4],
                                      "sum": 66.0, "aligned": True})
        self.assertEqual(kinds["i"]["dtype"], "<i4")

    def test_a_returned_array_keeps_dtype_and_shape_and_a_strided_one_is_made_contiguous(self):
        worker = self.ready()
        result = worker.result("array_out", {"n": 10, "dtype": "<i8", "step": 3})
        self.assertIsInstance(result, numpy.ndarray)
        self.assertEqual(result.tolist(), [0, 3, 6, 9])
        self.assertEqual(result.dtype.str, "<i8")
        zero_d = worker.result("echo_binary", {"a": numpy.array(2.5)})
        self.assertEqual(zero_d["a"].shape, ())

    def test_numpy_scalars_are_sent_as_their_values(self):
        worker = self.ready()
        result = worker.result("numpy_scalars")
        self.assertEqual({k: v for k, v in result.items() if k != "s"},
                         {"i": 7, "b": True, "f": 0.5})
        self.assertEqual(bytes(result["s"]), b"xy")

    def test_arrays_of_objects_cannot_be_sent(self):
        worker = self.ready()
        error = self.assertError(worker.call("object_array"), "SerializationError")
        self.assertIn("dtype object", error["message"])
        self.assertServes(worker)

    def assertServes(self, worker):
        self.assertEqual(worker.result("ping"), "pong")

    def test_an_array_object_whose_bytes_do_not_fit_its_shape_is_invalid_arguments(self):
        worker = self.ready()
        text = request_text(
            11, args='{"m":{"dtype":"<f8","shape":[3],"data":{"$attachment":0}}}')
        worker.send_raw(attachment_frame(text, [b"\0" * 16]))
        error = self.assertError(worker.recv(), "InvalidArguments", 11)
        self.assertIn("array of shape [3]", error["message"])
        text = request_text(12, args='{"m":{"dtype":"not a dtype","shape":[1],'
                                     '"data":{"$attachment":0}}}')
        worker.send_raw(attachment_frame(text, [b"\0" * 8]))
        self.assertError(worker.recv(), "InvalidArguments", 12)
        self.assertServes(worker)


if __name__ == "__main__":
    unittest.main()
