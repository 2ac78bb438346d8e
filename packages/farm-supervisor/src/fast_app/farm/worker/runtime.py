"""The worker: consumes jobs from RabbitMQ and runs them, losing none.

Each delivery is acknowledged only after its job ended: succeeded, or its final failure
recorded (a retry published, or a dead letter stored). A worker that dies mid-job leaves
its deliveries unacknowledged, and the broker gives them to another worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import time
from pathlib import Path

import msgspec

from fast_app.core.queue.amqp import Publisher, Topology, install_tolerant_decoding
from fast_app.core.queue.errors import QueueConfigurationError
from fast_app.core.queue.hooks import HookSelection
from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.messages import (
    IN_FLIGHT_LISTED,
    WAITING_LISTED,
    Cancel,
    Drain,
    Heartbeat,
    Pause,
    Resume,
    Tombstoned,
    WorkerCommand,
)
from fast_app.farm.printable import printable
from fast_app.farm.settings import FarmSettings
from fast_app.farm.worker._allow_list import AllowList
from fast_app.farm.worker._app import load_application, run_hooks
from fast_app.farm.worker._consuming import JobConsumer
from fast_app.farm.worker._deliveries import Deliveries, WorkerIdentity
from fast_app.farm.worker._exit import EXIT_HARD_TIMEOUT, EXIT_OK, EXIT_STARTUP_FAILED
from fast_app.farm.worker._in_flight import JobsInFlight
from fast_app.farm.worker._own_hard_timeout import HardTimeouts
from fast_app.farm.worker._settlement import Settlement
from fast_app.farm.worker._state import InFlightJob, resident_memory_bytes
from fast_app.farm.worker._statistics import WorkerStatistics
from fast_app.farm.worker._supervision import SupervisorLink
from fast_app.farm.worker._threads import JobThreads
from fast_app.farm.worker._tombstones import Tombstones

__all__ = ["EXIT_HARD_TIMEOUT", "EXIT_OK", "EXIT_STARTUP_FAILED", "Worker"]

logger = logging.getLogger("fast_app.farm.worker")

# ``job_id@worker_id`` as the supervisor passes them in FARM_TOMBSTONES.
_TOMBSTONE_ENTRY = re.compile(r"([A-Za-z0-9_.:-]{1,64})@([A-Za-z0-9_.:@/-]{1,200})\Z")
_LAST_ERROR_WIDTH = 1_000


class Worker:
    """One worker process's consumer loop.

    Args:
        farm: worker settings (concurrency, prefetch, imports, hooks, grace period,
            allow-list).
        queue: queue settings (broker, queue name and type, retries, signing key).
    """

    def __init__(self, farm: FarmSettings, queue: QueueSettings) -> None:
        self.farm = farm
        self.queue = queue
        self.worker_id = farm.worker_id or f"{socket.gethostname()}-{os.getpid()}"
        # The queue it consumes (its retries, delays and dead letters stay on it); the
        # farm's own queue carries the tombstones of all.
        self.farm_topology = Topology.from_settings(queue)
        self.topology = Topology.from_settings(queue, farm.worker_queue or queue.name)
        key = queue.signing_key
        self._signing_key = None if key is None else key.get_secret_value().encode()
        self._allow_list = AllowList(
            prefixes=farm.allowed_modules,
            imported=farm.imports,
            app_roots=(Path.cwd().resolve(),),
        )
        self.statistics = WorkerStatistics()
        self.in_flight = JobsInFlight(self._hard_timeout_reached, self._beat_now)
        self._hard_timeouts: HardTimeouts | None = None  # set with the deliveries
        self._threads = JobThreads(farm.thread_pool_size, thread_name_prefix="job")
        self._tombstones = Tombstones()
        for entry in farm.tombstones:  # jobs killed before this worker started
            if (valid := _TOMBSTONE_ENTRY.match(entry)) is not None:
                self._tombstones.add(valid.group(1), "hard_timeout", valid.group(2))
        self._consumer = JobConsumer(
            worker_id=self.worker_id,
            farm=farm,
            queue=queue,
            topology=self.topology,
            farm_topology=self.farm_topology,
            tombstones=self._tombstones,
            in_flight=self.in_flight,
            threads=self._threads,
            signing_key=self._signing_key,
        )
        self._link: SupervisorLink | None = None
        self._started_at = time.time()
        #: The latest error this worker logged, for its supervisor's report of its death.
        self.last_error: str | None = None

    # -- state -----------------------------------------------------------------------

    @property
    def state(self) -> str:
        """starting, idle, busy, paused or draining."""
        if self._consumer.stopping:
            return "draining"
        if self._consumer.paused:
            return "paused"
        if not self._consumer.consuming:
            return "starting"
        return "busy" if self.in_flight else "idle"

    def heartbeat(self) -> Heartbeat:
        """What this worker tells its supervisor every interval (bounded: see
        ``fast_app.farm.messages.worker_link``)."""
        jobs = self.in_flight.nearest_hard_deadlines(IN_FLIGHT_LISTED)
        statistics = self.statistics
        last_error = self.last_error
        return Heartbeat(
            worker_id=self.worker_id,
            pid=os.getpid(),
            state=self.state,  # type: ignore[arg-type]  # one of the five states
            at=time.time(),
            started_at=self._started_at,
            concurrency=self.farm.concurrency,
            in_flight=[job.describe() for job in jobs],
            in_flight_count=len(self.in_flight),
            # A copy: the worker keeps counting into its own.
            counters=msgspec.structs.replace(statistics.counters),
            ended=statistics.recent.take(),
            waits=statistics.waits.take(),
            functions=statistics.functions.take(),
            rss_bytes=resident_memory_bytes(),
            last_error=None
            if last_error is None
            else printable(last_error[:_LAST_ERROR_WIDTH])[:_LAST_ERROR_WIDTH],
            waiting=self._consumer.waiting,
            waiting_jobs=self._consumer.waiting_jobs(WAITING_LISTED),
        )

    def _handle_command(self, command: WorkerCommand) -> None:
        match command:
            case Drain():
                self.request_stop()
            case Pause():
                self.pause("asked by the supervisor")
            case Resume():
                self.resume()
            case Tombstoned(job_id=job_id, worker=killed_worker):
                self._tombstones.add(job_id, "hard_timeout", killed_worker)
            case Cancel(job_id=job_id, sender=sender):
                self._cancel(job_id, sender)

    def _cancel(self, job_id: str, sender: str) -> None:
        # Both places, whichever the sender saw it in: a job listed as waiting may have
        # started since (then it is cancelled while it runs), and one that was running
        # is in flight until settled.
        answer = self.in_flight.cancel(job_id, sender)
        if answer == "not_running" and self._consumer.cancel_waiting(job_id, sender):
            logger.warning(
                "worker %s cancels job %s before it started, asked by %s",
                self.worker_id,
                job_id,
                sender,
            )
        elif answer == "cancelling":
            logger.warning("worker %s cancels job %s, asked by %s", self.worker_id, job_id, sender)
        elif answer == "in_thread":
            logger.warning(
                "worker %s cannot cancel job %s: it runs in a thread (a plain function), "
                "and threads cannot be stopped",
                self.worker_id,
                job_id,
            )
        else:
            logger.info("worker %s: job %s is not running here any more", self.worker_id, job_id)

    def _beat_now(self) -> None:
        if self._link is not None:
            self._link.beat_now()

    def _hard_timeout_reached(self, job: InFlightJob) -> None:
        # The process ends soon: a waiting delivery started now would be cut short. The
        # broker takes the waiting ones back when the connection closes.
        self._consumer.start_no_waiting_delivery(f"job {job.envelope.id} passed its hard timeout")
        if self._hard_timeouts is not None:  # set before any job can start
            self._hard_timeouts.on_hard_timeout(job)

    def pause(self, why: str) -> None:
        """Stop taking new deliveries (jobs in flight go on)."""
        self._consumer.pause(why)

    def resume(self) -> None:
        """Take deliveries again after ``pause``."""
        self._consumer.resume()

    # -- lifecycle -----------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (then drain) or a hard timeout; return the exit code."""
        install_tolerant_decoding()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        if self.farm.supervisor_fd is not None:
            self._link = SupervisorLink(
                self.farm.supervisor_fd,
                interval_s=self.farm.heartbeat_interval_s,
                heartbeat=self.heartbeat,
                on_command=self._handle_command,
                on_supervisor_gone=self.request_stop,
            )
            await self._link.start()
        logger.info(
            "worker %s runs the functions of: %s", self.worker_id, self._allow_list.describe()
        )
        try:
            load_application(self.farm.imports)
            await run_hooks(self.farm.startup)
        except Exception as error:
            logger.exception("worker %s could not start the application", self.worker_id)
            self.last_error = f"could not start the application: {type(error).__name__}: {error}"
            if self._link is not None:
                await self._link.close()  # its last heartbeat carries the error
            return EXIT_STARTUP_FAILED
        publisher = Publisher(
            self.queue.rabbitmq_url.get_secret_value(),
            redacted_url=self.queue.redacted_rabbitmq_url,
            topology=self.topology,
            timeout_s=self.queue.connect_timeout_s,
            signing_key=self._signing_key,
            connection_name=f"fast-app worker {self.worker_id} (publisher)",
        )
        deliveries = self._make_deliveries(publisher)
        try:
            code = await self._consume_until_stopped(deliveries)
        finally:
            await publisher.close()
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
        self._consumer.request_stop()

    def _make_deliveries(self, publisher: Publisher) -> Deliveries:
        """What checks, runs and settles each delivery, publishing through ``publisher``."""
        settlement = Settlement(
            publisher, self.queue, self.worker_id, signing_key=self._signing_key
        )
        self._hard_timeouts = HardTimeouts(
            worker_id=self.worker_id,
            in_flight=self.in_flight,
            settlement=settlement,
            round_trip=self._consumer.round_trip,
            last_words=self._beat_now,
        )
        return Deliveries(
            worker=WorkerIdentity(self.worker_id, self.queue, self.topology, self._signing_key),
            allow_list=self._allow_list,
            tombstones=self._tombstones,
            in_flight=self.in_flight,
            threads=self._threads,
            settlement=settlement,
            # Built after the application loaded: the hooks it added are called too.
            hooks=HookSelection(local=(self.statistics,)),
            pause=self.pause,
        )

    async def _consume_until_stopped(self, deliveries: Deliveries) -> int:
        """Consume, reconnecting after failures, until stopped; the exit code."""
        try:
            await self._consumer.run(deliveries, self._link)
        except QueueConfigurationError as error:
            # The queue exists with other arguments: retrying cannot help.
            self.last_error = str(error)
            logger.error("worker %s cannot consume: %s", self.worker_id, self.last_error)
            return EXIT_STARTUP_FAILED
        return EXIT_OK

    def _summary(self) -> str:
        c = self.statistics.counters
        return (
            f"{c.succeeded} succeeded, {c.failed} failed, {c.retried} retried, "
            f"{c.dead_lettered} dead-lettered"
        )
