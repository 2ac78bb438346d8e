"""What the dashboard shows: a supervisor's snapshot as read (``SupervisorState``, made by
``parsing.parse_snapshot``), and the farm at one moment (``FarmView``, made by the model).

``SupervisorState.at`` lets the screens add the time passed since a snapshot (ages,
elapsed times) on each refresh without reading it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DecisionView",
    "EndedJob",
    "FarmEvent",
    "FarmView",
    "NamedQueueView",
    "QueueReport",
    "QueueView",
    "RunningJob",
    "SupervisorState",
    "SupervisorView",
    "WaitingJob",
    "WorkerView",
    "is_stale",
]

_STALE_INTERVALS = 3.0
_STARTUP_ALLOWANCE_S = 15.0  # as the supervisor's: a new worker imports the app first


def is_stale(age_s: float, heartbeat_interval_s: float, *, starting: bool = False) -> bool:
    """Whether a heartbeat (or snapshot) this old means trouble.

    Heartbeats and snapshots both come every interval, so a fresh one is up to about two
    intervals old when shown; past three, something is late. The supervisor itself kills
    a worker silent for ``FARM_HEARTBEAT_TOLERANCE`` intervals (5 by default), allowing
    one still starting (no heartbeat yet) 15 s more; so does this.
    """
    allowance = _STARTUP_ALLOWANCE_S if starting else 0.0
    return age_s > _STALE_INTERVALS * max(heartbeat_interval_s, 0.1) + allowance


@dataclass(frozen=True, slots=True)
class WorkerView:
    """One worker, as of a snapshot (ages as of that snapshot)."""

    supervisor_id: str
    worker_id: str
    queue: str
    pid: int | None
    state: str
    in_flight: int
    succeeded: int
    failed: int
    retried: int
    dead_lettered: int
    rss_bytes: int | None
    uptime_s: float
    heartbeat_age_s: float
    #: Deliveries it holds waiting for a free slot (``FARM_PREFETCH`` above
    #: ``FARM_CONCURRENCY``), not among ``in_flight``; ``None``: its snapshot does not say.
    waiting: int | None = None
    #: How old the snapshot this comes from is, as shown (0: as parsed).
    data_age_s: float = 0.0
    #: That snapshot is older than 3 heartbeat intervals: what it says may be over.
    data_stale: bool = False


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job in flight."""

    job_id: str
    function: str
    worker_id: str
    attempt: int
    started_at: float
    soft_deadline: float | None
    hard_deadline: float | None
    still_running: bool
    args: str
    context_keys: tuple[str, ...]
    #: The supervisor whose worker runs it (where a cancel goes).
    supervisor_id: str = ""
    #: A plain function in a thread: it cannot be cancelled.
    in_thread: bool = False


@dataclass(frozen=True, slots=True)
class WaitingJob:
    """A delivery a worker holds until one of its slots frees: not started, so it has no
    run time, attempt or deadline yet (its body is decoded when it starts).

    Attributes:
        job_id: its id.
        function: what its delivery's type names (``None``: no function's path).
        worker_id: the worker that holds it.
        supervisor_id: that worker's supervisor (where a cancel goes).
    """

    job_id: str
    function: str | None
    worker_id: str
    supervisor_id: str


@dataclass(frozen=True, slots=True)
class EndedJob:
    """A run that ended: ``succeeded``, ``retried``, ``dead_lettered`` or ``cancelled``."""

    job_id: str
    function: str
    worker_id: str
    attempt: int
    outcome: str
    ended_at: float
    duration_s: float | None
    args: str
    context_keys: tuple[str, ...]
    error: str | None
    traceback: str | None

    @property
    def key(self) -> str:
        """Tells one run from another (a job retried ends several times)."""
        return f"{self.job_id}:{self.attempt}:{self.ended_at:.6f}"


@dataclass(frozen=True, slots=True)
class DecisionView:
    """A scaling decision that changed the number of workers."""

    at: float
    supervisor_id: str
    from_workers: int
    to_workers: int
    reason: str


@dataclass(frozen=True, slots=True)
class FarmEvent:
    """A lifecycle event of a supervisor (worker started, killed, scaling...)."""

    supervisor_id: str
    seq: int
    at: float
    kind: str
    level: str
    message: str


