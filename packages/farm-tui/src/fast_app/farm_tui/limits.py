"""Worker limits an operator changes from the dashboard: the rules, as pure functions.

Never ``min > max``, never below 0, and ``max`` at least 1 (a supervisor with no room for
a worker is not a supervisor; ``FARM_MAX_WORKERS`` has the same floor). Raising min past
max carries max along; lowering max under min carries min along.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LIMIT_CEILING", "Limits", "PendingLimits", "adjust_limits"]

#: The highest worker count the settings accept (``FARM_MAX_WORKERS`` <= 1024).
LIMIT_CEILING = 1024
_PENDING_FOR_S = 10.0


@dataclass(frozen=True, slots=True)
class Limits:
    """A supervisor's worker limits."""

    min_workers: int
    max_workers: int


def adjust_limits(limits: Limits, *, min_change: int = 0, max_change: int = 0) -> Limits:
    """``limits`` with min and max moved by the given steps, kept valid.

    Args:
        limits: the current limits.
        min_change: workers to add to min (negative: to remove).
        max_change: workers to add to max (negative: to remove).

    Returns:
        Limits with ``0 <= min <= max``, ``1 <= max <= LIMIT_CEILING``. Moving min above
        max raises max to it; moving max below min lowers min to it.
    """
    low = min(LIMIT_CEILING, max(0, limits.min_workers + min_change))
    high = min(LIMIT_CEILING, max(1, limits.max_workers + max_change))
    if min_change and low > high:
        high = low
    elif low > high:
        low = high
    return Limits(low, high)


class PendingLimits:
    """Limits asked for and not yet seen in a snapshot, per supervisor and queue.

    Keys pressed in quick succession must build on each other, not on the snapshot that
    predates them: ``+`` twice from min 1 asks for 3. A request is forgotten once a
    snapshot shows it, or after 10 s (the supervisor refused it, or never got it).
    ``queue`` names one of a supervisor's pools; ``None``: its overall limits.
    """

    def __init__(self, pending_for_s: float = _PENDING_FOR_S) -> None:
        self._pending: dict[tuple[str, str | None], tuple[Limits, float]] = {}
        self._pending_for_s = pending_for_s

    def request(
        self, supervisor_id: str, limits: Limits, now: float, *, queue: str | None = None
    ) -> None:
        """Remember that ``limits`` were asked of ``supervisor_id`` at ``now``."""
        self._pending[supervisor_id, queue] = (limits, now)

    def effective(
        self, supervisor_id: str, reported: Limits, now: float, *, queue: str | None = None
    ) -> Limits:
        """The limits to build on: the pending request if any, else what was reported."""
        pending = self._pending.get((supervisor_id, queue))
        if pending is None:
            return reported
        limits, asked_at = pending
        if limits == reported or now - asked_at > self._pending_for_s:
            del self._pending[supervisor_id, queue]
            return reported
        return limits

    def is_pending(self, supervisor_id: str, *, queue: str | None = None) -> bool:
        """Whether a request to ``supervisor_id`` waits to show in a snapshot."""
        return (supervisor_id, queue) in self._pending
