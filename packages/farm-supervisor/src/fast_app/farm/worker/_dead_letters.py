"""Dead letters: the original job, with why it failed for good in its headers.

The copy is built from a sanitized view of the delivery, so that publishing it cannot
fail on what the message carried: only the project's own headers (bounded, plain text)
and the trace headers go on; every other original header is summed up in one line
(``x-fast-app-original-headers``), never copied raw (a non-UTF-8 long string or a header
table near the frame size would make the copy unpublishable, and pin the delivery). The
``x-fast-app-*`` dead-letter headers a message arrives with are dropped: a job cannot
bring its own traceback. With a signing key the worker signs what it says
(``x-fast-app-dead-signature``), so that ``fast-app dlq`` can tell its dead letters from
forged ones, and says whether the job's own signature was verified.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fast_app.core.queue.amqp import headers as h
from fast_app.core.queue.amqp import signature_matches
from fast_app.core.queue.handle import JobError
from fast_app.farm.printable import printable

if TYPE_CHECKING:
    from pamqp.commands import Basic

    from fast_app.farm.worker._incoming import IncomingJob

__all__ = ["dead_letter", "summarize_headers"]

_TRACEBACK_LIMIT = 16_000
_ERROR_LIMIT = 4_000
_TRACE_HEADERS = ("traceparent", "tracestate", "baggage")
_TRACE_HEADER_LIMIT = 8_192  # W3C baggage's own limit
_SUMMARY_NAMES = 20
_SUMMARY_NAME_WIDTH = 64
_SHORT_LIMIT = 255  # AMQP short strings (message id, type)


def dead_letter(
    incoming: IncomingJob,
    *,
    reason: str,
    error: JobError | None,
    attempts: int | None,
    worker_id: str,
    signing_key: bytes | None = None,
) -> Basic.Properties:
    """Properties of a copy of ``incoming`` (same body and id) for the dead-letter queue."""
    from pamqp.commands import Basic

    original: Mapping[str, Any] = incoming.headers or {}
    body = incoming.body
    headers: dict[str, Any] = {}
    for name in _TRACE_HEADERS:
        value = original.get(name)
        if isinstance(value, str) and len(value) <= _TRACE_HEADER_LIMIT and value.isprintable():
            headers[name] = value
    job_signature = original.get(h.SIGNATURE)
    signed_job = False
    if isinstance(job_signature, str) and len(job_signature) == 64 and job_signature.isascii():
        headers[h.SIGNATURE] = job_signature
        signed_job = signing_key is not None and signature_matches(body, job_signature, signing_key)
    dropped = summarize_headers(original, kept=headers)
    if dropped:
        headers[h.DEAD_ORIGINAL_HEADERS] = dropped
    headers[h.DEAD_REASON] = reason
    headers[h.DEAD_WORKER] = worker_id
    # ISO 8601 text: AMQP floats travel as 32-bit (second-level Unix times would be lost).
    headers[h.DEAD_FAILED_AT] = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    if attempts is not None:
        headers[h.DEAD_ATTEMPTS] = attempts
    if error is not None:
        headers[h.DEAD_ERROR_TYPE] = printable(error.type[:_SHORT_LIMIT])
        headers[h.DEAD_ERROR] = printable(error.message[:_ERROR_LIMIT], keep_lines=True)
        if error.traceback:
            headers[h.DEAD_TRACEBACK] = printable(
                error.traceback[-_TRACEBACK_LIMIT:], keep_lines=True
            )
    if signing_key is not None:
        headers[h.DEAD_SIGNED_JOB] = int(signed_job)
        headers[h.DEAD_SIGNATURE] = h.dead_letter_signature(
            body, reason=reason, attempts=attempts, signed_job=signed_job, key=signing_key
        )
    return Basic.Properties(
        headers=headers,
        content_type=_short(incoming.content_type),
        delivery_mode=h.PERSISTENT,
        message_id=_short(incoming.message_id),
        timestamp=incoming.timestamp or dt.datetime.now(dt.UTC),
        message_type=_short(incoming.type),
    )


def summarize_headers(original: Mapping[str, Any], *, kept: Mapping[str, Any]) -> str:
    """The headers of ``original`` not in ``kept``, as ``name:type`` in one short line."""
    dropped = [name for name in original if name not in kept]
    if not dropped:
        return ""
    shown = [
        f"{printable(str(name))[:_SUMMARY_NAME_WIDTH]}:{type(original[name]).__name__}"
        for name in dropped[:_SUMMARY_NAMES]
    ]
    more = len(dropped) - len(shown)
    return " ".join(shown) + (f" (+{more} more)" if more > 0 else "")


def _short(value: str | None) -> str | None:
    """An AMQP short string property, safe to send again (printable, at most 255 bytes)."""
    if value is None:
        return None
    text = printable(value)
    while len(text.encode()) > _SHORT_LIMIT:
        text = text[: len(text) - 8]
    return text
