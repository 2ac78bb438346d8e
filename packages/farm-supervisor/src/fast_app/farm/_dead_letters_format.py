"""How ``fast-app dlq`` shows dead letters: one line each, a full report, or JSON."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fast_app.farm.dead_letters import DeadLetter

__all__ = ["as_json", "details", "summary_line"]

_ERROR_WIDTH = 80
_VALUE_WIDTH = 200
_BODY_PREVIEW = 400
_MISSING = "-"


def summary_line(letter: DeadLetter) -> str:
    """One line: job id, function, reason, error (shortened), attempts, when it failed."""
    fields = [
        letter.job_id or _MISSING,
        letter.function or _MISSING,
        letter.reason or _MISSING,
        # One dead letter per line: an error message's own line breaks would split it.
        _shorten(" ".join(_error(letter).split()), _ERROR_WIDTH),
        f"attempts={_MISSING if letter.attempts is None else letter.attempts}",
        _time(letter.failed_at),
    ]
    return "  ".join(fields)


def details(letter: DeadLetter) -> str:
    """Everything about one dead letter, arguments shortened, the traceback in full."""
    lines = [
        f"Job ID:     {letter.job_id or _MISSING}",
        f"Function:   {letter.function or _MISSING}",
        f"Reason:     {letter.reason or _MISSING}",
        f"Error:      {_error(letter)}",
        f"Attempts:   {_MISSING if letter.attempts is None else letter.attempts}",
        f"Worker:     {letter.worker or _MISSING}",
        f"Failed at:  {_time(letter.failed_at)}",
    ]
    if letter.args is None or letter.kwargs is None:
        # Not a job envelope: the raw body is all there is to show.
        lines += ["", f"Body ({len(letter.body)} bytes, not a job envelope):"]
        lines.append("  " + _shorten(repr(letter.body), _BODY_PREVIEW))
    else:
        lines += ["", "Arguments:"]
        lines += [f"  [{index}] {_value(value)}" for index, value in enumerate(letter.args)]
        lines += [f"  {name}={_value(value)}" for name, value in letter.kwargs.items()]
        if not letter.args and not letter.kwargs:
            lines.append("  (none)")
        lines += ["", "Context:"]
        context = letter.context or {}
        lines += [f"  {key} = {_value(value)}" for key, value in context.items()]
        if not context:
            lines.append("  (empty)")
    lines += ["", "Traceback:"]
    traceback = (letter.traceback or "(none recorded)").rstrip("\n")
    lines += ["  " + line for line in traceback.splitlines()]
    return "\n".join(lines)


def as_json(letter: DeadLetter) -> dict[str, Any]:
    """All the fields, JSON-ready; the body as text when it is UTF-8 JSON, else base64."""
    body, encoding = _body(letter.body)
    return {
        "job_id": letter.job_id,
        "function": letter.function,
        "reason": letter.reason,
        "error_type": letter.error_type,
        "error": letter.error,
        "traceback": letter.traceback,
        "attempts": letter.attempts,
        "worker": letter.worker,
        "failed_at": None if letter.failed_at is None else letter.failed_at.isoformat(),
        "args": letter.args,
        "kwargs": letter.kwargs,
        "context": letter.context,
        "body": body,
        "body_encoding": encoding,
    }


def _error(letter: DeadLetter) -> str:
    if letter.error_type and letter.error:
        return f"{letter.error_type}: {letter.error}"
    return letter.error_type or letter.error or _MISSING


def _time(moment: dt.datetime | None) -> str:
    return _MISSING if moment is None else moment.isoformat(timespec="milliseconds")


def _value(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except ValueError:  # a circular structure cannot come from JSON, but stay safe
        text = repr(value)
    return _shorten(text, _VALUE_WIDTH)


def _shorten(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return f"{text[: width - 1]}… ({len(text)} chars)"


def _body(body: bytes) -> tuple[str, str]:
    try:
        text = body.decode("utf-8")
        json.loads(text)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError both are
        return base64.b64encode(body).decode("ascii"), "base64"
    return text, "utf-8"
