"""Binary attachments (protocol 2): bytes, memoryviews and numpy arrays next to the JSON.

An attachment frame is a frame whose header has ATTACHMENTS_FLAG set (protocol.py). Its payload:

    u32 json_length | u32 count | count x u64 size | JSON | pad | buffer 0 | pad | buffer 1 ...

Integers are big-endian. Each buffer starts at a multiple of ALIGNMENT bytes from the start of
the payload (zero padding before it), so an array read from it is aligned; nothing follows the
last buffer. 1 <= count <= MAX_ATTACHMENTS. In the JSON, an object with the one key
"$attachment" stands for a buffer by index; an n-dimensional array is {"dtype": <numpy dtype
string, e.g. "<f8">, "shape": [...], "data": {"$attachment": i}}. The whole payload counts
against the frame limit. src/wire/attachment_codec.h is the C++ side of the same layout.

Receiving: a buffer becomes a writable memoryview slice of the one bytearray the frame was read
into (no copy); an array becomes a numpy.ndarray over that slice when numpy can be imported
(else it stays a dict whose "data" is the memoryview).
Sending: the reply encoder's default hook (`Collector`) turns bytes, bytearray, memoryview,
numpy.ndarray and any other buffer-protocol values into markers (and numpy scalars into their
Python values) and keeps the buffers, which go to the pipe with writev from their own memory
(protocol.writev_all).
"""

from __future__ import annotations

import struct
import sys

from bridgepool_worker.protocol import ATTACHMENTS_FLAG, MAX_FRAME_LIMIT, make_chunk_encoder

MARKER = "$attachment"
ALIGNMENT = 64
MAX_ATTACHMENTS = 4096
_COUNTS = struct.Struct(">II")
_PADDING = bytes(ALIGNMENT)


class AttachmentError(ValueError):
    """An attachment frame or marker that does not follow the layout above."""


