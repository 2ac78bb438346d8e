"""The simulator's state: the queue, the workers and the supervisors, step by step."""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field

from fast_app.farm.supervisor.scaling import FarmLoad, ScalingMemory, ScalingPolicy, decide
from fast_app.farm.testing.scaling_simulation.model import FarmModel, Scenario

__all__ = ["SimulatedFarm"]

# How often a supervisor's pool spawns or drains toward its desired count (runtime._TICK_S).
_KEEP_COUNT_S = 0.2


@dataclass(slots=True, eq=False)
class _Worker:
    number: int
    owner: int
    consuming_at: float
    consuming: bool = False
    draining: bool = False
    alive: bool = True
    in_flight: int = 0
    completed: int = 0
    idle_at_beat: bool = False
    marks: deque[tuple[float, int]] = field(default_factory=deque)

    def rate(self) -> float | None:
        # WorkerProcess.rate: completions between the oldest and newest heartbeat marks.
        if len(self.marks) < 2:
            return None
        (first_at, first), (last_at, last) = self.marks[0], self.marks[-1]
        return (last - first) / (last_at - first_at) if last_at > first_at else None


@dataclass(slots=True)
class _Supervisor:
    number: int
    policy: ScalingPolicy
    next_tick_at: float
    next_decision_at: float
    alive: bool = True
    restart_at: float | None = None
    died_at: float | None = None
    desired: int = 0
    memory: ScalingMemory = field(default_factory=ScalingMemory)
    workers: list[_Worker] = field(default_factory=list)


