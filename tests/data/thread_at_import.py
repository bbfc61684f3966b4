"""A handler module that starts a thread at import: forking it would copy a process whose thread
is gone, so the fork server must refuse and the pool must spawn its workers instead."""

import os
import threading
import time

from bridgepool_worker import command

_heartbeat = threading.Thread(target=lambda: time.sleep(3600), name="heartbeat", daemon=True)
_heartbeat.start()


@command("family")
def family(args, ctx):
    return {"pid": os.getpid(), "ppid": os.getppid()}
