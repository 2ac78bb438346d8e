"""Enqueue and completion rates of the whole farm, and their recent history; a queue's
backlog history."""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import TypeVar

__all__ = ["RateHistory", "SecondSeries", "merged_rates"]

_NO_GAP_LIMIT = float("inf")


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

    def series(
        self, now: float, points: int, *, max_gap_s: float = _NO_GAP_LIMIT
    ) -> tuple[list[float | None], list[float | None]]:
        """The last ``points`` seconds up to ``now``: enqueue and completion rates.

        A second without a sample repeats the previous one for up to ``max_gap_s`` (no
        snapshot for a heartbeat is not no work); past that, and before the first
        sample, ``None``: unknown, never a rate made up over an outage.
        """
        enqueue: list[float | None] = []
        completion: list[float | None] = []
        for value in _carried(self._points, now, points, max_gap_s):
            enqueue.append(None if value is None else value[0])
            completion.append(None if value is None else value[1])
        return enqueue, completion

    def current(
        self, now: float | None = None, *, max_gap_s: float = _NO_GAP_LIMIT
    ) -> tuple[float, float] | None:
        """The rates now: the mean of the latest points; ``None`` when the latest is more
        than ``max_gap_s`` before ``now`` (the rates are unknown, not what they were)."""
        if now is not None and self._points and now - next(reversed(self._points)) > max_gap_s + 1:
            return None
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

    def series(
        self, now: float, points: int, *, max_gap_s: float = _NO_GAP_LIMIT
    ) -> list[float | None]:
        """The last ``points`` seconds up to ``now``, oldest first.

        A second without a sample repeats the previous one for up to ``max_gap_s`` (no
        snapshot is not no backlog); past that, and before the first sample, ``None``.
        """
        return _carried(self._points, now, points, max_gap_s)


_T = TypeVar("_T")


def _carried(
    points: collections.OrderedDict[int, _T], now: float, count: int, max_gap_s: float
) -> list[_T | None]:
    """``count`` seconds up to ``now``: each second's point, else the previous one while
    it is at most ``max_gap_s`` old, else ``None``."""
    last = int(now)
    first = last - count + 1
    previous: tuple[int, _T] | None = None
    for second, value in points.items():
        if second < first:
            previous = (second, value)
    values: list[_T | None] = []
    for second in range(first, last + 1):
        if second in points:
            previous = (second, points[second])
        if previous is None or second - previous[0] > max_gap_s:
            values.append(None)
        else:
            values.append(previous[1])
    return values
