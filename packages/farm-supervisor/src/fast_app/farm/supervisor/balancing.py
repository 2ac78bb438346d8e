"""The supervisor's balancing policy: how many workers each named queue's pool should run.

One supervisor can serve several queues, a pool of workers per queue, under one overall cap
on workers. ``balance`` asks ``scaling.decide`` what each queue wants; when the wants do not
fit under the cap, it shares the workers by need, as Laravel Horizon's ``auto`` balancing
does: every queue keeps its minimum, and the rest goes to the queues that would take longest
to clear their backlog, a few workers per decision so that the pools do not flap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from fast_app.farm.supervisor._frozen_map import FrozenMap, freeze
from fast_app.farm.supervisor.scaling import FarmLoad, ScalingMemory, ScalingPolicy, decide

__all__ = ["BalanceDecision", "BalanceMemory", "BalancePolicy", "QueueLimits", "balance"]


def _refuse_invalid(owner: str, rules: tuple[tuple[str, bool, str, object], ...]) -> None:
    for name, valid, rule, value in rules:
        if not valid:
            raise ValueError(f"{owner}.{name} {rule}, got {value!r}")


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """Limits of one queue's pool of workers.

    Attributes:
        min_workers: fewest workers the queue keeps, whatever the load elsewhere.
        max_workers: most workers the queue runs, whatever its backlog.

    Raises:
        ValueError: a field is out of range; the message names it.
    """

    min_workers: int
    max_workers: int

    def __post_init__(self) -> None:
        minimum, maximum = self.min_workers, self.max_workers
        _refuse_invalid(
            "QueueLimits",
            (
                ("min_workers", minimum >= 0, "must be >= 0", minimum),
                ("max_workers", maximum >= 1, "must be >= 1", maximum),
                ("max_workers", maximum >= minimum, f"must be >= min_workers ({minimum})", maximum),
            ),
        )


@dataclass(frozen=True, slots=True)
class BalancePolicy:
    """Limits and pace of one supervisor serving several queues.

    Attributes:
        max_workers: most workers across every queue.
        queues: each queue's limits, by queue name (stored read-only).
        concurrency: jobs one worker runs at once (``FARM_CONCURRENCY``). Its prefetch
            (``FARM_PREFETCH``) may be higher: deliveries beyond the concurrency wait
            inside the worker, counted in ``unacked`` as work still to do.
        scale_up_step: most workers added to one queue by one decision.
        scale_down_step: most workers one queue removes by one decision when it has spare
            capacity.
        cooldown_s: as ``ScalingPolicy.cooldown_s`` for each queue; also, a queue that
            received workers taken from another keeps them this long.
        target_clear_s: aim to clear each queue's backlog within this many seconds.
        max_shift: most workers taken from one queue, by one decision, for other queues.

    Raises:
        ValueError: a field is out of range; the message names it.
    """

    max_workers: int
    queues: Mapping[str, QueueLimits]
    concurrency: int
    scale_up_step: int = 2
    scale_down_step: int = 1
    cooldown_s: float = 30.0
    target_clear_s: float = 5.0
    max_shift: int = 1

    def __post_init__(self) -> None:
        freeze(self, "queues", self.queues)
        minimums = " + ".join(f"{name} {q.min_workers}" for name, q in self.queues.items())
        total_min = sum(limits.min_workers for limits in self.queues.values())
        cooldown, target = self.cooldown_s, self.target_clear_s
        _refuse_invalid(
            "BalancePolicy",
            (
                ("queues", len(self.queues) >= 1, "must name at least one queue", {}),
                ("queues", all(self.queues), "names must not be empty", list(self.queues)),
                ("max_workers", self.max_workers >= 1, "must be >= 1", self.max_workers),
                (
                    "max_workers",
                    self.max_workers >= total_min,
                    f"must be >= the sum of the queues' min_workers ({minimums} = {total_min})",
                    self.max_workers,
                ),
                ("concurrency", self.concurrency >= 1, "must be >= 1", self.concurrency),
                ("scale_up_step", self.scale_up_step >= 1, "must be >= 1", self.scale_up_step),
                (
                    "scale_down_step",
                    self.scale_down_step >= 1,
                    "must be >= 1",
                    self.scale_down_step,
                ),
                ("cooldown_s", math.isfinite(cooldown) and cooldown >= 0, "must be >= 0", cooldown),
                ("target_clear_s", math.isfinite(target) and target > 0, "must be > 0", target),
                ("max_shift", self.max_shift >= 1, "must be >= 1", self.max_shift),
            ),
        )


@dataclass(frozen=True, slots=True)
class BalanceMemory:
    """What `balance` remembers between checks; start empty, then pass back each decision's.

    Attributes:
        scaling: each queue's ``scaling.decide`` memory.
        workers: workers decided for each queue last time (held when its load is missing).
        shifted_in_at: when each queue last received workers taken from another queue.
    """

    scaling: Mapping[str, ScalingMemory] = field(default_factory=FrozenMap)
    workers: Mapping[str, int] = field(default_factory=FrozenMap)
    shifted_in_at: Mapping[str, float] = field(default_factory=FrozenMap)

    def __post_init__(self) -> None:
        freeze(self, "scaling", self.scaling)
        freeze(self, "workers", self.workers)
        freeze(self, "shifted_in_at", self.shifted_in_at)


@dataclass(frozen=True, slots=True)
class BalanceDecision:
    """How many workers each queue's pool should run, and why.

    Attributes:
        desired: workers to run, by queue.
        reasons: one human line per queue: its scaling reason, and how balancing changed it.
        memory: pass back to the next `balance` call.
        own: each queue's workers when the decision was made.
    """

    desired: Mapping[str, int]
    reasons: Mapping[str, str]
    memory: BalanceMemory
    own: Mapping[str, int]

    def __post_init__(self) -> None:
        freeze(self, "desired", self.desired)
        freeze(self, "reasons", self.reasons)
        freeze(self, "own", self.own)

    def changes(self) -> dict[str, int]:
        """Workers to start (positive) or drain (negative), for the queues that change."""
        return {
            name: workers - self.own[name]
            for name, workers in self.desired.items()
            if workers != self.own[name]
        }


@dataclass(slots=True)
class _Pool:
    """One queue while `balance` works on it."""

    name: str
    limits: QueueLimits
    load: FarmLoad | None
    own: int
    wanted: int
    reason: str
    scaling: ScalingMemory
    desired: int = 0
    wait_s: float = 0.0  # measured queue wait of its started jobs


def balance(
    policy: BalancePolicy,
    loads: Mapping[str, FarmLoad],
    memory: BalanceMemory,
    waits: Mapping[str, float] | None = None,
) -> BalanceDecision:
    """Decide how many workers each queue's pool should run, under the overall cap.

    1. Each queue asks ``scaling.decide``, with its own limits (its max lowered to the
       overall ``max_workers`` if above it), the shared concurrency, steps, cooldown and
       ``target_clear_s`` as the drain target, and its own load: what it wants. This keeps
       up quickly, down slowly, the cooldown, and no flapping on a noisy depth. A queue
       without a load holds the workers decided last time (its minimum at first), says so,
       and is neither grown nor shrunk for the others.
    2. If the wants fit under ``max_workers``, they are the answer. With one queue they
       always do (its max is at most the overall one): the answer is ``decide``'s, reason
       included.
    3. Otherwise the workers are shared, one at a time, starting from what each queue may
       keep: its own wish when it shrinks, else its workers less ``max_shift`` (taken for
       the others), never under its minimum. A queue that received workers taken from
       another within ``cooldown_s`` is not shrunk for the others (its own scale-down
       still applies), so that workers do not go back and forth between two queues.
    4. Still above ``max_workers`` (the cap was lowered, or a queue is raised to its
       minimum): take workers at once from the queue with the most above its minimum.
    5. A queue with no worker that ``decide`` wants running gets its first one, if need be
       from the queue with the most workers above its minimum (and more than one).
    6. The capacity left goes, a worker at a time, to the queue in most need among those
       below their want: the longest time to clear its backlog,
       ``(ready + unacked) / (rate * workers)``; infinite with jobs pending and no worker,
       or jobs ready and an unknown rate; none with nothing pending, or nothing ready and
       an unknown rate (the jobs in flight have their workers). A queue whose started
       jobs were measured waiting longer than that (``waits``) counts that wait instead:
       the backlog estimate can lag a queue whose jobs already wait. Ties go to the queue
       with fewest workers, then to the first by name.

    So every queue keeps its minimum; the total stays within ``max_workers``; a queue gains
    at most ``scale_up_step`` (or up to its minimum) per decision and never more than it
    wants; it loses at most ``max_shift`` per decision, or its own scale-down if larger,
    except to honour the cap, a minimum or a first worker (4, 5). When a share
    differs from the want, the reason says so, with each queue's time to clear.

    Args:
        policy: the queues' limits, the overall cap and the pace.
        loads: what the supervisor observed now, by queue; queues not in the policy are
            ignored.
        memory: the previous decision's memory (``BalanceMemory()`` on the first call).
        waits: the measured queue wait (median, last minute) of each queue's started
            jobs, where known.

    Returns:
        The decision, with the memory to pass back next time.
    """
    pools = [
        _ask(policy, name, limits, loads.get(name), memory)
        for name, limits in policy.queues.items()
    ]
    for pool in pools:
        pool.wait_s = max(0.0, (waits or {}).get(pool.name, 0.0))
    shared = sum(pool.wanted for pool in pools) > policy.max_workers
    if shared:
        _share(policy, pools, memory)
    else:
        for pool in pools:
            pool.desired = pool.wanted
    return _conclude(policy, pools, memory, shared)


def _ask(
    policy: BalancePolicy,
    name: str,
    limits: QueueLimits,
    load: FarmLoad | None,
    memory: BalanceMemory,
) -> _Pool:
    """What ``decide`` wants for one queue, or a hold when its load is missing."""
    most = min(limits.max_workers, policy.max_workers)
    previous = memory.scaling.get(name, ScalingMemory())
    if load is None:
        held = min(most, max(limits.min_workers, memory.workers.get(name, limits.min_workers)))
        reason = f"hold {held}: no load observed for this queue"
        return _Pool(name, limits, None, held, held, reason, previous)
    scaling_policy = ScalingPolicy(
        min_workers=limits.min_workers,
        max_workers=most,
        concurrency=policy.concurrency,
        scale_up_step=policy.scale_up_step,
        scale_down_step=policy.scale_down_step,
        cooldown_s=policy.cooldown_s,
        target_drain_s=policy.target_clear_s,
    )
    decision = decide(scaling_policy, load, previous)
    return _Pool(
        name,
        limits,
        load,
        decision.own_workers,
        decision.desired_workers,
        decision.reason,
        decision.memory,
    )


def _share(policy: BalancePolicy, pools: list[_Pool], memory: BalanceMemory) -> None:
    """Set each pool's desired workers when their wants exceed the overall cap."""
    for pool in pools:
        keep = min(pool.own, pool.wanted)
        if pool.load is not None and not _keeps_shifted_workers(policy, pool, memory):
            keep = min(pool.wanted, pool.own - policy.max_shift)
        pool.desired = max(pool.limits.min_workers, keep)

    def above_min(pool: _Pool) -> tuple[int, str]:
        # min() of this picks the most workers above the minimum, then the first name.
        return (pool.limits.min_workers - pool.desired, pool.name)

    while sum(pool.desired for pool in pools) > policy.max_workers:
        min(pools, key=above_min).desired -= 1

    for pool in sorted(pools, key=lambda pool: pool.name):
        if pool.desired or not pool.wanted:
            continue
        if sum(other.desired for other in pools) >= policy.max_workers:
            donors = [other for other in pools if other.desired > max(1, other.limits.min_workers)]
            if not donors:
                continue
            min(donors, key=above_min).desired -= 1
        pool.desired = 1

    def neediest(pool: _Pool) -> tuple[float, int, str]:
        need = max(_clear_time(pool.load, pool.desired), pool.wait_s)
        return (-need, pool.desired, pool.name)

    for _ in range(policy.max_workers - sum(pool.desired for pool in pools)):
        hungry = [pool for pool in pools if pool.desired < pool.wanted]
        if not hungry:
            break
        min(hungry, key=neediest).desired += 1


