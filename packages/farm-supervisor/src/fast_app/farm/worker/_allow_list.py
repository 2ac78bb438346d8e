"""Which functions a message may make a worker run.

A job names its function by dotted path, and anyone who can publish to the queue can
write any path. So a worker runs only functions of modules it was told to trust:

- With ``FARM_ALLOWED_MODULES`` set, the modules under its prefixes, and nothing else.
- By default, the modules of ``FARM_IMPORTS`` (and their submodules), plus the modules
  of the worker's current directory (your project) that belong to no installed
  distribution. Installed packages, editable installs included, are not your project:
  started from a checkout of a library, a worker must not offer that library's
  functions to whoever can publish.

Whatever the settings say, some modules are never allowed: the standard library and
``builtins`` (no message can make a worker call ``os.system``), ``fast_app`` itself (the
framework's CLI, hooks and test kit would let a message purge queues or kill
processes), and private names (a module path component or function name starting with
``_``), which no one meant as a job.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import inspect
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from fast_app.farm.errors import JobImportError

__all__ = ["AllowList"]

_FRAMEWORK = "fast_app"
_NEVER = "never: the standard library, fast_app, private names"
_INSTALLED_PATHS = tuple(
    Path(path).resolve()
    for name in ("stdlib", "platstdlib", "purelib", "platlib")
    if (path := sysconfig.get_paths().get(name))
)


def _within(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _matches(module_name: str, prefixes: Sequence[str]) -> bool:
    return any(module_name == p or module_name.startswith(p + ".") for p in prefixes)


@dataclass(frozen=True)
class _Distributions:
    """What the installed distributions claim, to tell them from the application.

    Attributes:
        by_top_level: top-level import names, each with the distributions providing it.
        source_roots: directories that editable installs put on ``sys.path`` (the paths
            in their ``.pth`` files), each with its distribution; every module below
            one belongs to that distribution.
    """

    by_top_level: Mapping[str, list[str]]
    source_roots: tuple[tuple[Path, str], ...]

    def owner(self, top: str, location: Path) -> str | None:
        """The distribution that a module (top-level name, file) belongs to, if any."""
        names = self.by_top_level.get(top)
        if names:
            return ", ".join(sorted(set(names)))
        for root, name in self.source_roots:
            if _within(location, (root,)):
                return f"{name} (editable install from {root})"
        return None


def _scan_distributions() -> _Distributions:
    # ``packages_distributions()`` knows wheels' files, but an editable install lists
    # only a ``.pth`` file naming its source directory: read those paths too.
    roots: list[tuple[Path, str]] = []
    for distribution in importlib.metadata.distributions():
        for file in distribution.files or ():
            if file.suffix != ".pth":
                continue
            pth = Path(str(distribution.locate_file(file)))
            try:
                lines = pth.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                continue
            for line in lines:
                entry = line.strip()
                # ``import`` lines run code at start-up (setuptools' editable finders);
                # their packages are found by the top-level names instead.
                if entry and not entry.startswith(("#", "import ", "import\t")):
                    roots.append(((pth.parent / entry).resolve(), distribution.name))
    return _Distributions(importlib.metadata.packages_distributions(), tuple(roots))


_distributions: _Distributions | None = None
_distributions_lock = threading.Lock()


def _installed_distributions() -> _Distributions:
    """The installed distributions, scanned once per process (it reads every RECORD)."""
    global _distributions
    with _distributions_lock:
        if _distributions is None:
            _distributions = _scan_distributions()
        return _distributions


def _location(spec: importlib.machinery.ModuleSpec) -> Path | None:
    """The file a module loads from, or a namespace package's first directory."""
    if spec.origin and spec.origin not in ("built-in", "frozen"):
        return Path(spec.origin).resolve()
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    return None


def _find(module_name: str) -> tuple[Path, Path] | None:
    """Where a module's top-level package and the module itself load from.

    Found without importing anything: a refused module must not run even its parent
    packages' ``__init__``. ``None`` when the module cannot be found.
    """
    parts = module_name.split(".")
    search: list[str] | None = None
    locations: list[Path] = []
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        module = sys.modules.get(name)
        spec = getattr(module, "__spec__", None)
        try:
            if spec is None and depth == 1:
                spec = importlib.util.find_spec(name)
            elif spec is None:
                # By its last part only: given a dotted name, a namespace package found
                # here looks for its parent in ``sys.modules``, which was never imported.
                spec = importlib.machinery.PathFinder.find_spec(parts[depth - 1], search)
        except (ImportError, ValueError):
            return None
        if spec is None or (location := _location(spec)) is None:
            return None
        locations.append(location)
        # An imported package's ``__path__`` may have been extended: it is what
        # ``import`` will search.
        paths = getattr(module, "__path__", None) or spec.submodule_search_locations
        search = list(paths) if paths else None
        if search is None and depth < len(parts):
            return None  # a plain module has no submodules
    return locations[0], locations[-1]


