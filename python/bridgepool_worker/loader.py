"""Imports the handler modules named by `--handlers`, each file at most once.

A handler module registers its commands when it is imported, so importing one file twice
registers every command twice and the worker fails to start with "registered twice". The same
file can arrive twice in ordinary ways: listed twice, listed under two paths (relative and
absolute, a symlink, a hard link), listed both as a path and as a dotted module name, or listed
after a sibling handler module already imported it by name. `HandlerLoader` recognises a file by
its device and inode (what the paths resolve to), so all of these load it once. Two *different*
files registering the same command name still fail, as they must.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys


def _file_key(path: str | None) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file `path` resolves to (symlinks followed), or None."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino)


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec


def _module_name_for(path: str) -> str:
    """The sys.modules name for a handler file: its stem if that is free (so siblings that
    import it by name get this same module), else a private name (e.g. a file named json.py)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    name = stem if stem.isidentifier() else "handlers"
    suffix = 1
    while name in sys.modules:
        suffix += 1
        name = f"_bridgepool_handlers_{stem if stem.isidentifier() else 'module'}_{suffix}"
    return name


def _exec_file(path: str):
    """Imports the file at `path` (absolute) as a new module and returns it."""
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)  # the file can import its siblings
    name = _module_name_for(path)
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot build an import spec for {path}", path=path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


class HandlerLoader:
    """Loads handler modules in order and remembers which files it has seen.

    `load(spec)` returns the module, or None when `spec` names a file that is already loaded
    (the caller then has nothing new). Not thread-safe; used once, at start-up.
    """

    def __init__(self) -> None:
        self._files: dict[tuple[int, int], object] = {}  # file key -> module
        self._module_ids: set[int] = set()
        self.modules: list = []  # distinct modules, in load order

    def load(self, spec: str):
        module = self._load_path(spec) if _is_path(spec) else self._load_dotted(spec)
        if module is None or id(module) in self._module_ids:
            return None
        self._module_ids.add(id(module))
        self.modules.append(module)
        key = _file_key(getattr(module, "__file__", None))
        if key is not None:
            self._files[key] = module
        return module

    def _load_path(self, spec: str):
        path = os.path.abspath(spec)
        if not os.path.isfile(path):
            raise FileNotFoundError(2, "handlers file not found", path)
        key = _file_key(path)
        if key in self._files:
            return None
        # A sibling handler module may already have imported this file by its stem.
        stem = os.path.splitext(os.path.basename(path))[0]
        existing = sys.modules.get(stem)
        if existing is not None and _file_key(getattr(existing, "__file__", None)) == key:
            return existing
        return _exec_file(path)

    def _load_dotted(self, name: str):
        if name not in sys.modules:
            # find_spec imports the parent packages but not the module: compare its file with
            # the files already loaded before executing it under a second name.
            found = importlib.util.find_spec(name)
            key = _file_key(found.origin) if found is not None and found.has_location else None
            if key is not None and key in self._files:
                return None
        return importlib.import_module(name)


def load_handler_module(spec: str):
    """Imports one handler module (a .py path or a dotted name) and returns it.

    Kept for callers that load a single module; `HandlerLoader` is what the runtime uses.
    """
    if not _is_path(spec):
        return importlib.import_module(spec)
    path = os.path.abspath(spec)
    if not os.path.isfile(path):
        raise FileNotFoundError(2, "handlers file not found", path)
    return _exec_file(path)
