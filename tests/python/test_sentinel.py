"""Group-sentinel tests: no process a handler starts outlives its worker, however the worker
ends (its host SIGKILLed, the worker SIGKILLed, a crash, EOF). Real processes and signals;
"gone" means dead or a zombie (/proc/PID/stat state Z), since PID 1 may reap orphans late."""

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import unittest

from bridgepool_worker.testing import PACKAGE_PARENT, WorkerTestCase, process_gone, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXAMPLES = os.environ.get("BRIDGEPOOL_EXAMPLES_DIR") or os.path.join(REPO, "examples")
HANDLERS = os.path.join(EXAMPLES, "handlers.py")
DESCENDANTS = os.path.join(REPO, "tests", "data", "descendants.py")
SENTINEL_PY = os.path.join(PACKAGE_PARENT, "bridgepool_worker", "sentinel.py")


def proc_stat(pid: int) -> tuple[str, int, int]:
    """(state, ppid, pgid) from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    return fields[0].decode(), int(fields[1]), int(fields[2])


class SentinelTestCase(WorkerTestCase):
    handlers = [HANDLERS, DESCENDANTS]

    def keep_killed(self, pids):
        """Cleanup: SIGKILL whatever a failing test leaves behind."""
        def kill_all():
            for pid in pids:
                if not process_gone(pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        self.addCleanup(kill_all)

    def start_descendants(self, worker) -> list[int]:
        """Makes the worker start one process each way; returns their pids (all running)."""
        pids = [worker.result(name)["pid"]
                for name in ("fork_sleeper", "popen_sleeper", "mp_sleeper")]
        self.keep_killed(pids)
        for pid in pids:
            self.assertFalse(process_gone(pid), pid)
            self.assertEqual(proc_stat(pid)[2], worker.pid)  # in the worker's group
        return pids

    def assertAllGoneWithin(self, pids, seconds=1.0):
        self.assertTrue(wait_until(lambda: all(process_gone(p) for p in pids), seconds),
                        f"still running after {seconds} s: "
                        f"{[p for p in pids if not process_gone(p)]}")


class SentinelProcessTest(SentinelTestCase):
    def test_the_sentinel_is_in_the_group_but_not_a_child_and_holds_only_a_pidfd(self):
        worker = self.ready()
        sentinel = worker.result("get_stats")["sentinel_pid"]
        self.assertIsInstance(sentinel, int)
        state, ppid, pgid = proc_stat(sentinel)
        self.assertNotEqual(state, "Z")
        self.assertNotEqual(ppid, worker.pid)
        self.assertEqual(pgid, worker.pid)
        command = [os.fsencode(a) for a in (sys.executable, "-I", "-S", SENTINEL_PY, "--launch",
                                            str(worker.pid))]
        expected_fds = {0: "/dev/null", 1: "/dev/null", 2: "/dev/null", 3: "anon_inode:[pidfd]"}

        def cmdline():
            with open(f"/proc/{sentinel}/cmdline", "rb") as f:
                return f.read().split(b"\0")[:-1]

        def fds():
            return {int(fd): os.readlink(f"/proc/{sentinel}/fd/{fd}")
                    for fd in os.listdir(f"/proc/{sentinel}/fd")}

        # Right after the worker learnt its pid, the sentinel (the launcher's forked child) may
        # still hold the module file or the pid pipe open.
        wait_until(lambda: cmdline() == command and fds() == expected_fds, 5.0)
        self.assertEqual(cmdline(), command)
        self.assertEqual(fds(), expected_fds)
        # Handler code that reaps "all my children" sees none.
        self.assertEqual(worker.result("wait_any"), {"children": False})

    def test_the_workers_own_forks_leave_the_sentinel_alone(self):
        worker = self.ready()
        sentinel = worker.result("get_stats")["sentinel_pid"]
        for _ in range(3):
            self.assertEqual(worker.result("fork_and_reap")["status"], 5)
        self.assertFalse(process_gone(sentinel))
        self.assertEqual(worker.result("get_stats")["sentinel_pid"], sentinel)
        pids = self.start_descendants(worker)
        os.kill(worker.pid, signal.SIGKILL)
        self.assertAllGoneWithin(pids + [sentinel])

    def test_no_sentinel_when_the_worker_does_not_lead_its_group(self):
        # Killing the group would then hit whoever started the worker (here: this test).
        worker = self.ready(own_process_group=False)
        self.assertEqual(worker.result("group")["pgid"], os.getpgrp())
        self.assertIsNone(worker.result("get_stats")["sentinel_pid"])
        self.assertEqual(worker.result("ping"), "pong")


class WorkerDeathTest(SentinelTestCase):
    def check_descendants_die(self, end_worker, expected_exit, **start_options):
        worker = self.ready(**start_options)
        sentinel = worker.result("get_stats")["sentinel_pid"]
        pids = self.start_descendants(worker)
        end_worker(worker)
        self.assertEqual(worker.wait(5), expected_exit)
        self.assertAllGoneWithin(pids + [sentinel])
        return worker

    def test_sigkill_of_the_worker(self):
        worker = self.check_descendants_die(lambda w: os.kill(w.pid, signal.SIGKILL),
                                            -signal.SIGKILL)
        # The forked child inherited the response pipe; only its death lets EOF through.
        self.assertTrue(worker.at_eof(1))

    def test_sigkill_with_the_protocol_pipes_on_other_fds(self):
        # --request-fd/--response-fd: fds 3 and 4 are free in the worker, the sentinel's are not.
        self.check_descendants_die(lambda w: os.kill(w.pid, signal.SIGKILL), -signal.SIGKILL,
                                   default_fds=False)

    def test_a_crash(self):
        self.check_descendants_die(lambda w: w.request("crash", {"code": 9}), 9)

    def test_eof_ends_the_leftover_children_of_a_normal_exit(self):
        self.check_descendants_die(lambda w: w.close_requests(), 0)

    def test_shutdown(self):
        self.check_descendants_die(lambda w: w.request("shutdown"), 0)


class HostDeathTest(SentinelTestCase):
    # A fake host: starts a worker (own process group, as the pool does), has it start three
    # processes, prints every pid, then waits. SIGKILL of the host → the worker's parent-death
    # signal → the sentinel ends the group.
    HOST = textwrap.dedent("""
        import json, sys, time
        from bridgepool_worker.testing import WorkerProcess
        worker = WorkerProcess(sys.argv[1:], worker_id="w-host")
        worker.handshake()
        pids = [worker.result(name)["pid"]
                for name in ("fork_sleeper", "popen_sleeper", "mp_sleeper")]
        sentinel = worker.result("get_stats")["sentinel_pid"]
        print(json.dumps({"worker": worker.pid, "sentinel": sentinel, "children": pids}),
              flush=True)
        time.sleep(600)
    """)

    def test_sigkill_of_the_host_ends_the_worker_and_everything_it_started(self):
        env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT)
        env.pop("BRIDGEPOOL_PARENT_PID", None)
        host = subprocess.Popen([sys.executable, "-c", self.HOST, HANDLERS, DESCENDANTS],
                                env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.addCleanup(host.wait, 10)
        self.addCleanup(host.kill)
        self.addCleanup(host.stdout.close)
        ready, _, _ = select.select([host.stdout], [], [], 10)
        self.assertTrue(ready, "the host did not report its worker in 10 s")
        report = json.loads(host.stdout.readline())
        pids = [report["worker"], report["sentinel"]] + report["children"]
        self.keep_killed(pids)
        for pid in pids:
            self.assertFalse(process_gone(pid), pid)

        host.kill()
        host.wait(5)
        self.assertAllGoneWithin(pids)


if __name__ == "__main__":
    unittest.main()
