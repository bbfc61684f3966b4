"""A handler module whose import takes SLOW_IMPORT_S seconds (default 30): a fork server that
loads it must be given up at the pool's init_timeout, not waited for."""

import os
import time

from bridgepool_worker import command

time.sleep(float(os.environ.get("SLOW_IMPORT_S", "30")))


@command("ready")
def ready(args, ctx):
    return {}
