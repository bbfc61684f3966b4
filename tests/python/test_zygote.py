"""The fork server's side of its socket protocol (python/bridgepool_worker/zygote.py), driven
directly over a real SOCK_SEQPACKET socket: start-up reports (ready, init_failed, unsafe),
fork requests good and bad, exit reports, descriptors of a forked worker, and exit at EOF."""

import json
import os
import socket
import struct
import subprocess
import sys
import unittest

from bridgepool_worker.testing import PACKAGE_PARENT

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXAMPLES = os.environ.get("BRIDGEPOOL_EXAMPLES_DIR") or os.path.join(REPO, "examples")
HANDLERS = os.path.join(EXAMPLES, "handlers.py")
DATA = os.path.join(REPO, "tests", "data")


class Zygote:
    """A zygote with the test's end of its control socket."""

    def __init__(self, handlers: list[str]) -> None:
        host, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.socket = host
        args = [sys.executable, "-m", "bridgepool_worker", "--zygote",
                "--parent-pid", str(os.getpid())]
        for h in handlers:
            args += ["--handlers", h]
        env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT)
        child_fd = child.fileno()
        self.process = subprocess.Popen(
            args, env=env, pass_fds=[child_fd, 3], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: (os.dup2(child_fd, 3), os.set_inheritable(3, True)))
        child.close()
        self.socket.settimeout(30)

    def receive(self) -> tuple[dict, list[int]]:
        data, fds, _, _ = socket.recv_fds(self.socket, 65536, 1)
        return (json.loads(data) if data else {}), fds

    def fork(self, worker_id: str):
        """Sends a fork request; returns (reply, pidfds, request write end, response read end)."""
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        out = os.open(os.devnull, os.O_WRONLY)
        err = os.open(os.devnull, os.O_WRONLY)
        message = json.dumps({"op": "fork", "args": ["--worker-id", worker_id]}).encode()
        socket.send_fds(self.socket, [message], [req_r, resp_w, out, err])
        for fd in (req_r, resp_w, out, err):
            os.close(fd)
        reply, fds = self.receive()
        return reply, fds, req_w, resp_r

    def close(self) -> int:
        self.socket.close()
        code = self.process.wait(timeout=10)
        self.process.stderr.close()
        return code


def read_frame(fd: int) -> dict:
    header = b""
    while len(header) < 4:
        header += os.read(fd, 4 - len(header))
    (size,) = struct.unpack(">I", header)
    body = b""
    while len(body) < size:
        body += os.read(fd, size - len(body))
    return json.loads(body)


class ZygoteTest(unittest.TestCase):
    def test_ready_then_forks_workers_that_handshake_and_are_reported_when_they_exit(self):
        z = Zygote([HANDLERS])
        ready, _ = z.receive()
        self.assertEqual(ready["event"], "ready")
        self.assertEqual(ready["pid"], z.process.pid)
        reply, pidfds, req_w, resp_r = z.fork("w1")
        self.assertEqual(reply["event"], "forked")
        self.assertEqual(len(pidfds), 1)
        handshake = read_frame(resp_r)
        self.assertEqual(handshake["event"], "ready")
        self.assertEqual(handshake["worker_id"], "w1")
        self.assertEqual(handshake["pid"], reply["pid"])
        names = sorted(int(n) for n in os.listdir(f"/proc/{reply['pid']}/fd"))
        self.assertEqual(names, [0, 1, 2, 3, 4, 5])
        os.close(req_w)  # EOF: the worker exits 0 and the zygote reports it
        exited, _ = z.receive()
        self.assertEqual(exited, {"event": "exited", "pid": reply["pid"], "code": 0})
        for fd in pidfds + [resp_r]:
            os.close(fd)
        self.assertEqual(z.close(), 0)  # EOF on its socket: the zygote exits

    def test_bad_fork_requests_are_refused_and_the_zygote_goes_on(self):
        z = Zygote([HANDLERS])
        self.assertEqual(z.receive()[0]["event"], "ready")
        z.socket.send(b"{not json")
        reply, fds = z.receive()
        self.assertEqual(reply["event"], "fork_failed")
        self.assertIn("bad request", reply["message"])
        r, w = os.pipe()
        socket.send_fds(z.socket, [json.dumps({"op": "fork", "args": []}).encode()], [r])
        os.close(r)
        reply, _ = z.receive()
        self.assertEqual(reply["event"], "fork_failed")
        self.assertIn("4 descriptors", reply["message"])
        reply, pidfds, req_w, resp_r = z.fork("w2")  # still serving
        self.assertEqual(reply["event"], "forked")
        self.assertEqual(read_frame(resp_r)["worker_id"], "w2")
        for fd in pidfds + [req_w, resp_r, w]:
            os.close(fd)
        z.close()

    def test_import_error_is_reported_once_as_init_failed(self):
        z = Zygote([os.path.join(DATA, "import_error.py")])
        message, _ = z.receive()
        self.assertEqual(message["event"], "init_failed")
        self.assertIn("simulated import failure", message["error"]["message"])
        self.assertIn("import_error.py", message["error"]["traceback"])
        self.assertEqual(z.close(), 3)

    def test_threads_at_import_are_reported_as_unsafe(self):
        z = Zygote([os.path.join(DATA, "thread_at_import.py")])
        message, _ = z.receive()
        self.assertEqual(message["event"], "unsafe")
        self.assertIn("heartbeat", message["reason"])
        self.assertEqual(z.close(), 0)

    def test_sockets_opened_at_import_are_reported_as_unsafe(self):
        z = Zygote([os.path.join(DATA, "socket_at_import.py")])
        message, _ = z.receive()
        self.assertEqual(message["event"], "unsafe")
        self.assertIn("opened 1 socket(s) at import", message["reason"])
        self.assertEqual(z.close(), 0)

    def test_without_its_socket_the_zygote_refuses_to_start(self):
        result = subprocess.run(
            [sys.executable, "-m", "bridgepool_worker", "--zygote", "--handlers", HANDLERS],
            env=dict(os.environ, PYTHONPATH=PACKAGE_PARENT), capture_output=True, text=True,
            timeout=30)
        self.assertEqual(result.returncode, 2)
        self.assertIn("control socket on fd 3", result.stderr)

    def test_a_worker_command_line_still_needs_its_worker_id(self):
        result = subprocess.run(
            [sys.executable, "-m", "bridgepool_worker", "--handlers", HANDLERS],
            env=dict(os.environ, PYTHONPATH=PACKAGE_PARENT), capture_output=True, text=True,
            timeout=30)
        self.assertEqual(result.returncode, 2)
        self.assertIn("--worker-id", result.stderr)


if __name__ == "__main__":
    unittest.main()
