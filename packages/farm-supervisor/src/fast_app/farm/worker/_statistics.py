"""The worker's statistics, kept as a hook on the job path: its counters (every
heartbeat carries a copy) and the jobs it ended since the last heartbeat."""

from __future__ import annotations

from fast_app.core.queue.handle import JobOutcome, JobStatus
from fast_app.core.queue.hooks import Hook, JobRun
from fast_app.farm.messages import WorkerCounters
from fast_app.farm.worker._state import RecentJobs

__all__ = ["DEAD_LETTERED", "RETRIED", "SUCCEEDED", "WorkerStatistics"]

# How a run ended, as heartbeats report it.
SUCCEEDED = "succeeded"
RETRIED = "retried"
DEAD_LETTERED = "dead_lettered"
_ABANDONED = "abandoned"


class WorkerStatistics(Hook):
    """Counts what the worker's deliveries came to, and keeps the jobs it ended.

    Attributes:
        counters: totals since the worker started.
        recent: the jobs ended since the last heartbeat took them.
    """

    def __init__(self) -> None:
        self.counters = WorkerCounters()
        self.recent = RecentJobs()

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

    def retried(self, run: JobRun) -> None:
        self.counters.retried += 1
        run.hook_state[self] = RETRIED

    def dead_lettered(self, run: JobRun, reason: str) -> None:
        self.counters.dead_lettered += 1
        run.hook_state[self] = DEAD_LETTERED

    def cancelled(self, run: JobRun) -> None:
        run.hook_state[self] = _ABANDONED

    def settled(self, run: JobRun) -> None:
        # A job whose code ended is listed with how its delivery ended; one stopped by
        # its hard timeout or abandoned is not (its code did not end).
        ended = run.hook_state.get(self)
        outcome, envelope = run.outcome, run.envelope
        if ended is None or ended is _ABANDONED or outcome is None or envelope is None:
            return
        self.recent.add(envelope, ended, outcome.duration_s, outcome.error)
