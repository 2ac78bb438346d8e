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
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fast_app.core.queue.amqp import Topology, signature_matches
from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.envelope import JobEnvelope, decode_envelope
from fast_app.core.queue.errors import InvalidJobError
from fast_app.core.queue.execution import run_job
from fast_app.core.queue.functions import FunctionSpec, describe_function
from fast_app.core.queue.handle import JobError, JobOutcome, JobStatus
from fast_app.core.queue.hooks import HookSelection, JobRun
from fast_app.core.queue.settings import QueueSettings
from fast_app.core.queue.telemetry import SYSTEM_RABBITMQ
from fast_app.farm.dead_letters.reasons import DeadReason
from fast_app.farm.errors import JobImportError
from fast_app.farm.worker._allow_list import AllowList
from fast_app.farm.worker._delivery import Delivery
from fast_app.farm.worker._in_flight import JobsInFlight
from fast_app.farm.worker._settlement import Settlement
from fast_app.farm.worker._state import InFlightJob
from fast_app.farm.worker._threads import JobThreads
from fast_app.farm.worker._tombstones import Tombstones

if TYPE_CHECKING:
    from fast_app.farm.worker._incoming import IncomingJob

__all__ = ["Deliveries", "WorkerIdentity"]

logger = logging.getLogger("fast_app.farm.worker")

_EARLY_TOLERANCE_S = 0.05
_DELIVERY_COUNT = "x-delivery-count"  # set by quorum queues on redeliveries


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    """Who handles the deliveries, and what of the farm's settings they are checked with.

    Attributes:
        worker_id: named in logs, dead letters and hooks.
        queue: queue settings (hooks read them).
        topology: the farm's queues.
        signing_key: deliveries must be signed with it, when set.
    """

    worker_id: str
    queue: QueueSettings
    topology: Topology
    signing_key: bytes | None


