"""A worker that announces protocol 1, as a bridgepool_worker package older than protocol 2
(binary attachments) would: the pool must refuse it at the handshake with a clear error.

It patches the runtime's protocol version at import, before the handshake is sent.
"""

import sys

from bridgepool_worker import command

sys.modules["bridgepool_worker.runtime"].PROTOCOL_VERSION = 1


@command("echo", idempotent=True)
def echo(args, ctx):
    return args
