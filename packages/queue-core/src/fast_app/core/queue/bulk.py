"""``queue_many()``: enqueue a batch of jobs at once, each reported in its own slot."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

from fast_app.core.context import context

from .api import prepare
from .drivers import BulkSubmitter, QueueDriver, Submission, driver_for
from .errors import BatchError, JobValidationError, QueueError
from .handle import Job
from .hooks import Enqueueing, HookChain, current_hooks
from .settings import QueueSettings, get_settings
from .telemetry import SYSTEM_IN_PROCESS, SYSTEM_RABBITMQ

__all__ = ["DEFAULT_WINDOW", "BatchResult", "JobCall", "job_call", "queue_many"]

#: Jobs ``queue_many`` writes to the broker at once; at most twice this many await their
#: confirms (measured in benchmarks/bulk_enqueue.py: larger windows gain nothing).
DEFAULT_WINDOW = 1000

# Frames between the caller of ``queue_many`` and ``warnings.warn`` in ``prepare``.
_STACKLEVEL = 5


@dataclass(frozen=True, slots=True)
class JobCall:
    """A call to make a job of, as ``queue()`` takes it (see ``job_call``)."""

    function: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def job_call(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> JobCall:
    """A job for ``queue_many``: the arguments of a ``queue()`` call, options included
    (``__delay_s``, ``__queue``...), checked when ``queue_many`` is called."""
    return JobCall(function, args, kwargs)


class BatchResult(Sequence[Job | QueueError]):
    """What ``queue_many`` returns: one slot per call, in the order of the calls.

    A slot holds the ``Job`` handle of a job that was enqueued (confirmed by the broker,
    or run by the ``sync`` driver), else the ``QueueError`` that kept it out:
    ``JobValidationError`` (and its subclasses) for a call that cannot be a job,
    ``QueueUnavailableError`` for a job the broker refused, returned or did not confirm.
    """

    __slots__ = ("_slots",)

    def __init__(self, slots: Iterable[Job | QueueError]) -> None:
        self._slots = tuple(slots)

    @overload
    def __getitem__(self, index: int) -> Job | QueueError: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Job | QueueError]: ...

    def __getitem__(self, index: int | slice) -> Job | QueueError | Sequence[Job | QueueError]:
        return self._slots[index]

    def __len__(self) -> int:
        return len(self._slots)

    def __iter__(self) -> Iterator[Job | QueueError]:
        return iter(self._slots)

    @property
    def jobs(self) -> list[Job]:
        """The handles of the jobs enqueued, in the order of their calls."""
        return [slot for slot in self._slots if isinstance(slot, Job)]

    @property
    def failures(self) -> list[tuple[int, QueueError]]:
        """``(position, error)`` of each call that was not enqueued."""
        return [(i, slot) for i, slot in enumerate(self._slots) if not isinstance(slot, Job)]

    @property
    def ok(self) -> bool:
        """Whether every job of the batch was enqueued."""
        return all(isinstance(slot, Job) for slot in self._slots)

    def raise_failures(self) -> None:
        """Raise ``BatchError`` (listing the failures) unless every job was enqueued."""
        if failures := self.failures:
            raise BatchError(failures, len(self._slots))

    def __repr__(self) -> str:
        failed = len(self.failures)
        return f"<BatchResult {len(self._slots) - failed} enqueued, {failed} failed>"


async def queue_many(calls: Iterable[JobCall], *, window: int = DEFAULT_WINDOW) -> BatchResult:
    """Enqueue a batch of jobs; return once each one is stored (or run) or has failed.

    Each call is validated and encoded as ``queue()`` would (same options, same errors);
    the current context is captured once, at this call, and travels with every job. With
    ``async_farm`` all valid jobs are published before their confirms are awaited, in
    windows of ``window`` (at most two windows unconfirmed at a time); jobs may go to
    different queues (``__queue``, ``QUEUE_ROUTES``) and have different delays. With the
    ``sync`` driver the jobs run one after the other, in order.

    A call that fails validation, or a job the broker refuses, returns or does not
    confirm in time, is reported in its own slot and does not stop the others::

        result = await queue_many(job_call(send_email, user_id) for user_id in user_ids)
        result.raise_failures()  # or look at result.failures

    Returns:
        One slot per call, in order: the job's handle, or the error that kept it out.

    Raises:
        ValueError: ``window`` is less than 1.
        QueueUnavailableError: the broker could not be reached within
            ``QUEUE_CONNECT_TIMEOUT_S``; no job was published.
        QueueConfigurationError: a queue of the batch cannot be used (it exists with
            other arguments, or the user lacks a permission); no job was published.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    settings = get_settings()
    driver = driver_for(settings)
    hooks = current_hooks()
    snapshot = context.snapshot()
    batch = list(calls)
    if not batch:
        return BatchResult(())
    if isinstance(driver, BulkSubmitter) and not driver.runs_in_process:
        return await _publish(settings, driver, hooks, batch, snapshot, window)
    return await _one_by_one(settings, driver, hooks, batch, snapshot)


