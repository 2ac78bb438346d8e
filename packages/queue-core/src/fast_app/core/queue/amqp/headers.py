"""AMQP message headers and properties of a job, and their optional HMAC signature."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import TYPE_CHECKING, Any

from fast_app.core.queue.envelope import CONTENT_TYPE, JobEnvelope

if TYPE_CHECKING:
    from pamqp.commands import Basic

__all__ = [
    "ATTEMPT",
    "DEAD_ATTEMPTS",
    "DEAD_ERROR",
    "DEAD_ERROR_TYPE",
    "DEAD_FAILED_AT",
    "DEAD_ORIGINAL_HEADERS",
    "DEAD_REASON",
    "DEAD_TRACEBACK",
    "DEAD_WORKER",
    "HARD_TIMEOUT",
    "DEAD_SIGNATURE",
    "DEAD_SIGNED_JOB",
    "SIGNATURE",
    "SOFT_TIMEOUT",
    "dead_letter_signature",
    "job_properties",
    "sign",
    "signature_matches",
]

ATTEMPT = "x-fast-app-attempt"
SOFT_TIMEOUT = "x-fast-app-soft-timeout-s"
HARD_TIMEOUT = "x-fast-app-hard-timeout-s"
SIGNATURE = "x-fast-app-signature"
PERSISTENT = 2  # AMQP delivery mode: written to disk

DEAD_REASON = "x-fast-app-dead-reason"
DEAD_ERROR_TYPE = "x-fast-app-error-type"
DEAD_ERROR = "x-fast-app-error"
DEAD_TRACEBACK = "x-fast-app-traceback"
DEAD_ATTEMPTS = "x-fast-app-attempts"
DEAD_WORKER = "x-fast-app-worker"
DEAD_FAILED_AT = "x-fast-app-failed-at"
#: The headers a dead-lettered message arrived with and that were not kept, in one line.
DEAD_ORIGINAL_HEADERS = "x-fast-app-original-headers"
#: HMAC of what a worker says about a dead letter (see ``dead_letter_signature``).
DEAD_SIGNATURE = "x-fast-app-dead-signature"
#: ``1`` when the worker verified the job's own signature before dead-lettering it.
DEAD_SIGNED_JOB = "x-fast-app-signed-job"

_SIGNATURE_HEX_LENGTH = 64  # SHA-256, hex


def sign(body: bytes, key: bytes) -> str:
    """HMAC-SHA256 of ``body`` under ``key``, as hex."""
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def signature_matches(body: bytes, signature: object, key: bytes) -> bool:
    """Whether ``signature`` (a header value, maybe missing) is ``body``'s, in constant time.

    Anything but 64 ASCII characters (missing, another type, non-ASCII text, bytes that
    are not ASCII) is simply a wrong signature: this is an edge, it never raises.
    """
    if isinstance(signature, bytes | bytearray):
        try:
            signature = bytes(signature).decode("ascii")
        except UnicodeDecodeError:
            return False
    if not isinstance(signature, str) or len(signature) != _SIGNATURE_HEX_LENGTH:
        return False
    if not signature.isascii():
        return False
    return hmac.compare_digest(sign(body, key).encode("ascii"), signature.encode("ascii"))


def dead_letter_signature(
    body: bytes, *, reason: str, attempts: int | None, signed_job: bool, key: bytes
) -> str:
    """HMAC-SHA256 over what a worker says of a dead letter, and the job's body, as hex.

    Covers the reason, the attempts and whether the job's own signature was verified, so
    that ``fast-app dlq`` can tell a worker's dead letter from one published by anyone
    else, and so that a job whose signature was never verified is not re-signed on requeue.
    The ``dead-letter`` prefix keeps it from ever being a valid job signature.
    """
    said = f"dead-letter\0{reason}\0{'' if attempts is None else attempts}\0{int(signed_job)}\0"
    return hmac.new(key, said.encode() + body, hashlib.sha256).hexdigest()


def job_properties(
    body: bytes,
    envelope: JobEnvelope,
    *,
    signing_key: bytes | None,
    extra_headers: dict[str, Any] | None = None,
) -> Basic.Properties:
    """AMQP properties of the persistent message carrying ``body``, ``envelope`` encoded."""
    from pamqp.commands import Basic

    # Only what a broker-side reader needs and the body does not say cheaply: every
    # header costs encoding time on each publish. The function is in the ``type`` property.
    headers: dict[str, Any] = {}
    if envelope.attempt > 1:
        headers[ATTEMPT] = envelope.attempt
    options = envelope.options
    if options.soft_timeout_s is not None:
        headers[SOFT_TIMEOUT] = options.soft_timeout_s
    if options.hard_timeout_s is not None:
        headers[HARD_TIMEOUT] = options.hard_timeout_s
    if signing_key is not None:
        headers[SIGNATURE] = sign(body, signing_key)
    if extra_headers:
        headers.update(extra_headers)
    return Basic.Properties(
        content_type=CONTENT_TYPE,
        delivery_mode=PERSISTENT,
        message_id=envelope.id,
        timestamp=dt.datetime.fromtimestamp(int(envelope.enqueued_at), dt.UTC),
        message_type=envelope.function,
        headers=headers or None,
    )
