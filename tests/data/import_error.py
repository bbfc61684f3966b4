"""A handler module that fails at import: the worker must report init_failed and exit 3."""

from bridgepool_worker import command


@command("never_registered_usefully")
def never(args, ctx):
    return None


raise ImportError("simulated import failure for tests")
