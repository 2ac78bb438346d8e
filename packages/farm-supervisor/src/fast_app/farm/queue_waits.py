"""How long jobs waited in one queue, merged over the supervisors serving it.

Each supervisor reports, per queue, the median and the longest queue wait of the jobs its
workers started in the last minute, and how many starts those come from
(``QueueEntry.wait_p50_s``, ``wait_max_s`` and ``waits_counted`` of its snapshots). The
longest wait of several supervisors is the longest of theirs. Their medians do not merge:
the median of all the starts cannot be worked out from them. ``merge_waits`` estimates it
as the mean of their medians, each weighted by the starts it counts, and says when it did
so, for ``fast-app status`` and the dashboard to show one figure and mark it (``≈``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["MergedWaits", "QueueWaits", "merge_waits"]


class QueueWaits(Protocol):
    """One supervisor's queue waits for one queue, as its snapshot's ``QueueEntry`` has
    them."""

    @property
    def wait_p50_s(self) -> float | None:
        """Median wait of the jobs started in the last minute (``None``: none started)."""

    @property
    def wait_max_s(self) -> float | None:
        """The longest of those waits."""

    @property
    def waits_counted(self) -> int:
        """How many starts those figures come from."""


@dataclass(frozen=True, slots=True)
class MergedWaits:
    """One queue's waits over the last minute, every supervisor serving it together.

    Attributes:
        p50_s: the median wait: exact when one supervisor counted starts, else the mean
            of their medians weighted by the starts each counted (``approximate``).
        max_s: the longest wait (exact).
        counted: the starts these come from, every supervisor's together.
        approximate: ``p50_s`` is an estimate: more than one supervisor counted starts.
    """

    p50_s: float
    max_s: float
    counted: int
    approximate: bool


def merge_waits(reports: Iterable[QueueWaits]) -> MergedWaits | None:
    """The waits of one queue from each supervisor's report of it; ``None`` when none of
    them counted a start.

    A report counts when it counted starts and has a median; one without a longest wait
    counts its median as its longest.
    """
    counted = [
        (median, report.wait_max_s, report.waits_counted)
        for report in reports
        if report.waits_counted > 0 and (median := report.wait_p50_s) is not None
    ]
    if not counted:
        return None
    starts = sum(count for _, _, count in counted)
    longest = max(median if most is None else most for median, most, _ in counted)
    if len(counted) == 1:
        return MergedWaits(counted[0][0], longest, starts, approximate=False)
    estimate = sum(median * count for median, _, count in counted) / starts
    return MergedWaits(estimate, longest, starts, approximate=True)
