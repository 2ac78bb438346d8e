"""What a worker is running: its jobs in flight and their hard-timeout timers.

One object owns them. Deliveries start and end jobs here; heartbeats, the drain, the
consumer-timeout diagnosis and the hard-timeout handler only read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Literal

from fast_app.farm.worker._state import InFlightJob

__all__ = ["CancelAnswer", "JobsInFlight"]

#: What became of a request to cancel a job: its task was cancelled, or it runs in a
#: thread (which cannot be stopped), or it is not running here (unknown, its code has
#: returned already, or it was cancelled already).
CancelAnswer = Literal["cancelling", "in_thread", "not_running"]


class JobsInFlight:
    """The jobs a worker is running.

    Args:
        on_hard_timeout: called (by the event loop's timer) with a job that reaches its
            hard timeout.
        on_hard_deadline: called when a job with a hard timeout starts (the supervisor
            must hear of its deadline at once, in case the worker's loop blocks).
    """

    def __init__(
        self,
        on_hard_timeout: Callable[[InFlightJob], None],
        on_hard_deadline: Callable[[], None] = lambda: None,
    ) -> None:
        self._jobs: dict[int, InFlightJob] = {}
        self._on_hard_timeout = on_hard_timeout
        self._on_hard_deadline = on_hard_deadline

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[InFlightJob]:
        return iter(list(self._jobs.values()))

    def start(self, job: InFlightJob) -> None:
        """Count ``job`` in, and set its hard-timeout timer if it has one."""
        self._jobs[id(job)] = job
        hard_timeout_s = job.envelope.options.hard_timeout_s
        if hard_timeout_s is not None:
            job.hard_timer = asyncio.get_running_loop().call_later(
                hard_timeout_s, self._on_hard_timeout, job
            )
            self._on_hard_deadline()

    def returned(self, job: InFlightJob) -> None:
        """``job``'s code returned: cancel its hard-timeout timer before it is settled
        (settling may take a while), unless it still holds the worker."""
        job.code_returned = True
        if job.hard_timer is not None and not job.still_running:
            job.hard_timer.cancel()

    def stopped(self, job: InFlightJob) -> None:
        """``job``'s code returned (or was cancelled): its timer goes, and so does the job,
        unless it still holds the worker (it could not be stopped at its soft timeout) or
        its hard-timeout handler took it over."""
        if job.still_running:
            return
        if job.hard_timer is not None:
            job.hard_timer.cancel()
        if not job.ended_by_hard_timeout:
            self._jobs.pop(id(job), None)

    def cancel(self, job_id: str, sender: str) -> CancelAnswer:
        """Cancel the task of job ``job_id``, on behalf of ``sender``.

        Its delivery then settles it as cancelled (``Deliveries``). Only while its code
        runs: once the code returned, the job is being settled and stays as it ended.
        """
        for job in self._jobs.values():
            if job.envelope.id != job_id:
                continue
            if job.in_thread:
                return "in_thread"
            running = not (job.code_returned or job.still_running or job.ended_by_hard_timeout)
            if job.task is None or job.cancelled_by is not None or not running:
                return "not_running"
            job.cancelled_by = sender
            job.task.cancel()
            return "cancelling"
        return "not_running"

    def nearest_hard_deadlines(self, limit: int) -> list[InFlightJob]:
        """At most ``limit`` jobs, those with the nearest hard deadlines first when there
        are more (the supervisor enforces hard deadlines from this list)."""
        jobs = list(self._jobs.values())
        if len(jobs) > limit:
            jobs.sort(key=lambda job: (job.hard_deadline is None, job.hard_deadline or 0.0))
            jobs = jobs[:limit]
        return jobs

    def started_at(self) -> list[tuple[float, str]]:
        """When each job started, with its id."""
        return [(job.started_at, job.envelope.id) for job in self._jobs.values()]