def _framework_directories() -> list[Path]:
    """Every directory of the ``fast_app`` namespace package, in every distribution."""
    module = sys.modules.get(_FRAMEWORK)
    if module is not None:
        paths: Iterable[str] = getattr(module, "__path__", ())
    else:
        spec = importlib.util.find_spec(_FRAMEWORK)
        paths = (spec.submodule_search_locations or ()) if spec is not None else ()
    return [Path(path).resolve() for path in paths]


@dataclass
class AllowList:
    """Decides and imports the functions that jobs may call.

    Attributes:
        prefixes: module prefixes allowed explicitly (``app`` allows ``app.jobs``); when
            set, nothing else is allowed.
        imported: modules the worker imported at start; they and their submodules are
            allowed when ``prefixes`` is empty.
        app_roots: directories whose modules are allowed when ``prefixes`` is empty, unless
            they belong to an installed distribution.
    """

    prefixes: tuple[str, ...]
    imported: tuple[str, ...]
    app_roots: tuple[Path, ...]
    _resolved: dict[str, Callable[..., Any]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def describe(self) -> str:
        """One line saying what jobs may run, for the worker's start-up log."""
        if self.prefixes:
            return f"FARM_ALLOWED_MODULES: {', '.join(self.prefixes)}; {_NEVER}"
        allowed = []
        if self.imported:
            allowed.append(f"FARM_IMPORTS modules {', '.join(self.imported)} (and submodules)")
        if self.app_roots:
            roots = ", ".join(str(root) for root in self.app_roots)
            allowed.append(f"modules of {roots} not installed as packages")
        return f"{', '.join(allowed) or 'nothing'}; {_NEVER}"

    def refusal(self, module_name: str) -> str | None:
        """Why functions of ``module_name`` may not run, or ``None`` when they may."""
        parts = module_name.split(".")
        if not all(part.isidentifier() for part in parts):
            return f"{module_name!r} is not a module path"
        top = parts[0]
        if top == _FRAMEWORK:
            return f"{module_name} is part of fast_app, the framework, which jobs may never call"
        if any(part.startswith("_") for part in parts):
            return f"{module_name} is private (a name starting with '_'), which jobs may never call"
        if top == "builtins" or top in sys.stdlib_module_names:
            return f"{module_name} is in the standard library, which jobs may never call"
        if self.prefixes:
            if not _matches(module_name, self.prefixes):
                return f"{module_name} is not in FARM_ALLOWED_MODULES ({', '.join(self.prefixes)})"
            return self._framework_file(module_name, self._located_file(module_name))
        if _matches(module_name, self.imported):
            return self._framework_file(module_name, self._located_file(module_name))
        found = _find(module_name)
        if found is None:
            return f"{module_name} cannot be found"
        return self._outside_application(module_name, *found)

    @staticmethod
    def _located_file(module_name: str) -> Path | None:
        found = _find(module_name)
        return None if found is None else found[1]

    @staticmethod
    def _framework_file(module_name: str, location: Path | None) -> str | None:
        # A name outside ``fast_app`` can still reach the framework's files: through a
        # directory above them on ``sys.path``, or a package extending its ``__path__``.
        if location is not None and _within(location, _framework_directories()):
            return (
                f"{module_name} is a file of fast_app ({location}), the framework, "
                "which jobs may never call"
            )
        return None

    def _outside_application(
        self, module_name: str, top_location: Path, location: Path
    ) -> str | None:
        """Why a module is not the application's own by default, or ``None``."""
        framework = self._framework_file(module_name, location)
        if framework is not None:
            return framework
        hint = "list it in FARM_IMPORTS or FARM_ALLOWED_MODULES to allow it"
        owner = _installed_distributions().owner(module_name.partition(".")[0], location)
        if owner is not None:
            return (
                f"{module_name} is not part of the application: it belongs to the installed "
                f"distribution {owner}; {hint}"
            )
        for path in (top_location, location):
            if not _within(path, self.app_roots) or _within(path, _INSTALLED_PATHS):
                return f"{module_name} is not part of the application (loaded from {path}); {hint}"
        return None

    def _refusal_once_imported(self, module_name: str, module: ModuleType) -> str | None:
        """Judge the file an allowed module was really loaded from.

        ``_find`` foresees it without importing, but a package that changes its
        ``__path__`` when imported can load its submodules from elsewhere.
        """
        origin = getattr(module, "__file__", None)
        if not origin:
            return None
        location = Path(origin).resolve()
        if self.prefixes or _matches(module_name, self.imported):
            return self._framework_file(module_name, location)
        found = _find(module_name.partition(".")[0])
        top_location = location if found is None else found[0]
        return self._outside_application(module_name, top_location, location)

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
        if problem is None and name.startswith("_"):
            problem = f"{path} is private (a name starting with '_'), which jobs may never call"
        if problem is not None:
            raise JobImportError(f"not allowed: {problem}")
        try:
            module = importlib.import_module(module_name)
        except Exception as error:
            raise JobImportError(
                f"cannot import {module_name}: {type(error).__name__}: {error}"
            ) from None
        problem = self._refusal_once_imported(module_name, module)
        if problem is not None:
            raise JobImportError(f"not allowed: {problem}")
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
