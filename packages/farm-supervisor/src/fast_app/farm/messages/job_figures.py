"""Figures about the jobs a farm ran, by function and by minute.

Workers tally each function's runs into their heartbeats (``FunctionRuns``, since the
previous heartbeat); supervisors keep them by minute and publish, in their snapshots,
each function's figures over the last minutes (``FunctionFigures``) and an hour of
per-minute totals (``MinuteTotals``). Runtimes travel as histogram buckets
(``fast_app.farm.histograms``) so that readers merge several workers and supervisors
exactly. Only functions whose code ran are tallied — their names passed a worker's
allow-list — so a forger cannot fill the tables with names of its own.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from fast_app.farm.histograms import BUCKETS
from fast_app.farm.messages._bounds import Count, Function, Moment, Name

__all__ = [
    "FUNCTION_FIGURES_LISTED",
    "FUNCTIONS_LISTED",
    "HISTORY_MINUTES",
    "OTHER_FUNCTIONS",
    "FunctionFigures",
    "FunctionRuns",
    "MinuteTotals",
    "RuntimeBuckets",
]

#: Functions one heartbeat or snapshot lists; the rest are summed as ``OTHER_FUNCTIONS``.
FUNCTIONS_LISTED = 64
#: Function figures one snapshot lists: the busiest, then one ``OTHER_FUNCTIONS`` a queue.
FUNCTION_FIGURES_LISTED = FUNCTIONS_LISTED + 64
#: The name the functions past ``FUNCTIONS_LISTED`` are summed under.
OTHER_FUNCTIONS = "<other>"
#: Minutes of totals a snapshot carries (the current one, partial, comes last).
HISTORY_MINUTES = 61

_Bucket = Annotated[int, Meta(ge=0, lt=BUCKETS)]
#: Non-empty runtime buckets, ``[index, count]``.
RuntimeBuckets = Annotated[list[tuple[_Bucket, Count]], Meta(max_length=BUCKETS)]


class FunctionRuns(msgspec.Struct, frozen=True):
    """Runs of one function a worker ended since its previous heartbeat.

    Attributes:
        function: its dotted path.
        succeeded: runs that returned.
        retried: runs that failed and were scheduled again.
        dead_lettered: runs that failed for good (their job is a dead letter).
        cancelled: runs an operator cancelled.
        hard_timeouts: runs stopped at their hard timeout (also counted as retried or
            dead-lettered).
        runtimes: how long the runs whose code ended took.
    """

    function: Function
    succeeded: Count = 0
    retried: Count = 0
    dead_lettered: Count = 0
    cancelled: Count = 0
    hard_timeouts: Count = 0
    runtimes: RuntimeBuckets = msgspec.field(default_factory=list)


class FunctionFigures(FunctionRuns, frozen=True, kw_only=True):
    """One function's runs on a supervisor's workers of one queue, from ``since`` to the
    snapshot's ``at``."""

    queue: Name
    since: Moment


class MinuteTotals(msgspec.Struct, frozen=True, array_like=True):
    """The runs a supervisor's workers ended in one minute (sent as an array).

    Attributes:
        at: the minute's start (Unix time, a multiple of 60).
        succeeded: runs that returned.
        retried: runs that failed and were scheduled again.
        dead_lettered: runs that failed for good.
        cancelled: runs an operator cancelled.
        hard_timeouts: runs stopped at their hard timeout.
    """

    at: Moment
    succeeded: Count = 0
    retried: Count = 0
    dead_lettered: Count = 0
    cancelled: Count = 0
    hard_timeouts: Count = 0
