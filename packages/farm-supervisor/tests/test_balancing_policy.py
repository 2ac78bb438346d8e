"""The balancing policy across named queues, driven through simulated time.

Each queue scales as ``scaling.decide`` says while the overall cap allows it; beyond the
cap, workers are shared by need, a few per decision, without starving a queue.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from itertools import pairwise
from typing import Any

import pytest

from fast_app.farm.supervisor.balancing import (
    BalanceDecision,
    BalanceMemory,
    BalancePolicy,
    QueueLimits,
    balance,
)
from fast_app.farm.supervisor.scaling import (
    FarmLoad,
    ScalingDecision,
    ScalingMemory,
    ScalingPolicy,
    decide,
)

CONCURRENCY = 16
EMAILS_AND_REPORTS = {"emails": QueueLimits(1, 4), "reports": QueueLimits(0, 8)}
POLICY = BalancePolicy(max_workers=6, queues=EMAILS_AND_REPORTS, concurrency=CONCURRENCY)

Scene = Callable[[float, Mapping[str, int]], dict[str, FarmLoad]]
"""What the supervisor observes at a time, by queue, given the workers each queue runs then."""


def observe(
    now: float,
    own_workers: int,
    *,
    ready: int = 0,
    in_flight: int = 0,
    rate: float | None = None,
) -> FarmLoad:
    """A queue's load when this supervisor's workers are its only consumers."""
    return FarmLoad(
        now=now,
        ready=ready,
        unacked=in_flight,
        own_workers=own_workers,
        busy_workers=min(own_workers, in_flight),
        in_flight=in_flight,
        total_consumers=own_workers,
        jobs_per_second_per_worker=rate,
    )


def flooded(
    now: float, own_workers: int, *, ready: int = 5000, rate: float | None = None
) -> FarmLoad:
    """A queue whose workers are all full and whose backlog never drains."""
    return observe(now, own_workers, ready=ready, in_flight=CONCURRENCY * own_workers, rate=rate)


def simulate(
    policy: BalancePolicy,
    scene: Scene,
    *,
    own_workers: Mapping[str, int],
    seconds: int,
    memory: BalanceMemory | None = None,
) -> list[BalanceDecision]:
    """Decide once per simulated second (decision ``i`` at ``now = i``), acting on each answer."""
    memory = memory or BalanceMemory()
    workers = dict(own_workers)
    decisions = []
    for now in range(seconds):
        decision = balance(policy, scene(float(now), workers), memory)
        decisions.append(decision)
        memory = decision.memory
        workers = dict(decision.desired)
    return decisions


def pool_sizes(decisions: list[BalanceDecision], queue: str) -> list[int]:
    return [decision.desired[queue] for decision in decisions]


def totals(decisions: list[BalanceDecision]) -> list[int]:
    return [sum(decision.desired.values()) for decision in decisions]


def changes(decisions: list[BalanceDecision], queue: str) -> list[int]:
    return [decision.desired[queue] - decision.own[queue] for decision in decisions]


def change_times(decisions: list[BalanceDecision], queue: str) -> list[int]:
    return [now for now, change in enumerate(changes(decisions, queue)) if change]


def reversals(decisions: list[BalanceDecision], queue: str) -> int:
    """How often a queue's pool turned from growing to shrinking or back."""
    directions = [1 if change > 0 else -1 for change in changes(decisions, queue) if change]
    return sum(1 for a, b in pairwise(directions) if a != b)


# One queue behaves exactly as before.


def burst(now: float, own_workers: int) -> FarmLoad:
    left = max(0, 2000 - int(800 * now))
    in_flight = min(CONCURRENCY, left)
    return observe(now, own_workers, ready=left - in_flight, in_flight=in_flight)


def work_ends_at_ten_seconds(now: float, own_workers: int) -> FarmLoad:
    return observe(now, own_workers, in_flight=CONCURRENCY * own_workers if now < 10 else 0)


def slow_backlog(now: float, own_workers: int) -> FarmLoad:
    return flooded(now, own_workers, ready=max(0, 2000 - 40 * int(now)), rate=5.0)


def noisy_depth(now: float, own_workers: int) -> FarmLoad:
    tick = int(now) % 4
    return observe(now, own_workers, ready=(0, 5, 0, 12)[tick], in_flight=(6, 10, 4, 14)[tick])


