"""What ``fast-app status`` reports, worked out from what it heard and read: one row per
queue, and what is wrong with the farm.

Pure functions of the supervisors' snapshots, the broker readings of the queues no
supervisor serves, and the time; ``fast_app.farm.cli.status`` gathers those and prints
the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fast_app.farm.broker_queues import QueueReading
from fast_app.farm.messages import Snapshot
from fast_app.farm.messages.snapshots import QueueEntry, QueueFigures
from fast_app.farm.queue_waits import merge_waits

__all__ = ["FarmStatus", "QueueRow", "farm_status", "stale_after_s"]

# Snapshots come every heartbeat interval, and a supervisor reads its queues every scale
# check: a figure older than three intervals is late. The floor allows for a scale check
# slower than the heartbeat, and for the clocks of two hosts that disagree a little.
_STALE_INTERVALS = 3.0
_STALE_FLOOR_S = 5.0


def stale_after_s(heartbeat_interval_s: float) -> float:
    """Age past which a figure of a supervisor with this heartbeat interval is stale."""
    return max(_STALE_INTERVALS * heartbeat_interval_s, _STALE_FLOOR_S)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One jobs queue: its backlog, its workers, how long its jobs wait; ``None``: unknown.

    Attributes:
        name: the jobs queue.
        supervisors: ids of the supervisors heard serving it; empty when no supervisor
            heard serves it, and its figures were read from the broker by ``status``.
        exists: ``False`` when the broker says the queue does not exist.
        ready: jobs waiting for a consumer.
        unacked: jobs in flight on the supervisors' workers.
        waiting: deliveries waiting inside the supervisors' workers for a free slot
            (``FARM_PREFETCH`` above ``FARM_CONCURRENCY``): held, not started, counted
            neither in ``ready`` (the broker counts them unacknowledged) nor in
            ``unacked``; from the snapshots, as old as they are. ``None`` (unknown)
            for a queue read from the broker alone, or served by a supervisor from
            before they were counted.
        delayed: jobs waiting in its delay queues (delays and retries).
        next_due_within_s: the next of them is due within this many seconds
            (``fast_app.farm.delays``; ``None``: none delayed, or unknown).
        dead: dead letters.
        consumers: its consumers, every supervisor's and lone workers'.
        workers: the supervisors' live workers for it.
        desired_workers: what their balancing wants for it.
        min_workers: the fewest workers of its pools together.
        max_workers: the most workers of its pools together.
        wait_p50_s: median queue wait of the jobs started in the last minute (with
            several supervisors, estimated: ``queue_waits.merge_waits``).
        wait_max_s: the longest of those waits.
        waits_counted: how many starts those come from.
        wait_p50_approximate: ``wait_p50_s`` is an estimate from several supervisors'
            medians.
        clear_s: estimated seconds to clear its backlog (0: empty).
        completion_rate: jobs/s its workers end.
        read_at: Unix time of the broker figures (``None``: never read).
        read_age_s: their age (``None``: never read).
        heard_age_s: age of the oldest snapshot its supervisors' figures come from
            (``None``: read from the broker, no supervisor's figures).
        stale: a figure is older than ``stale_after_s`` allows.
        oldest_wait_at_least_s: its jobs have had no consumer for at least this long, as
            its supervisors saw at each read: the oldest ready job has waited that long
            at least (``None``: not so, or nobody watched; the broker does not tell the
            age of a quorum queue's oldest job).
    """

    name: str
    supervisors: tuple[str, ...] = ()
    exists: bool = True
    ready: int | None = None
    unacked: int | None = None
    waiting: int | None = None
    delayed: int | None = None
    next_due_within_s: float | None = None
    dead: int | None = None
    consumers: int | None = None
    workers: int | None = None
    desired_workers: int | None = None
    min_workers: int | None = None
    max_workers: int | None = None
    wait_p50_s: float | None = None
    wait_max_s: float | None = None
    oldest_wait_at_least_s: float | None = None
    waits_counted: int | None = None
    wait_p50_approximate: bool = False
    clear_s: float | None = None
    completion_rate: float | None = None
    read_at: float | None = None
    read_age_s: float | None = None
    heard_age_s: float | None = None
    stale: bool = False

    @property
    def waiting_unreported(self) -> bool:
        """A supervisor serving it does not report the deliveries waiting in its workers
        (it is older than the count); not said of a queue read from the broker alone."""
        return self.waiting is None and bool(self.supervisors)

    @property
    def unconsumed_backlog(self) -> bool:
        """Jobs are ready and nothing consumes them."""
        return bool(self.ready) and self.consumers == 0

    @property
    def age_s(self) -> float | None:
        """Age of its oldest figure (``None``: none known)."""
        ages = [age for age in (self.read_age_s, self.heard_age_s) if age is not None]
        return max(ages) if ages else None


