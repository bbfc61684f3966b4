"""Handlers for bench/binary_bench.py: the same numpy echo, with the array as an attachment and
as base64 text inside the JSON (what a caller does without attachments).

  echo_array {"a": array}        returns {"a": the array} (numpy.ndarray both ways)
  echo_base64_array {"a": text}  decodes base64 float64 bytes into a numpy array and returns
                                 {"a": base64 of the array's bytes}
"""

import base64

import numpy

from bridgepool_worker import command


@command("echo_array", idempotent=True)
def echo_array(args, ctx):
    return {"a": args["a"]}


@command("echo_base64_array", idempotent=True)
def echo_base64_array(args, ctx):
    array = numpy.frombuffer(base64.b64decode(args["a"]), dtype="<f8")
    return {"a": base64.b64encode(array.tobytes()).decode("ascii")}
