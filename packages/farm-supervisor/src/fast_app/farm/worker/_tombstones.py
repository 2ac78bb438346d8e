"""Jobs a supervisor killed at their hard timeout, as told on the tombstones exchange."""

from __future__ import annotations

import json
import time
from collections import OrderedDict

__all__ = ["Tombstones", "parse_tombstone", "tombstone_body"]

_KEEP_S = 3600.0
_MAX_ENTRIES = 10_000


def tombstone_body(job_id: str, function: str, reason: str, worker_id: str) -> bytes:
    """The message a supervisor publishes before it kills a worker for a job."""
    return json.dumps(
        {"job_id": job_id, "function": function, "reason": reason, "worker": worker_id}
    ).encode()


def parse_tombstone(body: bytes) -> dict[str, str] | None:
    """The fields of a tombstone message, or ``None`` when it is malformed."""
    try:
        data = json.loads(body)
        return {key: str(data[key]) for key in ("job_id", "function", "reason", "worker")}
    except (ValueError, KeyError, TypeError):
        return None


class Tombstones:
    """Remembers killed jobs for an hour, so their redelivery is settled, not run again."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[str, str, float]] = OrderedDict()

    def add(self, job_id: str, reason: str, worker_id: str) -> None:
        """Record that ``worker_id`` was killed for ``job_id``."""
        self._entries[job_id] = (reason, worker_id, time.monotonic() + _KEEP_S)
        while len(self._entries) > _MAX_ENTRIES:
            self._entries.popitem(last=False)

    def add_from_message(self, body: bytes) -> str | None:
        """Record the tombstone in ``body``; return its job id (``None`` if malformed)."""
        data = parse_tombstone(body)
        if data is None:
            return None
        self.add(data["job_id"], data["reason"], data["worker"])
        return data["job_id"]

    def pop(self, job_id: str) -> tuple[str, str] | None:
        """The (reason, killed worker) of ``job_id`` if it was killed, forgetting it."""
        entry = self._entries.pop(job_id, None)
        if entry is None or entry[2] < time.monotonic():
            return None
        return entry[0], entry[1]
