"""A supervisor's worker processes: spawned, watched until they end, kept at a number.

The pool keeps as many live workers as it is asked for (``desired``, within its limits):
it spawns the missing ones, drains idle ones to shrink, kills the hung and those slow to
drain, and tells how each one ended. A worker that crashes soon after its start is
replaced after a delay that doubles with each such crash, so that an application that
cannot start does not make the supervisor spawn in a tight loop; after
``FARM_MAX_STARTUP_FAILURES`` workers in a row could not start (exit code 4: a bad
``FARM_IMPORTS``, an import error, a failing ``FARM_STARTUP`` hook), the pool gives up
(``cannot_start`` says why) and the supervisor stops: retrying cannot help.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterator

from fast_app.farm.messages import Pause, Refusals
from fast_app.farm.messages.snapshots import Failure
from fast_app.farm.settings import FarmSettings
from fast_app.farm.supervisor._events import EventLog, failure_entry
from fast_app.farm.supervisor._job_figures import JobFigures
from fast_app.farm.supervisor._snapshot import RecentJobEnds
from fast_app.farm.supervisor._workers import OutputSink, WorkerProcess, describe_exit
from fast_app.farm.template import WorkerTemplate
from fast_app.farm.worker._exit import EXIT_HARD_TIMEOUT, EXIT_STARTUP_FAILED

__all__ = ["WorkerPool"]

logger = logging.getLogger("fast_app.farm.supervisor")

_STARTUP_ALLOWANCE_S = 15.0  # a starting worker imports the app before its first heartbeat
_STABLE_UPTIME_S = 10.0  # a worker that lived this long did not die of a crash loop
_MAX_RESPAWN_DELAY_S = 30.0
_DRAIN_OVERRUN_S = 2


class WorkerPool:
    """The worker processes of one supervisor for one queue.

    Attributes:
        workers: the workers not reaped yet, by id.
        min_workers: the fewest live workers to keep.
        max_workers: the most live workers to keep.
        desired: how many live workers to keep now (scaling and commands set it).
        paused: new workers are told to pause as soon as they start.
        cannot_start: why the pool gave up, after ``FARM_MAX_STARTUP_FAILURES`` workers in
            a row failed to start (``None`` while it has not).

    Args:
        supervisor_id: names the workers (``<supervisor>-w<N>``).
        farm: limits, heartbeat interval and tolerance, grace period.
        environment: builds a new worker's environment, at each spawn.
        output: receives the workers' output lines (``None``: they write to ours).
        events: where starts, ends and kills are told.
        failures: where hung and dead workers are listed for snapshots.
        recent: takes what each worker reported ended, before it is reaped.
        figures: likewise for each function's runs.
        stopping: set when the supervisor stops: ends are expected, counts not kept.
        refusals: where the workers' heartbeats that do not decode are counted.
        queue: the queue its workers consume (``None``: ``QUEUE_NAME``).
        limits: its ``(min_workers, max_workers)``; default ``FARM_MIN_WORKERS`` and
            ``FARM_MAX_WORKERS``.
        numbers: the numbers of new workers (``<supervisor>-w<N>``), shared by the
            pools of one supervisor so that worker ids stay unique.
        template: the worker template new workers are forked from when it is ready
            (``None``: each starts as a fresh interpreter).
    """

    def __init__(
        self,
        *,
        supervisor_id: str,
        farm: FarmSettings,
        environment: Callable[[], dict[str, str]],
        output: OutputSink | None,
        events: EventLog,
        failures: collections.deque[Failure],
        recent: RecentJobEnds,
        figures: JobFigures,
        stopping: asyncio.Event,
        refusals: Refusals | None = None,
        queue: str | None = None,
        limits: tuple[int, int] | None = None,
        numbers: Iterator[int] | None = None,
        template: WorkerTemplate | None = None,
    ) -> None:
        self._template = template
        self._refusals = refusals
        self.queue = queue
        self._supervisor_id = supervisor_id
        self._farm = farm
        self._environment = environment
        self._output = output
        self._events = events
        self._failures = failures
        self._recent = recent
        self._figures = figures
        self._stopping = stopping
        self.workers: dict[str, WorkerProcess] = {}
        self.min_workers, self.max_workers = limits or (farm.min_workers, farm.max_workers)
        self.desired = self.min_workers
        self.paused = False
        self._numbers = numbers if numbers is not None else itertools.count(1)
        self._crash_streak = 0
        self._startup_failures = 0  # in a row, since a worker last started
        self.cannot_start: str | None = None
        self._spawn_not_before = 0.0
        self._watchers: set[asyncio.Task[None]] = set()
        self._all_exited = asyncio.Event()

    @property
    def watchers(self) -> set[asyncio.Task[None]]:
        """The tasks waiting for a worker's end (each reaps its worker)."""
        return set(self._watchers)

    def live(self) -> list[WorkerProcess]:
        """The workers that count: alive, and neither draining nor being killed."""
        return [
            w for w in self.workers.values() if w.alive and not w.draining and not w.kill_reason
        ]

    def set_limits(self, min_workers: int, max_workers: int) -> None:
        """Keep between ``min_workers`` and ``max_workers`` from now on."""
        self.min_workers, self.max_workers = min_workers, max_workers
        self.desired = max(min_workers, min(max_workers, self.desired))

    async def keep_count(self, now: float) -> None:
        """Spawn the missing workers (unless delayed by crashes), or drain idle extra ones."""
        if self._stopping.is_set() or self.cannot_start is not None:
            return
        live = self.live()
        if any(w.heartbeat is not None and w.heartbeat.state != "starting" for w in live):
            self._startup_failures = 0
        missing = self.desired - len(live)
        if missing > 0 and now >= self._spawn_not_before:
            for _ in range(missing):
                await self.spawn()
        elif missing < 0:
            # Shrink by draining idle workers only: never a busy one.
            idle = [w for w in live if w.state == "idle" and not w.in_flight]
            for worker in idle[:-missing]:
                self._events.record(
                    logging.INFO,
                    "worker_draining",
                    "draining idle worker %s (scale down)",
                    worker.worker_id,
                    worker_id=worker.worker_id,
                )
                await worker.drain(self._farm.grace_period_s)

    def kill_the_hung(self, now: float) -> None:
        """Kill the workers whose heartbeats stopped for longer than the tolerance."""
        silence_limit = self._farm.heartbeat_interval_s * self._farm.heartbeat_tolerance
        for worker in self.workers.values():
            if not worker.alive or worker.kill_reason:
                continue
            limit = (
                silence_limit
                if worker.heartbeat is not None
                else silence_limit + _STARTUP_ALLOWANCE_S
            )
            silent_for = now - worker.last_seen
            if silent_for > limit:
                self._events.record(
                    logging.ERROR,
                    "worker_hung",
                    "worker %s (pid %d) silent for %.1fs: hung, killing it; its jobs return "
                    "to the queue",
                    worker.worker_id,
                    worker.pid,
                    silent_for,
                    worker_id=worker.worker_id,
                )
                self._failures.append(failure_entry("hung", worker.worker_id, None))
                worker.kill(f"hung (no heartbeat for {silent_for:.1f}s)")

    def kill_the_slow_to_drain(self, now: float) -> None:
        """Kill the draining workers still alive well past their grace period."""
        for worker in self.workers.values():
            if (
                worker.draining
                and worker.drain_deadline
                and now > worker.drain_deadline + _DRAIN_OVERRUN_S
            ):
                worker.kill("did not drain within the grace period")

    async def wait_until_empty(self, timeout_s: float) -> None:
        """Wait until every worker has ended, for ``timeout_s`` at most."""
        self._all_exited.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_exited.wait(), timeout_s)

    async def spawn(self) -> None:
        """Start one more worker, and watch it until it ends."""
        worker_id = f"{self._supervisor_id}-w{next(self._numbers)}"
        worker = await WorkerProcess.spawn(
            worker_id, self._environment(), self._output, self._refusals, self._template
        )
        worker.queue = self.queue
        self.workers[worker_id] = worker
        self._events.record(
            logging.INFO,
            "worker_started",
            "worker %s started (pid %d)%s",
            worker_id,
            worker.pid,
            "" if self.queue is None else f" on {self.queue}",
            worker_id=worker_id,
        )
        if self.paused:
            await worker.send(Pause())
        watcher = asyncio.create_task(self._watch(worker))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch(self, worker: WorkerProcess) -> None:
        # Whatever fails here, the worker leaves the pool: one left behind would hold a
        # slot forever and stall the shutdown.
        try:
            code = await worker.wait()
        except Exception:
            logger.exception("watching worker %s failed; killing it", worker.worker_id)
            worker.kill("its supervisor lost track of it")
            code = await worker.process.wait()
        try:
            self._reap(worker, code)
        except Exception:
            logger.exception("reaping worker %s failed", worker.worker_id)
        finally:
            self.workers.pop(worker.worker_id, None)
            if not self.workers:
                self._all_exited.set()

    def _reap(self, worker: WorkerProcess, code: int) -> None:
        # Its last heartbeat may have ended a few more.
        self._recent.collect(worker)
        self._figures.collect(worker, time.time())
        now = time.monotonic()
        uptime = now - worker.spawned_at
        how = describe_exit(code)
        if worker.kill_reason is not None:
            self._events.record(
                logging.WARNING,
                "worker_killed",
                "worker %s killed: %s",
                worker.worker_id,
                worker.kill_reason,
                worker_id=worker.worker_id,
            )
        elif worker.draining or self._stopping.is_set():
            self._events.record(
                logging.INFO,
                "worker_stopped",
                "worker %s stopped (%s)",
                worker.worker_id,
                how,
                worker_id=worker.worker_id,
            )
        elif code == EXIT_HARD_TIMEOUT:
            self._events.record(
                logging.WARNING,
                "worker_ended_itself",
                "worker %s %s",
                worker.worker_id,
                how,
                worker_id=worker.worker_id,
            )
            self._failures.append(failure_entry("hard_timeout_self", worker.worker_id, None))
        else:
            last_error = None if worker.heartbeat is None else worker.heartbeat.last_error
            if code == EXIT_STARTUP_FAILED:
                self._startup_failures += 1
                if self._startup_failures >= self._farm.max_startup_failures:
                    self._give_up(worker, uptime, how, last_error)
                    return
            self._crash_streak = self._crash_streak + 1 if uptime < _STABLE_UPTIME_S else 1
            delay = min(_MAX_RESPAWN_DELAY_S, 0.5 * 2 ** (self._crash_streak - 1))
            self._spawn_not_before = now + delay
            self._events.record(
                logging.ERROR,
                "worker_died",
                "worker %s died unexpectedly after %.1fs: %s%s; replacing it in %.1fs",
                worker.worker_id,
                uptime,
                how,
                f"; last error: {last_error}" if last_error else "",
                delay,
                worker_id=worker.worker_id,
            )
            self._failures.append(failure_entry("died", worker.worker_id, None, detail=how))

    def _give_up(
        self, worker: WorkerProcess, uptime: float, how: str, last_error: str | None
    ) -> None:
        """Stop replacing workers that cannot start: the application will not start."""
        failures = self._startup_failures
        self.cannot_start = (
            f"{failures} workers in a row could not start"
            f"{'' if self.queue is None else f' on {self.queue}'}: "
            f"{last_error or how} (see the worker's output above; FARM_MAX_STARTUP_FAILURES)"
        )
        self._events.record(
            logging.ERROR,
            "worker_died",
            "worker %s died after %.1fs: %s; not replacing it: %s",
            worker.worker_id,
            uptime,
            how,
            self.cannot_start,
            worker_id=worker.worker_id,
        )
        self._failures.append(failure_entry("died", worker.worker_id, None, detail=how))
