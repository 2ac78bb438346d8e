"""Which queues a supervisor serves, and each queue's pool limits (``FARM_QUEUES``).

``emails=1..4,reports=0..8,bulk``: a pool of 1 to 4 workers for ``emails``, 0 to 8 for
``reports``, and ``FARM_MIN_WORKERS..FARM_MAX_WORKERS`` for ``bulk``; the supervisor's
``FARM_MAX_WORKERS`` caps the sum. Unset: the one queue ``QUEUE_NAME``, with
``FARM_MIN_WORKERS..FARM_MAX_WORKERS``, as before named queues existed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fast_app.core.queue.queues import check_queue_name

__all__ = ["QueuePool", "parse_queue_pools"]

_LIMITS = re.compile(r"(\d{1,4})\.\.(\d{1,4})\Z")


@dataclass(frozen=True, slots=True)
class QueuePool:
    """One queue a supervisor serves, with its pool's limits.

    Attributes:
        queue: the jobs queue.
        min_workers: fewest workers for it (``None``: ``FARM_MIN_WORKERS``).
        max_workers: most workers for it (``None``: ``FARM_MAX_WORKERS``).
    """

    queue: str
    min_workers: int | None = None
    max_workers: int | None = None

    def __str__(self) -> str:
        if self.min_workers is None or self.max_workers is None:
            return self.queue
        return f"{self.queue}={self.min_workers}..{self.max_workers}"


def parse_queue_pools(text: str) -> tuple[QueuePool, ...]:
    """The pools of ``name=min..max,name`` (spaces ignored; empty: none).

    Raises:
        ValueError: naming the entry that is not ``name`` or ``name=min..max``, a queue
            name out of rule, a minimum above its maximum, a maximum of 0, or a queue
            given twice.
    """
    pools: dict[str, QueuePool] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        name, equals, limits = (piece.strip() for piece in entry.partition("="))
        try:
            check_queue_name(name)
        except ValueError as error:
            raise ValueError(f"queue {entry!r}: {error}") from None
        if name in pools:
            raise ValueError(f"queue {name!r} is listed twice")
        if not equals:
            pools[name] = QueuePool(name)
            continue
        found = _LIMITS.match(limits)
        if found is None:
            raise ValueError(f"queue {entry!r}: limits are min..max, e.g. {name}=1..4")
        low, high = int(found.group(1)), int(found.group(2))
        if high < 1 or low > high:
            raise ValueError(
                f"queue {entry!r}: the maximum must be at least 1 and not below the minimum"
            )
        pools[name] = QueuePool(name, low, high)
    return tuple(pools.values())