@dataclass(frozen=True, slots=True)
class FarmStatus:
    """The farm as ``status`` saw it.

    Attributes:
        queue: ``QUEUE_NAME``, whose events exchange carries the snapshots.
        listened_s: how long ``status`` listened for snapshots.
        snapshots: the latest snapshot of each supervisor heard, by id.
        queues: one row per queue: those the supervisors serve, then the other queues
            the farm knows, read from the broker.
        problems: what makes the farm unhealthy (``status`` exits 1), loudest first.
    """

    queue: str
    listened_s: float
    snapshots: tuple[Snapshot, ...]
    queues: tuple[QueueRow, ...]
    problems: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        """Nothing in ``problems``."""
        return not self.problems


def farm_status(
    queue: str,
    listened_s: float,
    snapshots: Sequence[Snapshot],
    readings: Sequence[QueueReading],
    now: float,
) -> FarmStatus:
    """The status of the farm of ``queue`` (``QUEUE_NAME``).

    Args:
        queue: ``QUEUE_NAME``.
        listened_s: how long ``status`` listened.
        snapshots: the latest snapshot of each supervisor heard (none stopped).
        readings: the queues the farm knows that none of them serves, read from the
            broker.
        now: Unix time.
    """
    served: dict[str, list[tuple[Snapshot, QueueEntry]]] = {}
    for snapshot in snapshots:
        for entry in _entries(snapshot):
            served.setdefault(entry.name, []).append((snapshot, entry))
    rows = [_served_row(name, entries, now) for name, entries in served.items()]
    rows += [_read_row(reading, now) for reading in readings if reading.name not in served]
    problems = []
    for row in rows:
        if not row.supervisors and row.unconsumed_backlog:
            problems.append(
                f"BACKLOG WITHOUT CONSUMER: {row.name} holds {row.ready:,} ready jobs "
                "and nothing consumes it"
            )
    if not snapshots:
        problems.append(
            f"NO SUPERVISOR HEARD on {queue}.events within {listened_s:g}s: the queues "
            "below are read from the broker"
        )
    return FarmStatus(queue, listened_s, tuple(snapshots), tuple(rows), tuple(problems))


def _entries(snapshot: Snapshot) -> list[QueueEntry]:
    """The queues a snapshot serves; a supervisor from before named queues served its
    ``QUEUE_NAME`` alone, with the snapshot's top-level figures."""
    if snapshot.queues:
        return snapshot.queues
    settings = snapshot.settings
    return [
        QueueEntry(
            name=settings.queue,
            min_workers=settings.min_workers,
            max_workers=settings.max_workers,
            desired_workers=snapshot.desired_workers,
            workers=len(snapshot.workers),
            figures=snapshot.queue,
            completion_rate=snapshot.completion_rate,
            enqueue_rate=snapshot.enqueue_rate,
        )
    ]


def _waiting_by_queue(snapshot: Snapshot) -> dict[str, int] | None:
    """The deliveries waiting for a slot in a snapshot's workers, by queue; ``None`` from
    a supervisor older than the count (unknown).

    A worker that names no queue consumes the supervisor's first (as its jobs in flight
    count there). So does a count for a worker the snapshot does not list, which its own
    supervisor never sends: shown rather than dropped, since what it counts is held.
    """
    if snapshot.waiting is None:
        return None
    first = _entries(snapshot)[0].name
    queue_of = {worker.worker_id: worker.queue or first for worker in snapshot.workers}
    by_queue: dict[str, int] = {}
    for worker_id, count in snapshot.waiting.items():
        queue = queue_of.get(worker_id, first)
        by_queue[queue] = by_queue.get(queue, 0) + count
    return by_queue


