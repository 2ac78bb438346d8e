"""The dashboards ``work --tui`` and ``top`` run, found through an entry-point group.

fast-app-farm-tui depends on this package, not the other way: it contributes its
dashboards under the ``fast_app.farm.dashboards`` group (``embedded`` for
``work --tui``, ``remote`` for ``top``), and the commands look them up by name.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path
from typing import Protocol, cast

from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.settings import FarmSettings

__all__ = [
    "GROUP",
    "EmbeddedDashboard",
    "RemoteDashboard",
    "dashboard_entry_point",
    "load_embedded",
    "load_remote",
]

#: The entry-point group dashboards are registered under.
GROUP = "fast_app.farm.dashboards"


class EmbeddedDashboard(Protocol):
    """``embedded``: runs the supervisor in this process under a dashboard (``work --tui``)."""

    def __call__(self, farm: FarmSettings, queue: QueueSettings, *, log_file: Path | None) -> int:
        """Run until quit; the exit code."""
        ...


class RemoteDashboard(Protocol):
    """``remote``: attaches to a running farm through its broker (``top``)."""

    def __call__(self, queue: QueueSettings) -> int:
        """Run until quit; the exit code."""
        ...


def dashboard_entry_point(name: str, command: str) -> importlib.metadata.EntryPoint | None:
    """The dashboard registered as ``name``; ``None`` after saying how to install one."""
    # Found, not loaded: loading imports Textual, which only the dashboard needs.
    for entry_point in importlib.metadata.entry_points(group=GROUP, name=name):
        return entry_point
    print(
        f"fast-app {command} needs the dashboard: pip install fast-app-farm-tui "
        "(in this repository: uv sync --all-packages)",
        file=sys.stderr,
    )
    return None


def load_embedded(entry_point: importlib.metadata.EntryPoint) -> EmbeddedDashboard:
    """The ``embedded`` dashboard's entry function."""
    return cast(EmbeddedDashboard, entry_point.load())


def load_remote(entry_point: importlib.metadata.EntryPoint) -> RemoteDashboard:
    """The ``remote`` dashboard's entry function."""
    return cast(RemoteDashboard, entry_point.load())
