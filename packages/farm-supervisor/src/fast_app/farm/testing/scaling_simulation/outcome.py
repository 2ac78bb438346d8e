"""The figures of one run (``Outcome``) and how they are measured from its series."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from fast_app.farm.testing.scaling_simulation._farm import SimulatedFarm
from fast_app.farm.testing.scaling_simulation.model import FarmModel, Scenario

__all__ = ["Outcome", "measure"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The figures of one run.

    Attributes:
        scenario: what ran.
        need: the ideal worker count (``Scenario.need``).
        peak: most live workers (starting and consuming) at once.
        reach_s: seconds from the event until consuming workers >= need (``None``: never).
        drain_s: seconds from the event until no job is ready, once the need is reached.
        direction_changes: reversals of the live worker count after convergence.
        regrowth: the largest rise of the worker count following a fall, after convergence.
        settled: (fewest, most) live workers over the last quarter of the run.
        max_ready: the largest ready backlog after the event.
        enqueued: jobs that arrived.
        completed: jobs done.
        queued: jobs still ready or in flight at the end.
        decisions: ``decide`` calls made.
        wall_s: seconds the run took.
    """

    scenario: Scenario
    need: int
    peak: int
    reach_s: float | None
    drain_s: float | None
    direction_changes: int
    regrowth: int
    settled: tuple[int, int]
    max_ready: int
    enqueued: int
    completed: int
    queued: int
    decisions: int
    wall_s: float

    @property
    def lost(self) -> int:
        """Jobs neither completed nor still queued: 0 unless the model is broken."""
        return self.enqueued - self.completed - self.queued

    @property
    def overshoot(self) -> float:
        """Peak over need."""
        return self.peak / max(1, self.need)


def measure(
    scenario: Scenario,
    model: FarmModel,
    farm: SimulatedFarm,
    series: list[tuple[float, int, int, int, int]],
    wall_s: float,
) -> Outcome:
    need = scenario.need(model)
    after = [point for point in series if point[0] >= scenario.event_s]
    # A burst's need shrinks as it is worked off: the workers it still needs are those
    # that drain what is left within the target, as the policy sizes them.
    drains_per_worker = model.concurrency / scenario.mean_service_s * model.target_drain_s
    reached = next(
        (
            i
            for i, (_, _, consumers, ready, unacked) in enumerate(after)
            if consumers >= need
            or (not scenario.arrival_rate and consumers >= (ready + unacked) / drains_per_worker)
        ),
        None,
    )
    reach_s = drain_s = None
    direction_changes = regrowth = 0
    if reached is not None:
        reach_s = after[reached][0] - scenario.event_s
        converged = after[reached:]
        drained = next((point[0] for point in converged if point[3] == 0), None)
        drain_s = None if drained is None else drained - scenario.event_s
        direction_changes, regrowth = _oscillation([point[1] for point in converged])
    last_quarter = [point[1] for point in series if point[0] >= 0.75 * scenario.duration_s]
    return Outcome(
        scenario=scenario,
        need=need,
        peak=max(point[1] for point in series),
        reach_s=reach_s,
        drain_s=drain_s,
        direction_changes=direction_changes,
        regrowth=regrowth,
        settled=(min(last_quarter), max(last_quarter)),
        max_ready=max(point[3] for point in after),
        enqueued=farm.enqueued,
        completed=farm.completed,
        queued=farm.ready + farm.unacked,
        decisions=farm.decisions,
        wall_s=wall_s,
    )


def _oscillation(counts: Sequence[int]) -> tuple[int, int]:
    """Reversals of a count's direction, and its largest rise following a fall."""
    changes = regrowth = 0
    direction = rise = 0
    fell = False
    for previous, current in itertools.pairwise(counts):
        if current == previous:
            continue
        moving = 1 if current > previous else -1
        if direction and moving != direction:
            changes += 1
            rise = 0
        direction = moving
        if moving < 0:
            fell = True
        elif fell:
            rise += current - previous
            regrowth = max(regrowth, rise)
    return changes, regrowth
