"""``run``: one scenario simulated step by step, then measured."""

from __future__ import annotations

import time

from fast_app.farm.testing.scaling_simulation._farm import SimulatedFarm
from fast_app.farm.testing.scaling_simulation.model import FarmModel, Scenario
from fast_app.farm.testing.scaling_simulation.outcome import Outcome, measure

__all__ = ["run"]


def run(scenario: Scenario, model: FarmModel | None = None, seed: int = 1) -> Outcome:
    """Simulate the scenario and measure it.

    Args:
        scenario: the load and the supervisors.
        model: the farm's physics (default ``FarmModel()``).
        seed: of the run's one ``random.Random``: the same seed, the same figures.

    Returns:
        The run's figures.
    """
    model = model or FarmModel()
    began = time.perf_counter()
    farm = SimulatedFarm(scenario, model, seed)
    step, steps = model.step_s, round(scenario.duration_s / model.step_s)
    beat_every = max(1, round(model.heartbeat_interval_s / step))
    rate_factor, died = 1.0, False
    series: list[tuple[float, int, int, int, int]] = []  # time, live, consumers, ready, unacked
    for index in range(steps):
        now = index * step
        if index % round(1 / step) == 0:
            rate_factor = 1 + farm.random.uniform(-1, 1) * scenario.arrival_noise
        arriving = scenario.arrival_rate * rate_factor * step
        arrivals = int(arriving + farm.random.random())  # rounded up with its fraction's odds
        if scenario.burst_jobs and index == round(scenario.event_s / step):
            arrivals += scenario.burst_jobs
        farm.ready += arrivals
        farm.enqueued += arrivals
        if scenario.dies and not died and now >= scenario.event_s:
            farm.kill(farm.supervisors[0], now)
            died = True
        for supervisor in farm.supervisors:
            if supervisor.restart_at is not None and now >= supervisor.restart_at:
                farm.restart(supervisor, now)
        farm.start_workers(now)
        farm.deliver(now)
        farm.work_until(now + step)
        if index % beat_every == 0:
            farm.heartbeat(now)
        farm.history.append((farm.ready, farm.unacked, farm.consumers))
        for supervisor in farm.supervisors:
            if supervisor.alive and now >= supervisor.next_tick_at:
                farm.tick(supervisor, now)
        series.append((now, farm.live, farm.consumers, farm.ready, farm.unacked))
    return measure(scenario, model, farm, series, time.perf_counter() - began)