class SimulatedFarm:
    """The queue, the workers and the supervisors while a scenario runs."""

    def __init__(self, scenario: Scenario, model: FarmModel, seed: int) -> None:
        self.scenario, self.model = scenario, model
        self.random = random.Random(seed)
        # The shares' draws apart: the load and the views stay those of the same seed.
        self.share_draws = random.Random(seed + 1_000_003)
        self.ready = self.unacked = self.consumers = self.live = 0
        self.enqueued = self.completed = self.decisions = 0
        self.free: dict[int, _Worker] = {}  # consumers with a free slot, in delivery order
        self.events: list[tuple[float, int, _Worker]] = []  # job ends
        self.starting: list[tuple[float, int, _Worker]] = []
        self.sequence = 0
        lag_steps = math.ceil(model.view_delay_s[1] / model.step_s) + 2
        self.history: deque[tuple[int, int, int]] = deque(maxlen=lag_steps)
        policy = ScalingPolicy(
            min_workers=scenario.min_workers,
            max_workers=scenario.max_workers,
            concurrency=model.concurrency,
            scale_up_step=model.scale_up_step,
            cooldown_s=model.cooldown_s,
            target_drain_s=model.target_drain_s,
        )
        self.supervisors = []
        for number in range(scenario.supervisors):
            phase = self.random.uniform(0, model.scale_check_interval_s)
            supervisor = _Supervisor(number, policy, phase % _KEEP_COUNT_S, phase)
            self.supervisors.append(supervisor)
            self.restart(supervisor, 0.0, ready=True)

    # -- the queue ------------------------------------------------------------------

    def _service_s(self) -> float:
        spread = self.model.service_spread
        return self.scenario.mean_service_s * self.random.uniform(1 - spread, 1 + spread)

    def _deliver_one(self, worker: _Worker, now: float) -> None:
        self.ready -= 1
        self.unacked += 1
        worker.in_flight += 1
        self.sequence += 1
        heapq.heappush(self.events, (now + self._service_s(), self.sequence, worker))

    def deliver(self, now: float) -> None:
        """Hand ready jobs round-robin to the consumers with a free slot."""
        while self.ready and self.free:
            worker = self.free.pop(next(iter(self.free)))
            self._deliver_one(worker, now)
            if worker.in_flight < self.model.concurrency:
                self.free[worker.number] = worker  # to the back of the round

    def work_until(self, until: float) -> None:
        """End the jobs due by ``until``; each freed slot takes a ready job at once."""
        while self.events and self.events[0][0] <= until:
            ended_at, _, worker = heapq.heappop(self.events)
            if not worker.alive:
                continue  # its jobs went back to the queue when it died
            worker.in_flight -= 1
            worker.completed += 1
            self.unacked -= 1
            self.completed += 1
            if worker.draining:
                if not worker.in_flight:
                    self._end(worker)
            elif self.ready:
                self._deliver_one(worker, ended_at)
            else:
                self.free[worker.number] = worker

    # -- workers --------------------------------------------------------------------

    def _spawn(self, supervisor: _Supervisor, now: float, ready: bool = False) -> None:
        self.sequence += 1
        start = 0.0 if ready else self.model.startup_s * self.random.uniform(0.8, 1.2)
        worker = _Worker(self.sequence, supervisor.number, now + start)
        supervisor.workers.append(worker)
        self.live += 1
        heapq.heappush(self.starting, (worker.consuming_at, worker.number, worker))

    def start_workers(self, now: float) -> None:
        """Make the workers whose start-up is over consumers."""
        while self.starting and self.starting[0][0] <= now:
            worker = heapq.heappop(self.starting)[2]
            if worker.alive and not worker.draining:
                worker.consuming = True
                worker.marks.append((now, 0))
                self.consumers += 1
                self.free[worker.number] = worker

    def _drain(self, worker: _Worker) -> None:
        worker.draining = True
        self.live -= 1
        if worker.consuming:
            self.consumers -= 1
            self.free.pop(worker.number, None)
        if not worker.in_flight:
            self._end(worker)

    def _end(self, worker: _Worker) -> None:
        worker.alive = False
        self.supervisors[worker.owner].workers.remove(worker)

    def heartbeat(self, now: float) -> None:
        """Every worker reports its completions (the rate's marks over the last 10 s)."""
        for supervisor in self.supervisors:
            for worker in supervisor.workers:
                if worker.consuming:
                    worker.marks.append((now, worker.completed))
                    worker.idle_at_beat = not worker.in_flight
                    while len(worker.marks) > 2 and worker.marks[0][0] < now - 10.0:
                        worker.marks.popleft()

    # -- supervisors ----------------------------------------------------------------

    def restart(self, supervisor: _Supervisor, now: float, ready: bool = False) -> None:
        supervisor.alive, supervisor.restart_at = True, None
        supervisor.memory, supervisor.desired = ScalingMemory(), supervisor.policy.min_workers
        for _ in range(supervisor.desired):
            self._spawn(supervisor, now, ready)

    def kill(self, supervisor: _Supervisor, now: float) -> None:
        """The supervisor and its workers vanish; the broker requeues their jobs."""
        supervisor.alive, supervisor.died_at = False, now
        for worker in supervisor.workers:
            worker.alive = False
            self.ready += worker.in_flight
            self.unacked -= worker.in_flight
            if not worker.draining:
                self.live -= 1
                if worker.consuming:
                    self.consumers -= 1
                    self.free.pop(worker.number, None)
        supervisor.workers = []
        if self.scenario.restart_after_s is not None:
            supervisor.restart_at = now + self.scenario.restart_after_s

    def tick(self, supervisor: _Supervisor, now: float) -> None:
        """One supervisor tick: maybe a decision, then spawn or drain toward it."""
        model = self.model
        supervisor.next_tick_at += _KEEP_COUNT_S
        live = [w for w in supervisor.workers if not w.draining]
        if now >= supervisor.next_decision_at:
            supervisor.next_decision_at += model.scale_check_interval_s
            self._decide(supervisor, live, now)
        missing = supervisor.desired - len(live)
        for _ in range(missing):
            self._spawn(supervisor, now)
        if missing < 0:
            # keep_count drains only the workers whose last heartbeat said idle.
            idle = [w for w in live if w.consuming and w.idle_at_beat]
            for worker in idle[:-missing]:
                self._drain(worker)

    def _decide(self, supervisor: _Supervisor, live: list[_Worker], now: float) -> None:
        model = self.model
        delay = self.random.uniform(*model.view_delay_s)
        lag = min(len(self.history) - 1, round(delay / model.step_s))
        ready, unacked, consumers = self.history[-1 - lag]
        rates = [rate for w in live if (rate := w.rate()) is not None and rate > 0]
        load = FarmLoad(
            now=now,
            ready=self._noisy(ready),
            unacked=self._noisy(unacked),
            own_workers=len(live),
            busy_workers=sum(1 for w in live if w.in_flight),
            in_flight=sum(w.in_flight for w in live),
            total_consumers=consumers,
            jobs_per_second_per_worker=sum(rates) / len(rates) if rates else None,
            own_starting=sum(1 for w in live if not w.consuming),
            peer_supervisors=self._peers_heard(supervisor, now),
            share_draw=self.share_draws.random(),
        )
        decision = decide(supervisor.policy, load, supervisor.memory)
        supervisor.memory, supervisor.desired = decision.memory, decision.desired_workers
        self.decisions += 1

    def _peers_heard(self, supervisor: _Supervisor, now: float) -> int:
        """The other supervisors whose snapshots arrived lately: the live ones, and the
        dead ones until 3 heartbeats (3 s) have passed without a snapshot from them."""
        return sum(
            1
            for other in self.supervisors
            if other is not supervisor
            and (other.alive or (other.died_at is not None and now - other.died_at <= 3.0))
        )

    def _noisy(self, count: int) -> int:
        noise = self.model.noise
        return round(count * self.random.uniform(1 - noise, 1 + noise))
