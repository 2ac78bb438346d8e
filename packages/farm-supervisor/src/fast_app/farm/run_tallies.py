"""How many runs of a function ended which way, and how long they took: the tally that
workers, supervisors and dashboards all add up (from ``FunctionRuns`` and
``FunctionFigures`` messages)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fast_app.farm.histograms import RuntimeHistogram
from fast_app.farm.messages.job_figures import FunctionFigures, FunctionRuns, MinuteTotals

__all__ = ["RunTally"]


@dataclass(slots=True)
class RunTally:
    """One function's runs: how many ended which way, and how long they took.

    ``hard_timeouts`` are also counted in ``retried`` or ``dead_lettered`` (how their
    job went on), so they are not part of ``runs``.
    """

    succeeded: int = 0
    retried: int = 0
    dead_lettered: int = 0
    cancelled: int = 0
    hard_timeouts: int = 0
    runtimes: RuntimeHistogram = field(default_factory=RuntimeHistogram)

    @property
    def runs(self) -> int:
        """Runs that ended, however."""
        return self.succeeded + self.retried + self.dead_lettered + self.cancelled

    @property
    def failed(self) -> int:
        """Runs that failed (retried or dead-lettered)."""
        return self.retried + self.dead_lettered

    def add_counts(self, other: RunTally | FunctionRuns | MinuteTotals) -> None:
        """Add ``other``'s counts (not its runtimes)."""
        self.succeeded += other.succeeded
        self.retried += other.retried
        self.dead_lettered += other.dead_lettered
        self.cancelled += other.cancelled
        self.hard_timeouts += other.hard_timeouts

    def merge(self, other: RunTally | FunctionRuns) -> None:
        """Add ``other``'s counts and runtimes."""
        self.add_counts(other)
        self.runtimes.merge(other.runtimes)

    def as_runs(self, function: str) -> FunctionRuns:
        """The tally as a heartbeat carries it."""
        return FunctionRuns(function=function, **self._counts(), runtimes=self.runtimes.pairs())

    def as_figures(self, function: str, queue: str, since: float) -> FunctionFigures:
        """The tally as a snapshot lists it, for ``function`` of ``queue`` since ``since``."""
        return FunctionFigures(
            function=function,
            queue=queue,
            since=since,
            **self._counts(),
            runtimes=self.runtimes.pairs(),
        )

    def as_minute(self, at: float) -> MinuteTotals:
        """The counts as the minute starting at ``at`` (runtimes are not kept by minute)."""
        return MinuteTotals(at=at, **self._counts())

    def _counts(self) -> dict[str, int]:
        return {
            "succeeded": self.succeeded,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
            "cancelled": self.cancelled,
            "hard_timeouts": self.hard_timeouts,
        }
