"""Jobs a supervisor killed at their hard timeout, as told on the tombstones exchange."""

from __future__ import annotations

import json
import time
from collections import OrderedDict

__all__ = ["Tombstones", "tombstone_body"]

_KEEP_S = 3600.0
_MAX_ENTRIES = 10_000


def tombstone_body(job_id: str, function: str, reason: str, worker_id: str) -> bytes:
    """The message a supervisor publishes before it kills a worker for a job."""
    return json.dumps(
        {"job_id": job_id, "function": function, "reason": reason, "worker": worker_id}
    ).encode()


class Tombstones:
    """Remembers killed jobs for an hour, so their redelivery is settled, not run again."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[str, str, float]] = OrderedDict()

    def add_from_message(self, body: bytes) -> str | None:
        """Record the tombstone in ``body``; return its job id (``None`` if malformed)."""
        try:
            data = json.loads(body)
            job_id, reason, worker = str(data["job_id"]), str(data["reason"]), str(data["worker"])
        except (ValueError, KeyError, TypeError):
            return None
        self._entries[job_id] = (reason, worker, time.monotonic() + _KEEP_S)
        while len(self._entries) > _MAX_ENTRIES:
            self._entries.popitem(last=False)
        return job_id

    def pop(self, job_id: str) -> tuple[str, str] | None:
        """The (reason, killed worker) of ``job_id`` if it was killed, forgetting it."""
        entry = self._entries.pop(job_id, None)
        if entry is None or entry[2] < time.monotonic():
            return None
        return entry[0], entry[1]
