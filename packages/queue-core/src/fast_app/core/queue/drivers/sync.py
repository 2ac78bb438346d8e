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
from fast_app.core.queue.hooks import HookChain, JobRun, current_hooks
from fast_app.core.queue.retry import Retry, RetryDecision, decide_after_run
from fast_app.core.queue.settings import QueueSettings
from fast_app.core.queue.telemetry import SYSTEM_IN_PROCESS

__all__ = ["SyncDriver"]

logger = logging.getLogger("fast_app.queue")


class SyncDriver:
    """Runs jobs in the caller's process before ``queue()`` returns.

    The job goes through the same encode and decode steps as on a worker, so arguments
    arrive as a worker would see them and a job that works here works there. ``async def``
    functions run on the caller's loop, plain functions in a thread. The soft timeout
    applies; the hard timeout needs a worker process to end and is ignored here. A delay
    is slept before the job starts, and retries run the job again after the same backoff
    as on workers. Each run goes through the same hooks as on a worker (with an
    OpenTelemetry SDK configured, a ``process`` span, child of ``queue()``'s ``publish``
    span through the same headers a worker reads).
    """

    name = "sync"
    runs_in_process = True

    def __init__(self, settings: QueueSettings) -> None:
        self._settings = settings
        self._reraise = settings.sync_raise

    async def submit(self, submission: Submission) -> Job:
        """Run the job now (after its delay, with its retries); return its handle."""
        envelope = decode_envelope(submission.body)
        queue = submission.queue or self._settings.name
        if envelope.not_before is not None:
            await asyncio.sleep(max(0.0, envelope.not_before - time.time()))
        while True:
            hooks = current_hooks()
            if hooks.hooks:
                outcome, decision = await self._attempt_with_hooks(
                    hooks, submission, envelope, queue
                )
            else:  # no hook to call: the common case pays for none
                outcome = await run_job(submission.spec, envelope, inline=True, queue=queue)
                decision = self._decide(outcome, envelope)
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
            # As on workers: the retry is due once its backoff is over.
            not_before = time.time() + decision.delay_s
            envelope = msgspec.structs.replace(
                envelope, attempt=decision.attempt, not_before=not_before
            )
            await asyncio.sleep(decision.delay_s)
        self._report(envelope.id, envelope.function, outcome)
        return Job(envelope.id, envelope.function, self.name, outcome, queue)

    async def _attempt_with_hooks(
        self, hooks: HookChain, submission: Submission, envelope: JobEnvelope, queue: str
    ) -> tuple[JobOutcome, RetryDecision]:
        """Run the job once through ``hooks``; how it ended and what comes next."""
        settings = self._settings
        run = JobRun(settings, queue, SYSTEM_IN_PROCESS, envelope, envelope.id, submission.headers)
        hooks.delivered(run)
        hooks.before_run(run)
        try:
            outcome = await run_job(
                submission.spec,
                envelope,
                inline=True,
                trace_context=run.trace_context,
                queue=queue,
            )
        except BaseException:
            hooks.cancelled(run)
            hooks.settled(run)
            raise
        hooks.after_run(run, outcome)
        decision = self._decide(outcome, envelope)
        if isinstance(decision, Retry):
            hooks.retried(run)
        hooks.settled(run)
        return outcome, decision

    def _decide(self, outcome: JobOutcome, envelope: JobEnvelope) -> RetryDecision:
        # The same decision as on workers; a dead letter here is only the final outcome.
        settings = self._settings
        return decide_after_run(
            outcome.status, envelope, base_s=settings.retry_base_s, cap_s=settings.retry_cap_s
        )

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
