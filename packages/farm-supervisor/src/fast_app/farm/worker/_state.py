"""What a worker knows about itself: jobs in flight and counters (fed to heartbeats)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fast_app.core.queue.envelope import JobEnvelope
from fast_app.core.queue.telemetry import JobObservation

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage

__all__ = ["InFlightJob", "WorkerCounters", "resident_memory_bytes"]


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
        observation: its telemetry (process span, metrics), when an SDK is configured.
    """

    envelope: JobEnvelope
    message: AbstractIncomingMessage
    started_at: float
    soft_deadline: float | None
    hard_deadline: float | None
    hard_timer: asyncio.TimerHandle | None = None
    ended_by_hard_timeout: bool = False
    still_running: bool = False
    observation: JobObservation | None = None

    def describe(self) -> dict[str, object]:
        """The job as heartbeats report it.

        With tracing on, ``traceparent`` is its process span's: a supervisor that kills
        the worker at the job's hard timeout records that on the job's trace.
        """
        described: dict[str, object] = {
            "id": self.envelope.id,
            "function": self.envelope.function,
            "attempt": self.envelope.attempt,
            "started_at": self.started_at,
            "soft_deadline": self.soft_deadline,
            "hard_deadline": self.hard_deadline,
            "still_running": self.still_running,
        }
        traceparent = None if self.observation is None else self.observation.traceparent
        if traceparent is not None:
            described["traceparent"] = traceparent
        return described


@dataclass
class WorkerCounters:
    """Jobs this worker ended, by how they ended."""

    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    soft_timeouts: int = 0
    hard_timeouts: int = 0
    invalid: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters, for heartbeats."""
        return dict(vars(self))


def resident_memory_bytes() -> int:
    """This process's resident set size (Linux ``/proc``; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
