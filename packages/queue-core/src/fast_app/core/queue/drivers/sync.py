"""The ``sync`` driver: runs each job at once, in-process, the way a worker would."""

from __future__ import annotations

import logging

from fast_app.core.queue.envelope import decode_envelope
from fast_app.core.queue.execution import run_job
from fast_app.core.queue.handle import Job, JobStatus
from fast_app.core.queue.settings import QueueSettings

from .base import Submission

__all__ = ["SyncDriver"]

logger = logging.getLogger("fast_app.queue")


class SyncDriver:
    """Runs jobs in the caller's process before ``queue()`` returns.

    The job goes through the same encode and decode steps as on a worker, so arguments
    arrive as a worker would see them and a job that works here works there. ``async def``
    functions run on the caller's loop, plain functions in a thread. The soft timeout
    applies; the hard timeout needs a worker process to end and is ignored here.
    """

    name = "sync"
    runs_in_process = True

    def __init__(self, settings: QueueSettings) -> None:
        self._reraise = settings.sync_raise

    async def submit(self, submission: Submission) -> Job:
        """Run the job now and return its handle with the outcome."""
        envelope = decode_envelope(submission.body)
        outcome = await run_job(submission.spec, envelope, inline=True)
        if outcome.status in (JobStatus.FAILED, JobStatus.INVALID):
            # A soft timeout was already logged as a warning when it happened.
            error = outcome.error
            logger.error(
                "job %s (%s) %s: %s",
                envelope.id,
                envelope.function,
                outcome.status.value,
                error.traceback or f"{error.type}: {error.message}" if error else "",
                extra={"job_id": envelope.id, "job_function": envelope.function},
            )
        if self._reraise and outcome.exception is not None:
            raise outcome.exception
        return Job(envelope.id, envelope.function, self.name, outcome)

    async def close(self) -> None:
        """Nothing to release."""
