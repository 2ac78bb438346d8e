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
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.settings import FarmSettings
from fast_app.farm.supervisor._broker import QueueDepth, SupervisorBroker
from fast_app.farm.supervisor._events import EventLog
from fast_app.farm.supervisor._snapshot import RecentEnds, worker_entries
from fast_app.farm.supervisor._workers import OutputSink, WorkerProcess, describe_exit
from fast_app.farm.supervisor.scaling import FarmLoad, ScalingMemory, ScalingPolicy, decide
from fast_app.farm.telemetry import FarmGauges, record_hard_timeout_kill
from fast_app.farm.worker._tombstones import parse_tombstone

__all__ = ["EXIT_DRAIN_INCOMPLETE", "EXIT_OK", "SnapshotListener", "Supervisor"]

#: Called with each snapshot, on the supervisor's event loop; must not block it.
SnapshotListener = Callable[[dict[str, Any]], None]

logger = logging.getLogger("fast_app.farm.supervisor")

EXIT_OK = 0
EXIT_DRAIN_INCOMPLETE = 1
_TICK_S = 0.2
_HARD_TIMEOUT_MARGIN_S = 0.3  # the worker gets this long to end the job itself
_STARTUP_ALLOWANCE_S = 15.0  # a starting worker imports the app before its first heartbeat
_STABLE_UPTIME_S = 10.0  # a worker that lived this long did not die of a crash loop
_MAX_RESPAWN_DELAY_S = 30.0


