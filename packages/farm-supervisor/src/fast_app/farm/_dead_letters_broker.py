"""Broker side of ``fast-app dlq``: reading ``<queue>.dead`` without consuming it.

A dead letter is taken with ``basic.get`` and no ack; closing the connection gives back
every one not acked, so only an explicit ack removes one.

Each such return counts as a delivery. RabbitMQ 3.x sets no delivery limit on a quorum
queue unless asked, but 4.0 to 4.2 default it to 20 returns and drop the message past it
(the dead-letter queue has no dead-letter exchange of its own): there, give
``<queue>.dead`` a policy with ``delivery-limit: -1`` before reading it often.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from fast_app.core.queue.amqp import Topology
from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.envelope import JobEnvelope, decode_envelope
from fast_app.core.queue.errors import InvalidJobError, QueueUnavailableError
from fast_app.core.queue.settings import QueueSettings

if TYPE_CHECKING:
    from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue

__all__ = ["DeadLetter", "DeadLetterQueue", "open_dead_letters", "read_dead_letter"]


@dataclass(frozen=True)
class DeadLetter:
    """A dead-lettered job, as stored in ``<queue>.dead``.

    Attributes:
        job_id: the job id (from the envelope, else the message id); ``None`` if neither.
        function: dotted path of the job's function.
        reason: why it was dead-lettered (``failed``, ``soft_timeout``, ``invalid``...; a
            broker reason such as ``delivery_limit`` when the broker dead-lettered it).
        error_type: qualified name of the exception class.
        error: the exception message.
        traceback: the formatted traceback.
        attempts: how many times the job ran.
        worker: id of the worker that dead-lettered it.
        failed_at: when it was dead-lettered.
        body: the message body, unchanged.
        args: positional arguments, when the body is a job envelope.
        kwargs: keyword arguments, when the body is a job envelope.
        context: the context snapshot, when the body is a job envelope.
    """

    job_id: str | None
    function: str | None
    reason: str | None
    error_type: str | None
    error: str | None
    traceback: str | None
    attempts: int | None
    worker: str | None
    failed_at: dt.datetime | None
    body: bytes
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    context: dict[str, Any] | None = None


class DeadLetterQueue:
    """The dead-letter queue of one command, read at most as deep as it was at the start.

    The bound matters to ``requeue --all``: requeued jobs that fail again at once come
    back behind the others, and must not be requeued in a loop.
    """

    def __init__(self, queue: AbstractQueue | None, timeout_s: float) -> None:
        self._queue = queue
        self._timeout_s = timeout_s
        #: How many dead letters were ready when the command started.
        self.count = 0 if queue is None else queue.declaration_result.message_count or 0
        self._taken = 0

    async def take(self) -> AbstractIncomingMessage | None:
        """The next dead letter, unacknowledged; ``None`` past the end."""
        if self._queue is None or self._taken >= self.count:
            return None
        self._taken += 1
        return await self._queue.get(no_ack=False, fail=False, timeout=self._timeout_s)

    async def purge(self) -> int:
        """Delete the dead letters not held by a reader; return how many."""
        if self._queue is None:
            return 0
        result = await self._queue.purge()
        return int(result.message_count or 0)


@contextlib.asynccontextmanager
async def open_dead_letters(settings: QueueSettings) -> AsyncIterator[DeadLetterQueue]:
    """The dead-letter queue, on a connection closed on exit.

    Closing gives back every dead letter taken and not acked. A queue that does not exist
    yet is an empty one: reading never creates queues (their type is the workers' call).
    """
    from aiormq.exceptions import ChannelNotFoundEntity

    async with _connection(settings) as connection:
        channel = await connection.channel()
        name = Topology.from_settings(settings).dead
        try:
            queue: AbstractQueue | None = await channel.declare_queue(name, passive=True)
        except ChannelNotFoundEntity:
            queue = None
        yield DeadLetterQueue(queue, settings.connect_timeout_s)


@contextlib.asynccontextmanager
async def _connection(settings: QueueSettings) -> AsyncIterator[AbstractConnection]:
    import aio_pika
    from aiormq.exceptions import AMQPError

    url = settings.rabbitmq_url.get_secret_value()
    where = settings.redacted_rabbitmq_url
    try:
        connection = await aio_pika.connect(
            url,
            timeout=settings.connect_timeout_s,
            client_properties={"connection_name": "fast-app dlq"},
        )
    except (AMQPError, OSError, TimeoutError) as error:
        raise QueueUnavailableError(
            f"cannot reach the broker at {where}: {_describe(error, url)}"
        ) from None
    try:
        yield connection
    except (AMQPError, OSError, TimeoutError) as error:
        raise QueueUnavailableError(
            f"lost the broker at {where}: {_describe(error, url)}"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


def read_dead_letter(message: AbstractIncomingMessage) -> tuple[DeadLetter, JobEnvelope | None]:
    """The dead letter in ``message``, and its job when the body is a valid envelope."""
    headers: Mapping[str, Any] = message.headers or {}
    try:
        envelope: JobEnvelope | None = decode_envelope(message.body)
    except InvalidJobError:
        envelope = None
    # The broker dead-letters on its own too (a quorum queue's delivery limit, a reject):
    # then only its x-death headers say why and when. The latest death comes first;
    # x-first-death-reason would name the oldest one, for a retried job the "expired" of
    # its passage through a delay queue.
    deaths = headers.get("x-death")
    latest = deaths[0] if isinstance(deaths, list) and deaths else None
    died_at = latest.get("time") if isinstance(latest, Mapping) else None
    broker_reason = latest.get("reason") if isinstance(latest, Mapping) else None
    letter = DeadLetter(
        job_id=envelope.id if envelope else message.message_id,
        function=envelope.function if envelope else message.type,
        reason=_text(headers.get(h.DEAD_REASON))
        or _text(broker_reason)
        or _text(headers.get("x-first-death-reason")),
        error_type=_text(headers.get(h.DEAD_ERROR_TYPE)),
        error=_text(headers.get(h.DEAD_ERROR)),
        traceback=_text(headers.get(h.DEAD_TRACEBACK)),
        attempts=_integer(headers.get(h.DEAD_ATTEMPTS)),
        worker=_text(headers.get(h.DEAD_WORKER)),
        failed_at=_moment(headers.get(h.DEAD_FAILED_AT)) or _moment(died_at),
        body=bytes(message.body),
        args=envelope.args if envelope else None,
        kwargs=envelope.kwargs if envelope else None,
        context=envelope.context if envelope else None,
    )
    return letter, envelope


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _moment(value: object) -> dt.datetime | None:
    if isinstance(value, bytes | str):
        try:
            value = dt.datetime.fromisoformat(_text(value) or "")
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    # AMQP timestamps carry no zone; they are UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _describe(error: BaseException, url: str) -> str:
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    password = urlsplit(url).password
    if password:
        for secret in (password, unquote(password)):
            text = text.replace(secret, "***")
    return text
