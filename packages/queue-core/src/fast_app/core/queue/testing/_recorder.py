"""A driver that records jobs instead of running them, for application tests."""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec

from fast_app.core.queue.drivers import Submission, override_driver
from fast_app.core.queue.envelope import JobEnvelope, JobOptions, decode_envelope, encode_envelope
from fast_app.core.queue.execution import run_job
from fast_app.core.queue.functions import describe_function
from fast_app.core.queue.handle import Job, JobOutcome, JobStatus
from fast_app.core.queue.retry import Retry, decide_after_run
from fast_app.core.queue.settings import get_settings

from ._matching import describe_call, expected_arguments, mismatches, received_arguments

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
        """Assert that a job of ``function`` was enqueued with at least these arguments.

        Only the arguments given are compared, each with the value the function will
        receive (after the codec round trip): ``assert_enqueued(fn)`` passes when any job
        of ``fn`` was enqueued, ``assert_enqueued(fn, user_id="u1")`` when one received
        ``user_id="u1"`` whatever its other arguments. Arguments are matched by the
        parameter they land in, so ``"u1"`` given by position matches ``user_id="u1"``
        given by keyword; items of ``*args`` are matched by position, of ``**kwargs`` by
        name. ``unittest.mock.ANY`` (or any object whose ``==`` decides) matches any value.
        To assert the complete call, use ``assert_enqueued_exactly``.

        Returns:
            The first (oldest) matching job.

        Raises:
            AssertionError: listing the jobs of ``function`` that were recorded and how
                each differs (or every recorded job when none is of ``function``).
            TypeError: the expected arguments could not be a call of ``function``.
        """
        return self._assert_enqueued(function, args, kwargs, exact=False)

    def assert_enqueued_exactly(
        self, function: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> CapturedJob:
        """Assert that ``function`` was enqueued with these arguments and no others.

        Parameters left out take their defaults on both sides, so ``fn("a")`` and
        ``fn("a", template="welcome")`` are the same call when ``template`` defaults to
        ``"welcome"``; ``assert_enqueued_exactly(fn)`` asserts a call with no arguments
        (what ``assert_enqueued(fn)`` meant before it matched partially).

        Returns:
            The first (oldest) matching job.

        Raises:
            AssertionError: listing the jobs of ``function`` that were recorded and how
                each differs.
            TypeError: the expected arguments are not a complete call of ``function``.
        """
        return self._assert_enqueued(function, args, kwargs, exact=True)

    def _assert_enqueued(
        self,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        exact: bool,
    ) -> CapturedJob:
        spec = describe_function(function)
        expected = expected_arguments(spec, args, kwargs, exact=exact)
        candidates = self.for_function(function)
        differences: list[str] = []
        for job in candidates:
            received = received_arguments(spec, job.args, job.kwargs)
            problems = mismatches(expected, received, exact=exact)
            if not problems:
                return job
            differences.append(
                f"  {spec.path}{describe_call(job.args, job.kwargs)}: {'; '.join(problems)}"
            )
        wanted = describe_call(args, kwargs)
        if exact:
            wanted = f"exactly {wanted}"
        elif not args and not kwargs:
            wanted = "any arguments"
        if differences:
            recorded = f"recorded jobs of {spec.path}:\n" + "\n".join(differences)
        elif self.jobs:
            recorded = f"no job of {spec.path} was recorded; recorded jobs:\n" + "\n".join(
                f"  {job.function}{describe_call(job.args, job.kwargs)}" for job in self.jobs
            )
        else:
            recorded = "no job was recorded"
        raise AssertionError(f"{spec.path} was not enqueued with {wanted}; {recorded}")

    async def run_all(self, *, raise_errors: bool = True) -> list[JobOutcome]:
        """Run the recorded jobs, and those they enqueue, as a worker would; forget them.

        Retries and delays are honoured the way the ``sync`` driver honours them, without
        waiting for them: a job that fails runs again while its ``__retries`` last (the
        same ``decide_after_run`` rule as every driver), and jobs run in the order they
        fall due (``__delay_s``, retry backoff), on a clock that jumps to the next due
        job instead of sleeping. Jobs due at the same moment run in the order they were
        enqueued.

        Args:
            raise_errors: when a job ends failed (after its last retry), stop and re-raise
                its exception; the jobs not run yet stay recorded.

        Returns:
            The final outcome of each job (its last run), in the order the jobs ended.
        """
        settings = get_settings()
        pending: list[tuple[float, int, CapturedJob]] = []  # a heap: (due, order, job)
        order = itertools.count()
        clock = time.time()
        # How far the run's clock is ahead of the real one: jobs enqueued by a job that
        # ran at a skipped-to moment are due relative to that moment.
        skew = 0.0

        def take_recorded() -> None:
            for recorded in self.jobs:
                envelope = recorded.submission.envelope
                due = (envelope.not_before or envelope.enqueued_at) + skew
                heapq.heappush(pending, (due, next(order), recorded))
            self.jobs.clear()

        outcomes: list[JobOutcome] = []
        take_recorded()
        while pending:
            due, _, job = heapq.heappop(pending)
            clock = max(clock, due)
            skew = clock - time.time()
            envelope = decode_envelope(job.submission.body)
            outcome = await run_job(job.submission.spec, envelope)
            take_recorded()
            decision = decide_after_run(
                outcome.status, envelope, base_s=settings.retry_base_s, cap_s=settings.retry_cap_s
            )
            if isinstance(decision, Retry):
                not_before = clock + decision.delay_s
                retry = msgspec.structs.replace(
                    envelope, attempt=decision.attempt, not_before=not_before
                )
                heapq.heappush(pending, (not_before, next(order), _with_envelope(job, retry)))
                continue
            outcomes.append(outcome)
            if raise_errors and outcome.status is not JobStatus.SUCCEEDED:
                self.jobs[:0] = [waiting for _, _, waiting in sorted(pending, key=_due_order)]
                if outcome.exception is not None:
                    raise outcome.exception
                raise AssertionError(f"job {job.function} ended {outcome.status.value}")
        return outcomes

    def clear(self) -> None:
        """Forget the recorded jobs."""
        self.jobs.clear()


def _due_order(entry: tuple[float, int, CapturedJob]) -> tuple[float, int]:
    due, order, _ = entry
    return due, order


def _with_envelope(job: CapturedJob, envelope: JobEnvelope) -> CapturedJob:
    """``job`` as its next run: the same job, with ``envelope``'s attempt and due time."""
    submission = dataclasses.replace(
        job.submission, envelope=envelope, body=encode_envelope(envelope)
    )
    return dataclasses.replace(job, submission=submission)
