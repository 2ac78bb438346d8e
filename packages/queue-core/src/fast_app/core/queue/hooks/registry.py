"""The hooks installed in this process, and the chain a job path calls.

The telemetry hook joins the chain only while an OpenTelemetry SDK is configured
(``fast_app.core.queue.telemetry.active``), so that a process without one, and without
hooks of its own, calls none at all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from .base import Hook
from .chain import HookChain

__all__ = ["HookSelection", "add_hook", "current_hooks", "installed_hooks", "remove_hook"]

_lock = threading.Lock()
_installed: tuple[Hook, ...] = ()
_generation = 0  # bumped at every change, so that selections rebuild their chains


def add_hook(hook: Hook) -> None:
    """Call ``hook`` along every job's life in this process, after the hooks added before.

    Adding the same hook twice does nothing.
    """
    global _installed, _generation
    with _lock:
        if hook not in _installed:
            _installed = (*_installed, hook)
            _generation += 1


def remove_hook(hook: Hook) -> None:
    """Stop calling ``hook`` (jobs already under way may still call it once)."""
    global _installed, _generation
    with _lock:
        if hook in _installed:
            _installed = tuple(other for other in _installed if other is not hook)
            _generation += 1


def installed_hooks() -> tuple[Hook, ...]:
    """The hooks added with ``add_hook``, in their order."""
    return _installed


class HookSelection:
    """The chain a job path calls: telemetry (while an SDK is configured), the installed
    hooks, then ``local`` ones (the worker's statistics).

    Args:
        local: hooks of this job path only, called after the installed ones.
    """

    def __init__(self, local: Sequence[Hook] = ()) -> None:
        self._local = tuple(local)
        self._generation = -1
        self._plain = HookChain(())
        self._traced = HookChain(())
        self._telemetry_active: Callable[[], bool] = bool

    def current(self) -> HookChain:
        """The chain to use for the next enqueue or delivery."""
        if self._generation != _generation:
            self._rebuild()
        return self._traced if self._telemetry_active() else self._plain

    def _rebuild(self) -> None:
        # Imported here, not at the top: the telemetry package defines its hook on this
        # package's base class, and importing either package first must work.
        from fast_app.core.queue.telemetry import TELEMETRY, active

        self._telemetry_active = active
        generation, installed = _generation, _installed
        self._plain = HookChain((*installed, *self._local))
        self._traced = HookChain((TELEMETRY, *installed, *self._local))
        self._generation = generation


_process_hooks = HookSelection()


def current_hooks() -> HookChain:
    """The chain ``queue()`` and the sync driver call for the next job."""
    # ``HookSelection.current`` inlined: this runs at every enqueue.
    hooks = _process_hooks
    if hooks._generation != _generation:
        hooks._rebuild()
    return hooks._traced if hooks._telemetry_active() else hooks._plain
