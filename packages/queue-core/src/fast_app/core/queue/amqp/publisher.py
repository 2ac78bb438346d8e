"""One long-lived, self-healing publishing connection per process, with confirms.

``publish`` returns only once the broker has confirmed the message (it is stored), and
raises ``QueueUnavailableError`` when that cannot happen within the time allowed. Many
concurrent ``publish`` calls share one channel: each awaits its own confirm, so the
confirms are pipelined instead of taken one round trip at a time.

The time allowed is measured against progress, not per call: a burst of 20,000
concurrent calls can take longer than the bound to confirm in full although the broker is
healthy. So a call fails once it has waited the whole bound (``QUEUE_CONNECT_TIMEOUT_S``)
with no confirm arriving for any call in that time: broker down, hung or partitioned.
A watchdog checks a few times per bound, so a call fails within 1.25 times the bound.

``publish_many`` publishes a batch, a window of messages at a time with their confirms
pipelined: see ``_batch_publishing``, which it delegates to. A job of a batch that was
nacked, or in flight when its connection broke, is published again as ``publish`` would:
on a fresh channel, or on the next node that accepts, within the same bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from fast_app.core.queue.amqp._batch_publishing import CONFIRM_WINDOW, BatchPublisher, OutgoingJob
from fast_app.core.queue.amqp._batch_retry import AFTER_NACK_S
from fast_app.core.queue.amqp.connecting import connect_first, node_of
from fast_app.core.queue.amqp.headers import job_properties
from fast_app.core.queue.amqp.topology import Topology, delay_level_ms
from fast_app.core.queue.broker_urls import describe_error, split_broker_urls
from fast_app.core.queue.envelope import JobEnvelope
from fast_app.core.queue.errors import QueueConfigurationError, QueueError, QueueUnavailableError

if TYPE_CHECKING:
    import aiormq.abc
    from aio_pika.abc import AbstractChannel, AbstractConnection
    from pamqp.commands import Basic

__all__ = ["CONFIRM_WINDOW", "OutgoingJob", "Publisher"]

logger = logging.getLogger("fast_app.queue")


class Publisher:
    """Publishes jobs to a farm's queues on a connection it (re)opens when needed.

    Args:
        url: the broker URL, with its password.
        redacted_url: the same without the password, for messages.
        topology: the farm's default queues, declared on each new connection (only
            checked, when the user may not declare them); other queues' topologies are
            declared the same way on their first publish over a connection.
        timeout_s: bound on connecting plus confirming one message.
        signing_key: add an HMAC-SHA256 signature header with this key.
        connection_name: shown in the broker's management UI.

    Its batches (``publish_many``) are published by a ``BatchPublisher`` sharing its
    connection, to which it is the ``BatchLink``: the methods from ``stall_bound`` to
    ``describe``, and the reconnecting it uses (``ensure_connected`` reconnects as
    ``publish`` does).
    """

    def __init__(
        self,
        url: str,
        *,
        redacted_url: str,
        topology: Topology,
        timeout_s: float,
        signing_key: bytes | None = None,
        connection_name: str = "fast-app publisher",
    ) -> None:
        self._url = url
        # A publish whose connection broke is tried again, once per node (twice at least).
        self._tries = max(2, len(split_broker_urls(url)))
        self._redacted_url = redacted_url
        self.topology = topology
        self._timeout_s = timeout_s
        self._signing_key = signing_key
        self._connection_name = connection_name
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._underlay: aiormq.abc.AbstractChannel | None = None
        self._declared: set[str] = set()  # jobs queues declared on this connection
        self._declared_delays: set[tuple[str, int]] = set()
        self._lock = asyncio.Lock()
        self.loop = asyncio.get_running_loop()
        # Pending calls, each with the loop time it started; their timeouts have no
        # deadline (and so no timer, which costs a heap entry each) until the watchdog
        # decides that the broker has stalled for too long.
        self._pending: dict[asyncio.Timeout, float] = {}
        self._progressed = False
        self._last_progress = 0.0
        self._watchdog: asyncio.Task[None] | None = None
        self._batches = BatchPublisher(
            self, redacted_url=redacted_url, timeout_s=timeout_s, signing_key=signing_key
        )

    async def publish(
        self,
        body: bytes,
        envelope: JobEnvelope,
        *,
        extra_headers: dict[str, Any] | None = None,
        queue: Topology | None = None,
    ) -> None:
        """Store a job: in the jobs queue, or in a delay queue when it is not due yet.

        ``queue``: the topology of the job's queue, when it is not the publisher's own.

        Raises:
            QueueUnavailableError: the broker was unreachable or did not confirm in time.
            QueueConfigurationError: the queues exist with other arguments, or are missing
                and the user may not declare them, or the broker refused the user access.
        """
        properties = job_properties(
            body, envelope, signing_key=self._signing_key, extra_headers=extra_headers
        )
        level = None
        if envelope.not_before is not None:
            level = delay_level_ms(envelope.not_before - time.time())
        await self._send(body, properties, envelope.id, queue or self.topology, level=level)

    async def publish_many(
        self, jobs: Sequence[OutgoingJob], *, window: int = CONFIRM_WINDOW
    ) -> list[QueueError | None]:
        """Store a batch of jobs; return once the broker has answered for each one.

        Every message of the batch is published before their confirms are awaited (in
        windows of ``window``, at most two windows unconfirmed at a time). The jobs the
        broker nacked, or whose connection broke before their confirm (stored or not,
        unknown), are then published again, as ``publish`` would: on a fresh channel, or
        a new connection to the next node that accepts; round after round, until the
        broker has stored them or made no progress for the bound. So a job may be stored
        twice (at-least-once), never lost unreported.

        Returns:
            One slot per job, in order: ``None`` when the broker confirmed it, else the
            ``QueueUnavailableError`` saying why it is not stored: returned (unroutable,
            never published again), or still not stored when the bound ran out or the
            reconnection failed, with what its last publish got (nacked, the channel
            closed before its confirm, or not sent).

        Raises:
            QueueUnavailableError: the broker could not be reached in time; nothing was
                published.
            QueueConfigurationError: a queue of the batch exists with other arguments,
                or the user may not use it; nothing was published.
        """
        return await self._batches.publish(jobs, window=window)

    async def publish_dead(
        self,
        body: bytes,
        properties: Basic.Properties,
        job_id: str,
        queue: Topology | None = None,
    ) -> None:
        """Store a message in the dead-letter queue (of ``queue``, or the publisher's own)."""
        await self._send(body, properties, job_id, queue or self.topology, dead=True)

    # The BatchLink of ``_batch_publishing``: what a batch uses of the connection.

    @contextlib.asynccontextmanager
    async def stall_bound(self) -> AsyncIterator[None]:
        """Raise ``TimeoutError`` inside once the broker has made no progress for
        ``timeout_s`` (the bound of a ``publish``, applied to what runs inside)."""
        async with asyncio.timeout(None) as deadline:
            self._pending[deadline] = self.loop.time()
            self._watch()
            try:
                yield
            finally:
                del self._pending[deadline]

    async def ensure_connected(self) -> None:
        """Open the connection and its channel, unless they are open."""
        await self._ready_channel()

    async def ensure_declared(self, topology: Topology) -> None:
        """Declare ``topology`` on the connection, unless it was already."""
        if topology.jobs not in self._declared:
            await self._declare(topology)

    async def ensure_delay_declared(self, topology: Topology, level: int) -> None:
        """Declare the delay queue of ``level`` ms of ``topology``, unless it was already."""
        if (topology.jobs, level) not in self._declared_delays:
            channel = self._channel
            assert channel is not None
            await topology.declare_delay(channel, level)
            self._declared_delays.add((topology.jobs, level))

    def underlay(self) -> aiormq.abc.AbstractChannel:
        """The aiormq channel to publish on (once connected)."""
        underlay = self._underlay
        assert underlay is not None
        return underlay

    def note_progress(self) -> None:
        """Record that the broker answered for a message."""
        self._progressed = True

    def forget_channel(self) -> None:
        """Make the next publish open a fresh connection (this one may be half-broken),
        unless the channel is still open."""
        channel = self._channel
        if channel is not None and not channel.is_closed:
            return  # a timeout on a healthy channel (slow broker): keep it
        self._channel = None

    async def replace_nacked_channel(self, nacked: aiormq.abc.AbstractChannel) -> None:
        """Publish on a fresh channel of the connection from now on, unless the channel
        of ``nacked`` (an aiormq channel) was replaced already."""
        channel = self._channel
        if channel is not None and self._underlay is nacked:
            await self._replace_channel(channel)

    def describe(self, error: BaseException) -> str:
        """``error`` for a message, without the broker's password."""
        return describe_error(error, self._url)

    def _watch(self) -> None:
        if self._watchdog is None:
            self._watchdog = self.loop.create_task(self._fail_calls_when_stalled())

    async def _send(
        self,
        body: bytes,
        properties: Basic.Properties,
        job_id: str,
        topology: Topology,
        *,
        level: int | None = None,
        dead: bool = False,
    ) -> None:
        from aiormq.exceptions import (
            ChannelAccessRefused,
            ChannelClosed,
            ChannelInvalidStateError,
        )

        nacked = False
        try:
            async with asyncio.timeout(None) as deadline:
                self._pending[deadline] = self.loop.time()
                if self._watchdog is None:
                    self._watchdog = self.loop.create_task(self._fail_calls_when_stalled())
                try:
                    attempt = 1
                    while True:
                        # Connecting tries every node itself: its failure is final.
                        channel = await self._ready_channel()
                        try:
                            await self._publish_on(
                                channel, body, properties, topology, level=level, dead=dead
                            )
                            break
                        except _NackedError:
                            # RabbitMQ 3.10 nacks a publish to a quorum queue that has no
                            # leader (for the second of an election after its leader's node
                            # died), and a channel whose first publish to the queue was so
                            # nacked nacks every later one to it, leader or not. Not stored:
                            # publish it again, on a fresh channel, until the bound.
                            nacked = True
                            await self._replace_channel(channel)
                            await asyncio.sleep(AFTER_NACK_S)
                        except (_NotStoredError, QueueConfigurationError, ChannelAccessRefused):
                            raise
                        except ChannelClosed:
                            if self._channel is channel:
                                raise
                            # Another job's nack replaced this channel, closing it with this
                            # job unconfirmed: publish it again (a duplicate at worst).
                        except (ConnectionError, OSError, ChannelInvalidStateError) as lost:
                            # Its node went with the job in flight: whether it was stored
                            # is unknown. Publish it again (on the next node that accepts,
                            # for a cluster): a duplicate is what at-least-once allows, a
                            # loss is not.
                            if attempt == self._tries:
                                raise
                            attempt += 1
                            logger.warning(
                                "the broker connection broke with job %s in flight (%s): "
                                "publishing it again, on the next node that accepts",
                                job_id,
                                self.describe(lost),
                            )
                            self.forget_channel()
                finally:
                    del self._pending[deadline]
        except TimeoutError:
            self.forget_channel()
            raise QueueUnavailableError(
                f"the broker at {self._redacted_url} did not take job {job_id} within "
                f"{self._timeout_s:g}s (QUEUE_CONNECT_TIMEOUT_S)"
                + ("; it answered Basic.Nack (not stored)" if nacked else "")
            ) from None
        except QueueConfigurationError:
            raise
        except ChannelAccessRefused as error:
            # Trying again cannot help: the user of RABBITMQ_URL lacks a permission.
            raise QueueConfigurationError(
                f"the broker at {self._redacted_url} refused job {job_id}: "
                f"{self.describe(error)}; the user of RABBITMQ_URL lacks a permission (see "
                "the permissions recipe of the security docs)"
            ) from None
        except Exception as error:
            self.forget_channel()
            raise QueueUnavailableError(
                f"the broker at {self._redacted_url} did not take job {job_id}: "
                f"{self.describe(error)}"
            ) from None

    async def _publish_on(
        self,
        channel: AbstractChannel,
        body: bytes,
        properties: Basic.Properties,
        topology: Topology,
        *,
        level: int | None,
        dead: bool,
    ) -> None:
        """Publish on ``channel`` (declaring ``topology`` first, once per connection);
        return once confirmed."""
        from aiormq.exceptions import DeliveryError, PublishError
        from pamqp.commands import Basic

        if topology.jobs not in self._declared:
            channel = await self._declare(topology)
        exchange = ""
        routing_key = topology.jobs
        if dead:
            exchange = topology.dead_exchange
        elif level is not None:
            if (topology.jobs, level) not in self._declared_delays:
                await topology.declare_delay(channel, level)
                self._declared_delays.add((topology.jobs, level))
            routing_key = topology.delay_queue(level)
        # aiormq's channel directly: aio-pika's Message and Exchange layers cost more per
        # publish than the rest of queue() together.
        underlay = self._underlay
        assert underlay is not None
        try:
            confirmation = await underlay.basic_publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                properties=properties,
                mandatory=True,
            )
        except DeliveryError as refused:
            if isinstance(refused, PublishError) or not isinstance(refused.frame, Basic.Nack):
                raise
            raise _NackedError("the broker answered Nack instead of confirming") from None
        if not isinstance(confirmation, Basic.Ack):
            raise _NotStoredError(
                f"the broker answered {type(confirmation).__name__} instead of confirming"
            )
        self._progressed = True

    async def _fail_calls_when_stalled(self) -> None:
        """Time out the pending calls that waited ``timeout_s`` without broker progress."""
        interval = min(0.5, self._timeout_s / 4)
        try:
            while self._pending:
                woken_at = self.loop.time() + interval
                await asyncio.sleep(interval)
                now = self.loop.time()
                if self._progressed:
                    self._progressed = False
                    self._last_progress = now
                elif now - woken_at > interval:
                    # This process did not run for a while (a busy host): the broker's
                    # answers may be waiting unread. That is not the broker's silence;
                    # judge it again once they could have been read.
                    self._last_progress = now - interval
                    continue
                for deadline, started in self._pending.items():
                    stalled = now - max(started, self._last_progress) >= self._timeout_s
                    if stalled and deadline.when() is None:
                        deadline.reschedule(now)
        finally:
            self._watchdog = None

    async def _ready_channel(self) -> AbstractChannel:
        channel = self._channel
        if channel is not None and not channel.is_closed:
            return channel
        async with self._lock:
            channel = self._channel
            if channel is not None and not channel.is_closed:
                return channel
            return await self._connect()

    async def _replace_channel(self, nacked: AbstractChannel) -> None:
        """Publish on a fresh channel of the same connection from now on, unless
        ``nacked`` was replaced already (its other publishes were nacked too)."""
        async with self._lock:
            connection = self._connection
            if self._channel is not nacked or connection is None or connection.is_closed:
                return
            channel = await connection.channel(publisher_confirms=True)
            self._channel, self._underlay = channel, await channel.get_underlay_channel()
        with contextlib.suppress(Exception):
            await nacked.close()

    async def _connect(self) -> AbstractChannel:
        await self._close_connection()
        connection = await connect_first(
            split_broker_urls(self._url),
            timeout_s=self._timeout_s,
            connection_name=self._connection_name,
        )
        try:
            channel = await connection.channel(publisher_confirms=True)
            self._connection = connection
            self._channel = channel
            self._underlay = await channel.get_underlay_channel()
            self._declared.clear()
            self._declared_delays.clear()
            channel = await self._declare(self.topology)
        except BaseException:
            self._connection = self._channel = self._underlay = None
            await connection.close()
            raise
        logger.info("connected to the broker at %s", node_of(connection, self._url))
        return channel

    async def _declare(self, topology: Topology) -> AbstractChannel:
        """Declare ``topology`` on the current connection, or check it exists when the
        user may not declare it; the channel to publish on from now on."""
        from aiormq.exceptions import ChannelAccessRefused

        channel, connection = self._channel, self._connection
        assert channel is not None
        assert connection is not None
        try:
            await topology.declare(channel)  # QueueConfigurationError on a mismatch
        except ChannelAccessRefused as refused:
            # A producer user may publish jobs but not configure the farm's queues
            # (configure would also let it delete them); the farm declared them. The
            # refusal closed the channel.
            logger.info(
                "may not declare the queues of %r (%s); checking that they exist",
                topology.jobs,
                self.describe(refused),
            )
            channel = await connection.channel(publisher_confirms=True)
            self._channel = channel
            self._underlay = await channel.get_underlay_channel()
            await topology.check_declared(channel)
        self._declared.add(topology.jobs)
        return channel

    async def _close_connection(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and not connection.is_closed:
            try:
                await connection.close()
            except Exception:
                logger.debug("closing a broken broker connection failed", exc_info=True)

    async def close(self) -> None:
        """Close the connection (unconfirmed publishes fail)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        await self._close_connection()


class _NotStoredError(Exception):
    """The broker refused or returned a message."""


class _NackedError(_NotStoredError):
    """The broker nacked a message: it is not stored, and may be published again."""
