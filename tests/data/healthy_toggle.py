"""A handler module whose health check fails while a marker file exists.

The file is named by the environment variable BRIDGEPOOL_TEST_UNHEALTHY_FILE (read at each
check), so a test can flip a live worker between healthy and unhealthy by creating and
removing that file.
"""

import os

from bridgepool_worker import command, health_check


@health_check
def marker_file_absent():
    path = os.environ.get("BRIDGEPOOL_TEST_UNHEALTHY_FILE")
    if path and os.path.exists(path):
        return False, f"unhealthy marker file exists: {path}"
    return True


@command("echo", idempotent=True)
def echo(args, ctx):
    return args
