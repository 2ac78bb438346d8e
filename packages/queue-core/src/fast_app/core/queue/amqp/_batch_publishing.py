"""Publishing a batch of jobs (``Publisher.publish_many``), its confirms pipelined.

A batch goes out in windows of ``CONFIRM_WINDOW`` messages, each written at once (see
``_pipelined``), with at most two windows awaiting their confirms: the broker confirms
one while the next is on the wire, and memory stays bounded however long the batch. The
progress bound of ``Publisher.publish`` applies to the whole batch.

As for ``Publisher.publish``, a job the broker nacked, or whose channel or connection
broke before its confirm, is published again, in a further round of the jobs so left
(see ``_batch_retry``): on a fresh channel after a nack, on a new connection, to the
first node of the URL list that accepts, after a break; until the bound runs out. Only
the jobs then still not stored, and those the broker returned, fail in their slots.

A ``BatchPublisher`` publishes on the connection of the ``Publisher`` that delegates to
it, through what that publisher offers it as a ``BatchLink``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from fast_app.core.queue.amqp._batch_retry import AFTER_NACK_S, Unconfirmed, broke_link
from fast_app.core.queue.amqp._pipelined import Outgoing, SentWindow, can_frame, send_window
from fast_app.core.queue.amqp.headers import job_properties
from fast_app.core.queue.amqp.topology import Topology, delay_level_ms
from fast_app.core.queue.envelope import JobEnvelope
from fast_app.core.queue.errors import QueueConfigurationError, QueueError, QueueUnavailableError

if TYPE_CHECKING:
    import aiormq.abc

__all__ = ["CONFIRM_WINDOW", "BatchLink", "BatchPublisher", "OutgoingJob"]

#: Messages per write in ``publish_many``; at most twice as many await their confirms.
CONFIRM_WINDOW = 1000

logger = logging.getLogger("fast_app.queue")

#: A window awaiting its confirms, with the batch positions of its jobs.
_InFlight = tuple[list[int], SentWindow]


@dataclass(frozen=True, slots=True)
class OutgoingJob:
    """A job of a ``publish_many`` batch: the encoded job, its extra headers (trace
    context) and the topology of its queue (``None``: the publisher's own)."""

    body: bytes
    envelope: JobEnvelope
    headers: dict[str, Any] | None = None
    queue: Topology | None = None


class BatchLink(Protocol):
    """What a batch uses of the publisher whose connection it publishes on."""

    loop: asyncio.AbstractEventLoop
    topology: Topology

    def stall_bound(self) -> AbstractAsyncContextManager[None]:
        """Raise ``TimeoutError`` inside once the broker has made no progress for as
        long as the publisher allows."""

    async def ensure_connected(self) -> None:
        """Open the connection and its channel, unless they are open."""

    async def ensure_declared(self, topology: Topology) -> None:
        """Declare ``topology`` on the connection, unless it was already."""

    async def ensure_delay_declared(self, topology: Topology, level: int) -> None:
        """Declare the delay queue of ``level`` ms of ``topology``, unless it was already."""

    def underlay(self) -> aiormq.abc.AbstractChannel:
        """The aiormq channel to publish on (once connected)."""

    def note_progress(self) -> None:
        """Record that the broker answered for a message."""

    def forget_channel(self) -> None:
        """Make the next publish open a fresh connection, if the channel is closed."""

    async def replace_nacked_channel(self, nacked: aiormq.abc.AbstractChannel) -> None:
        """Publish on a fresh channel of the connection from now on, unless the channel
        of ``nacked`` was replaced already."""

    def describe(self, error: BaseException) -> str:
        """``error`` for a message, without the broker's password."""


class BatchPublisher:
    """Publishes batches of jobs for ``Publisher.publish_many``.

    Args:
        link: the publisher whose connection the batches go out on.
        redacted_url: the broker URL without its password, for messages.
        timeout_s: the publisher's bound on waiting for the broker, for messages.
        signing_key: add an HMAC-SHA256 signature header with this key.
    """

    def __init__(
        self,
        link: BatchLink,
        *,
        redacted_url: str,
        timeout_s: float,
        signing_key: bytes | None,
    ) -> None:
        self._link = link
        self._redacted_url = redacted_url
        self._timeout_s = timeout_s
        self._signing_key = signing_key
        self._method_frames: dict[tuple[int, str, str], bytes] = {}

    async def publish(
        self, jobs: Sequence[OutgoingJob], *, window: int = CONFIRM_WINDOW
    ) -> list[QueueError | None]:
        """Store a batch of jobs, as ``Publisher.publish_many`` documents."""
        if not jobs:
            return []
        link = self._link
        try:
            async with link.stall_bound():
                await self._declare(jobs)
        except BaseException as error:
            raise self._batch_error(error, len(jobs)) from None

        book = Unconfirmed(
            [job.envelope.id for job in jobs],
            redacted_url=self._redacted_url,
            timeout_s=self._timeout_s,
            describe=link.describe,
        )
        try:
            # One bound for every round: it runs out once the broker has stored nothing
            # for as long as a publish may wait (a nack or a lost confirm is no progress).
            async with link.stall_bound():
                while True:
                    broke = await self._round(jobs, book, window)
                    if not book.pending:
                        break
                    await self._prepare_retry(jobs, book, broke)
        except TimeoutError:
            link.forget_channel()
            book.fail_left(None)
        except Exception as error:
            link.forget_channel()
            book.fail_left(error)
        return book.results

    async def _round(
        self, jobs: Sequence[OutgoingJob], book: Unconfirmed, window: int
    ) -> Exception | None:
        """Publish the jobs of the round ``book`` starts, a window at a time, noting each
        one's answer in ``book``. The error that broke the channel, if one did: the jobs
        not sent by then go back to ``book``."""
        indexes = book.start_round()
        in_flight: deque[_InFlight] = deque()
        sent = 0
        broke: Exception | None = None
        try:
            while in_flight or (broke is None and sent < len(indexes)):
                if broke is None and sent < len(indexes) and len(in_flight) < 2:
                    chunk = indexes[sent : sent + window]
                    try:
                        window_sent = await self._send_window(
                            await self._outgoing([jobs[index] for index in chunk])
                        )
                    except Exception as error:
                        if not broke_link(error):
                            raise
                        broke = error  # nothing of this window was sent
                        continue
                    in_flight.append((chunk, window_sent))
                    sent += len(chunk)
                    book.published(chunk)
                    try:
                        await window_sent.drained
                    except Exception as error:
                        if not broke_link(error):
                            raise
                        # Send no more on it; what is in flight is still collected: the
                        # channel's end failed the confirms that will not come.
                        broke = error
                else:
                    # Popped once collected: a cancelled wait leaves it to ``except``.
                    await self._collect(*in_flight[0], book)
                    in_flight.popleft()
        except BaseException:
            # The batch stops (the bound ran out, or an error another try cannot mend):
            # what each job in flight got, as far as its confirm says.
            for chunk, unsettled in in_flight:
                book.note(chunk, unsettled.confirms, unsettled.channel)
            raise
        finally:
            for _chunk, unsettled in in_flight:
                unsettled.release()
            book.not_sent(indexes[sent:])
        return broke

    async def _prepare_retry(
        self, jobs: Sequence[OutgoingJob], book: Unconfirmed, broke: Exception | None
    ) -> None:
        """Make ready to publish ``book``'s pending jobs again: on a fresh channel after
        a nack, on a new connection (to the first node that accepts) after a break."""
        link = self._link
        if broke is not None or book.lost:
            logger.warning(
                "the broker channel of a batch closed (%s) with %d jobs in flight: "
                "publishing the %d jobs not stored, on the next node that accepts",
                "their confirms failed" if broke is None else link.describe(broke),
                book.lost,
                len(book.pending),
            )
            link.forget_channel()
        if book.nacked_on:
            logger.info(
                "the broker nacked jobs of a batch: publishing %d again on a fresh channel",
                len(book.pending),
            )
            for channel in book.nacked_on:
                try:
                    await link.replace_nacked_channel(channel)
                except Exception as error:
                    if not broke_link(error):
                        raise
                    link.forget_channel()  # its connection went too: open another
            # As ``Publisher.publish`` does: a quorum queue's election takes a moment.
            await asyncio.sleep(AFTER_NACK_S)
        # Connects again when the channel is gone, the way ``Publisher.publish`` does
        # (every node of the URL list in turn); its failure ends the batch.
        await self._declare([jobs[index] for index in book.pending])

    async def _declare(self, jobs: Sequence[OutgoingJob]) -> None:
        """Connect, and declare every queue (and delay level) the batch uses."""
        link = self._link
        await link.ensure_connected()
        # Each declared once per batch: asking the link again for each job costs time.
        queues: set[str] = set()
        delays: set[tuple[str, int]] = set()
        now = time.time()
        for job in jobs:
            topology = job.queue or link.topology
            if topology.jobs not in queues:
                await link.ensure_declared(topology)
                queues.add(topology.jobs)
            not_before = job.envelope.not_before
            if not_before is not None:
                level = delay_level_ms(not_before - now)
                if level is not None and (topology.jobs, level) not in delays:
                    await link.ensure_delay_declared(topology, level)
                    delays.add((topology.jobs, level))

    async def _outgoing(self, jobs: Sequence[OutgoingJob]) -> list[Outgoing]:
        """The messages of ``jobs``: properties, and the queue each is routed to."""
        link = self._link
        outgoing = []
        now = time.time()
        key = self._signing_key
        for job in jobs:
            envelope = job.envelope
            topology = job.queue or link.topology
            routing_key = topology.jobs
            if envelope.not_before is not None:
                level = delay_level_ms(envelope.not_before - now)
                if level is not None:
                    # Time passed since the batch was declared: maybe a lower level.
                    await link.ensure_delay_declared(topology, level)
                    routing_key = topology.delay_queue(level)
            properties = job_properties(
                job.body, envelope, signing_key=key, extra_headers=job.headers
            )
            outgoing.append(Outgoing(job.body, properties, "", routing_key, envelope.id))
        return outgoing

    async def _send_window(self, outgoing: list[Outgoing]) -> SentWindow:
        underlay = self._link.underlay()
        if can_frame(underlay):
            return await send_window(underlay, outgoing, self._method_frames)
        # An aiormq without the state ``send_window`` uses: one publish per message.
        loop = self._link.loop
        futures: list[asyncio.Future[Any]] = [
            loop.create_task(
                underlay.basic_publish(
                    message.body,
                    exchange=message.exchange,
                    routing_key=message.routing_key,
                    properties=message.properties,
                    mandatory=True,
                )
            )
            for message in outgoing
        ]
        drained: asyncio.Future[None] = loop.create_future()
        drained.set_result(None)
        return SentWindow(underlay, outgoing, futures, drained)

    async def _collect(self, chunk: list[int], window: SentWindow, book: Unconfirmed) -> None:
        """Wait for the window's confirms, in order; note each job's answer."""
        note_progress = self._link.note_progress
        for future in window.confirms:
            if not future.done():
                await asyncio.wait((future,))
            if not future.cancelled() and future.exception() is None:
                note_progress()  # an ack, or a return: the broker answered for good
        book.note(chunk, window.confirms, window.channel)
        window.release()

    def _batch_error(self, error: BaseException, count: int) -> BaseException:
        """What ``publish`` raises when it could not start publishing."""
        from aiormq.exceptions import ChannelAccessRefused

        link = self._link
        what = f"a batch of {count} jobs"
        if isinstance(error, TimeoutError):
            link.forget_channel()
            return QueueUnavailableError(
                f"the broker at {self._redacted_url} did not take {what} within "
                f"{self._timeout_s:g}s (QUEUE_CONNECT_TIMEOUT_S)"
            )
        if isinstance(error, QueueConfigurationError) or not isinstance(error, Exception):
            return error
        if isinstance(error, ChannelAccessRefused):
            return QueueConfigurationError(
                f"the broker at {self._redacted_url} refused {what}: "
                f"{link.describe(error)}; the user of RABBITMQ_URL lacks a permission (see "
                "the permissions recipe of the security docs)"
            )
        link.forget_channel()
        return QueueUnavailableError(
            f"the broker at {self._redacted_url} did not take {what}: {link.describe(error)}"
        )
