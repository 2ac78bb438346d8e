"""What a supervisor's workers ran, kept by minute: each function's figures over the
last minutes and an hour of per-minute totals, for its snapshots.

Kept in the supervisor, so a dashboard that starts (or restarts) sees the last hour at
once; a supervisor that restarts starts a new history (its snapshots say since when).
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field

from fast_app.farm.messages.job_figures import (
    FUNCTIONS_LISTED,
    HISTORY_MINUTES,
    OTHER_FUNCTIONS,
    FunctionFigures,
    MinuteTotals,
)
from fast_app.farm.run_tallies import RunTally
from fast_app.farm.supervisor._workers import WorkerProcess

__all__ = ["FUNCTION_WINDOW_MINUTES", "JobFigures"]

#: The minutes each function's figures cover (the current one, partial, included).
FUNCTION_WINDOW_MINUTES = 5
_NOTHING = RunTally()  # a minute without runs (only read)
# Functions kept a minute, over all queues; past it, runs count as ``OTHER_FUNCTIONS``
# (the names passed the workers' allow-lists, so only a huge application reaches it).
_FUNCTIONS_KEPT = 1024


@dataclass(slots=True)
class _Minute:
    at: float
    totals: RunTally = field(default_factory=RunTally)
    functions: dict[tuple[str, str], RunTally] = field(default_factory=dict)


class JobFigures:
    """The runs a supervisor's workers reported, by minute.

    Args:
        default_queue: the queue of workers that name none.
        started_at: Unix time the supervisor started (no figures before it).
    """

    def __init__(self, default_queue: str, started_at: float) -> None:
        self._default_queue = default_queue
        self._started_at = started_at
        self._minutes: collections.deque[_Minute] = collections.deque(maxlen=HISTORY_MINUTES)

    def collect(self, worker: WorkerProcess, now: float) -> None:
        """Take the runs ``worker`` reported since the last call (Unix time ``now``)."""
        runs = worker.take_function_runs()
        if not runs:
            return
        minute = self._minute(now)
        queue = worker.queue or self._default_queue
        for function, tally in runs.items():
            minute.totals.merge(tally)
            self._tally(minute, queue, function).merge(tally)

    def hard_timeout(self, queue: str | None, function: str, now: float) -> None:
        """A job of ``function`` that its supervisor killed at its hard timeout."""
        minute = self._minute(now)
        minute.totals.hard_timeouts += 1
        self._tally(minute, queue or self._default_queue, function).hard_timeouts += 1

    def functions(self, now: float) -> list[FunctionFigures]:
        """Each function's runs over the last ``FUNCTION_WINDOW_MINUTES`` minutes, busiest
        first: the ``FUNCTIONS_LISTED`` busiest, then the rest of each queue summed as
        ``OTHER_FUNCTIONS``."""
        window_start = _minute_start(now) - 60 * (FUNCTION_WINDOW_MINUTES - 1)
        since = max(window_start, self._started_at)
        summed: dict[tuple[str, str], RunTally] = {}
        for minute in self._minutes:
            if minute.at < window_start:
                continue
            for key, tally in minute.functions.items():
                total = summed.get(key)
                if total is None:
                    total = summed[key] = RunTally()
                total.merge(tally)
        busiest = sorted(summed.items(), key=lambda item: _activity(item[1]), reverse=True)
        listed = [
            tally.as_figures(function, queue, since)
            for (queue, function), tally in busiest[:FUNCTIONS_LISTED]
        ]
        others: dict[str, RunTally] = {}
        for (queue, _), tally in busiest[FUNCTIONS_LISTED:]:
            others.setdefault(queue, RunTally()).merge(tally)
        listed += [tally.as_figures(OTHER_FUNCTIONS, q, since) for q, tally in others.items()]
        return listed

    def history(self, now: float) -> list[MinuteTotals]:
        """The totals of each minute since the supervisor started, at most the last
        ``HISTORY_MINUTES`` (the current one, partial, last); minutes without runs are
        zeros, so a gap means no supervisor, never no data."""
        current = _minute_start(now)
        first = max(_minute_start(self._started_at), current - 60 * (HISTORY_MINUTES - 1))
        kept = {minute.at: minute.totals for minute in self._minutes}
        return [
            kept.get(float(at), _NOTHING).as_minute(float(at))
            for at in range(int(first), int(current) + 1, 60)
        ]

    def _minute(self, now: float) -> _Minute:
        at = _minute_start(now)
        minutes = self._minutes
        if not minutes or minutes[-1].at < at:
            minutes.append(_Minute(at))
        # A clock that went back counts into the latest minute.
        return minutes[-1]

    @staticmethod
    def _tally(minute: _Minute, queue: str, function: str) -> RunTally:
        key = (queue, function)
        tally = minute.functions.get(key)
        if tally is None:
            if len(minute.functions) >= _FUNCTIONS_KEPT:
                key = (queue, OTHER_FUNCTIONS)
                tally = minute.functions.get(key)
            if tally is None:
                tally = minute.functions[key] = RunTally()
        return tally


def _minute_start(moment: float) -> float:
    return float(math.floor(moment / 60) * 60)


def _activity(tally: RunTally) -> int:
    return tally.runs + tally.hard_timeouts
