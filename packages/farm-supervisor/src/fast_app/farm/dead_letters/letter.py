"""``DeadLetter``: a dead-lettered job as the dead-letter API reads it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

__all__ = ["DeadLetter"]


@dataclass(frozen=True)
class DeadLetter:
    """A dead-lettered job, as stored in ``<queue>.dead``.

    Attributes:
        job_id: the job id (from the envelope, else the message id); ``None`` if neither.
        function: dotted path of the job's function.
        reason: why it was dead-lettered (``failed``, ``soft_timeout``, ``invalid``...; a
            broker reason such as ``delivery_limit`` when the broker dead-lettered it).
            Unless ``verified``, this and the fields below up to ``failed_at`` are only
            what the message says.
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
        verified: with a signing key, whether a worker holding it wrote the dead letter
            (its dead-letter signature covers the reason, the attempts, whether the job
            was signed, and the body; not the error, traceback, worker or time).
            ``None`` without a signing key: nothing can be checked.
        job_signed: with a signing key, whether the job itself was signed with it (its
            own signature matches the body, or a verified dead letter says so): only
            such a job may be requeued signed. ``None`` without a signing key.
        by_broker: the broker dead-lettered it from the jobs queue (delivery limit,
            reject); any ``x-fast-app-*`` dead-letter header came with the job and is
            ignored.
        original_headers: a worker's summary of the job's other headers, as text.
        queue: the jobs queue whose dead letters (``<queue>.dead``) hold it, where a
            requeue sends the job back; ``None`` for a dead letter not read from a queue.
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
    verified: bool | None = None
    job_signed: bool | None = None
    by_broker: bool = False
    original_headers: str | None = None
    queue: str | None = None
