"""What a worker knows about itself: jobs in flight, jobs just ended, counters (fed to
heartbeats)."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import reprlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fast_app.core.queue.envelope import JobEnvelope
from fast_app.core.queue.handle import JobError
from fast_app.core.queue.telemetry import job_traceparents
from fast_app.farm.messages import EndedJob, InFlightEntry
from fast_app.farm.printable import printable

if TYPE_CHECKING:
    from fast_app.farm.worker._delivery import Delivery
    from fast_app.farm.worker._incoming import IncomingJob

__all__ = [
    "InFlightJob",
    "RecentJobs",
    "context_keys",
    "preview_arguments",
    "resident_memory_bytes",
]

_PREVIEW_WIDTH = 160
_CONTEXT_KEYS = 12
_CONTEXT_KEY_WIDTH = 64
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}\Z")
_ERROR_WIDTH = 300
_TRACEBACK_TAIL = 1_000


def _make_repr() -> reprlib.Repr:
    # reprlib bounds the work by the limits, not by the size of the arguments: a job
    # given a list of a million items costs as little to preview as one given an int.
    shortened = reprlib.Repr()
    shortened.maxlevel = 3
    shortened.maxlist = shortened.maxtuple = shortened.maxset = 4
    shortened.maxdict = 4
    shortened.maxstring = 40
    shortened.maxother = 40
    return shortened


_REPR = _make_repr()


def preview_arguments(args: list[Any], kwargs: dict[str, Any]) -> str:
    """A job's arguments as one short line, e.g. ``(1, 'a', key=[1, 2, ...])``."""
    parts = [_REPR.repr(value) for value in args[:8]]
    if len(args) > 8:
        parts.append("...")
    parts += [f"{name}={_REPR.repr(value)}" for name, value in list(kwargs.items())[:8]]
    if len(kwargs) > 8:
        parts.append("...")
    # Escaped before it is cut: an escape never grows the line past its width.
    text = printable(f"({', '.join(parts)})")
    return text if len(text) <= _PREVIEW_WIDTH else text[: _PREVIEW_WIDTH - 1] + "…"


def context_keys(context: dict[str, Any]) -> list[str]:
    """The names in a job's context (not the values: they may be private), at most 12,
    each escaped and cut to 64 characters."""
    return [printable(str(key))[:_CONTEXT_KEY_WIDTH] for key in list(context)[:_CONTEXT_KEYS]]


def _traceparent(value: str | None) -> str | None:
    return value if value is not None and _TRACEPARENT.match(value) else None


@dataclass(eq=False)
class InFlightJob:
    """A job this worker is running.

    Attributes:
        envelope: the decoded job.
        message: the delivery to settle when it ends.
        started_at: Unix time it started.
        soft_deadline: Unix time of its soft timeout, if any.
        hard_deadline: Unix time of its hard timeout, if any.
        hard_timer: the scheduled hard-timeout call, cancelled when the job ends.
        ended_by_hard_timeout: the hard-timeout handler took over its message.
        still_running: settled after its soft timeout but could not be stopped; it holds
            the worker until its hard deadline ends the process.
        delivery: its delivery (message, run, hooks), as the worker handles it.
        task: the task its code runs in (cancelled by ``JobsInFlight.cancel``).
        in_thread: a plain function, run in a thread: it cannot be cancelled.
        cancelled_by: who cancelled it (``fast-app cancel``, the dashboard), once asked.
        code_returned: its code returned (or was cancelled): it can no longer be cancelled.
    """

    envelope: JobEnvelope
    message: IncomingJob
    started_at: float
    soft_deadline: float | None
    hard_deadline: float | None
    hard_timer: asyncio.TimerHandle | None = None
    ended_by_hard_timeout: bool = False
    still_running: bool = False
    delivery: Delivery | None = None
    task: asyncio.Task[object] | None = None
    in_thread: bool = False
    cancelled_by: str | None = None
    code_returned: bool = False
    _preview: tuple[str, list[str]] | None = field(default=None, repr=False)

    def describe(self) -> InFlightEntry:
        """The job as heartbeats report it.

        With tracing on, ``traceparent`` is its process span's and ``parent_traceparent``
        the enqueuing span's: a supervisor that kills the worker at the job's hard
        timeout records that on the job's trace.
        """
        if self._preview is None:  # built once, at the first heartbeat that reports it
            envelope = self.envelope
            self._preview = (
                preview_arguments(envelope.args, envelope.kwargs),
                context_keys(envelope.context),
            )
        traceparent, producer_traceparent = (
            (None, None) if self.delivery is None else job_traceparents(self.delivery.run)
        )
        return InFlightEntry(
            id=self.envelope.id,
            function=self.envelope.function,
            attempt=self.envelope.attempt,
            started_at=self.started_at,
            soft_deadline=self.soft_deadline,
            # Its code returned: it is being settled, which its hard deadline no longer
            # bounds (the worker's own timer is cancelled then too).
            hard_deadline=None
            if self.code_returned and not self.still_running
            else self.hard_deadline,
            still_running=self.still_running,
            args=self._preview[0],
            context_keys=self._preview[1],
            traceparent=_traceparent(traceparent),
            parent_traceparent=_traceparent(producer_traceparent),
            in_thread=self.in_thread,
        )


