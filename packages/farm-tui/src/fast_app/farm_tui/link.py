"""What the dashboard needs from a farm, whichever way it reaches it.

Three links implement it: ``EmbeddedFarm`` (``fast-app work --tui``: the supervisor runs
in this process, on a thread of its own), ``RemoteFarm`` (``fast-app top``: snapshots and
commands through the broker) and ``StaticFarm`` (fixed data, for tests). A link never
blocks the caller: I/O runs on its own threads, results come back as futures, and
``poll`` only hands over what arrived.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from fast_app.farm.broker_queues import QueueReading
from fast_app.farm.dead_letters import DeadLetter, DeadLetterFilter, RequeueReport

__all__ = ["FarmLink", "LinkStatus", "LinkUpdate", "LogLine"]


@dataclass(frozen=True, slots=True)
class LogLine:
    """A line of output: a log record of this process, or a line a worker wrote.

    Attributes:
        at: Unix time.
        level: ``debug`` ... ``critical`` for log records; ``output`` for worker lines.
        source: the logger's name, or the worker's id.
        text: the message (with its traceback, if any).
    """

    at: float
    level: str
    source: str
    text: str


@dataclass(frozen=True)
class LinkUpdate:
    """What arrived since the last ``poll``.

    Attributes:
        snapshots: supervisor snapshots, oldest first.
        log_lines: output lines, oldest first (``EmbeddedFarm`` only).
        skipped_log_lines: lines that arrived faster than they were polled, dropped.
        queue_readings: the jobs queues as the link read them from the broker itself,
            oldest first (``RemoteFarm`` only).
    """

    snapshots: list[dict[str, Any]] = field(default_factory=list)
    log_lines: list[LogLine] = field(default_factory=list)
    skipped_log_lines: int = 0
    queue_readings: list[QueueReading] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """Where the link stands.

    Attributes:
        connected: snapshots can arrive and commands leave.
        stopped: the farm this link runs has stopped (``EmbeddedFarm``), or the link
            was closed.
        detail: one line for the status bar, e.g. ``reconnecting to the broker``.
        exit_code: the supervisor's exit code once ``stopped`` (``EmbeddedFarm``).
        error: what stopped it, if it failed.
        since: Unix time the link came to this state (connected, or lost), if known.
    """

    connected: bool
    stopped: bool = False
    detail: str = ""
    exit_code: int | None = None
    error: BaseException | None = None
    since: float | None = None


class FarmLink(Protocol):
    """The dashboard's way to a farm."""

    @property
    def owns_farm(self) -> bool:
        """Whether quitting the dashboard stops the farm (else it only detaches)."""
        ...

    @property
    def queue_name(self) -> str:
        """The jobs queue of the farm."""
        ...

    def start(self) -> None:
        """Start the link's threads (and, for an embedded farm, the supervisor)."""
        ...

    def poll(self) -> LinkUpdate:
        """What arrived since the last call; never blocks."""
        ...

    def status(self) -> LinkStatus:
        """Where the link stands now."""
        ...

    def send_command(self, supervisor_id: str, command: dict[str, Any]) -> Future[None]:
        """Send a command to a supervisor (``set_limits``, ``drain_worker``...)."""
        ...

    def list_dead_letters(self, limit: int) -> Future[list[DeadLetter]]:
        """The ``limit`` oldest dead letters (reading removes none)."""
        ...

    def requeue_dead_letters(self, job_ids: Sequence[str] | None) -> Future[RequeueReport]:
        """Requeue these dead letters (``None``: all of them)."""
        ...

    def purge_dead_letters(self, where: DeadLetterFilter | None = None) -> Future[int]:
        """Delete every dead letter (``where``: those it matches); how many there were."""
        ...

    def stop(self) -> None:
        """Stop the farm gracefully (draining) if it is owned; a second call forces it."""
        ...

    def close(self) -> None:
        """Release the link's threads and connections (stopping an owned farm first)."""
        ...
