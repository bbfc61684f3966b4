"""Output that is not UTF-8, for tests/integration/error_reporter_test.cc (structured logs).

  raw_output   writes args["lines"] (default 1) lines of bytes that are not valid UTF-8 to stdout
               (b"raw \\xff\\xfe \\xc3( end") and answers {"written": n}
"""

import sys

from bridgepool_worker import command


@command("raw_output")
def raw_output(args, ctx):
    n = int(args.get("lines", 1))
    for _ in range(n):
        sys.stdout.buffer.write(b"raw \xff\xfe \xc3( end\n")
    sys.stdout.buffer.flush()
    return {"written": n}
