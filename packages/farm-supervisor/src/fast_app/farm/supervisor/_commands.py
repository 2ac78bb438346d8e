"""Control commands: what a dashboard or a ``fast-app`` tool may ask of a supervisor.

``set_limits`` (``min_workers``, ``max_workers``, and ``queue`` for one queue's pool),
``drain_worker`` and ``restart_worker`` (``worker_id``), ``pause``, ``resume``,
``shutdown``: the types of ``fast_app.farm.messages.control``, decoded (and, with a
signing key, verified) where they arrive. A ``set_limits`` whose minimum would pass its
maximum, or whose pools' minimums would pass the overall maximum, is refused.
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
from fast_app.farm.supervisor._pools import QueuePools

__all__ = ["carry_out"]

logger = logging.getLogger("fast_app.farm.supervisor")


async def carry_out(
    command: Command,
    pools: QueuePools,
    *,
    grace_period_s: float,
    stopping: asyncio.Event,
    request_stop: Callable[[], None],
) -> bool:
    """Act on one control command.

    Args:
        command: the command, decoded and admitted.
        pools: the supervisor's workers, a pool per queue.
        grace_period_s: how long a drained worker has to finish its jobs.
        stopping: set when the supervisor stops (no worker is replaced then).
        request_stop: stops the supervisor (``shutdown``).

    Returns:
        Whether the worker limits changed (the scaling policy should look again at once).
    """
    match command:
        case SetLimits():
            return _set_limits(command, pools)
        case DrainWorker(worker_id=worker_id):
            pool = pools.pool_of(worker_id)
            worker = None if pool is None else pool.workers.get(worker_id)
            if pool is not None and worker is not None and not worker.draining:
                # Out of the pool for good: the pool refills only if min_workers or the
                # load asks for it (restart_worker is the one that replaces).
                pool.desired = max(pool.min_workers, pool.desired - 1)
                await worker.drain(grace_period_s)
        case RestartWorker(worker_id=worker_id):
            pool = pools.pool_of(worker_id)
            worker = None if pool is None else pool.workers.get(worker_id)
            restartable = worker is not None and not worker.draining
            if pool is not None and worker is not None and restartable and not stopping.is_set():
                await pool.spawn()  # the replacement first: the pool never shrinks
                await worker.drain(grace_period_s)
        case PauseFarm() | ResumeFarm():
            paused = isinstance(command, PauseFarm)
            for pool in pools.pools.values():
                pool.paused = paused
            for worker in pools.workers.values():
                await worker.send(Pause() if paused else Resume())
        case Shutdown():
            request_stop()
    return False


def _set_limits(command: SetLimits, pools: QueuePools) -> bool:
    single = next(iter(pools.pools.values())) if len(pools.pools) == 1 else None
    if command.queue is None and single is None:
        # The supervisor's overall maximum, shared by its pools (minimums are per queue).
        high = pools.max_workers if command.max_workers is None else command.max_workers
        if high >= max(1, pools.min_workers) and command.min_workers is None:
            pools.max_workers = high
            return True
        logger.warning(
            "refusing overall limits min=%s max=%d: with several queues, set minimums per "
            "queue, and the maximum must be at least their sum (%d)",
            command.min_workers,
            high,
            pools.min_workers,
        )
        return False
    pool = single if command.queue is None else pools.pools.get(command.queue)
    if pool is None:
        logger.warning("refusing limits for %r: not a queue this supervisor serves", command.queue)
        return False
    low = pool.min_workers if command.min_workers is None else command.min_workers
    high = pool.max_workers if command.max_workers is None else command.max_workers
    others = pools.min_workers - pool.min_workers
    # The same bounds as FARM_MIN_WORKERS and FARM_MAX_WORKERS (the message type holds
    # each within 0..1024); with several queues, the minimums must fit the overall max.
    if low <= high and high >= 1 and (single is not None or others + low <= pools.max_workers):
        pool.set_limits(low, high)
        if single is not None:
            pools.max_workers = high
        return True
    logger.warning("refusing limits min=%d max=%d for %s", low, high, pool.queue)
    return False