class Deliveries:
    """Checks, runs and settles the deliveries of one worker.

    Args:
        worker: the worker's id, settings and signing key.
        allow_list: the functions jobs may call.
        tombstones: jobs killed at their hard timeout, settled instead of run again.
        in_flight: the worker's jobs in flight (started and ended here).
        threads: runs the plain (non-``async``) job functions.
        settlement: acknowledges, retries and dead-letters deliveries.
        hooks: the hooks called along each delivery (telemetry, statistics, the app's).
        pause: stops the worker taking new deliveries, saying why.
    """

    def __init__(
        self,
        *,
        worker: WorkerIdentity,
        allow_list: AllowList,
        tombstones: Tombstones,
        in_flight: JobsInFlight,
        threads: JobThreads,
        settlement: Settlement,
        hooks: HookSelection,
        pause: Callable[[str], None],
    ) -> None:
        self._worker = worker
        self._allow_list = allow_list
        self._tombstones = tombstones
        self.in_flight = in_flight
        self._threads = threads
        self._settlement = settlement
        self._hooks = hooks
        self._pause = pause
        # Jobs whose delivery the broker took back for outliving its consumer_timeout:
        # when one comes back here it is dead-lettered instead of timing out in a loop.
        self._outlived_consumer_timeout: set[str] = set()
        # The functions jobs named that the allow-list let run, described once: the
        # allow-list's verdict on a path never changes.
        self._specs: dict[str, FunctionSpec] = {}
        self._just_cancelled: collections.deque[tuple[float, str, float]] = collections.deque(
            maxlen=64
        )

    async def receive(self, message: IncomingJob, *, cancelled_by: str | None = None) -> None:
        """Handle one delivery; dead-letter it if handling it fails unexpectedly.

        The consumer's edge: nothing a message holds may raise past it, and no delivery
        is left unsettled (``Settlement.dead_letter`` rejects what it cannot store).

        Args:
            message: the delivery.
            cancelled_by: who cancelled it while it waited for a slot: it is checked as
                any delivery, then settled as cancelled instead of run.
        """
        worker = self._worker
        headers = message.headers or {}
        count = headers.get(_DELIVERY_COUNT)
        run = JobRun(
            worker.queue,
            worker.topology.jobs,
            SYSTEM_RABBITMQ,
            None,
            message.message_id,
            headers,
            count if type(count) is int else None,
            worker.worker_id,
        )
        delivery = Delivery(message, run, self._hooks.current())
        settled_elsewhere = False
        try:
            settled_elsewhere = await self._process(delivery, cancelled_by)
        except asyncio.CancelledError:
            # Shutting down: the delivery stays unacknowledged and is redelivered.
            delivery.hooks.cancelled(run)
            raise
        except Exception as error:
            logger.exception("worker %s: error while handling a delivery", worker.worker_id)
            await self._settlement.dead_letter(
                delivery, DeadReason.INVALID, _error("worker_error", error), attempts=None
            )
        finally:
            if not settled_elsewhere:
                delivery.hooks.settled(run)

    def blame_consumer_timeout(self) -> None:
        """Mark the job the broker most likely took back for outliving its consumer_timeout.

        Its next delivery is dead-lettered instead of run again.
        """
        # The broker does not say which delivery outlived the timeout: the oldest
        # one did. aiormq may have cancelled the channel's delivery tasks already.
        candidates = self.in_flight.started_at()
        recent = time.time() - 2
        candidates += [
            (started, job_id) for started, job_id, at in self._just_cancelled if at > recent
        ]
        if candidates:
            self._outlived_consumer_timeout.add(min(candidates)[1])

    async def _process(self, delivery: Delivery, cancelled_by: str | None = None) -> bool:
        """Check the delivery, run it if it may run, settle it; whether something else
        (the next delay level, or the hard-timeout handler) took it over."""
        message, run, hooks = delivery.message, delivery.run, delivery.hooks
        body = message.body
        signing_key = self._worker.signing_key
        if signing_key is not None and not signature_matches(
            body, (message.headers or {}).get(h.SIGNATURE), signing_key
        ):
            error = JobError("bad_signature", "signature missing or wrong (ASYNC_FARM_SIGNING_KEY)")
            await self._refuse(delivery, DeadReason.BAD_SIGNATURE, error, None)
            return False
        try:
            envelope = decode_envelope(body)
        except InvalidJobError as invalid:
            await self._refuse(delivery, DeadReason.INVALID, _error("invalid", invalid), None)
            return False
        if envelope.not_before is not None:
            remaining = envelope.not_before - time.time()
            if remaining > _EARLY_TOLERANCE_S:
                await self._settlement.delay_further(message, envelope, remaining)
                return True
            if remaining > 0:
                await asyncio.sleep(remaining)
        run.envelope = envelope
        run.message_id = envelope.id
        hooks.delivered(run)
        # Only a redelivery can be the job a supervisor killed a worker for (that worker
        # never settled it): a forged tombstone cannot stop a fresh job from running.
        killed = self._tombstones.pop(envelope.id) if message.redelivered else None
        if killed is not None:
            # Its worker was killed at the job's hard timeout: settle it, don't rerun it.
            reason, killed_worker = killed
            killed_error = JobError(
                reason,
                f"passed its hard timeout of {envelope.options.hard_timeout_s or 0:g}s; its "
                f"supervisor killed worker {killed_worker}",
            )
            hooks.hard_timeout(run, killed_error.message)
            await self._settlement.retry_or_bury(delivery, envelope, reason, killed_error)
            return False
        if envelope.id in self._outlived_consumer_timeout:
            self._outlived_consumer_timeout.discard(envelope.id)
            outlived = JobError(
                "consumer_timeout",
                "ran longer than the broker's consumer_timeout; raise it above the job's "
                "longest run (docs/timeouts.md)",
            )
            hooks.consumer_timeout(run, outlived.message)
            await self._settlement.dead_letter(
                delivery, DeadReason.CONSUMER_TIMEOUT, outlived, envelope.attempt
            )
            return False
        spec = self._specs.get(envelope.function)
        if spec is None:
            try:
                spec = self._allowed_spec(envelope.function)
            except JobImportError as not_importable:
                not_allowed = _error(DeadReason.NOT_ALLOWED, not_importable)
                await self._refuse(delivery, DeadReason.NOT_ALLOWED, not_allowed, envelope.attempt)
                return False
        if cancelled_by is not None:
            await self._settle_cancelled_before_start(delivery, envelope, cancelled_by)
            return False
        return await self._run(delivery, envelope, spec)

    def _allowed_spec(self, path: str) -> FunctionSpec:
        """The function at ``path`` if the allow-list lets it run, described (cached).

        Raises:
            JobImportError: it may not run here.
        """
        spec = describe_function(self._allow_list.resolve(path))
        self._specs[path] = spec
        return spec

    async def _refuse(
        self, delivery: Delivery, reason: str, error: JobError, attempts: int | None
    ) -> None:
        """Dead-letter a delivery that must not run (not a job this worker may trust)."""
        run = delivery.run
        if run.envelope is None:  # never decoded: its hooks hear of it only now
            delivery.hooks.delivered(run)
        delivery.hooks.refused(run, reason, error.message)
        await self._settlement.dead_letter(delivery, reason, error, attempts)

    async def _run(self, delivery: Delivery, envelope: JobEnvelope, spec: FunctionSpec) -> bool:
        """Run a due job and settle it by how it ended; whether its hard-timeout handler
        took it over (and so settles it)."""
        now = time.time()
        options = envelope.options
        job = InFlightJob(
            envelope=envelope,
            message=delivery.message,
            started_at=now,
            soft_deadline=None if options.soft_timeout_s is None else now + options.soft_timeout_s,
            hard_deadline=None if options.hard_timeout_s is None else now + options.hard_timeout_s,
            delivery=delivery,
        )
        job.task = asyncio.current_task()
        job.in_thread = not spec.is_async
        self.in_flight.start(job)
        delivery.hooks.before_run(delivery.run)
        outcome: JobOutcome | None = None
        try:
            try:
                # Each delivery has a task of its own already: an async job without a soft
                # timeout runs inline in it rather than in yet another task.
                outcome = await run_job(
                    spec,
                    envelope,
                    executor=self._threads,
                    inline=True,
                    trace_context=delivery.run.trace_context,
                    queue=self._worker.topology.jobs,
                )
            except asyncio.CancelledError:
                if job.cancelled_by is None:  # shutting down: it is redelivered
                    self._just_cancelled.append((job.started_at, envelope.id, time.time()))
                    raise
            if outcome is None or job.cancelled_by is not None:
                # An operator cancelled it (even if its code caught the cancellation).
                await self._settle_cancelled(delivery, envelope, job, job.cancelled_by or "?")
                return False
            if outcome.still_running and job.hard_timer is not None:
                # It could not be stopped at its soft timeout: its hard deadline will end
                # this process; until then take no new jobs, so fewer are hit by the end.
                job.still_running = True
                self._pause(f"job {envelope.id} could not be stopped at its soft timeout")
            self.in_flight.returned(job)
            if not job.ended_by_hard_timeout:  # else its handler settles the delivery
                await self._settlement.settle(delivery, envelope, outcome)
        finally:
            self.in_flight.stopped(job)
        return job.ended_by_hard_timeout

    async def _settle_cancelled(
        self, delivery: Delivery, envelope: JobEnvelope, job: InFlightJob, sender: str
    ) -> None:
        """Dead-letter a job an operator cancelled, with reason ``cancelled``, and ack it.

        A dead letter rather than a bare ack: nothing is lost, and ``fast-app dlq
        requeue`` runs it again if the cancel was a mistake. Never retried.
        """
        task = asyncio.current_task()
        if task is not None:
            # The cancel was meant for the job's code, not for its settlement.
            while task.cancelling():
                task.uncancel()
        self.in_flight.returned(job)
        error = JobError("cancelled", f"cancelled by {sender}")
        # Its statistics list it among the ended jobs, with how long it ran.
        delivery.run.outcome = JobOutcome(JobStatus.FAILED, time.time() - job.started_at, error)
        logger.warning(
            "job %s (%s) cancelled by %s",
            envelope.id,
            envelope.function,
            sender,
            extra={"job_id": envelope.id, "job_function": envelope.function},
        )
        await self._settlement.dead_letter(delivery, DeadReason.CANCELLED, error, envelope.attempt)

    async def _settle_cancelled_before_start(
        self, delivery: Delivery, envelope: JobEnvelope, sender: str
    ) -> None:
        """Dead-letter a job an operator cancelled while it waited for a slot, unrun."""
        error = JobError("cancelled", f"cancelled by {sender} before it started")
        # Its statistics list it among the ended jobs (as not started): that is how the
        # operator who cancelled it hears that it is done.
        delivery.run.outcome = JobOutcome(JobStatus.FAILED, 0.0, error)
        logger.warning(
            "job %s (%s) cancelled by %s before it started",
            envelope.id,
            envelope.function,
            sender,
            extra={"job_id": envelope.id, "job_function": envelope.function},
        )
        await self._settlement.dead_letter(delivery, DeadReason.CANCELLED, error, envelope.attempt)


def _error(kind: str, error: BaseException) -> JobError:
    return JobError(kind, f"{type(error).__name__}: {error}")
