"""Handlers that exercise the runtime's edge cases (used by tests/python and usable from C++).

  context {"sleep_ms"}  the ctx fields of this call (after sleeping sleep_ms, default 0)
  counter {}            increments ctx.session["n"]; returns {"n", "session_id"}
  unserialisable {}     returns a set (not JSON)
  nan {}                returns NaN (not JSON either: allow_nan=False)
  surrogate {}          returns a lone surrogate (cannot be encoded as UTF-8)
  circular {}           returns a dict that contains itself
  big {"bytes"}         returns a string of that many "x" (frame limits, short writes)
  stream_then_fail {"count"}  yields count chunks, then raises ValueError
  stream_bad_chunk {}   yields one good chunk, then a set
  raise_custom {"retryable"}  raises CustomError with .retryable set to the given value
  raise_keyerror {}     raises KeyError("program not found: p-9")
  sys_exit {"code"}     calls sys.exit(code) inside a handler (no "code": sys.exit())
  raise_base {"type","message","retryable"}  raises a BaseException that is not an Exception:
                        KeyboardInterrupt, CancelledError, GeneratorExit or CustomBase
  stream_then_raise {"type","count","code"}  yields count chunks, then raises like raise_base
                        (type "SystemExit": sys.exit(code))
  mark {"reasons","then"}  calls ctx.mark_unhealthy(r) for each reason, then returns {"marked"}
                        (then="raise": raises ValueError; then="set": returns a set)
  stream_mark {"reason"}  yields a chunk, marks, yields another, returns {"done": True}
  raise_unhealthy {"flag","on"}  raises UnhealthyError with worker_unhealthy=flag set on the
                        instance (on="instance") or the class attribute (on="class")
  start_thread {}       starts a non-daemon thread that never ends
  print_line {"text"}   print()s one line to stdout without flushing
  protocol_fds {}       whether fds 3 and 4 would be inherited by a subprocess
  item {"value","sleep_ms","raise","exit","crash","crash_once","mark","stream","surrogate"}
                        one batch item: sleeps, then raises ValueError(raise) / sys.exit(exit)
                        / os._exit(crash) / os._exit(9) unless the file crash_once exists
                        (created first) / marks the worker unhealthy / yields / returns a lone
                        surrogate,
                        else returns {"value": value, "pid": the worker's pid} (idempotent)
  item_once {...}       the same, not idempotent
  echo_binary {...}     returns its args (memoryviews and arrays go back as attachments)
  binary_kinds {...}    for each arg: its type name, and for buffers their length, for arrays
                        their dtype string and shape
  bytes_out {"size","count"}  returns {"data": [count byte strings of size bytes]} (each byte i
                        % 256)
  array_out {"n","dtype","step"}  returns numpy.arange(n, dtype)[::step] (a strided view)
  object_array {}       returns a numpy array of dtype object (cannot be sent)
  buffer_kinds {}       returns {"array": array.array("i", [1, 2]),
                        "strided": memoryview(b"abcdef")[::2]}
  numpy_scalars {}      returns numpy scalars: int64 7, bool_ True, float32 0.5, bytes_ b"xy"
  score_batch [...]     a batch handler: {"value": v} -> {"value": v, "pid"}, a ValueError
                        instance for items with "fail", raises for an item with "raise_all",
                        returns one result too few for an item with "short", sys.exit for
                        "exit"
  lying_attachment {}   writes, itself, a reply frame whose marker names an attachment the frame
                        does not have (a broken stream), then returns normally
  stream_bytes {"count"}  yields count chunks {"i": i, "data": bytes([i]) * 3}, returns b"end"
"""

import os
import sys
import threading
import time

from bridgepool_worker import command


class CustomError(Exception):
    pass


class CustomBase(BaseException):
    """Neither an Exception nor one of the interpreter's own BaseExceptions."""


class UnhealthyError(RuntimeError):
    pass