@pytest.mark.parametrize("scene", [burst, work_ends_at_ten_seconds, slow_backlog, noisy_depth])
@pytest.mark.parametrize(("overall_max", "own_workers"), [(4, 1), (10, 6), (4, 0)])
def test_one_queue_is_scaled_exactly_as_the_scaling_policy_scales_it(
    scene: Callable[[float, int], FarmLoad], overall_max: int, own_workers: int
) -> None:
    # Given one queue of 1..4 workers, under an overall max equal to or above its own
    scaling = ScalingPolicy(min_workers=1, max_workers=4, concurrency=CONCURRENCY)
    policy = BalancePolicy(
        max_workers=overall_max, queues={"jobs": QueueLimits(1, 4)}, concurrency=CONCURRENCY
    )

    # When both policies decide every second for five minutes, each acting on its answers
    scaled: list[ScalingDecision] = []
    scaling_memory, workers = ScalingMemory(), own_workers
    for now in range(300):
        scaling_decision = decide(scaling, scene(float(now), workers), scaling_memory)
        scaled.append(scaling_decision)
        scaling_memory, workers = scaling_decision.memory, scaling_decision.desired_workers
    balanced = simulate(
        policy,
        lambda now, own: {"jobs": scene(now, own["jobs"])},
        own_workers={"jobs": own_workers},
        seconds=300,
    )

    # Then they give the same workers, for the same reasons, remembering the same things
    assert pool_sizes(balanced, "jobs") == [d.desired_workers for d in scaled]
    assert [b.reasons["jobs"] for b in balanced] == [d.reason for d in scaled]
    assert [b.memory.scaling["jobs"] for b in balanced] == [d.memory for d in scaled]


def test_one_queue_above_the_overall_max_is_capped_at_the_overall_max() -> None:
    # Given one queue allowed 8 workers by its limits but 3 overall, under a flood
    policy = BalancePolicy(
        max_workers=3, queues={"jobs": QueueLimits(1, 8)}, concurrency=CONCURRENCY
    )

    # When the supervisor decides every second, from two workers
    decisions = simulate(
        policy,
        lambda now, own: {"jobs": flooded(now, own["jobs"])},
        own_workers={"jobs": 2},
        seconds=10,
    )

    # Then the queue grows to the overall max, and its reason says it is capped there
    assert pool_sizes(decisions, "jobs") == [3] * 10
    assert "capped at max 3" in decisions[0].reasons["jobs"]
    assert decisions[-1].reasons["jobs"].startswith("hold at max 3")


# Wants that fit under the overall max are granted.


def test_wants_that_fit_under_the_overall_max_are_what_each_queue_decides() -> None:
    # Given an idle emails queue at its min, and a backlog on reports that 4 workers drain
    def scene(now: float, own: Mapping[str, int]) -> dict[str, FarmLoad]:
        return {
            "emails": observe(now, own["emails"]),
            "reports": flooded(now, own["reports"], ready=120, rate=10.0),
        }

    # When the supervisor decides every second
    decisions = simulate(POLICY, scene, own_workers={"emails": 1, "reports": 0}, seconds=5)

    # Then reports grows a step at a time to the 4 it needs, untouched by balancing
    assert pool_sizes(decisions, "reports") == [2, 4, 4, 4, 4]
    assert pool_sizes(decisions, "emails") == [1] * 5
    assert not any("balanced" in reason for d in decisions for reason in d.reasons.values())


# Minimums are kept.


def test_a_flood_on_reports_never_takes_emails_below_its_minimum() -> None:
    # Given emails (2..4) with a small backlog on 4 workers, and a flood of reports at an
    # unknown rate (so in infinite need) arriving on an idle reports queue
    policy = replace(POLICY, queues={"emails": QueueLimits(2, 4), "reports": QueueLimits(0, 8)})

    def scene(now: float, own: Mapping[str, int]) -> dict[str, FarmLoad]:
        return {
            "emails": flooded(now, own["emails"], ready=100, rate=20.0),
            "reports": flooded(now, own["reports"], ready=100_000),
        }

    # When the supervisor decides every second for ten minutes
    decisions = simulate(policy, scene, own_workers={"emails": 4, "reports": 0}, seconds=600)

    # Then reports first takes the 2 workers left free; then emails gives up one worker per
    # decision down to its minimum and no further, reports takes the rest, and the overall
    # max holds throughout
    assert pool_sizes(decisions, "emails")[:4] == [4, 3, 2, 2]
    assert min(pool_sizes(decisions, "emails")) == 2
    assert pool_sizes(decisions, "reports")[:4] == [2, 3, 4, 4]
    assert max(totals(decisions)) == 6
    assert decisions[-1].reasons["emails"].startswith("hold 2:")
    assert (
        "; balanced to 4: overall max 6 shared by need (emails clears in 3.3s, "
        "reports has 100000 ready at an unknown rate; target 5s)"
    ) in decisions[-1].reasons["reports"]


