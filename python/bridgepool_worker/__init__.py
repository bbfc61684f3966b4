"""bridgepool_worker — the Python side of bridgepool (SPEC §3).

A bridgepool pool starts this package as a long-lived worker process:

    python3 -m bridgepool_worker --handlers my_handlers.py --worker-id w-1

and sends it JSON requests on fd 3, reading replies on fd 4 (see `protocol.py`). Handler
modules register commands with the decorators exported here:

    from bridgepool_worker import command, health_check

    @command("echo", idempotent=True)
    def echo(args, ctx):
        return args

Importing this package is cheap on purpose: the runtime (`runtime.py`) is loaded only by
`__main__`, so handler modules and tests can import the decorators without it.
"""

from bridgepool_worker.context import Context
from bridgepool_worker.errors import InvalidArguments
from bridgepool_worker.protocol import PROTOCOL_VERSION
from bridgepool_worker.registry import RegistrationError, command, health_check

__all__ = [
    "Context",
    "InvalidArguments",
    "PROTOCOL_VERSION",
    "RegistrationError",
    "command",
    "health_check",
]