@dataclass(frozen=True, slots=True)
class QueueView:
    """The jobs queue; ``None`` where no supervisor could read it.

    ``next_due_within_s``: the next delayed job is due within this many seconds (an
    upper bound, ``fast_app.farm.delays``; ``None``: none delayed, or unknown).
    """

    ready: int | None
    unacked: int
    delayed: int | None
    dead: int | None
    consumers: int | None
    next_due_within_s: float | None = None


@dataclass(frozen=True, slots=True)
class QueueReport:
    """One queue as one supervisor reported it (a ``QueueEntry`` of its snapshot).

    Attributes:
        supervisor_id: who reported it.
        name: the jobs queue.
        min_workers: the fewest workers of that supervisor's pool for it.
        max_workers: the most.
        desired_workers: what that supervisor's balancing wants for it.
        workers: that pool's live workers.
        figures: the queue as that supervisor read it; ``unacked`` is its own jobs in
            flight.
        completion_rate: jobs/s that pool ends.
        enqueue_rate: jobs/s arriving, as that supervisor estimates it.
        wait_p50_s: median queue wait of the jobs that pool started in the last minute
            (``None``: none started).
        wait_max_s: the longest of them.
        waits_counted: how many starts those come from.
        clear_s: estimated seconds to clear the backlog (``None``: unknown).
        read_at: Unix time of the broker read (``None``: never read).
        snapshot_at: Unix time of the snapshot that carried it.
        heartbeat_interval_s: that supervisor's heartbeat interval.
        read_interval_s: how long its latest read came after the one before (``None``:
            not seen yet); the supervisor reads at each scaling check, which may be less
            often than it sends snapshots.
        unconsumed_since: Unix time since when each of its reads found ready jobs and no
            consumer (``None``: not so at its last read).
    """

    supervisor_id: str
    name: str
    min_workers: int
    max_workers: int
    desired_workers: int
    workers: int
    figures: QueueView
    completion_rate: float
    enqueue_rate: float
    wait_p50_s: float | None
    wait_max_s: float | None
    waits_counted: int
    clear_s: float | None
    read_at: float | None
    snapshot_at: float
    heartbeat_interval_s: float
    read_interval_s: float | None = None
    unconsumed_since: float | None = None


@dataclass(frozen=True, slots=True)
class NamedQueueView:
    """One queue as shown: the reports of every supervisor serving it, merged.

    Attributes:
        name: the jobs queue.
        supervisors: how many supervisors serve it.
        workers: live workers, all its pools together.
        desired_workers: what the supervisors want for it, together.
        min_workers: its pools' minimums added up (changes asked from here included).
        max_workers: its pools' maximums added up (likewise).
        limits_pending: a change asked from here is not in a snapshot yet.
        figures: ready, delayed, dead and consumers from the freshest broker read
            (``None``: unknown); unacked added up over the supervisors.
        enqueue_rate: jobs/s arriving.
        completion_rate: jobs/s ended.
        wait_p50_s: median queue wait over the last minute (with several supervisors
            counting starts, estimated: ``fast_app.farm.queue_waits.merge_waits``);
            ``None``: no start.
        wait_max_s: the longest queue wait over the last minute.
        waits_counted: the starts those figures come from.
        clear_s: estimated seconds to clear the backlog (``None``: unknown).
        read_age_s: seconds since the freshest broker read (``None``: never read).
        stale: that read is older than 3 heartbeat intervals, or 3 of the intervals
            between its supervisor's reads if longer (the figures are old).
        backlog_history: ready plus unacked, one point a second, oldest first
            (``None``: unknown then).
        wait_p50_approximate: ``wait_p50_s`` is an estimate from several supervisors'
            medians (shown ``≈``).
        oldest_wait_at_least_s: the queue has had ready jobs and no consumer for at least
            this long, as its supervisors saw at each read, so its oldest job has waited
            that long at least (``None``: not so, or nobody watched).
    """

    name: str
    supervisors: int
    workers: int
    desired_workers: int
    min_workers: int
    max_workers: int
    limits_pending: bool
    figures: QueueView
    enqueue_rate: float
    completion_rate: float
    wait_p50_s: float | None
    wait_max_s: float | None
    waits_counted: int
    clear_s: float | None
    read_age_s: float | None
    stale: bool
    backlog_history: tuple[float | None, ...]
    wait_p50_approximate: bool = False
    oldest_wait_at_least_s: float | None = None


