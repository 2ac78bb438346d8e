"""Hard timeouts enforced from outside: tombstones first, then the kill.

A worker ends a job at its hard timeout itself. When it does not (its event loop is
blocked, say), its supervisor sees the deadline pass in the worker's heartbeats and kills
the worker. Before the kill it tells the whole farm that the job was killed (a tombstone),
so that whichever worker the broker redelivers the job to settles it instead of running
it again.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Mapping

from fast_app.farm.messages import InFlightEntry, Tombstone, Tombstoned
from fast_app.farm.messages.snapshots import Failure
from fast_app.farm.supervisor._broker import SupervisorBroker
from fast_app.farm.supervisor._events import EventLog, failure_entry
from fast_app.farm.supervisor._job_figures import JobFigures
from fast_app.farm.supervisor._workers import WorkerProcess
from fast_app.farm.telemetry import record_hard_timeout_kill

__all__ = ["FarmTombstones", "HardTimeoutEnforcer"]

logger = logging.getLogger("fast_app.farm.supervisor")

_HARD_TIMEOUT_MARGIN_S = 0.3  # the worker gets this long to end the job itself
_SECOND_LOOK_S = 0.1  # before a kill, for the heartbeats not read yet
_TOMBSTONE_KEPT_S = 3600
_TOMBSTONES_PASSED_AT_SPAWN = 1000


class FarmTombstones:
    """Jobs killed at their hard timeout (by any supervisor), passed on to the workers.

    New workers get them at spawn, live ones over their link, so that whichever worker
    the broker redelivers such a job to settles it instead of running it.

    Args:
        workers: the supervisor's live workers (read at each new tombstone).
    """

    def __init__(self, workers: Mapping[str, WorkerProcess]) -> None:
        self._workers = workers
        # job id -> (worker, expiry)
        self._entries: dict[str, tuple[str, float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def remember(self, job_id: str, worker_id: str) -> None:
        """Record that ``worker_id`` was killed for ``job_id`` and tell the live workers."""
        now = time.monotonic()
        self._entries = {k: v for k, v in self._entries.items() if v[1] > now}
        if job_id in self._entries:
            return
        self._entries[job_id] = (worker_id, now + _TOMBSTONE_KEPT_S)
        for worker in self._workers.values():
            await worker.send(Tombstoned(job_id=job_id, worker=worker_id))

    def heard(self, tombstone: Tombstone) -> None:
        """Remember a tombstone heard on the tombstones exchange (on the event loop)."""
        task = asyncio.get_running_loop().create_task(
            self.remember(tombstone.job_id, tombstone.worker)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def latest(self) -> list[str]:
        """The latest tombstones as ``job_id@worker_id``, oldest first (for a new worker)."""
        entries = list(self._entries.items())[-_TOMBSTONES_PASSED_AT_SPAWN:]
        return [f"{job}@{worker}" for job, (worker, _) in entries]


class HardTimeoutEnforcer:
    """Kills the workers that hold a job past its hard deadline, tombstone first.

    Args:
        supervisor_id: named on the job's trace as the killer.
        queue_name: the farm's jobs queue (for the kill's telemetry, when a worker does
            not say which queue it consumes).
        workers: the supervisor's workers, with the jobs their heartbeats report.
        tombstones: where the killed jobs are remembered and passed on to the workers.
        broker: publishes each tombstone to the rest of the farm.
        events: where each kill is told.
        failures: where each kill is listed for snapshots.
        figures: where each kill is counted against its job's function.
    """

    def __init__(
        self,
        *,
        supervisor_id: str,
        queue_name: str,
        workers: Mapping[str, WorkerProcess],
        tombstones: FarmTombstones,
        broker: SupervisorBroker,
        events: EventLog,
        failures: collections.deque[Failure],
        figures: JobFigures,
    ) -> None:
        self._supervisor_id = supervisor_id
        self._queue_name = queue_name
        self._workers = workers
        self._tombstones = tombstones
        self._broker = broker
        self._events = events
        self._failures = failures
        self._figures = figures

    async def enforce(self) -> None:
        """Kill each worker holding a job past its hard deadline (and margin)."""
        if not self._overdue(time.time()):
            return
        # A second look, once the links have been read: heartbeats that came while this
        # supervisor was busy may say that the job ended in time (a busy host delays the
        # reading, not the worker).
        await asyncio.sleep(_SECOND_LOOK_S)
        wall = time.time()
        for worker, job in self._overdue(wall):
            deadline = job.hard_deadline
            assert deadline is not None  # overdue jobs have one
            job_id, function = job.id, job.function
            self._events.record(
                logging.ERROR,
                "hard_timeout",
                "job %s (%s) passed its hard timeout %.1fs ago and worker %s did not "
                "end it (event loop blocked?): killing the worker",
                job_id,
                function,
                wall - deadline,
                worker.worker_id,
                job_id=job_id,
                worker_id=worker.worker_id,
            )
            # First the tombstone, so that no worker runs the job again when the broker
            # redelivers it after the kill: to our workers (and those we spawn next)
            # over their links, to the rest of the farm through the broker.
            await self._tombstones.remember(job_id, worker.worker_id)
            try:
                await self._broker.publish_tombstone(job_id, function, worker.worker_id)
            except Exception as error:  # kill anyway: the delivery limit still bounds it
                logger.warning("could not publish the tombstone of job %s: %s", job_id, error)
            await asyncio.sleep(0.05)  # let the links deliver it before the redelivery
            self._failures.append(failure_entry("hard_timeout", worker.worker_id, job))
            self._figures.hard_timeout(worker.queue, function, wall)
            try:
                record_hard_timeout_kill(
                    worker.queue or self._queue_name,
                    job,
                    worker.worker_id,
                    f"passed its hard timeout {wall - deadline:.1f}s ago and worker "
                    f"{worker.worker_id} did not end it: killed by supervisor "
                    f"{self._supervisor_id}",
                )
            except Exception:  # telemetry never stands in the way of the kill
                logger.debug("could not record the kill on the job's trace", exc_info=True)
            worker.kill(f"job {job_id} passed its hard timeout")

    def _overdue(self, wall: float) -> list[tuple[WorkerProcess, InFlightEntry]]:
        """Per live worker, the first job its latest heartbeat holds past its hard
        deadline and margin."""
        overdue: list[tuple[WorkerProcess, InFlightEntry]] = []
        for worker in list(self._workers.values()):
            if not worker.alive or worker.kill_reason:
                continue
            for job in worker.in_flight:
                deadline = job.hard_deadline
                if deadline is not None and wall >= deadline + _HARD_TIMEOUT_MARGIN_S:
                    overdue.append((worker, job))
                    break
        return overdue
