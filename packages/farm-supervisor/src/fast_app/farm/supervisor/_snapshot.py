"""The parts of a supervisor's snapshot that need bounding: workers' jobs, recent ends.

A snapshot travels as one message on the events exchange every heartbeat interval; with
32 workers of 16 jobs each, listing every job in flight (with its arguments preview)
would make it large. It lists the oldest jobs in flight (those nearest their deadlines)
up to a cap and counts the rest, and keeps the last few ended jobs.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from fast_app.farm.supervisor._workers import WorkerProcess

__all__ = ["IN_FLIGHT_LISTED", "RecentEnds", "worker_entries"]

#: Jobs in flight a snapshot lists, over all of a supervisor's workers (oldest first).
IN_FLIGHT_LISTED = 40
# Only the supervisor needs these (to record a kill on the job's trace): not sent.
_NOT_SHOWN = frozenset({"traceparent", "parent_traceparent"})
_SUCCEEDED_KEPT = 10
_FAILED_KEPT = 10


def worker_entries(workers: Iterable[WorkerProcess], now: float) -> list[dict[str, Any]]:
    """Each worker as a snapshot shows it, at monotonic time ``now``.

    ``in_flight`` lists its jobs among the ``IN_FLIGHT_LISTED`` oldest of all workers;
    ``in_flight_count`` counts them all.
    """
    workers = list(workers)
    started = sorted(
        (float(job.get("started_at") or 0.0), index, position)
        for index, worker in enumerate(workers)
        for position, job in enumerate(worker.in_flight)
    )
    listed: set[tuple[int, int]] = {(index, position) for _, index, position in started}
    if len(started) > IN_FLIGHT_LISTED:
        listed = {(index, position) for _, index, position in started[:IN_FLIGHT_LISTED]}
    entries = []
    for index, worker in enumerate(workers):
        beat = worker.heartbeat
        in_flight = worker.in_flight
        entries.append(
            {
                "worker_id": worker.worker_id,
                "pid": worker.pid,
                "state": worker.state,
                "in_flight": [
                    {key: value for key, value in job.items() if key not in _NOT_SHOWN}
                    for position, job in enumerate(in_flight)
                    if (index, position) in listed
                ],
                "in_flight_count": len(in_flight),
                "counters": beat.get("counters", {}),
                "rss_bytes": beat.get("rss_bytes"),
                "uptime_s": now - worker.spawned_at,
                "heartbeat_age_s": now - worker.last_seen,
                "rate": worker.rate(),
            }
        )
    return entries


class RecentEnds:
    """The last jobs the workers of one supervisor ended, successes and failures apart."""

    def __init__(self) -> None:
        self._succeeded: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=_SUCCEEDED_KEPT
        )
        self._failed: collections.deque[dict[str, Any]] = collections.deque(maxlen=_FAILED_KEPT)

    def collect(self, worker: WorkerProcess) -> None:
        """Take what ``worker`` reported ended since the last call."""
        for job in worker.take_ended():
            job["worker_id"] = worker.worker_id
            kept = self._succeeded if job.get("outcome") == "succeeded" else self._failed
            kept.append(job)

    def as_dict(self) -> dict[str, list[dict[str, Any]]]:
        """``succeeded`` and ``failed`` (retried or dead-lettered), oldest first."""
        return {"succeeded": list(self._succeeded), "failed": list(self._failed)}
