"""A driver that records jobs instead of running them, for application tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fast_app.core.queue.drivers import Submission, override_driver
from fast_app.core.queue.envelope import JobOptions, decode_envelope
from fast_app.core.queue.execution import run_job
from fast_app.core.queue.functions import describe_function
from fast_app.core.queue.handle import Job, JobOutcome, JobStatus

__all__ = ["CapturedJob", "JobRecorder"]


@dataclass(frozen=True, slots=True)
class CapturedJob:
    """A job recorded by ``JobRecorder``, with arguments as the function would receive them.

    Attributes:
        id: the job id.
        function: dotted path of the job function.
        args: positional arguments after the round trip through the job codec.
        kwargs: keyword arguments after the round trip, without special ``__`` ones.
        context: the context snapshot that travels with the job.
        options: timeouts and other options.
    """

    id: str
    function: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    context: dict[str, Any]
    options: JobOptions
    submission: Submission = field(repr=False, compare=False)

    def is_for(self, function: Callable[..., Any]) -> bool:
        """Whether this job calls ``function``."""
        return self.function == describe_function(function).path


class JobRecorder:
    """Records the jobs ``queue()`` receives, validated and encoded as for workers.

    Validation is as strict as on workers: a lambda or a ``__main__`` function is refused
    here even though the sync driver would only warn. Use ``capture()`` as a context
    manager, or the ``queued_jobs`` pytest fixture.
    """

    name = "recorder"
    runs_in_process = False

    def __init__(self) -> None:
        self.jobs: list[CapturedJob] = []

    async def submit(self, submission: Submission) -> Job:
        """Record the job (after it went through the job codec)."""
        envelope = decode_envelope(submission.body)
        args, kwargs = submission.spec.restore(envelope.args, envelope.kwargs)
        self.jobs.append(
            CapturedJob(
                id=envelope.id,
                function=envelope.function,
                args=tuple(args),
                kwargs=kwargs,
                context=envelope.context,
                options=envelope.options,
                submission=submission,
            )
        )
        return Job(envelope.id, envelope.function, self.name)

    async def close(self) -> None:
        """Nothing to release."""

    @contextmanager
    def capture(self) -> Iterator[JobRecorder]:
        """Record every job enqueued inside the ``with`` block."""
        with override_driver(self):
            yield self

    def for_function(self, function: Callable[..., Any]) -> list[CapturedJob]:
        """The recorded jobs that call ``function``, oldest first."""
        path = describe_function(function).path
        return [job for job in self.jobs if job.function == path]

    def assert_enqueued(
        self, function: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> CapturedJob:
        """Assert that ``function`` was enqueued with these arguments; return that job.

        Raises:
            AssertionError: listing the calls of ``function`` that were recorded.
        """
        candidates = self.for_function(function)
        for job in candidates:
            if job.args == args and job.kwargs == kwargs:
                return job
        recorded = [f"({job.args!r}, {job.kwargs!r})" for job in candidates] or ["none"]
        raise AssertionError(
            f"{describe_function(function).path} was not enqueued with "
            f"args={args!r} kwargs={kwargs!r}; recorded calls: {', '.join(recorded)}"
        )

    async def run_all(self, *, raise_errors: bool = True) -> list[JobOutcome]:
        """Run the recorded jobs in order, including those they enqueue, then forget them.

        Args:
            raise_errors: re-raise the first failing job's exception (after stopping).

        Returns:
            Each job's outcome, in the order the jobs ran.
        """
        outcomes: list[JobOutcome] = []
        while self.jobs:
            job = self.jobs.pop(0)
            envelope = decode_envelope(job.submission.body)
            outcome = await run_job(job.submission.spec, envelope)
            outcomes.append(outcome)
            if raise_errors and outcome.status is not JobStatus.SUCCEEDED:
                if outcome.exception is not None:
                    raise outcome.exception
                raise AssertionError(f"job {job.function} ended {outcome.status.value}")
        return outcomes

    def clear(self) -> None:
        """Forget the recorded jobs."""
        self.jobs.clear()
