"""The worker: consumes jobs from RabbitMQ and runs them, losing none.

Each delivery is acknowledged only after its job ended: succeeded, or its final failure
recorded (a retry published, or a dead letter stored). A worker that dies mid-job leaves
its deliveries unacknowledged, and the broker gives them to another worker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fast_app.core.queue.amqp import Publisher, Topology, signature_matches
from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.envelope import JobEnvelope, decode_envelope
from fast_app.core.queue.errors import InvalidJobError, QueueConfigurationError
from fast_app.core.queue.execution import run_job
from fast_app.core.queue.functions import describe_function
from fast_app.core.queue.handle import JobError
from fast_app.core.queue.settings import QueueSettings
from fast_app.core.queue.telemetry import (
    SYSTEM_RABBITMQ,
    FailureReason,
    JobObservation,
    active,
    flush,
    observe_job,
)
from fast_app.farm.errors import JobImportError
from fast_app.farm.settings import FarmSettings
from fast_app.farm.worker._allow_list import AllowList
from fast_app.farm.worker._app import load_application, run_hooks
from fast_app.farm.worker._dead_letters import DeadReason
from fast_app.farm.worker._settlement import Settlement
from fast_app.farm.worker._state import (
    InFlightJob,
    RecentJobs,
    WorkerCounters,
    resident_memory_bytes,
)
from fast_app.farm.worker._supervision import SupervisorLink
from fast_app.farm.worker._threads import JobThreads
from fast_app.farm.worker._tombstones import Tombstones

if TYPE_CHECKING:
    from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

__all__ = ["EXIT_HARD_TIMEOUT", "EXIT_OK", "EXIT_STARTUP_FAILED", "Worker"]

logger = logging.getLogger("fast_app.farm.worker")

EXIT_OK = 0
EXIT_HARD_TIMEOUT = 3
EXIT_STARTUP_FAILED = 4

_EARLY_TOLERANCE_S = 0.05
_DELIVERY_COUNT = "x-delivery-count"  # set by quorum queues on redeliveries
_TELEMETRY_FLUSH_S = 2.0
_HARD_TIMEOUT_SETTLE_S = 10.0
_RECONNECT_DELAYS_S = (0.5, 1, 2, 5)


class Worker:
    """One worker process's consumer loop.

    Args:
        farm: worker settings (concurrency, imports, hooks, grace period, allow-list).
        queue: queue settings (broker, queue name and type, retries, signing key).
    """

    def __init__(self, farm: FarmSettings, queue: QueueSettings) -> None:
        self.farm = farm
        self.queue = queue
        self.worker_id = farm.worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.topology = Topology.from_settings(queue)
        key = queue.signing_key
        self._signing_key = None if key is None else key.get_secret_value().encode()
        self._allow_list = AllowList(
            prefixes=farm.allowed_modules,
            imported=farm.imports,
            app_roots=(Path.cwd().resolve(),),
        )
        self.counters = WorkerCounters()
        self.in_flight: dict[int, InFlightJob] = {}
        self.recent = RecentJobs()  # jobs ended since the last heartbeat
        self._tasks: set[asyncio.Task[None]] = set()
        self._threads = JobThreads(farm.thread_pool_size, thread_name_prefix="job")
        self._stopping = asyncio.Event()
        self._forced = False
        self._channel: AbstractChannel | None = None
        self._publisher: Publisher | None = None
        self._settlement: Settlement  # set in run(), with the publisher
        # Jobs whose delivery the broker took back for outliving its consumer_timeout:
        # when one comes back here it is dead-lettered instead of timing out in a loop.
        self._outlived_consumer_timeout: set[str] = set()
        self._just_cancelled: collections.deque[tuple[float, str, float]] = collections.deque(
            maxlen=64
        )
        self._tombstones = Tombstones()
        for entry in farm.tombstones:  # jobs killed before this worker started
            job_id, _, killed_worker = entry.partition("@")
            self._tombstones.add(job_id, "hard_timeout", killed_worker)
        self._consumer: tuple[AbstractQueue, str] | None = None
        self._consuming = False
        self._paused = False
        self._link: SupervisorLink | None = None
        self._started_at = time.time()
        #: The latest error this worker logged, for its supervisor's report of its death.
        self.last_error: str | None = None

    # -- state -----------------------------------------------------------------------

    @property
    def state(self) -> str:
        """starting, idle, busy, paused or draining."""
        if self._stopping.is_set():
            return "draining"
        if self._paused:
            return "paused"
        if not self._consuming:
            return "starting"
        return "busy" if self.in_flight else "idle"

    def heartbeat(self) -> dict[str, Any]:
        """What this worker tells its supervisor every interval."""
        return {
            "type": "heartbeat",
            "worker_id": self.worker_id,
            "pid": os.getpid(),
            "state": self.state,
            "at": time.time(),
            "started_at": self._started_at,
            "concurrency": self.farm.concurrency,
            "in_flight": [job.describe() for job in self.in_flight.values()],
            "counters": self.counters.as_dict(),
            "ended": self.recent.take(),
            "rss_bytes": resident_memory_bytes(),
            "last_error": self.last_error,
        }

    def _handle_command(self, command: dict[str, Any]) -> None:
        match command.get("command"):
            case "drain":
                self.request_stop()
            case "pause":
                self.pause("asked by the supervisor")
            case "resume":
                self.resume()
            case "tombstone":
                self._tombstones.add(
                    str(command.get("job_id")), "hard_timeout", str(command.get("worker"))
                )
            case other:
                logger.warning("worker %s: unknown command %r", self.worker_id, other)

    def pause(self, why: str) -> None:
        """Stop taking new deliveries (jobs in flight go on)."""
        if self._paused:
            return
        self._paused = True
        logger.warning("worker %s pauses consumption: %s", self.worker_id, why)
        if self._consumer is not None:
            queue, tag = self._consumer
            self._consumer = None
            asyncio.get_running_loop().create_task(queue.cancel(tag))

    def resume(self) -> None:
        """Take deliveries again after ``pause``."""
        if not self._paused:
            return
        self._paused = False
        logger.info("worker %s resumes consumption", self.worker_id)
        self._resume_requested.set()

    # -- lifecycle -----------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (then drain) or a hard timeout; return the exit code."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        self._resume_requested = asyncio.Event()
        if self.farm.supervisor_fd is not None:
            self._link = SupervisorLink(
                self.farm.supervisor_fd,
                interval_s=self.farm.heartbeat_interval_s,
                heartbeat=self.heartbeat,
                on_command=self._handle_command,
                on_supervisor_gone=self.request_stop,
            )
            await self._link.start()
        try:
            load_application(self.farm.imports)
            await run_hooks(self.farm.startup)
        except Exception as error:
            logger.exception("worker %s could not start the application", self.worker_id)
            self.last_error = f"could not start the application: {type(error).__name__}: {error}"
            if self._link is not None:
                await self._link.close()  # its last heartbeat carries the error
            return EXIT_STARTUP_FAILED
        self._publisher = Publisher(
            self.queue.rabbitmq_url.get_secret_value(),
            redacted_url=self.queue.redacted_rabbitmq_url,
            topology=self.topology,
            timeout_s=self.queue.connect_timeout_s,
            signing_key=self._signing_key,
            connection_name=f"fast-app worker {self.worker_id} (publisher)",
        )
        self._settlement = Settlement(
            self._publisher, self.queue, self.topology, self.counters, self.worker_id
        )
        try:
            code = await self._consume_until_stopped()
        finally:
            await self._publisher.close()
            if self._link is not None:
                await self._link.close()
            try:
                await run_hooks(self.farm.shutdown)
            except Exception:
                logger.exception("a shutdown hook of worker %s failed", self.worker_id)
            self._threads.shutdown(wait=False, cancel_futures=True)
        logger.info("worker %s stopped: %s", self.worker_id, self._summary())
        return code

    def request_stop(self) -> None:
        """Stop taking jobs and drain (first call); stop waiting for jobs (second call)."""
        if self._stopping.is_set():
            self._forced = True
            logger.warning(
                "worker %s: second stop request, abandoning in-flight jobs", self.worker_id
            )
            for task in self._tasks:
                task.cancel()
            return
        logger.info("worker %s: stopping, draining %d jobs", self.worker_id, len(self._tasks))
        self._stopping.set()

    async def _consume_until_stopped(self) -> int:
        """Consume, reconnecting after failures, until stopped; the exit code."""
        failures = 0
        while not self._stopping.is_set():
            try:
                await self._consume_one_connection()
                failures = 0
            except QueueConfigurationError as error:
                # The queue exists with other arguments: retrying cannot help.
                self.last_error = str(error)
                logger.error("worker %s cannot consume: %s", self.worker_id, self.last_error)
                return EXIT_STARTUP_FAILED
            except Exception as error:
                delay = _RECONNECT_DELAYS_S[min(failures, len(_RECONNECT_DELAYS_S) - 1)]
                failures += 1
                logger.warning(
                    "worker %s: broker at %s unavailable (%s); retrying in %gs",
                    self.worker_id,
                    self.queue.redacted_rabbitmq_url,
                    type(error).__name__,
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
        return EXIT_OK

    async def _consume_one_connection(self) -> None:
        import aio_pika

        connection = await aio_pika.connect(
            self.queue.rabbitmq_url.get_secret_value(),
            timeout=self.queue.connect_timeout_s,
            client_properties={"connection_name": f"fast-app worker {self.worker_id}"},
        )
        lost = asyncio.Event()
        try:
            channel = await connection.channel()
            channel.close_callbacks.add(lambda _sender, error: self._channel_closed(error, lost))
            connection.close_callbacks.add(lambda _sender, _error: lost.set())
            await channel.set_qos(prefetch_count=self.farm.concurrency)
            await self.topology.declare(channel)
            jobs_queue = await channel.get_queue(self.topology.jobs, ensure=False)
            tombstones = await channel.declare_queue(exclusive=True, auto_delete=True)
            await tombstones.bind(self.topology.tombstones_exchange)
            await tombstones.consume(self._on_tombstone, no_ack=True)
            self._channel = channel
            if not self._paused:
                self._consumer = (jobs_queue, await jobs_queue.consume(self._on_message))
            self._consuming = True
            logger.info(
                "worker %s consuming %s (concurrency %d)",
                self.worker_id,
                self.topology.jobs,
                self.farm.concurrency,
            )
            if self._link is not None:
                await self._link.beat()
            while True:
                self._resume_requested.clear()
                stop_wait = asyncio.ensure_future(self._stopping.wait())
                lost_wait = asyncio.ensure_future(lost.wait())
                resume_wait = asyncio.ensure_future(self._resume_requested.wait())
                await asyncio.wait(
                    {stop_wait, lost_wait, resume_wait}, return_when=asyncio.FIRST_COMPLETED
                )
                for waiter in (stop_wait, lost_wait, resume_wait):
                    waiter.cancel()
                if lost.is_set() or self._stopping.is_set():
                    break
                if self._consumer is None and not self._paused:
                    self._consumer = (jobs_queue, await jobs_queue.consume(self._on_message))
            self._consuming = False
            if lost.is_set():
                self._consumer = None
                self._abandon_in_flight()
                raise ConnectionError("connection to the broker lost")
            if self._consumer is not None:
                await jobs_queue.cancel(self._consumer[1])
                self._consumer = None
            await self._drain()
            self._end_if_threads_outlive_the_drain()
        finally:
            self._channel = None
            if not connection.is_closed:
                await connection.close()

    def _end_if_threads_outlive_the_drain(self) -> None:
        """End the process now if jobs are still running in threads after the drain.

        Threads cannot be cancelled: they would keep the process alive past its grace
        period and, once its connection closed, run on beside their own redelivery on
        another worker. Ending the process while its connection is still open ends them
        before the broker hands their jobs out again. Shutdown hooks do not run.
        """
        busy = self._threads.busy
        if busy == 0:
            return
        logger.warning(
            "worker %s: %d jobs still running in threads after the drain; ending the process "
            "so that they stop before the broker hands them out again (shutdown hooks skipped)",
            self.worker_id,
            busy,
        )
        _exit_now(EXIT_OK)

    async def _drain(self) -> None:
        if not self._tasks:
            return
        grace = self.farm.grace_period_s
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        if pending and not self._forced:
            logger.warning(
                "worker %s: %d jobs still running after the %gs grace period; they return "
                "to the queue",
                self.worker_id,
                len(pending),
                grace,
            )
        for task in pending:
            task.cancel()

    def _abandon_in_flight(self) -> None:
        """Stop the jobs of a lost channel: the broker hands their deliveries out again."""
        logger.warning(
            "worker %s lost its channel; %d jobs in flight are cancelled and will be "
            "redelivered by the broker",
            self.worker_id,
            len(self.in_flight),
        )
        for task in self._tasks:
            task.cancel()

    def _channel_closed(self, error: BaseException | None, lost: asyncio.Event) -> None:
        text = str(error or "")
        if "acknowledgement" in text and "timed out" in text:
            # The broker does not say which delivery outlived the timeout: the oldest
            # one did. aio-pika may have cancelled the channel's delivery tasks already.
            candidates = [(job.started_at, job.envelope.id) for job in self.in_flight.values()]
            recent = time.time() - 2
            candidates += [
                (started, job_id) for started, job_id, at in self._just_cancelled if at > recent
            ]
            if candidates:
                self._outlived_consumer_timeout.add(min(candidates)[1])
            logger.error(
                "worker %s: the broker closed the channel because a delivery stayed "
                "unacknowledged past its consumer_timeout (%s). The job is redelivered; "
                "raise consumer_timeout in rabbitmq.conf above your longest job "
                "(see docs/timeouts.md)",
                self.worker_id,
                text,
            )
        elif error is not None and not self._stopping.is_set():
            logger.warning("worker %s: channel closed: %s", self.worker_id, text)
        lost.set()

    def _summary(self) -> str:
        c = self.counters
        return (
            f"{c.succeeded} succeeded, {c.failed} failed, {c.retried} retried, "
            f"{c.dead_lettered} dead-lettered"
        )

    # -- one delivery --------------------------------------------------------------

    async def _on_tombstone(self, message: AbstractIncomingMessage) -> None:
        job_id = self._tombstones.add_from_message(message.body)
        if job_id is None:
            logger.warning("worker %s: ignoring a malformed tombstone", self.worker_id)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # aio-pika calls this in a task of its own for each delivery: the job runs right
        # here, and the task is tracked so that shutdown can wait for it or cancel it.
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._process(message)
        except asyncio.CancelledError:
            raise  # shutting down: the delivery stays unacknowledged and is redelivered
        except Exception as error:
            logger.exception("worker %s: error while handling a delivery", self.worker_id)
            await self._settlement.dead_letter(
                message, DeadReason.INVALID, _error("worker_error", error), attempts=None
            )
        finally:
            self._tasks.discard(task)

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
        killed = self._tombstones.pop(envelope.id)
        if killed is not None:
            # Its worker was killed at the job's hard timeout: settle it, don't rerun it.
            reason, killed_worker = killed
            self.counters.hard_timeouts += 1
            self.counters.failed += 1
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
            queue=self.topology.jobs,
            system=SYSTEM_RABBITMQ,
            envelope=envelope,
            message_id=envelope.id if envelope is not None else message.message_id,
            headers=headers,
            link_after_s=self.queue.trace_link_after_s,
            delivery_count=count if type(count) is int else None,
            worker_id=self.worker_id,
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
                self.pause(f"job {envelope.id} could not be stopped at its soft timeout")
            elif job.hard_timer is not None:
                job.hard_timer.cancel()
            if not job.ended_by_hard_timeout:  # else its handler settles the delivery
                ended = await self._settlement.settle(message, envelope, outcome, observation)
                self.recent.add(envelope, ended, outcome.duration_s, outcome.error)
        except asyncio.CancelledError:
            self._just_cancelled.append((job.started_at, envelope.id, time.time()))
            raise
        finally:
            if job.hard_timer is not None and not job.still_running:
                job.hard_timer.cancel()
            if not (job.ended_by_hard_timeout or job.still_running):
                self.in_flight.pop(key, None)
        return job.ended_by_hard_timeout

    # -- hard timeout ---------------------------------------------------------------

    def _on_hard_timeout(self, job: InFlightJob) -> None:
        if job.still_running:
            # Already settled (as a soft timeout); only the process can stop it now.
            logger.error(
                "job %s (%s) is still running at its hard timeout: ending worker %s",
                job.envelope.id,
                job.envelope.function,
                self.worker_id,
            )
            _exit_now(EXIT_HARD_TIMEOUT)
        job.ended_by_hard_timeout = True
        if job.observation is not None:
            hard = job.envelope.options.hard_timeout_s or 0
            job.observation.failed(
                FailureReason.HARD_TIMEOUT,
                f"passed its hard timeout of {hard:g}s; worker {self.worker_id} ends itself",
            )
        asyncio.get_running_loop().create_task(self._end_by_hard_timeout(job))

    async def _end_by_hard_timeout(self, job: InFlightJob) -> None:
        envelope = job.envelope
        hard = envelope.options.hard_timeout_s
        logger.error(
            "job %s (%s) passed its hard timeout of %gs: recording it and ending worker %s "
            "(%d other jobs in flight return to the queue)",
            envelope.id,
            envelope.function,
            hard,
            self.worker_id,
            len(self.in_flight) - 1,
        )
        self.counters.hard_timeouts += 1
        self.counters.failed += 1
        error = JobError("hard_timeout", f"passed its hard timeout of {hard:g}s")
        try:
            async with asyncio.timeout(_HARD_TIMEOUT_SETTLE_S):
                await self._settlement.retry_or_bury(
                    job.message, envelope, DeadReason.HARD_TIMEOUT, error, job.observation
                )
                # A round trip on the consuming channel: the broker has processed the ack
                # above before it answers, so exiting now cannot lose it.
                if self._channel is not None and not self._channel.is_closed:
                    await self._channel.set_qos(prefetch_count=self.farm.concurrency)
        except Exception:
            logger.exception("worker %s could not record the hard timeout", self.worker_id)
        finally:
            if job.observation is not None:
                job.observation.end()
            _exit_now(EXIT_HARD_TIMEOUT)


def _exit_now(code: int) -> None:
    """End the process at once, logs flushed.

    Ending the process is the only way to stop a job that will not stop; the broker
    redelivers this worker's other unacknowledged jobs to other workers. ``os._exit``
    skips the OpenTelemetry SDK's flush at exit: spans and metrics are flushed first.
    """
    flush(_TELEMETRY_FLUSH_S)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _error(kind: str, error: BaseException) -> JobError:
    return JobError(kind, f"{type(error).__name__}: {error}")
