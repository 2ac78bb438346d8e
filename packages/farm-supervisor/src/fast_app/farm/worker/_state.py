"""What a worker knows about itself: jobs in flight and counters (fed to heartbeats)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fast_app.core.queue.envelope import JobEnvelope

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage

__all__ = ["InFlightJob", "WorkerCounters"]


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
    """

    envelope: JobEnvelope
    message: AbstractIncomingMessage
    started_at: float
    soft_deadline: float | None
    hard_deadline: float | None
    hard_timer: asyncio.TimerHandle | None = None
    ended_by_hard_timeout: bool = False


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
