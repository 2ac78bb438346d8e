"""The supervisor's lifecycle events: each one logged, and the latest kept for snapshots.

Worker started, stopped, killed (and why), died (and how), hard-timeout kills, scaling
decisions, commands received: the lines an operator watching a dashboard wants to see,
without reading the process's log. Each event gets a sequence number so that a reader of
successive snapshots can tell the new ones from those it already showed. Failures (a worker
hung, died, or killed at a job's hard timeout) are also kept apart, as entries of their own.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Literal

from fast_app.farm.messages import InFlightEntry
from fast_app.farm.messages.snapshots import Event, Failure
from fast_app.farm.printable import printable

__all__ = ["EventLog", "failure_entry"]

_KEPT = 40
_LEVEL_NAMES: dict[int, Literal["debug", "info", "warning", "error", "critical"]] = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}
_MESSAGE_WIDTH = 2_000


class EventLog:
    """Logs lifecycle events and keeps the latest ones.

    Args:
        logger: where each event is logged too.
        kept: how many recent events snapshots carry.
    """

    def __init__(self, logger: logging.Logger, kept: int = _KEPT) -> None:
        self._logger = logger
        self._recent: collections.deque[Event] = collections.deque(maxlen=kept)
        self._sequence = 0

    def record(
        self,
        level: int,
        kind: str,
        message: str,
        *args: object,
        worker_id: str | None = None,
        job_id: str | None = None,
        supervisor_id: str | None = None,
    ) -> None:
        """Log ``message % args`` at ``level`` (ids as ``extra`` fields) and keep it.

        Args:
            level: a ``logging`` level.
            kind: what happened, e.g. ``worker_started``, ``worker_killed``, ``scaled``.
            message: the log message, ``%``-style.
            *args: its arguments.
            worker_id: the worker concerned, if any.
            job_id: the job concerned, if any.
            supervisor_id: the supervisor concerned, if any.
        """
        ids = {"worker_id": worker_id, "job_id": job_id, "supervisor_id": supervisor_id}
        extra = {name: value for name, value in ids.items() if value is not None}
        # Escaped: an event's arguments may quote what a message or a job said.
        text = printable(message % args if args else message)[:_MESSAGE_WIDTH]
        # stacklevel: the log line names the supervisor's code, not this helper.
        self._logger.log(level, "%s", text, extra=extra or None, stacklevel=2)
        self._sequence += 1
        self._recent.append(
            Event(
                seq=self._sequence,
                at=time.time(),
                kind=kind,
                level=_LEVEL_NAMES.get(level, "info"),
                message=text,
                worker_id=worker_id,
                job_id=job_id,
                supervisor_id=supervisor_id,
            )
        )

    def recent(self) -> list[Event]:
        """The latest events, oldest first."""
        return list(self._recent)


def failure_entry(
    kind: str, worker_id: str, job: InFlightEntry | None, detail: str = ""
) -> Failure:
    """A worker's failure as snapshots list it.

    Args:
        kind: ``hung``, ``died``, ``hard_timeout`` (killed by its supervisor) or
            ``hard_timeout_self`` (it ended itself).
        worker_id: the worker.
        job: the job concerned, as its heartbeat described it, if any.
        detail: how it ended, if that says more than ``kind``.
    """
    return Failure(
        at=time.time(),
        kind=kind,
        worker_id=worker_id,
        detail=printable(detail)[:_MESSAGE_WIDTH],
        job_id=None if job is None else job.id,
        function=None if job is None else job.function,
    )