def test_a_queue_below_its_minimum_is_raised_to_it_at_once_even_at_the_overall_max() -> None:
    # Given emails (3..4) without workers, and reports at the overall max under a flood
    policy = replace(POLICY, queues={"emails": QueueLimits(3, 4), "reports": QueueLimits(0, 8)})
    loads = {"emails": observe(0.0, 0), "reports": flooded(0.0, 6)}

    # When the supervisor decides
    decision = balance(policy, loads, BalanceMemory())

    # Then emails starts its three at once, taken from reports
    assert decision.desired == {"emails": 3, "reports": 3}
    assert decision.reasons["emails"].startswith("raise to min 0→3")


# The overall max.


def test_three_flooded_queues_never_exceed_the_overall_max_together() -> None:
    # Given three queues, each allowed the whole farm, flooded at different rates
    policy = BalancePolicy(
        max_workers=7,
        queues={name: QueueLimits(0, 7) for name in ("a", "b", "c")},
        concurrency=CONCURRENCY,
        scale_up_step=3,
    )

    def scene(now: float, own: Mapping[str, int]) -> dict[str, FarmLoad]:
        return {
            "a": flooded(now, own["a"], rate=1.0),
            "b": flooded(now, own["b"], rate=5.0),
            "c": flooded(now, own["c"]),
        }

    # When the supervisor decides every second
    decisions = simulate(policy, scene, own_workers={"a": 0, "b": 0, "c": 0}, seconds=120)

    # Then the pools fill the farm at once and never go past it
    assert totals(decisions)[0] == 7
    assert set(totals(decisions)) == {7}


def test_workers_above_a_lowered_overall_max_are_cut_at_once() -> None:
    # Given 4 + 4 busy workers, and an overall max lowered to 5
    policy = replace(POLICY, max_workers=5)
    loads = {"emails": flooded(0.0, 4, rate=20.0), "reports": flooded(0.0, 4, rate=20.0)}

    # When the supervisor decides
    decision = balance(policy, loads, BalanceMemory())

    # Then the cut to the overall max is immediate, taken from the most above their minimum
    assert sum(decision.desired.values()) == 5
    assert decision.changes() == {"emails": -1, "reports": -2}


# Shares follow need.


def test_the_queue_that_takes_longer_to_clear_gets_more_workers() -> None:
    # Given both queues at 4 of 8, at the same rate, with ten times more pending on reports
    policy = BalancePolicy(
        max_workers=8,
        queues={"emails": QueueLimits(0, 8), "reports": QueueLimits(0, 8)},
        concurrency=CONCURRENCY,
    )

    def scene(now: float, own: Mapping[str, int]) -> dict[str, FarmLoad]:
        return {
            "emails": flooded(now, own["emails"], ready=400, rate=10.0),
            "reports": flooded(now, own["reports"], ready=4000, rate=10.0),
        }

    # When the supervisor decides every second
    decisions = simulate(policy, scene, own_workers={"emails": 4, "reports": 4}, seconds=30)

    # Then workers move to reports one per decision, until each queue's time to clear is
    # about as long as it can be made with whole workers
    assert pool_sizes(decisions, "reports")[:4] == [5, 6, 7, 7]
    assert pool_sizes(decisions, "emails")[-1] == 1
    assert pool_sizes(decisions, "reports")[-1] == 7
    assert re.search(
        r"balanced to 1: overall max 8 shared by need "
        r"\(emails clears in 42s, reports clears in 59s; target 5s\)$",
        decisions[-1].reasons["emails"],
    )


