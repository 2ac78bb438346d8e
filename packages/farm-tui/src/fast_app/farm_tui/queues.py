"""Each queue as the supervisors report it, merged: pure functions of their reports.

Several supervisors may serve one queue. Their pools add up (workers, limits, rates
their workers complete, jobs in flight); ready, delayed, dead and consumers are the
broker's figures of the one shared queue, taken from the freshest read; arrivals are
counted once (``rates.merged_rates``); queue waits are merged as ``fast-app status``
merges them (``queue_waits.merge_waits``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from fast_app.farm.broker_queues import QueueReading
from fast_app.farm.queue_waits import merge_waits
from fast_app.farm_tui.rates import merged_rates
from fast_app.farm_tui.view import (
    NamedQueueView,
    QueueReport,
    QueueView,
    SupervisorState,
    is_stale,
)

__all__ = ["backlog", "broker_queue", "merge_queue", "queue_names", "unconsumed_backlog"]

_CLEAR_CAP_S = 1e9


def queue_names(states: Iterable[SupervisorState]) -> list[str]:
    """The queues the supervisors serve, in the order they list them (first seen first)."""
    names: dict[str, None] = {}
    for state in states:
        for report in state.queues:
            names.setdefault(report.name)
    return list(names)


def backlog(figures: QueueView) -> float | None:
    """Jobs not done yet: ready plus unacknowledged (``None`` while ready is unknown)."""
    return None if figures.ready is None else float(figures.ready + figures.unacked)


def merge_queue(
    reports: Sequence[QueueReport],
    *,
    now: float,
    limits_pending: bool = False,
    backlog_history: Sequence[float | None] = (),
) -> NamedQueueView:
    """One queue, from the reports of the supervisors serving it (at least one).

    Args:
        reports: one per supervisor, limits as the model wants them shown.
        now: Unix time (ages and staleness).
        limits_pending: a change asked from here waits to show in a snapshot.
        backlog_history: the queue's backlog, one point a second.
    """
    name = reports[0].name
    read = [report for report in reports if report.read_at is not None]
    freshest = max(read or reports, key=lambda report: report.read_at or report.snapshot_at)
    figures = QueueView(
        ready=freshest.figures.ready,
        unacked=sum(report.figures.unacked for report in reports),
        delayed=freshest.figures.delayed,
        dead=freshest.figures.dead,
        consumers=freshest.figures.consumers,
        next_due_within_s=freshest.figures.next_due_within_s,
    )
    enqueue_rate, completion_rate = merged_rates(
        (report.enqueue_rate, report.completion_rate) for report in reports
    )
    read_at = freshest.read_at if read else None
    # Unread figures are unknown, not old; the pools' numbers are as old as the snapshot.
    basis = read_at if read_at is not None else max(report.snapshot_at for report in reports)
    waits = merge_waits(reports)
    unconsumed = [report.unconsumed_since for report in reports if report.unconsumed_since]
    # Only while the freshest read still finds ready jobs and no consumer.
    unconsumed_now = bool(figures.ready) and figures.consumers == 0
    return NamedQueueView(
        name=name,
        supervisors=len({report.supervisor_id for report in reports}),
        workers=sum(report.workers for report in reports),
        desired_workers=sum(report.desired_workers for report in reports),
        min_workers=sum(report.min_workers for report in reports),
        max_workers=sum(report.max_workers for report in reports),
        limits_pending=limits_pending,
        figures=figures,
        enqueue_rate=enqueue_rate,
        completion_rate=completion_rate,
        wait_p50_s=None if waits is None else waits.p50_s,
        wait_max_s=None if waits is None else waits.max_s,
        waits_counted=0 if waits is None else waits.counted,
        clear_s=reports[0].clear_s
        if len(reports) == 1
        else _time_to_clear(figures, completion_rate),
        read_age_s=None if read_at is None else max(0.0, now - read_at),
        stale=is_stale(
            max(0.0, now - basis),
            max(freshest.heartbeat_interval_s, freshest.read_interval_s or 0.0),
        ),
        backlog_history=tuple(backlog_history),
        wait_p50_approximate=waits is not None and waits.approximate,
        oldest_wait_at_least_s=max(0.0, now - min(unconsumed))
        if unconsumed and unconsumed_now
        else None,
    )


def _time_to_clear(figures: QueueView, drain_rate: float) -> float | None:
    """Seconds to work off the backlog at ``drain_rate``: 0 when empty, ``None`` when
    unknown (ready not read, or nothing drains). Each supervisor's own estimate counts
    only its own jobs in flight, so with several it is worked out again here."""
    jobs = backlog(figures)
    if jobs is None:
        return None
    if jobs == 0:
        return 0.0
    if drain_rate <= 0:
        return None
    return min(_CLEAR_CAP_S, jobs / drain_rate)


def broker_queue(
    reading: QueueReading,
    *,
    now: float,
    interval_s: float,
    backlog_history: Sequence[float | None] = (),
) -> NamedQueueView:
    """A queue no supervisor heard serves, as the broker itself reports it.

    Args:
        reading: the latest reading of it.
        now: Unix time (its age and staleness).
        interval_s: the time between two readings (3 of them: stale).
        backlog_history: its backlog, one point a second.
    """
    figures = QueueView(
        ready=reading.ready,
        unacked=0,  # unknown from a passive declare; no supervisor, no worker to hold any
        delayed=reading.delayed,
        dead=reading.dead,
        consumers=reading.consumers,
        next_due_within_s=reading.next_due_within_s,
    )
    age = max(0.0, now - reading.read_at)
    return NamedQueueView(
        name=reading.name,
        supervisors=0,
        workers=0,
        desired_workers=0,
        min_workers=0,
        max_workers=0,
        limits_pending=False,
        figures=figures,
        enqueue_rate=0.0,
        completion_rate=0.0,
        wait_p50_s=None,
        wait_max_s=None,
        waits_counted=0,
        clear_s=None,
        read_age_s=age,
        stale=is_stale(age, interval_s),
        backlog_history=tuple(backlog_history),
    )


def unconsumed_backlog(queue: NamedQueueView) -> bool:
    """Jobs wait in ``queue`` and, as its latest fresh read says, nothing consumes them."""
    figures = queue.figures
    return (
        not queue.stale
        and figures.ready is not None
        and figures.ready > 0
        and figures.consumers == 0
    )
