"""Publishing a batch of jobs (``Publisher.publish_many``), its confirms pipelined.

A batch goes out in windows of ``CONFIRM_WINDOW`` messages, each written at once (see
``_pipelined``), with at most two windows awaiting their confirms: the broker confirms
one while the next is on the wire, and memory stays bounded however long the batch. The
progress bound of ``Publisher.publish`` applies to the whole batch.

A ``BatchPublisher`` publishes on the connection of the ``Publisher`` that delegates to
it, through what that publisher offers it as a ``BatchLink``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

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

_InFlight = tuple[int, SentWindow]


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
        results: list[QueueError | None] = [None] * len(jobs)
        if not jobs:
            return results
        link = self._link
        try:
            async with link.stall_bound():
                await self._declare(jobs)
        except BaseException as error:
            raise self._batch_error(error, len(jobs)) from None

        in_flight: deque[_InFlight] = deque()
        sent = 0
        try:
            async with link.stall_bound():
                while sent < len(jobs) or in_flight:
                    if sent < len(jobs) and len(in_flight) < 2:
                        chunk = jobs[sent : sent + window]
                        window_sent = await self._send_window(await self._outgoing(chunk))
                        in_flight.append((sent, window_sent))
                        sent += len(chunk)
                        await window_sent.drained
                    else:
                        # Popped once collected: a cancelled wait leaves it to
                        # ``release`` below.
                        await self._collect(*in_flight[0], results)
                        in_flight.popleft()
        except TimeoutError:
            link.forget_channel()
            self._fail_rest(jobs, sent, in_flight, results, None)
        except Exception as error:
            link.forget_channel()
            self._fail_rest(jobs, sent, in_flight, results, error)
        finally:
            for _start, unsettled in in_flight:
                unsettled.release()
        return results

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

    async def _collect(
        self, start: int, window: SentWindow, results: list[QueueError | None]
    ) -> None:
        """Wait for the window's confirms, in order; note each job's result."""
        messages = window.messages
        note_progress = self._link.note_progress
        for offset, future in enumerate(window.confirms):
            if not future.done():
                await asyncio.wait((future,))
            note_progress()
            results[start + offset] = self._not_stored(future, messages[offset].message_id)
        window.release()

    def _not_stored(self, future: asyncio.Future[Any], job_id: str) -> QueueError | None:
        """``None`` when the (done) confirm future says the job is stored, else why not."""
        from pamqp.commands import Basic

        if future.cancelled():
            reason = "its publish was cancelled (the channel closed)"
        elif (error := future.exception()) is not None:
            reason = self._link.describe(error)
        elif isinstance(confirmation := future.result(), Basic.Ack):
            return None
        else:
            reason = f"the broker answered {_answer(confirmation)} instead of confirming"
        return QueueUnavailableError(
            f"the broker at {self._redacted_url} did not take job {job_id}: {reason}"
        )

    def _fail_rest(
        self,
        jobs: Sequence[OutgoingJob],
        sent: int,
        in_flight: deque[_InFlight],
        results: list[QueueError | None],
        error: Exception | None,
    ) -> None:
        """After the batch stopped (stalled broker: ``error`` is ``None``): the result of
        each job still in flight, as far as its confirm says, and the unsent ones'."""
        if error is None:
            reason = f"not confirmed within {self._timeout_s:g}s (QUEUE_CONNECT_TIMEOUT_S)"
        else:
            reason = self._link.describe(error)
        for start, window in in_flight:
            for offset, future in enumerate(window.confirms):
                job_id = window.messages[offset].message_id
                results[start + offset] = (
                    self._not_stored(future, job_id)
                    if future.done()
                    else QueueUnavailableError(
                        f"the broker at {self._redacted_url} did not take job {job_id}: {reason}"
                    )
                )
        for index in range(sent, len(jobs)):
            results[index] = QueueUnavailableError(
                f"the broker at {self._redacted_url} did not take job "
                f"{jobs[index].envelope.id}: not sent, the batch stopped ({reason})"
            )

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


def _answer(confirmation: object) -> str:
    """How to name what the broker answered instead of an ack (a returned message)."""
    delivery = getattr(confirmation, "delivery", None)
    reply = getattr(delivery, "reply_text", None)
    return f"a return ({reply})" if reply else type(confirmation).__name__