def test_queues_in_equal_need_share_evenly_and_deterministically() -> None:
    # Given two queues flooded at an unknown rate (both in infinite need), and 5 workers
    policy = BalancePolicy(
        max_workers=5,
        queues={"reports": QueueLimits(0, 8), "emails": QueueLimits(0, 8)},
        concurrency=CONCURRENCY,
        scale_up_step=8,
    )

    def scene(now: float, own: Mapping[str, int]) -> dict[str, FarmLoad]:
        return {name: flooded(now, own[name]) for name in ("emails", "reports")}

    # When the supervisor decides
    decisions = simulate(policy, scene, own_workers={"emails": 0, "reports": 0}, seconds=10)

    # Then the fewest-allocated queue is served first, the first name breaking the last tie
    assert decisions[0].desired == {"emails": 3, "reports": 2}
    assert {tuple(d.desired.items()) for d in decisions} == {(("reports", 2), ("emails", 3))}


# Shifts are bounded.


@pytest.mark.parametrize(("max_shift", "scale_up_step"), [(1, 2), (2, 3), (3, 1)])
def test_each_decision_moves_at_most_max_shift_workers_out_of_a_queue(
    max_shift: int, scale_up_step: int
) -> None:
    # Given a farm of 12 filled by emails, and a flood that moves to reports at 10 s
    policy = BalancePolicy(
        max_workers=12,
        queues={"emails": QueueLimits(1, 12), "reports": QueueLimits(1, 12)},
        concurrency=CONCURRENCY,
        scale_up_step=scale_up_step,
        max_shift=max_shift,
    )

    def flood_moves(now: float, own: Mapping[str, int]) -> dict[str, FarmLoad]:
        emails_ready, reports_ready = (50_000, 10) if now < 10 else (400, 50_000)
        return {
            "emails": flooded(now, own["emails"], ready=emails_ready, rate=2.0),
            "reports": flooded(now, own["reports"], ready=reports_ready, rate=2.0),
        }

    # When the supervisor decides every second, acting on each answer
    decisions = simulate(policy, flood_moves, own_workers={"emails": 1, "reports": 1}, seconds=60)

    # Then no queue loses more than max_shift (nor more than the other can take) or gains
    # more than a step per decision, and the workers do end up on reports
    largest_loss = -min(changes(decisions, "emails") + changes(decisions, "reports"))
    assert largest_loss == min(max_shift, scale_up_step)
    assert max(changes(decisions, "emails") + changes(decisions, "reports")) <= scale_up_step
    assert pool_sizes(decisions, "reports")[-1] > pool_sizes(decisions, "emails")[-1]
    assert set(totals(decisions)[10:]) == {12}


# No flapping.


@pytest.mark.parametrize("rate", [None, 10.0])
def test_a_noisy_depth_does_not_move_workers_back_and_forth(rate: float | None) -> None:
    # Given emails whose depth alternates between 0 and 5 ready, its workers never full,
    # while reports is flooded and the two fill the overall max
    def scene(now: float, own: Mapping[str, int]) -> dict[str, FarmLoad]:
        ready = 5 * (int(now) % 2)
        return {
            "emails": observe(now, own["emails"], ready=ready, in_flight=6, rate=rate),
            "reports": flooded(now, own["reports"], rate=rate),
        }

    # When the supervisor decides every second for an hour
    decisions = simulate(POLICY, scene, own_workers={"emails": 2, "reports": 4}, seconds=3600)

    # Then emails gives its spare worker to reports at once, and nothing moves after that
    assert change_times(decisions, "emails") == change_times(decisions, "reports") == [0]
    assert decisions[0].desired == {"emails": 1, "reports": 5}
    assert reversals(decisions, "emails") == reversals(decisions, "reports") == 0
    assert set(totals(decisions)) == {6}


@pytest.mark.parametrize(("cooldown_s", "moves"), [(30.0, 37), (0.0, 600)])
def test_needs_that_cross_back_and_forth_move_a_worker_once_per_cooldown(
    cooldown_s: float, moves: int
) -> None:
    # Given two flooded queues sharing 8 workers at the same rate, whose backlogs take turns
    # at being the larger by enough for a worker to make the difference
    policy = BalancePolicy(
        max_workers=8,
        queues={"emails": QueueLimits(1, 8), "reports": QueueLimits(1, 8)},
        concurrency=CONCURRENCY,
        cooldown_s=cooldown_s,
    )

    def crossing(now: float, own: Mapping[str, int]) -> dict[str, FarmLoad]:
        noise = 1000 if int(now) % 2 else -1000
        return {
            "emails": flooded(now, own["emails"], ready=4000 + noise, rate=10.0),
            "reports": flooded(now, own["reports"], ready=4000 - noise, rate=10.0),
        }

    # When the supervisor decides every second for ten minutes
    decisions = simulate(policy, crossing, own_workers={"emails": 4, "reports": 4}, seconds=600)

    # Then a queue that received a worker gives none back within the cooldown, where
    # without one workers would go back and forth at every decision
    assert len(change_times(decisions, "emails")) == moves
    for queue in ("emails", "reports"):
        queue_changes = changes(decisions, queue)
        for gained_at in (now for now, change in enumerate(queue_changes) if change > 0):
            within_cooldown = queue_changes[gained_at + 1 : gained_at + int(cooldown_s)]
            assert all(change >= 0 for change in within_cooldown)


