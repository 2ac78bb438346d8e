"""Control commands: what a dashboard or a ``fast-app`` tool may ask of a supervisor.

``set_limits`` (``min_workers``, ``max_workers``), ``drain_worker`` and
``restart_worker`` (``worker_id``), ``pause``, ``resume``, ``shutdown``: the types of
``fast_app.farm.messages.control``, decoded (and, with a signing key, verified) where
they arrive. A ``set_limits`` whose minimum would pass its maximum is refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fast_app.farm.messages import (
    Command,
    DrainWorker,
    Pause,
    PauseFarm,
    RestartWorker,
    Resume,
    ResumeFarm,
    SetLimits,
    Shutdown,
)
from fast_app.farm.supervisor._pool import WorkerPool

__all__ = ["carry_out"]

logger = logging.getLogger("fast_app.farm.supervisor")


async def carry_out(
    command: Command,
    pool: WorkerPool,
    *,
    grace_period_s: float,
    stopping: asyncio.Event,
    request_stop: Callable[[], None],
) -> bool:
    """Act on one control command.

    Args:
        command: the command, decoded and admitted.
        pool: the supervisor's workers.
        grace_period_s: how long a drained worker has to finish its jobs.
        stopping: set when the supervisor stops (no worker is replaced then).
        request_stop: stops the supervisor (``shutdown``).

    Returns:
        Whether the worker limits changed (the scaling policy should look again at once).
    """
    match command:
        case SetLimits():
            return _set_limits(command, pool)
        case DrainWorker(worker_id=worker_id):
            worker = pool.workers.get(worker_id)
            if worker is not None and not worker.draining:
                # Out of the pool for good: the pool refills only if min_workers or the
                # load asks for it (restart_worker is the one that replaces).
                pool.desired = max(pool.min_workers, pool.desired - 1)
                await worker.drain(grace_period_s)
        case RestartWorker(worker_id=worker_id):
            worker = pool.workers.get(worker_id)
            if worker is not None and not worker.draining and not stopping.is_set():
                await pool.spawn()  # the replacement first: the pool never shrinks
                await worker.drain(grace_period_s)
        case PauseFarm() | ResumeFarm():
            pool.paused = isinstance(command, PauseFarm)
            for worker in pool.workers.values():
                await worker.send(Pause() if pool.paused else Resume())
        case Shutdown():
            request_stop()
    return False


def _set_limits(command: SetLimits, pool: WorkerPool) -> bool:
    low = pool.min_workers if command.min_workers is None else command.min_workers
    high = pool.max_workers if command.max_workers is None else command.max_workers
    # The same bounds as FARM_MIN_WORKERS and FARM_MAX_WORKERS (the message type holds
    # each within 0..1024).
    if low <= high and high >= 1:
        pool.set_limits(low, high)
        return True
    logger.warning("refusing limits min=%d max=%d", low, high)
    return False
