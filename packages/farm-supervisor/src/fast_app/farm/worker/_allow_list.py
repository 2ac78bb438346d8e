"""Which functions a message may make a worker run.

A job names its function by dotted path, and anyone who can publish to the queue can
write any path. So a worker runs only functions of modules it was told to trust: the
prefixes of ``FARM_ALLOWED_MODULES`` or, by default, the modules of ``FARM_IMPORTS`` and
modules loaded from the worker's current directory (your project). The standard library
and ``builtins`` are refused always: no message can make a worker call ``os.system``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import sysconfig
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fast_app.farm.errors import JobImportError

__all__ = ["AllowList"]

_INSTALLED_PATHS = tuple(
    Path(path).resolve()
    for name in ("stdlib", "platstdlib", "purelib", "platlib")
    if (path := sysconfig.get_paths().get(name))
)


def _within(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


@dataclass
class AllowList:
    """Decides and imports the functions that jobs may call.

    Attributes:
        prefixes: module prefixes allowed explicitly (``app`` allows ``app.jobs``); when
            set, nothing else is allowed.
        imported: modules the worker imported at start, allowed when ``prefixes`` is empty.
        app_roots: directories whose modules are allowed when ``prefixes`` is empty.
    """

    prefixes: tuple[str, ...]
    imported: tuple[str, ...]
    app_roots: tuple[Path, ...]
    _resolved: dict[str, Callable[..., Any]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def refusal(self, module_name: str) -> str | None:
        """Why functions of ``module_name`` may not run, or ``None`` when they may."""
        top = module_name.partition(".")[0]
        if top == "builtins" or top in sys.stdlib_module_names:
            return f"{module_name} is in the standard library, which jobs may never call"
        if self.prefixes:
            if any(module_name == p or module_name.startswith(p + ".") for p in self.prefixes):
                return None
            return f"{module_name} is not in FARM_ALLOWED_MODULES ({', '.join(self.prefixes)})"
        if any(module_name == m or module_name.startswith(m + ".") for m in self.imported):
            return None
        origin = self._origin(top)
        if origin is None:
            return f"{module_name} cannot be found"
        if _within(origin, self.app_roots) and not _within(origin, _INSTALLED_PATHS):
            return None
        return (
            f"{module_name} is not part of the application (loaded from {origin}); "
            "list it in FARM_ALLOWED_MODULES to allow it"
        )

    @staticmethod
    def _origin(top: str) -> Path | None:
        module = sys.modules.get(top)
        if module is not None:
            location = getattr(module, "__file__", None)
            paths = list(getattr(module, "__path__", []))
        else:
            try:
                spec = importlib.util.find_spec(top)
            except (ImportError, ValueError):
                return None
            if spec is None:
                return None
            location = spec.origin
            paths = list(spec.submodule_search_locations or [])
        if location and location not in ("built-in", "frozen"):
            return Path(location).resolve()
        if paths:  # a namespace package: judge it by its first portion
            return Path(paths[0]).resolve()
        return None

    def resolve(self, path: str) -> Callable[..., Any]:
        """Import the function at dotted ``path`` if it is allowed (cached).

        Raises:
            JobImportError: it is not allowed, cannot be imported, or is not the function
                that ``queue()`` would name by this path.
        """
        function = self._resolved.get(path)
        if function is not None:
            return function
        module_name, _, name = path.rpartition(".")
        if not module_name or not name:
            raise JobImportError(f"{path!r} is not a dotted path to a function")
        problem = self.refusal(module_name)
        if problem is not None:
            raise JobImportError(f"not allowed: {problem}")
        try:
            module = importlib.import_module(module_name)
        except Exception as error:
            raise JobImportError(
                f"cannot import {module_name}: {type(error).__name__}: {error}"
            ) from None
        function = getattr(module, name, None)
        if function is None:
            raise JobImportError(f"{module_name} has no function {name!r}")
        # A re-exported function (``from os import system`` in an allowed module) has
        # another home: refuse it, so an allowed module cannot open the door to others.
        if (
            not inspect.isfunction(function)
            or function.__module__ != module_name
            or function.__qualname__ != name
        ):
            raise JobImportError(f"{path} is not a function defined in {module_name}")
        with self._lock:
            self._resolved[path] = function
        return function
