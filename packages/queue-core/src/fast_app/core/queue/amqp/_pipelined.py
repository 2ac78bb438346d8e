"""Publishing a window of messages in one write, their confirms pipelined.

aiormq's ``basic_publish`` is one coroutine per message: it takes the channel lock,
opens two timeouts and two futures, marshals three frames, puts them on the write queue
and waits until the writer task has written them (one socket ``send`` per message).
Profiled over 20,000 concurrent publishes that is ~4/5 of the client's time, and the
lock's waiter list makes each acquire cost more as the burst grows. ``send_window`` does
what ``basic_publish`` does for a whole window at once: one lock, one write, one future
per message for its confirm; the method frame (identical for every message to one
queue) is marshalled once per routing key, the body frame is packed by hand.

It uses aiormq's channel state that ``basic_publish`` itself uses (``lock``,
``delivery_tag``, ``confirmations``, ``message_id_delivery_tag``, ``write_queue``,
``max_content_size``), so confirms, nacks, returned messages and a channel that closes
reach these futures through aiormq's own handlers; a channel that closes fails those not
done yet. ``can_frame`` checks they exist and that aiormq is of the major version this
was verified against (7: what ``uv.lock`` holds and the tests run); with any other, the
caller falls back to concurrent ``basic_publish`` calls, slower but relying on nothing
private.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiormq.abc
    from pamqp.commands import Basic

__all__ = ["Outgoing", "SentWindow", "can_frame", "send_window"]

_CHANNEL_STATE = (
    "lock",
    "delivery_tag",
    "confirmations",
    "message_id_delivery_tag",
    "write_queue",
    "max_content_size",
    "closing",
)
_BODY_FRAME = 3
_FRAME_END = b"\xce"
_body_header = struct.Struct(">BHI").pack


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish (mandatory, so that an unroutable one comes back)."""

    body: bytes
    properties: Basic.Properties
    exchange: str
    routing_key: str
    message_id: str


def can_frame(channel: object) -> bool:
    """Whether ``channel`` (an aiormq channel) has the state ``send_window`` uses, in an
    aiormq this was verified against."""
    return (
        _VERIFIED_AIORMQ
        and all(hasattr(channel, name) for name in _CHANNEL_STATE)
        and isinstance(getattr(channel, "confirmations", None), dict)
    )


def _aiormq_verified() -> bool:
    try:
        major = int(importlib.metadata.version("aiormq").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return major in _VERIFIED_MAJORS


_VERIFIED_MAJORS = frozenset({7})
_VERIFIED_AIORMQ = _aiormq_verified()


class SentWindow:
    """A window handed to the channel's writer, and what to await for it.

    Attributes:
        messages: the window's messages, in order.
        confirms: each message's confirm future. Its result is ``Basic.Ack``, or the
            returned message when the broker could not route it; it fails with aiormq's
            error on a ``Basic.Nack``, or with the channel's error once it closes.
        drained: done once the writer has written the window to the socket's buffer
            (await it for backpressure from TCP and the broker's flow control).
    """

    __slots__ = ("_channel", "_observer", "_released", "confirms", "drained", "messages")

    def __init__(
        self,
        channel: aiormq.abc.AbstractChannel,
        messages: Sequence[Outgoing],
        confirms: list[asyncio.Future[Any]],
        drained: asyncio.Future[None],
    ) -> None:
        self._channel = channel
        self.messages = messages
        self.confirms = confirms
        self.drained = drained
        self._released = False
        # One observer of the channel's closing per window instead of registering each
        # confirm with the channel (two done callbacks per message, a third of the
        # cost of confirming).
        self._observer = channel.closing
        self._observer.add_done_callback(self._fail_pending)

    @property
    def channel(self) -> aiormq.abc.AbstractChannel:
        """The channel the window was published on."""
        return self._channel

    def _fail_pending(self, closing: asyncio.Future[Any]) -> None:
        if self._released:
            return
        error = (None if closing.cancelled() else closing.exception()) or ConnectionError(
            "the channel closed"
        )
        for future in (self.drained, *self.confirms):
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: the caller reads it from ``confirms``

    def release(self) -> None:
        """Drop the channel's record of the messages' ids (``basic_publish`` does it per
        message in a done callback), cancel the futures not done yet, stop watching the
        channel. A confirm arriving later for a cancelled future is ignored by aiormq."""
        self._released = True
        message_ids: dict[str, int] = getattr(self._channel, "message_id_delivery_tag", {})
        for message, future in zip(self.messages, self.confirms, strict=True):
            message_ids.pop(message.message_id, None)
            if not future.done():
                future.cancel()
        if not self.drained.done():
            self.drained.cancel()
        if not self._observer.done():
            self._observer.cancel()


async def send_window(
    channel: aiormq.abc.AbstractChannel,
    window: Sequence[Outgoing],
    method_frames: dict[tuple[int, str, str], bytes],
) -> SentWindow:
    """Queue ``window`` for the channel's writer as one frame; what to await for it.

    ``method_frames`` caches the marshalled ``Basic.Publish`` frames of the caller.
    Nothing is sent if it raises.
    """
    import pamqp.frame
    from aiormq.abc import ChannelFrame
    from pamqp.commands import Basic
    from pamqp.header import ContentHeader

    state: Any = channel  # aiormq.Channel; its attributes are not all in its abc
    number = channel.number
    marshal = pamqp.frame.marshal
    max_content = state.max_content_size
    confirmations: dict[int, Any] = state.confirmations
    message_ids: dict[str, int] = state.message_id_delivery_tag
    loop = asyncio.get_running_loop()
    create_future = loop.create_future
    futures: list[asyncio.Future[Any]] = []
    parts: list[bytes] = []
    drained: asyncio.Future[None] = create_future()
    sent: SentWindow | None = None
    async with state.lock:
        first_tag = tag = state.delivery_tag
        try:
            for message in window:
                tag += 1
                future: asyncio.Future[Any] = create_future()
                confirmations[tag] = future
                message_ids[message.message_id] = tag
                futures.append(future)
                key = (number, message.exchange, message.routing_key)
                method = method_frames.get(key)
                if method is None:
                    method = method_frames[key] = marshal(
                        Basic.Publish(
                            exchange=message.exchange,
                            routing_key=message.routing_key,
                            mandatory=True,
                        ),
                        number,
                    )
                body = message.body
                parts.append(method)
                parts.append(marshal(ContentHeader(0, len(body), message.properties), number))
                if len(body) < max_content:
                    parts.append(_body_header(_BODY_FRAME, number, len(body)))
                    parts.append(body)
                    parts.append(_FRAME_END)
                else:
                    for start in range(0, len(body), max_content):
                        piece = body[start : start + max_content]
                        parts.append(_body_header(_BODY_FRAME, number, len(piece)))
                        parts.append(piece)
                        parts.append(_FRAME_END)
            sent = SentWindow(channel, window, futures, drained)
            state.delivery_tag = tag
            await state.write_queue.put(
                ChannelFrame(payload=b"".join(parts), should_close=False, drain_future=drained)
            )
        except BaseException:
            # Not written: give the delivery tags back, as basic_publish does.
            state.delivery_tag = first_tag
            for number_back in range(first_tag + 1, tag + 1):
                confirmations.pop(number_back, None)
            for message in window:
                message_ids.pop(message.message_id, None)
            for future in (drained, *futures):
                future.cancel()
            if sent is not None:
                sent.release()
            raise
    return sent
