"""Valid farm messages for tests: snapshots and heartbeats with only the fields a test sets."""

from __future__ import annotations

import time
from typing import Any

from fast_app.core.queue import QueueSettings
from fast_app.core.queue.hooks import JobRun
from fast_app.core.queue.worker_side import JobEnvelope, JobOptions
from fast_app.farm.messages import Heartbeat, Snapshot, WorkerCounters
from fast_app.farm.messages.snapshots import (
    QueueFigures,
    RecentEnds,
    SnapshotSettings,
    WorkerEntry,
)


def worker_entry(worker_id: str, in_flight_count: int = 0, **fields: Any) -> WorkerEntry:
    values: dict[str, Any] = {
        "worker_id": worker_id,
        "pid": 1234,
        "state": "busy" if in_flight_count else "idle",
        "in_flight": [],
        "in_flight_count": in_flight_count,
        "counters": WorkerCounters(),
        "rss_bytes": None,
        "uptime_s": 1.0,
        "heartbeat_age_s": 0.1,
        "rate": None,
        **fields,
    }
    return WorkerEntry(**values)


def snapshot(supervisor_id: str, *in_flight: int, concurrency: int = 16, **fields: Any) -> Snapshot:
    """A snapshot of ``supervisor_id`` with one worker per ``in_flight`` count."""
    workers = [worker_entry(f"{supervisor_id}-w{n}", c) for n, c in enumerate(in_flight)]
    values: dict[str, Any] = {
        "supervisor_id": supervisor_id,
        "host": "host",
        "pid": 99,
        "at": time.time(),
        "started_at": time.time() - 5,
        "settings": SnapshotSettings(
            queue="q",
            min_workers=0,
            max_workers=8,
            concurrency=concurrency,
            heartbeat_interval_s=1.0,
        ),
        "desired_workers": len(workers),
        "paused": False,
        "stopping": False,
        "stopped": False,
        "workers": workers,
        "queue": QueueFigures(
            ready=0, unacked=sum(in_flight), consumers=len(workers), dead=0, delayed=0
        ),
        "completion_rate": 0.0,
        "enqueue_rate": 0.0,
        "decisions": [],
        "failures": [],
        "recent_jobs": RecentEnds(succeeded=[], failed=[]),
        "events": [],
        "waiting": {},  # as a supervisor of this version sends it
        **fields,
    }
    return Snapshot(**values)


def job_run(job_id: str, function: str = "app.jobs.work") -> JobRun:
    """One delivery of a job of ``function`` (one retry allowed), as hooks see it."""
    envelope = JobEnvelope(
        format=1,
        id=job_id,
        function=function,
        args=[],
        kwargs={},
        context={},
        options=JobOptions(retries=1),
        enqueued_at=time.time(),
    )
    return JobRun(QueueSettings(), "jobs", "rabbitmq", envelope, job_id, None)


def heartbeat(worker_id: str = "w1", **fields: Any) -> Heartbeat:
    values: dict[str, Any] = {
        "worker_id": worker_id,
        "pid": 1234,
        "state": "idle",
        "at": time.time(),
        "started_at": time.time() - 1,
        "concurrency": 16,
        "in_flight": [],
        "in_flight_count": 0,
        "counters": WorkerCounters(),
        "ended": [],
        "rss_bytes": 1,
        **fields,
    }
    return Heartbeat(**values)
