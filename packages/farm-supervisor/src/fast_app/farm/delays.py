"""How soon the next delayed job is due, from what the broker says of the delay queues.

A delayed job (a ``__delay_s`` or a retry's backoff) waits in the delay queue of the
largest level not above its remaining delay (``fast_app.core.queue.amqp.topology``), so
a job in level ``L`` had less than ``2L`` to wait when it entered it: it is due in less
than ``2L`` from any moment it is seen there. The broker tells how many messages each
delay queue holds, not when they entered (that would take consuming them), so the
soonest a farm can truthfully say is *within*: the next delayed job is due within twice
the smallest level that holds one. Jobs in the top level (about 29 hours) may wait far
longer than that, hop after hop: they bound nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from fast_app.core.queue.amqp import DELAY_LEVELS_MS

__all__ = ["next_due_within_s"]


def next_due_within_s(waiting_by_level_ms: Mapping[int, int]) -> float | None:
    """Seconds within which the next delayed job is due, given how many wait in each
    delay level (milliseconds); ``None`` when none waits below the top level."""
    top = DELAY_LEVELS_MS[-1]
    levels = [level for level, count in waiting_by_level_ms.items() if count > 0 and level < top]
    return None if not levels else 2 * min(levels) / 1000
