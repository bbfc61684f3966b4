"""A handler module with a syntax error: the worker must report init_failed and exit 3."""

from bridgepool_worker import command


@command("broken")
def broken(args, ctx)
    return args
