"""How dead letters are shown (``fast-app dlq``): one line each, a full report, or JSON.

Everything a dead letter says comes from whoever published it: every text shown on a
terminal goes through ``printable`` (JSON needs nothing more: ``json.dumps`` escapes
control characters and, with its default ``ensure_ascii``, every non-ASCII one).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from fast_app.farm.printable import printable

if TYPE_CHECKING:
    from fast_app.farm.dead_letters.letter import DeadLetter

__all__ = ["as_json", "details", "summary_line"]

_ERROR_WIDTH = 80
_VALUE_WIDTH = 200
_HEADERS_WIDTH = 400
_BODY_PREVIEW = 400
_MISSING = "-"


def summary_line(letter: DeadLetter) -> str:
    """One line: job id, function, reason, error (shortened), attempts, when it failed,
    and its queue (``queue=emails``).

    With a signing key, a last field says whether the dead letter is ``verified``.
    """
    fields = [
        _text(letter.job_id),
        _text(letter.function),
        _text(letter.reason),
        # One dead letter per line: an error message's own line breaks would split it.
        _shorten(printable(" ".join(_error(letter).split())), _ERROR_WIDTH),
        f"attempts={_MISSING if letter.attempts is None else letter.attempts}",
        _time(letter.failed_at),
    ]
    if letter.queue is not None:
        fields.append(f"queue={printable(letter.queue)}")
    if letter.verified is not None:
        fields.append(f"verified={_yes_no(letter.verified)}")
    return "  ".join(fields)


def details(letter: DeadLetter) -> str:
    """Everything about one dead letter, arguments shortened, the traceback in full."""
    lines = [
        f"Job ID:     {_text(letter.job_id)}",
        f"Queue:      {_queue(letter.queue)}",
        f"Function:   {_text(letter.function)}",
        f"Reason:     {_text(letter.reason)}",
        f"Error:      {printable(_error(letter))}",
        f"Attempts:   {_MISSING if letter.attempts is None else letter.attempts}",
        f"Worker:     {_text(letter.worker)}",
        f"Failed at:  {_time(letter.failed_at)}",
    ]
    if letter.by_broker:
        lines.append(
            "Source:     the broker dead-lettered it from the jobs queue; x-fast-app-* "
            "headers that came with the job are ignored"
        )
    if letter.verified is not None:
        lines.append(f"Verified:   {_verified(letter)}")
    if letter.job_signed is not None:
        lines.append(f"Job signed: {_job_signed(letter.job_signed)}")
    if letter.original_headers:
        headers = _shorten(printable(letter.original_headers), _HEADERS_WIDTH)
        lines.append(f"Headers:    {headers}")
    if letter.args is None or letter.kwargs is None:
        # Not a job envelope: the raw body is all there is to show (repr: ASCII only).
        lines += ["", f"Body ({len(letter.body)} bytes, not a job envelope):"]
        lines.append("  " + _shorten(repr(letter.body), _BODY_PREVIEW))
    else:
        lines += ["", "Arguments:"]
        lines += [f"  [{index}] {_value(value)}" for index, value in enumerate(letter.args)]
        lines += [f"  {printable(name)}={_value(value)}" for name, value in letter.kwargs.items()]
        if not letter.args and not letter.kwargs:
            lines.append("  (none)")
        lines += ["", "Context:"]
        context = letter.context or {}
        lines += [f"  {printable(key)} = {_value(value)}" for key, value in context.items()]
        if not context:
            lines.append("  (empty)")
    lines += ["", "Traceback:"]
    traceback = printable(letter.traceback or "(none recorded)", keep_lines=True)
    lines += ["  " + line for line in traceback.rstrip("\n").split("\n")]
    return "\n".join(lines)


def as_json(letter: DeadLetter) -> dict[str, Any]:
    """All the fields, JSON-ready; the body as text when it is UTF-8 JSON, else base64."""
    body, encoding = _body(letter.body)
    return {
        "job_id": letter.job_id,
        "queue": letter.queue,
        "function": letter.function,
        "reason": letter.reason,
        "error_type": letter.error_type,
        "error": letter.error,
        "traceback": letter.traceback,
        "attempts": letter.attempts,
        "worker": letter.worker,
        "failed_at": None if letter.failed_at is None else letter.failed_at.isoformat(),
        "verified": letter.verified,
        "job_signed": letter.job_signed,
        "by_broker": letter.by_broker,
        "original_headers": letter.original_headers,
        "args": letter.args,
        "kwargs": letter.kwargs,
        "context": letter.context,
        "body": body,
        "body_encoding": encoding,
    }


def _text(value: str | None) -> str:
    return _MISSING if not value else printable(value)


def _queue(queue: str | None) -> str:
    if queue is None:
        return _MISSING
    shown = printable(queue)
    return f"{shown} (read from {shown}.dead; requeue sends the job back to {shown})"


def _error(letter: DeadLetter) -> str:
    if letter.error_type and letter.error:
        return f"{letter.error_type}: {letter.error}"
    return letter.error_type or letter.error or _MISSING


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _verified(letter: DeadLetter) -> str:
    if letter.verified:
        # The signature covers these, not the error, the traceback or the worker's id.
        return "yes — reason, attempts and job come from a worker holding the signing key"
    if letter.by_broker:
        return "no — the broker dead-lettered it: no worker said anything about it"
    return (
        "no — not written by a worker holding the signing key; reason, attempts and "
        "traceback are what the message says"
    )


def _job_signed(signed: bool) -> str:
    if signed:
        return "yes — signed with the signing key: requeue signs it again"
    return "no — requeue leaves it unless --force"


def _time(moment: dt.datetime | None) -> str:
    return _MISSING if moment is None else moment.isoformat(timespec="milliseconds")


def _value(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (ValueError, RecursionError):  # circular (not from JSON), or nested too deep
        text = "(nested too deep to show)"
    # ensure_ascii=False keeps names readable, and lets through what printable escapes.
    return _shorten(printable(text), _VALUE_WIDTH)


def _shorten(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return f"{text[: width - 1]}… ({len(text)} chars)"


def _body(body: bytes) -> tuple[str, str]:
    try:
        text = body.decode("utf-8")
        json.loads(text)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested too deep
        return base64.b64encode(body).decode("ascii"), "base64"
    return text, "utf-8"
