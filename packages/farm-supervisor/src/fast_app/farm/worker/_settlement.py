"""Ending a delivery: acknowledge it, after publishing its retry or its dead letter.

Every path publishes first (confirmed by the broker) and acknowledges last, so a crash
in between repeats a job rather than losing it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import msgspec

from fast_app.core.queue.amqp import Publisher
from fast_app.core.queue.envelope import JobEnvelope, encode_envelope
from fast_app.core.queue.handle import JobError, JobOutcome
from fast_app.core.queue.retry import (
    Bury,
    Done,
    RetryDecision,
    decide_after_failure,
    decide_after_run,
)
from fast_app.core.queue.settings import QueueSettings
from fast_app.core.queue.telemetry import trace_headers
from fast_app.farm._wording import counted
from fast_app.farm.printable import printable
from fast_app.farm.worker._dead_letters import dead_letter
from fast_app.farm.worker._delivery import Delivery

if TYPE_CHECKING:
    from fast_app.farm.worker._incoming import IncomingJob

__all__ = ["Settlement"]

logger = logging.getLogger("fast_app.farm.worker")

# Pauses between tries of a publish that replaces a delivery (a retry, a further delay).
_REPUBLISH_PAUSES_S = (0.2, 1.0)


class Settlement:
    """Settles a worker's deliveries, telling their hooks what became of them.

    Args:
        publisher: publishes retries, re-delays and dead letters (with confirms).
        queue: retry backoff settings.
        worker_id: named in dead letters and logs.
        signing_key: signs what the worker says of its dead letters, when set.
    """

    def __init__(
        self,
        publisher: Publisher,
        queue: QueueSettings,
        worker_id: str,
        signing_key: bytes | None = None,
    ) -> None:
        self._publisher = publisher
        self._signing_key = signing_key
        self.queue = queue
        self.worker_id = worker_id

    async def settle(self, delivery: Delivery, envelope: JobEnvelope, outcome: JobOutcome) -> None:
        """Acknowledge a success; retry or dead-letter a failure, then acknowledge."""
        delivery.hooks.after_run(delivery.run, outcome)
        decision = decide_after_run(
            outcome.status, envelope, base_s=self.queue.retry_base_s, cap_s=self.queue.retry_cap_s
        )
        if isinstance(decision, Done):
            # Most jobs end here: acknowledged inline, as ``ack`` does, since every
            # coroutine between the delivery's task and the socket is resumed on the way.
            try:
                await delivery.message.ack()
            except Exception as error:
                self._not_acknowledged(envelope.id, error)
            return
        await self._carry_out(delivery, envelope, decision, outcome.error)

    async def retry_or_bury(
        self, delivery: Delivery, envelope: JobEnvelope, reason: str, error: JobError | None
    ) -> None:
        """Publish a retry after backoff if retries remain, else a dead letter; then ack.

        For failures that have no ``JobStatus`` (a hard timeout, mostly).
        """
        decision = decide_after_failure(
            reason, envelope, base_s=self.queue.retry_base_s, cap_s=self.queue.retry_cap_s
        )
        await self._carry_out(delivery, envelope, decision, error)

    async def _carry_out(
        self,
        delivery: Delivery,
        envelope: JobEnvelope,
        decision: RetryDecision,
        error: JobError | None,
    ) -> None:
        """Ack, publish the retry or store the dead letter that ``decision`` asks for."""
        message = delivery.message
        if isinstance(decision, Done):
            await self.ack(message, envelope.id)
            return
        if isinstance(decision, Bury):
            await self.dead_letter(delivery, decision.reason, error, decision.attempts)
            return
        retry = msgspec.structs.replace(
            envelope, attempt=decision.attempt, not_before=time.time() + decision.delay_s
        )
        # The retry's run continues this run's trace (or, untraced here, the producer's).
        headers = delivery.hooks.before_retry(delivery.run)
        stored = await self._publish_or_hand_back(
            message,
            envelope.id,
            "its retry",
            lambda: self._publisher.publish(
                encode_envelope(retry),
                retry,
                extra_headers=headers or trace_headers(message.headers),
            ),
        )
        if not stored:
            return
        delivery.hooks.retried(delivery.run)
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

    async def delay_further(
        self, message: IncomingJob, envelope: JobEnvelope, remaining: float
    ) -> None:
        """Send a job that came back early on to its next delay level, then ack."""
        # Came back from a delay level with time left: on to the next level. The body is
        # unchanged (its signature stays valid).
        stored = await self._publish_or_hand_back(
            message,
            envelope.id,
            "its next delay",
            lambda: self._publisher.publish(
                message.body, envelope, extra_headers=trace_headers(message.headers)
            ),
        )
        if stored:
            await self.ack(message, envelope.id)
            logger.debug("job %s not due for %.2fs: delayed further", envelope.id, remaining)

    async def _publish_or_hand_back(
        self,
        message: IncomingJob,
        job_id: str,
        what: str,
        publish: Callable[[], Awaitable[None]],
    ) -> bool:
        """Publish what replaces ``message`` (a retry, a later delay); whether it is stored.

        A broker that nacks or does not confirm is mostly a passing state (a quorum
        queue electing a leader, a resource alarm): the publish is tried again after a
        pause. When it still is not stored, the delivery goes back to its queue, to be
        run again: never acknowledged without its replacement (lost), never dead-lettered
        for the broker's trouble (the quorum queue's delivery limit bounds the loop).
        """
        for attempt, pause_s in enumerate((*_REPUBLISH_PAUSES_S, None), start=1):
            try:
                await publish()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if pause_s is None:
                    logger.error(
                        "worker %s could not store %s of job %s after %d tries (%s: %s); "
                        "its delivery goes back to the queue",
                        self.worker_id,
                        what,
                        job_id,
                        attempt,
                        type(error).__name__,
                        printable(str(error))[:300],
                    )
                    await self._hand_back(message, job_id)
                    return False
                logger.warning(
                    "worker %s could not store %s of job %s (%s): trying again in %.1fs",
                    self.worker_id,
                    what,
                    job_id,
                    type(error).__name__,
                    pause_s,
                )
                await asyncio.sleep(pause_s)
            else:
                return True
        return False  # not reached: the last try returns either way

    async def _hand_back(self, message: IncomingJob, job_id: str) -> None:
        """Put the delivery back in its queue; a failure means a redelivery all the same."""
        try:
            await message.nack(requeue=True)
        except Exception as error:
            logger.warning(
                "worker %s could not hand job %s back (%s): the broker will deliver it again",
                self.worker_id,
                job_id,
                type(error).__name__,
            )

    async def dead_letter(
        self,
        delivery: Delivery,
        reason: str,
        error: JobError | None,
        attempts: int | None,
    ) -> None:
        """Store a copy of the delivery with why it failed in the dead-letter queue; ack.

        Never leaves the delivery unsettled: when the copy cannot be stored, the delivery
        is rejected without requeue, and the broker dead-letters it itself (``x-death``
        says ``rejected``). Only a lost channel leaves it to a redelivery.
        """
        message = delivery.message
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
            if await self._reject(message, job_id):
                delivery.hooks.dead_lettered(delivery.run, reason)
            return
        delivery.hooks.dead_lettered(delivery.run, reason)
        logger.error(
            "job %s (%s) dead-lettered after %s (%s): %s",
            job_id,
            printable(message.type or "?")[:300],
            "? attempts" if attempts is None else counted(attempts, "attempt"),
            reason,
            printable(error.traceback or f"{error.type}: {error.message}", keep_lines=True)
            if error
            else "",
        )
        await self.ack(message, job_id)

    async def _reject(self, message: IncomingJob, job_id: str) -> bool:
        """Reject without requeue (the broker dead-letters it); whether that was sent."""
        try:
            await message.reject(requeue=False)
        except Exception as error:
            logger.warning(
                "worker %s could not reject job %s (%s): the broker will deliver it again",
                self.worker_id,
                job_id,
                type(error).__name__,
            )
            return False
        return True

    async def ack(self, message: IncomingJob, job_id: str) -> None:
        """Acknowledge; a failure only means the broker will deliver the job again."""
        try:
            await message.ack()
        except Exception as error:
            self._not_acknowledged(job_id, error)

    def _not_acknowledged(self, job_id: str, error: Exception) -> None:
        logger.warning(
            "worker %s could not acknowledge job %s (%s): the broker will deliver it again",
            self.worker_id,
            job_id,
            type(error).__name__,
        )
