"""The simulated farm's physics (``FarmModel``) and the load profiles run on it (``Scenario``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["FarmModel", "Scenario", "scenarios"]


@dataclass(frozen=True, slots=True)
class FarmModel:
    """The physics of the simulated farm and the timing of its supervisors.

    Attributes:
        step_s: simulated seconds per step (deliveries within a step are exact: a freed
            slot takes the next ready job at the moment its job ends).
        concurrency: slots per worker (prefetch is the same).
        startup_s: seconds from a spawn to the worker consuming (about 0.15 with a
            preloaded template, 1.1 for a fresh interpreter).
        view_delay_s: the age of the broker's and peers' figures, drawn per decision.
        noise: multiplicative noise on the ready and unacked counts a supervisor sees.
        service_spread: a job's service time is uniform in ``mean * (1 ± spread)``.
        heartbeat_interval_s: how often workers report their completions.
        scale_check_interval_s: seconds between one supervisor's decisions.
        scale_up_step: ``ScalingPolicy.scale_up_step``.
        cooldown_s: ``ScalingPolicy.cooldown_s``.
        target_drain_s: ``ScalingPolicy.target_drain_s``.
    """

    step_s: float = 0.1
    concurrency: int = 4
    startup_s: float = 0.15
    view_delay_s: tuple[float, float] = (0.5, 2.0)
    noise: float = 0.2
    service_spread: float = 0.5
    heartbeat_interval_s: float = 1.0
    scale_check_interval_s: float = 1.0
    scale_up_step: int = 2
    cooldown_s: float = 30.0
    target_drain_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Scenario:
    """One load profile on N supervisors.

    Attributes:
        name: as printed.
        supervisors: N.
        min_workers: each supervisor's minimum.
        max_workers: each supervisor's maximum.
        mean_service_s: mean service time of one job.
        duration_s: simulated seconds.
        burst_jobs: jobs arriving at once at ``event_s`` (0: none).
        arrival_rate: steady jobs/s from the start to the end.
        arrival_noise: the steady rate varies by up to this share, redrawn each second.
        event_s: when the burst arrives or the supervisor dies; figures count from it.
        dies: supervisor 0 dies at ``event_s``.
        restart_after_s: the dead supervisor starts again after this long (its service
            manager); ``None``: never.
    """

    name: str
    supervisors: int
    min_workers: int
    max_workers: int
    mean_service_s: float
    duration_s: float
    burst_jobs: int = 0
    arrival_rate: float = 0.0
    arrival_noise: float = 0.0
    event_s: float = 0.0
    dies: bool = False
    restart_after_s: float | None = None

    def need(self, model: FarmModel) -> int:
        """The ideal worker count: ``ceil(work / per-worker throughput)``."""
        throughput = model.concurrency / self.mean_service_s
        if self.burst_jobs:
            return math.ceil(self.burst_jobs / (throughput * model.target_drain_s))
        return math.ceil(self.arrival_rate / throughput)


def scenarios(
    supervisors: int, model: FarmModel | None = None, load_of: int | None = None
) -> list[Scenario]:
    """The three scenarios for N supervisors, load scaled with N (max 8 workers each).

    - burst: 2,000 * N jobs of 50 ms on an idle farm (1 worker each), nothing after;
    - steady: 60 % of the farm's capacity in 1 s jobs, ±30 % each second, for 4 minutes;
    - death: 70 % of capacity; supervisor 0 dies at 90 s (alone, it restarts 5 s later).

    Args:
        supervisors: N.
        model: the farm's physics (its concurrency sizes the loads).
        load_of: size the loads for this many supervisors instead of N, and start each
            supervisor with no worker (``min_workers`` 0): many supervisors on a load
            that a few would serve, the herd case.
    """
    model = model or FarmModel()
    per_worker = model.concurrency / 1.0
    sized_for = supervisors if load_of is None else load_of
    capacity = sized_for * 8 * per_worker
    least = 1 if load_of is None else 0
    return [
        Scenario(
            "burst",
            mean_service_s=0.05,
            duration_s=60,
            burst_jobs=2000 * sized_for,
            event_s=2.0,
            supervisors=supervisors,
            min_workers=least,
            max_workers=8,
        ),
        Scenario(
            "steady",
            mean_service_s=1.0,
            duration_s=240,
            arrival_rate=0.6 * capacity,
            arrival_noise=0.3,
            supervisors=supervisors,
            min_workers=least,
            max_workers=8,
        ),
        Scenario(
            "death",
            mean_service_s=1.0,
            duration_s=180,
            arrival_rate=0.7 * capacity,
            arrival_noise=0.3,
            event_s=90.0,
            dies=True,
            restart_after_s=5.0 if supervisors == 1 else None,
            supervisors=supervisors,
            min_workers=least,
            max_workers=8,
        ),
    ]
