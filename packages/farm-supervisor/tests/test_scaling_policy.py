"""The autoscaling policy, driven through simulated time: up quickly, down slowly, no flapping."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pytest

from fast_app.farm.supervisor.scaling import (
    FarmLoad,
    ScalingDecision,
    ScalingMemory,
    ScalingPolicy,
    decide,
)

CONCURRENCY = 16
POLICY = ScalingPolicy(min_workers=1, max_workers=4, concurrency=CONCURRENCY)

Scene = Callable[[float, int], FarmLoad]
"""What the supervisor observes at a time, given how many workers it runs then."""


def observe(
    now: float,
    own_workers: int,
    *,
    ready: int = 0,
    in_flight: int = 0,
    others: int = 0,
    others_in_flight: int = 0,
    rate: float | None = None,
) -> FarmLoad:
    """A load where every worker of every supervisor consumes the queue."""
    return FarmLoad(
        now=now,
        ready=ready,
        unacked=in_flight + others_in_flight,
        own_workers=own_workers,
        busy_workers=min(own_workers, in_flight),
        in_flight=in_flight,
        total_consumers=own_workers + others,
        jobs_per_second_per_worker=rate,
    )


def simulate(
    policy: ScalingPolicy, scene: Scene, *, own_workers: int, seconds: int
) -> list[ScalingDecision]:
    """Decide once per simulated second (decision ``i`` at ``now = i``), acting on each answer."""
    memory = ScalingMemory()
    decisions = []
    for now in range(seconds):
        decision = decide(policy, scene(float(now), own_workers), memory)
        decisions.append(decision)
        memory = decision.memory
        own_workers = decision.desired_workers
    return decisions


def pool_sizes(decisions: list[ScalingDecision]) -> list[int]:
    return [decision.desired_workers for decision in decisions]


def change_times(decisions: list[ScalingDecision]) -> list[int]:
    return [now for now, decision in enumerate(decisions) if decision.change]


def reversals(decisions: list[ScalingDecision]) -> int:
    """How often the pool turned from growing to shrinking or back."""
    directions = [1 if d.change > 0 else -1 for d in decisions if d.change]
    return sum(1 for a, b in pairwise(directions) if a != b)


def idle(now: float, own_workers: int) -> FarmLoad:
    return observe(now, own_workers)


# Scale up quickly.


def test_a_burst_reaches_max_workers_within_two_decisions_and_never_exceeds_it() -> None:
    # Given 2000 jobs of 20 ms landing on one idle worker (no completion rate known yet),
    # drained at 16 / 20 ms = 800 jobs/s by that worker while the ones it starts boot
    def burst(now: float, own_workers: int) -> FarmLoad:
        left = max(0, 2000 - int(800 * now))
        in_flight = min(CONCURRENCY, left)
        return observe(now, own_workers, ready=left - in_flight, in_flight=in_flight)

    # When the supervisor decides every second
    decisions = simulate(POLICY, burst, own_workers=1, seconds=20)

    # Then the pool grows 1→3→4 on the first two decisions, by at most a step, never past max
    assert pool_sizes(decisions)[:2] == [3, 4]
    assert max(pool_sizes(decisions)) == 4
    assert all(decision.change <= POLICY.scale_up_step for decision in decisions)
    assert decisions[1].reason.startswith("scale up 3→4")
    assert "capped at max 4" in decisions[1].reason


def test_a_backlog_is_acted_on_by_the_first_decision_that_sees_it() -> None:
    # Given an idle worker, and a backlog that appears between the checks at 9 s and 10 s
    def backlog_from_ten_seconds(now: float, own_workers: int) -> FarmLoad:
        if now < 10:
            return observe(now, own_workers)
        return observe(now, own_workers, ready=500, in_flight=CONCURRENCY * own_workers)

    # When the supervisor decides every second
    decisions = simulate(POLICY, backlog_from_ten_seconds, own_workers=1, seconds=12)

    # Then the check at 10 s adds workers, so within two check intervals of the backlog
    assert change_times(decisions)[0] == 10
    assert decisions[10].change == 2


def test_each_decision_adds_at_most_scale_up_step_workers() -> None:
    # Given a large farm allowed to grow far, and a backlog that never drains
    policy = ScalingPolicy(min_workers=1, max_workers=20, concurrency=CONCURRENCY)

    def flood(now: float, own_workers: int) -> FarmLoad:
        return observe(now, own_workers, ready=10_000, in_flight=CONCURRENCY * own_workers)

    # When the supervisor decides every second
    decisions = simulate(policy, flood, own_workers=1, seconds=12)

    # Then it climbs two workers per decision up to max and stays there
    assert pool_sizes(decisions) == [3, 5, 7, 9, 11, 13, 15, 17, 19, 20, 20, 20]


def test_with_a_known_rate_workers_are_sized_to_drain_the_backlog_within_the_target() -> None:
    # Given a worker that completes ~50 jobs/s, with 2000 jobs ready and its 16 slots full
    policy = ScalingPolicy(min_workers=1, max_workers=20, concurrency=CONCURRENCY)
    load = observe(0.0, 1, ready=2000, in_flight=16, rate=50.0)

    # When the supervisor decides
    decision = decide(policy, load, ScalingMemory())

    # Then it needs 2016 / (50 * 5 s) → 9 workers, adds a step of 2, and says why
    assert decision.desired_workers == 3
    assert decision.reason == (
        "scale up 1→3: 2000 ready, 16 unacked, 1 worker, ~50 jobs/s/worker: "
        "need 9 to drain in 5s (step 2)"
    )


def test_a_backlog_that_the_workers_drain_within_the_target_adds_no_worker() -> None:
    # Given one worker known to complete 800 jobs/s, and 2000 jobs: 2.5 s of work for it
    load = observe(0.0, 1, ready=1984, in_flight=16, rate=800.0)

    # When the supervisor decides
    decision = decide(POLICY, load, ScalingMemory())

    # Then one worker is enough
    assert decision.desired_workers == 1
    assert "need 1 to drain in 5s" in decision.reason


def test_an_unknown_or_zero_rate_sizes_the_pool_by_slots() -> None:
    # Given a full worker and 100 jobs ready, and no useful completion rate
    for rate in (None, 0.0):
        load = observe(0.0, 1, ready=100, in_flight=16, rate=rate)

        # When the supervisor decides
        decision = decide(POLICY, load, ScalingMemory())

        # Then it sizes for 116 jobs at 16 per worker: 8 workers, one step of 2 at a time
        assert decision.desired_workers == 3
        assert "rate unknown, need 8 to run them at 16 per worker" in decision.reason


def test_a_farm_scaled_to_zero_starts_a_worker_for_the_first_job() -> None:
    # Given a supervisor allowed to run no worker, running none, and one job arriving
    policy = ScalingPolicy(min_workers=0, max_workers=4, concurrency=CONCURRENCY)

    # When the supervisor decides, before and after the job arrives
    before = decide(policy, observe(0.0, 0), ScalingMemory())
    after = decide(policy, observe(1.0, 0, ready=1), before.memory)

    # Then it stays at zero while idle, and starts exactly the one worker needed
    assert before.desired_workers == 0
    assert before.reason.startswith("hold at min 0")
    assert after.desired_workers == 1


# Other supervisors share the work.


@pytest.mark.parametrize(
    ("ready", "rate", "others_in_flight"),
    [
        pytest.param(2000, 50.0, 3 * CONCURRENCY, id="known-rate-others-full"),
        pytest.param(100, None, 0, id="unknown-rate-others-idle"),
    ],
)
def test_other_supervisors_consumers_lower_the_desired_workers(
    ready: int, rate: float | None, others_in_flight: int
) -> None:
    # Given the same backlog on two full workers, alone or with 3 consumers elsewhere
    policy = ScalingPolicy(min_workers=1, max_workers=20, concurrency=16, scale_up_step=20)
    alone = observe(0.0, 2, ready=ready, in_flight=32, rate=rate)
    shared = observe(
        0.0, 2, ready=ready, in_flight=32, rate=rate, others=3, others_in_flight=others_in_flight
    )

    # When the supervisor decides in each case
    by_itself = decide(policy, alone, ScalingMemory())
    with_others = decide(policy, shared, ScalingMemory())

    # Then it wants more workers than it runs, but fewer when others share the queue
    assert 2 < with_others.desired_workers < by_itself.desired_workers
    assert "+3 other consumers" in with_others.reason


# Scale down slowly.


def test_an_idle_farm_stays_at_min_workers() -> None:
    # Given an idle worker at min
    # When the supervisor decides every second for ten minutes
    decisions = simulate(POLICY, idle, own_workers=1, seconds=600)

    # Then it never changes the pool, and says it is at min
    assert set(pool_sizes(decisions)) == {1}
    assert decisions[-1].reason.startswith("hold at min 1: 0 ready, 0 unacked, 1 worker")


def test_an_idle_pool_returns_to_min_one_worker_per_cooldown() -> None:
    # Given four busy workers whose work ends at 10 s
    def work_ends_at_ten_seconds(now: float, own_workers: int) -> FarmLoad:
        in_flight = CONCURRENCY * own_workers if now < 10 else 0
        return observe(now, own_workers, in_flight=in_flight)

    # When the supervisor decides every second
    decisions = simulate(POLICY, work_ends_at_ten_seconds, own_workers=4, seconds=300)

    # Then it removes one worker a full cooldown after capacity became spare, then one per
    # cooldown, down to min
    assert change_times(decisions) == [40, 70, 100]
    assert [decisions[now].change for now in change_times(decisions)] == [-1, -1, -1]
    assert pool_sizes(decisions)[-1] == 1
    assert decisions[40].reason.startswith("scale down 4→3")
    assert "spare for 30s" in decisions[40].reason


def test_any_backlog_restarts_the_cooldown_before_a_removal() -> None:
    # Given three idle workers, and at 20 s a few jobs that are ready for an instant
    def blip_at_twenty_seconds(now: float, own_workers: int) -> FarmLoad:
        return observe(now, own_workers, ready=2 if now == 20 else 0)

    # When the supervisor decides every second
    decisions = simulate(POLICY, blip_at_twenty_seconds, own_workers=3, seconds=60)

    # Then the first removal waits a full cooldown after the blip, not after the start
    assert change_times(decisions)[0] == 51


def test_no_removal_sooner_than_cooldown_after_the_last_change() -> None:
    # Given capacity spare for a minute, but the pool changed 10 s ago
    memory = ScalingMemory(spare_since=0.0, last_change_at=50.0)

    # When the supervisor decides now, and once the cooldown since that change has passed
    soon = decide(POLICY, observe(60.0, 3), memory)
    later = decide(POLICY, observe(80.0, 3), soon.memory)

    # Then it holds first, and removes a worker only later
    assert soon.desired_workers == 3
    assert "last change 10s ago, cooldown 30s" in soon.reason
    assert later.desired_workers == 2


def test_a_busy_pool_with_nothing_ready_is_not_shrunk() -> None:
    # Given three workers with 28 jobs in flight: they fit in two, but would fill 7/8 of them
    def steady_load(now: float, own_workers: int) -> FarmLoad:
        return observe(now, own_workers, in_flight=28)

    # When the supervisor decides every second for ten minutes
    decisions = simulate(POLICY, steady_load, own_workers=3, seconds=600)

    # Then it keeps all three
    assert set(pool_sizes(decisions)) == {3}
    assert "28 in flight need the current workers" in decisions[-1].reason


# No flapping.


TRICKLE_READY = [0, 0, 2, 0, 1, 0, 0, 3]
TRICKLE_IN_FLIGHT = [4, 5, 6, 5, 4, 6, 5, 5]


@pytest.mark.parametrize("rate", [None, 10.0])
def test_a_steady_trickle_that_one_worker_handles_never_scales_up(rate: float | None) -> None:
    # Given ~10 jobs/s of 0.5 s on one worker: a few in flight, now and then a few ready
    def trickle(now: float, own_workers: int) -> FarmLoad:
        tick = int(now) % len(TRICKLE_READY)
        ready, in_flight = TRICKLE_READY[tick], TRICKLE_IN_FLIGHT[tick]
        return observe(now, own_workers, ready=ready, in_flight=in_flight, rate=rate)

    # When the supervisor decides every second for ten minutes
    decisions = simulate(POLICY, trickle, own_workers=1, seconds=600)

    # Then the pool never changes
    assert change_times(decisions) == []
    assert "free slots take them" in decisions[2].reason


def test_a_trickle_on_an_oversized_pool_shrinks_it_once_per_cooldown_then_holds() -> None:
    # Given three workers sharing a trickle that keeps 4-6 jobs in flight and none waiting
    def trickle(now: float, own_workers: int) -> FarmLoad:
        in_flight = TRICKLE_IN_FLIGHT[int(now) % len(TRICKLE_IN_FLIGHT)]
        return observe(now, own_workers, in_flight=in_flight)

    # When the supervisor decides every second for an hour
    decisions = simulate(POLICY, trickle, own_workers=3, seconds=3600)

    # Then it sheds the two spare workers a cooldown apart, and never grows back
    assert change_times(decisions) == [30, 60]
    assert reversals(decisions) == 0
    assert pool_sizes(decisions)[-1] == 1


def test_a_noisy_depth_that_current_workers_absorb_never_changes_the_pool() -> None:
    # Given two workers, and a depth alternating between 0 and small backlogs that fit in
    # their free slots
    ready_pattern = [0, 5, 0, 12, 0, 0, 3, 0, 9, 0]
    in_flight_pattern = [6, 10, 4, 14, 8, 2, 9, 5, 12, 3]

    def noisy(now: float, own_workers: int) -> FarmLoad:
        tick = int(now) % len(ready_pattern)
        return observe(
            now, own_workers, ready=ready_pattern[tick], in_flight=in_flight_pattern[tick]
        )

    # When the supervisor decides every second for an hour
    decisions = simulate(POLICY, noisy, own_workers=2, seconds=3600)

    # Then the pool never changes: no scale-up for absorbed backlogs, no scale-down between them
    assert sum(1 for decision in decisions if decision.change) == 0
    assert set(pool_sizes(decisions)) == {2}


def test_ready_jobs_that_fit_in_free_slots_add_no_worker_even_when_jobs_are_slow() -> None:
    # Given one worker completing 1.6 jobs/s (10 s jobs), 10 in flight and 3 just published:
    # at that rate 13 jobs take longer than 5 s, but its 6 free slots start all 3 at once
    load = observe(0.0, 1, ready=3, in_flight=10, rate=1.6)

    # When the supervisor decides
    decision = decide(POLICY, load, ScalingMemory())

    # Then another worker would not start any job sooner, so it holds
    assert decision.desired_workers == 1
    assert "6 free slots take them" in decision.reason


# Limits.


def test_a_saturated_farm_stays_at_max_and_says_so() -> None:
    # Given four full workers at max, and a backlog that never drains
    def flood(now: float, own_workers: int) -> FarmLoad:
        return observe(now, own_workers, ready=2000, in_flight=CONCURRENCY * own_workers)

    # When the supervisor decides every second
    decisions = simulate(POLICY, flood, own_workers=4, seconds=120)

    # Then it stays at max and the reason says it cannot add more
    assert set(pool_sizes(decisions)) == {4}
    assert decisions[-1].reason.startswith("hold at max 4: 2000 ready, 64 unacked, 4 workers")
    assert "cannot add more" in decisions[-1].reason


def test_workers_above_a_lowered_max_are_cut_to_max_at_once() -> None:
    # Given six workers under a backlog, and an operator who lowers max to 4
    load = observe(0.0, 6, ready=2000, in_flight=96)

    # When the supervisor decides
    decision = decide(POLICY, load, ScalingMemory())

    # Then it goes straight to max, not one step at a time
    assert decision.desired_workers == 4
    assert decision.change == -2
    assert decision.reason.startswith("lower to max 6→4")


def test_an_idle_pool_cut_to_max_still_waits_a_cooldown_for_each_further_removal() -> None:
    # Given six idle workers, and max lowered to 4
    # When the supervisor decides every second
    decisions = simulate(POLICY, idle, own_workers=6, seconds=200)

    # Then the cut is immediate, and the slow path resumes from there
    assert change_times(decisions) == [0, 30, 60, 90]
    assert pool_sizes(decisions)[-1] == 1


def test_workers_below_a_raised_min_are_raised_to_min_at_once() -> None:
    # Given no worker running, a min raised to 3, and a step of one worker
    policy = ScalingPolicy(min_workers=3, max_workers=6, concurrency=16, scale_up_step=1)

    # When the supervisor decides on an idle queue
    decision = decide(policy, observe(0.0, 0), ScalingMemory())

    # Then it starts all three at once
    assert decision.desired_workers == 3
    assert decision.change == 3
    assert decision.reason.startswith("raise to min 0→3")


def test_change_is_desired_minus_own_workers_at_decision_time() -> None:
    # Given a decision that grows a pool of one to three
    decision = decide(POLICY, observe(0.0, 1, ready=500, in_flight=16), ScalingMemory())

    # When its change is read
    # Then it counts the workers to start
    assert decision.own_workers == 1
    assert decision.change == 2


# Validation.


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"min_workers": -1}, "min_workers"),
        ({"max_workers": 0, "min_workers": 0}, "max_workers"),
        ({"min_workers": 5, "max_workers": 4}, "max_workers must be >= min_workers"),
        ({"concurrency": 0}, "concurrency"),
        ({"scale_up_step": 0}, "scale_up_step"),
        ({"scale_down_step": 0}, "scale_down_step"),
        ({"cooldown_s": -1.0}, "cooldown_s"),
        ({"cooldown_s": math.nan}, "cooldown_s"),
        ({"target_drain_s": 0.0}, "target_drain_s"),
        ({"target_drain_s": math.inf}, "target_drain_s"),
    ],
)
def test_an_invalid_policy_is_refused_with_the_field_named(
    fields: dict[str, Any], named: str
) -> None:
    # Given a valid policy's fields with one out of range
    settings: dict[str, Any] = {"min_workers": 1, "max_workers": 4, "concurrency": 16} | fields

    # When the policy is built
    # Then it is refused, naming the field
    with pytest.raises(ValueError, match=re.escape(f"ScalingPolicy.{named}")):
        ScalingPolicy(**settings)


def test_the_boundary_values_of_a_policy_are_accepted() -> None:
    # Given the smallest allowed values
    # When the policy is built
    policy = ScalingPolicy(min_workers=0, max_workers=1, concurrency=1, cooldown_s=0.0)

    # Then it keeps them
    assert (policy.min_workers, policy.max_workers, policy.cooldown_s) == (0, 1, 0.0)


# -- sharing a shortfall with peers ------------------------------------------------------

SHARING = ScalingPolicy(min_workers=0, max_workers=8, concurrency=4, scale_up_step=2)


def shared_backlog(
    now: float, own: int, *, peers: int, draw: float, rate: float | None, others: int = 0
) -> FarmLoad:
    """A backlog of 4,000 jobs: 50 workers drain it in 5 s at 16 jobs/s each."""
    return FarmLoad(
        now=now,
        ready=4_000,
        unacked=0,
        own_workers=own,
        busy_workers=0,
        in_flight=0,
        total_consumers=own + others,
        jobs_per_second_per_worker=rate,
        peer_supervisors=peers,
        share_draw=draw,
    )


def test_a_hundred_supervisors_add_the_missing_workers_once_between_them() -> None:
    # Given 100 supervisors, none with a worker, who all see that 50 workers are missing
    draws = [(index + 0.5) / 100 for index in range(100)]
    # When each decides with its own draw
    decisions = [
        decide(SHARING, shared_backlog(0.0, 0, peers=99, draw=draw, rate=16.0), ScalingMemory())
        for draw in draws
    ]
    # Then they add 50 workers between them (their shares), not 100 times the step
    assert sum(decision.change for decision in decisions) == 50
    assert {decision.change for decision in decisions} == {0, 1}
    assert "shared with 99 peers" in decisions[-1].reason
    assert "its share 1 of 100" in decisions[0].reason


def test_a_share_is_started_a_step_at_a_time_then_the_supervisor_waits_to_see_it() -> None:
    # Given 10 supervisors missing 50 workers: a share of 5 each, 2 per decision
    memory, own, changes = ScalingMemory(), 0, []
    for now in range(6):
        load = shared_backlog(float(now), own, peers=9, draw=0.5, rate=16.0)
        decision = decide(SHARING, load, memory)
        memory, own = decision.memory, decision.desired_workers
        changes.append(decision.change)
    # Then 2 + 2 + 1 over three decisions, nothing while its peers' workers may still be
    # unseen (settle_s = 3 s after the share was taken), then a new share from what it sees
    assert changes[:3] == [2, 2, 1]
    assert changes[3:5] == [0, 0]
    assert changes[5] > 0
    assert own <= SHARING.max_workers


def test_without_a_known_rate_a_supervisor_with_peers_starts_one_probe() -> None:
    # Given 100 supervisors and a backlog whose pace nobody has measured yet
    decision = decide(
        SHARING, shared_backlog(0.0, 0, peers=99, draw=0.0, rate=None), ScalingMemory()
    )
    # Then this one starts one worker (the guess would ask for 1,000), not the step of 2
    assert decision.change == 1
    # And as soon as a rate is known, it may take a share without waiting settle_s
    later = decide(SHARING, shared_backlog(1.0, 1, peers=99, draw=0.0, rate=16.0), decision.memory)
    assert later.change == 1
    assert "its share 1 of 100" in later.reason


def test_alone_a_supervisor_scales_by_its_step_every_decision() -> None:
    memory, own, changes = ScalingMemory(), 0, []
    for now in range(4):
        decision = decide(
            SHARING, shared_backlog(float(now), own, peers=0, draw=0.9, rate=16.0), memory
        )
        memory, own = decision.memory, decision.desired_workers
        changes.append(decision.change)
    assert changes == [2, 2, 2, 2]


def test_own_starting_workers_count_as_capacity_without_discounting_the_others() -> None:
    # Given 40 consumers at the broker (38 of other hosts, 2 of this one) and 10 own
    # workers still starting, with 48 needed
    load = FarmLoad(
        now=0.0,
        ready=3_840,
        unacked=0,
        own_workers=12,
        busy_workers=0,
        in_flight=0,
        total_consumers=40,
        jobs_per_second_per_worker=16.0,
        own_starting=10,
    )
    # Then it sees 38 + 12 = 50 ≥ 48: nothing to add (it used to count 40 - 12 = 28 others)
    decision = decide(
        ScalingPolicy(min_workers=1, max_workers=20, concurrency=4), load, ScalingMemory()
    )
    assert decision.change == 0
    assert "+38 other consumers" in decision.reason


# -- deliveries waiting inside workers (FARM_PREFETCH above FARM_CONCURRENCY) ------------


def hoarded(now: float, *, ready: int, waiting: int) -> FarmLoad:
    """Two workers of 4 slots each, all busy, at 10 jobs/s each."""
    return FarmLoad(
        now=now,
        ready=ready,
        unacked=8,
        own_workers=2,
        busy_workers=2,
        in_flight=8,
        total_consumers=2,
        jobs_per_second_per_worker=10.0,
        waiting=waiting,
    )


WAITING_POLICY = ScalingPolicy(min_workers=1, max_workers=8, concurrency=4, cooldown_s=0)


def test_jobs_waiting_in_workers_count_as_work_when_ready_jobs_call_for_workers() -> None:
    # Given 20 ready jobs and 8 running: 28 pending, 1 worker of 50 jobs per 5 s is plenty
    without = decide(WAITING_POLICY, hoarded(0.0, ready=20, waiting=0), ScalingMemory())
    assert without.change == 0
    # When the workers also hold 300 deliveries waiting for a slot
    decision = decide(WAITING_POLICY, hoarded(0.0, ready=20, waiting=300), ScalingMemory())
    # Then the need counts them (328 pending at 50 per worker: 7) and workers are added
    assert decision.change == 2
    assert "20 ready, 300 waiting in workers" in decision.reason


def test_waiting_jobs_alone_add_no_worker_but_keep_every_worker() -> None:
    # Given nothing ready but 300 deliveries held by the workers: a new worker could not
    # take them, and removing one would hand its share back to the queue for nothing
    memory = ScalingMemory()
    for now in range(0, 100, 10):
        decision = decide(WAITING_POLICY, hoarded(float(now), ready=0, waiting=300), memory)
        memory = decision.memory
        assert decision.change == 0
        assert "300 waiting in workers need them" in decision.reason
