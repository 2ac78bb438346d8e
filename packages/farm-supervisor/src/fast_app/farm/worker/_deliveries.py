"""One delivery of the jobs queue, from its arrival to its settlement.

Before a job runs, its delivery is checked: its signature (with a signing key), its
envelope, whether it is due, whether a supervisor killed a worker for it (a tombstone),
whether the broker took it back for outliving its consumer_timeout, and whether its
function is allowed. A delivery that fails a check is settled without running: delayed
further, retried or dead-lettered. A due job runs, with its hard-timeout timer set, and
is settled by how it ended.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fast_app.core.queue.amqp import Topology, signature_matches
from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.envelope import JobEnvelope, decode_envelope
from fast_app.core.queue.errors import InvalidJobError
from fast_app.core.queue.execution import run_job
from fast_app.core.queue.functions import describe_function
from fast_app.core.queue.handle import JobError
from fast_app.core.queue.settings import QueueSettings
from fast_app.core.queue.telemetry import (
    SYSTEM_RABBITMQ,
    FailureReason,
    JobObservation,
    active,
    observe_job,
)
from fast_app.farm.dead_letters.reasons import DeadReason
from fast_app.farm.errors import JobImportError
from fast_app.farm.worker._allow_list import AllowList
from fast_app.farm.worker._settlement import Settlement
from fast_app.farm.worker._state import InFlightJob, RecentJobs, WorkerCounters
from fast_app.farm.worker._supervision import SupervisorLink
from fast_app.farm.worker._threads import JobThreads
from fast_app.farm.worker._tombstones import Tombstones

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage

__all__ = ["Deliveries"]

logger = logging.getLogger("fast_app.farm.worker")

_EARLY_TOLERANCE_S = 0.05
_DELIVERY_COUNT = "x-delivery-count"  # set by quorum queues on redeliveries


class Deliveries:
    """Checks, runs and settles the deliveries of one worker.

    Args:
        worker_id: named in logs, dead letters and telemetry.
        queue: queue settings (trace links).
        topology: the farm's queues.
        signing_key: deliveries must be signed with it, when set.
        allow_list: the functions jobs may call.
        tombstones: jobs killed at their hard timeout, settled instead of run again.
        counters: the worker's counters, updated here.
        in_flight: the worker's jobs in flight (its heartbeats report them).
        recent: the jobs ended since the last heartbeat.
        threads: runs the plain (non-``async``) job functions.
        settlement: acknowledges, retries and dead-letters deliveries.
        on_hard_timeout: called with a job when it reaches its hard timeout.
        link: the link to the supervisor, if any (a heartbeat as a job with a hard
            timeout starts).
        pause: stops the worker taking new deliveries, saying why.
    """

    def __init__(
        self,
        *,
        worker_id: str,
        queue: QueueSettings,
        topology: Topology,
        signing_key: bytes | None,
        allow_list: AllowList,
        tombstones: Tombstones,
        counters: WorkerCounters,
        in_flight: dict[int, InFlightJob],
        recent: RecentJobs,
        threads: JobThreads,
        settlement: Settlement,
        on_hard_timeout: Callable[[InFlightJob], None],
        link: SupervisorLink | None,
        pause: Callable[[str], None],
    ) -> None:
        self._worker_id = worker_id
        self._queue = queue
        self._topology = topology
        self._signing_key = signing_key
        self._allow_list = allow_list
        self._tombstones = tombstones
        self._counters = counters
        self.in_flight = in_flight
        self._recent = recent
        self._threads = threads
        self._settlement = settlement
        self._on_hard_timeout = on_hard_timeout
        self._link = link
        self._pause = pause
        # Jobs whose delivery the broker took back for outliving its consumer_timeout:
        # when one comes back here it is dead-lettered instead of timing out in a loop.
        self._outlived_consumer_timeout: set[str] = set()
        self._just_cancelled: collections.deque[tuple[float, str, float]] = collections.deque(
            maxlen=64
        )

    async def receive(self, message: AbstractIncomingMessage) -> None:
        """Handle one delivery; dead-letter it if handling it fails unexpectedly.

        The consumer's edge: nothing a message holds may raise past it, and no delivery
        is left unsettled (``Settlement.dead_letter`` rejects what it cannot store).
        """
        try:
            await self._process(message)
        except asyncio.CancelledError:
            raise  # shutting down: the delivery stays unacknowledged and is redelivered
        except Exception as error:
            logger.exception("worker %s: error while handling a delivery", self._worker_id)
            await self._settlement.dead_letter(
                message, DeadReason.INVALID, _error("worker_error", error), attempts=None
            )

    def blame_consumer_timeout(self) -> None:
        """Mark the job the broker most likely took back for outliving its consumer_timeout.

        Its next delivery is dead-lettered instead of run again.
        """
        # The broker does not say which delivery outlived the timeout: the oldest
        # one did. aio-pika may have cancelled the channel's delivery tasks already.
        candidates = [(job.started_at, job.envelope.id) for job in self.in_flight.values()]
        recent = time.time() - 2
        candidates += [
            (started, job_id) for started, job_id, at in self._just_cancelled if at > recent
        ]
        if candidates:
            self._outlived_consumer_timeout.add(min(candidates)[1])

    async def _process(self, message: AbstractIncomingMessage) -> None:
        body = message.body
        if self._signing_key is not None and not signature_matches(
            body, (message.headers or {}).get(h.SIGNATURE), self._signing_key
        ):
            await self._reject(
                message,
                DeadReason.BAD_SIGNATURE,
                JobError("bad_signature", "signature missing or wrong (ASYNC_FARM_SIGNING_KEY)"),
            )
            return
        try:
            envelope = decode_envelope(body)
        except InvalidJobError as error:
            await self._reject(message, DeadReason.INVALID, _error("invalid", error))
            return
        if envelope.not_before is not None:
            remaining = envelope.not_before - time.time()
            if remaining > _EARLY_TOLERANCE_S:
                await self._settlement.delay_further(message, envelope, remaining)
                return
            if remaining > 0:
                await asyncio.sleep(remaining)
        observation = self._observe(message, envelope)
        handed_over = False
        try:
            handed_over = await self._handle(message, envelope, observation)
        except asyncio.CancelledError:
            if observation is not None:
                observation.cancelled()
            raise
        finally:
            if observation is not None and not handed_over:
                observation.end()

    async def _handle(
        self,
        message: AbstractIncomingMessage,
        envelope: JobEnvelope,
        observation: JobObservation | None,
    ) -> bool:
        """Run a due job, or settle it if it must not run; whether the hard-timeout handler
        took the delivery over (and so ends its observation)."""
        # Only a redelivery can be the job a supervisor killed a worker for (that worker
        # never settled it): a forged tombstone cannot stop a fresh job from running.
        killed = self._tombstones.pop(envelope.id) if message.redelivered else None
        if killed is not None:
            # Its worker was killed at the job's hard timeout: settle it, don't rerun it.
            reason, killed_worker = killed
            self._counters.hard_timeouts += 1
            self._counters.failed += 1
            killed_error = JobError(
                reason,
                f"passed its hard timeout of {envelope.options.hard_timeout_s or 0:g}s; its "
                f"supervisor killed worker {killed_worker}",
            )
            if observation is not None:
                observation.failed(FailureReason.HARD_TIMEOUT, killed_error.message)
            await self._settlement.retry_or_bury(
                message, envelope, reason, killed_error, observation
            )
            return False
        if envelope.id in self._outlived_consumer_timeout:
            self._outlived_consumer_timeout.discard(envelope.id)
            outlived = JobError(
                "consumer_timeout",
                "ran longer than the broker's consumer_timeout; raise it above the job's "
                "longest run (docs/timeouts.md)",
            )
            if observation is not None:
                observation.failed(FailureReason.CONSUMER_TIMEOUT, outlived.message)
            await self._settlement.dead_letter(
                message, DeadReason.CONSUMER_TIMEOUT, outlived, envelope.attempt, observation
            )
            return False
        try:
            function = self._allow_list.resolve(envelope.function)
        except JobImportError as error:
            reason = DeadReason.NOT_ALLOWED
            not_allowed = _error(reason, error)
            if observation is not None:
                observation.rejected(FailureReason.INVALID, not_allowed.message)
            await self._settlement.dead_letter(
                message, reason, not_allowed, envelope.attempt, observation
            )
            return False
        return await self._run(message, envelope, describe_function(function), observation)

    def _observe(
        self, message: AbstractIncomingMessage, envelope: JobEnvelope | None
    ) -> JobObservation | None:
        """Telemetry's hooks for this delivery; ``None`` when no SDK is configured."""
        if not active():
            return None
        headers = message.headers or {}
        count = headers.get(_DELIVERY_COUNT)
        return observe_job(
            queue=self._topology.jobs,
            system=SYSTEM_RABBITMQ,
            envelope=envelope,
            message_id=envelope.id if envelope is not None else message.message_id,
            headers=headers,
            link_after_s=self._queue.trace_link_after_s,
            delivery_count=count if type(count) is int else None,
            worker_id=self._worker_id,
            due_at=None if envelope is None else envelope.not_before or envelope.enqueued_at,
        )

    async def _reject(self, message: AbstractIncomingMessage, reason: str, error: JobError) -> None:
        """Dead-letter a delivery that is not a job this worker may trust."""
        observation = self._observe(message, None)
        if observation is not None:
            observation.rejected(FailureReason.INVALID, f"{reason}: {error.message}")
        try:
            await self._settlement.dead_letter(message, reason, error, None, observation)
        finally:
            if observation is not None:
                observation.end()

    async def _run(
        self,
        message: AbstractIncomingMessage,
        envelope: JobEnvelope,
        spec: Any,
        observation: JobObservation | None,
    ) -> bool:
        now = time.time()
        options = envelope.options
        job = InFlightJob(
            envelope=envelope,
            message=message,
            started_at=now,
            soft_deadline=None if options.soft_timeout_s is None else now + options.soft_timeout_s,
            hard_deadline=None if options.hard_timeout_s is None else now + options.hard_timeout_s,
            observation=observation,
        )
        key = id(job)
        self.in_flight[key] = job
        if options.hard_timeout_s is not None:
            job.hard_timer = asyncio.get_running_loop().call_later(
                options.hard_timeout_s, self._on_hard_timeout, job
            )
            if self._link is not None:
                self._link.beat_now()
        if observation is not None:
            observation.started()
        try:
            # Each delivery has a task of its own already: an async job without a soft
            # timeout runs inline in it rather than in yet another task.
            outcome = await run_job(
                spec,
                envelope,
                executor=self._threads,
                inline=True,
                trace_context=None if observation is None else observation.trace_context,
            )
            if outcome.still_running and job.hard_timer is not None:
                # It could not be stopped at its soft timeout: its hard deadline will end
                # this process; until then take no new jobs, so fewer are hit by the end.
                job.still_running = True
                self._pause(f"job {envelope.id} could not be stopped at its soft timeout")
            elif job.hard_timer is not None:
                job.hard_timer.cancel()
            if not job.ended_by_hard_timeout:  # else its handler settles the delivery
                ended = await self._settlement.settle(message, envelope, outcome, observation)
                self._recent.add(envelope, ended, outcome.duration_s, outcome.error)
        except asyncio.CancelledError:
            self._just_cancelled.append((job.started_at, envelope.id, time.time()))
            raise
        finally:
            if job.hard_timer is not None and not job.still_running:
                job.hard_timer.cancel()
            if not (job.ended_by_hard_timeout or job.still_running):
                self.in_flight.pop(key, None)
        return job.ended_by_hard_timeout


def _error(kind: str, error: BaseException) -> JobError:
    return JobError(kind, f"{type(error).__name__}: {error}")
