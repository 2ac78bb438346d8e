"""What the dashboard shows, read from supervisor snapshots: typed, and never trusting them.

Snapshots are JSON from other processes (other versions, maybe): every field is read with
a default, so a missing or odd one shows as ``-`` rather than crashing the dashboard.
``parse_snapshot`` runs once per snapshot; ``SupervisorState.at`` lets the screens add the
time passed since (ages, elapsed times) on each refresh without parsing again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DecisionView",
    "EndedJob",
    "FarmEvent",
    "FarmView",
    "QueueView",
    "RunningJob",
    "SupervisorState",
    "SupervisorView",
    "WorkerView",
    "is_stale",
    "parse_snapshot",
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


@dataclass(frozen=True, slots=True)
class EndedJob:
    """A run that ended: ``succeeded``, ``retried`` or ``dead_lettered``."""

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
    """The jobs queue; ``None`` where no supervisor could read it."""

    ready: int | None
    unacked: int
    delayed: int | None
    dead: int | None
    consumers: int | None


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
    completion_rate: float
    enqueue_rate: float
    decisions: tuple[DecisionView, ...]
    running: tuple[RunningJob, ...]
    running_total: int
    ended: tuple[EndedJob, ...]
    events: tuple[FarmEvent, ...]
    raw: Mapping[str, Any]


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
        enqueue_rate: jobs/s, smoothed.
        completion_rate: jobs/s, smoothed.
        enqueue_history: one point per second, oldest first.
        completion_history: one point per second, oldest first.
        decisions: latest first.
        running: jobs in flight listed by the snapshots, oldest first.
        running_total: jobs in flight, listed or not.
        recent: ended runs, latest first (failures kept longer than successes).
        paused: every supervisor is paused.
        stopping: some supervisor is draining to stop.
    """

    queue_name: str
    supervisors: tuple[SupervisorView, ...]
    workers: tuple[tuple[WorkerView, bool], ...]
    queue: QueueView
    enqueue_rate: float
    completion_rate: float
    enqueue_history: tuple[float, ...]
    completion_history: tuple[float, ...]
    decisions: tuple[DecisionView, ...]
    running: tuple[RunningJob, ...]
    running_total: int
    recent: tuple[EndedJob, ...]
    paused: bool
    stopping: bool


