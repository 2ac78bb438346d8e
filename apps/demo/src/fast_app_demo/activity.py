"""What jobs did, recorded where every process of the demo can read it.

Each run of a job (one attempt) is one JSON file, ``<data>/activity/<job id>.<attempt>.json``,
rewritten as the run goes on. Files rather than memory because the web app and the
workers are different processes; one file per run so that no two writers ever share
a file (a redelivered run rewrites its own), and each write is a rename, so a reader
never sees half a record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from opentelemetry import trace

from fast_app.core.context import context
from fast_app.core.queue import current_job
from fast_app_demo.context_keys import REQUEST_ID, USER_ID

__all__ = ["ActivityLog", "JobRun", "RunJournal", "RunStatus", "journal"]


class RunStatus(StrEnum):
    """Where a run of a job stands."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: Its task was cancelled: the soft timeout fired.
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class JobRun:
    """One run (attempt) of a job, as the job itself saw it.

    Attributes:
        job_id: the job id (the same on every attempt).
        function: the job function's name.
        attempt: 1 on the first run.
        max_attempts: 1 + the retries it was queued with.
        status: running, succeeded, failed or cancelled.
        request_id: the ``request_id`` context key inside the job.
        user_id: the ``user_id`` context key inside the job.
        worker: ``host-pid`` of the process that ran it.
        trace_id: the OpenTelemetry trace the run belongs to (32 hex digits), if any.
        started_at: Unix time the run started.
        ended_at: Unix time it ended, unless still running (or its process was ended).
        steps: what it did so far, in words.
        result: what it produced (paths, counts), once it succeeded.
        error: why it failed or was cancelled.
        queue: the queue it was delivered from (``None`` outside a job).
        enqueued_at: Unix time of the job's first enqueue (``None`` outside a job).
    """

    job_id: str
    function: str
    attempt: int
    max_attempts: int
    status: RunStatus
    request_id: str | None
    user_id: str | None
    worker: str
    trace_id: str | None
    started_at: float
    ended_at: float | None = None
    steps: tuple[str, ...] = ()
    result: dict[str, Any] = field(default_factory=dict[str, Any])
    error: str | None = None
    queue: str | None = None
    enqueued_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        data = asdict(self)
        data["steps"] = list(self.steps)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRun:
        """Rebuild a record written by ``to_json``."""
        return cls(
            **{
                **data,
                "status": RunStatus(data["status"]),
                "steps": tuple(data.get("steps", ())),
            }
        )


class ActivityLog:
    """The runs recorded under one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / "activity"

    def write(self, run: JobRun) -> None:
        """Store ``run``, replacing an earlier version of the same run."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{run.job_id}.{run.attempt:03d}.json"
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(run.to_json()), encoding="utf-8")
        os.replace(partial, path)

    def runs(self, job_id: str | None = None) -> list[JobRun]:
        """The runs recorded, of one job or of all, oldest first."""
        pattern = f"{job_id}.*.json" if job_id else "*.json"
        found: list[JobRun] = []
        for path in self.directory.glob(pattern):
            # A file being replaced at this instant may vanish; skip it rather than fail.
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                found.append(JobRun.from_json(json.loads(path.read_text(encoding="utf-8"))))
        return sorted(found, key=lambda run: (run.started_at, run.attempt))


def _trace_id() -> str | None:
    span_context = trace.get_current_span().get_span_context()
    return f"{span_context.trace_id:032x}" if span_context.is_valid else None


class RunJournal:
    """The record of the running job, saved at every step.

    Saved at every step so that the record of a run whose process was killed shows how
    far it got.
    """

    def __init__(self, log: ActivityLog, run: JobRun) -> None:
        self._log = log
        self.run = run

    def begin(self) -> None:
        """Record that the run started."""
        self._save(self.run)

    def step(self, text: str) -> None:
        """Record that the job did ``text``."""
        self._save(replace(self.run, steps=(*self.run.steps, text)))

    def produced(self, **result: Any) -> None:
        """Record what the job produced (JSON-ready values)."""
        self._save(replace(self.run, result={**self.run.result, **result}))

    def end(self, status: RunStatus, error: str | None = None) -> None:
        """Record how the run ended."""
        self._save(replace(self.run, status=status, error=error, ended_at=time.time()))

    def _save(self, run: JobRun) -> None:
        self.run = run
        self._log.write(run)


def _why_cancelled(started_at: float) -> str:
    job = current_job()
    soft_timeout_s = job.soft_timeout_s if job else None
    # The soft timeout is the usual reason; a worker that stops also cancels its jobs.
    # The journal starts a little after the job's clock does: allow for it.
    if soft_timeout_s is not None and time.time() - started_at >= soft_timeout_s * 0.9:
        return f"cancelled at its soft timeout ({soft_timeout_s:g}s)"
    return "cancelled (its worker stopped)"


@contextlib.contextmanager
def journal(function: str, data_dir: Path) -> Iterator[RunJournal]:
    """Record the current job's run under ``data_dir`` while the block runs.

    The run ends as succeeded, failed (an exception, which propagates) or cancelled
    (the soft timeout cancelled the job's task; the cancellation propagates too).
    """
    job = current_job()
    run = JobRun(
        # Called outside a job (a test calling the function directly), it still records.
        job_id=job.id if job else f"direct-{uuid.uuid4().hex}",
        function=function,
        attempt=job.attempt if job else 1,
        max_attempts=job.max_attempts if job else 1,
        status=RunStatus.RUNNING,
        request_id=context.get(REQUEST_ID),
        user_id=context.get(USER_ID),
        worker=f"{socket.gethostname()}-{os.getpid()}",
        trace_id=_trace_id(),
        started_at=time.time(),
        queue=job.queue if job else None,
        enqueued_at=job.enqueued_at if job else None,
    )
    entry = RunJournal(ActivityLog(data_dir), run)
    entry.begin()
    try:
        yield entry
    except asyncio.CancelledError:
        entry.end(RunStatus.CANCELLED, _why_cancelled(run.started_at))
        raise
    except Exception as error:
        entry.end(RunStatus.FAILED, f"{type(error).__name__}: {error}")
        raise
    entry.end(RunStatus.SUCCEEDED)
