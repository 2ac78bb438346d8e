"""The ``sync`` driver: runs each job at once, in-process, the way a worker would."""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec

from fast_app.core.queue.drivers.base import Submission
from fast_app.core.queue.envelope import JobEnvelope, decode_envelope
from fast_app.core.queue.execution import run_job
from fast_app.core.queue.handle import Job, JobOutcome, JobStatus
from fast_app.core.queue.retry import Retry, decide_after_run
from fast_app.core.queue.settings import QueueSettings
from fast_app.core.queue.telemetry import SYSTEM_IN_PROCESS, JobObservation, active, observe_job

__all__ = ["SyncDriver"]

logger = logging.getLogger("fast_app.queue")


class SyncDriver:
    """Runs jobs in the caller's process before ``queue()`` returns.

    The job goes through the same encode and decode steps as on a worker, so arguments
    arrive as a worker would see them and a job that works here works there. ``async def``
    functions run on the caller's loop, plain functions in a thread. The soft timeout
    applies; the hard timeout needs a worker process to end and is ignored here. A delay
    is slept before the job starts, and retries run the job again after the same backoff
    as on workers. With an OpenTelemetry SDK configured, each run is a ``process`` span,
    child of ``queue()``'s ``publish`` span through the same headers a worker reads.
    """

    name = "sync"
    runs_in_process = True

    def __init__(self, settings: QueueSettings) -> None:
        self._reraise = settings.sync_raise
        self._retry_base_s = settings.retry_base_s
        self._retry_cap_s = settings.retry_cap_s
        self._queue = settings.name
        self._trace_link_after_s = settings.trace_link_after_s

    async def submit(self, submission: Submission) -> Job:
        """Run the job now (after its delay, with its retries); return its handle."""
        envelope = decode_envelope(submission.body)
        if envelope.not_before is not None:
            await asyncio.sleep(max(0.0, envelope.not_before - time.time()))
        due_at = envelope.not_before or envelope.enqueued_at
        while True:
            observation: JobObservation | None = None
            if active():  # an OpenTelemetry SDK is configured
                observation = observe_job(
                    queue=self._queue,
                    system=SYSTEM_IN_PROCESS,
                    envelope=envelope,
                    message_id=envelope.id,
                    headers=submission.headers,
                    link_after_s=self._trace_link_after_s,
                    due_at=due_at,
                )
            if observation is None:
                outcome = await run_job(submission.spec, envelope, inline=True)
            else:
                outcome = await self._run_observed(submission, envelope, observation)
            # The same decision as on workers; a dead letter here is only the final outcome.
            decision = decide_after_run(
                outcome.status, envelope, base_s=self._retry_base_s, cap_s=self._retry_cap_s
            )
            if observation is not None:
                if isinstance(decision, Retry):
                    observation.retried()
                observation.end()
            if not isinstance(decision, Retry):
                break
            logger.warning(
                "job %s (%s) failed on attempt %d, retrying in %.2fs: %s",
                envelope.id,
                envelope.function,
                envelope.attempt,
                decision.delay_s,
                outcome.error.message if outcome.error else "",
                extra={"job_id": envelope.id, "job_function": envelope.function},
            )
            await asyncio.sleep(decision.delay_s)
            due_at = time.time()
            envelope = msgspec.structs.replace(envelope, attempt=decision.attempt)
        self._report(envelope.id, envelope.function, outcome)
        return Job(envelope.id, envelope.function, self.name, outcome)

    async def _run_observed(
        self,
        submission: Submission,
        envelope: JobEnvelope,
        observation: JobObservation,
    ) -> JobOutcome:
        observation.started()
        try:
            outcome = await run_job(
                submission.spec,
                envelope,
                inline=True,
                trace_context=observation.trace_context,
            )
        except BaseException:
            observation.cancelled()
            observation.end()
            raise
        observation.finished(outcome, envelope.options.soft_timeout_s)
        return outcome

    def _report(self, job_id: str, function: str, outcome: JobOutcome) -> None:
        if outcome.status in (JobStatus.FAILED, JobStatus.INVALID):
            # A soft timeout was already logged as a warning when it happened.
            error = outcome.error
            logger.error(
                "job %s (%s) %s: %s",
                job_id,
                function,
                outcome.status.value,
                (error.traceback or f"{error.type}: {error.message}") if error else "",
                extra={"job_id": job_id, "job_function": function},
            )
        if self._reraise and outcome.exception is not None:
            raise outcome.exception

    async def close(self) -> None:
        """Nothing to release."""