# Idle queues.


def test_idle_queues_return_to_their_minimum_one_worker_per_cooldown() -> None:
    # Given both queues busy on 3 workers each (the farm full) until 10 s, then idle
    def scene(now: float, own: Mapping[str, int]) -> dict[str, FarmLoad]:
        return {name: work_ends_at_ten_seconds(now, own[name]) for name in ("emails", "reports")}

    # When the supervisor decides every second
    decisions = simulate(POLICY, scene, own_workers={"emails": 3, "reports": 3}, seconds=300)

    # Then each removes a worker a full cooldown after capacity became spare, then one per
    # cooldown, down to its own minimum, and none before
    assert change_times(decisions, "emails") == [40, 70]
    assert change_times(decisions, "reports") == [40, 70, 100]
    assert decisions[-1].desired == {"emails": 1, "reports": 0}


def test_a_queue_shrunk_for_another_restarts_its_cooldown() -> None:
    # Given emails idle on 3 workers for 20 s (spare for 20 s), and reports flooded at max
    memory = BalanceMemory(scaling={"emails": ScalingMemory(spare_since=0.0)})
    loads = {"emails": observe(20.0, 3, in_flight=1), "reports": flooded(20.0, 3)}

    # When balancing takes a worker from emails for reports
    decision = balance(POLICY, loads, memory)

    # Then emails remembers the change, as if it had scaled down itself
    assert decision.changes() == {"emails": -1, "reports": 1}
    assert decision.memory.scaling["emails"] == ScalingMemory(spare_since=20.0, last_change_at=20.0)
    assert decision.memory.shifted_in_at == {"reports": 20.0}


def test_a_growth_that_balancing_refuses_is_not_remembered_as_a_change() -> None:
    # Given both queues flooded and the farm full, emails at its minimum
    memory = BalanceMemory(scaling={"emails": ScalingMemory(last_change_at=3.0)})
    loads = {"emails": flooded(50.0, 1, rate=100.0), "reports": flooded(50.0, 5)}

    # When emails wants more but reports needs them more
    decision = balance(POLICY, loads, memory)

    # Then emails holds, and its memory keeps the last real change
    assert decision.desired == {"emails": 1, "reports": 5}
    assert decision.reasons["emails"].startswith("scale up 1→3")
    assert "; balanced to 1: overall max 6 shared by need" in decision.reasons["emails"]
    assert decision.memory.scaling["emails"].last_change_at == 3.0


# Empty queues.


def test_an_empty_queue_gets_its_first_worker_on_the_first_decision_that_sees_a_job() -> None:
    # Given emails (0..4) idle on no worker, reports flooded on the whole farm, and a first
    # email at 10 s
    policy = replace(POLICY, queues={"emails": QueueLimits(0, 4), "reports": QueueLimits(0, 8)})

    def scene(now: float, own: Mapping[str, int]) -> dict[str, FarmLoad]:
        return {
            "emails": observe(now, own["emails"], ready=1 if now >= 10 else 0, rate=50.0),
            "reports": flooded(now, own["reports"], rate=1.0),
        }

    # When the supervisor decides every second
    decisions = simulate(policy, scene, own_workers={"emails": 0, "reports": 6}, seconds=12)

    # Then emails starts a worker at 10 s, taken from reports
    assert change_times(decisions, "emails") == [10]
    assert decisions[10].changes() == {"emails": 1, "reports": -1}


