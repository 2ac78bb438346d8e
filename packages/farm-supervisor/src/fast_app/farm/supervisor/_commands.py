"""Control commands: what a dashboard or a ``fast-app`` tool may ask of a supervisor.

``set_limits`` (``min_workers``, ``max_workers``), ``drain_worker`` and
``restart_worker`` (``worker_id``), ``pause``, ``resume``, ``shutdown``. They arrive as
decoded JSON from anyone who can publish to the control exchange: limits out of bounds
and unknown commands are refused with a warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from fast_app.farm.supervisor._pool import WorkerPool

__all__ = ["carry_out"]

logger = logging.getLogger("fast_app.farm.supervisor")


async def carry_out(
    command: dict[str, Any],
    pool: WorkerPool,
    *,
    grace_period_s: float,
    stopping: asyncio.Event,
    request_stop: Callable[[], None],
) -> bool:
    """Act on one control command.

    Args:
        command: the decoded message, its name under ``command``.
        pool: the supervisor's workers.
        grace_period_s: how long a drained worker has to finish its jobs.
        stopping: set when the supervisor stops (no worker is replaced then).
        request_stop: stops the supervisor (``shutdown``).

    Returns:
        Whether the worker limits changed (the scaling policy should look again at once).
    """
    name = command.get("command")
    if name == "set_limits":
        return _set_limits(command, pool)
    if name == "drain_worker":
        worker = pool.workers.get(str(command.get("worker_id")))
        if worker is not None and not worker.draining:
            # Out of the pool for good: the pool refills only if min_workers or the
            # load asks for it (restart_worker is the one that replaces).
            pool.desired = max(pool.min_workers, pool.desired - 1)
            await worker.drain(grace_period_s)
    elif name == "restart_worker":
        worker = pool.workers.get(str(command.get("worker_id")))
        if worker is not None and not worker.draining and not stopping.is_set():
            await pool.spawn()  # the replacement first: the pool never shrinks
            await worker.drain(grace_period_s)
    elif name in ("pause", "resume"):
        pool.paused = name == "pause"
        for worker in pool.workers.values():
            await worker.send({"command": name})
    elif name == "shutdown":
        request_stop()
    else:
        logger.warning("unknown command %r", name)
    return False


def _set_limits(command: dict[str, Any], pool: WorkerPool) -> bool:
    try:
        low = int(command.get("min_workers", pool.min_workers))
        high = int(command.get("max_workers", pool.max_workers))
    except (TypeError, ValueError):
        logger.warning("refusing limits %r: not whole numbers", command)
        return False
    # The same bounds as FARM_MIN_WORKERS and FARM_MAX_WORKERS.
    if 0 <= low <= high and 1 <= high <= 1024:
        pool.set_limits(low, high)
        return True
    logger.warning("refusing limits min=%d max=%d", low, high)
    return False
