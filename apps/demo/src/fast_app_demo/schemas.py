"""Request and response bodies of the demo's API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "DeadLetterOut",
    "DeadLettersOut",
    "IndexOut",
    "InvoiceIn",
    "InvoiceOut",
    "JobActivityOut",
    "JobRunOut",
    "JobTicket",
    "OrderIn",
    "OrderOut",
    "RecentActivityOut",
    "ReportBatchIn",
    "ReportBatchOut",
    "ReportBatchProgressOut",
    "ReportIn",
    "ReportOut",
    "SignupIn",
    "SignupOut",
    "ThumbnailBatchIn",
    "ThumbnailBatchOut",
    "ThumbnailProgressOut",
]


class JobTicket(BaseModel):
    """A job the request queued."""

    job_id: str
    function: str
    driver: str
    queue: str = Field(
        description="The queue it went to: the one named in the call, else routed, else QUEUE_NAME."
    )
    outcome: str | None = Field(
        description="How the job ended, with the sync driver (it ran before the response); "
        "null with async_farm (a worker runs it later)."
    )
    still_running: bool = Field(
        default=False,
        description="sync driver, after a soft timeout: the job (a thread) could not be stopped.",
    )
    error: str | None = None
    follow: str = Field(description="Where to see what the job did.")


class SignupIn(BaseModel):
    """A sign-up."""

    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254, examples=["ada@example.com"])
    name: str = Field(default="Ada Lovelace", min_length=1, max_length=100)


class SignupOut(BaseModel):
    """The new user, and the job sending the welcome email."""

    user_id: str
    job: JobTicket


class ReportIn(BaseModel):
    """A report to generate: more than 10 sections overrun the timeouts."""

    title: str = Field(default="Weekly sales", max_length=200)
    sections: int = Field(default=5, ge=1, le=100)
    renderer: Literal["async", "blocking"] = Field(
        default="async",
        description="async: awaits between sections, so the soft timeout cancels it; "
        "blocking: blocks the event loop, so only the hard timeout stops it (the supervisor "
        "kills the worker process).",
    )


class ReportOut(BaseModel):
    """The report id and its job."""

    report_id: str
    soft_timeout_s: float
    hard_timeout_s: float
    job: JobTicket


class ReportBatchIn(BaseModel):
    """A batch of reports, each taking seconds: a burst on the reports queue."""

    count: int = Field(default=50, ge=1, le=2_000)
    sections: int = Field(
        default=20, ge=1, le=100, description="Sections of each report (0.1 s each)."
    )


class ReportBatchOut(BaseModel):
    """The batch, its queue, and how long queueing took."""

    batch_id: str
    enqueued: int
    queue: str
    seconds_each: float
    enqueue_seconds: float
    driver: str
    follow: str


class ReportBatchProgressOut(BaseModel):
    """Reports of a batch written so far."""

    batch_id: str
    done: int


class OrderIn(BaseModel):
    """An order, shipped by the warehouse (whose API is flaky)."""

    sku: str = Field(default="book-42", max_length=64)
    quantity: int = Field(default=1, ge=1, le=1000)


class OrderOut(BaseModel):
    """The order id and the job notifying the warehouse."""

    order_id: str
    retries: int
    job: JobTicket


class InvoiceIn(BaseModel):
    """An invoice, exported to the accounting system (which refuses it)."""

    customer: str = Field(default="ACME Corp", max_length=200)
    amount_eur: float = Field(default=120.0, gt=0)


class InvoiceOut(BaseModel):
    """The invoice id and the job exporting it."""

    invoice_id: str
    retries: int
    job: JobTicket


class ThumbnailBatchIn(BaseModel):
    """How many thumbnails to make at once."""

    count: int = Field(default=100, ge=1, le=10_000)


class ThumbnailBatchOut(BaseModel):
    """The batch, how many jobs were queued, and how long queueing took."""

    batch_id: str
    enqueued: int
    enqueue_seconds: float
    driver: str
    follow: str


class ThumbnailProgressOut(BaseModel):
    """Thumbnails of a batch written so far."""

    batch_id: str
    done: int


class JobRunOut(BaseModel):
    """One run (attempt) of a job, as the job recorded it."""

    job_id: str
    function: str
    attempt: int
    max_attempts: int
    status: Literal["running", "succeeded", "failed", "cancelled"]
    queue: str | None = Field(default=None, description="The queue it was delivered from.")
    enqueued_at: float | None = Field(
        default=None, description="Unix time of the job's first enqueue."
    )
    request_id: str | None
    user_id: str | None
    worker: str
    trace_id: str | None
    started_at: float
    ended_at: float | None
    steps: list[str]
    result: dict[str, Any]
    error: str | None


class JobActivityOut(BaseModel):
    """The runs of one job, first attempt first."""

    job_id: str
    runs: list[JobRunOut]


class RecentActivityOut(BaseModel):
    """The latest runs of all jobs, newest first."""

    data_dir: str
    total: int
    runs: list[JobRunOut]


class DeadLetterOut(BaseModel):
    """A job in the dead-letter queue of one of the demo's queues."""

    queue: str = Field(description="The jobs queue whose dead-letter queue holds it.")
    job_id: str | None
    function: str | None
    reason: str | None
    error_type: str | None
    error: str | None
    attempts: int | None
    context: dict[str, Any] | None


class DeadLettersOut(BaseModel):
    """The dead-letter queue (async_farm driver only)."""

    driver: str
    dead_letters: list[DeadLetterOut]
    note: str | None = None


class IndexOut(BaseModel):
    """What the demo is and where to go."""

    name: str
    driver: str
    queues: dict[str, str] = Field(
        description="Where jobs go: default (QUEUE_NAME), emails (routed), reports (named)."
    )
    data_dir: str
    docs: str
    endpoints: dict[str, str]
