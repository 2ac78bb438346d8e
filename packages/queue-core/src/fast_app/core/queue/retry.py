"""Retry backoff: a pure policy, the same for every driver."""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["retry_delay_s"]


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
