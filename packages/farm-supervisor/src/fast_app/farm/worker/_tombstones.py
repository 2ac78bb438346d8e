"""Jobs a supervisor killed at their hard timeout, as told on the tombstones exchange.

The messages themselves are ``fast_app.farm.messages.Tombstone``; this keeps them.
"""

from __future__ import annotations

import time
from collections import OrderedDict

__all__ = ["Tombstones"]

_KEEP_S = 3600.0
_MAX_ENTRIES = 10_000


class Tombstones:
    """Remembers killed jobs for an hour, so their redelivery is settled, not run again."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[str, str, float]] = OrderedDict()

    def add(self, job_id: str, reason: str, worker_id: str) -> None:
        """Record that ``worker_id`` was killed for ``job_id``."""
        self._entries[job_id] = (reason, worker_id, time.monotonic() + _KEEP_S)
        while len(self._entries) > _MAX_ENTRIES:
            self._entries.popitem(last=False)

    def pop(self, job_id: str) -> tuple[str, str] | None:
        """The (reason, killed worker) of ``job_id`` if it was killed, forgetting it."""
        entry = self._entries.pop(job_id, None)
        if entry is None or entry[2] < time.monotonic():
            return None
        return entry[0], entry[1]
