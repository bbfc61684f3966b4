"""A handler module that opens a socket at import (like a database client connecting at
import): forked workers would share that one connection, so the fork server must refuse."""

import os
import socket

from bridgepool_worker import command

_connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)


@command("family")
def family(args, ctx):
    return {"pid": os.getpid(), "ppid": os.getppid()}
