"""No import cycles inside any package of the workspace, and dependencies point one way.

The imports are read from the source files (``ast``), never executed, so the sibling
packages' ``src/`` trees are read as plain files from the repository: this test needs no
dependency beyond this package's own.

Every ``import x`` and ``from x import y`` in a module counts, wherever it is: at module
level, under ``if TYPE_CHECKING:``, and inside functions. Deferring an import hides a
cycle from Python at run time, not from the reader, and both kinds are easy to keep out
(the layout has none). Each is an edge to the module named: ``from x import y`` to
``x.y`` when that is a module, else to ``x``. Importing ``a.b.c`` also runs ``a.b``'s
``__init__``; that implicit edge is left out, since a package's ``__init__`` importing
its own submodules is the normal shape and Python resolves it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[3]

#: Each package's ``src/`` and the import prefix of its code.
PACKAGES = {
    "context": (REPOSITORY / "packages/context/src", "fast_app.core.context"),
    "queue-core": (REPOSITORY / "packages/queue-core/src", "fast_app.core.queue"),
    "farm-supervisor": (REPOSITORY / "packages/farm-supervisor/src", "fast_app.farm"),
    "farm-tui": (REPOSITORY / "packages/farm-tui/src", "fast_app.farm_tui"),
}

#: Higher packages a package must never import (dependencies point one way).
FORBIDDEN = {
    "context": ("fast_app.core.queue", "fast_app.farm", "fast_app.farm_tui"),
    "queue-core": ("fast_app.farm", "fast_app.farm_tui"),
    "farm-supervisor": ("fast_app.farm_tui",),
}


def modules_of(src: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under ``src``."""
    modules = {}
    for path in sorted(src.rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_names(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules ``name`` (at ``path``) imports, anywhere in its file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for statement in ast.walk(tree):
        if not isinstance(statement, ast.Import | ast.ImportFrom):
            continue
        if isinstance(statement, ast.Import):
            names.update(alias.name for alias in statement.names)
            continue
        base = statement.module or ""
        if statement.level:
            anchor = name.split(".")
            anchor = anchor[: len(anchor) - statement.level + (1 if is_package else 0)]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in statement.names:
            submodule = f"{base}.{alias.name}"
            names.add(submodule if submodule in modules else base)
    return names


def import_graph(src: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Edges between the package's own modules, and every module each one imports."""
    modules = modules_of(src)
    imports = {name: imported_names(name, path, modules) for name, path in modules.items()}
    internal = {
        name: {target for target in targets if target in modules}
        for name, targets in imports.items()
    }
    return internal, imports


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (or a module importing
    itself), each as a cycle through it: ``[a, b, a]``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph[node]:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_a_cycle(graph, set(group)) for group in groups]


def _a_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """One cycle through the first module of a strongly connected ``group``."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:  # breadth first: the shortest way back to the start
        following = []
        for node in frontier:
            for target in sorted(graph[node] & group):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover


def test_the_cycle_finder_names_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}

    assert find_cycles(graph) == [["a", "b", "c", "a"], ["e", "e"]]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_package_has_an_import_cycle(package: str) -> None:
    src, _ = PACKAGES[package]
    internal, _ = import_graph(src)

    cycles = find_cycles(internal)

    assert not cycles, f"{package}: import cycles:\n" + "\n".join(
        " -> ".join(cycle) for cycle in cycles
    )


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_a_package_above_it(package: str) -> None:
    src, _ = PACKAGES[package]
    _, imports = import_graph(src)

    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in imports.items()
        for target in targets
        if target.startswith(FORBIDDEN[package])
    )

    assert not wrong, f"{package} must not import {FORBIDDEN[package]}:\n" + "\n".join(wrong)


def test_the_packages_hold_the_modules_named_here() -> None:
    # A package moved or renamed must not make the tests above pass by reading nothing.
    for package, (src, prefix) in PACKAGES.items():
        assert prefix in modules_of(src), f"{package}: no {prefix} under {src}"
