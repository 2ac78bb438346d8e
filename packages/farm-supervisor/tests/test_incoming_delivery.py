"""The worker's own view of a delivery (``Delivered``, over aiormq's ``DeliveredMessage``):
it reads what aio-pika's ``IncomingMessage`` read, and settles as it did — once, and not
on a closed channel. In-process, with a recording stand-in for aiormq's channel."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aio_pika.exceptions import MessageProcessError
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import ChannelInvalidStateError
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from fast_app.farm.worker._incoming import Delivered, IncomingJob


class _Channel:
    """Records what is sent; raises as aiormq does once closed."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, bool | None]] = []
        self.waited_for_acks: list[bool] = []
        self.is_closed = False

    def _send(self, what: str, tag: int, requeue: bool | None) -> None:
        if self.is_closed:
            raise ChannelInvalidStateError("closed")
        self.sent.append((what, tag, requeue))

    async def basic_ack(self, delivery_tag: int, *, wait: bool = True) -> None:
        self._send("ack", delivery_tag, None)
        self.waited_for_acks.append(wait)

    async def basic_nack(self, delivery_tag: int, *, requeue: bool) -> None:
        self._send("nack", delivery_tag, requeue)

    async def basic_reject(self, delivery_tag: int, *, requeue: bool) -> None:
        self._send("reject", delivery_tag, requeue)


def _delivered(channel: _Channel, **properties: Any) -> Delivered:
    message: Any = DeliveredMessage(
        delivery=Basic.Deliver(
            consumer_tag="ctag", delivery_tag=7, redelivered=True, routing_key="jobs"
        ),
        header=ContentHeader(properties=Basic.Properties(**properties)),
        body=b"{}",
        channel=channel,  # type: ignore[arg-type]
    )
    return Delivered(message)


def test_it_reads_the_properties_the_worker_uses() -> None:
    # Given a delivery with the properties the project's publishers set
    stamp = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    message: IncomingJob = _delivered(
        _Channel(),
        message_id="job-1",
        message_type="jobs.add",
        content_type="application/json",
        timestamp=stamp,
        headers={"traceparent": "00-x"},
    )

    # Then the worker reads them as it read aio-pika's message
    assert message.body == b"{}"
    assert message.message_id == "job-1"
    assert message.type == "jobs.add"
    assert message.content_type == "application/json"
    assert message.timestamp == stamp
    assert message.headers == {"traceparent": "00-x"}
    assert message.redelivered is True


def test_a_delivery_without_headers_reads_empty_headers() -> None:
    assert _delivered(_Channel()).headers == {}


@pytest.mark.parametrize("first", ["ack", "nack", "reject"])
@pytest.mark.parametrize("second", ["ack", "nack", "reject"])
async def test_a_delivery_settles_once(first: str, second: str) -> None:
    # Given a delivery settled once
    channel = _Channel()
    message = _delivered(channel)
    await getattr(message, first)()

    # When it is settled again, then that raises, as aio-pika did, and sends nothing
    with pytest.raises(MessageProcessError):
        await getattr(message, second)()
    assert len(channel.sent) == 1
    assert channel.sent[0][:2] == (first, 7)


async def test_an_ack_is_queued_without_waiting_for_the_socket() -> None:
    # Given a delivery
    channel = _Channel()
    message = _delivered(channel)

    # When it is acknowledged
    await message.ack()

    # Then the ack is handed to the connection's writer without waiting for its write
    # (the consumer flushes the acks with a round trip before it closes)
    assert channel.sent == [("ack", 7, None)]
    assert channel.waited_for_acks == [False]


async def test_a_delivery_on_a_closed_channel_is_not_settled_and_can_be_tried_again() -> None:
    # Given a delivery whose channel closed
    channel = _Channel()
    message = _delivered(channel)
    channel.is_closed = True

    # When it is acknowledged, then that raises
    with pytest.raises(ChannelInvalidStateError):
        await message.ack()

    # and it is not taken for settled (as aio-pika: settled only once sent)
    channel.is_closed = False
    await message.nack(requeue=True)
    assert channel.sent == [("nack", 7, True)]
