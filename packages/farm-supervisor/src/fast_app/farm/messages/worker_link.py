"""What a worker and its supervisor say over their socket pair: heartbeats and commands.

One JSON document a line. The worker builds its heartbeat from these types, so it is
bounded by construction (``HEARTBEAT_MAX_BYTES``): ids and paths are validated where
jobs enter, everything free-form is cut and escaped here. The supervisor decodes each
line strictly; a line that does not decode still proves that the worker is alive.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from fast_app.farm.messages._bounds import (
    Count,
    Elapsed,
    Function,
    JobId,
    Line,
    Moment,
    Name,
    Pid,
    Seconds,
    Text,
    Traceparent,
)
from fast_app.farm.messages.job_figures import FUNCTIONS_LISTED, FunctionRuns

__all__ = [
    "ENDED_LISTED",
    "HEARTBEAT_MAX_BYTES",
    "IN_FLIGHT_LISTED",
    "WAITING_LISTED",
    "WAITS_LISTED",
    "Cancel",
    "Drain",
    "EndedJob",
    "Heartbeat",
    "InFlightEntry",
    "Pause",
    "Resume",
    "Tombstoned",
    "WaitingEntry",
    "WorkerCommand",
    "WorkerCounters",
    "decode_heartbeat",
    "decode_worker_command",
    "encode_line",
]

#: Jobs in flight one heartbeat lists (those with the nearest hard deadlines first); the
#: rest are counted in ``in_flight_count``.
IN_FLIGHT_LISTED = 256
#: Ended jobs one heartbeat carries.
ENDED_LISTED = 16
#: Queue waits one heartbeat carries.
WAITS_LISTED = 256
#: Deliveries waiting for a slot one heartbeat lists (the first in line); the rest are
#: counted in ``waiting``.
WAITING_LISTED = 64
#: The longest line the supervisor reads; a heartbeat stays far below it by construction
#: (256 jobs of at most ~1.5 KB, 16 ended jobs of at most ~7 KB, 65 functions of at
#: most ~4 KB, 64 waiting deliveries of at most ~0.4 KB).
HEARTBEAT_MAX_BYTES = 1 << 20

WorkerState = Literal["starting", "idle", "busy", "paused", "draining"]
Outcome = Literal["succeeded", "retried", "dead_lettered", "cancelled"]


class InFlightEntry(msgspec.Struct, frozen=True):
    """A job a worker is running, as its heartbeats report it."""

    id: JobId
    function: Function
    attempt: Count
    started_at: Moment
    soft_deadline: Moment | None
    #: While its code runs (or still runs past its soft timeout): a job whose code
    #: returned is only being settled, and a slow broker is no reason to kill its worker.
    hard_deadline: Moment | None
    still_running: bool
    args: Line
    context_keys: Annotated[list[Line], Meta(max_length=16)] = msgspec.field(default_factory=list)
    traceparent: Traceparent | None = None
    parent_traceparent: Traceparent | None = None
    #: A plain function, run in a thread: it cannot be cancelled.
    in_thread: bool = False


class WaitingEntry(msgspec.Struct, frozen=True):
    """A delivery a worker holds but has not started: it waits for one of its slots.

    Its body is not decoded before it starts: ``function`` is what the delivery's
    ``type`` property names (``None`` when it names none that is a function's path).
    """

    id: JobId
    function: Function | None = None


class EndedJob(msgspec.Struct, frozen=True):
    """A job a worker ended since its previous heartbeat."""

    id: JobId
    function: Function
    attempt: Count
    outcome: Outcome
    ended_at: Moment
    duration_s: Seconds
    args: Line
    context_keys: Annotated[list[Line], Meta(max_length=16)] = msgspec.field(default_factory=list)
    error: Line | None = None
    traceback: Text | None = None
    #: Whether its code started: ``False`` for a job cancelled while it waited for a slot.
    started: bool = True


class WorkerCounters(msgspec.Struct):
    """Jobs a worker ended, by how they ended."""

    succeeded: Count = 0
    failed: Count = 0
    retried: Count = 0
    dead_lettered: Count = 0
    soft_timeouts: Count = 0
    hard_timeouts: Count = 0
    invalid: Count = 0
    cancelled: Count = 0


class Heartbeat(msgspec.Struct, frozen=True, tag="heartbeat"):
    """What a worker tells its supervisor every interval, and on each change of state."""

    worker_id: Name
    pid: Pid
    state: WorkerState
    at: Moment
    started_at: Moment
    concurrency: Count
    in_flight: Annotated[list[InFlightEntry], Meta(max_length=IN_FLIGHT_LISTED)]
    in_flight_count: Count
    counters: WorkerCounters
    ended: Annotated[list[EndedJob], Meta(max_length=ENDED_LISTED)]
    rss_bytes: Count | None
    last_error: Line | None = None
    #: Queue waits (seconds from due to started) of the jobs started since the last
    #: heartbeat, at most ``WAITS_LISTED`` (the longest, when more started).
    waits: Annotated[list[Elapsed], Meta(max_length=WAITS_LISTED)] = msgspec.field(
        default_factory=list
    )
    #: Runs ended since the last heartbeat, by function (the busiest ``FUNCTIONS_LISTED``,
    #: the rest summed as ``OTHER_FUNCTIONS``).
    functions: Annotated[list[FunctionRuns], Meta(max_length=FUNCTIONS_LISTED + 1)] = msgspec.field(
        default_factory=list
    )
    #: Deliveries received but not started (``FARM_PREFETCH`` above ``FARM_CONCURRENCY``):
    #: they wait for a slot and are not in ``in_flight``.
    waiting: Count = 0
    #: The first ``WAITING_LISTED`` of them in line (``waiting`` counts them all), so
    #: that one can be found, and cancelled, by its id.
    waiting_jobs: Annotated[list[WaitingEntry], Meta(max_length=WAITING_LISTED)] = msgspec.field(
        default_factory=list
    )

    def __post_init__(self) -> None:
        # Raised while decoding, this is a ValidationError: the heartbeat is refused.
        if len(self.waiting_jobs) > self.waiting:
            raise ValueError(
                f"lists {len(self.waiting_jobs)} waiting jobs but counts {self.waiting}"
            )


class Drain(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="command", tag="drain"
):
    """Finish the jobs in flight and exit."""


class Pause(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="command", tag="pause"
):
    """Take no new deliveries."""


class Resume(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="command", tag="resume"
):
    """Take deliveries again."""


class Tombstoned(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="command", tag="tombstone"
):
    """Job ``job_id`` was killed at its hard timeout on ``worker``: settle, don't rerun it."""

    job_id: JobId
    worker: Name


class Cancel(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="command", tag="cancel"
):
    """Cancel job ``job_id`` (an async one; a job in a thread is refused) and settle it as
    ``cancelled``: dead-lettered with that reason, never redelivered. ``sender`` is who
    asked (named in the dead letter and the logs)."""

    job_id: JobId
    sender: Line = "unknown"


WorkerCommand = Drain | Pause | Resume | Tombstoned | Cancel

_heartbeat_decoder = msgspec.json.Decoder(Heartbeat)
_command_decoder: msgspec.json.Decoder[WorkerCommand] = msgspec.json.Decoder(WorkerCommand)
_encoder = msgspec.json.Encoder()


def encode_line(message: Heartbeat | WorkerCommand) -> bytes:
    """One message as a line of the link."""
    return _encoder.encode(message) + b"\n"


def decode_heartbeat(line: bytes) -> Heartbeat:
    """A heartbeat line, strictly.

    Raises:
        msgspec.DecodeError: anything else (wrong type, out of bounds, not JSON).
    """
    return _heartbeat_decoder.decode(line)


def decode_worker_command(line: bytes) -> WorkerCommand:
    """A command line from the supervisor, strictly.

    Raises:
        msgspec.DecodeError: anything else.
    """
    return _command_decoder.decode(line)
