"""Control commands: what a dashboard or a ``fast-app`` tool may ask of a supervisor.

``set_limits`` (``min_workers``, ``max_workers``, and ``queue`` for one queue's pool),
``drain_worker`` and ``restart_worker`` (``worker_id``), ``pause``, ``resume``,
``shutdown``, ``cancel_job`` (``job_id``): the types of ``fast_app.farm.messages.control``,
decoded (and, with a signing key, verified) where they arrive. A ``set_limits`` whose
minimum would pass its maximum, or whose pools' minimums would pass the overall maximum,
is refused.

``cancel_job`` goes to the worker whose latest heartbeat lists the job in flight (as a
``Cancel`` over its link), unless the heartbeat says the job runs in a thread: a thread
cannot be stopped, and the command is refused with an event saying so. It goes likewise
to a worker whose heartbeat lists the job among its deliveries waiting for a slot: the
worker settles it as cancelled without running it, or cancels it as it runs if it
started in the meantime.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fast_app.farm.messages import (
    Cancel,
    CancelJob,
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
from fast_app.farm.supervisor._events import EventLog
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
    events: EventLog | None = None,
) -> bool:
    """Act on one control command.

    Args:
        command: the command, decoded and admitted.
        pools: the supervisor's workers, a pool per queue.
        grace_period_s: how long a drained worker has to finish its jobs.
        stopping: set when the supervisor stops (no worker is replaced then).
        request_stop: stops the supervisor (``shutdown``).
        events: where what became of a ``cancel_job`` is recorded.

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
        case CancelJob():
            await _cancel_job(command, pools, events or EventLog(logger))
    return False


async def _cancel_job(command: CancelJob, pools: QueuePools, events: EventLog) -> None:
    job_id = command.job_id
    for worker in pools.workers.values():
        entry = next((job for job in worker.in_flight if job.id == job_id), None)
        if entry is None:
            continue
        if entry.in_thread:
            events.record(
                logging.WARNING,
                "cancel_refused",
                "cannot cancel job %s (%s) on worker %s: it runs in a thread, and threads "
                "cannot be stopped",
                job_id,
                entry.function,
                worker.worker_id,
                worker_id=worker.worker_id,
                job_id=job_id,
            )
            return
        await worker.send(Cancel(job_id=job_id, sender=command.sender))
        events.record(
            logging.WARNING,
            "cancel_forwarded",
            "cancelling job %s (%s) on worker %s, asked by %s",
            job_id,
            entry.function,
            worker.worker_id,
            command.sender,
            worker_id=worker.worker_id,
            job_id=job_id,
        )
        return
    for worker in pools.workers.values():
        waiting = next((job for job in worker.waiting_jobs if job.id == job_id), None)
        if waiting is None:
            continue
        await worker.send(Cancel(job_id=job_id, sender=command.sender))
        events.record(
            logging.WARNING,
            "cancel_forwarded",
            "cancelling job %s (%s) waiting for a slot on worker %s (not started), asked by %s",
            job_id,
            waiting.function or "?",
            worker.worker_id,
            command.sender,
            worker_id=worker.worker_id,
            job_id=job_id,
        )
        return
    events.record(
        logging.INFO,
        "cancel_not_found",
        "job %s is neither running nor waiting on this supervisor's workers: nothing to cancel",
        job_id,
        job_id=job_id,
    )


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