def parse_snapshot(snapshot: Mapping[str, Any]) -> SupervisorState:
    """Read one supervisor snapshot; odd or missing fields get neutral defaults."""
    supervisor_id = _text(snapshot.get("supervisor_id"), "?")
    settings = _mapping(snapshot.get("settings"))
    workers = []
    running = []
    running_total = 0
    for entry in _list(snapshot.get("workers")):
        worker = _mapping(entry)
        worker_id = _text(worker.get("worker_id"), "?")
        counters = _mapping(worker.get("counters"))
        listed = [_mapping(job) for job in _list(worker.get("in_flight"))]
        in_flight = _integer(worker.get("in_flight_count"), len(listed))
        running_total += in_flight
        workers.append(
            WorkerView(
                supervisor_id=supervisor_id,
                worker_id=worker_id,
                pid=_optional_integer(worker.get("pid")),
                state=_text(worker.get("state"), "?"),
                in_flight=in_flight,
                succeeded=_integer(counters.get("succeeded")),
                failed=_integer(counters.get("failed")),
                retried=_integer(counters.get("retried")),
                dead_lettered=_integer(counters.get("dead_lettered")),
                rss_bytes=_optional_integer(worker.get("rss_bytes")),
                uptime_s=_number(worker.get("uptime_s")),
                heartbeat_age_s=_number(worker.get("heartbeat_age_s")),
            )
        )
        running += [_running_job(job, worker_id) for job in listed]
    recent = _mapping(snapshot.get("recent_jobs"))
    ended = [
        _ended_job(_mapping(job))
        for kind in ("succeeded", "failed")
        for job in _list(recent.get(kind))
    ]
    queue = _mapping(snapshot.get("queue"))
    return SupervisorState(
        supervisor_id=supervisor_id,
        host=_text(snapshot.get("host"), "?"),
        pid=_optional_integer(snapshot.get("pid")),
        at=_number(snapshot.get("at")),
        started_at=_number(snapshot.get("started_at"), _number(snapshot.get("at"))),
        queue_name=_text(settings.get("queue"), "?"),
        min_workers=_integer(settings.get("min_workers")),
        max_workers=_integer(settings.get("max_workers")),
        concurrency=_integer(settings.get("concurrency"), 1),
        heartbeat_interval_s=_number(settings.get("heartbeat_interval_s"), 1.0),
        desired_workers=_integer(snapshot.get("desired_workers")),
        paused=snapshot.get("paused") is True,
        stopping=snapshot.get("stopping") is True,
        stopped=snapshot.get("stopped") is True,
        workers=tuple(workers),
        queue=QueueView(
            ready=_optional_integer(queue.get("ready")),
            unacked=_integer(queue.get("unacked"), running_total),
            delayed=_optional_integer(queue.get("delayed")),
            dead=_optional_integer(queue.get("dead")),
            consumers=_optional_integer(queue.get("consumers")),
        ),
        completion_rate=_number(snapshot.get("completion_rate")),
        enqueue_rate=_number(snapshot.get("enqueue_rate")),
        decisions=tuple(
            DecisionView(
                at=_number(decision.get("at")),
                supervisor_id=supervisor_id,
                from_workers=_integer(decision.get("from")),
                to_workers=_integer(decision.get("to")),
                reason=_text(decision.get("reason"), ""),
            )
            for decision in map(_mapping, _list(snapshot.get("decisions")))
        ),
        running=tuple(running),
        running_total=running_total,
        ended=tuple(ended),
        events=tuple(
            FarmEvent(
                supervisor_id=supervisor_id,
                seq=_integer(event.get("seq")),
                at=_number(event.get("at")),
                kind=_text(event.get("kind"), "?"),
                level=_text(event.get("level"), "info"),
                message=_text(event.get("message"), ""),
            )
            for event in map(_mapping, _list(snapshot.get("events")))
        ),
        raw=snapshot,
    )


def _running_job(job: Mapping[str, Any], worker_id: str) -> RunningJob:
    return RunningJob(
        job_id=_text(job.get("id"), "?"),
        function=_text(job.get("function"), "?"),
        worker_id=worker_id,
        attempt=_integer(job.get("attempt"), 1),
        started_at=_number(job.get("started_at")),
        soft_deadline=_optional_number(job.get("soft_deadline")),
        hard_deadline=_optional_number(job.get("hard_deadline")),
        still_running=job.get("still_running") is True,
        args=_text(job.get("args"), ""),
        context_keys=tuple(_text(key, "?") for key in _list(job.get("context_keys"))),
    )


def _ended_job(job: Mapping[str, Any]) -> EndedJob:
    error = job.get("error")
    traceback = job.get("traceback")
    return EndedJob(
        job_id=_text(job.get("id"), "?"),
        function=_text(job.get("function"), "?"),
        worker_id=_text(job.get("worker_id"), "?"),
        attempt=_integer(job.get("attempt"), 1),
        outcome=_text(job.get("outcome"), "?"),
        ended_at=_number(job.get("ended_at")),
        duration_s=_optional_number(job.get("duration_s")),
        args=_text(job.get("args"), ""),
        context_keys=tuple(_text(key, "?") for key in _list(job.get("context_keys"))),
        error=error if isinstance(error, str) else None,
        traceback=traceback if isinstance(traceback, str) else None,
    )


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: object, default: str) -> str:
    return value if isinstance(value, str) else default


def _optional_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _number(value: object, default: float = 0.0) -> float:
    number = _optional_number(value)
    return default if number is None else number


def _optional_integer(value: object) -> int | None:
    number = _optional_number(value)
    return None if number is None else int(number)


def _integer(value: object, default: int = 0) -> int:
    number = _optional_integer(value)
    return default if number is None else number