class ClassFlaggedError(RuntimeError):
    worker_unhealthy = True


@command("context", idempotent=True)
def context(args, ctx):
    time.sleep(args.get("sleep_ms", 0) / 1000)  # hold the worker first, if asked
    return {
        "session_id": ctx.session_id,
        "worker_id": ctx.worker_id,
        "request_id": ctx.request_id,
        "deadline_ms": ctx.deadline_ms,
        "session_keys": sorted(ctx.session),
    }


@command("counter")
def counter(args, ctx):
    ctx.session["n"] = ctx.session.get("n", 0) + 1
    return {"n": ctx.session["n"], "session_id": ctx.session_id}


@command("unserialisable")
def unserialisable(args, ctx):
    return {"values": {1, 2, 3}}


@command("nan")
def nan(args, ctx):
    return float("nan")


@command("surrogate")
def surrogate(args, ctx):
    return "\ud800"


@command("circular")
def circular(args, ctx):
    loop = {"inner": [1, 2]}
    loop["inner"].append(loop)
    return loop


@command("big", idempotent=True)
def big(args, ctx):
    return "x" * int(args.get("bytes", 1 << 20))


@command("stream_then_fail")
def stream_then_fail(args, ctx):
    for i in range(int(args.get("count", 2))):
        yield {"i": i}
    raise ValueError("stream broke")


@command("stream_bad_chunk")
def stream_bad_chunk(args, ctx):
    yield {"fine": True}
    yield {1, 2}


@command("raise_custom")
def raise_custom(args, ctx):
    exc = CustomError("custom failure")
    exc.retryable = args.get("retryable")
    raise exc


@command("raise_keyerror")
def raise_keyerror(args, ctx):
    raise KeyError("program not found: p-9")


@command("sys_exit")
def sys_exit(args, ctx):
    if "code" not in args:
        sys.exit()
    sys.exit(args["code"])


def _base_exception(args):
    name = args.get("type", "KeyboardInterrupt")
    message = args.get("message", "")
    if name == "KeyboardInterrupt":
        exc = KeyboardInterrupt(message) if message else KeyboardInterrupt()
    elif name == "CancelledError":
        import asyncio  # here: importing it costs every worker that loads this module ~30 ms

        exc = asyncio.CancelledError(message)
    elif name == "GeneratorExit":
        exc = GeneratorExit(message)
    elif name == "SystemExit":
        exc = SystemExit(args.get("code", 3))
    else:
        exc = CustomBase(message)
    if "retryable" in args:
        exc.retryable = args["retryable"]
    return exc


@command("raise_base")
def raise_base(args, ctx):
    raise _base_exception(args)


@command("stream_then_raise")
def stream_then_raise(args, ctx):
    for i in range(int(args.get("count", 2))):
        yield {"i": i}
    raise _base_exception(args)


@command("mark")
def mark(args, ctx):
    for reason in args.get("reasons", ["CUDA out of memory"]):
        ctx.mark_unhealthy(reason)
    then = args.get("then")
    if then == "raise":
        raise ValueError("failed after marking")
    if then == "set":
        return {1, 2}
    return {"marked": len(args.get("reasons", [None]))}


@command("stream_mark")
def stream_mark(args, ctx):
    yield {"i": 0}
    ctx.mark_unhealthy(args.get("reason", "driver wedged"))
    yield {"i": 1}
    return {"done": True}


@command("raise_unhealthy")
def raise_unhealthy(args, ctx):
    if args.get("on") == "class":
        raise ClassFlaggedError("device lost")
    exc = UnhealthyError("device lost")
    exc.worker_unhealthy = args.get("flag", True)
    raise exc


@command("start_thread")
def start_thread(args, ctx):
    threading.Thread(target=lambda: time.sleep(3600), daemon=False).start()
    return {"started": True}


@command("print_line")
def print_line(args, ctx):
    print(args.get("text", "hello"))
    return {"printed": True}


