"""The bounds a run must meet (``bounds``) and the ones it broke (``check``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fast_app.farm.testing.scaling_simulation.model import FarmModel, Scenario
from fast_app.farm.testing.scaling_simulation.outcome import Outcome

__all__ = ["Bounds", "bounds", "check", "seconds"]

# The over-shoot the runs stay within: the policy keeps a supervisor's workers while the
# jobs in flight fill more than 75 % of one worker fewer, at 8 workers 66 % of the slots,
# so it holds up to 1 / 0.66 = 1.52 times the need; observed at most 1.5.
_HELD_BAND = 1.6


@dataclass(frozen=True, slots=True)
class Bounds:
    """What a run must satisfy (see the package's docstring for why).

    Attributes:
        peak: most live workers at once.
        reach_s: longest time to reach the need (``None``: within the run).
        drain_s: longest time to empty the ready backlog (``None``: within the run).
        max_ready: largest ready backlog after the event.
        direction_changes: most reversals after convergence.
        regrowth: largest rise following a fall after convergence.
    """

    peak: int
    reach_s: float | None
    drain_s: float | None
    max_ready: int
    direction_changes: int
    regrowth: int


def bounds(scenario: Scenario, model: FarmModel | None = None) -> Bounds:
    """The bounds a run of ``scenario`` must meet."""
    model = model or FarmModel()
    n, step, tick = scenario.supervisors, model.scale_up_step, model.scale_check_interval_s
    need = scenario.need(model)
    blind_s = model.view_delay_s[1] + model.startup_s
    one_herd = step * math.ceil(blind_s / tick + 1)
    reach_s = drain_s = None
    if not scenario.arrival_rate:
        ramp_s = math.ceil(max(0, need - n * scenario.min_workers) / (n * step)) * tick
        reach_s = 2 * (ramp_s + blind_s + tick)
        drain_s = reach_s + 2 * model.target_drain_s
    # A steady load grows the backlog until it takes target_drain_s to work off (seen
    # through the noise), plus what arrives while the added workers are still blind.
    outage_s = scenario.restart_after_s or 0.0
    waiting_s = (1 + model.noise) * model.target_drain_s + blind_s + tick + outage_s
    peak_rate = scenario.arrival_rate * (1 + scenario.arrival_noise)
    requeued = scenario.max_workers * model.concurrency if scenario.dies else 0
    # With peers and no measured rate, each supervisor without a worker starts one, a
    # probe, whatever the load: the one herd left, a worker per supervisor at most.
    probes = n if n > 1 and scenario.min_workers == 0 else 0
    return Bounds(
        peak=min(n * scenario.max_workers, math.ceil(_HELD_BAND * need) + one_herd + probes),
        reach_s=reach_s,
        drain_s=drain_s,
        max_ready=scenario.burst_jobs + requeued + math.ceil(peak_rate * waiting_s),
        direction_changes=n,
        regrowth=n * step,
    )


def check(outcome: Outcome, model: FarmModel | None = None) -> list[str]:
    """The bounds the run broke, one line each (empty: all hold)."""
    limit = bounds(outcome.scenario, model)
    broken = []
    if outcome.lost:
        broken.append(f"{outcome.lost} jobs lost")
    if outcome.peak > limit.peak:
        broken.append(f"peak {outcome.peak} > {limit.peak}")
    if outcome.reach_s is None or outcome.reach_s > (limit.reach_s or math.inf):
        broken.append(f"need {outcome.need} not reached in time ({seconds(outcome.reach_s)})")
    if outcome.drain_s is None or outcome.drain_s > (limit.drain_s or math.inf):
        broken.append(f"backlog not drained in time ({seconds(outcome.drain_s)})")
    if outcome.max_ready > limit.max_ready:
        broken.append(f"max ready {outcome.max_ready} > {limit.max_ready}")
    if outcome.direction_changes > limit.direction_changes:
        broken.append(f"{outcome.direction_changes} direction changes > {limit.direction_changes}")
    if outcome.regrowth > limit.regrowth:
        broken.append(f"regrowth {outcome.regrowth} > {limit.regrowth}")
    return broken


def seconds(value: float | None) -> str:
    """A duration as the table prints it: ``12.3``, or ``never``."""
    return "never" if value is None else f"{value:.1f}"