def test_an_empty_queue_gets_its_first_worker_even_from_a_queue_that_keeps_its_workers() -> None:
    # Given emails (0..4) on no worker with a job ready, and reports (2..8) on the whole farm,
    # with workers shifted to it 5 s ago that it would otherwise keep
    policy = replace(POLICY, queues={"emails": QueueLimits(0, 4), "reports": QueueLimits(2, 8)})
    memory = BalanceMemory(shifted_in_at={"reports": 95.0})
    loads = {"emails": observe(100.0, 0, ready=1), "reports": flooded(100.0, 6)}

    # When the supervisor decides
    decision = balance(policy, loads, memory)

    # Then emails gets one worker, from reports
    assert decision.desired == {"emails": 1, "reports": 5}
    assert "emails has 1 ready at an unknown rate" in decision.reasons["reports"]


# Missing loads.


def test_a_queue_without_a_load_holds_its_workers_and_is_not_shrunk_for_others() -> None:
    # Given emails running 3 workers last time, its load unknown now, and reports flooded
    memory = BalanceMemory(workers={"emails": 3, "reports": 3})
    loads = {"reports": flooded(0.0, 3)}

    # When the supervisor decides
    decision = balance(POLICY, loads, memory)

    # Then emails holds its 3, saying why, and reports cannot grow past the rest
    assert decision.desired == {"emails": 3, "reports": 3}
    assert decision.reasons["emails"] == "hold 3: no load observed for this queue"
    assert "emails unobserved" in decision.reasons["reports"]


def test_a_queue_never_observed_holds_its_minimum() -> None:
    # Given a first decision with no load for emails
    # When the supervisor decides
    decision = balance(POLICY, {"reports": observe(0.0, 0)}, BalanceMemory())

    # Then emails counts as holding its minimum
    assert decision.desired == {"emails": 1, "reports": 0}
    assert decision.own == {"emails": 1, "reports": 0}


# The decision.


def test_changes_lists_the_queues_that_change() -> None:
    # Given a decision that grows reports and holds emails
    loads = {"emails": observe(0.0, 1), "reports": flooded(0.0, 1)}

    # When its changes are read
    decision = balance(POLICY, loads, BalanceMemory())

    # Then only reports is listed, with the workers to start
    assert decision.changes() == {"reports": 2}


def test_a_policy_built_from_a_dict_is_read_only_and_hashable() -> None:
    # Given a policy built from a dict of queues
    queues = dict(EMAILS_AND_REPORTS)
    policy = BalancePolicy(max_workers=6, queues=queues, concurrency=CONCURRENCY)

    # When the dict changes afterwards
    queues["other"] = QueueLimits(0, 1)

    # Then the policy is unchanged, equal to its twin, hashable, and refuses writes
    assert list(policy.queues) == ["emails", "reports"]
    assert policy == POLICY
    assert hash(policy) == hash(POLICY)
    with pytest.raises(TypeError):
        policy.queues["other"] = QueueLimits(0, 1)  # type: ignore[index]


# Invariants under random loads.


def test_random_loads_never_break_the_invariants() -> None:
    # Given three queues and a random load each second (sometimes missing), seeded
    policy = BalancePolicy(
        max_workers=9,
        queues={"a": QueueLimits(1, 5), "b": QueueLimits(0, 9), "c": QueueLimits(2, 4)},
        concurrency=4,
        cooldown_s=5.0,
        max_shift=2,
    )
    rng = random.Random(13)

    def scene(now: float, own: Mapping[str, int]) -> dict[str, FarmLoad]:
        loads = {}
        for name, workers in own.items():
            if rng.random() < 0.05:
                continue
            ready = rng.choice((0, 0, 1, 5, 50, 500, 5000))
            in_flight = rng.randint(0, 4 * workers)
            rate = rng.choice((None, 0.5, 5.0, 50.0))
            loads[name] = observe(now, workers, ready=ready, in_flight=in_flight, rate=rate)
        return loads

    # When the supervisor decides every second for an hour
    decisions = simulate(policy, scene, own_workers={"a": 1, "b": 0, "c": 2}, seconds=3600)

    # Then every decision keeps each queue within its limits and the farm within its max,
    # and no queue moves by more than a step up (or to its minimum), or a shift (plus the
    # first workers given to empty queues) down
    for decision in decisions:
        first_workers = sum(
            1 for name in decision.desired if decision.own[name] == 0 < decision.desired[name]
        )
        assert sum(decision.desired.values()) <= policy.max_workers
        for name, limits in policy.queues.items():
            desired, own = decision.desired[name], decision.own[name]
            assert limits.min_workers <= desired <= limits.max_workers
            assert desired <= max(own + policy.scale_up_step, limits.min_workers)
            assert own - desired <= policy.max_shift + first_workers
    assert len({tuple(decision.desired.values()) for decision in decisions}) > 10


