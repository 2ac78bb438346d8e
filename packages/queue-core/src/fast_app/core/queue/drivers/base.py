"""The interface every driver implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from fast_app.core.queue.envelope import JobEnvelope
from fast_app.core.queue.errors import QueueError
from fast_app.core.queue.functions import FunctionSpec
from fast_app.core.queue.handle import Job

__all__ = ["BulkSubmitter", "QueueDriver", "Submission"]


@dataclass(frozen=True, slots=True)
class Submission:
    """A validated job, encoded once, as ``queue()`` hands it to a driver.

    Attributes:
        spec: the job function.
        envelope: the job.
        body: ``envelope`` encoded, exactly the bytes a worker would receive.
        headers: headers the enqueue's hooks add to the job's message (trace context).
        queue: the queue the call named or its route gives; ``None``: the default
            queue (``QUEUE_NAME``).
    """

    spec: FunctionSpec
    envelope: JobEnvelope
    body: bytes
    headers: dict[str, str] | None = None
    queue: str | None = None


class QueueDriver(Protocol):
    """Takes validated jobs from ``queue()`` and gets them run."""

    @property
    def name(self) -> str:
        """The driver's name, as ``QUEUE_DRIVER`` spells it."""
        ...

    @property
    def runs_in_process(self) -> bool:
        """Whether jobs run in the calling process (so workers need not import them)."""
        ...

    async def submit(self, submission: Submission) -> Job:
        """Take the job; return once it is run (in-process drivers) or safely stored."""
        ...

    async def close(self) -> None:
        """Release connections and other resources."""
        ...


@runtime_checkable
class BulkSubmitter(Protocol):
    """A driver that takes a batch at once (``queue_many``); others get one job at a time."""

    async def submit_many(
        self, submissions: Sequence[Submission], *, window: int = ...
    ) -> list[Job | QueueError]:
        """Take the jobs; each one's handle, or the error that kept it from being stored.

        ``window``: how many jobs to have in flight at once, where that means something.
        """
        ...
