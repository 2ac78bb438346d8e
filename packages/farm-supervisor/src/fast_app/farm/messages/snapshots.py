"""Snapshots, on ``<queue>.events``: each supervisor's part of the farm, every interval.

Read by ``fast-app status``, the dashboards and the other supervisors (their jobs in
flight count in each other's scaling). Every list is bounded, so one snapshot stays
small whatever the farm's size and whatever a forger claims.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from fast_app.farm.messages._bounds import (
    Count,
    Elapsed,
    Function,
    JobId,
    Line,
    Moment,
    Name,
    Pid,
    Seconds,
    WorkerLimit,
)
from fast_app.farm.messages.job_figures import (
    FUNCTION_FIGURES_LISTED,
    HISTORY_MINUTES,
    FunctionFigures,
    MinuteTotals,
)
from fast_app.farm.messages.worker_link import (
    WAITING_LISTED,
    EndedJob,
    InFlightEntry,
    WaitingEntry,
    WorkerCounters,
)

__all__ = [
    "Decision",
    "EndedJobOf",
    "Event",
    "Failure",
    "QueueEntry",
    "QueueFigures",
    "RecentEnds",
    "Snapshot",
    "SnapshotSettings",
    "WaitingJobOf",
    "WorkerEntry",
    "decode_snapshot",
    "encode_snapshot",
]

_Rate = Annotated[float, Meta(ge=-1e9, le=1e9)]
_Kind = Annotated[str, Meta(max_length=64, pattern=r"^[a-z_]+\Z")]


class SnapshotSettings(msgspec.Struct, frozen=True):
    """The supervisor's settings that a reader needs."""

    queue: Name
    min_workers: WorkerLimit
    max_workers: WorkerLimit
    concurrency: Count
    heartbeat_interval_s: Seconds


class WorkerEntry(msgspec.Struct, frozen=True):
    """One worker: its state, the oldest of its jobs in flight, its counters."""

    worker_id: Name
    pid: Pid
    state: Literal["starting", "idle", "busy", "paused", "draining"]
    in_flight: Annotated[list[InFlightEntry], Meta(max_length=256)]
    in_flight_count: Count
    counters: WorkerCounters
    rss_bytes: Count | None
    uptime_s: Seconds
    heartbeat_age_s: Seconds
    rate: _Rate | None
    queue: Name | None = None


class QueueFigures(msgspec.Struct, frozen=True):
    """The jobs queue as the supervisor last saw it (``None``: not known yet).

    ``next_due_within_s``: the next delayed job is due within this many seconds (see
    ``fast_app.farm.delays``); ``None`` when none is delayed, or unknown.
    """

    ready: Count | None
    unacked: Count
    consumers: Count | None
    dead: Count | None
    delayed: Count | None
    next_due_within_s: Elapsed | None = None


class QueueEntry(msgspec.Struct, frozen=True):
    """One queue this supervisor serves: its pool, its backlog, how long jobs wait.

    Attributes:
        name: the jobs queue.
        min_workers: its pool's fewest workers.
        max_workers: its pool's most workers (the supervisor's overall max caps the sum).
        desired_workers: what the balancing wants for it now.
        workers: its pool's live workers.
        figures: the queue as the broker reports it (``None``: not read yet).
        completion_rate: jobs/s its workers end.
        enqueue_rate: jobs/s arriving, as estimated.
        wait_p50_s: median queue wait of the jobs its workers started in the last
            minute (from due to started); ``None`` when none started.
        wait_max_s: the longest of those waits.
        waits_counted: how many starts those figures come from.
        clear_s: estimated seconds to clear its backlog at the drain rate of every
            consumer; ``None`` when unknown (no drain measured yet), 0 when empty.
        read_at: Unix time the broker figures were read (``None``: never).
        unconsumed_since: Unix time since when each of its reads found ready jobs and no
            consumer: the oldest job has waited at least since then (``None``: not so at
            the last read).
    """

    name: Name
    min_workers: WorkerLimit
    max_workers: WorkerLimit
    desired_workers: WorkerLimit
    workers: Count
    figures: QueueFigures
    completion_rate: _Rate
    enqueue_rate: _Rate
    wait_p50_s: Elapsed | None = None
    wait_max_s: Elapsed | None = None
    waits_counted: Count = 0
    clear_s: Elapsed | None = None
    read_at: Moment | None = None
    unconsumed_since: Moment | None = None


class Decision(msgspec.Struct, frozen=True):
    """A scaling decision: from how many workers to how many, and why."""

    at: Moment
    from_: WorkerLimit = msgspec.field(name="from")
    to: WorkerLimit = 0
    reason: Line = ""


