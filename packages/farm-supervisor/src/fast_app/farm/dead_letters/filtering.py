"""``DeadLetterFilter``: which dead letters an operator means, as a pure predicate.

The same filter serves ``fast-app dlq list|requeue|purge`` (``--function``, ``--reason``,
``--grep``, ``--since``) and the dashboard's ``/`` filter (``parse_query``), so both pick
the same dead letters. Nothing here reads a broker.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from fast_app.farm.dead_letters.letter import DeadLetter

__all__ = ["DeadLetterFilter", "parse_query", "parse_since"]

_GLOB_CHARACTERS = frozenset("*?[")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: Query words the dashboard reads as fields (``reason:failed``); the rest is free text.
_QUERY_FIELDS = ("function", "reason", "queue", "since")


@dataclass(frozen=True)
class DeadLetterFilter:
    """The dead letters matching every criterion given (``None``: any).

    Attributes:
        function: a dotted prefix of the function (``app.reports`` matches
            ``app.reports.build``), or a glob when it holds ``*``, ``?`` or ``[``.
        reason: the reason, exactly (``failed``, ``soft_timeout``...), any case.
        queue: the jobs queue whose dead letters hold it.
        text: found, ignoring case, in the error type, the error message, the traceback
            or the arguments.
        since: dead-lettered at or after this moment (a dead letter without a time does
            not match).
        job_ids: only the dead letters of these jobs.
    """

    function: str | None = None
    reason: str | None = None
    queue: str | None = None
    text: str | None = None
    since: dt.datetime | None = None
    job_ids: frozenset[str] | None = None

    @property
    def is_empty(self) -> bool:
        """Whether it matches every dead letter."""
        return self == DeadLetterFilter()

    def matches(self, letter: DeadLetter) -> bool:
        """Whether ``letter`` meets every criterion."""
        if self.job_ids is not None and letter.job_id not in self.job_ids:
            return False
        if self.function and not _function_matches(letter.function, self.function):
            return False
        if self.reason and (letter.reason or "").casefold() != self.reason.casefold():
            return False
        if self.queue and letter.queue != self.queue:
            return False
        if self.since is not None and (letter.failed_at is None or letter.failed_at < self.since):
            return False
        return not self.text or self.text.casefold() in _searchable(letter).casefold()

    def select(self, letters: Iterable[DeadLetter]) -> list[DeadLetter]:
        """The ``letters`` it matches, in their order."""
        return [letter for letter in letters if self.matches(letter)]

    def describe(self) -> str:
        """The criteria as an operator would type them: ``function=app.reports grep='x'``."""
        parts = []
        if self.function:
            parts.append(f"function={self.function}")
        if self.reason:
            parts.append(f"reason={self.reason}")
        if self.queue:
            parts.append(f"queue={self.queue}")
        if self.text:
            parts.append(f"grep={self.text!r}")
        if self.since is not None:
            parts.append(f"since={self.since.isoformat(timespec='seconds')}")
        if self.job_ids is not None:
            parts.append(f"{len(self.job_ids)} chosen jobs")
        return " ".join(parts) or "everything"


def parse_since(text: str, now: dt.datetime) -> dt.datetime:
    """The moment ``--since`` means: a duration before ``now`` (``90s``, ``15m``, ``1h``,
    ``2d``, ``1w``) or an ISO 8601 time (UTC when it names no zone).

    Raises:
        ValueError: neither, with a message that says what is accepted.
    """
    if (duration := _DURATION.match(text)) is not None:
        seconds = float(duration.group(1)) * _UNIT_SECONDS[duration.group(2).lower()]
        return now - dt.timedelta(seconds=seconds)
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (90s, 15m, 1h, 2d, 1w) nor an ISO 8601 time"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def parse_query(query: str, now: dt.datetime) -> DeadLetterFilter:
    """The filter a dashboard query means: ``function:app.reports reason:failed
    queue:emails since:1h`` words (any of them) and free text (the rest, as typed).

    Raises:
        ValueError: a ``since:`` that ``parse_since`` refuses.
    """
    fields: dict[str, str] = {}
    free: list[str] = []
    for word in query.split():
        name, colon, value = word.partition(":")
        if colon and value and name.lower() in _QUERY_FIELDS:
            fields[name.lower()] = value
        else:
            free.append(word)
    since = fields.get("since")
    try:
        since_moment = None if since is None else parse_since(since, now)
    except ValueError as error:
        raise ValueError(f"since: {error}") from None
    return DeadLetterFilter(
        function=fields.get("function"),
        reason=fields.get("reason"),
        queue=fields.get("queue"),
        text=" ".join(free) or None,
        since=since_moment,
    )


def _function_matches(function: str | None, pattern: str) -> bool:
    if function is None:
        return False
    if _GLOB_CHARACTERS & set(pattern):
        return fnmatch.fnmatchcase(function, pattern)
    # A dotted prefix: ``app.reports`` is the module, not ``app.reports_old``.
    prefix = pattern.rstrip(".")
    return function == prefix or function.startswith(prefix + ".")


def _searchable(letter: DeadLetter) -> str:
    """The texts ``text`` is looked for in, one per line."""
    parts = [letter.error_type or "", letter.error or "", letter.traceback or ""]
    if letter.args is not None:
        parts.append(_preview(letter.args))
    if letter.kwargs is not None:
        parts.append(_preview(letter.kwargs))
    return "\n".join(parts)


def _preview(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=repr)
    except (ValueError, RecursionError):
        return repr(value)
