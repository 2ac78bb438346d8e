"""The worker's consumption of the jobs queue: connection, pause, drain, reconnects.

One connection at a time, reopened after a broker outage. On it, the worker consumes the
jobs queue (unless paused) and the farm's tombstones. When the worker stops, it stops
taking deliveries and drains the jobs in flight within the grace period, before the
connection closes (their acks travel on it). When the channel is lost, the jobs in
flight are cancelled: the broker hands their deliveries out again.

With a prefetch above the concurrency, deliveries beyond the concurrency wait in
``JobSlots``; when the worker stops or pauses, those go back to the queue at once
(rejected with requeue once the broker stopped sending to this consumer, so that it
cannot hand them straight back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sized
from typing import TYPE_CHECKING

from fast_app.core.queue.amqp import Topology
from fast_app.core.queue.amqp.connecting import connect_first
from fast_app.core.queue.errors import QueueConfigurationError
from fast_app.core.queue.settings import QueueSettings
from fast_app.farm._wording import counted
from fast_app.farm.messages import Refusals, WaitingEntry, decode_tombstone
from fast_app.farm.messages.edge import decode_at_edge
from fast_app.farm.printable import printable
from fast_app.farm.settings import FarmSettings
from fast_app.farm.worker._deliveries import Deliveries
from fast_app.farm.worker._exit import EXIT_OK, exit_now
from fast_app.farm.worker._incoming import Delivered
from fast_app.farm.worker._slots import RUN, JobSlots
from fast_app.farm.worker._supervision import SupervisorLink
from fast_app.farm.worker._threads import JobThreads
from fast_app.farm.worker._tombstones import Tombstones

if TYPE_CHECKING:
    import aiormq.abc
    from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

    from fast_app.farm.worker._incoming import IncomingJob

__all__ = ["JobConsumer"]

logger = logging.getLogger("fast_app.farm.worker")

_RECONNECT_DELAYS_S = (0.5, 1, 2, 5)
_FLUSH_TIMEOUT_S = 5.0


class JobConsumer:
    """Takes a worker's deliveries from the broker until the worker stops.

    Args:
        worker_id: named in logs and in the connection's name.
        farm: concurrency, prefetch and grace period.
        queue: the broker's URL and connect timeout.
        topology: the queues of the jobs this worker consumes.
        farm_topology: the farm's own queues (``QUEUE_NAME``'s), whose exchange carries
            the tombstones of every queue the farm serves.
        tombstones: where the farm's tombstones are recorded as they arrive.
        in_flight: the worker's jobs in flight (counted in logs).
        threads: the worker's job threads (those still busy after the drain end the
            process).
        signing_key: with a key, only tombstones signed with it are believed.
    """

    def __init__(
        self,
        *,
        worker_id: str,
        farm: FarmSettings,
        queue: QueueSettings,
        topology: Topology,
        farm_topology: Topology,
        tombstones: Tombstones,
        in_flight: Sized,
        threads: JobThreads,
        signing_key: bytes | None = None,
    ) -> None:
        self._worker_id = worker_id
        self._signing_key = signing_key
        self._refusals = Refusals(logger)
        self._farm = farm
        self._queue = queue
        self._topology = topology
        self._farm_topology = farm_topology
        self._tombstones = tombstones
        self._in_flight = in_flight
        self._threads = threads
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._forced = False
        self._resume_requested = asyncio.Event()
        self._channel: AbstractChannel | None = None
        # The jobs consumer: aiormq's channel it is registered on, and its tag.
        self._consumer: tuple[aiormq.abc.AbstractChannel, str] | None = None
        self._consuming = False
        self._paused = False
        self._deliveries: Deliveries | None = None  # set by run()
        self._prefetch = farm.prefetch_count
        # Only a prefetch above the concurrency needs slots: else the broker itself never
        # hands the worker more deliveries than it runs at once.
        self._slots = JobSlots(farm.concurrency) if self._prefetch > farm.concurrency else None
        # Set while no jobs consumer of this worker is registered at the broker: deliveries
        # handed back before that could be delivered straight back to it.
        self._not_consuming_jobs = asyncio.Event()
        self._not_consuming_jobs.set()
        self._ending = False  # the process ends soon: no waiting delivery starts again

    @property
    def stopping(self) -> bool:
        """Whether it was asked to stop (it drains, then ``run`` returns)."""
        return self._stopping.is_set()

    @property
    def paused(self) -> bool:
        """Whether it takes no new deliveries for now."""
        return self._paused

    @property
    def consuming(self) -> bool:
        """Whether it consumes on an open connection (paused or not)."""
        return self._consuming

    @property
    def waiting(self) -> int:
        """Deliveries received but not started, waiting for one of the concurrency's slots."""
        return 0 if self._slots is None else self._slots.waiting

    def waiting_jobs(self, limit: int) -> list[WaitingEntry]:
        """The first ``limit`` deliveries waiting for a slot, as heartbeats list them."""
        return [] if self._slots is None else self._slots.listed(limit)

    def start_no_waiting_delivery(self, why: str) -> None:
        """Start none of the deliveries waiting for a slot (the process is about to end):
        the broker takes them back when the connection closes."""
        self._ending = True
        if self._slots is not None and (waiting := self._slots.close()):
            logger.info(
                "worker %s starts none of its %s: %s",
                self._worker_id,
                counted(waiting, "waiting delivery", "waiting deliveries"),
                why,
            )

    def cancel_waiting(self, job_id: str, sender: str) -> bool:
        """Settle job ``job_id`` as cancelled without running it, if it waits for a slot
        (or was given one and has not started yet); whether it did."""
        return self._slots is not None and self._slots.cancel(job_id, sender)

    def pause(self, why: str) -> None:
        """Stop taking new deliveries (jobs in flight go on)."""
        if self._paused:
            return
        self._paused = True
        logger.warning("worker %s pauses consumption: %s", self._worker_id, why)
        self._close_slots()
        if self._consumer is not None:
            underlay, tag = self._consumer
            self._consumer = None
            asyncio.get_running_loop().create_task(self._cancel_jobs_consumer(underlay, tag))

    def resume(self) -> None:
        """Take deliveries again after ``pause``."""
        if not self._paused:
            return
        self._paused = False
        logger.info("worker %s resumes consumption", self._worker_id)
        if self._slots is not None and not (self._stopping.is_set() or self._ending):
            self._slots.reopen()
        self._resume_requested.set()

    def request_stop(self) -> None:
        """Stop taking jobs and drain (first call); stop waiting for jobs (second call)."""
        if self._stopping.is_set():
            self._forced = True
            logger.warning(
                "worker %s: second stop request, abandoning in-flight jobs", self._worker_id
            )
            for task in self._tasks:
                task.cancel()
            return
        waiting = self.waiting
        logger.info(
            "worker %s: stopping, draining %s",
            self._worker_id,
            counted(len(self._tasks) - waiting, "job"),
        )
        self._close_slots()
        self._stopping.set()

    def _close_slots(self) -> None:
        """Start no waiting delivery: each goes back to the queue (``_hand_back``)."""
        if self._slots is not None and (waiting := self._slots.close()):
            logger.info(
                "worker %s hands %s back to the queue",
                self._worker_id,
                counted(waiting, "waiting delivery", "waiting deliveries"),
            )

    async def _consume_jobs(self, underlay: aiormq.abc.AbstractChannel) -> None:
        """Register the jobs consumer, on aiormq's channel (see ``_incoming``)."""
        self._not_consuming_jobs.clear()
        consume_ok = await underlay.basic_consume(self._topology.jobs, self._on_message)
        if consume_ok.consumer_tag is None:  # pamqp's type allows it; a broker never does
            raise RuntimeError("the broker named no consumer tag")
        self._consumer = (underlay, consume_ok.consumer_tag)

    async def _cancel_jobs_consumer(self, underlay: aiormq.abc.AbstractChannel, tag: str) -> None:
        try:
            await underlay.basic_cancel(tag)
        finally:
            if self._consumer is None:  # not consuming again already (a quick resume)
                self._not_consuming_jobs.set()

    async def run(self, deliveries: Deliveries, link: SupervisorLink | None) -> None:
        """Consume, reconnecting after failures, until stopped.

        Args:
            deliveries: handles each delivery.
            link: the link to the supervisor, if any (a heartbeat once consuming).

        Raises:
            QueueConfigurationError: the queue exists with other arguments.
        """
        self._deliveries = deliveries
        failures = 0
        while not self._stopping.is_set():
            try:
                await self._consume_one_connection(deliveries, link)
                failures = 0
            except QueueConfigurationError:
                raise  # retrying cannot help: the worker stops
            except Exception as error:
                delay = _RECONNECT_DELAYS_S[min(failures, len(_RECONNECT_DELAYS_S) - 1)]
                failures += 1
                logger.warning(
                    "worker %s: broker at %s unavailable (%s); retrying in %gs",
                    self._worker_id,
                    self._queue.redacted_rabbitmq_url,
                    type(error).__name__,
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)

    async def round_trip(self) -> None:
        """Make a round trip on the consuming channel, if it is open.

        It sends the prefetch setting again, which changes nothing: the broker answers
        only after it has processed everything sent on the channel before.
        """
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.set_qos(prefetch_count=self._prefetch)

    async def _consume_one_connection(
        self, deliveries: Deliveries, link: SupervisorLink | None
    ) -> None:
        connection = await connect_first(
            self._queue.rabbitmq_urls,
            timeout_s=self._queue.connect_timeout_s,
            connection_name=f"fast-app worker {self._worker_id}",
        )
        lost = asyncio.Event()
        try:
            channel = await connection.channel()
            channel.close_callbacks.add(
                lambda _sender, error: self._channel_closed(error, lost, deliveries)
            )
            connection.close_callbacks.add(lambda _sender, _error: lost.set())
            await channel.set_qos(prefetch_count=self._prefetch)
            await self._topology.declare(channel)
            if self._farm_topology != self._topology:
                await self._farm_topology.declare(channel)
            underlay = await channel.get_underlay_channel()
            tombstones = await channel.declare_queue(exclusive=True, auto_delete=True)
            await tombstones.bind(self._farm_topology.tombstones_exchange)
            await tombstones.consume(self._on_tombstone, no_ack=True)
            self._channel = channel
            if not self._paused:
                await self._consume_jobs(underlay)
            self._consuming = True
            logger.info(
                "worker %s consuming %s (concurrency %d, prefetch %d)",
                self._worker_id,
                self._topology.jobs,
                self._farm.concurrency,
                self._prefetch,
            )
            if link is not None:
                await link.beat()
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
                    await self._consume_jobs(underlay)
            self._consuming = False
            if lost.is_set():
                self._consumer = None
                self._abandon_in_flight()
                raise ConnectionError("connection to the broker lost")
            if self._consumer is not None:
                underlay_and_tag, self._consumer = self._consumer, None
                await self._cancel_jobs_consumer(*underlay_and_tag)
            await self._drain()
            await self._flush_acks()
            self._end_if_threads_outlive_the_drain()
        finally:
            self._channel = None
            self._not_consuming_jobs.set()
            if not connection.is_closed:
                await connection.close()

    async def _flush_acks(self) -> None:
        """Make sure the drained jobs' acks reached the broker before the connection
        closes: acks are queued on the connection's writer without waiting
        (``Delivered.ack``), and closing the connection drops what it still holds.

        A round trip does it. Failing or slow (a connection lost, a broker in trouble),
        it gives up: the jobs left unacknowledged are handed out again.
        """
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.round_trip(), _FLUSH_TIMEOUT_S)

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
            "worker %s: %s still running in threads after the drain; ending the process "
            "so that they stop before the broker hands them out again (shutdown hooks skipped)",
            self._worker_id,
            counted(busy, "job"),
        )
        exit_now(EXIT_OK)

    async def _drain(self) -> None:
        if not self._tasks:
            return
        grace = self._farm.grace_period_s
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        if pending and not self._forced:
            logger.warning(
                "worker %s: %s still running after the %gs grace period; they return to the queue",
                self._worker_id,
                counted(len(pending), "job"),
                grace,
            )
        for task in pending:
            task.cancel()

    def _abandon_in_flight(self) -> None:
        """Stop the jobs of a lost channel: the broker hands their deliveries out again."""
        logger.warning(
            "worker %s lost its channel; %s in flight cancelled, to be redelivered by the broker",
            self._worker_id,
            counted(len(self._in_flight), "job"),
        )
        for task in self._tasks:
            task.cancel()

    def _channel_closed(
        self, error: BaseException | None, lost: asyncio.Event, deliveries: Deliveries
    ) -> None:
        text = str(error or "")
        if "acknowledgement" in text and "timed out" in text:
            deliveries.blame_consumer_timeout()
            logger.error(
                "worker %s: the broker closed the channel because a delivery stayed "
                "unacknowledged past its consumer_timeout (%s). The job is redelivered; "
                "raise consumer_timeout in rabbitmq.conf above your longest job "
                "(see docs/timeouts.md)",
                self._worker_id,
                text,
            )
        elif error is not None and not self._stopping.is_set():
            logger.warning("worker %s: channel closed: %s", self._worker_id, text)
        lost.set()

    async def _on_tombstone(self, message: AbstractIncomingMessage) -> None:
        # An edge: anyone who may publish to the exchange can send anything here.
        tombstone = decode_at_edge(
            "tombstone",
            message.body,
            message.headers,
            key=self._signing_key,
            decode=decode_tombstone,
            refusals=self._refusals,
        )
        if tombstone is not None:
            self._tombstones.add(tombstone.job_id, tombstone.reason, tombstone.worker)

    async def _on_message(self, delivered: aiormq.abc.DeliveredMessage) -> None:
        # aiormq calls this in a task of its own for each delivery: the job runs right
        # here, and the task is tracked so that shutdown can wait for it or cancel it.
        # (aiormq also cancels it when the channel closes.)
        message = Delivered(delivered)
        task = asyncio.current_task()
        assert task is not None
        deliveries = self._deliveries
        assert deliveries is not None  # consuming starts in run()
        self._tasks.add(task)
        try:
            slots = self._slots
            if slots is None:
                await deliveries.receive(message)
                return
            admission = await slots.admit(message)
            if admission is RUN:
                try:
                    await deliveries.receive(message)
                finally:
                    slots.release()
            elif admission.cancelled_by is not None:
                await deliveries.receive(message, cancelled_by=admission.cancelled_by)
            else:
                await self._hand_back(message)
        finally:
            self._tasks.discard(task)

    async def _hand_back(self, message: IncomingJob) -> None:
        """Return a delivery that never started to the queue, for another worker."""
        # Only once the broker stopped sending to this worker: before, it could hand the
        # delivery straight back here. A lost connection returns it as well.
        await self._not_consuming_jobs.wait()
        try:
            await message.reject(requeue=True)
        except Exception as error:
            logger.info(
                "worker %s could not hand back job %s (%s): the broker takes it back when "
                "the connection closes",
                self._worker_id,
                printable(message.message_id or "?")[:64],
                type(error).__name__,
            )
