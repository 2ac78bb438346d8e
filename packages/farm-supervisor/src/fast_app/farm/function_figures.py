"""The farm's figures by function and by minute, merged from supervisors' snapshots:
what ``fast-app status`` and the dashboards show.

Counts and runtime buckets add up exactly across supervisors. Each supervisor's
function figures cover its own window (the last minutes, or since it started), so
rates are summed from each one's own rate, never from counts over unlike windows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fast_app.farm.messages.job_figures import FunctionFigures, MinuteTotals
from fast_app.farm.run_tallies import RunTally

__all__ = ["FunctionRow", "function_rows", "merged_history"]

# A window shorter than this gives no rate: one run in a tenth of a second is not 600/min.
_SHORTEST_WINDOW_S = 5.0


@dataclass(slots=True)
class FunctionRow:
    """One function of one queue, over the farm.

    Attributes:
        function: its dotted path (``<other>`` for the functions past a listing's cap).
        queue: the queue it ran from.
        tally: its runs, added over the supervisors.
        runs_per_minute: runs ended per minute (``None``: no window long enough yet).
        window_s: the longest window of the supervisors that reported it.
        supervisors: how many reported it.
    """

    function: str
    queue: str
    tally: RunTally = field(default_factory=RunTally)
    runs_per_minute: float | None = None
    window_s: float = 0.0
    supervisors: int = 0

    @property
    def failure_ratio(self) -> float | None:
        """Failed runs (retried or dead-lettered) over runs; ``None`` without runs."""
        runs = self.tally.runs
        return None if runs == 0 else self.tally.failed / runs

    @property
    def p50_s(self) -> float | None:
        """Median runtime of the runs whose code ended (to within a bucket, ~10 %)."""
        return self.tally.runtimes.quantile(0.5)

    @property
    def p95_s(self) -> float | None:
        """95th percentile runtime (to within a bucket, ~10 %)."""
        return self.tally.runtimes.quantile(0.95)


def function_rows(
    reports: Iterable[tuple[float, Sequence[FunctionFigures]]],
) -> list[FunctionRow]:
    """Each function's figures over the farm, busiest first.

    Args:
        reports: each supervisor's snapshot time (``at``) and function figures.
    """
    rows: dict[tuple[str, str], FunctionRow] = {}
    for at, functions in reports:
        for figures in functions:
            key = (figures.queue, figures.function)
            row = rows.get(key)
            if row is None:
                row = rows[key] = FunctionRow(figures.function, figures.queue)
            row.tally.merge(figures)
            row.supervisors += 1
            window_s = at - figures.since
            row.window_s = max(row.window_s, window_s)
            if window_s >= _SHORTEST_WINDOW_S:
                ended = figures.succeeded + figures.retried + figures.dead_lettered
                rate = 60.0 * (ended + figures.cancelled) / window_s
                row.runs_per_minute = (row.runs_per_minute or 0.0) + rate
    return sorted(
        rows.values(),
        key=lambda row: (row.tally.runs + row.tally.hard_timeouts, row.function),
        reverse=True,
    )


def merged_history(histories: Iterable[Sequence[MinuteTotals]]) -> list[MinuteTotals]:
    """The per-minute totals of every supervisor (each one's ``history``), added minute
    by minute, oldest first.

    A minute appears when at least one supervisor ran through it; one no supervisor
    reports is missing, not zero.
    """
    minutes: dict[float, RunTally] = {}
    for history in histories:
        for minute in history:
            tally = minutes.get(minute.at)
            if tally is None:
                tally = minutes[minute.at] = RunTally()
            tally.add_counts(minute)
    return [tally.as_minute(at) for at, tally in sorted(minutes.items())]
