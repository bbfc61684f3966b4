"""The benchmark floor (SPEC §9): the least a Python peer can do per request over the protocol.

Reads 4-byte big-endian length-prefixed JSON frames on fd 3, json.loads each, and answers
json.dumps({"id": ..., "ok": True, "result": <args>}) framed on fd 4; exits on EOF. It sends no
handshake and imports nothing from bridgepool_worker. bench/pipe_floor.cc drives it; the real
worker's `ping` round trip is compared against this one (goal ≤ 1.2×), so it must stay honest:
the same framing and the same JSON work as the worker, and nothing more.
"""

import json
import os


def main():
    read = os.read
    write = os.write
    loads = json.loads
    dumps = json.dumps
    while True:
        header = read(3, 4)
        while len(header) < 4:
            more = read(3, 4 - len(header))
            if not more:
                return  # EOF
            header += more
        size = int.from_bytes(header, "big")
        body = read(3, size)
        while len(body) < size:
            more = read(3, size - len(body))
            if not more:
                return  # EOF inside a frame
            body += more
        request = loads(body)
        out = dumps({"id": request["id"], "ok": True, "result": request.get("args")}).encode()
        frame = len(out).to_bytes(4, "big") + out
        while frame:
            frame = frame[write(4, frame):]


if __name__ == "__main__":
    main()
