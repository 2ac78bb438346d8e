"""The supervisor: runs worker processes, watches their heartbeats, scales them by depth.

It never runs jobs itself. Each tick (a few times a second) it reaps workers that ended,
kills the hung and those holding a job past its hard deadline, and keeps the number of
live workers at what the scaling policy asks; every interval it publishes a snapshot of
its part of the farm on the events exchange (and hands it to in-process listeners, such
as the dashboard of ``fast-app work --tui``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import msgspec

from fast_app.core.queue.amqp import Topology, install_tolerant_decoding
from fast_app.core.queue.settings import QueueSettings
from fast_app.farm._wording import counted
from fast_app.farm.messages import Command, Refusals, Snapshot, describe_command
from fast_app.farm.messages.snapshots import (
    Decision,
    Failure,
    QueueFigures,
    SnapshotSettings,
)
from fast_app.farm.settings import FarmSettings
from fast_app.farm.supervisor._broker import SupervisorBroker
from fast_app.farm.supervisor._commands import carry_out
from fast_app.farm.supervisor._events import EventLog
from fast_app.farm.supervisor._hard_timeout_kills import FarmTombstones, HardTimeoutEnforcer
from fast_app.farm.supervisor._job_figures import JobFigures
from fast_app.farm.supervisor._peers import PeerLoads
from fast_app.farm.supervisor._pool import WorkerPool
from fast_app.farm.supervisor._pools import QueuePools
from fast_app.farm.supervisor._scaling_feed import QueueFeed
from fast_app.farm.supervisor._snapshot import (
    RecentJobEnds,
    waiting_counts,
    waiting_jobs,
    worker_entries,
)
from fast_app.farm.supervisor._workers import (
    OutputSink,
    WorkerProcess,
    template_environment,
    worker_environment,
)
from fast_app.farm.supervisor.balancing import (
    BalanceMemory,
    BalancePolicy,
    QueueLimits,
    balance,
)
from fast_app.farm.telemetry import FarmGauges
from fast_app.farm.template import WorkerTemplate

__all__ = [
    "EXIT_DRAIN_INCOMPLETE",
    "EXIT_OK",
    "EXIT_WORKERS_CANNOT_START",
    "SnapshotListener",
    "Supervisor",
]

#: Called with each snapshot, on the supervisor's event loop; must not block it.
SnapshotListener = Callable[[dict[str, Any]], None]

logger = logging.getLogger("fast_app.farm.supervisor")

EXIT_OK = 0
#: Jobs were still running when the grace period ended (they return to the queue), or
#: workers had to be killed.
EXIT_DRAIN_INCOMPLETE = 1
#: ``FARM_MAX_STARTUP_FAILURES`` workers in a row could not start; the supervisor gave up.
EXIT_WORKERS_CANNOT_START = 3
_TICK_S = 0.2
_HOST = socket.gethostname()


class Supervisor:
    """Runs and scales the worker processes of one host, a pool per queue it serves.

    Args:
        farm: farm settings (worker counts, queues and their limits, intervals, scaling,
            grace period...).
        queue: queue settings (broker, the farm's queue name), passed on to the workers.
        worker_output: receives each line the workers write to stdout or stderr; by
            default they write to the supervisor's own.
    """

    def __init__(
        self, farm: FarmSettings, queue: QueueSettings, *, worker_output: OutputSink | None = None
    ) -> None:
        self.farm = farm
        self.queue = queue
        self.events = EventLog(logger)
        #: Messages refused at this supervisor's edges (heartbeats, commands, snapshots...).
        self.refusals = Refusals(logger)
        self._recent = RecentJobEnds()
        self._listeners: list[SnapshotListener] = []
        self.supervisor_id = farm.supervisor_id or f"{socket.gethostname()}-{os.getpid()}"
        self.decisions: collections.deque[dict[str, Any]] = collections.deque(maxlen=20)
        self.failures: collections.deque[Failure] = collections.deque(maxlen=50)
        self.started_at = time.time()
        self._job_figures = JobFigures(queue.name, self.started_at)
        self._stopping = asyncio.Event()
        self._forced = False
        self._cannot_start: str | None = None
        self._held: set[str] = set()  # pools held at their count while paused
        self._next_scale_at = 0.0
        self._next_snapshot_at = 0.0
        self._command_tasks: set[asyncio.Task[None]] = set()
        self._stopped = False
        # The latest snapshot, read by the metric gauges (on their reader's thread).
        self.latest_snapshot: dict[str, Any] | None = None
        numbers = itertools.count(1)  # worker ids stay unique across the pools
        #: The process workers are forked from (``FARM_WORKER_START=template``).
        self.template = (
            WorkerTemplate(
                imports=farm.imports,
                environment=lambda: template_environment(farm, queue),
                events=self.events,
                refusals=self.refusals,
                output=worker_output,
            )
            if farm.worker_start == "template"
            else None
        )
        self._pools = QueuePools(
            {
                pool.queue: WorkerPool(
                    supervisor_id=self.supervisor_id,
                    farm=farm,
                    environment=self._environment_for(pool.queue),
                    output=worker_output,
                    events=self.events,
                    failures=self.failures,
                    recent=self._recent,
                    figures=self._job_figures,
                    stopping=self._stopping,
                    refusals=self.refusals,
                    queue=pool.queue,
                    limits=(pool.min_workers or 0, pool.max_workers or 1),
                    numbers=numbers,
                    template=self.template,
                )
                for pool in farm.queue_pools(queue.name)
            },
            max_workers=farm.max_workers,
        )
        self._tombstones = FarmTombstones(self._pools.workers)
        self._peers = PeerLoads(self.supervisor_id, 3 * farm.heartbeat_interval_s)
        farm_topology = Topology.from_settings(queue)
        topologies = {name: Topology.from_settings(queue, name) for name in self._pools.pools}
        self._broker = SupervisorBroker(
            queue,
            self.supervisor_id,
            self.handle_command,
            self._tombstones.heard,
            lambda snapshot: self._peers.heard(snapshot, time.monotonic()),
            refusals=self.refusals,
            served=tuple(t for t in topologies.values() if t != farm_topology),
        )
        self._hard_timeouts = HardTimeoutEnforcer(
            supervisor_id=self.supervisor_id,
            queue_name=queue.name,
            workers=self._pools.workers,
            tombstones=self._tombstones,
            broker=self._broker,
            events=self.events,
            failures=self.failures,
            figures=self._job_figures,
        )
        self._feeds = {
            name: QueueFeed(
                supervisor_id=self.supervisor_id,
                farm=farm,
                broker=self._broker,
                topology=topologies[name],
                pool=pool,
                peers=self._peers,
            )
            for name, pool in self._pools.pools.items()
        }
        self._balance_memory = BalanceMemory()

    @property
    def workers(self) -> MutableMapping[str, WorkerProcess]:
        """Its worker processes not reaped yet, by id (of every queue's pool)."""
        return self._pools.workers

    @property
    def queues(self) -> dict[str, WorkerPool]:
        """Each queue it serves, with its pool."""
        return dict(self._pools.pools)

    @property
    def min_workers(self) -> int:
        """The fewest workers it keeps: the sum of its pools' minimums (``set_limits``
        changes them)."""
        return self._pools.min_workers

    @property
    def max_workers(self) -> int:
        """The most workers it keeps, all pools together (``set_limits`` changes it)."""
        return self._pools.max_workers

    @property
    def enqueue_rate(self) -> float:
        """Jobs/s arriving on its queues, as estimated at the latest scaling check."""
        return sum(feed.enqueue_rate for feed in self._feeds.values())

    # -- lifecycle -----------------------------------------------------------------

    async def run(self, *, install_signal_handlers: bool = True) -> int:
        """Supervise until SIGTERM/SIGINT or a ``shutdown`` command; return the exit code.

        Args:
            install_signal_handlers: stop on SIGTERM/SIGINT. Off when the supervisor runs
                in a thread of a process that handles signals itself (the dashboard calls
                ``request_stop``).

        Raises:
            Exception: when the broker cannot be reached at start (the CLI exits 2).
        """
        install_tolerant_decoding()
        if install_signal_handlers:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.request_stop)
        # Fails fast on a broker that is not there.
        for feed in self._feeds.values():
            feed.depth = await self._broker.depth(feed.topology)
        if self.template is not None:
            # It imports while the supervisor starts; the first spawns wait for it.
            await self.template.start()
        self._gauges = FarmGauges(self.queue.name, lambda: self.latest_snapshot)
        self.events.record(
            logging.INFO,
            "supervisor_started",
            "supervisor %s started: %d-%d workers on %s",
            self.supervisor_id,
            self.min_workers,
            self.max_workers,
            ", ".join(
                f"{name} ({pool.min_workers}-{pool.max_workers})"
                for name, pool in self._pools.pools.items()
            )
            if len(self._pools.pools) > 1
            else self.queue.name,
        )
        try:
            while not self._stopping.is_set():
                await self._tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), _TICK_S)
            return await self._shut_down()
        finally:
            self._stopped = True
            if self.template is not None:
                await self.template.close()
            await self._publish_snapshot(wait_s=1.0)  # the last one says it stopped
            await self._broker.close()

    def add_snapshot_listener(self, listener: SnapshotListener) -> None:
        """Also hand each snapshot to ``listener`` (on this supervisor's event loop)."""
        self._listeners.append(listener)

    @property
    def stopping(self) -> bool:
        """Whether it is draining its workers to stop."""
        return self._stopping.is_set()

    def request_stop(self) -> None:
        """Drain and stop (first call); kill the workers at once (second call)."""
        if self._stopping.is_set():
            self._forced = True
            self.events.record(
                logging.WARNING,
                "stopping",
                "supervisor %s: second stop request, killing workers",
                self.supervisor_id,
            )
            for worker in self.workers.values():
                worker.kill("forced shutdown")
            return
        self.events.record(
            logging.INFO,
            "stopping",
            "supervisor %s: stopping, draining %s",
            self.supervisor_id,
            counted(len(self.workers), "worker"),
        )
        self._stopping.set()

    async def _shut_down(self) -> int:
        grace = self.farm.grace_period_s
        grace_ends = time.monotonic() + grace
        for worker in list(self.workers.values()):
            await worker.drain(grace)
        clean = await self._wait_for_exits(grace_ends)
        # A worker abandons what still runs at the end of its grace period and exits by
        # itself, cleanly: its jobs return to the queue, which the exit code must say.
        outlived = sum(worker.in_flight_count for worker in self.workers.values())
        if outlived:
            logger.warning(
                "supervisor %s: %s still running when the %gs grace period ended; they "
                "return to the queue",
                self.supervisor_id,
                counted(outlived, "job"),
                grace,
            )
        if not clean:
            clean = await self._wait_for_exits(grace_ends + 2)
        if not clean:
            for worker in self.workers.values():
                logger.warning("worker %s did not drain in time: SIGTERM", worker.worker_id)
                worker.signal(signal.SIGTERM)
            clean = await self._wait_for_exits(time.monotonic() + 3)
            for worker in self.workers.values():
                worker.kill("did not stop after SIGTERM")
            await self._wait_for_exits(time.monotonic() + 3)
            clean = False
        pending = self._pools.watchers | self._command_tasks
        if pending:
            await asyncio.wait(pending, timeout=3)
        logger.info("supervisor %s stopped%s", self.supervisor_id, "" if clean else " (forced)")
        if self._cannot_start is not None:
            return EXIT_WORKERS_CANNOT_START
        return EXIT_OK if clean and not outlived and not self._forced else EXIT_DRAIN_INCOMPLETE

    async def _wait_for_exits(self, deadline: float) -> bool:
        # In slices of a heartbeat interval, with a snapshot after each: a dashboard
        # shows the drain going on.
        while self.workers and (left := deadline - time.monotonic()) > 0:
            await self._pools.wait_until_empty(min(left, self.farm.heartbeat_interval_s))
            if not self.workers or time.monotonic() >= deadline:
                # Judged at the deadline, not one publish later: a worker that abandons
                # its jobs at the end of its grace period (which began as ours did) and
                # exits at once must still count as having outlived it.
                break
            await self._publish_snapshot(wait_s=self.farm.heartbeat_interval_s)
        return not self.workers

    # -- one tick --------------------------------------------------------------------

    async def _tick(self) -> None:
        try:
            await self._tick_once()
        except Exception:
            # A tick's failure is one bug's, not a reason to leave the workers unwatched:
            # the next tick tries again (a lost broker is handled inside each part).
            logger.exception("supervisor %s: a tick failed", self.supervisor_id)

    async def _tick_once(self) -> None:
        now = time.monotonic()
        await self._hard_timeouts.enforce()
        for pool in self._pools.pools.values():
            pool.kill_the_hung(now)
            pool.kill_the_slow_to_drain(now)
        for feed in self._feeds.values():
            feed.collect_waits(now)
        wall = time.time()
        for worker in self.workers.values():
            self._job_figures.collect(worker, wall)
        if now >= self._next_scale_at:
            self._next_scale_at = now + self.farm.scale_check_interval_s
            await self._rebalance(now)
        for pool in self._pools.pools.values():
            await pool.keep_count(now)
        self._give_up_if_workers_cannot_start()
        if now >= self._next_snapshot_at:
            self._next_snapshot_at = now + self.farm.heartbeat_interval_s
            await self._publish_snapshot()

    def _give_up_if_workers_cannot_start(self) -> None:
        """Stop (exit code 3) when a pool gave up on workers that cannot start."""
        if self._cannot_start is not None:
            return
        reason = next((p.cannot_start for p in self._pools.pools.values() if p.cannot_start), None)
        if reason is None:
            return
        self._cannot_start = reason
        self.events.record(
            logging.CRITICAL,
            "stopping",
            "supervisor %s gives up: %s",
            self.supervisor_id,
            reason,
            supervisor_id=self.supervisor_id,
        )
        self._stopping.set()

    async def _rebalance(self, now: float) -> None:
        """Ask the balancing policy how many workers each queue's pool should run."""
        loads = {}
        for name, feed in self._feeds.items():
            load = await feed.load(now)
            if load is not None:
                loads[name] = load
        if not loads:
            return
        farm = self.farm
        pools = self._pools.pools
        policy = BalancePolicy(
            max_workers=self._pools.max_workers,
            queues={
                name: QueueLimits(pool.min_workers, pool.max_workers)
                for name, pool in pools.items()
            },
            concurrency=farm.concurrency,
            scale_up_step=farm.scale_up_step,
            scale_down_step=farm.scale_down_step,
            cooldown_s=farm.scale_cooldown_s,
            target_clear_s=farm.target_drain_s,
        )
        waits = {
            name: figures.p50_s
            for name, feed in self._feeds.items()
            if (figures := feed.waits.figures(now)).p50_s is not None
        }
        decision = balance(policy, loads, self._balance_memory, waits)
        paused = self._pools.paused
        if not paused:
            # Paused, the policy's memory stays as it was: holding is not its decision.
            self._balance_memory = decision.memory
        several = len(pools) > 1
        for name, wanted in decision.desired.items():
            pool, own = pools[name], decision.own[name]
            desired, reason = wanted, decision.reasons[name]
            if paused and wanted > own:
                # A paused farm takes no jobs: more workers would only sit paused.
                desired = max(own, pool.min_workers)
                pool.desired = desired
                if name in self._held:
                    continue  # said when the hold began
                self._held.add(name)
                reason = f"paused: holding at {desired}, not scaling {own}→{wanted} ({reason})"
            else:
                self._held.discard(name)
                pool.desired = desired
                if desired == own:
                    continue
            reason = f"{name}: {reason}" if several else reason
            self.events.record(
                logging.INFO, "scaled", "scaling: %s", reason, supervisor_id=self.supervisor_id
            )
            self.decisions.append({"at": time.time(), "from": own, "to": desired, "reason": reason})

    def _environment_for(self, worker_queue: str) -> Callable[[], dict[str, str]]:
        def environment() -> dict[str, str]:
            return worker_environment(
                self.farm, self.queue, self._tombstones.latest(), worker_queue
            )

        return environment

    # -- commands and snapshots -----------------------------------------------------

    def handle_command(self, command: Command) -> None:
        """Act on a control message addressed to this supervisor (on its event loop).

        Commands: ``set_limits`` (``min_workers``, ``max_workers``), ``drain_worker`` and
        ``restart_worker`` (``worker_id``), ``pause``, ``resume``, ``shutdown``,
        ``cancel_job`` (``job_id``). Their
        effect shows in the next snapshot, published at the next tick.
        """
        task = asyncio.get_running_loop().create_task(self._handle(command))
        self._command_tasks.add(task)
        task.add_done_callback(self._command_tasks.discard)

    async def _handle(self, command: Command) -> None:
        self.events.record(
            logging.INFO,
            "command",
            "supervisor %s received command %s",
            self.supervisor_id,
            describe_command(command),
            supervisor_id=self.supervisor_id,
        )
        try:
            limits_changed = await carry_out(
                command,
                self._pools,
                grace_period_s=self.farm.grace_period_s,
                stopping=self._stopping,
                request_stop=self.request_stop,
                events=self.events,
            )
        except Exception:  # a command's failure (a spawn that failed) ends only itself
            logger.exception("supervisor %s: carrying out a command failed", self.supervisor_id)
            return
        if limits_changed:
            self._next_scale_at = 0.0
        self._next_snapshot_at = 0.0  # show the effect at the next tick

    def snapshot(self) -> Snapshot:
        """This supervisor's part of the farm, as published on the events exchange.

        Bounded in size whatever the load: the oldest jobs in flight only (each worker's
        ``in_flight_count`` counts them all), the last few ended jobs and events.
        """
        now, wall = time.monotonic(), time.time()
        for worker in self.workers.values():
            self._recent.collect(worker)
            self._job_figures.collect(worker, wall)
        workers = worker_entries(self.workers.values(), now)
        queues = []
        first = next(iter(self._feeds))
        for name, feed in self._feeds.items():
            mine = [w for w in workers if (w.queue or first) == name]
            queues.append(
                feed.entry(
                    now,
                    unacked=sum(w.in_flight_count for w in mine),
                    completion_rate=sum(w.rate or 0.0 for w in mine),
                )
            )
        return Snapshot(
            supervisor_id=self.supervisor_id,
            host=_HOST,
            pid=os.getpid(),
            at=wall,
            started_at=self.started_at,
            settings=SnapshotSettings(
                queue=self.queue.name,
                min_workers=self.min_workers,
                max_workers=self.max_workers,
                concurrency=self.farm.concurrency,
                heartbeat_interval_s=self.farm.heartbeat_interval_s,
            ),
            desired_workers=self._pools.desired,
            paused=self._pools.paused,
            stopping=self._stopping.is_set(),
            stopped=self._stopped,
            workers=workers,
            queue=_totals([entry.figures for entry in queues]),
            completion_rate=sum(w.rate or 0.0 for w in workers),
            enqueue_rate=self.enqueue_rate,
            decisions=[msgspec.convert(decision, Decision) for decision in self.decisions],
            failures=list(self.failures)[-20:],
            recent_jobs=self._recent.as_message(),
            events=self.events.recent(),
            refused=self.refusals.as_dict(),
            queues=queues,
            functions=self._job_figures.functions(wall),
            history=self._job_figures.history(wall),
            waiting=waiting_counts(self.workers.values()),
            waiting_jobs=waiting_jobs(self.workers.values()),
        )

    async def _publish_snapshot(self, *, wait_s: float | None = None) -> None:
        """Hand a snapshot to the listeners and publish it.

        Args:
            wait_s: give up publishing after this long (while stopping: a broker outage
                must not hold up the drain by a connection timeout each time).
        """
        snapshot = self.snapshot()
        described = self.latest_snapshot = msgspec.to_builtins(snapshot)
        for listener in self._listeners:
            try:
                listener(described)
            except Exception:  # a listener's bug must not stop the supervisor
                logger.exception("a snapshot listener failed")
        try:
            await asyncio.wait_for(self._broker.publish_snapshot(snapshot), wait_s)
        except Exception:
            logger.debug("could not publish a snapshot", exc_info=True)


def _totals(figures: list[QueueFigures]) -> QueueFigures:
    """Every queue's figures added up; a figure any queue does not know is unknown."""

    def total(values: list[int | None]) -> int | None:
        return None if any(value is None for value in values) else sum(v or 0 for v in values)

    return QueueFigures(
        ready=total([f.ready for f in figures]),
        unacked=sum(f.unacked for f in figures),
        consumers=total([f.consumers for f in figures]),
        dead=total([f.dead for f in figures]),
        delayed=total([f.delayed for f in figures]),
        next_due_within_s=min(
            (f.next_due_within_s for f in figures if f.next_due_within_s is not None),
            default=None,
        ),
    )