@dataclass(slots=True)
class _Ended:
    envelope: JobEnvelope
    outcome: str
    ended_at: float
    duration_s: float
    error: JobError | None
    started: bool

    def describe(self) -> EndedJob:
        envelope, error = self.envelope, self.error
        return EndedJob(
            id=envelope.id,
            function=envelope.function,
            attempt=envelope.attempt,
            outcome=self.outcome,  # type: ignore[arg-type]  # one of the four outcomes
            ended_at=self.ended_at,
            duration_s=self.duration_s,
            args=preview_arguments(envelope.args, envelope.kwargs),
            context_keys=context_keys(envelope.context),
            error=None if error is None else _error_line(error),
            traceback=None
            if error is None or not error.traceback
            else printable(error.traceback[-_TRACEBACK_TAIL:], keep_lines=True)[-_TRACEBACK_TAIL:],
            started=self.started,
        )


def _error_line(error: JobError) -> str:
    return printable(f"{error.type}: {error.message}"[:_ERROR_WIDTH])[:_ERROR_WIDTH]


class RecentJobs:
    """The last jobs this worker ended, kept until the next heartbeat takes them.

    Recording is on every job's path, so it only appends to bounded deques; the
    description (arguments preview, error) is built for the few still kept when a
    heartbeat takes them. Successes and failures are kept apart: at a thousand jobs a
    second the successes would push the rare failure out before anyone saw it.

    Args:
        successes: successes kept between two heartbeats.
        failures: failures (retried or dead-lettered) kept between two heartbeats.
    """

    def __init__(self, successes: int = 4, failures: int = 8) -> None:
        self._succeeded: collections.deque[_Ended] = collections.deque(maxlen=successes)
        self._failed: collections.deque[_Ended] = collections.deque(maxlen=failures)

    def add(
        self,
        envelope: JobEnvelope,
        outcome: str,
        duration_s: float,
        error: JobError | None,
        *,
        started: bool = True,
    ) -> None:
        """Record how a run of ``envelope`` ended: ``succeeded``, ``retried``,
        ``dead_lettered`` or ``cancelled`` (``started``: whether its code started)."""
        kept = self._succeeded if outcome == "succeeded" else self._failed
        kept.append(_Ended(envelope, outcome, time.time(), duration_s, error, started))

    def take(self) -> list[EndedJob]:
        """The jobs ended since the last call, described, oldest first; forgets them."""
        ended = sorted([*self._succeeded, *self._failed], key=lambda job: job.ended_at)
        self._succeeded.clear()
        self._failed.clear()
        return [job.describe() for job in ended]


def resident_memory_bytes() -> int:
    """This process's resident set size (Linux ``/proc``; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