def _waiting_on(name: str, snapshots: list[Snapshot]) -> int | None:
    """The deliveries waiting for a slot on queue ``name`` in all these supervisors'
    workers; ``None`` when one of them does not report its count (a partial sum would
    pass for the whole)."""
    counts = [_waiting_by_queue(snapshot) for snapshot in snapshots]
    if any(count is None for count in counts):
        return None
    return sum(count.get(name, 0) for count in counts if count is not None)


def _served_row(name: str, entries: list[tuple[Snapshot, QueueEntry]], now: float) -> QueueRow:
    """One queue as every supervisor serving it reports it.

    The broker's figures are the freshest any of them read; each supervisor's own
    (workers, jobs in flight, deliveries waiting in its workers, limits, rates) add up.
    """
    by_freshness = sorted(
        entries,
        key=lambda pair: -math.inf if pair[1].read_at is None else pair[1].read_at,
        reverse=True,
    )
    freshest = by_freshness[0][1]
    figures = [entry.figures for _, entry in by_freshness]
    unconsumed = [entry.unconsumed_since for _, entry in entries if entry.unconsumed_since]
    # Only while the freshest read still finds ready jobs and no consumer.
    unconsumed_now = bool(freshest.figures.ready) and freshest.figures.consumers == 0
    waits = merge_waits(entry for _, entry in entries)
    read_at = freshest.read_at
    heard_age_s = max(max(0.0, now - snapshot.at) for snapshot, _ in entries)
    read_age_s = None if read_at is None else max(0.0, now - read_at)
    interval = max(snapshot.settings.heartbeat_interval_s for snapshot, _ in entries)
    ages = [heard_age_s] if read_age_s is None else [heard_age_s, read_age_s]
    return QueueRow(
        name=name,
        supervisors=tuple(sorted(snapshot.supervisor_id for snapshot, _ in entries)),
        ready=_freshest_known(figures, lambda figure: figure.ready),
        unacked=sum(entry.figures.unacked for _, entry in entries),
        waiting=_waiting_on(name, [snapshot for snapshot, _ in entries]),
        delayed=_freshest_known(figures, lambda figure: figure.delayed),
        # From the read that gave the delayed count.
        next_due_within_s=next(
            (figure.next_due_within_s for figure in figures if figure.delayed is not None),
            None,
        ),
        dead=_freshest_known(figures, lambda figure: figure.dead),
        consumers=_freshest_known(figures, lambda figure: figure.consumers),
        workers=sum(entry.workers for _, entry in entries),
        desired_workers=sum(entry.desired_workers for _, entry in entries),
        min_workers=sum(entry.min_workers for _, entry in entries),
        max_workers=sum(entry.max_workers for _, entry in entries),
        wait_p50_s=None if waits is None else waits.p50_s,
        wait_max_s=None if waits is None else waits.max_s,
        oldest_wait_at_least_s=max(0.0, now - min(unconsumed))
        if unconsumed and unconsumed_now
        else None,
        waits_counted=0 if waits is None else waits.counted,
        wait_p50_approximate=waits is not None and waits.approximate,
        # Each supervisor estimates it for the whole queue (every consumer's drain).
        clear_s=freshest.clear_s,
        completion_rate=sum(entry.completion_rate for _, entry in entries),
        read_at=read_at,
        read_age_s=read_age_s,
        heard_age_s=heard_age_s,
        stale=max(ages) > stale_after_s(interval),
    )


def _freshest_known(
    figures: list[QueueFigures], figure_of: Callable[[QueueFigures], int | None]
) -> int | None:
    """The first known value of a figure in ``figures`` (freshest first)."""
    return next((value for f in figures if (value := figure_of(f)) is not None), None)


def _read_row(reading: QueueReading, now: float) -> QueueRow:
    return QueueRow(
        name=reading.name,
        exists=reading.exists,
        ready=reading.ready,
        delayed=reading.delayed,
        next_due_within_s=reading.next_due_within_s,
        dead=reading.dead,
        consumers=reading.consumers,
        read_at=reading.read_at,
        read_age_s=max(0.0, now - reading.read_at),
    )