def _keeps_shifted_workers(policy: BalancePolicy, pool: _Pool, memory: BalanceMemory) -> bool:
    """Whether the queue received workers from another within the cooldown."""
    shifted_in_at = memory.shifted_in_at.get(pool.name)
    if shifted_in_at is None or pool.load is None:
        return False
    return pool.load.now - shifted_in_at < policy.cooldown_s


def _clear_time(load: FarmLoad | None, workers: int) -> float:
    """Seconds to clear the queue's backlog with ``workers``, as ``balance`` rule 6 says."""
    if load is None:
        return 0.0
    ready = max(0, load.ready)
    pending = ready + max(0, load.unacked)
    rate = load.jobs_per_second_per_worker
    if pending == 0:
        return 0.0
    if workers == 0:
        return math.inf
    if rate is None or not rate > 0:
        # Without a pace, only jobs left waiting make the need urgent; the ones in flight
        # already have their worker.
        return math.inf if ready else 0.0
    return pending / (rate * workers)


def _conclude(
    policy: BalancePolicy, pools: list[_Pool], memory: BalanceMemory, shared: bool
) -> BalanceDecision:
    """Build the decision and the memory to pass back from the pools' desired workers."""
    gave = any(pool.desired < min(pool.own, pool.wanted) for pool in pools)
    shifted_in_at = dict(memory.shifted_in_at)
    scaling: dict[str, ScalingMemory] = {}
    reasons: dict[str, str] = {}
    sharing = _describe_sharing(policy, pools) if shared else ""
    for pool in pools:
        previous = memory.scaling.get(pool.name, ScalingMemory())
        scaling[pool.name] = _scaling_memory(pool, previous)
        if gave and pool.load is not None and pool.desired > pool.own:
            shifted_in_at[pool.name] = pool.load.now
        reasons[pool.name] = pool.reason
        if pool.desired != pool.wanted:
            reasons[pool.name] += f"; balanced to {pool.desired}: {sharing}"
    desired = {pool.name: pool.desired for pool in pools}
    kept = BalanceMemory(scaling=scaling, workers=desired, shifted_in_at=shifted_in_at)
    own = {pool.name: pool.own for pool in pools}
    return BalanceDecision(desired=desired, reasons=reasons, memory=kept, own=own)