class Failure(msgspec.Struct, frozen=True):
    """A worker that hung, died or was killed at a job's hard timeout."""

    at: Moment
    kind: _Kind
    worker_id: Name
    detail: Line = ""
    job_id: JobId | None = None
    function: Function | None = None


class EndedJobOf(EndedJob, frozen=True, kw_only=True):
    """An ended job, with the worker that ran it."""

    worker_id: Name


class WaitingJobOf(WaitingEntry, frozen=True, kw_only=True):
    """A delivery waiting inside a worker for a slot, with that worker."""

    worker_id: Name


class RecentEnds(msgspec.Struct, frozen=True):
    """The last jobs the supervisor's workers ended."""

    succeeded: Annotated[list[EndedJobOf], Meta(max_length=64)]
    failed: Annotated[list[EndedJobOf], Meta(max_length=64)]


class Event(msgspec.Struct, frozen=True, omit_defaults=True):
    """A lifecycle event (worker started, killed, scaled, command received...)."""

    seq: Count
    at: Moment
    kind: _Kind
    level: Literal["debug", "info", "warning", "error", "critical"]
    message: Line
    worker_id: Name | None = None
    job_id: JobId | None = None
    supervisor_id: Name | None = None


class Snapshot(msgspec.Struct, frozen=True, tag="snapshot"):
    """One supervisor's part of the farm."""

    supervisor_id: Name
    host: Name
    pid: Pid
    at: Moment
    started_at: Moment
    settings: SnapshotSettings
    desired_workers: WorkerLimit
    paused: bool
    stopping: bool
    stopped: bool
    workers: Annotated[list[WorkerEntry], Meta(max_length=1024)]
    queue: QueueFigures
    completion_rate: _Rate
    enqueue_rate: _Rate
    decisions: Annotated[list[Decision], Meta(max_length=64)]
    failures: Annotated[list[Failure], Meta(max_length=64)]
    recent_jobs: RecentEnds
    events: Annotated[list[Event], Meta(max_length=128)]
    refused: Annotated[dict[_Kind, Count], Meta(max_length=32)] = msgspec.field(
        default_factory=dict
    )
    queues: Annotated[list[QueueEntry], Meta(max_length=64)] = msgspec.field(default_factory=list)
    #: Each function's runs over the last minutes (see ``FunctionFigures.since``).
    functions: Annotated[list[FunctionFigures], Meta(max_length=FUNCTION_FIGURES_LISTED)] = (
        msgspec.field(default_factory=list)
    )
    #: Per-minute totals since the supervisor started, at most the last hour, oldest
    #: first; the last minute is the current one, partial.
    history: Annotated[list[MinuteTotals], Meta(max_length=HISTORY_MINUTES)] = msgspec.field(
        default_factory=list
    )
    #: Deliveries waiting inside workers for a slot (``FARM_PREFETCH`` above
    #: ``FARM_CONCURRENCY``), by worker, of the workers where some wait. Not started:
    #: neither in a worker's ``in_flight`` nor in its ``in_flight_count``. ``None``: not
    #: reported, from a supervisor older than this field (unknown, not none).
    waiting: Annotated[dict[Name, Count], Meta(max_length=1024)] | None = None
    #: Some of them by id, each worker's first in line first (``waiting`` counts them
    #: all). Apart from the workers, so that a snapshot where none wait stays as small.
    waiting_jobs: Annotated[list[WaitingJobOf], Meta(max_length=WAITING_LISTED)] = msgspec.field(
        default_factory=list
    )

    def __post_init__(self) -> None:
        # Raised while decoding, this is a ValidationError: the snapshot is refused. A
        # listed waiting job must be counted: a count must never hide what is listed.
        listed: dict[str, int] = {}
        for job in self.waiting_jobs:
            listed[job.worker_id] = listed.get(job.worker_id, 0) + 1
        counted = self.waiting or {}
        for worker_id, count in listed.items():
            if count > counted.get(worker_id, 0):
                raise ValueError(
                    f"lists {count} jobs waiting on worker {worker_id} but counts "
                    f"{counted.get(worker_id, 0)}"
                )


_decoder = msgspec.json.Decoder(Snapshot)
_encoder = msgspec.json.Encoder()


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """The message body of ``snapshot``."""
    return _encoder.encode(snapshot)


def decode_snapshot(body: bytes) -> Snapshot:
    """A snapshot, strictly.

    Raises:
        msgspec.DecodeError: anything else.
    """
    return _decoder.decode(body)
