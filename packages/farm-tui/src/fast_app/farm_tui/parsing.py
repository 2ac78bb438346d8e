"""Supervisor snapshots read into ``SupervisorState``: typed, and never trusting them.

Snapshots are JSON from other processes (other versions, maybe): every field is read with
a default (``_fields``), so a missing or odd one shows as ``-`` rather than crashing the
dashboard. ``parse_snapshot`` runs once per snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fast_app.farm_tui._fields import (
    integer,
    items,
    mapping,
    number,
    optional_integer,
    optional_number,
    text,
)
from fast_app.farm_tui.view import (
    DecisionView,
    EndedJob,
    FarmEvent,
    QueueReport,
    QueueView,
    RunningJob,
    SupervisorState,
    WaitingJob,
    WorkerView,
)

__all__ = ["parse_snapshot"]


def parse_snapshot(snapshot: Mapping[str, Any]) -> SupervisorState:
    """Read one supervisor snapshot; odd or missing fields get neutral defaults."""
    supervisor_id = text(snapshot.get("supervisor_id"), "?")
    settings = mapping(snapshot.get("settings"))
    at = number(snapshot.get("at"))
    queue_name = text(settings.get("queue"), "?")
    heartbeat_interval_s = number(settings.get("heartbeat_interval_s"), 1.0)
    reports = [
        _queue_report(mapping(entry), supervisor_id, at, heartbeat_interval_s)
        for entry in items(snapshot.get("queues"))
    ]
    # Before named queues a supervisor served QUEUE_NAME alone and named no queue.
    only_queue = reports[0].name if len(reports) == 1 else queue_name if not reports else "-"
    # Deliveries waiting in workers for a slot, by worker (of those where some wait).
    # A snapshot without the map does not say (unknown); one from a supervisor where none
    # wait has it empty. Once a strict decoder has filled its defaults, as the dashboard's
    # links do, a supervisor from before it was sent reads as none waiting: the two cannot
    # be told apart there.
    counted = snapshot.get("waiting")
    waiting_counts = (
        None
        if not isinstance(counted, Mapping)
        else {str(worker_id): max(0, integer(count)) for worker_id, count in counted.items()}
    )
    workers = []
    running = []
    running_total = 0
    for entry in items(snapshot.get("workers")):
        worker = mapping(entry)
        worker_id = text(worker.get("worker_id"), "?")
        counters = mapping(worker.get("counters"))
        listed = [mapping(job) for job in items(worker.get("in_flight"))]
        in_flight = integer(worker.get("in_flight_count"), len(listed))
        running_total += in_flight
        workers.append(
            WorkerView(
                supervisor_id=supervisor_id,
                worker_id=worker_id,
                queue=text(worker.get("queue"), only_queue),
                pid=optional_integer(worker.get("pid")),
                state=text(worker.get("state"), "?"),
                in_flight=in_flight,
                succeeded=integer(counters.get("succeeded")),
                failed=integer(counters.get("failed")),
                retried=integer(counters.get("retried")),
                dead_lettered=integer(counters.get("dead_lettered")),
                rss_bytes=optional_integer(worker.get("rss_bytes")),
                uptime_s=number(worker.get("uptime_s")),
                heartbeat_age_s=number(worker.get("heartbeat_age_s")),
                waiting=None if waiting_counts is None else waiting_counts.get(worker_id, 0),
            )
        )
        running += [_running_job(job, worker_id, supervisor_id) for job in listed]
    recent = mapping(snapshot.get("recent_jobs"))
    ended = [
        _ended_job(mapping(job))
        for kind in ("succeeded", "failed")
        for job in items(recent.get(kind))
    ]
    queue = _figures(mapping(snapshot.get("queue")), running_total)
    min_workers = integer(settings.get("min_workers"))
    max_workers = integer(settings.get("max_workers"))
    desired_workers = integer(snapshot.get("desired_workers"))
    completion_rate = number(snapshot.get("completion_rate"))
    enqueue_rate = number(snapshot.get("enqueue_rate"))
    if not reports:
        reports.append(
            QueueReport(
                supervisor_id=supervisor_id,
                name=queue_name,
                min_workers=min_workers,
                max_workers=max_workers,
                desired_workers=desired_workers,
                workers=len(workers),
                figures=queue,
                completion_rate=completion_rate,
                enqueue_rate=enqueue_rate,
                wait_p50_s=None,
                wait_max_s=None,
                waits_counted=0,
                clear_s=None,
                read_at=at,
                snapshot_at=at,
                heartbeat_interval_s=heartbeat_interval_s,
            )
        )
    return SupervisorState(
        supervisor_id=supervisor_id,
        host=text(snapshot.get("host"), "?"),
        pid=optional_integer(snapshot.get("pid")),
        at=at,
        started_at=number(snapshot.get("started_at"), at),
        queue_name=queue_name,
        min_workers=min_workers,
        max_workers=max_workers,
        concurrency=integer(settings.get("concurrency"), 1),
        heartbeat_interval_s=heartbeat_interval_s,
        desired_workers=desired_workers,
        paused=snapshot.get("paused") is True,
        stopping=snapshot.get("stopping") is True,
        stopped=snapshot.get("stopped") is True,
        workers=tuple(workers),
        queue=queue,
        queues=tuple(reports),
        completion_rate=completion_rate,
        enqueue_rate=enqueue_rate,
        decisions=tuple(
            DecisionView(
                at=number(decision.get("at")),
                supervisor_id=supervisor_id,
                from_workers=integer(decision.get("from")),
                to_workers=integer(decision.get("to")),
                reason=text(decision.get("reason"), ""),
            )
            for decision in map(mapping, items(snapshot.get("decisions")))
        ),
        running=tuple(running),
        running_total=running_total,
        ended=tuple(ended),
        events=tuple(
            FarmEvent(
                supervisor_id=supervisor_id,
                seq=integer(event.get("seq")),
                at=number(event.get("at")),
                kind=text(event.get("kind"), "?"),
                level=text(event.get("level"), "info"),
                message=text(event.get("message"), ""),
            )
            for event in map(mapping, items(snapshot.get("events")))
        ),
        raw=snapshot,
        waiting=tuple(
            _waiting_job(mapping(job), supervisor_id) for job in items(snapshot.get("waiting_jobs"))
        ),
        waiting_total=None if waiting_counts is None else sum(waiting_counts.values()),
    )


def _figures(queue: Mapping[str, Any], unacked: int) -> QueueView:
    return QueueView(
        ready=optional_integer(queue.get("ready")),
        unacked=integer(queue.get("unacked"), unacked),
        delayed=optional_integer(queue.get("delayed")),
        dead=optional_integer(queue.get("dead")),
        consumers=optional_integer(queue.get("consumers")),
        next_due_within_s=optional_number(queue.get("next_due_within_s")),
    )


def _queue_report(
    entry: Mapping[str, Any], supervisor_id: str, at: float, heartbeat_interval_s: float
) -> QueueReport:
    return QueueReport(
        supervisor_id=supervisor_id,
        name=text(entry.get("name"), "?"),
        min_workers=integer(entry.get("min_workers")),
        max_workers=integer(entry.get("max_workers")),
        desired_workers=integer(entry.get("desired_workers")),
        workers=integer(entry.get("workers")),
        figures=_figures(mapping(entry.get("figures")), 0),
        completion_rate=number(entry.get("completion_rate")),
        enqueue_rate=number(entry.get("enqueue_rate")),
        wait_p50_s=optional_number(entry.get("wait_p50_s")),
        wait_max_s=optional_number(entry.get("wait_max_s")),
        waits_counted=integer(entry.get("waits_counted")),
        clear_s=optional_number(entry.get("clear_s")),
        read_at=optional_number(entry.get("read_at")),
        unconsumed_since=optional_number(entry.get("unconsumed_since")),
        snapshot_at=at,
        heartbeat_interval_s=heartbeat_interval_s,
    )


def _running_job(job: Mapping[str, Any], worker_id: str, supervisor_id: str) -> RunningJob:
    return RunningJob(
        job_id=text(job.get("id"), "?"),
        function=text(job.get("function"), "?"),
        worker_id=worker_id,
        attempt=integer(job.get("attempt"), 1),
        started_at=number(job.get("started_at")),
        soft_deadline=optional_number(job.get("soft_deadline")),
        hard_deadline=optional_number(job.get("hard_deadline")),
        still_running=job.get("still_running") is True,
        args=text(job.get("args"), ""),
        context_keys=tuple(text(key, "?") for key in items(job.get("context_keys"))),
        supervisor_id=supervisor_id,
        in_thread=job.get("in_thread") is True,
    )


def _waiting_job(job: Mapping[str, Any], supervisor_id: str) -> WaitingJob:
    function = job.get("function")
    return WaitingJob(
        job_id=text(job.get("id"), "?"),
        function=function if isinstance(function, str) else None,
        worker_id=text(job.get("worker_id"), "?"),
        supervisor_id=supervisor_id,
    )


def _ended_job(job: Mapping[str, Any]) -> EndedJob:
    error = job.get("error")
    traceback = job.get("traceback")
    return EndedJob(
        job_id=text(job.get("id"), "?"),
        function=text(job.get("function"), "?"),
        worker_id=text(job.get("worker_id"), "?"),
        attempt=integer(job.get("attempt"), 1),
        outcome=text(job.get("outcome"), "?"),
        ended_at=number(job.get("ended_at")),
        duration_s=optional_number(job.get("duration_s")),
        args=text(job.get("args"), ""),
        context_keys=tuple(text(key, "?") for key in items(job.get("context_keys"))),
        error=error if isinstance(error, str) else None,
        traceback=traceback if isinstance(traceback, str) else None,
    )