def _scaling_memory(pool: _Pool, previous: ScalingMemory) -> ScalingMemory:
    """``decide``'s memory for the queue, told what balancing did with its answer."""
    decided, load = pool.scaling, pool.load
    if load is None or pool.desired == pool.wanted:
        return decided
    if pool.desired == pool.own:
        # decide grew the pool but balancing held it: nothing changed.
        return replace(decided, last_change_at=previous.last_change_at)
    if pool.wanted != pool.own:
        # Both changed the pool, by different amounts: decide's memory already says so.
        return decided
    # decide held but balancing shrank the pool: the change restarts the clocks, as in decide.
    spare_since = None if decided.spare_since is None else load.now
    return replace(decided, spare_since=spare_since, last_change_at=load.now)


def _describe_sharing(policy: BalancePolicy, pools: list[_Pool]) -> str:
    clearing = ", ".join(_describe_clearing(pool) for pool in pools)
    target = f"target {policy.target_clear_s:g}s"
    return f"overall max {policy.max_workers} shared by need ({clearing}; {target})"


def _describe_clearing(pool: _Pool) -> str:
    load = pool.load
    if load is None:
        return f"{pool.name} unobserved"
    ready = max(0, load.ready)
    pending = ready + max(0, load.unacked)
    seconds = _clear_time(load, pool.desired)
    if pending == 0:
        return f"{pool.name} is empty"
    if pool.desired == 0:
        return f"{pool.name} has {pending} pending and no worker"
    rate = load.jobs_per_second_per_worker
    waited = f", waited {pool.wait_s:.1f}s" if pool.wait_s >= 0.1 else ""
    if rate is not None and rate > 0:
        return f"{pool.name} clears in {seconds:.{1 if seconds < 10 else 0}f}s{waited}"
    if ready:
        return f"{pool.name} has {ready} ready at an unknown rate"
    return f"{pool.name} has {pending} unacked, none ready"
