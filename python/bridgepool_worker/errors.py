"""Exceptions that handlers may raise to tell the pool something specific.

A handler exception becomes an `ok: false` reply whose `type` is the exception class name and
whose `retryable` is the exception's `retryable` attribute when that is a bool. Handlers may
raise any exception; these exist so common cases carry a stable type name.
"""


class InvalidArguments(ValueError):
    """The request's `args` do not fit the command (reported as type "InvalidArguments").

    Deterministic: retrying the same arguments cannot succeed.
    """

    retryable = False