# Validation.


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"min_workers": -1, "max_workers": 1}, "QueueLimits.min_workers must be >= 0, got -1"),
        ({"min_workers": 0, "max_workers": 0}, "QueueLimits.max_workers must be >= 1, got 0"),
        (
            {"min_workers": 5, "max_workers": 4},
            "QueueLimits.max_workers must be >= min_workers (5), got 4",
        ),
    ],
)
def test_invalid_queue_limits_are_refused_with_the_field_named(
    fields: dict[str, int], message: str
) -> None:
    # Given limits with a field out of range
    # When they are built
    # Then they are refused, naming the field and the rule
    with pytest.raises(ValueError, match=re.escape(message)):
        QueueLimits(**fields)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"queues": {}}, "BalancePolicy.queues must name at least one queue"),
        ({"queues": {"": QueueLimits(0, 1)}}, "BalancePolicy.queues names must not be empty"),
        ({"max_workers": 0}, "BalancePolicy.max_workers must be >= 1"),
        (
            {
                "max_workers": 6,
                "queues": {"emails": QueueLimits(3, 4), "reports": QueueLimits(4, 8)},
            },
            "BalancePolicy.max_workers must be >= the sum of the queues' min_workers "
            "(emails 3 + reports 4 = 7), got 6",
        ),
        ({"concurrency": 0}, "BalancePolicy.concurrency"),
        ({"scale_up_step": 0}, "BalancePolicy.scale_up_step"),
        ({"scale_down_step": 0}, "BalancePolicy.scale_down_step"),
        ({"cooldown_s": -1.0}, "BalancePolicy.cooldown_s"),
        ({"cooldown_s": float("nan")}, "BalancePolicy.cooldown_s"),
        ({"target_clear_s": 0.0}, "BalancePolicy.target_clear_s"),
        ({"target_clear_s": float("inf")}, "BalancePolicy.target_clear_s"),
        ({"max_shift": 0}, "BalancePolicy.max_shift must be >= 1, got 0"),
    ],
)
def test_an_invalid_balance_policy_is_refused_with_the_field_named(
    fields: dict[str, Any], message: str
) -> None:
    # Given a valid policy's fields with one out of range
    settings: dict[str, Any] = {
        "max_workers": 6,
        "queues": EMAILS_AND_REPORTS,
        "concurrency": CONCURRENCY,
    } | fields

    # When the policy is built
    # Then it is refused, naming the field and the rule
    with pytest.raises(ValueError, match=re.escape(message)):
        BalancePolicy(**settings)


def test_minimums_that_fill_the_overall_max_exactly_are_accepted() -> None:
    # Given minimums adding up to the overall max, and the smallest allowed values
    # When the policy is built
    policy = BalancePolicy(
        max_workers=3,
        queues={
            "emails": QueueLimits(1, 1),
            "reports": QueueLimits(2, 3),
            "idle": QueueLimits(0, 1),
        },
        concurrency=1,
        cooldown_s=0.0,
    )

    # Then it keeps them
    assert sum(limits.min_workers for limits in policy.queues.values()) == policy.max_workers


def test_a_queue_whose_jobs_were_measured_waiting_longer_gets_the_next_worker() -> None:
    # Given two flooded queues that would clear in the same time, over the cap
    policy = BalancePolicy(
        max_workers=3,
        queues={"a": QueueLimits(1, 3), "b": QueueLimits(1, 3)},
        concurrency=1,
    )
    load = FarmLoad(
        now=100.0,
        ready=100,
        unacked=1,
        own_workers=1,
        busy_workers=1,
        in_flight=1,
        total_consumers=1,
        jobs_per_second_per_worker=1.0,
    )
    loads = {"a": load, "b": load}

    # When b's started jobs were measured waiting longer than a's
    decision = balance(policy, loads, BalanceMemory(), waits={"a": 1.0, "b": 500.0})

    # Then b gets the spare worker (and without the waits, the tie goes to a)
    assert dict(decision.desired) == {"a": 1, "b": 2}
    assert "waited 500.0s" in decision.reasons["b"]
    assert dict(balance(policy, loads, BalanceMemory()).desired) == {"a": 2, "b": 1}
