"""Drivers: where the jobs that ``queue()`` accepts go."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fast_app.core.queue.settings import QueueSettings

from .base import BulkSubmitter, QueueDriver, Submission
from .sync import SyncDriver

__all__ = [
    "BulkSubmitter",
    "QueueDriver",
    "Submission",
    "SyncDriver",
    "driver_for",
    "override_driver",
]

_current: tuple[QueueSettings, QueueDriver] | None = None
_override: QueueDriver | None = None
_lock = threading.Lock()


def _create(settings: QueueSettings) -> QueueDriver:
    if settings.driver == "sync":
        return SyncDriver(settings)
    if settings.driver == "async_farm":
        from fast_app.core.queue.drivers.async_farm import AsyncFarmDriver

        return AsyncFarmDriver(settings)
    raise AssertionError(f"QueueSettings let through an unknown driver {settings.driver!r}")


def driver_for(settings: QueueSettings) -> QueueDriver:
    """The driver that ``settings`` select, created once per settings object."""
    global _current
    if _override is not None:
        return _override
    current = _current
    if current is not None and current[0] is settings:
        return current[1]
    with _lock:
        if _current is None or _current[0] is not settings:
            _current = (settings, _create(settings))
        return _current[1]


@contextmanager
def override_driver(driver: QueueDriver) -> Iterator[QueueDriver]:
    """Send every job to ``driver`` inside a ``with`` block, whatever the settings say."""
    global _override
    previous = _override
    _override = driver
    try:
        yield driver
    finally:
        _override = previous
