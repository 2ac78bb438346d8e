"""Ten supervisors running the real scaling policy on one simulated queue converge."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from fast_app.farm.testing.scaling_simulation import (
    FarmModel,
    Outcome,
    bounds,
    check,
    main,
    run,
    scenarios,
)

MODEL = FarmModel()
SEED = 7


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    return {scenario.name: run(scenario, MODEL, SEED) for scenario in scenarios(10, MODEL)}


@pytest.mark.parametrize("name", ["burst", "steady", "death"])
def test_ten_supervisors_converge_within_the_bounds(
    outcomes: dict[str, Outcome], name: str
) -> None:
    # Given ten supervisors with delayed, noisy views; When the scenario runs
    outcome = outcomes[name]
    limit = bounds(outcome.scenario, MODEL)
    # Then the workers reach the need, the backlog drains, nothing is lost or oscillates
    assert check(outcome, MODEL) == []
    assert outcome.lost == 0
    assert outcome.enqueued == outcome.completed + outcome.queued
    assert outcome.reach_s is not None
    assert outcome.drain_s is not None
    assert outcome.peak >= outcome.need
    assert outcome.peak <= limit.peak
    assert outcome.overshoot <= 1.6
    assert outcome.direction_changes <= limit.direction_changes
    assert outcome.regrowth <= limit.regrowth


def test_a_burst_drains_soon_after_the_workers_reach_the_need(
    outcomes: dict[str, Outcome],
) -> None:
    outcome = outcomes["burst"]
    limit = bounds(outcome.scenario, MODEL)
    assert limit.reach_s is not None and limit.drain_s is not None
    assert outcome.reach_s is not None and outcome.reach_s <= limit.reach_s
    assert outcome.drain_s is not None and outcome.drain_s <= limit.drain_s


def test_the_survivors_cover_a_dead_supervisor(outcomes: dict[str, Outcome]) -> None:
    # Given supervisor 0 of 10 died at 90 s, its jobs back in the queue
    outcome = outcomes["death"]
    # Then the others run at least the need by the end, and the backlog empties again
    low, _ = outcome.settled
    assert low >= outcome.need
    assert outcome.drain_s is not None
    assert outcome.lost == 0


def test_the_policy_limits_bind() -> None:
    # Given a burst on ten supervisors allowed one worker each
    burst = next(s for s in scenarios(10, MODEL) if s.name == "burst")
    capped = replace(burst, max_workers=1)
    # When it runs
    outcome = run(capped, MODEL, SEED)
    # Then never more than ten workers, and the burst takes as long as ten workers need
    throughput = MODEL.concurrency / capped.mean_service_s
    least_s = capped.burst_jobs / (10 * throughput)
    assert outcome.peak == 10
    # (the workers reach the need of what is left only once a fifth of it is left)
    assert outcome.drain_s is not None and outcome.drain_s >= 0.95 * least_s
    assert outcome.lost == 0
    assert outcome.completed == outcome.enqueued  # all done within the minute, though
    uncapped = run(burst, MODEL, SEED)
    assert uncapped.drain_s is not None
    assert uncapped.drain_s < least_s / 2
    assert math.isclose(least_s, 25.0)


def test_the_same_seed_gives_the_same_figures() -> None:
    steady = next(s for s in scenarios(10, MODEL) if s.name == "steady")
    short = replace(steady, duration_s=30)
    first, second = run(short, MODEL, 3), run(short, MODEL, 3)
    assert replace(first, wall_s=0) == replace(second, wall_s=0)


def test_the_command_prints_a_table_per_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--supervisors", "1", "--seed", "2"]) == 0
    printed = capsys.readouterr().out
    for name in ("burst", "steady", "death"):
        assert f"== {name} (seed 2" in printed


@pytest.mark.parametrize("name", ["burst", "steady", "death"])
def test_a_hundred_supervisors_on_a_small_load_do_not_herd(name: str) -> None:
    # Given 100 supervisors with no worker each, on a load that 48 to 56 workers serve
    scenario = next(s for s in scenarios(100, MODEL, load_of=10) if s.name == name)
    # When it runs
    outcome = run(scenario, MODEL, SEED)
    # Then at most about one worker per supervisor is started blind (a probe each), then
    # they share what is missing: not the 5 to 10 times the need of every supervisor
    # adding its step for as long as the others' new workers were unseen
    assert outcome.lost == 0
    assert outcome.peak <= bounds(scenario, MODEL).peak
    assert outcome.peak <= scenario.supervisors + outcome.need // 2
    assert outcome.overshoot < 3
