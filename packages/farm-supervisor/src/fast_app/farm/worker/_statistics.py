"""The worker's statistics, kept as a hook on the job path: its counters (every
heartbeat carries a copy), the jobs it ended, the queue waits of the jobs it started and
each function's runs since the last heartbeat."""

from __future__ import annotations

import math
import random
import time

from fast_app.core.queue.handle import JobOutcome, JobStatus
from fast_app.core.queue.hooks import Hook, JobRun
from fast_app.farm.dead_letters.reasons import DeadReason
from fast_app.farm.messages import WAITS_LISTED, WorkerCounters
from fast_app.farm.worker._function_tally import FunctionTally
from fast_app.farm.worker._state import RecentJobs

__all__ = ["CANCELLED", "DEAD_LETTERED", "RETRIED", "SUCCEEDED", "WorkerStatistics"]

# How a run ended, as heartbeats report it.
SUCCEEDED = "succeeded"
RETRIED = "retried"
DEAD_LETTERED = "dead_lettered"
CANCELLED = "cancelled"  # by an operator; its dead letter says so too
_ABANDONED = "abandoned"
_STARTED = "started"
_CANCELLED_UNSTARTED = "cancelled_unstarted"  # while it waited for a slot
_TINY = 1e-300  # instead of a draw of exactly 0, whose log is undefined


class QueueWaits:
    """The queue waits of the jobs started since the last ``take``: a uniform sample of
    them (so that their median is the median of all) plus the longest one.

    Args:
        listed: most waits ``take`` returns.
        seed: for the sample (tests).
    """

    def __init__(self, listed: int = WAITS_LISTED, seed: int | None = None) -> None:
        self._size = listed - 1
        self._sample: list[float] = []
        self._seen = 0
        self._longest = 0.0
        self._random = random.Random(seed)
        # Reservoir sampling that draws only for the waits it keeps (Li's "Algorithm L"):
        # the next wait to keep is ``_keep_at`` (counted as ``_seen``); a full sample
        # costs a comparison per start, not a random number.
        self._weight = 1.0
        self._keep_at = 0

    def add(self, wait_s: float) -> None:
        """One more job started after waiting ``wait_s``."""
        self._seen += 1
        if wait_s > self._longest:
            self._longest = wait_s
        if self._seen != self._keep_at and len(self._sample) >= self._size:
            return
        if len(self._sample) < self._size:
            self._sample.append(wait_s)
            if len(self._sample) == self._size:
                self._skip()
            return
        self._sample[self._random.randrange(self._size)] = wait_s
        self._skip()

    def _skip(self) -> None:
        """Draw which of the coming waits is the next one to keep."""
        draw = self._random.random
        self._weight *= math.exp(math.log(draw() or _TINY) / self._size)
        gap = math.log1p(-self._weight)
        self._keep_at = self._seen + 1 + (int(math.log(draw() or _TINY) / gap) if gap < 0 else 0)

    def take(self) -> list[float]:
        """The waits since the last call (with the longest, when sampled); forgets them."""
        waits = self._sample
        if self._seen > len(waits):
            waits.append(self._longest)
        self._sample, self._seen, self._longest = [], 0, 0.0
        self._weight, self._keep_at = 1.0, 0
        return waits


class WorkerStatistics(Hook):
    """Counts what the worker's deliveries came to, and keeps the jobs it ended.

    Attributes:
        counters: totals since the worker started.
        recent: the jobs ended since the last heartbeat took them.
        waits: the queue waits of the jobs started since the last heartbeat took them.
        functions: each function's runs since the last heartbeat took them.
    """

    def __init__(self) -> None:
        self.counters = WorkerCounters()
        self.recent = RecentJobs()
        self.waits = QueueWaits()
        self.functions = FunctionTally()

    def before_run(self, run: JobRun) -> None:
        run.hook_state[self] = _STARTED
        due_at = run.due_at
        if due_at is not None:
            self.waits.add(min(1e8, max(0.0, time.time() - due_at)))

    def after_run(self, run: JobRun, outcome: JobOutcome) -> None:
        counters, status = self.counters, outcome.status
        if status is JobStatus.SUCCEEDED:
            counters.succeeded += 1
        elif status is JobStatus.INVALID:
            counters.invalid += 1
        else:
            if status is JobStatus.SOFT_TIMEOUT:
                counters.soft_timeouts += 1
            counters.failed += 1
        run.hook_state[self] = SUCCEEDED  # until a retry or a dead letter says otherwise

    def hard_timeout(self, run: JobRun, description: str) -> None:
        self.counters.hard_timeouts += 1
        self.counters.failed += 1
        envelope = run.envelope
        if envelope is not None and run.hook_state.get(self) is not None:  # it ran here
            self.functions.of(envelope.function).hard_timeouts += 1

    def retried(self, run: JobRun) -> None:
        self.counters.retried += 1
        if self in run.hook_state:  # it ran here (see ``settled``)
            run.hook_state[self] = RETRIED

    def dead_lettered(self, run: JobRun, reason: str) -> None:
        ran_here = self in run.hook_state  # (see ``settled``)
        if reason == DeadReason.CANCELLED:  # not a failure: counted apart
            self.counters.cancelled += 1
            run.hook_state[self] = CANCELLED if ran_here else _CANCELLED_UNSTARTED
            return
        self.counters.dead_lettered += 1
        if ran_here:
            run.hook_state[self] = DEAD_LETTERED

    def cancelled(self, run: JobRun) -> None:
        if self in run.hook_state:
            run.hook_state[self] = _ABANDONED

    def settled(self, run: JobRun) -> None:
        # Only runs that started here are tallied: a delivery refused before it ran
        # (not allowed, not a job) names a function nobody vetted. A job whose code
        # ended is also listed with how its delivery ended; one stopped by its hard
        # timeout or abandoned is not (its code did not end).
        ended = run.hook_state.get(self)
        outcome, envelope = run.outcome, run.envelope
        if ended is None or ended is _ABANDONED or envelope is None:
            return
        if ended is _CANCELLED_UNSTARTED:
            # Listed, so that whoever cancelled it hears that it ended; not tallied:
            # its function did not run.
            if outcome is not None:
                self.recent.add(envelope, CANCELLED, 0.0, outcome.error, started=False)
            return
        tally = self.functions.of(envelope.function)
        if ended == SUCCEEDED:
            tally.succeeded += 1
        elif ended == RETRIED:
            tally.retried += 1
        elif ended == DEAD_LETTERED:
            tally.dead_lettered += 1
        elif ended == CANCELLED:
            tally.cancelled += 1
        if outcome is None:
            return
        tally.runtimes.add(outcome.duration_s)
        self.recent.add(envelope, ended, outcome.duration_s, outcome.error)
