"""Dead letters: the original job, with why it failed for good in its headers."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.handle import JobError

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage
    from pamqp.commands import Basic

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
) -> Basic.Properties:
    """Properties of a copy of ``incoming`` (same body and id) for the dead-letter queue."""
    from pamqp.commands import Basic

    headers: dict[str, Any] = dict(incoming.headers or {})
    headers[h.DEAD_REASON] = reason
    headers[h.DEAD_WORKER] = worker_id
    # ISO 8601 text: AMQP floats travel as 32-bit (second-level Unix times would be lost).
    headers[h.DEAD_FAILED_AT] = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    if attempts is not None:
        headers[h.DEAD_ATTEMPTS] = attempts
    if error is not None:
        headers[h.DEAD_ERROR_TYPE] = error.type
        headers[h.DEAD_ERROR] = error.message[:4000]
        if error.traceback:
            headers[h.DEAD_TRACEBACK] = error.traceback[-_TRACEBACK_LIMIT:]
    return Basic.Properties(
        headers=headers,
        content_type=incoming.content_type,
        delivery_mode=h.PERSISTENT,
        message_id=incoming.message_id,
        timestamp=incoming.timestamp or dt.datetime.now(dt.UTC),
        message_type=incoming.type,
    )