async def _publish(
    settings: QueueSettings,
    driver: BulkSubmitter,
    hooks: HookChain,
    batch: list[JobCall],
    snapshot: dict[str, Any],
    window: int,
) -> BatchResult:
    """Validate every call, then hand the valid jobs to the driver at once."""
    slots: list[Job | QueueError | None] = [None] * len(batch)
    submissions: list[Submission] = []
    positions: list[int] = []
    calls: list[Enqueueing] = []
    traced = bool(hooks.hooks)
    for position, job in enumerate(batch):
        call = Enqueueing(settings, settings.name, SYSTEM_RABBITMQ, True) if traced else None
        if call is not None:
            hooks.before_enqueue(call)
        try:
            submission = _prepare(settings, False, job, snapshot)
        except JobValidationError as error:
            slots[position] = error
            if call is not None:
                hooks.after_enqueue(call, None, error)
            continue
        if call is not None:
            call.envelope = submission.envelope
            call.queue = submission.queue or settings.name
            if (headers := hooks.job_prepared(call)) is not None:
                submission = dataclasses.replace(submission, headers=headers)
            calls.append(call)
        submissions.append(submission)
        positions.append(position)
    try:
        results = await driver.submit_many(submissions, window=window) if submissions else []
    except BaseException as error:
        for call in calls:
            hooks.after_enqueue(call, None, error)
        raise
    for index, (position, result) in enumerate(zip(positions, results, strict=True)):
        slots[position] = result
        if traced:
            if isinstance(result, Job):
                hooks.after_enqueue(calls[index], result, None)
            else:
                hooks.after_enqueue(calls[index], None, result)
    return BatchResult(slot for slot in slots if slot is not None)


async def _one_by_one(
    settings: QueueSettings,
    driver: QueueDriver,
    hooks: HookChain,
    batch: list[JobCall],
    snapshot: dict[str, Any],
) -> BatchResult:
    """Each job through ``driver.submit`` in turn (the sync driver runs it now).

    A job's own exception (``QUEUE_SYNC_RAISE``) propagates, as from ``queue()``.
    """
    system = SYSTEM_IN_PROCESS if driver.runs_in_process else SYSTEM_RABBITMQ
    allow_unportable = driver.runs_in_process and not settings.strict
    slots: list[Job | QueueError] = []
    for job in batch:
        call = Enqueueing(settings, settings.name, system, True) if hooks.hooks else None
        if call is not None:
            hooks.before_enqueue(call)
        try:
            submission = _prepare(settings, allow_unportable, job, snapshot)
        except JobValidationError as error:
            slots.append(error)
            if call is not None:
                hooks.after_enqueue(call, None, error)
            continue
        if call is not None:
            call.envelope = submission.envelope
            call.queue = submission.queue or settings.name
            if (headers := hooks.job_prepared(call)) is not None:
                submission = dataclasses.replace(submission, headers=headers)
        try:
            handle = await driver.submit(submission)
        except BaseException as error:
            if call is not None:
                hooks.after_enqueue(call, None, error)
            # What an in-process driver raises is the job's own error (QUEUE_SYNC_RAISE).
            if driver.runs_in_process or not isinstance(error, QueueError):
                raise
            slots.append(error)
            continue
        slots.append(handle)
        if call is not None:
            hooks.after_enqueue(call, handle, None)
    return BatchResult(slots)


def _prepare(
    settings: QueueSettings, allow_unportable: bool, job: JobCall, snapshot: dict[str, Any]
) -> Submission:
    return prepare(
        job.function,
        job.args,
        job.kwargs,
        max_payload_bytes=settings.max_payload_bytes,
        allow_unportable=allow_unportable,
        routes=settings.routes,
        stacklevel=_STACKLEVEL,
        snapshot=snapshot,
    )
