"""One queue's waits merged over the supervisors serving it: what ``fast-app status`` and
the dashboard both show."""

from __future__ import annotations

from typing import Any

import pytest

from fast_app.farm.messages.snapshots import QueueEntry, QueueFigures
from fast_app.farm.queue_waits import MergedWaits, merge_waits


def entry(**fields: Any) -> QueueEntry:
    values: dict[str, Any] = {
        "name": "emails",
        "min_workers": 0,
        "max_workers": 4,
        "desired_workers": 1,
        "workers": 1,
        "figures": QueueFigures(ready=0, unacked=0, consumers=1, dead=0, delayed=0),
        "completion_rate": 1.0,
        "enqueue_rate": 1.0,
        **fields,
    }
    return QueueEntry(**values)


def test_one_supervisor_s_waits_are_exact() -> None:
    # Given one supervisor that counted 7 starts (and one that counted none)
    counted = entry(wait_p50_s=0.1, wait_max_s=2.5, waits_counted=7)
    idle = entry()

    # When they are merged
    merged = merge_waits([counted, idle])

    # Then its figures are the queue's, exactly
    assert merged == MergedWaits(p50_s=0.1, max_s=2.5, counted=7, approximate=False)


def test_two_supervisors_medians_are_weighted_by_their_starts_and_marked_approximate() -> None:
    # Given two supervisors of one queue: 30 starts with a median of 10 s, 10 of 40 s
    first = entry(wait_p50_s=10.0, wait_max_s=20.0, waits_counted=30)
    second = entry(wait_p50_s=40.0, wait_max_s=90.0, waits_counted=10)

    # When they are merged
    merged = merge_waits([first, second])

    # Then the median is the weighted mean of theirs, an estimate; the longest is exact
    assert merged is not None
    assert merged.p50_s == pytest.approx((10.0 * 30 + 40.0 * 10) / 40)
    assert (merged.max_s, merged.counted, merged.approximate) == (90.0, 40, True)


def test_no_start_counted_is_no_figure() -> None:
    # Given supervisors that started nothing in the last minute (or never said)
    reports = [entry(), entry(waits_counted=0, wait_p50_s=None)]

    # When they are merged, then there is no figure, as with no supervisor at all
    assert merge_waits(reports) is None
    assert merge_waits([]) is None


def test_a_report_without_a_longest_wait_counts_its_median_as_the_longest() -> None:
    merged = merge_waits([entry(wait_p50_s=3.0, waits_counted=2)])

    assert merged == MergedWaits(p50_s=3.0, max_s=3.0, counted=2, approximate=False)
