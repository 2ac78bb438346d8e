"""Ending a delivery: acknowledge it, after publishing its retry or its dead letter.

Every path publishes first (confirmed by the broker) and acknowledges last, so a crash
in between repeats a job rather than losing it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import msgspec

from fast_app.core.queue.amqp import Publisher, Topology
from fast_app.core.queue.envelope import JobEnvelope, encode_envelope
from fast_app.core.queue.handle import JobError, JobOutcome, JobStatus
from fast_app.core.queue.retry import (
    Bury,
    Done,
    RetryDecision,
    decide_after_failure,
    decide_after_run,
)
from fast_app.core.queue.settings import QueueSettings
from fast_app.core.queue.telemetry import JobObservation, queue_metrics, trace_headers
from fast_app.farm.printable import printable
from fast_app.farm.worker._dead_letters import dead_letter
from fast_app.farm.worker._state import WorkerCounters

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage

__all__ = ["DEAD_LETTERED", "RETRIED", "SUCCEEDED", "Settlement"]

# How a run ended, as ``Settlement.settle`` reports it (and heartbeats show it).
SUCCEEDED = "succeeded"
RETRIED = "retried"
DEAD_LETTERED = "dead_lettered"

logger = logging.getLogger("fast_app.farm.worker")


class Settlement:
    """Settles a worker's deliveries.

    Args:
        publisher: publishes retries, re-delays and dead letters (with confirms).
        queue: retry backoff settings.
        topology: the farm's queues.
        counters: the worker's counters, updated here.
        worker_id: named in dead letters and logs.
        signing_key: signs what the worker says of its dead letters, when set.
    """

    def __init__(
        self,
        publisher: Publisher,
        queue: QueueSettings,
        topology: Topology,
        counters: WorkerCounters,
        worker_id: str,
        signing_key: bytes | None = None,
    ) -> None:
        self._publisher = publisher
        self._signing_key = signing_key
        self.queue = queue
        self.topology = topology
        self.counters = counters
        self.worker_id = worker_id

    async def settle(
        self,
        message: AbstractIncomingMessage,
        envelope: JobEnvelope,
        outcome: JobOutcome,
        observation: JobObservation | None,
    ) -> str:
        """Acknowledge a success; retry or dead-letter a failure, then acknowledge.

        Returns:
            How the run ended: ``succeeded``, ``retried`` or ``dead_lettered``.
        """
        if observation is not None:
            observation.finished(outcome, envelope.options.soft_timeout_s)
        status = outcome.status
        if status is JobStatus.SUCCEEDED:
            self.counters.succeeded += 1
        elif status is JobStatus.INVALID:
            self.counters.invalid += 1
        else:
            if status is JobStatus.SOFT_TIMEOUT:
                self.counters.soft_timeouts += 1
            self.counters.failed += 1
        decision = decide_after_run(
            status, envelope, base_s=self.queue.retry_base_s, cap_s=self.queue.retry_cap_s
        )
        return await self._carry_out(message, envelope, decision, outcome.error, observation)

    async def retry_or_bury(
        self,
        message: AbstractIncomingMessage,
        envelope: JobEnvelope,
        reason: str,
        error: JobError | None,
        observation: JobObservation | None,
    ) -> str:
        """Publish a retry after backoff if retries remain, else a dead letter; then ack.

        For failures that have no ``JobStatus`` (a hard timeout, mostly).

        Returns:
            ``retried`` or ``dead_lettered``.
        """
        decision = decide_after_failure(
            reason, envelope, base_s=self.queue.retry_base_s, cap_s=self.queue.retry_cap_s
        )
        return await self._carry_out(message, envelope, decision, error, observation)

    async def _carry_out(
        self,
        message: AbstractIncomingMessage,
        envelope: JobEnvelope,
        decision: RetryDecision,
        error: JobError | None,
        observation: JobObservation | None,
    ) -> str:
        """Ack, publish the retry or store the dead letter that ``decision`` asks for."""
        if isinstance(decision, Done):
            await self.ack(message, envelope.id)
            return SUCCEEDED
        if isinstance(decision, Bury):
            await self.dead_letter(message, decision.reason, error, decision.attempts, observation)
            return DEAD_LETTERED
        retry = msgspec.structs.replace(
            envelope, attempt=decision.attempt, not_before=time.time() + decision.delay_s
        )
        # The retry's run continues this run's trace (or, untraced here, the producer's).
        headers = observation.retry_headers() if observation is not None else None
        await self._publisher.publish(
            encode_envelope(retry),
            retry,
            extra_headers=headers or trace_headers(message.headers),
        )
        self.counters.retried += 1
        if observation is not None:
            observation.retried()
        logger.warning(
            "job %s (%s) attempt %d %s (%s); retry %d of %d in %.2fs",
            envelope.id,
            envelope.function,
            envelope.attempt,
            decision.reason,
            f"{error.type}: {error.message}" if error else decision.reason,
            envelope.attempt,
            envelope.options.retries,
            decision.delay_s,
        )
        await self.ack(message, envelope.id)
        return RETRIED

    async def delay_further(
        self, message: AbstractIncomingMessage, envelope: JobEnvelope, remaining: float
    ) -> None:
        """Send a job that came back early on to its next delay level, then ack."""
        # Came back from a delay level with time left: on to the next level. The body is
        # unchanged (its signature stays valid).
        await self._publisher.publish(
            message.body, envelope, extra_headers=trace_headers(message.headers)
        )
        await self.ack(message, envelope.id)
        logger.debug("job %s not due for %.2fs: delayed further", envelope.id, remaining)

    async def dead_letter(
        self,
        message: AbstractIncomingMessage,
        reason: str,
        error: JobError | None,
        attempts: int | None,
        observation: JobObservation | None = None,
    ) -> None:
        """Store a copy of the delivery with why it failed in the dead-letter queue; ack.

        Never leaves the delivery unsettled: when the copy cannot be stored, the delivery
        is rejected without requeue, and the broker dead-letters it itself (``x-death``
        says ``rejected``). Only a lost channel leaves it to a redelivery.
        """
        job_id = printable(message.message_id or "?")[:64]
        try:
            properties = dead_letter(
                message,
                reason=reason,
                error=error,
                attempts=attempts,
                worker_id=self.worker_id,
                signing_key=self._signing_key,
            )
            await self._publisher.publish_dead(message.body, properties, job_id)
        except asyncio.CancelledError:
            raise
        except Exception as publish_error:
            logger.error(
                "worker %s could not store the dead letter of job %s (%s: %s); rejecting "
                "the delivery so that the broker dead-letters it",
                self.worker_id,
                job_id,
                type(publish_error).__name__,
                printable(str(publish_error))[:300],
            )
            await self._reject(message, job_id)
            return
        self.counters.dead_lettered += 1
        if observation is not None:
            observation.dead_lettered(reason)
        elif (metrics := queue_metrics()) is not None:
            metrics.dead_lettered(self.topology.jobs, reason)
        logger.error(
            "job %s (%s) dead-lettered after %s attempts (%s): %s",
            job_id,
            printable(message.type or "?")[:300],
            "?" if attempts is None else attempts,
            reason,
            printable(error.traceback or f"{error.type}: {error.message}", keep_lines=True)
            if error
            else "",
        )
        await self.ack(message, job_id)

    async def _reject(self, message: AbstractIncomingMessage, job_id: str) -> None:
        try:
            await message.reject(requeue=False)
        except Exception as error:
            logger.warning(
                "worker %s could not reject job %s (%s): the broker will deliver it again",
                self.worker_id,
                job_id,
                type(error).__name__,
            )
        else:
            self.counters.dead_lettered += 1

    async def ack(self, message: AbstractIncomingMessage, job_id: str) -> None:
        """Acknowledge; a failure only means the broker will deliver the job again."""
        try:
            await message.ack()
        except Exception as error:
            logger.warning(
                "worker %s could not acknowledge job %s (%s): the broker will deliver it again",
                self.worker_id,
                job_id,
                type(error).__name__,
            )
