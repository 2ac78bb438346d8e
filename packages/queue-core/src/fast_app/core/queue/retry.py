"""Retries: what follows a run of a job, and the backoff; pure policy, the same for every driver.

``decide_after_run`` is the one rule: a success is done, an invalid job is dead-lettered at
once, a job that raised or passed a timeout runs again after a backoff while its retries
last, and is dead-lettered after that. Drivers feed it and act on its answer (the
``sync`` driver sleeps and runs the job again; a worker publishes a retry or a dead letter).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

from fast_app.core.queue.envelope import JobEnvelope
from fast_app.core.queue.handle import JobStatus

__all__ = [
    "DONE",
    "Bury",
    "Done",
    "Retry",
    "RetryDecision",
    "decide_after_failure",
    "decide_after_run",
    "retry_delay_s",
]


@dataclass(frozen=True, slots=True)
class Done:
    """The run succeeded: nothing more to do."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Run the job again after a backoff.

    Attributes:
        attempt: number of the next run (the failed one's plus one).
        delay_s: seconds to wait before that run starts.
        reason: why the run failed (``failed``, ``soft_timeout``, ``hard_timeout``).
    """

    attempt: int
    delay_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class Bury:
    """Give up on the job: it goes to the dead-letter queue.

    Attributes:
        reason: why its last run failed, a dead-letter reason (``failed``,
            ``soft_timeout``, ``hard_timeout``, ``invalid``).
        attempts: how many times the job ran, the last run included.
    """

    reason: str
    attempts: int


RetryDecision: TypeAlias = Done | Retry | Bury
"""What follows a run: ``Done``, ``Retry`` or ``Bury``."""

DONE: Final = Done()
"""The one ``Done`` (a success, the common case, allocates nothing)."""


def decide_after_run(
    status: JobStatus,
    envelope: JobEnvelope,
    *,
    base_s: float,
    cap_s: float,
    uniform: Callable[[], float] = random.random,
) -> RetryDecision:
    """What follows a run of ``envelope`` that ended with ``status``.

    A success is done. An invalid job (arguments its function refuses, say) would fail
    the same way every time, so it is dead-lettered at once, whatever its retries. A job
    that raised or passed its soft timeout is a failure, decided by
    ``decide_after_failure``. The dead-letter reason is the status's value (``failed``,
    ``soft_timeout``, ``invalid``).

    Args:
        status: how the run ended.
        envelope: the job as it ran (its ``attempt`` and ``options.retries``).
        base_s: backoff after the first failure.
        cap_s: longest backoff.
        uniform: source of random numbers in ``[0, 1)`` for the jitter (fixed in tests).
    """
    if status is JobStatus.SUCCEEDED:
        return DONE
    if status is JobStatus.INVALID:
        return Bury(status.value, envelope.attempt)
    return decide_after_failure(status.value, envelope, base_s=base_s, cap_s=cap_s, uniform=uniform)


def decide_after_failure(
    reason: str,
    envelope: JobEnvelope,
    *,
    base_s: float,
    cap_s: float,
    uniform: Callable[[], float] = random.random,
) -> Retry | Bury:
    """What follows a run of ``envelope`` that failed for ``reason`` and may be retried.

    The job runs ``1 + options.retries`` times at most: while runs remain it is retried
    after ``retry_delay_s`` of the attempt that failed, then dead-lettered. For failures
    that have no ``JobStatus``, such as a hard timeout (``reason="hard_timeout"``), which
    only a worker sees.

    Args:
        reason: why the run failed; carried into the decision.
        envelope: the job as it ran (its ``attempt`` and ``options.retries``).
        base_s: backoff after the first failure.
        cap_s: longest backoff.
        uniform: source of random numbers in ``[0, 1)`` for the jitter (fixed in tests).
    """
    attempt = envelope.attempt
    if attempt > envelope.options.retries:
        return Bury(reason, attempt)
    delay_s = retry_delay_s(attempt, base_s=base_s, cap_s=cap_s, uniform=uniform)
    return Retry(attempt + 1, delay_s, reason)


def retry_delay_s(
    attempt: int,
    *,
    base_s: float,
    cap_s: float,
    uniform: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before running a job again after its ``attempt``-th run failed.

    Exponential (``base_s``, then twice as long each time, never over ``cap_s``) with
    "equal jitter": a random point in the upper half of that window, so that jobs that
    failed together do not all come back together, and no retry comes back at once.

    Args:
        attempt: the run that just failed, 1 for the first.
        base_s: backoff after the first failure.
        cap_s: longest backoff.
        uniform: source of random numbers in ``[0, 1)`` (fixed in tests).
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    # 2**attempt overflows floats around attempt 1024; the cap is reached long before.
    window = cap_s if attempt > 64 else min(cap_s, base_s * 2.0 ** (attempt - 1))
    return window / 2 + uniform() * window / 2
