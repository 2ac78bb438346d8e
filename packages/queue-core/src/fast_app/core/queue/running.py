"""``current_job()``: what a job's own code can know about the run it is in."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from .envelope import JobEnvelope

__all__ = ["RunningJob", "current_job"]

# The job and the queue it came from, set inside each job's own contextvars.Context (see
# execution.run_job), so they are visible to the job's code, its tasks and threads, and
# to nothing else.
running_job: contextvars.ContextVar[tuple[JobEnvelope, str | None]] = contextvars.ContextVar(
    "fast_app_running_job"
)


@dataclass(frozen=True, slots=True)
class RunningJob:
    """The job whose code is running.

    Attributes:
        id: the job id; the same on every attempt and redelivery, a good idempotency key.
        function: dotted path of the job's function.
        attempt: 1 on the first run, 2 on the first retry...
        max_attempts: 1 + the retries it was queued with (``__retries``).
        enqueued_at: Unix time of the first enqueue.
        soft_timeout_s: its soft timeout, if any.
        hard_timeout_s: its hard timeout, if any.
        queue: the queue it was delivered from (``None`` where the runner did not say).
    """

    id: str
    function: str
    attempt: int
    max_attempts: int
    enqueued_at: float
    soft_timeout_s: float | None
    hard_timeout_s: float | None
    queue: str | None = None

    @property
    def is_last_attempt(self) -> bool:
        """No retry follows if this attempt fails."""
        return self.attempt >= self.max_attempts


def current_job() -> RunningJob | None:
    """The job this code runs in, or ``None`` outside a job.

    Works the same on the sync driver and on a worker, in ``async def`` jobs and in plain
    functions (which run in a thread)::

        async def charge(order_id: str) -> None:
            job = current_job()
            await payments.charge(order_id, idempotency_key=job.id if job else order_id)
    """
    running = running_job.get(None)
    if running is None:
        return None
    envelope, queue = running
    options = envelope.options
    return RunningJob(
        id=envelope.id,
        function=envelope.function,
        attempt=envelope.attempt,
        max_attempts=1 + options.retries,
        enqueued_at=envelope.enqueued_at,
        soft_timeout_s=options.soft_timeout_s,
        hard_timeout_s=options.hard_timeout_s,
        queue=queue,
    )
