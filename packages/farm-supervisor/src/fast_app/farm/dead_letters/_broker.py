"""Broker side of the dead-letter API: reading ``<queue>.dead`` without consuming it.

A dead letter is taken with ``basic.get`` and no ack; closing the connection gives back
every one not acked, so only an explicit ack removes one.

Each such return counts as a delivery. RabbitMQ 3.x sets no delivery limit on a quorum
queue unless asked, but 4.0 to 4.2 default it to 20 returns and drop the message past it
(the dead-letter queue has no dead-letter exchange of its own): there, give
``<queue>.dead`` a policy with ``delivery-limit: -1`` before reading it often.

Anyone who may publish to ``<queue>.dlx`` can put anything in the dead-letter queue, so
reading is an edge: one dead letter that cannot be read is reported by its position and
passed over, never allowed to stop the reading of the others, and what a dead letter says
about itself is trusted only as far as its signature goes (see ``read_dead_letter``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fast_app.core.queue.amqp import Topology, install_tolerant_decoding
from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.amqp.connecting import connect_first
from fast_app.core.queue.broker_urls import describe_error
from fast_app.core.queue.envelope import JobEnvelope, decode_envelope
from fast_app.core.queue.errors import InvalidJobError, QueueUnavailableError
from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.dead_letters.letter import DeadLetter

if TYPE_CHECKING:
    from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue

__all__ = [
    "DeadLetterQueue",
    "TakenDeadLetter",
    "open_dead_letters",
    "read_dead_letter",
]


@dataclass(frozen=True)
class TakenDeadLetter:
    """One dead letter taken from the queue and not acknowledged, read if it could be.

    Attributes:
        queue: the jobs queue whose dead letters it was taken from.
        position: where it was in the queue: 1 for the first one taken.
        message: the delivery (ack it to remove the dead letter); ``None`` when the
            client could not receive it at all.
        letter: what it says; ``None`` when it could not be read at all.
        envelope: its job, when the body is a valid job envelope.
        problem: why it could not be read (an exception's name), when it could not.
    """

    queue: str
    position: int
    message: AbstractIncomingMessage | None
    letter: DeadLetter | None
    envelope: JobEnvelope | None = None
    problem: str | None = None


_CUT_SHORT = (
    "the client lost its connection on it, so the dead letters after it were not read; "
    "only `fast-app dlq purge` (every dead letter) removes it"
)


class DeadLetterQueue:
    """The dead-letter queue of one jobs queue, read at most as deep as it was at the start.

    The bound matters to ``requeue --all``: requeued jobs that fail again at once come
    back behind the others, and must not be requeued in a loop.

    Attributes:
        jobs_queue: the jobs queue whose dead letters these are.
        name: the dead-letter queue (``<jobs_queue>.dead``).
    """

    def __init__(
        self,
        queue: AbstractQueue | None,
        timeout_s: float,
        *,
        jobs_queue: str,
        signing_key: bytes | None,
    ) -> None:
        self._queue = queue
        self._timeout_s = timeout_s
        self.jobs_queue = jobs_queue
        self.name = f"{jobs_queue}.dead"
        self._signing_key = signing_key
        #: How many dead letters were ready when the command started.
        self.count = 0 if queue is None else queue.declaration_result.message_count or 0
        #: Position of the dead letter that cost the connection, if one did.
        self.cut_short_at: int | None = None
        self._taken = 0

    async def take(self) -> TakenDeadLetter | None:
        """The next dead letter, unacknowledged and read; ``None`` past the end.

        After a dead letter the client could not even receive (``cut_short_at``), the
        connection is gone: the taken dead letters can no longer be acknowledged, and
        the next ``take`` returns ``None``.
        """
        from aiormq.exceptions import AMQPError

        if self._queue is None or self._taken >= self.count:
            return None
        try:
            message = await self._queue.get(no_ack=False, fail=False, timeout=self._timeout_s)
        except (AMQPError, OSError, TimeoutError):
            raise  # the broker's trouble: the command says so
        except Exception as error:
            # The client library could not decode the delivery itself (a header table
            # nested deeper than its decoder recurses, a property that is not UTF-8) and
            # dropped the connection with it. Nothing after it can be read this time.
            self._taken += 1
            self.cut_short_at = self._taken
            problem = f"{type(error).__name__}; {_CUT_SHORT}"
            self._taken = self.count
            return TakenDeadLetter(self.jobs_queue, self.cut_short_at, None, None, problem=problem)
        if message is None:  # another reader took the rest
            self._taken = self.count
            return None
        self._taken += 1
        try:
            letter, envelope = read_dead_letter(
                message, jobs_queue=self.jobs_queue, signing_key=self._signing_key
            )
        except Exception as error:
            # Whatever is wrong with this one message (a RecursionError, bytes that are
            # not text...), the others must still be read.
            return TakenDeadLetter(
                self.jobs_queue, self._taken, message, None, problem=type(error).__name__
            )
        return TakenDeadLetter(self.jobs_queue, self._taken, message, letter, envelope)

    async def purge(self) -> int:
        """Delete the dead letters not held by a reader; return how many."""
        if self._queue is None:
            return 0
        result = await self._queue.purge()
        return int(result.message_count or 0)


@contextlib.asynccontextmanager
async def open_dead_letters(
    settings: QueueSettings, queue: str | None = None
) -> AsyncIterator[DeadLetterQueue]:
    """The dead letters of ``queue`` (default ``QUEUE_NAME``), on a connection closed on exit.

    Closing gives back every dead letter taken and not acked. A queue that does not exist
    yet is an empty one: reading never creates queues (their type is the workers' call).
    """
    from aiormq.exceptions import ChannelNotFoundEntity

    jobs_queue = settings.name if queue is None else queue
    async with _connection(settings) as connection:
        channel = await connection.channel()
        name = Topology.from_settings(settings, jobs_queue).dead
        try:
            dead: AbstractQueue | None = await channel.declare_queue(name, passive=True)
        except ChannelNotFoundEntity:
            dead = None
        key = settings.signing_key
        yield DeadLetterQueue(
            dead,
            settings.connect_timeout_s,
            jobs_queue=jobs_queue,
            signing_key=None if key is None else key.get_secret_value().encode(),
        )


@contextlib.asynccontextmanager
async def _connection(settings: QueueSettings) -> AsyncIterator[AbstractConnection]:
    from aiormq.exceptions import AMQPError

    install_tolerant_decoding()  # a dead letter may hold any header table
    url = settings.rabbitmq_url.get_secret_value()
    where = settings.redacted_rabbitmq_url
    try:
        connection = await connect_first(
            settings.rabbitmq_urls,
            timeout_s=settings.connect_timeout_s,
            connection_name="fast-app dlq",
        )
    except (AMQPError, OSError, TimeoutError) as error:
        raise QueueUnavailableError(
            f"cannot reach the broker at {where}: {describe_error(error, url)}"
        ) from None
    try:
        yield connection
    except (AMQPError, OSError, TimeoutError) as error:
        raise QueueUnavailableError(
            f"lost the broker at {where}: {describe_error(error, url)}"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


def read_dead_letter(
    message: AbstractIncomingMessage, *, jobs_queue: str, signing_key: bytes | None
) -> tuple[DeadLetter, JobEnvelope | None]:
    """The dead letter in ``message``, and its job when the body is a valid envelope.

    Args:
        message: a delivery from ``<queue>.dead``.
        jobs_queue: name of the jobs queue (to tell the broker's dead letters).
        signing_key: ``ASYNC_FARM_SIGNING_KEY``, to verify what the dead letter says.

    Raises:
        Exception: anything, for a message too strange to read; ``DeadLetterQueue.take``
            turns that into an unreadable dead letter.
    """
    headers: Mapping[str, Any] = message.headers or {}
    body = bytes(message.body)
    envelope = _envelope(body)
    # The broker dead-letters on its own too (a quorum queue's delivery limit, a reject):
    # then only its x-death headers say why and when. The latest death comes first;
    # x-first-death-reason would name the oldest one, for a retried job the "expired" of
    # its passage through a delay queue.
    deaths = headers.get("x-death")
    latest = deaths[0] if isinstance(deaths, list) and deaths else None
    death: Mapping[str, Any] = latest if isinstance(latest, Mapping) else {}
    broker_reason = _text(death.get("reason"))
    # A worker never dead-letters through the jobs queue's own dead-lettering, so when
    # the latest death is there, no worker wrote the x-fast-app-* headers: the job
    # brought them along, whoever published it. A worker's copy keeps at most the x-death
    # of a delay queue (older workers copied every header; newer ones write none).
    by_broker = _text(death.get("queue")) == jobs_queue
    said: Mapping[str, Any] = {} if by_broker else headers
    verified = job_signed = None
    if signing_key is not None:
        verified = not by_broker and _dead_signature_matches(body, headers, signing_key)
        job_signed = h.signature_matches(body, headers.get(h.SIGNATURE), signing_key) or (
            verified and _flag(headers.get(h.DEAD_SIGNED_JOB))
        )
    letter = DeadLetter(
        job_id=envelope.id if envelope else message.message_id,
        function=envelope.function if envelope else message.type,
        reason=_text(said.get(h.DEAD_REASON))
        or broker_reason
        or _text(headers.get("x-first-death-reason")),
        error_type=_text(said.get(h.DEAD_ERROR_TYPE)),
        error=_text(said.get(h.DEAD_ERROR)),
        traceback=_text(said.get(h.DEAD_TRACEBACK)),
        attempts=_integer(said.get(h.DEAD_ATTEMPTS)),
        worker=_text(said.get(h.DEAD_WORKER)),
        failed_at=_moment(said.get(h.DEAD_FAILED_AT)) or _moment(death.get("time")),
        body=body,
        args=envelope.args if envelope else None,
        kwargs=envelope.kwargs if envelope else None,
        context=envelope.context if envelope else None,
        verified=verified,
        job_signed=job_signed,
        by_broker=by_broker,
        original_headers=_text(said.get(h.DEAD_ORIGINAL_HEADERS)),
        queue=jobs_queue,
    )
    return letter, envelope


def _envelope(body: bytes) -> JobEnvelope | None:
    try:
        return decode_envelope(body)
    except InvalidJobError:
        return None
    except RecursionError:
        # Nested deeper than the decoder goes: not a job any worker could have run, and
        # still a dead letter to show (its raw body) and to purge.
        return None


def _dead_signature_matches(body: bytes, headers: Mapping[str, Any], key: bytes) -> bool:
    """Whether a worker holding ``key`` wrote this dead letter's reason and attempts."""
    reason = headers.get(h.DEAD_REASON)
    given = headers.get(h.DEAD_SIGNATURE)
    if not isinstance(reason, str):
        return False  # a worker always writes its reason as text
    if isinstance(given, str):
        given = given.encode("utf-8", "replace")
    if not isinstance(given, bytes | bytearray):
        return False
    expected = h.dead_letter_signature(
        body,
        reason=reason,
        attempts=_integer(headers.get(h.DEAD_ATTEMPTS)),
        signed_job=_flag(headers.get(h.DEAD_SIGNED_JOB)),
        key=key,
    )
    return hmac.compare_digest(expected.encode("ascii"), bytes(given))


def _flag(value: object) -> bool:
    # ``1`` as the worker writes it; a boolean ``True`` would be the same word to a reader.
    return isinstance(value, int) and value == 1


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):  # a long string that is not UTF-8
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, int | float):
        return str(value)
    return None  # missing, or a table, an array...: not something a worker writes


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
