"""The bounded field types every farm message is built from.

A farm message may come from anyone who can publish to the broker: each string has a
length limit and, where it names something (an id, a function), a character set; free
text may not hold control characters (a producer passes it through ``printable``
first). A message that breaks a bound does not decode.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

__all__ = [
    "Count",
    "Elapsed",
    "Function",
    "JobId",
    "Line",
    "Moment",
    "Name",
    "Pid",
    "Seconds",
    "Text",
    "Traceparent",
    "WorkerLimit",
]

#: Ids of jobs: what ``new_job_id`` makes (32 hex digits), with room for other schemes.
JobId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+\Z")]
#: Ids of supervisors and workers, hosts, queue names: ``host-1234-w3``.
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:@/-]+\Z")]
#: A dotted path of a module-level function.
Function = Annotated[str, Meta(min_length=1, max_length=300, pattern=r"^[\w.<>-]+\Z")]
_NO_CONTROLS = r"^[^\x00-\x1f\x7f-\x9f]*\Z"
_NO_CONTROLS_BUT_LINES = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*\Z"
#: One line of text (an error, an event, a scaling reason).
Line = Annotated[str, Meta(max_length=2_000, pattern=_NO_CONTROLS)]
#: Text on several lines (a traceback's tail).
Text = Annotated[str, Meta(max_length=4_000, pattern=_NO_CONTROLS_BUT_LINES)]
#: A W3C ``traceparent``.
Traceparent = Annotated[str, Meta(pattern=r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}\Z")]
#: A Unix time (seconds); any float in the range of this century and the next.
Moment = Annotated[float, Meta(ge=0, le=8_000_000_000)]
#: A duration or age in seconds.
Seconds = Annotated[float, Meta(ge=-1e9, le=1e9)]
#: A time that cannot be negative (a wait, a time to clear), in seconds.
Elapsed = Annotated[float, Meta(ge=0, le=1e9)]
#: A process id.
Pid = Annotated[int, Meta(ge=0, le=2**31)]
#: A count of jobs, messages or events.
Count = Annotated[int, Meta(ge=0, le=2**53)]
#: A number of workers, the bounds of FARM_MIN_WORKERS and FARM_MAX_WORKERS.
WorkerLimit = Annotated[int, Meta(ge=0, le=1024)]