class Supervisor:
    """Runs and scales the worker processes of one host.

    Args:
        farm: farm settings (worker counts, intervals, scaling, grace period...).
        queue: queue settings (broker, queue name), passed on to the workers.
        worker_output: receives each line the workers write to stdout or stderr; by
            default they write to the supervisor's own.
    """

    def __init__(
        self, farm: FarmSettings, queue: QueueSettings, *, worker_output: OutputSink | None = None
    ) -> None:
        self.farm = farm
        self.queue = queue
        self._worker_output = worker_output
        self.events = EventLog(logger)
        self._recent = RecentEnds()
        self._listeners: list[SnapshotListener] = []
        self.supervisor_id = farm.supervisor_id or f"{socket.gethostname()}-{os.getpid()}"
        self.min_workers = farm.min_workers
        self.max_workers = farm.max_workers
        self.workers: dict[str, WorkerProcess] = {}
        self.decisions: collections.deque[dict[str, Any]] = collections.deque(maxlen=20)
        self.failures: collections.deque[dict[str, Any]] = collections.deque(maxlen=50)
        self.started_at = time.time()
        self._desired = farm.min_workers
        self._memory = ScalingMemory()
        self._number = 0
        self._stopping = asyncio.Event()
        self._forced = False
        self._paused = False
        self._crash_streak = 0
        self._spawn_not_before = 0.0
        self._next_scale_at = 0.0
        self._next_snapshot_at = 0.0
        self._next_depth_probe_at = 0.0
        self._depth: QueueDepth | None = None
        self._previous_depth: tuple[float, int] | None = None
        self.enqueue_rate = 0.0
        self._dead = self._delayed = 0
        self._broker_warned = False
        self._watchers: set[asyncio.Task[None]] = set()
        self._all_exited = asyncio.Event()
        self._stopped = False
        # The latest snapshot, read by the metric gauges (on their reader's thread).
        self.latest_snapshot: dict[str, Any] | None = None
        # Jobs killed at their hard timeout (by any supervisor): job id -> (worker, expiry).
        # New workers get them at spawn, live ones over their link, so that whichever
        # worker the broker redelivers such a job to settles it instead of running it.
        self._tombstones: dict[str, tuple[str, float]] = {}
        self._broker = SupervisorBroker(
            queue, self.supervisor_id, self.handle_command, self._heard_tombstone
        )

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
        if install_signal_handlers:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.request_stop)
        self._depth = await self._broker.depth()  # fails fast on a broker that is not there
        self._gauges = FarmGauges(self.queue.name, lambda: self.latest_snapshot)
        self.events.record(
            logging.INFO,
            "supervisor_started",
            "supervisor %s started: %d-%d workers on %s",
            self.supervisor_id,
            self.min_workers,
            self.max_workers,
            self.queue.name,
        )
        try:
            while not self._stopping.is_set():
                await self._tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), _TICK_S)
            return await self._shut_down()
        finally:
            self._stopped = True
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
            "supervisor %s: stopping, draining %d workers",
            self.supervisor_id,
            len(self.workers),
        )
        self._stopping.set()

    async def _shut_down(self) -> int:
        grace = self.farm.grace_period_s
        for worker in list(self.workers.values()):
            await worker.drain(grace)
        deadline = time.monotonic() + grace + 2
        clean = await self._wait_for_exits(deadline)
        if not clean:
            for worker in self.workers.values():
                logger.warning("worker %s did not drain in time: SIGTERM", worker.worker_id)
                worker.signal(signal.SIGTERM)
            clean = await self._wait_for_exits(time.monotonic() + 3)
            for worker in self.workers.values():
                worker.kill("did not stop after SIGTERM")
            await self._wait_for_exits(time.monotonic() + 3)
            clean = False
        if self._watchers:
            await asyncio.wait(self._watchers, timeout=3)
        logger.info("supervisor %s stopped%s", self.supervisor_id, "" if clean else " (forced)")
        return EXIT_OK if clean and not self._forced else EXIT_DRAIN_INCOMPLETE

    async def _wait_for_exits(self, deadline: float) -> bool:
        # In slices of a heartbeat interval, with a snapshot after each: a dashboard
        # shows the drain going on.
        while self.workers and (left := deadline - time.monotonic()) > 0:
            self._all_exited.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._all_exited.wait(), min(left, self.farm.heartbeat_interval_s)
                )
            await self._publish_snapshot(wait_s=self.farm.heartbeat_interval_s)
        return not self.workers

    # -- one tick --------------------------------------------------------------------

    async def _tick(self) -> None:
        now = time.monotonic()
        await self._enforce_hard_timeouts()
        self._kill_the_hung(now)
        for worker in self.workers.values():
            if worker.draining and worker.drain_deadline and now > worker.drain_deadline + 2:
                worker.kill("did not drain within the grace period")
        if now >= self._next_scale_at:
            self._next_scale_at = now + self.farm.scale_check_interval_s
            await self._scale(now)
        await self._keep_count(now)
        if now >= self._next_snapshot_at:
            self._next_snapshot_at = now + self.farm.heartbeat_interval_s
            await self._publish_snapshot()

    def _kill_the_hung(self, now: float) -> None:
        silence_limit = self.farm.heartbeat_interval_s * self.farm.heartbeat_tolerance
        for worker in self.workers.values():
            if not worker.alive or worker.kill_reason:
                continue
            limit = silence_limit if worker.heartbeat else silence_limit + _STARTUP_ALLOWANCE_S
            silent_for = now - worker.last_seen
            if silent_for > limit:
                self.events.record(
                    logging.ERROR,
                    "worker_hung",
                    "worker %s (pid %d) silent for %.1fs: hung, killing it; its jobs return "
                    "to the queue",
                    worker.worker_id,
                    worker.pid,
                    silent_for,
                    worker_id=worker.worker_id,
                )
                self._record_failure("hung", worker, None)
                worker.kill(f"hung (no heartbeat for {silent_for:.1f}s)")

    async def _enforce_hard_timeouts(self) -> None:
        wall = time.time()
        for worker in list(self.workers.values()):
            if not worker.alive or worker.kill_reason:
                continue
            for job in worker.in_flight:
                deadline = job.get("hard_deadline")
                if deadline is None or wall < float(deadline) + _HARD_TIMEOUT_MARGIN_S:
                    continue
                job_id, function = str(job.get("id")), str(job.get("function"))
                self.events.record(
                    logging.ERROR,
                    "hard_timeout",
                    "job %s (%s) passed its hard timeout %.1fs ago and worker %s did not "
                    "end it (event loop blocked?): killing the worker",
                    job_id,
                    function,
                    wall - float(deadline),
                    worker.worker_id,
                    job_id=job_id,
                    worker_id=worker.worker_id,
                )
                # First the tombstone, so that no worker runs the job again when the broker
                # redelivers it after the kill: to our workers (and those we spawn next)
                # over their links, to the rest of the farm through the broker.
                await self._remember_tombstone(job_id, worker.worker_id)
                try:
                    await self._broker.publish_tombstone(job_id, function, worker.worker_id)
                except Exception as error:  # kill anyway: the delivery limit still bounds it
                    logger.warning("could not publish the tombstone of job %s: %s", job_id, error)
                await asyncio.sleep(0.05)  # let the links deliver it before the redelivery
                self._record_failure("hard_timeout", worker, job)
                try:
                    record_hard_timeout_kill(
                        self.queue.name,
                        job,
                        worker.worker_id,
                        f"passed its hard timeout {wall - float(deadline):.1f}s ago and worker "
                        f"{worker.worker_id} did not end it: killed by supervisor "
                        f"{self.supervisor_id}",
                    )
                except Exception:  # telemetry never stands in the way of the kill
                    logger.debug("could not record the kill on the job's trace", exc_info=True)
                worker.kill(f"job {job_id} passed its hard timeout")
                break

    async def _remember_tombstone(self, job_id: str, worker_id: str) -> None:
        now = time.monotonic()
        self._tombstones = {k: v for k, v in self._tombstones.items() if v[1] > now}
        if job_id in self._tombstones:
            return
        self._tombstones[job_id] = (worker_id, now + 3600)
        for worker in self.workers.values():
            await worker.send({"command": "tombstone", "job_id": job_id, "worker": worker_id})

    def _heard_tombstone(self, body: bytes) -> None:
        data = parse_tombstone(body)
        if data is not None:
            asyncio.get_running_loop().create_task(
                self._remember_tombstone(data["job_id"], data["worker"])
            )

    async def _scale(self, now: float) -> None:
        try:
            self._depth = await self._broker.depth()
            if now >= self._next_depth_probe_at:
                self._next_depth_probe_at = now + 5 * self.farm.heartbeat_interval_s
                self._dead, self._delayed = await self._broker.dead_and_delayed()
            self._broker_warned = False
        except Exception as error:
            if not self._broker_warned:
                logger.warning(
                    "supervisor %s cannot read the queue depth (%s); not scaling until it can",
                    self.supervisor_id,
                    type(error).__name__,
                )
                self._broker_warned = True
            return
        live = self._live()
        rates = [rate for worker in live if (rate := worker.rate()) is not None and rate > 0]
        self._estimate_enqueue_rate(now, self._depth.ready, sum(rates))
        in_flight = sum(len(worker.in_flight) for worker in live)
        policy = ScalingPolicy(
            min_workers=self.min_workers,
            max_workers=self.max_workers,
            concurrency=self.farm.concurrency,
            scale_up_step=self.farm.scale_up_step,
            scale_down_step=self.farm.scale_down_step,
            cooldown_s=self.farm.scale_cooldown_s,
            target_drain_s=self.farm.target_drain_s,
        )
        load = FarmLoad(
            now=now,
            ready=self._depth.ready,
            unacked=in_flight,
            own_workers=len(live),
            busy_workers=sum(1 for worker in live if worker.in_flight),
            in_flight=in_flight,
            total_consumers=self._depth.consumers,
            jobs_per_second_per_worker=sum(rates) / len(rates) if rates else None,
        )
        decision = decide(policy, load, self._memory)
        self._memory = decision.memory
        if decision.desired_workers != len(live):
            self.events.record(
                logging.INFO,
                "scaled",
                "scaling: %s",
                decision.reason,
                supervisor_id=self.supervisor_id,
            )
            self.decisions.append(
                {
                    "at": time.time(),
                    "from": len(live),
                    "to": decision.desired_workers,
                    "reason": decision.reason,
                }
            )
        self._desired = decision.desired_workers

    def _estimate_enqueue_rate(self, now: float, ready: int, completion_rate: float) -> None:
        """Jobs/s arriving: what the backlog grew by plus what was taken from it.

        An estimate from this supervisor's view (its own workers' completions); the
        dashboard smooths it over snapshots.
        """
        previous = self._previous_depth
        self._previous_depth = (now, ready)
        if previous is not None and now > previous[0]:
            growth = (ready - previous[1]) / (now - previous[0])
            self.enqueue_rate = max(0.0, growth + completion_rate)

    async def _keep_count(self, now: float) -> None:
        if self._stopping.is_set():
            return
        live = self._live()
        missing = self._desired - len(live)
        if missing > 0 and now >= self._spawn_not_before:
            for _ in range(missing):
                await self._spawn()
        elif missing < 0:
            # Shrink by draining idle workers only: never a busy one.
            idle = [w for w in live if w.state == "idle" and not w.in_flight]
            for worker in idle[:-missing]:
                self.events.record(
                    logging.INFO,
                    "worker_draining",
                    "draining idle worker %s (scale down)",
                    worker.worker_id,
                    worker_id=worker.worker_id,
                )
                await worker.drain(self.farm.grace_period_s)

    def _live(self) -> list[WorkerProcess]:
        return [
            w for w in self.workers.values() if w.alive and not w.draining and not w.kill_reason
        ]

    async def _spawn(self) -> None:
        self._number += 1
        worker_id = f"{self.supervisor_id}-w{self._number}"
        worker = await WorkerProcess.spawn(
            worker_id, self._worker_environment(), self._worker_output
        )
        self.workers[worker_id] = worker
        self.events.record(
            logging.INFO,
            "worker_started",
            "worker %s started (pid %d)",
            worker_id,
            worker.pid,
            worker_id=worker_id,
        )
        if self._paused:
            await worker.send({"command": "pause"})
        watcher = asyncio.create_task(self._watch(worker))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch(self, worker: WorkerProcess) -> None:
        code = await worker.wait()
        self._recent.collect(worker)  # its last heartbeat may have ended a few more
        self.workers.pop(worker.worker_id, None)
        if not self.workers:
            self._all_exited.set()
        now = time.monotonic()
        uptime = now - worker.spawned_at
        how = describe_exit(code)
        if worker.kill_reason is not None:
            self.events.record(
                logging.WARNING,
                "worker_killed",
                "worker %s killed: %s",
                worker.worker_id,
                worker.kill_reason,
                worker_id=worker.worker_id,
            )
        elif worker.draining or self._stopping.is_set():
            self.events.record(
                logging.INFO,
                "worker_stopped",
                "worker %s stopped (%s)",
                worker.worker_id,
                how,
                worker_id=worker.worker_id,
            )
        elif code == 3:
            self.events.record(
                logging.WARNING,
                "worker_ended_itself",
                "worker %s %s",
                worker.worker_id,
                how,
                worker_id=worker.worker_id,
            )
            self._record_failure("hard_timeout_self", worker, None)
        else:
            self._crash_streak = self._crash_streak + 1 if uptime < _STABLE_UPTIME_S else 1
            delay = min(_MAX_RESPAWN_DELAY_S, 0.5 * 2 ** (self._crash_streak - 1))
            self._spawn_not_before = now + delay
            last_error = worker.heartbeat.get("last_error")
            self.events.record(
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
            self._record_failure("died", worker, None, detail=how)

    def _record_failure(
        self, kind: str, worker: WorkerProcess, job: dict[str, Any] | None, detail: str = ""
    ) -> None:
        entry: dict[str, Any] = {
            "at": time.time(),
            "kind": kind,
            "worker_id": worker.worker_id,
            "detail": detail,
        }
        if job is not None:
            entry.update(job_id=job.get("id"), function=job.get("function"))
        self.failures.append(entry)

    def _worker_environment(self) -> dict[str, str]:
        environment = dict(os.environ)
        for name, value in self.farm.model_dump().items():
            if (
                name in ("worker_id", "supervisor_fd", "supervisor_id", "tombstones")
                or value is None
            ):
                continue
            text = (
                ",".join(value)
                if isinstance(value, tuple)
                else str(value).lower()
                if isinstance(value, bool)
                else str(value)
            )
            environment[f"FARM_{name.upper()}"] = text
        environment["QUEUE_NAME"] = self.queue.name
        # The broker this supervisor was given, even when not through the environment
        # (a supervisor started in code, as the dashboard's tests do).
        environment["RABBITMQ_URL"] = self.queue.rabbitmq_url.get_secret_value()
        recent = [f"{job}@{worker}" for job, (worker, _) in list(self._tombstones.items())[-1000:]]
        environment["FARM_TOMBSTONES"] = ",".join(recent)
        return environment

    # -- commands and snapshots -----------------------------------------------------

    def handle_command(self, command: dict[str, Any]) -> None:
        """Act on a control message addressed to this supervisor (on its event loop).

        Commands: ``set_limits`` (``min_workers``, ``max_workers``), ``drain_worker`` and
        ``restart_worker`` (``worker_id``), ``pause``, ``resume``, ``shutdown``. Their
        effect shows in the next snapshot, published at the next tick.
        """
        task = asyncio.get_running_loop().create_task(self._handle(command))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _handle(self, command: dict[str, Any]) -> None:
        name = command.get("command")
        self.events.record(
            logging.INFO,
            "command",
            "supervisor %s received command %s",
            self.supervisor_id,
            command,
            supervisor_id=self.supervisor_id,
        )
        if name == "set_limits":
            self._set_limits(command)
        elif name == "drain_worker":
            worker = self.workers.get(str(command.get("worker_id")))
            if worker is not None and not worker.draining:
                # Out of the pool for good: the pool refills only if min_workers or the
                # load asks for it (restart_worker is the one that replaces).
                self._desired = max(self.min_workers, self._desired - 1)
                await worker.drain(self.farm.grace_period_s)
        elif name == "restart_worker":
            worker = self.workers.get(str(command.get("worker_id")))
            if worker is not None and not worker.draining and not self._stopping.is_set():
                await self._spawn()  # the replacement first: the pool never shrinks
                await worker.drain(self.farm.grace_period_s)
        elif name in ("pause", "resume"):
            self._paused = name == "pause"
            for worker in self.workers.values():
                await worker.send({"command": name})
        elif name == "shutdown":
            self.request_stop()
        else:
            logger.warning("unknown command %r", name)
        self._next_snapshot_at = 0.0  # show the effect at the next tick

    def _set_limits(self, command: dict[str, Any]) -> None:
        try:
            low = int(command.get("min_workers", self.min_workers))
            high = int(command.get("max_workers", self.max_workers))
        except (TypeError, ValueError):
            logger.warning("refusing limits %r: not whole numbers", command)
            return
        # The same bounds as FARM_MIN_WORKERS and FARM_MAX_WORKERS.
        if 0 <= low <= high and 1 <= high <= 1024:
            self.min_workers, self.max_workers = low, high
            self._desired = max(low, min(high, self._desired))
            self._next_scale_at = 0.0
        else:
            logger.warning("refusing limits min=%d max=%d", low, high)

    def snapshot(self) -> dict[str, Any]:
        """This supervisor's part of the farm, as published on the events exchange.

        Bounded in size whatever the load: the oldest jobs in flight only (each worker's
        ``in_flight_count`` counts them all), the last few ended jobs and events.
        """
        now = time.monotonic()
        for worker in self.workers.values():
            self._recent.collect(worker)
        workers = worker_entries(self.workers.values(), now)
        depth = self._depth
        return {
            "type": "snapshot",
            "supervisor_id": self.supervisor_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "at": time.time(),
            "started_at": self.started_at,
            "settings": {
                "queue": self.queue.name,
                "min_workers": self.min_workers,
                "max_workers": self.max_workers,
                "concurrency": self.farm.concurrency,
                "heartbeat_interval_s": self.farm.heartbeat_interval_s,
            },
            "desired_workers": self._desired,
            "paused": self._paused,
            "stopping": self._stopping.is_set(),
            "stopped": self._stopped,
            "workers": workers,
            "queue": {
                "ready": None if depth is None else depth.ready,
                "unacked": sum(w["in_flight_count"] for w in workers),
                "consumers": None if depth is None else depth.consumers,
                "dead": self._dead,
                "delayed": self._delayed,
            },
            "completion_rate": sum(w["rate"] or 0.0 for w in workers),
            "enqueue_rate": self.enqueue_rate,
            "decisions": list(self.decisions),
            "failures": list(self.failures)[-20:],
            "recent_jobs": self._recent.as_dict(),
            "events": self.events.recent(),
        }

    async def _publish_snapshot(self, *, wait_s: float | None = None) -> None:
        """Hand a snapshot to the listeners and publish it.

        Args:
            wait_s: give up publishing after this long (while stopping: a broker outage
                must not hold up the drain by a connection timeout each time).
        """
        snapshot = self.latest_snapshot = self.snapshot()
        for listener in self._listeners:
            try:
                listener(snapshot)
            except Exception:  # a listener's bug must not stop the supervisor
                logger.exception("a snapshot listener failed")
        try:
            await asyncio.wait_for(self._broker.publish_snapshot(snapshot), wait_s)
        except Exception:
            logger.debug("could not publish a snapshot", exc_info=True)
