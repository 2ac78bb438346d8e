"""The job envelope: the one definition of a job on the wire, shared by every driver and worker.

A job travels as a JSON object (never pickle: decoding a message cannot run code)::

    {"format": 1, "id": "0b6f...", "function": "app.jobs.send_welcome_email",
     "args": [...], "kwargs": {...}, "context": {...},
     "options": {"soft_timeout_s": 300.0}, "enqueued_at": 1732812345.12, "attempt": 1,
     "not_before": null}
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from fast_app.core.context import wire_enc_hook

from .errors import InvalidJobError

__all__ = [
    "CONTENT_TYPE",
    "FORMAT_VERSION",
    "FUNCTION_PATH_MAX_LENGTH",
    "JOB_ID_MAX_LENGTH",
    "MAX_CONTEXT_BYTES",
    "MAX_RETRIES",
    "MAX_SECONDS",
    "JobEnvelope",
    "JobOptions",
    "decode_envelope",
    "encode_envelope",
    "encode_value",
    "new_job_id",
]

FORMAT_VERSION = 1
CONTENT_TYPE = "application/vnd.fast-app.job+json; format=1"


#: Job ids are ``new_job_id``'s 32 hex digits; a message may claim anything, so the
#: envelope bounds what it accepts (ids end up in heartbeats, logs and dashboards).
JOB_ID_MAX_LENGTH = 64
#: Largest encoded context a job may carry: the context travels with every job and its
#: keys are shown by heartbeats and dashboards; it is for ids, not data.
MAX_CONTEXT_BYTES = 16 * 1024
#: Longest dotted path of a job's function.
FUNCTION_PATH_MAX_LENGTH = 300
_JobId = Annotated[
    str, Meta(min_length=1, max_length=JOB_ID_MAX_LENGTH, pattern=r"^[A-Za-z0-9_.:-]+\Z")
]
# What a dotted path may hold (``\w`` is Unicode-aware and has no control characters),
# plus ``<lambda>``/``<locals>`` and the hyphens of modules imported by file path, which
# the sync driver may run (with a warning) and a worker's allow-list refuses.
_FunctionPath = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=FUNCTION_PATH_MAX_LENGTH,
        pattern=r"^[\w.<>-]+\Z",
    ),
]


#: Most retries a job may ask for.
MAX_RETRIES = 100
#: Longest timeout or delay a job may ask for (ten years).
MAX_SECONDS = 10 * 365 * 86_400.0
# A message may claim anything: decoding holds each option to what ``queue()`` accepts.
_Timeout = Annotated[float, Meta(gt=0, le=MAX_SECONDS)]
_Delay = Annotated[float, Meta(ge=0, le=MAX_SECONDS)]
_Retries = Annotated[int, Meta(ge=0, le=MAX_RETRIES)]
_Attempt = Annotated[int, Meta(ge=1, le=MAX_RETRIES + 1)]
_Moment = Annotated[float, Meta(ge=0, le=8_000_000_000)]  # Unix time, to the year 2223


class JobOptions(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """How a job must run; set through the special ``__name`` kwargs of ``queue()``.

    Attributes:
        soft_timeout_s: after this many seconds, warn and cancel the job's asyncio task.
        hard_timeout_s: after this many seconds, end the worker process running the job.
        delay_s: the job starts no earlier than this many seconds after it was enqueued.
        retries: how many times a job that raised is run again before it is dead-lettered.
    """

    soft_timeout_s: _Timeout | None = None
    hard_timeout_s: _Timeout | None = None
    delay_s: _Delay | None = None
    retries: _Retries = 0

    def __post_init__(self) -> None:
        # Runs when a message is decoded too: a hard timeout within the soft one would
        # end the worker before the job could be cancelled.
        soft, hard = self.soft_timeout_s, self.hard_timeout_s
        if soft is not None and hard is not None and hard <= soft:
            raise ValueError("hard_timeout_s must be greater than soft_timeout_s")


class JobEnvelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A job as it is stored and sent.

    Attributes:
        format: version of this layout; a worker refuses versions it does not know.
        id: the job id (UUID hex); it stays the same across retries and redeliveries.
        function: dotted import path of a module-level function.
        args: positional arguments, in JSON form.
        kwargs: keyword arguments, in JSON form, without the special ``__`` ones.
        context: the context snapshot taken when the job was enqueued.
        options: timeouts and other run options.
        enqueued_at: Unix time of the first enqueue.
        attempt: 1 for the first run, incremented by each retry.
        not_before: Unix time before which the job must not start (delays and retry
            backoff), or ``None``.
    """

    format: int
    id: _JobId
    function: _FunctionPath
    args: list[Any]
    kwargs: dict[str, Any]
    context: dict[str, Any]
    options: JobOptions
    enqueued_at: _Moment
    attempt: _Attempt = 1
    not_before: _Moment | None = None


def new_job_id() -> str:
    """A random version-4 UUID, as 32 hex digits.

    Same format as ``uuid.uuid4().hex`` at a fifth of its cost (it builds no ``UUID``).
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


class _FormatProbe(msgspec.Struct):
    format: int


_encoder = msgspec.json.Encoder(enc_hook=wire_enc_hook)
_decoder = msgspec.json.Decoder(JobEnvelope)
_probe = msgspec.json.Decoder(_FormatProbe)


def encode_envelope(envelope: JobEnvelope) -> bytes:
    """Encode a job to bytes.

    Raises:
        TypeError: when a value in it cannot be encoded (``queue()`` names the argument).
    """
    return _encoder.encode(envelope)


def encode_value(value: object) -> bytes:
    """Encode one value as the envelope would (to find which argument the codec refuses)."""
    return _encoder.encode(value)


def decode_envelope(body: bytes | bytearray | memoryview) -> JobEnvelope:
    """Decode bytes into a job without running any code of the message.

    Raises:
        InvalidJobError: for anything that is not a job of a known format version.
    """
    try:
        envelope = _decoder.decode(body)
    except msgspec.DecodeError as error:
        raise InvalidJobError(_explain(body, error)) from None
    except RecursionError:  # nesting deeper than the interpreter's stack
        raise InvalidJobError("not a job envelope: nested too deeply") from None
    except UnicodeDecodeError as error:  # msgspec: invalid UTF-8 inside a string
        raise InvalidJobError(f"not a job envelope: {error.reason} in a string") from None
    if envelope.format != FORMAT_VERSION:
        raise InvalidJobError(
            f"unknown job format version {envelope.format} (this worker reads {FORMAT_VERSION})"
        )
    return envelope


def _explain(body: bytes | bytearray | memoryview, error: msgspec.DecodeError) -> str:
    try:
        version = _probe.decode(body).format
    except (msgspec.DecodeError, RecursionError):
        return f"not a job envelope: {error}"
    if version != FORMAT_VERSION:
        return f"unknown job format version {version} (this worker reads {FORMAT_VERSION})"
    return f"malformed job envelope: {error}"
