"""Runtime histograms: job durations in log-spaced buckets, so that they merge.

Percentiles of several workers or supervisors cannot be merged from their own p50 and
p95; bucket counts can. Each bucket is ``2 ** 0.25`` (about 19 %) wider than the one
below, from 100 µs to about 12 days, so a percentile read from merged buckets is within
about 10 % of the true one whatever the spread. Messages carry the non-empty buckets
only, as ``[index, count]`` pairs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = [
    "BUCKETS",
    "RuntimeHistogram",
    "bucket_of",
    "bucket_value",
]

#: How many buckets; indexes run from 0 to ``BUCKETS - 1``.
BUCKETS = 136
_SMALLEST_S = 1e-4
_STEPS_PER_DOUBLING = 4
_LOG_RATIO = math.log(2) / _STEPS_PER_DOUBLING


def bucket_of(seconds: float) -> int:
    """The bucket a duration of ``seconds`` falls in (the first and last are open-ended)."""
    if not seconds > _SMALLEST_S:  # also NaN
        return 0
    index = math.ceil(math.log(seconds / _SMALLEST_S) / _LOG_RATIO - 1e-9)
    return min(index, BUCKETS - 1)


def bucket_value(index: int) -> float:
    """The duration a bucket stands for: the geometric middle of its bounds."""
    if index <= 0:
        return _SMALLEST_S
    return _SMALLEST_S * math.exp((index - 0.5) * _LOG_RATIO)


class RuntimeHistogram:
    """Counts of durations by bucket.

    Args:
        buckets: ``(index, count)`` pairs to start from (a message's); indexes must be
            in range, as the message types bound them.
    """

    __slots__ = ("_counts",)

    def __init__(self, buckets: Iterable[tuple[int, int]] = ()) -> None:
        self._counts: dict[int, int] = {}
        self.merge(buckets)

    def add(self, seconds: float) -> None:
        """One more duration."""
        index = bucket_of(seconds)
        self._counts[index] = self._counts.get(index, 0) + 1

    def merge(self, buckets: Iterable[tuple[int, int]] | RuntimeHistogram) -> None:
        """Add another histogram's counts (or its ``(index, count)`` pairs)."""
        pairs = buckets.pairs() if isinstance(buckets, RuntimeHistogram) else buckets
        counts = self._counts
        for index, count in pairs:
            if count:
                counts[index] = counts.get(index, 0) + count

    @property
    def count(self) -> int:
        """How many durations it holds."""
        return sum(self._counts.values())

    def pairs(self) -> list[tuple[int, int]]:
        """The non-empty buckets, ``(index, count)``, by index."""
        return sorted(self._counts.items())

    def quantile(self, fraction: float) -> float | None:
        """The duration below which ``fraction`` of them fall (nearest rank, to within a
        bucket); ``None`` when empty."""
        return _quantile_of(self._counts, fraction)


def _quantile_of(counts: Mapping[int, int], fraction: float) -> float | None:
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for index in sorted(counts):
        seen += counts[index]
        if seen >= rank:
            return bucket_value(index)
    return bucket_value(max(counts))  # pragma: no cover - the loop reaches the rank
