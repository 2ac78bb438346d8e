"""The supervisor: runs worker processes, watches their heartbeats, scales them by depth.

It never runs jobs itself. Each tick (a few times a second) it reaps workers that ended,
kills the hung and those holding a job past its hard deadline, and keeps the number of
live workers at what the scaling policy asks; every interval it publishes a snapshot of
its part of the farm on the events exchange.
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
from typing import Any

from fast_app.core.queue.settings import QueueSettings
from fast_app.farm.settings import FarmSettings
from fast_app.farm.supervisor._broker import QueueDepth, SupervisorBroker
from fast_app.farm.supervisor._workers import WorkerProcess, describe_exit
from fast_app.farm.supervisor.scaling import FarmLoad, ScalingMemory, ScalingPolicy, decide
from fast_app.farm.telemetry import FarmGauges, record_hard_timeout_kill
from fast_app.farm.worker._tombstones import parse_tombstone

__all__ = ["EXIT_DRAIN_INCOMPLETE", "EXIT_OK", "Supervisor"]

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
    """

    def __init__(self, farm: FarmSettings, queue: QueueSettings) -> None:
        self.farm = farm
        self.queue = queue
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

    async def run(self) -> int:
        """Supervise until SIGTERM/SIGINT or a ``shutdown`` command; return the exit code.

        Raises:
            Exception: when the broker cannot be reached at start (the CLI exits 2).
        """
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        self._depth = await self._broker.depth()  # fails fast on a broker that is not there
        self._gauges = FarmGauges(self.queue.name, lambda: self.latest_snapshot)
        logger.info(
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
            await self._broker.close()

    def request_stop(self) -> None:
        """Drain and stop (first call); kill the workers at once (second call)."""
        if self._stopping.is_set():
            self._forced = True
            logger.warning(
                "supervisor %s: second stop request, killing workers", self.supervisor_id
            )
            for worker in self.workers.values():
                worker.kill("forced shutdown")
            return
        logger.info(
            "supervisor %s: stopping, draining %d workers", self.supervisor_id, len(self.workers)
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
        if self.workers:
            self._all_exited.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._all_exited.wait(), max(0.0, deadline - time.monotonic())
                )
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
            await self._publish_snapshot(now)

    def _kill_the_hung(self, now: float) -> None:
        silence_limit = self.farm.heartbeat_interval_s * self.farm.heartbeat_tolerance
        for worker in self.workers.values():
            if not worker.alive or worker.kill_reason:
                continue
            limit = silence_limit if worker.heartbeat else silence_limit + _STARTUP_ALLOWANCE_S
            silent_for = now - worker.last_seen
            if silent_for > limit:
                logger.error(
                    "worker %s (pid %d) silent for %.1fs: hung, killing it; its jobs return "
                    "to the queue",
                    worker.worker_id,
                    worker.pid,
                    silent_for,
                    extra={"worker_id": worker.worker_id},
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
                logger.error(
                    "job %s (%s) passed its hard timeout %.1fs ago and worker %s did not "
                    "end it (event loop blocked?): killing the worker",
                    job_id,
                    function,
                    wall - float(deadline),
                    worker.worker_id,
                    extra={"job_id": job_id, "worker_id": worker.worker_id},
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
            logger.info("scaling: %s", decision.reason, extra={"supervisor_id": self.supervisor_id})
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
                logger.info(
                    "draining idle worker %s (scale down)",
                    worker.worker_id,
                    extra={"worker_id": worker.worker_id},
                )
                await worker.drain(self.farm.grace_period_s)

    def _live(self) -> list[WorkerProcess]:
        return [
            w for w in self.workers.values() if w.alive and not w.draining and not w.kill_reason
        ]

    async def _spawn(self) -> None:
        self._number += 1
        worker_id = f"{self.supervisor_id}-w{self._number}"
        worker = await WorkerProcess.spawn(worker_id, self._worker_environment())
        self.workers[worker_id] = worker
        logger.info(
            "worker %s started (pid %d)", worker_id, worker.pid, extra={"worker_id": worker_id}
        )
        if self._paused:
            await worker.send({"command": "pause"})
        watcher = asyncio.create_task(self._watch(worker))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch(self, worker: WorkerProcess) -> None:
        code = await worker.wait()
        self.workers.pop(worker.worker_id, None)
        if not self.workers:
            self._all_exited.set()
        now = time.monotonic()
        uptime = now - worker.spawned_at
        how = describe_exit(code)
        if worker.kill_reason is not None:
            logger.warning(
                "worker %s killed: %s",
                worker.worker_id,
                worker.kill_reason,
                extra={"worker_id": worker.worker_id},
            )
        elif worker.draining or self._stopping.is_set():
            logger.info(
                "worker %s stopped (%s)",
                worker.worker_id,
                how,
                extra={"worker_id": worker.worker_id},
            )
        elif code == 3:
            logger.warning(
                "worker %s %s", worker.worker_id, how, extra={"worker_id": worker.worker_id}
            )
            self._record_failure("hard_timeout_self", worker, None)
        else:
            self._crash_streak = self._crash_streak + 1 if uptime < _STABLE_UPTIME_S else 1
            delay = min(_MAX_RESPAWN_DELAY_S, 0.5 * 2 ** (self._crash_streak - 1))
            self._spawn_not_before = now + delay
            last_error = worker.heartbeat.get("last_error")
            logger.error(
                "worker %s died unexpectedly after %.1fs: %s%s; replacing it in %.1fs",
                worker.worker_id,
                uptime,
                how,
                f"; last error: {last_error}" if last_error else "",
                delay,
                extra={"worker_id": worker.worker_id},
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
        recent = [f"{job}@{worker}" for job, (worker, _) in list(self._tombstones.items())[-1000:]]
        environment["FARM_TOMBSTONES"] = ",".join(recent)
        return environment

    # -- commands and snapshots -----------------------------------------------------

    def handle_command(self, command: dict[str, Any]) -> None:
        """Act on a control message addressed to this supervisor."""
        asyncio.get_running_loop().create_task(self._handle(command))

    async def _handle(self, command: dict[str, Any]) -> None:
        name = command.get("command")
        logger.info("supervisor %s received command %s", self.supervisor_id, command)
        if name == "set_limits":
            low = int(command.get("min_workers", self.min_workers))
            high = int(command.get("max_workers", self.max_workers))
            if 0 <= low <= high:
                self.min_workers, self.max_workers = low, high
                self._desired = max(low, min(high, self._desired))
                self._next_scale_at = 0.0
            else:
                logger.warning("refusing limits min=%d max=%d", low, high)
        elif name in ("drain_worker", "restart_worker"):
            worker = self.workers.get(str(command.get("worker_id")))
            if worker is not None:
                await worker.drain(self.farm.grace_period_s)
        elif name in ("pause", "resume"):
            self._paused = name == "pause"
            for worker in self.workers.values():
                await worker.send({"command": name})
        elif name == "shutdown":
            self.request_stop()
        else:
            logger.warning("unknown command %r", name)

    def snapshot(self) -> dict[str, Any]:
        """This supervisor's part of the farm, as published on the events exchange."""
        now = time.monotonic()
        workers = []
        for worker in self.workers.values():
            beat = worker.heartbeat
            workers.append(
                {
                    "worker_id": worker.worker_id,
                    "pid": worker.pid,
                    "state": worker.state,
                    "in_flight": worker.in_flight,
                    "counters": beat.get("counters", {}),
                    "rss_bytes": beat.get("rss_bytes"),
                    "uptime_s": now - worker.spawned_at,
                    "heartbeat_age_s": now - worker.last_seen,
                    "rate": worker.rate(),
                }
            )
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
            "workers": workers,
            "queue": {
                "ready": None if depth is None else depth.ready,
                "consumers": None if depth is None else depth.consumers,
                "dead": self._dead,
                "delayed": self._delayed,
            },
            "completion_rate": sum(w["rate"] or 0.0 for w in workers),
            "enqueue_rate": self.enqueue_rate,
            "decisions": list(self.decisions),
            "failures": list(self.failures)[-20:],
        }

    async def _publish_snapshot(self, now: float) -> None:
        snapshot = self.latest_snapshot = self.snapshot()
        try:
            await self._broker.publish_snapshot(snapshot)
        except Exception:
            logger.debug("could not publish a snapshot", exc_info=True)
