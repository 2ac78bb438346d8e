"""Dead letters: the original job, with why it failed for good in its headers."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.handle import JobError

if TYPE_CHECKING:
    from aio_pika import Message
    from aio_pika.abc import AbstractIncomingMessage

__all__ = ["DeadReason", "dead_letter"]

_TRACEBACK_LIMIT = 16_000


class DeadReason:
    """Why a job was dead-lettered (the ``x-fast-app-dead-reason`` header)."""

    FAILED = "failed"
    SOFT_TIMEOUT = "soft_timeout"
    HARD_TIMEOUT = "hard_timeout"
    CONSUMER_TIMEOUT = "consumer_timeout"
    INVALID = "invalid"
    NOT_ALLOWED = "not_allowed"
    BAD_SIGNATURE = "bad_signature"


def dead_letter(
    incoming: AbstractIncomingMessage,
    *,
    reason: str,
    error: JobError | None,
    attempts: int | None,
    worker_id: str,
) -> Message:
    """A copy of ``incoming`` (same body, id and properties) for the dead-letter queue."""
    from aio_pika import DeliveryMode, Message

    headers: dict[str, Any] = dict(incoming.headers or {})
    headers[h.DEAD_REASON] = reason
    headers[h.DEAD_WORKER] = worker_id
    headers[h.DEAD_FAILED_AT] = time.time()
    if attempts is not None:
        headers[h.DEAD_ATTEMPTS] = attempts
    if error is not None:
        headers[h.DEAD_ERROR_TYPE] = error.type
        headers[h.DEAD_ERROR] = error.message[:4000]
        if error.traceback:
            headers[h.DEAD_TRACEBACK] = error.traceback[-_TRACEBACK_LIMIT:]
    return Message(
        incoming.body,
        headers=headers,
        content_type=incoming.content_type,
        delivery_mode=DeliveryMode.PERSISTENT,
        message_id=incoming.message_id,
        timestamp=incoming.timestamp or dt.datetime.now(dt.UTC),
        type=incoming.type,
    )
