"""Handlers that break the wire protocol on request, for the C++ integration tests (SPEC §10).

Each command writes raw bytes straight to the response fd (4), bypassing the runtime, so the
pool sees exactly the fault under test as the first frame after its request:

  garbage    a well-framed payload that is not JSON: b"this is not json{{"
  oversized  a header declaring 0x7FFFFFF0 bytes and nothing else, then sleeps ("seconds", 30)
  wrong_id   a valid reply frame whose id is the request id + "offset" (default 1000), ok: true
  truncated  a header declaring 100 bytes, then 10 bytes, then os._exit(0)
  hang       sleeps ("seconds", default 3600) without replying
  echo       returns its args (a well-behaved control)

After `garbage` and `wrong_id` the worker by default sleeps ("then": "hang"), so the bad frame
is the only one the pool ever gets; "then": "reply" lets the runtime send its normal reply
after the bad frame, and "then": "exit" ends the process at once.
"""

import os
import struct
import time

from bridgepool_worker import command

RESPONSE_FD = 4  # the protocol's response pipe (the worker's default --response-fd)


def _raw(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(RESPONSE_FD, view):]


def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def _then(args, default: str):
    action = args.get("then", default)
    if action == "exit":
        os._exit(0)
    if action == "hang":
        time.sleep(float(args.get("seconds", 3600)))
    return {"then": action}  # "reply": the runtime writes this after the bad frame


@command("garbage")
def garbage(args, ctx):
    _raw(_frame(b"this is not json{{"))
    return _then(args, "hang")


@command("oversized")
def oversized(args, ctx):
    _raw(struct.pack(">I", 0x7FFFFFF0))
    time.sleep(float(args.get("seconds", 30)))
    return {"slept": True}


@command("wrong_id")
def wrong_id(args, ctx):
    reply_id = ctx.request_id + int(args.get("offset", 1000))
    _raw(_frame(b'{"id":%d,"ok":true,"result":"wrong id"}' % reply_id))
    return _then(args, "hang")


@command("truncated")
def truncated(args, ctx):
    _raw(struct.pack(">I", 100) + b"0123456789")
    os._exit(0)


@command("hang")
def hang(args, ctx):
    time.sleep(float(args.get("seconds", 3600)))
    return {"hung": True}


@command("echo", idempotent=True)
def echo(args, ctx):
    return args
