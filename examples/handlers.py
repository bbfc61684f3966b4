"""Example handler module for bridgepool: used by the tests, the benchmarks and the demo.

Start a worker with it:

    python3 -m bridgepool_worker --handlers examples/handlers.py --worker-id w-1

Commands (arguments in braces; every command takes a JSON object):
  echo {…}                       returns its args (idempotent)
  echo_batch {…}                 the same as a batch handler: execute_many chunks reach it as one
                                 call with the list of args (idempotent; batch=True)
  sleep {"ms","slow_pid","slow_factor"}
                                 sleeps, returns {"slept_ms"} (idempotent); ms x slow_factor in
                                 the worker whose pid is slow_pid (bench --scenario slow)
  submit {…}                     returns its args, like echo, but NOT idempotent (never retried
                                 once delivered: bench --scenario cascade)
  fail {"type","message","retryable"}   raises the named builtin exception (default RuntimeError)
  crash {"code"} | {"signal"}    exits the process at once, or sends itself a signal
  flaky {"fail_rate","crash_share","crash_code","seed"}
                                 fails a random share of calls, some by crashing (idempotent)
  compute {"n"}                  CPU-bound loop, returns {"n","value"} (idempotent)
  whoami {}                      {"pid","worker_id","requests_served","handlers_version"}
  spam {"lines","width"}         prints lines to stdout and stderr, returns {"printed"}
  stream {"count"}               yields {"i": i} count times, returns {"count"}
  configure {…} / get_config {}  process-global settings (what `broadcast` is for)
  create_program {"signature","program_id"?}, execute_program {"program_id","inputs"},
  list_programs {}, delete_program {"program_id"}
                                 DSPy-like programs kept in the session (need a session id)
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import random
import sys
import time

from bridgepool_worker import command

__version__ = "examples-1"


@command("echo", idempotent=True)
def echo(args, ctx):
    return args


@command("echo_batch", idempotent=True, batch=True)
def echo_batch(items, ctx):
    return items


@command("sleep", idempotent=True)
def sleep(args, ctx):
    """Sleeps `ms`; in the worker whose pid is `slow_pid`, `slow_factor` times longer.

    The slow_pid hook lets `bridgepool bench --scenario slow` make one chosen worker slow (a
    delay hook rather than SIGSTOP bursts: the slowdown is exact and the worker stays responsive
    to the pool's health checks).
    """
    ms = args.get("ms", 0)
    slow_pid = args.get("slow_pid")
    if slow_pid and int(slow_pid) == os.getpid():
        ms = ms * float(args.get("slow_factor", 1))
    time.sleep(ms / 1000.0)
    return {"slept_ms": ms}


@command("submit")
def submit(args, ctx):
    """Returns its args like echo, but is not idempotent: a call that reached a worker which then
    died fails instead of being retried (the other half of `bench --scenario cascade`)."""
    return args


@command("fail")
def fail(args, ctx):
    """Raises the builtin exception class named by args["type"] (RuntimeError if unknown)."""
    cls = getattr(builtins, str(args.get("type", "RuntimeError")), None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        cls = RuntimeError  # also refuses BaseException-only classes such as SystemExit
    exc = cls(args.get("message", "requested failure"))
    if args.get("retryable") is True:
        exc.retryable = True
    raise exc


@command("crash")
def crash(args, ctx):
    """Ends the process without replying: os._exit(code), or a signal sent to ourselves."""
    sig = args.get("signal")
    if sig is not None:
        os.kill(os.getpid(), int(sig))
        return {"survived_signal": int(sig)}  # only if the signal is ignored or handled
    os._exit(int(args.get("code", 1)))


class FlakyError(RuntimeError):
    """The exception `flaky` raises: a transient failure, so it is reported retryable."""

    retryable = True


# Seeded from os.urandom when the module is imported. A generator made at import is copied into
# every worker forked from the fork server (the default start method), so it is re-seeded in
# each: otherwise all workers would draw the same "random" sequence — here, a request that
# crashed one worker would crash the worker it is retried on too (docs/lifecycle.md).
_flaky_rng = random.Random()
os.register_at_fork(after_in_child=lambda: _flaky_rng.seed(os.urandom(16)))


@command("flaky", idempotent=True)
def flaky(args, ctx):
    """Fails a random share of calls: injected failures for `bridgepool bench --rate`.

    With probability `fail_rate` (default 0.05) the call fails. Of the failures, a share
    `crash_share` (default 0.3) ends the process without replying, like `crash`
    (os._exit(`crash_code`), default 70); the others raise FlakyError, marked retryable. So the
    defaults give 1.5% crashes and 3.5% retryable exceptions. Otherwise returns its args, like
    echo. Draws come from a per-process generator seeded from os.urandom; with `seed` they come
    instead from random.Random(f"{seed}:{n}"), n being the requests this worker served before,
    so a worker's sequence of outcomes is reproducible.
    """
    fail_rate = float(args.get("fail_rate", 0.05))
    crash_share = float(args.get("crash_share", 0.3))
    seed = args.get("seed")
    rng = _flaky_rng if seed is None else random.Random(f"{seed}:{ctx.requests_served}")
    if rng.random() >= fail_rate:
        return args
    if rng.random() < crash_share:
        os._exit(int(args.get("crash_code", 70)))
    raise FlakyError(f"injected failure (fail_rate {fail_rate})")


@command("compute", idempotent=True)
def compute(args, ctx):
    n = int(args.get("n", 100_000))
    value = 0
    for i in range(n):
        value += i * i % 7
    return {"n": n, "value": value}


@command("whoami", idempotent=True)
def whoami(args, ctx):
    return {
        "pid": os.getpid(),
        "worker_id": ctx.worker_id,
        "requests_served": ctx.requests_served,
        "handlers_version": ctx.handlers_version,
    }


@command("spam")
def spam(args, ctx):
    """Floods stdout and stderr: the protocol on fds 3/4 must come through untouched."""
    lines = int(args.get("lines", 100))
    width = int(args.get("width", 80))
    for i in range(lines):
        print(f"stdout {i} ".ljust(width, "x"))
        print(f"stderr {i} ".ljust(width, "y"), file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    return {"printed": lines}


@command("stream")
def stream(args, ctx):
    count = int(args.get("count", 3))
    for i in range(count):
        yield {"i": i}
    return {"count": count}


# -- process-global configuration (one worker's copy; the pool broadcasts to reach all) --------

_config: dict = {}


@command("configure")
def configure(args, ctx):
    _config.update(args)
    return {"config": dict(_config)}


@command("get_config", idempotent=True)
def get_config(args, ctx):
    return {"config": dict(_config)}


# -- DSPy-like programs, kept in the session ---------------------------------------------------


def _programs(ctx) -> dict:
    if ctx.session_id is None:
        raise ValueError("programs need a session")
    return ctx.session.setdefault("programs", {})


def _parse_fields(text: str, side: str, signature: str) -> list[str]:
    fields = [f.strip() for f in text.split(",")]
    if not fields or any(not f.isidentifier() for f in fields):
        raise ValueError(f"bad {side} fields in signature {signature!r}: expected "
                         f"'in1, in2 -> out1, out2'")
    if len(set(fields)) != len(fields):
        raise ValueError(f"duplicate {side} field in signature {signature!r}")
    return fields


def parse_signature(signature: str) -> tuple[list[str], list[str]]:
    """"question, context -> answer" → (["question", "context"], ["answer"])."""
    if not isinstance(signature, str) or signature.count("->") != 1:
        raise ValueError(f"signature must look like 'in1, in2 -> out1', got {signature!r}")
    left, right = signature.split("->")
    return _parse_fields(left, "input", signature), _parse_fields(right, "output", signature)


def mock_language_model(inputs: dict, outputs: list[str]) -> dict:
    """Deterministic stand-in for a language model.

    Each output is "mock-<field>-" + the first 12 hex digits of the sha256 of the inputs as
    compact, key-sorted JSON, so equal inputs give equal outputs on every worker.
    """
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]
    return {field: f"mock-{field}-{digest}" for field in outputs}


@command("create_program")
def create_program(args, ctx):
    programs = _programs(ctx)
    inputs, outputs = parse_signature(args.get("signature"))
    program_id = args.get("program_id")
    if program_id is None:
        counter = ctx.session.get("program_counter", 0)
        while True:  # "prog-1", "prog-2", … per session, skipping ids chosen by callers
            counter += 1
            program_id = f"prog-{counter}"
            if program_id not in programs:
                break
        ctx.session["program_counter"] = counter
    elif not isinstance(program_id, str) or not program_id:
        raise ValueError(f"program_id must be a non-empty string, got {program_id!r}")
    programs[program_id] = {"signature": args["signature"], "inputs": inputs, "outputs": outputs}
    return {"program_id": program_id, "inputs": inputs, "outputs": outputs}


@command("execute_program")
def execute_program(args, ctx):
    programs = _programs(ctx)
    program_id = args.get("program_id")
    program = programs.get(program_id)
    if program is None:
        raise KeyError(f"program not found: {program_id}")
    given = args.get("inputs") or {}
    if not isinstance(given, dict):
        raise ValueError("inputs must be an object")
    missing = [field for field in program["inputs"] if field not in given]
    if missing:
        raise ValueError(f"missing input field(s) for {program_id}: {', '.join(missing)}")
    inputs = {field: given[field] for field in program["inputs"]}  # extra fields are ignored
    return {"program_id": program_id, "outputs": mock_language_model(inputs, program["outputs"])}


@command("list_programs", idempotent=True)
def list_programs(args, ctx):
    return {"programs": sorted(_programs(ctx))}


@command("delete_program")
def delete_program(args, ctx):
    return {"deleted": _programs(ctx).pop(args.get("program_id"), None) is not None}
