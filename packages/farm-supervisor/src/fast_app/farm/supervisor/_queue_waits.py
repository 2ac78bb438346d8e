"""How long jobs waited in a queue before a worker started them, over the last minute."""

from __future__ import annotations

import collections
import statistics
from dataclasses import dataclass

__all__ = ["QueueWaitWindow", "WaitFigures"]

_KEPT = 20_000  # waits kept at most (a sample of each heartbeat's starts: enough)


@dataclass(frozen=True, slots=True)
class WaitFigures:
    """Queue waits of the jobs started within the window.

    Attributes:
        p50_s: their median (``None``: none started).
        max_s: the longest.
        counted: how many waits these come from.
    """

    p50_s: float | None
    max_s: float | None
    counted: int


class QueueWaitWindow:
    """The queue waits workers reported, kept for ``window_s``.

    Args:
        window_s: how long a wait counts.
    """

    def __init__(self, window_s: float = 60.0) -> None:
        self._window_s = window_s
        self._waits: collections.deque[tuple[float, float]] = collections.deque(maxlen=_KEPT)

    def add(self, now: float, waits: list[float]) -> None:
        """Waits reported at monotonic time ``now``."""
        self._waits.extend((now, wait) for wait in waits)

    def figures(self, now: float) -> WaitFigures:
        """The waits of the last ``window_s`` before ``now``."""
        waits = self._waits
        while waits and now - waits[0][0] > self._window_s:
            waits.popleft()
        if not waits:
            return WaitFigures(None, None, 0)
        values = [wait for _, wait in waits]
        return WaitFigures(statistics.median(values), max(values), len(values))
