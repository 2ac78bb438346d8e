"""A delivery of the jobs queue as the worker handles it: what it reads, how it settles.

The worker consumes its jobs queue on aiormq's channel itself, not through aio-pika's
``Queue.consume``: for each delivery, aio-pika would build an ``IncomingMessage`` (some
thirty attribute sets, each through a lock check) and start a second task on top of the
one aiormq already runs the consumer in. ``IncomingJob`` is the part of aio-pika's
``AbstractIncomingMessage`` the worker uses; ``Delivered`` provides it over aiormq's
``DeliveredMessage`` for the price of a few slots, and settles as aio-pika does: once
(a second ack, nack or reject raises ``MessageProcessError``), and not on a closed
channel (aiormq raises ``ChannelInvalidStateError``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

# aio-pika's own error, so that a delivery settles as it did through aio-pika.
from aio_pika.exceptions import MessageProcessError

if TYPE_CHECKING:
    import datetime as dt

    from aiormq.abc import AbstractChannel, DeliveredMessage
    from pamqp.commands import Basic

__all__ = ["Delivered", "IncomingJob"]


class IncomingJob(Protocol):
    """A delivery of the jobs queue, as the worker reads and settles it."""

    @property
    def body(self) -> bytes:
        """The message body, as published."""
        ...

    @property
    def headers(self) -> dict[str, Any]:
        """The message headers (empty when it has none)."""
        ...

    @property
    def message_id(self) -> str | None:
        """The ``message_id`` property (the job id, for the project's publishers)."""
        ...

    @property
    def type(self) -> str | None:
        """The ``type`` property (the job's function, for the project's publishers)."""
        ...

    @property
    def content_type(self) -> str | None:
        """The ``content_type`` property."""
        ...

    @property
    def timestamp(self) -> dt.datetime | None:
        """The ``timestamp`` property."""
        ...

    @property
    def redelivered(self) -> bool | None:
        """Whether the broker delivered it before."""
        ...

    async def ack(self) -> None:
        """Acknowledge it."""

    async def nack(self, *, requeue: bool = True) -> None:
        """Take it back to its queue (or drop it, without ``requeue``)."""

    async def reject(self, *, requeue: bool = False) -> None:
        """Refuse it: the broker dead-letters it (or requeues it, with ``requeue``)."""


class Delivered:
    """``IncomingJob`` over aiormq's ``DeliveredMessage``.

    Args:
        message: the delivery, as aiormq read it (its headers decoded tolerantly, see
            ``install_tolerant_decoding``).
    """

    __slots__ = (
        "_channel",
        "_properties",
        "_settled",
        "body",
        "delivery_tag",
        "headers",
        "message_id",
        "redelivered",
        "type",
    )

    def __init__(self, message: DeliveredMessage) -> None:
        # Only reads what aiormq decoded already: building it cannot fail on a message's
        # content (the consumer's edge is past it).
        properties = message.header.properties
        self._channel: AbstractChannel = message.channel
        self._properties: Basic.Properties = properties
        self._settled = False
        self.body: bytes = message.body
        self.delivery_tag: int | None = message.delivery_tag
        self.headers: dict[str, Any] = properties.headers or {}
        self.message_id: str | None = properties.message_id
        self.redelivered: bool | None = message.redelivered
        self.type: str | None = properties.message_type

    @property
    def content_type(self) -> str | None:
        """The ``content_type`` property (read for dead letters only)."""
        return self._properties.content_type

    @property
    def timestamp(self) -> dt.datetime | None:
        """The ``timestamp`` property (read for dead letters only)."""
        return self._properties.timestamp

    async def ack(self) -> None:
        """Acknowledge it: queued on the connection's writer, in order, without waiting
        for the socket to take it (the consumer's ``flush`` does, before a close).

        aio-pika waits for each ack's write to drain: a future, a turn of the writer
        and a resumption of every coroutine between the delivery's task and the socket,
        per job, for a frame that the broker has not received either way when the wait
        ends. An ack that a lost connection never sends is the same in both: the broker
        hands the job out again.

        Raises:
            MessageProcessError: it was settled already.
            ChannelInvalidStateError: its channel is closed.
        """
        await self._settle(lambda tag: self._channel.basic_ack(tag, wait=False))

    async def nack(self, *, requeue: bool = True) -> None:
        """Take it back to its queue (or drop it, without ``requeue``).

        Raises:
            MessageProcessError: it was settled already.
            ChannelInvalidStateError: its channel is closed.
        """
        await self._settle(lambda tag: self._channel.basic_nack(tag, requeue=requeue))

    async def reject(self, *, requeue: bool = False) -> None:
        """Refuse it: the broker dead-letters it (or requeues it, with ``requeue``).

        Raises:
            MessageProcessError: it was settled already.
            ChannelInvalidStateError: its channel is closed.
        """
        await self._settle(lambda tag: self._channel.basic_reject(tag, requeue=requeue))

    async def _settle(self, send: Callable[[int], Awaitable[object]]) -> None:
        if self._settled:
            raise MessageProcessError("Message already processed", self)
        if self.delivery_tag is not None:
            await send(self.delivery_tag)
        # Settled only once sent, as aio-pika does: a failed one leaves it to be handed back.
        self._settled = True

    def __repr__(self) -> str:
        return f"<Delivered {self.message_id!r} tag={self.delivery_tag}>"