@command("protocol_fds", idempotent=True)
def protocol_fds(args, ctx):
    return {"request_inheritable": os.get_inheritable(3),
            "response_inheritable": os.get_inheritable(4)}


def _item(args, ctx):
    time.sleep(args.get("sleep_ms", 0) / 1000)
    if "raise" in args:
        raise ValueError(args["raise"])
    if "exit" in args:
        sys.exit(args["exit"])
    if "crash" in args:
        os._exit(args["crash"])
    if "crash_once" in args and not os.path.exists(args["crash_once"]):
        open(args["crash_once"], "w").close()  # the next worker to get this item serves it
        os._exit(9)
    if "mark" in args:
        ctx.mark_unhealthy(args["mark"])
    if args.get("surrogate"):
        return "\ud800"
    return {"value": args.get("value"), "pid": os.getpid()}


@command("item", idempotent=True)
def item(args, ctx):
    if args.get("stream"):
        return stream_then_fail(args, ctx)
    return _item(args, ctx)


@command("item_once")
def item_once(args, ctx):
    return _item(args, ctx)


@command("echo_binary", idempotent=True)
def echo_binary(args, ctx):
    return args


@command("binary_kinds", idempotent=True)
def binary_kinds(args, ctx):
    out = {}
    for key, value in args.items():
        kind = {"type": type(value).__name__}
        if isinstance(value, memoryview):
            kind.update(nbytes=value.nbytes, readonly=value.readonly, head=value[:4].hex())
        elif hasattr(value, "dtype") and hasattr(value, "shape"):
            kind.update(dtype=value.dtype.str, shape=list(value.shape), sum=float(value.sum()),
                        aligned=bool(value.flags.aligned))
        out[key] = kind
    return out


@command("bytes_out", idempotent=True)
def bytes_out(args, ctx):
    size = int(args.get("size", 16))
    pattern = bytes(range(256)) * (size // 256 + 1)
    return {"data": [pattern[:size] for _ in range(int(args.get("count", 1)))]}


@command("array_out", idempotent=True)
def array_out(args, ctx):
    import numpy

    array = numpy.arange(int(args.get("n", 10)), dtype=args.get("dtype", "<f8"))
    return array[::int(args.get("step", 1))]


@command("buffer_kinds")
def buffer_kinds(args, ctx):
    import array

    return {"array": array.array("i", [1, 2]), "strided": memoryview(b"abcdef")[::2]}


@command("numpy_scalars")
def numpy_scalars(args, ctx):
    import numpy

    return {"i": numpy.int64(7), "b": numpy.bool_(True), "f": numpy.float32(0.5),
            "s": numpy.bytes_(b"xy")}


@command("object_array")
def object_array(args, ctx):
    import numpy

    return numpy.array([{"a": 1}, None], dtype=object)


@command("stream_bytes")
def stream_bytes(args, ctx):
    for i in range(int(args.get("count", 2))):
        yield {"i": i, "data": bytes([i]) * 3}
    return b"end"


@command("lying_attachment")
def lying_attachment(args, ctx):
    import struct

    text = ('{"id":%d,"ok":true,"result":{"$attachment":3}}' % ctx.request_id).encode()
    payload = struct.pack(">IIQ", len(text), 1, 2) + text
    payload += bytes(-len(payload) % 64) + b"ab"
    os.write(4, struct.pack(">I", 0x80000000 | len(payload)) + payload)
    return "written"


@command("score_batch", idempotent=True, batch=True)
def score_batch(items, ctx):
    if any("raise_all" in item for item in items):
        raise RuntimeError("the whole batch failed")
    if any("exit" in item for item in items):
        sys.exit(3)
    out = [ValueError(f"bad item {item['value']}") if "fail" in item
           else {"value": item.get("value"), "pid": os.getpid(), "calls": len(items)}
           for item in items]
    if any("short" in item for item in items):
        out.pop()
    return out
