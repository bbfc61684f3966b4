"""The one place where handler modules register commands and health checks.

Handler modules use the decorators re-exported by the package:

    from bridgepool_worker import command, health_check

    @command("echo", idempotent=True)
    def echo(args, ctx):
        return args

Registration happens while a handler module is imported, so a mistake here (a duplicate name,
a reserved built-in name, a non-callable) raises during import and the worker reports
`init_failed` instead of starting with an ambiguous command table. The runtime reads the
default registry once, after all handler modules are imported.
"""

from __future__ import annotations

from collections.abc import Callable  # already loaded at start-up; typing is not

# Built-in commands and whether each is idempotent (safe to retry on another worker).
# `shutdown` is not: running it twice is not the same as running it once.
BUILTIN_COMMANDS: dict[str, bool] = {
    "ping": True,
    "health_check": True,
    "get_stats": True,
    "list_commands": True,
    "close_session": True,
    "shutdown": False,
}


class RegistrationError(ValueError):
    """A handler module tried to register something invalid (raised at import time)."""


class CommandSpec:
    """One registered command: its handler, whether it is safe to retry, whether it takes a
    whole batch at once (`f(items, ctx)` -> one result per item: batch.py), who defined it."""

    __slots__ = ("name", "func", "idempotent", "batch", "origin")

    def __init__(self, name: str, func: Callable, idempotent: bool, origin: str,
                 batch: bool = False):
        self.name = name
        self.func = func
        self.idempotent = idempotent
        self.batch = batch
        self.origin = origin

    def __repr__(self) -> str:
        return (f"CommandSpec({self.name!r}, idempotent={self.idempotent}, batch={self.batch}, "
                f"origin={self.origin!r})")


def _is_generator_function(func: Callable) -> bool:
    # inspect.isgeneratorfunction, without importing inspect (~2 ms of every worker's start).
    return bool(getattr(getattr(func, "__code__", None), "co_flags", 0) & 0x20)  # CO_GENERATOR


def _origin(func: Callable) -> str:
    module = getattr(func, "__module__", None) or "?"
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    return f"{module}.{name}"


class Registry:
    """Commands and health checks registered by one set of handler modules.

    Not thread-safe; registration happens during import, before the request loop starts.
    """

    def __init__(self) -> None:
        self.commands: dict[str, CommandSpec] = {}
        self.health_checks: list[Callable[[], object]] = []

    def add_command(self, name: str, func: Callable, idempotent: bool = False,
                    batch: bool = False) -> CommandSpec:
        """Registers `func(args, ctx)` (with `batch`: `func(list_of_args, ctx)` returning a list
        of as many results) as `name`; returns its spec or raises RegistrationError."""
        if not isinstance(name, str) or not name:
            raise RegistrationError(f"command name must be a non-empty string, got {name!r}")
        if not callable(func):
            raise RegistrationError(f"handler for command {name!r} is not callable: {func!r}")
        if not isinstance(idempotent, bool):
            raise RegistrationError(
                f"idempotent for command {name!r} must be True or False, got {idempotent!r}"
            )
        if not isinstance(batch, bool):
            raise RegistrationError(
                f"batch for command {name!r} must be True or False, got {batch!r}")
        if batch and _is_generator_function(func):
            raise RegistrationError(
                f"command {name!r} (from {_origin(func)}) cannot both take batches and stream "
                f"(a batch handler returns its list of results)")
        if name in BUILTIN_COMMANDS:
            raise RegistrationError(
                f"command {name!r} (from {_origin(func)}) is a reserved built-in command"
            )
        existing = self.commands.get(name)
        if existing is not None:
            raise RegistrationError(
                f"command {name!r} registered twice: by {existing.origin} and by {_origin(func)}"
            )
        spec = CommandSpec(name, func, idempotent, _origin(func), batch)
        self.commands[name] = spec
        return spec

    def command(self, name: str | Callable | None = None, idempotent: bool = False,
                batch: bool = False):
        """Decorator registering `f(args, ctx)`; `@command`, `@command()` use the function name.
        `batch=True`: `f(items, ctx)` takes a list of args and returns a list of results."""
        if callable(name):  # used bare: @command
            func = name
            self.add_command(func.__name__, func, idempotent)
            return func

        def decorate(func: Callable) -> Callable:
            self.add_command(name if name is not None else func.__name__, func, idempotent,
                             batch)
            return func

        return decorate

    def health_check(self, func: Callable[[], object]) -> Callable[[], object]:
        """Decorator registering a zero-argument check returning bool or (bool, detail)."""
        if not callable(func):
            raise RegistrationError(f"health check is not callable: {func!r}")
        self.health_checks.append(func)
        return func


_default = Registry()


def default_registry() -> Registry:
    """Returns the registry that the package-level decorators fill."""
    return _default


def command(name: str | Callable | None = None, idempotent: bool = False, batch: bool = False):
    """Registers a command handler `f(args, ctx)` in the default registry (see module doc);
    with `batch=True`, `f(items, ctx)` answers a list of args with a list of results."""
    return _default.command(name, idempotent, batch)


def health_check(func: Callable[[], object]) -> Callable[[], object]:
    """Registers a health check in the default registry; see the `health_check` command."""
    return _default.health_check(func)
