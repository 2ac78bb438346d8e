"""The supervisor's autoscaling policy: how many workers to run, as a pure function of the load."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["FarmLoad", "ScalingDecision", "ScalingMemory", "ScalingPolicy", "decide"]

# Capacity counts as spare only if the jobs in flight would fill at most this share of the
# slots left after removing a worker: without headroom, the next few deliveries would queue
# up and scale the pool straight back up.
_SPARE_FILL = 0.75


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """Limits and pace of one supervisor's autoscaling.

    Attributes:
        min_workers: fewest workers to run, even when idle.
        max_workers: most workers to run, whatever the backlog.
        concurrency: jobs one worker runs at once (``FARM_CONCURRENCY``). Its prefetch
            (``FARM_PREFETCH``) may be higher: deliveries beyond the concurrency wait
            inside the worker, counted in ``FarmLoad.waiting``.
        scale_up_step: most workers added by one decision.
        scale_down_step: most workers removed by one decision.
        cooldown_s: spare capacity must last this long before a worker is removed, and no
            removal comes sooner than this after any change.
        target_drain_s: aim to drain the backlog within this many seconds.
        settle_s: with peers, after starting its share of a shortfall, a supervisor waits
            this long before taking a share of another: the time for the workers it and
            its peers started to show in the broker's consumer count (the view's delay
            plus a worker's start-up).

    Raises:
        ValueError: a field is out of range; the message names it.
    """

    min_workers: int
    max_workers: int
    concurrency: int
    scale_up_step: int = 2
    scale_down_step: int = 1
    cooldown_s: float = 30.0
    target_drain_s: float = 5.0
    settle_s: float = 3.0

    def __post_init__(self) -> None:
        rules: tuple[tuple[str, bool, str], ...] = (
            ("min_workers", self.min_workers >= 0, "must be >= 0"),
            ("max_workers", self.max_workers >= 1, "must be >= 1"),
            (
                "max_workers",
                self.max_workers >= self.min_workers,
                f"must be >= min_workers ({self.min_workers})",
            ),
            ("concurrency", self.concurrency >= 1, "must be >= 1"),
            ("scale_up_step", self.scale_up_step >= 1, "must be >= 1"),
            ("scale_down_step", self.scale_down_step >= 1, "must be >= 1"),
            ("cooldown_s", math.isfinite(self.cooldown_s) and self.cooldown_s >= 0, "must be >= 0"),
            (
                "target_drain_s",
                math.isfinite(self.target_drain_s) and self.target_drain_s > 0,
                "must be > 0",
            ),
            ("settle_s", math.isfinite(self.settle_s) and self.settle_s >= 0, "must be >= 0"),
        )
        for name, valid, rule in rules:
            if not valid:
                raise ValueError(f"ScalingPolicy.{name} {rule}, got {getattr(self, name)!r}")


@dataclass(frozen=True, slots=True)
class FarmLoad:
    """What the supervisor observed at one check.

    Attributes:
        now: monotonic seconds.
        ready: messages ready in the jobs queue (not yet delivered).
        unacked: jobs running (delivered, started, not acknowledged yet), across all
            supervisors.
        own_workers: this supervisor's live workers, starting ones included.
        busy_workers: own workers with at least one job in flight.
        in_flight: jobs in flight on own workers.
        total_consumers: consumers of the queue across all supervisors (from the broker).
        jobs_per_second_per_worker: completion rate of one worker while it had work, or
            ``None`` when unknown; a rate taken while workers sat idle understates them.
        own_starting: own workers started but not consuming yet: not among the broker's
            consumers, yet capacity this supervisor already added.
        waiting: deliveries waiting inside workers (this supervisor's and its peers')
            for a slot: jobs not started, which the broker no longer counts as ready.
            They are work to do (in the need, and capacity is never spare while some
            wait), but only ready jobs make workers be added: a new worker cannot take
            a delivery another one holds.
        peer_supervisors: other supervisors of the queue heard from lately; they see the
            same shortfall and take their shares of it.
        share_draw: a number drawn uniformly in [0, 1), to round a share of a shortfall
            at random (so that the shares add up to the shortfall on average). The
            default 0 rounds every share up.
    """

    now: float
    ready: int
    unacked: int
    own_workers: int
    busy_workers: int
    in_flight: int
    total_consumers: int
    jobs_per_second_per_worker: float | None
    own_starting: int = 0
    waiting: int = 0
    peer_supervisors: int = 0
    share_draw: float = 0.0


@dataclass(frozen=True, slots=True)
class ScalingMemory:
    """What `decide` remembers between checks; start empty, then pass back each decision's.

    Attributes:
        spare_since: since when capacity has been continuously spare.
        last_change_at: when desired workers last differed from own workers.
        pledged_at: when this supervisor last started workers of its share of a
            shortfall it shares with peers (``settle_s`` runs from then).
        pledge: workers of that share not started yet (at most ``scale_up_step`` start
            per decision).
        pledged_blind: that share was taken before any worker's rate was known: it was
            one step, a probe, and the wait for it ends as soon as a rate is.
    """

    spare_since: float | None = None
    last_change_at: float | None = None
    pledged_at: float | None = None
    pledge: int = 0
    pledged_blind: bool = False


@dataclass(frozen=True, slots=True)
class ScalingDecision:
    """How many workers this supervisor should run, and why.

    Attributes:
        desired_workers: workers to run, within the policy's bounds (or moving toward them).
        reason: one human line with the inputs that mattered and the verdict.
        memory: pass back to the next `decide` call.
        own_workers: own workers when the decision was made.
    """

    desired_workers: int
    reason: str
    memory: ScalingMemory
    own_workers: int

    @property
    def change(self) -> int:
        """Workers to start (positive) or drain (negative)."""
        return self.desired_workers - self.own_workers


def decide(policy: ScalingPolicy, load: FarmLoad, memory: ScalingMemory) -> ScalingDecision:
    """Decide how many workers this supervisor should run: up quickly, down slowly.

    Workers needed across the whole farm to work off ``ready + waiting + unacked`` jobs
    (``pending``):

    - with a known rate, enough to drain them within ``target_drain_s``:
      ``ceil(pending / (rate * target_drain_s))``;
    - without one (or with a rate of 0), enough slots to run them all at once:
      ``ceil(pending / concurrency)``. This over-provisions short jobs, but the
      excess is removed by the slow path below, while an under-estimate would leave jobs
      waiting.

    Consumers of other supervisors (the broker's consumers less this supervisor's
    consuming workers) count toward that need, and so do this supervisor's workers still
    starting. The shortfall is the need less all of them. Then, in order:

    1. Above ``max_workers`` (lowered at runtime): go down to it at once.
    2. Backlog (ready jobs beyond the free slots of all consumers, and a shortfall):
       alone, add up to ``scale_up_step`` workers, capped at ``max_workers``, on the
       first decision that sees it. With peers, every one of them sees the same
       shortfall, and none sees the others' new workers before they consume: each takes
       its share (the shortfall divided by the supervisors, rounded at random with
       ``share_draw``), starts it ``scale_up_step`` per decision, then waits
       ``settle_s`` for the new workers to show before taking a share again. Without
       a measured rate the need is a guess: the share is then one worker, a probe.
    3. Below ``min_workers`` (raised at runtime): go up to it at once.
    4. Spare capacity (nothing ready or waiting, and the jobs in flight fit in three
       quarters of the slots of one worker fewer) continuously for ``cooldown_s``, and no
       change within ``cooldown_s``: remove ``scale_down_step`` workers, not going under
       ``min_workers``. Busy workers do not block this: a light load spreads over every
       worker.
    5. Otherwise hold. Any ready or waiting job restarts the spare-capacity clock, so a noisy depth
       neither adds nor removes workers.

    Args:
        policy: limits and pace.
        load: what the supervisor observed now.
        memory: the previous decision's memory (``ScalingMemory()`` on the first call).

    Returns:
        The decision, with the memory to pass back next time.
    """
    own = max(0, load.own_workers)
    own_consuming = own - min(own, max(0, load.own_starting))
    ready, waiting, unacked = max(0, load.ready), max(0, load.waiting), max(0, load.unacked)
    others = max(0, load.total_consumers - own_consuming)
    rate = load.jobs_per_second_per_worker
    if rate is not None and not rate > 0:
        rate = None
    inputs = _describe_inputs(ready, waiting, unacked, own, others, rate)
    spare = (
        ready == 0
        and waiting == 0
        and load.in_flight <= (own - 1) * policy.concurrency * _SPARE_FILL
    )
    spare_since: float | None = None
    if spare:
        spare_since = load.now if memory.spare_since is None else memory.spare_since
    pledged_at, pledge, pledged_blind = memory.pledged_at, 0, memory.pledged_blind

    def result(desired: int, verdict: str, detail: str) -> ScalingDecision:
        if desired == own:
            kept = ScalingMemory(
                spare_since, memory.last_change_at, pledged_at, pledge, pledged_blind
            )
            return ScalingDecision(desired, f"{verdict} {own}: {inputs}: {detail}", kept, own)
        # A change restarts the spare-capacity clock: the next removal needs a full cooldown.
        changed = ScalingMemory(
            load.now if spare else None, load.now, pledged_at, pledge, pledged_blind
        )
        reason = f"{verdict} {own}→{desired}: {inputs}: {detail}"
        return ScalingDecision(desired, reason, changed, own)

    if own > policy.max_workers:
        return result(policy.max_workers, "lower to max", f"max_workers is {policy.max_workers}")

    need = _workers_needed(policy, ready + waiting + unacked, rate)
    shortfall = need - others - own
    free_slots = max(0, (own + others) * policy.concurrency - unacked)
    why = _describe_need(policy, need, others, rate)
    if ready > free_slots and shortfall > 0:
        if own >= policy.max_workers:
            return result(own, "hold at max", f"{why}, cannot add more")
        adding, shared = min(policy.scale_up_step, shortfall), ""
        # Peers are counted from their snapshots, as the broker's consumer count lags
        # by the very workers being started (without a signing key, forged peers can
        # thus shrink this share: docs/security.md).
        peers = max(0, load.peer_supervisors)
        supervisors = 1 + peers
        if peers:
            if memory.pledge > 0:
                adding = min(adding, memory.pledge)
                pledge, shared = memory.pledge - adding, f", {memory.pledge} left of its share"
                pledged_at = load.now
            elif (
                pledged_at is not None
                and load.now - pledged_at < policy.settle_s
                and not (memory.pledged_blind and rate is not None)
            ):
                waited = f"started its share {load.now - pledged_at:.1f}s ago"
                return result(own, "hold", f"{why}: shared with {peers} peers, {waited}")
            elif rate is None:
                # Without a measured rate the need is a guess that over-provisions short
                # jobs many times over, and every peer guesses alike: start one worker,
                # a probe, and take a share only once a rate is known.
                pledged_at, pledged_blind, adding = load.now, True, 1
                shared = f", one probe: shared with {peers} peers"
            else:
                share = _share(shortfall, supervisors, load.share_draw)
                pledged_at, pledged_blind = load.now, False
                if share == 0:
                    return result(own, "hold", f"{why}: shared with {peers} peers, none here")
                adding, shared = min(adding, share), f", its share {share} of {supervisors}"
                pledge = share - adding
        wanted = own + adding
        desired = max(policy.min_workers, min(policy.max_workers, wanted))
        cap = f", capped at max {policy.max_workers}" if wanted > policy.max_workers else ""
        step = f"step {policy.scale_up_step}{shared}"
        return result(desired, "scale up", f"{why} ({step}){cap}")

    if own < policy.min_workers:
        return result(policy.min_workers, "raise to min", f"min_workers is {policy.min_workers}")
    if ready > 0:
        absorbed = f"{free_slots} free slots take them" if ready <= free_slots else why
        return result(own, "hold", absorbed)
    if waiting > 0:
        return result(own, "hold", f"{waiting} waiting in workers need them")
    if own <= policy.min_workers:
        return result(own, "hold at min", "no backlog")
    if spare_since is None:
        return result(own, "hold", f"{load.in_flight} in flight need the current workers")

    spare_for = load.now - spare_since
    since_change = math.inf if memory.last_change_at is None else load.now - memory.last_change_at
    cooldown = f"cooldown {policy.cooldown_s:g}s"
    if spare_for < policy.cooldown_s:
        return result(own, "hold", f"spare for {spare_for:.0f}s, {cooldown}")
    if since_change < policy.cooldown_s:
        return result(own, "hold", f"last change {since_change:.0f}s ago, {cooldown}")
    desired = max(policy.min_workers, own - policy.scale_down_step)
    return result(desired, "scale down", f"spare for {spare_for:.0f}s, {cooldown}")


def _share(shortfall: int, supervisors: int, draw: float) -> int:
    """One supervisor's share of ``shortfall`` workers among ``supervisors``: the whole
    part of the quotient, plus one with the probability of its fraction (``draw`` < it),
    so that the shares of supervisors drawing independently add up to the shortfall on
    average, however many more supervisors there are than missing workers."""
    whole, part = divmod(shortfall, supervisors)
    return whole + (1 if draw < part / supervisors else 0)


def _workers_needed(policy: ScalingPolicy, pending: int, rate: float | None) -> int:
    if rate is None:
        return math.ceil(pending / policy.concurrency)
    return math.ceil(pending / (rate * policy.target_drain_s))


def _describe_inputs(
    ready: int, waiting: int, unacked: int, own: int, others: int, rate: float | None
) -> str:
    queued = f"{ready} ready" if not waiting else f"{ready} ready, {waiting} waiting in workers"
    text = f"{queued}, {unacked} unacked, {own} worker{'' if own == 1 else 's'}"
    if others:
        text += f" (+{others} other consumer{'' if others == 1 else 's'})"
    if rate is not None:
        text += f", ~{rate:.0f} jobs/s/worker" if rate >= 10 else f", ~{rate:.2g} jobs/s/worker"
    return text


def _describe_need(policy: ScalingPolicy, need: int, others: int, rate: float | None) -> str:
    if rate is None:
        text = f"rate unknown, need {need} to run them at {policy.concurrency} per worker"
    else:
        text = f"need {need} to drain in {policy.target_drain_s:g}s"
    return text if not others else f"{text}, {max(0, need - others)} here"