@dataclass(frozen=True, slots=True)
class SupervisorState:
    """One snapshot, parsed."""

    supervisor_id: str
    host: str
    pid: int | None
    at: float
    started_at: float
    queue_name: str
    min_workers: int
    max_workers: int
    concurrency: int
    heartbeat_interval_s: float
    desired_workers: int
    paused: bool
    stopping: bool
    stopped: bool
    workers: tuple[WorkerView, ...]
    queue: QueueView
    queues: tuple[QueueReport, ...]
    completion_rate: float
    enqueue_rate: float
    decisions: tuple[DecisionView, ...]
    running: tuple[RunningJob, ...]
    running_total: int
    ended: tuple[EndedJob, ...]
    events: tuple[FarmEvent, ...]
    raw: Mapping[str, Any]
    #: Some of the deliveries waiting in its workers for a slot, each worker's first
    #: in line first.
    waiting: tuple[WaitingJob, ...] = ()
    #: All of them (``None``: the snapshot does not say).
    waiting_total: int | None = None


@dataclass(frozen=True, slots=True)
class SupervisorView:
    """A supervisor as shown now."""

    supervisor_id: str
    host: str
    uptime_s: float
    min_workers: int
    max_workers: int
    limits_pending: bool
    desired_workers: int
    workers: int
    paused: bool
    stopping: bool
    snapshot_age_s: float
    stale: bool


@dataclass(frozen=True)
class FarmView:
    """Everything the screens show, at one moment.

    Attributes:
        queue_name: the jobs queue.
        supervisors: by id.
        workers: with ages as of now, and whether their heartbeat is stale.
        queue: depths, summed over supervisors where that makes sense.
        queues: each queue the supervisors serve (one for a farm of one queue), in the
            order they list them.
        enqueue_rate: jobs/s, smoothed (``None``: unknown, the data is stale).
        completion_rate: jobs/s, smoothed (likewise).
        enqueue_history: one point per second, oldest first (``None``: no data then).
        completion_history: one point per second, oldest first (likewise).
        decisions: latest first.
        running: jobs in flight listed by the snapshots, oldest first.
        running_total: jobs in flight, listed or not.
        waiting: deliveries waiting inside workers for a slot, as the snapshots list
            them (by supervisor, each worker's first in line first): not started.
        waiting_total: those deliveries, listed or not (``None``: some snapshot does
            not say).
        recent: ended runs, latest first (failures kept longer than successes).
        paused: every supervisor is paused.
        stopping: some supervisor is draining to stop.
        data_at: Unix time of the freshest snapshot (``None``: none heard).
        data_stale: even that one is older than 3 heartbeat intervals: every figure is
            as old as it.
        broker_unreachable_since: the supervisors' snapshots are fresh but their broker
            reads are not (older than 3 of their read intervals): the time of the
            freshest read, since which the supervisors cannot reach the broker.
        unconsumed: the queues whose fresh broker read shows jobs ready and no consumer:
            a backlog nothing works off.
    """

    queue_name: str
    supervisors: tuple[SupervisorView, ...]
    workers: tuple[tuple[WorkerView, bool], ...]
    queue: QueueView
    queues: tuple[NamedQueueView, ...]
    enqueue_rate: float | None
    completion_rate: float | None
    enqueue_history: tuple[float | None, ...]
    completion_history: tuple[float | None, ...]
    decisions: tuple[DecisionView, ...]
    running: tuple[RunningJob, ...]
    running_total: int
    recent: tuple[EndedJob, ...]
    paused: bool
    stopping: bool
    data_at: float | None = None
    data_stale: bool = False
    broker_unreachable_since: float | None = None
    unconsumed: tuple[str, ...] = ()
    waiting: tuple[WaitingJob, ...] = ()
    waiting_total: int | None = 0
