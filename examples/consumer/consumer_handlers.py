"""The consumer's own handlers: `where` tells which bridgepool_worker runtime a worker imported."""

import os

import bridgepool_worker
from bridgepool_worker import command


@command("where", idempotent=True)
def where(args, ctx):
    return {"worker_id": ctx.worker_id, "pid": os.getpid(), "runtime": bridgepool_worker.__file__}
