"""Enqueue and completion rates of the whole farm, and their recent history; a queue's
backlog history."""

from __future__ import annotations

import collections
from collections.abc import Iterable

__all__ = ["RateHistory", "SecondSeries", "merged_rates"]


def merged_rates(estimates: Iterable[tuple[float, float]]) -> tuple[float, float]:
    """Jobs/s enqueued on a queue and completed, from each supervisor's ``(enqueue,
    completion)`` for it.

    Completions add up. Enqueues do not: each supervisor estimates them as the growth of
    the (shared) backlog plus its own completions, so the queue's is the backlog growth
    (the mean of the supervisors' views of it) plus every supervisor's completions. The
    farm's rates are the sums of its queues'.
    """
    completion = 0.0
    growths = []
    for enqueue, own in estimates:
        completion += own
        growths.append(enqueue - own)
    if not growths:
        return 0.0, 0.0
    return max(0.0, sum(growths) / len(growths) + completion), completion


class RateHistory:
    """Enqueue and completion rates over the last minutes, one point per second.

    Args:
        window_s: how far back it keeps points.
        smoothing: points averaged into the current rate (the supervisors' enqueue
            estimate is a difference of two depths, noisy from one second to the next).
    """

    def __init__(self, window_s: int = 300, smoothing: int = 5) -> None:
        self._window_s = window_s
        self._smoothing = smoothing
        # second -> (enqueue, completion); a later sample of the same second replaces it.
        self._points: collections.OrderedDict[int, tuple[float, float]] = collections.OrderedDict()

    def record(self, at: float, enqueue: float, completion: float) -> None:
        """Add the farm's rates at Unix time ``at``."""
        second = int(at)
        if self._points and second < next(reversed(self._points)):
            return  # out of order (a late snapshot): the history only moves forward
        self._points[second] = (enqueue, completion)
        while self._points and next(iter(self._points)) <= second - self._window_s:
            self._points.popitem(last=False)

    def series(self, now: float, points: int) -> tuple[list[float], list[float]]:
        """The last ``points`` seconds up to ``now``: enqueue and completion rates.

        A second without a sample repeats the previous one (no snapshot is not no work);
        before the first sample, 0.
        """
        last = int(now)
        first = last - points + 1
        enqueue: list[float] = []
        completion: list[float] = []
        previous = (0.0, 0.0)
        for second, value in self._points.items():
            if second < first:
                previous = value
        for second in range(first, last + 1):
            previous = self._points.get(second, previous)
            enqueue.append(previous[0])
            completion.append(previous[1])
        return enqueue, completion

    def current(self) -> tuple[float, float]:
        """The rates now: the mean of the latest points."""
        latest = list(self._points.values())[-self._smoothing :]
        if not latest:
            return 0.0, 0.0
        return (
            sum(point[0] for point in latest) / len(latest),
            sum(point[1] for point in latest) / len(latest),
        )


class SecondSeries:
    """One figure over the last minutes, one point per second; ``None``: unknown then.

    Args:
        window_s: how far back it keeps points.
    """

    def __init__(self, window_s: int = 300) -> None:
        self._window_s = window_s
        self._points: collections.OrderedDict[int, float | None] = collections.OrderedDict()

    def record(self, at: float, value: float | None) -> None:
        """Add the figure at Unix time ``at`` (a later one of the same second replaces it)."""
        second = int(at)
        if self._points and second < next(reversed(self._points)):
            return  # out of order (a late snapshot): the history only moves forward
        self._points[second] = value
        while self._points and next(iter(self._points)) <= second - self._window_s:
            self._points.popitem(last=False)

    def series(self, now: float, points: int) -> list[float | None]:
        """The last ``points`` seconds up to ``now``, oldest first.

        A second without a sample repeats the previous one (no snapshot is not no
        backlog); before the first sample, ``None``.
        """
        last = int(now)
        first = last - points + 1
        previous: float | None = None
        for second, value in self._points.items():
            if second < first:
                previous = value
        values = []
        for second in range(first, last + 1):
            previous = self._points.get(second, previous)
            values.append(previous)
        return values
