"""The endpoints that show what jobs did: activity, one job, thumbnails, dead letters."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from fast_app.core.queue import get_settings as get_queue_settings
from fast_app.farm.dead_letters import DeadLetter, find_dead_letter, list_dead_letters
from fast_app_demo.activity import ActivityLog, JobRun
from fast_app_demo.queues import current_queues
from fast_app_demo.schemas import (
    DeadLetterOut,
    DeadLettersOut,
    IndexOut,
    JobActivityOut,
    JobRunOut,
    RecentActivityOut,
    ReportBatchProgressOut,
    ThumbnailProgressOut,
)
from fast_app_demo.settings import get_settings

__all__ = ["router"]

router = APIRouter(tags=["what jobs did"])

# Ids become file names: accept only what the demo itself makes.
_Identifier = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]

_ENDPOINTS = {
    "POST /signup": "create a user; a job renders the welcome email (context: request and "
    "user id; queue emails, by route)",
    "POST /reports": "a report job with soft and hard timeouts; sections > 10 overrun them "
    "(queue reports, named in the call)",
    "POST /reports/batch": "queue many reports of seconds each (count): a burst on the reports "
    "queue, while emails go through on theirs",
    "POST /orders": "a job that fails twice, then succeeds on its third attempt",
    "POST /invoices": "a job that always fails and ends in the dead-letter queue",
    "POST /thumbnails": "queue many jobs at once (count) to watch the farm scale",
    "GET /jobs/{job_id}": "the runs of one job, as the job recorded them",
    "GET /activity": "the latest runs of all jobs",
    "GET /thumbnails/{batch_id}": "how many thumbnails of a batch are written",
    "GET /reports/batch/{batch_id}": "how many reports of a batch are written",
    "GET /dead-letters": "the dead-letter queues of the demo's queues (async_farm driver)",
}


def _run_out(run: JobRun) -> JobRunOut:
    return JobRunOut.model_validate(run.to_json())


@router.get("/")
async def index() -> IndexOut:
    """What the demo is, its queue driver, its queues and its endpoints."""
    queues = current_queues()
    return IndexOut(
        name="FastApp queue demo",
        driver=get_queue_settings().driver,
        queues={"default": queues.default, "emails": queues.emails, "reports": queues.reports},
        data_dir=str(get_settings().data_dir),
        docs="/docs",
        endpoints=_ENDPOINTS,
    )


@router.get("/jobs/{job_id}")
async def job_activity(job_id: _Identifier) -> JobActivityOut:
    """The runs of one job, first attempt first (none yet: not started)."""
    runs = ActivityLog(get_settings().data_dir).runs(job_id)
    return JobActivityOut(job_id=job_id, runs=[_run_out(run) for run in runs])


@router.get("/activity")
async def recent_activity(
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> RecentActivityOut:
    """The latest runs of all jobs, newest first."""
    data_dir = get_settings().data_dir
    runs = ActivityLog(data_dir).runs()
    return RecentActivityOut(
        data_dir=str(data_dir),
        total=len(runs),
        runs=[_run_out(run) for run in reversed(runs[-limit:])],
    )


@router.get("/thumbnails/{batch_id}")
async def thumbnail_progress(batch_id: _Identifier) -> ThumbnailProgressOut:
    """How many thumbnails of a batch are written."""
    directory = get_settings().data_dir / "thumbnails" / batch_id
    done = sum(1 for _ in directory.glob("*.json")) if directory.is_dir() else 0
    return ThumbnailProgressOut(batch_id=batch_id, done=done)


@router.get("/reports/batch/{batch_id}")
async def report_batch_progress(batch_id: _Identifier) -> ReportBatchProgressOut:
    """How many reports of a batch are written."""
    directory = get_settings().data_dir / "reports"
    done = sum(1 for _ in directory.glob(f"{batch_id}_*.json")) if directory.is_dir() else 0
    return ReportBatchProgressOut(batch_id=batch_id, done=done)


def _letter_out(letter: DeadLetter) -> DeadLetterOut:
    return DeadLetterOut(
        queue=letter.queue or get_queue_settings().name,
        job_id=letter.job_id,
        function=letter.function,
        reason=letter.reason,
        error_type=letter.error_type,
        error=letter.error,
        attempts=letter.attempts,
        context=letter.context,
    )


@router.get("/dead-letters")
async def dead_letters(
    job_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> DeadLettersOut:
    """The dead-letter queues of the demo's queues, read without removing anything
    (``fast-app dlq`` manages them); the oldest ``limit``."""
    settings = get_queue_settings()
    if settings.driver != "async_farm":
        return DeadLettersOut(
            driver=settings.driver,
            dead_letters=[],
            note="the sync driver has no dead-letter queue: a job that fails for good is "
            "logged (logger fast_app.queue) and its outcome is in the response",
        )
    # Each queue has a dead-letter queue of its own (<queue>.dead): read the demo's three.
    queues = current_queues().names()
    if job_id is not None:
        letter = await find_dead_letter(settings, job_id, queues=queues)
        letters = [] if letter is None else [letter]
    else:
        letters = await list_dead_letters(settings, queues=queues, limit=limit)
    return DeadLettersOut(driver=settings.driver, dead_letters=[_letter_out(x) for x in letters])