def _aligned(offset: int) -> int:
    return (offset + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def split_frame(payload: bytearray) -> tuple[bytes, list[memoryview]]:
    """The JSON text and the buffers (views of `payload`) of an attachment frame's payload;
    AttachmentError if the table does not describe exactly `payload`."""
    size = len(payload)
    if size < _COUNTS.size:
        raise AttachmentError(f"attachment frame of {size} bytes has no table")
    json_length, count = _COUNTS.unpack_from(payload)
    if not 1 <= count <= MAX_ATTACHMENTS:
        raise AttachmentError(f"attachment count {count} is not within [1, {MAX_ATTACHMENTS}]")
    table_end = _COUNTS.size + 8 * count
    if table_end + json_length > size:
        raise AttachmentError(f"attachment frame of {size} bytes cannot hold its table and "
                              f"{json_length} bytes of JSON")
    sizes = struct.unpack_from(f">{count}Q", payload, _COUNTS.size)
    view = memoryview(payload)
    buffers = []
    offset = table_end + json_length
    for index, length in enumerate(sizes):
        start = _aligned(offset)
        offset = start + length
        if offset > size:
            raise AttachmentError(f"attachment {index} of {length} bytes ends at byte {offset}, "
                                  f"past the {size}-byte frame")
        buffers.append(view[start:offset])
    if offset != size:
        raise AttachmentError(f"attachment frame has {size - offset} bytes after its last "
                              f"attachment")
    return bytes(view[table_end:table_end + json_length]), buffers


def frame_pieces(json_text: bytes, buffers: list) -> tuple[int, list]:
    """The payload size and the pieces (header included) of an attachment frame holding
    `json_text` and `buffers` (C-contiguous byte-likes)."""
    sizes = [memoryview(b).nbytes for b in buffers]
    head = _COUNTS.pack(len(json_text), len(sizes)) + struct.pack(f">{len(sizes)}Q", *sizes)
    offset = len(head) + len(json_text)
    pieces = [None, head, json_text]
    for buffer, length in zip(buffers, sizes):
        start = _aligned(offset)
        pieces.append(_PADDING[:start - offset])
        pieces.append(buffer)
        offset = start + length
    # A size over the limit is the caller's to refuse before writing; the header just masks it.
    pieces[0] = (ATTACHMENTS_FLAG | (offset & MAX_FRAME_LIMIT)).to_bytes(4, "big")
    return offset, pieces


def encode_message(message: object, collector: "Collector") -> tuple[bytes, int, list | None]:
    """(JSON text, frame payload size, attachment frame pieces or None) of a message that may
    hold binary values, gathered by `collector`; raises what json raises if it cannot be sent
    (the collector is left empty either way)."""
    try:
        text = "".join(make_chunk_encoder(collector)(message, 0)).encode()
    except BaseException:
        collector.clear()
        raise
    if not collector.buffers:
        return text, len(text), None
    buffers = collector.buffers
    collector.clear()
    size, pieces = frame_pieces(text, buffers)
    return text, size, pieces


class Collector:
    """The encoder's `default` hook: byte-likes and numpy arrays become markers; the buffers
    wait in `buffers` until the reply is written (then `clear()`). Anything else is the
    TypeError json raises for an unsupported type."""

    def __init__(self) -> None:
        self.buffers: list = []

    def clear(self) -> None:
        self.buffers = []

    def __call__(self, value):
        if isinstance(value, (bytes, bytearray)):
            return self._add(value)
        if isinstance(value, memoryview):
            return self._add(value if value.c_contiguous else value.tobytes())
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            if isinstance(value, numpy.ndarray):
                return self._array(numpy, value)
            if isinstance(value, numpy.generic):  # numpy.int64(3), numpy.bool_(True): the value
                return value.item()
        try:  # anything else with the buffer protocol (array.array, mmap, ...): its bytes
            view = memoryview(value)
        except TypeError:
            raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable") \
                from None
        return self._add(view if view.c_contiguous else view.tobytes())

    def _add(self, buffer) -> dict:
        if len(self.buffers) >= MAX_ATTACHMENTS:
            raise ValueError(f"more than {MAX_ATTACHMENTS} binary values in one message")
        self.buffers.append(buffer)
        return {MARKER: len(self.buffers) - 1}

    def _array(self, numpy, array) -> dict:
        dtype = array.dtype
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
            raise TypeError(f"a numpy array of dtype {dtype} cannot be sent: only plain "
                            f"numeric, bool, bytes and datetime dtypes have a fixed layout")
        contiguous = numpy.ascontiguousarray(array)  # a copy only if it was not contiguous
        return {"dtype": dtype.str, "shape": list(array.shape),
                "data": self._add(contiguous.reshape(-1).view(numpy.uint8))}


def make_object_hook(buffers: list):
    """json.loads's object_hook for a frame holding `buffers`: markers become the buffers,
    array objects become numpy arrays (numpy imported on the first one); AttachmentError for a
    marker that names no buffer."""
    count = len(buffers)
    numpy_module = []  # [numpy] or [None] once tried

    def hook(obj: dict):
        if MARKER in obj and len(obj) == 1:
            index = obj[MARKER]
            if type(index) is not int or not 0 <= index < count:
                raise AttachmentError(f"{{\"{MARKER}\": {index!r:.40}}} names no attachment "
                                      f"(the frame has {count})")
            return buffers[index]
        if len(obj) == 3 and type(obj.get("data")) is memoryview and "dtype" in obj \
                and "shape" in obj:
            if not numpy_module:
                try:
                    import numpy
                except Exception:  # not installed, or broken: the dict stays as it is
                    numpy = None
                numpy_module.append(numpy)
            if numpy_module[0] is not None:
                return _to_array(numpy_module[0], obj)
        return obj

    return hook


def _to_array(numpy, obj: dict):
    dtype, shape, data = obj["dtype"], obj["shape"], obj["data"]
    if type(dtype) is not str or type(shape) is not list or \
            any(type(n) is not int or n < 0 for n in shape):
        raise AttachmentError(f"array attachment needs a dtype string and a shape of "
                              f"non-negative integers, got {dtype!r:.40} and {shape!r:.80}")
    try:
        return numpy.frombuffer(data, dtype=numpy.dtype(dtype)).reshape(shape)
    except (TypeError, ValueError) as exc:
        raise AttachmentError(f"array attachment of {data.nbytes} bytes is not a {dtype} "
                              f"array of shape {shape}: {exc}") from None

