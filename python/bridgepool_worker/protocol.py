"""Wire format shared by the worker runtime and the test harness (SPEC §2).

A frame is a 4-byte unsigned big-endian header followed by that many bytes of UTF-8 JSON.
Protocol 2: when the header's top bit (ATTACHMENTS_FLAG) is set, its low 31 bits are the length
of an attachment frame, which carries binary buffers next to its JSON (attachments.py has the
layout). Requests arrive on fd 3, responses leave on fd 4; stdin/stdout/stderr belong to user
code.
This module holds only the framing primitives and the JSON encoder settings; the request loop
that uses them lives in `runtime.py`, where the hot path inlines the common case of each.
"""

from __future__ import annotations

import json
import os
import struct
from json.encoder import c_make_encoder, encode_basestring

PROTOCOL_VERSION = 2
DEFAULT_REQUEST_FD = 3
DEFAULT_RESPONSE_FD = 4
DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024  # 67108864
ATTACHMENTS_FLAG = 0x80000000  # in a frame header: the frame carries attachments
MAX_FRAME_LIMIT = ATTACHMENTS_FLAG - 1  # the largest length the header's 31 bits can say

HEADER = struct.Struct(">I")
HEADER_SIZE = HEADER.size  # 4
U64_MAX = (1 << 64) - 1

# Exit codes the pool can tell apart (a clean exit after EOF or `shutdown` is 0).
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INIT_FAILED = 3
EXIT_PROTOCOL = 4

# One encoder built once: json.dumps() with non-default options constructs a new JSONEncoder on
# every call, which costs about a microsecond per reply. Compact separators keep frames small;
# ensure_ascii=False sends non-ASCII text as UTF-8 instead of \uXXXX escapes; allow_nan=False
# because NaN/Infinity are not JSON and the C++ parser would reject the whole frame.
encode_json = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def _not_serialisable(value):
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def make_chunk_encoder(default=None):
    """Returns `encode(obj, 0) -> sequence of str` with the same output as `encode_json`.

    This is the C encoder that JSONEncoder.encode() builds afresh on every call; building it
    once saves about 0.7 µs per reply (half the cost of encoding a small reply). Its
    circular-reference markers may keep stale entries after a failed encoding, so callers
    build a new one after any error. `default` is called for values JSON has no type for (it
    returns a replacement or raises TypeError; attachments.Collector). Falls back to
    JSONEncoder where _json is unavailable.
    """
    default = default or _not_serialisable
    if c_make_encoder is None:
        encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                                   default=default)
        return lambda obj, _level: (encoder.encode(obj),)
    return c_make_encoder({}, default, encode_basestring, None, ":", ",",
                          False, False, False)  # sort_keys, skipkeys, allow_nan


# What a failed json encoding can raise: TypeError (unsupported type or key), ValueError
# (NaN, circular reference, lone surrogate on .encode()), RecursionError (absurd nesting).
ENCODE_ERRORS = (TypeError, ValueError, RecursionError)


def encode_frame(message: object) -> bytes:
    """Returns header + body for `message`; raises one of ENCODE_ERRORS if it is not JSON."""
    body = encode_json(message).encode("utf-8")
    return HEADER.pack(len(body)) + body


def write_all(fd: int, data: bytes) -> None:
    """Writes all of `data` to `fd`, looping on short writes (a pipe takes 64 KiB at a time).

    Python retries EINTR itself (PEP 475); EPIPE surfaces as BrokenPipeError because the
    interpreter ignores SIGPIPE.
    """
    written = os.write(fd, data)
    if written == len(data):
        return
    view = memoryview(data)[written:]
    while view:
        written = os.write(fd, view)
        view = view[written:]


def writev_all(fd: int, pieces: list) -> None:
    """Writes the C-contiguous byte-like `pieces` in order with as few writev calls as the pipe
    allows: a large attachment goes from its own memory to the kernel, never through a joined
    copy."""
    views = [view for view in (memoryview(p).cast("B") for p in pieces) if view.nbytes]
    first = 0
    while first < len(views):
        written = os.writev(fd, views[first:first + 1024])  # IOV_MAX
        while first < len(views) and written >= views[first].nbytes:
            written -= views[first].nbytes
            first += 1
        if written:
            views[first] = views[first][written:]


def read_exact(fd: int, size: int, first: bytes = b"") -> bytearray | None:
    """Reads until `size` bytes are available (`first` holds what was already read).

    Returns None on EOF, including EOF in the middle of a frame. Reads go straight into one
    preallocated buffer with readv, so a large frame arriving 64 KiB at a time is neither
    re-allocated per read nor copied chunk by chunk.
    """
    buffer = bytearray(size)
    got = len(first)
    buffer[:got] = first
    view = memoryview(buffer)
    while got < size:
        count = os.readv(fd, [view[got:]])
        if count == 0:
            return None
        got += count
    return buffer
