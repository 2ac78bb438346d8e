"""A delivery being handled: the broker's message, its run as hooks see it, its hooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fast_app.core.queue.hooks import HookChain, JobRun

if TYPE_CHECKING:
    from fast_app.farm.worker._incoming import IncomingJob

__all__ = ["Delivery"]


@dataclass(slots=True)
class Delivery:
    """One delivery of the jobs queue, from its arrival to its settlement.

    Attributes:
        message: the broker's message, acknowledged once the delivery is settled.
        run: the delivery as hooks see it (its envelope once decoded).
        hooks: the hooks called along it, chosen when it arrived.
    """

    message: IncomingJob
    run: JobRun
    hooks: HookChain
