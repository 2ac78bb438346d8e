"""The parts of a supervisor's snapshot that need bounding: workers' jobs, recent ends.

A snapshot travels as one message on the events exchange every heartbeat interval; with
32 workers of 16 jobs each, listing every job in flight (with its arguments preview)
would make it large. It lists the oldest jobs in flight (those nearest their deadlines)
up to a cap and counts the rest, and keeps the last few ended jobs. Deliveries waiting
inside workers for a slot are listed apart (never as jobs in flight), likewise capped:
the first in line of each worker first, so that every worker's next ones can be found.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

import msgspec

from fast_app.farm.messages import WorkerCounters
from fast_app.farm.messages.snapshots import EndedJobOf, RecentEnds, WaitingJobOf, WorkerEntry
from fast_app.farm.supervisor._workers import WorkerProcess

__all__ = [
    "IN_FLIGHT_LISTED",
    "WAITING_LISTED",
    "RecentJobEnds",
    "waiting_counts",
    "waiting_jobs",
    "worker_entries",
]

#: Jobs in flight a snapshot lists, over all of a supervisor's workers (oldest first).
IN_FLIGHT_LISTED = 40
#: Waiting deliveries a snapshot lists, over all of a supervisor's workers (at most
#: ~0.4 KB each).
WAITING_LISTED = 40
_SUCCEEDED_KEPT = 10
_FAILED_KEPT = 10


def worker_entries(workers: Iterable[WorkerProcess], now: float) -> list[WorkerEntry]:
    """Each worker as a snapshot shows it, at monotonic time ``now``.

    ``in_flight`` lists its jobs among the ``IN_FLIGHT_LISTED`` oldest of all workers;
    ``in_flight_count`` counts them all (never the deliveries waiting for a slot: see
    ``waiting_jobs``).
    """
    workers = list(workers)
    started = sorted(
        (job.started_at, index, position)
        for index, worker in enumerate(workers)
        for position, job in enumerate(worker.in_flight)
    )
    listed = {(index, position) for _, index, position in started[:IN_FLIGHT_LISTED]}
    entries = []
    for index, worker in enumerate(workers):
        beat = worker.heartbeat
        entries.append(
            WorkerEntry(
                worker_id=worker.worker_id,
                pid=worker.pid,
                state=worker.state,  # type: ignore[arg-type]  # a heartbeat's, or ours
                # Only the supervisor needs the trace ids (to record a kill): not sent.
                in_flight=[
                    msgspec.structs.replace(job, traceparent=None, parent_traceparent=None)
                    for position, job in enumerate(worker.in_flight)
                    if (index, position) in listed
                ],
                in_flight_count=worker.in_flight_count,
                counters=beat.counters if beat is not None else WorkerCounters(),
                rss_bytes=None if beat is None else beat.rss_bytes,
                uptime_s=now - worker.spawned_at,
                heartbeat_age_s=now - worker.last_seen,
                rate=worker.rate(),
                queue=worker.queue,
            )
        )
    return entries


def waiting_counts(workers: Iterable[WorkerProcess]) -> dict[str, int]:
    """How many deliveries wait for a slot in each worker, of those where some wait."""
    return {worker.worker_id: worker.waiting for worker in workers if worker.waiting}


def waiting_jobs(workers: Iterable[WorkerProcess]) -> list[WaitingJobOf]:
    """At most ``WAITING_LISTED`` deliveries waiting for a slot, by place in line: each
    worker's first, then each one's second..., so that every worker's next ones can be
    found (and cancelled) by their ids."""
    lines = [(worker.worker_id, worker.waiting_jobs) for worker in workers]
    listed: list[WaitingJobOf] = []
    for position in range(max((len(line) for _, line in lines), default=0)):
        for worker_id, line in lines:
            if position < len(line):
                job = line[position]
                listed.append(WaitingJobOf(id=job.id, function=job.function, worker_id=worker_id))
                if len(listed) == WAITING_LISTED:
                    return listed
    return listed


class RecentJobEnds:
    """The last jobs the workers of one supervisor ended, successes and failures apart."""

    def __init__(self) -> None:
        self._succeeded: collections.deque[EndedJobOf] = collections.deque(maxlen=_SUCCEEDED_KEPT)
        self._failed: collections.deque[EndedJobOf] = collections.deque(maxlen=_FAILED_KEPT)

    def collect(self, worker: WorkerProcess) -> None:
        """Take what ``worker`` reported ended since the last call."""
        for job in worker.take_ended():
            fields = msgspec.structs.asdict(job)
            ended = EndedJobOf(**fields, worker_id=worker.worker_id)
            kept = self._succeeded if job.outcome == "succeeded" else self._failed
            kept.append(ended)

    def as_message(self) -> RecentEnds:
        """``succeeded`` and ``failed`` (retried or dead-lettered), oldest first."""
        return RecentEnds(succeeded=list(self._succeeded), failed=list(self._failed))
